"""The adaptive rate (delivery.adaptive_rate) against a server that limits messages per
minute the way Postfix's anvil does, with time driven by the test's clock: the account learns the
server's limit from one refusal and then sends just under it, instead of collapsing."""

from datetime import timedelta

import pytest
from django.db.models import Q
from django.urls import reverse

from campaigns.models import Email
from delivery import adaptive_rate
from sending.classifier import classify
from sending.models import SmtpAccountState
from sending.rates import effective_per_minute
from tests.factories import ContactFactory, ContactListFactory, SmtpAccountFactory
from tests.smtp_server import RateLimitingHandler

S = Email.Status
LIMIT = 60  # the server's messages per client per minute
CONFIGURED = 2 * LIMIT  # the marketer's optimistic setting


class AdvancingSleep:
    """Pacing waits move the test clock instead of sleeping, so the run covers minutes at once."""

    def __init__(self, clock):
        self.clock = clock

    def __call__(self, seconds):
        self.clock.advance(seconds=seconds)


def run_for(engine, *, seconds, tick_every=10):
    """Dispatcher ticks every `tick_every` seconds of clock time (a tick's batches move it on too)."""
    end = engine.clock() + timedelta(seconds=seconds)
    while engine.clock() < end:
        due = engine.clock() + timedelta(seconds=tick_every)
        engine.tick()
        if engine.clock() < due:
            engine.clock.now = due


@pytest.fixture
def limited(make_engine, settings):
    # Pacing waits of up to 2 s are slept (here: the clock moved); at 57/min a message is 1.05 s
    # from the next, and the tests' engine has no delayed continuation to hand such waits to.
    settings.MAX_PACING_WAIT_SECONDS = 2
    handler = RateLimitingHandler(limit=LIMIT, window_seconds=60)
    engine = make_engine(handler, max_per_minute=CONFIGURED, batch_size=50)
    handler.clock = engine.clock
    engine.sleep = AdvancingSleep(engine.clock)
    contacts = ContactFactory.create_batch(420, owner=engine.owner)
    campaign = engine.campaign(ContactListFactory(owner=engine.owner, contacts=contacts))
    engine.send_now(campaign)
    return engine, campaign


def test_the_account_learns_the_servers_limit_from_one_refusal_and_holds_just_under_it(limited):
    engine, campaign = limited
    start = engine.clock()

    run_for(engine, seconds=40)

    # At 120/min the server's 60 went in the first 30 s; the 61st was refused, and the 60 accepted in
    # the minute before set the account's rate: 95 % of them.
    engine.account.refresh_from_db()
    assert engine.account.state.learned_per_minute == 57
    assert engine.account.state.rate_note == (
        "Throttled (“450 4.7.1 Error: too much mail from 127.0.0.1”): the server accepted 60 in the "
        "minute before refusing; sending at 57/min."
    )
    assert engine.account.state.last_throttled_at == start + timedelta(seconds=30)

    run_for(engine, seconds=6 * 60 - 40)

    handler = engine.handler
    sent = Email.objects.filter(campaign=campaign, status=S.SENT).count()
    # Deferred at least once: waiting for its retry now, or sent on a later attempt.
    deferred_ever = Email.objects.filter(campaign=campaign).filter(Q(status=S.DEFERRED) | Q(attempts__gt=1)).count()
    # Never more than the server allows in any minute, and never a message recorded sent that it refused.
    assert handler.busiest_window(60) <= LIMIT
    assert sent == len(handler.accepted_at) == len(handler.messages)
    # Sustained: over six minutes at least 90 % of the server's limit (halving sent 357 of 600).
    assert sent >= 0.9 * LIMIT * 6
    # One refusal in all: the first. The probes upwards stay under the 60 the server was seen to take.
    assert handler.refused_mail == deferred_ever == 1
    engine.account.refresh_from_db()
    assert engine.account.state.learned_per_minute == 59
    assert sorted(set(handler.delivered_to())) == sorted(handler.delivered_to())  # nobody twice


def test_refusals_within_an_episode_pause_the_account_without_lowering_it_again(db, marketer):
    account = SmtpAccountFactory(owner=marketer, max_per_minute=1200)
    now = account.created_at

    assert adaptive_rate.on_throttled(account_id=account.pk, code=450, text="4.7.1 too much mail", now=now) == 600
    later = now + timedelta(seconds=20)
    assert adaptive_rate.on_throttled(account_id=account.pk, code=450, text="4.7.1 too much mail", now=later) is None

    account.refresh_from_db()
    assert account.state.learned_per_minute == 600  # nothing accepted before: halved, once
    assert account.state.last_throttled_at == now
    # Nothing sent in the minute: the pause is the plain one.
    assert account.state.next_send_at == later + timedelta(seconds=adaptive_rate.THROTTLE_PAUSE_SECONDS)
    # A minute on, a refusal is news: a new episode.
    assert (
        adaptive_rate.on_throttled(
            account_id=account.pk, code=421, text="4.7.0 slow down", now=now + timedelta(seconds=61)
        )
        == 300
    )


def test_the_rate_probes_up_after_a_clean_minute_and_never_above_the_maximum(db, marketer):
    account = SmtpAccountFactory(owner=marketer, max_per_minute=60)
    now = account.created_at
    SmtpAccountState.objects.filter(account=account).update(
        learned_per_minute=50, rate_changed_at=now, last_throttled_at=now
    )

    assert not adaptive_rate.after_clean_batch(account_id=account.pk, now=now + timedelta(seconds=30))
    rates = []
    for minute in range(1, 11):
        adaptive_rate.after_clean_batch(account_id=account.pk, now=now + timedelta(seconds=61 * minute))
        account.refresh_from_db()
        rates.append(account.state.learned_per_minute)
    assert rates[:3] == [pytest.approx(50 * 1.02), pytest.approx(50 * 1.02**2), pytest.approx(50 * 1.02**3)]
    # 50 * 1.02^10 = 60.9: at the configured maximum, the learned rate is dropped.
    assert rates[8] == pytest.approx(50 * 1.02**9) and rates[9] is None
    assert account.state.rate_note == "No throttling since: back at the configured maximum."
    assert effective_per_minute(account) == 60


def test_probing_stays_under_what_the_server_accepted_until_half_an_hour_without_refusal():
    probe = adaptive_rate.probe_rate
    assert probe(learned=570, observed=600, clean_seconds=120) == pytest.approx(581.4)
    assert probe(learned=590, observed=600, clean_seconds=180) == 599  # 601.8 would pass the limit seen
    assert probe(learned=599, observed=600, clean_seconds=240) is None  # stays
    assert probe(learned=599, observed=600, clean_seconds=31 * 60) == pytest.approx(610.98)  # maybe raised
    assert probe(learned=300, observed=None, clean_seconds=120) == pytest.approx(306)


@pytest.mark.parametrize(
    ("code", "text", "rate_limited"),
    [
        (450, "4.7.1 Error: too much mail from 127.0.0.1", True),  # Postfix anvil
        (421, "4.7.0 Try again later, closing connection", True),
        (454, "4.7.0 Temporary authentication failure", True),
        (451, "4.3.2 Please try again later: too many messages", True),
        (452, "4.2.2 The email account that you tried to reach is over quota", True),
        (450, "4.2.1 Mailbox busy", False),
        (451, "4.7.1 Greylisted, please try again later", False),
        (452, "4.5.3 Too many recipients", False),
        (550, "5.7.1 Rate limited? no: permanent", False),
    ],
)
def test_which_replies_slow_the_account(code, text, rate_limited):
    assert classify(code, text).rate_limited is rate_limited


def test_the_account_page_shows_the_learned_rate_and_why(marketer_client, marketer):
    account = SmtpAccountFactory(
        owner=marketer,
        max_per_minute=1200,
        learned_per_minute=570,
        rate_note="Throttled (“450 4.7.1 Error: too much mail from 10.0.0.1”): sending at 570/min.",
    )
    page = marketer_client.get(reverse("admin:sending_smtpaccount_change", args=[account.pk])).content.decode()
    assert "570/min, learned from its server (configured maximum 1200/min" in page
    assert "too much mail from 10.0.0.1" in page
    listing = marketer_client.get(reverse("admin:sending_smtpaccount_changelist")).content.decode()
    assert "Ready, at 570/min learned from its server" in listing


def test_forgetting_the_learned_rate_sends_at_the_configured_maximum_again_for_own_accounts_only(
    marketer_client, marketer, other_marketer
):
    learned = dict(
        max_per_minute=1200,
        learned_per_minute=570,
        observed_limit_per_minute=600,
        rate_note="Throttled: sending at 570/min.",
    )
    mine = SmtpAccountFactory(owner=marketer, **learned)
    theirs = SmtpAccountFactory(owner=other_marketer, **learned)
    response = marketer_client.post(
        reverse("admin:sending_smtpaccount_changelist"),
        {"action": "forget_learned_rate", "_selected_action": [mine.pk, theirs.pk]},
        follow=True,
    )
    assert "1 account(s) back at their configured maximum." in response.content.decode()
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.state.learned_per_minute, mine.state.observed_limit_per_minute, mine.state.rate_note) == (
        None,
        None,
        "",
    )
    assert effective_per_minute(mine) == 1200
    assert (theirs.state.learned_per_minute, theirs.state.observed_limit_per_minute) == (570, 600)
