"""Public subscription forms: the hosted page, the confirmation email through a real SMTP server, the
signed links, the bots' limits and the suppressed contacts that only an email confirmation brings back.

The confirmation email is sent by a Celery task queued once the submission commits: `submit` runs the
callbacks of the commit (pytest-django's transaction never commits) and Celery runs the task in this
process (`eager_tasks`), so the mail goes through the real server before `submit` returns."""

import asyncio
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.core import signing
from django.core.cache import cache
from django.test import Client, TestCase
from django.utils import timezone

from config.celery import app
from contacts.models import Contact, SubscriptionRequest
from contacts.services import contacts, subscriptions
from contacts.subscriptions import embed, tokens
from tests.factories import ContactFactory, SmtpAccountFactory, SubscriptionFormFactory
from tests.smtp_server import RecordingHandler

pytestmark = pytest.mark.django_db

VISITOR_IP = "198.51.100.23"
LINK = re.compile(r"https?://\S+/s/confirm/[^/\s]+/")


@pytest.fixture(autouse=True)
def empty_cache():
    # The rate limits and the once-an-hour rule live in the cache, shared by every test of a run.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def eager_tasks():
    """Celery runs each task at once in this process, and its exceptions fail the test."""
    before = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


@pytest.fixture
def server(allow_local_smtp, smtp_server_factory):
    return smtp_server_factory(RecordingHandler())


@pytest.fixture
def form(marketer, server):
    account = SmtpAccountFactory(
        owner=marketer,
        host=server.host,
        port=server.port,
        security="none",
        username="",
        from_email="news@alice.example",
        from_name="Alice Ltd",
    )
    return SubscriptionFormFactory(
        owner=marketer, smtp_account=account, title="Alice's newsletter", attributes_asked=["City", "Company"]
    )


@pytest.fixture
def visitor():
    return Client(enforce_csrf_checks=True, REMOTE_ADDR=VISITOR_IP)


def page_path(form):
    return urlsplit(embed.hosted_url(form=form)).path


def post(client, form, email="asha@example.in", **fields):
    """The submission alone: what it queues waits in the commit callbacks."""
    data = {
        "email": email,
        "name": "Asha",
        "attr_City": "Pune",
        "attr_Company": "Acme",
        "form_token": tokens.post_token(form_id=form.pk),
        "website": "",
        **fields,
    }
    return client.post(page_path(form), data)


def submit(client, form, email="asha@example.in", **fields):
    """The submission and then what it queued once it committed (the confirmation email)."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return post(client, form, email, **fields)


def confirmation_link(message):
    return LINK.search(message.parsed().get_body(("plain",)).get_content()).group(0)


def path_of(url):
    return urlsplit(url).path


def test_a_submission_mails_a_confirmation_through_the_owners_account_and_subscribes_no_one_yet(visitor, form, server):
    page = visitor.get(page_path(form))
    assert page.status_code == 200
    body = page.content.decode()
    assert "Alice&#x27;s newsletter" in body and form.consent_text in body
    assert 'name="attr_City"' in body and 'name="website"' in body

    response = submit(visitor, form)
    assert response.status_code == 200
    assert "Check your inbox" in response.content.decode()
    server.handler.wait_for(lambda h: len(h.messages) == 1)
    message = server.handler.messages[0]
    assert message.rcpt_tos == ["asha@example.in"]
    assert message.mail_from == "news@alice.example"
    parsed = message.parsed()
    assert str(parsed["Subject"]) == "Confirm your subscription: Alice's newsletter"
    assert "Alice Ltd" in str(parsed["From"])
    assert confirmation_link(message)
    assert not Contact.objects.filter(email="asha@example.in").exists()
    assert form.contact_list.contacts.count() == 0
    pending = SubscriptionRequest.objects.get()
    assert pending.confirmed_at is None and pending.attributes == {"City": "Pune", "Company": "Acme"}


def test_the_confirmation_link_asks_on_get_and_subscribes_on_post_recording_consent(visitor, form, server):
    submit(visitor, form)
    server.handler.wait_for(lambda h: len(h.messages) == 1)
    link = path_of(confirmation_link(server.handler.messages[0]))

    asked = visitor.get(link)  # what a link scanner does: nothing changes
    assert asked.status_code == 200 and "Confirm my subscription" in asked.content.decode()
    assert not Contact.objects.filter(email="asha@example.in").exists()

    confirmed = visitor.post(link)
    assert confirmed.status_code == 200
    assert "You are subscribed" in confirmed.content.decode()
    contact = Contact.objects.get(owner=form.owner, email="asha@example.in")
    assert contact.status == Contact.Status.SUBSCRIBED
    assert list(form.contact_list.contacts.all()) == [contact]
    assert contact.name == "Asha" and contact.attributes == {"City": "Pune", "Company": "Acme"}
    assert contact.consent_form == form
    assert contact.consent_text == form.consent_text
    assert contact.consent_at is not None
    assert contact.consent_ip_hash == tokens.hash_ip(VISITOR_IP)
    assert VISITOR_IP not in contact.consent_ip_hash and len(contact.consent_ip_hash) == 64

    again = visitor.post(link)  # idempotent
    assert again.status_code == 200
    assert Contact.objects.filter(email="asha@example.in").count() == 1
    assert Contact.objects.get(pk=contact.pk).consent_at == contact.consent_at


def test_the_consent_recorded_is_the_wording_agreed_to_not_a_later_edit(visitor, form, server):
    submit(visitor, form)
    server.handler.wait_for(lambda h: len(h.messages) == 1)
    agreed = form.consent_text
    form.consent_text = "Something else entirely."
    form.save()
    visitor.post(path_of(confirmation_link(server.handler.messages[0])))
    assert Contact.objects.get(email="asha@example.in").consent_text == agreed


def past_confirm_token(*, request_id, email, seconds_ago):
    class PastSigner(signing.TimestampSigner):
        def timestamp(self):
            return signing.b62_encode(int(time.time()) - seconds_ago)

    return PastSigner(salt=tokens.CONFIRM_SALT).sign_object({"r": request_id, "e": email})


def test_an_expired_confirmation_link_is_refused(visitor, form, server, settings):
    submit(visitor, form)
    server.handler.wait_for(lambda h: len(h.messages) == 1)
    pending = SubscriptionRequest.objects.get()
    token = past_confirm_token(
        request_id=pending.pk, email=pending.email, seconds_ago=settings.SUBSCRIPTION_CONFIRM_MAX_AGE + 60
    )
    for response in (visitor.get(f"/s/confirm/{token}/"), visitor.post(f"/s/confirm/{token}/")):
        assert response.status_code == 400
        assert "This confirmation link has expired. Please sign up again." in response.content.decode()
    assert not Contact.objects.filter(email="asha@example.in").exists()
    fresh = past_confirm_token(request_id=pending.pk, email=pending.email, seconds_ago=60)
    assert visitor.post(f"/s/confirm/{fresh}/").status_code == 200


def test_forged_and_foreign_tokens_are_refused(visitor, form, server):
    submit(visitor, form)
    server.handler.wait_for(lambda h: len(h.messages) == 1)
    pending = SubscriptionRequest.objects.get()
    token = tokens.confirm_token(request_id=pending.pk, email=pending.email)
    forged = [
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # signature changed
        signing.dumps({"r": pending.pk, "e": pending.email}, salt=tokens.PAGE_SALT),  # another purpose's salt
        tokens.confirm_token(request_id=pending.pk, email="mallory@example.org"),  # not the address mailed
        tokens.confirm_token(request_id=pending.pk + 1000, email=pending.email),  # no such request
        tokens.page_token(form_id=form.pk),
    ]
    for bad in forged:
        response = visitor.post(f"/s/confirm/{bad}/")
        assert response.status_code == 400, bad
        assert "This confirmation link is not valid." in response.content.decode()
    assert not Contact.objects.exists()

    assert visitor.get(f"/s/{tokens.post_token(form_id=form.pk)}/").status_code == 404  # the post token is no page
    assert visitor.get(f"/s/{form.pk}:forged/").status_code == 404
    refused = submit(visitor, form, form_token=tokens.page_token(form_id=form.pk))
    assert refused.status_code == 400
    assert "This form is out of date. Please reload the page and try again." in refused.content.decode()
    assert 'value="asha@example.in"' in refused.content.decode()  # nothing typed is lost
    assert submit(visitor, form, form_token="").status_code == 400
    assert len(server.handler.messages) == 1


def test_a_post_token_of_another_form_is_refused(visitor, form, server, marketer):
    other = SubscriptionFormFactory(owner=marketer, smtp_account=form.smtp_account)
    response = submit(visitor, form, form_token=tokens.post_token(form_id=other.pk))
    assert response.status_code == 400
    assert not SubscriptionRequest.objects.exists()


def test_the_honeypot_answers_as_usual_and_does_nothing(visitor, form, server):
    response = submit(visitor, form, website="http://spam.example/")
    assert response.status_code == 200
    assert "Check your inbox" in response.content.decode()
    assert not SubscriptionRequest.objects.exists()
    # Then a real submission goes through: the bot's attempt mailed no one and marked no one as mailed.
    submit(visitor, form)
    server.handler.wait_for(lambda h: len(h.messages) == 1)
    assert server.handler.delivered_to() == ["asha@example.in"]


def test_one_ip_address_is_rate_limited(visitor, form, server, settings):
    settings.SUBSCRIBE_LIMIT_PER_IP = 2
    for n in range(2):
        assert submit(visitor, form, email=f"person{n}@example.org").status_code == 200
    refused = submit(visitor, form, email="person2@example.org")
    assert refused.status_code == 429
    body = refused.content.decode()
    assert "Too many sign-ups from your network in the last hour. Please try again later." in body
    assert 'value="person2@example.org"' in body
    server.handler.wait_for(lambda h: len(h.messages) == 2)
    other_visitor = Client(REMOTE_ADDR="203.0.113.9")
    assert submit(other_visitor, form, email="person2@example.org").status_code == 200
    server.handler.wait_for(lambda h: len(h.messages) == 3)


PROXY_IP = "10.0.0.7"


@pytest.fixture
def behind_proxy(settings):
    settings.TRUSTED_PROXIES = [PROXY_IP]


def through_proxy(visitor_ip):
    """A visitor as the app sees it behind the reverse proxy: the proxy's address, the visitor's in the header."""
    return Client(REMOTE_ADDR=PROXY_IP, HTTP_X_FORWARDED_FOR=visitor_ip)


def test_behind_a_trusted_proxy_each_visitor_has_a_budget_of_their_own(behind_proxy, form, server, settings):
    settings.SUBSCRIBE_LIMIT_PER_IP = 10
    for n in range(11):
        response = submit(through_proxy(f"198.51.100.{n + 1}"), form, email=f"person{n}@example.org")
        assert response.status_code == 200, n
    # The consent records the visitor's address (hashed), not the proxy's.
    assert SubscriptionRequest.objects.get(email="person0@example.org").ip_hash == tokens.hash_ip("198.51.100.1")


def test_behind_a_trusted_proxy_one_visitor_over_the_limit_is_refused(behind_proxy, form, server, settings):
    settings.SUBSCRIBE_LIMIT_PER_IP = 2
    for n in range(2):
        assert submit(through_proxy(VISITOR_IP), form, email=f"person{n}@example.org").status_code == 200
    assert submit(through_proxy(VISITOR_IP), form, email="person2@example.org").status_code == 429
    assert submit(through_proxy("203.0.113.9"), form, email="person2@example.org").status_code == 200


def test_a_client_not_behind_a_trusted_proxy_cannot_pick_its_bucket_by_header(behind_proxy, form, server, settings):
    settings.SUBSCRIBE_LIMIT_PER_IP = 2
    for n in range(3):
        client = Client(REMOTE_ADDR=VISITOR_IP, HTTP_X_FORWARDED_FOR=f"203.0.113.{n + 1}")
        response = submit(client, form, email=f"person{n}@example.org")
    assert response.status_code == 429
    assert SubscriptionRequest.objects.count() == 2


def test_ipv6_addresses_of_one_64_share_a_bucket(behind_proxy, form, server, settings):
    settings.SUBSCRIBE_LIMIT_PER_IP = 1
    assert submit(through_proxy("2001:db8:1:2::1"), form, email="a@example.org").status_code == 200
    assert submit(through_proxy("2001:db8:1:2:ffff::9"), form, email="b@example.org").status_code == 429
    assert submit(through_proxy("2001:db8:1:3::1"), form, email="b@example.org").status_code == 200


def test_the_limit_counts_per_form(form, server, settings, other_marketer):
    settings.SUBSCRIBE_LIMIT_PER_IP = 1
    account = SmtpAccountFactory(owner=other_marketer, host=server.host, port=server.port, security="none", username="")
    theirs = SubscriptionFormFactory(owner=other_marketer, smtp_account=account)
    assert submit(Client(REMOTE_ADDR=VISITOR_IP), form, email="a@example.org").status_code == 200
    assert submit(Client(REMOTE_ADDR=VISITOR_IP), form, email="b@example.org").status_code == 429
    # A busy visitor (or a busy network) on one marketer's form does not close another's.
    assert submit(Client(REMOTE_ADDR=VISITOR_IP), theirs, email="b@example.org").status_code == 200


def test_honeypot_submissions_use_up_no_budget(form, server, settings):
    settings.SUBSCRIBE_LIMIT_PER_IP = 2
    for _ in range(5):
        assert submit(Client(REMOTE_ADDR=VISITOR_IP), form, website="http://spam.example/").status_code == 200
    for n in range(2):
        assert submit(Client(REMOTE_ADDR=VISITOR_IP), form, email=f"person{n}@example.org").status_code == 200
    assert SubscriptionRequest.objects.count() == 2


def test_one_list_is_rate_limited_across_addresses(form, server, settings):
    settings.SUBSCRIBE_LIMIT_PER_LIST = 2
    for n in range(2):
        assert submit(Client(REMOTE_ADDR=f"203.0.113.{n + 1}"), form, email=f"p{n}@example.org").status_code == 200
    refused = submit(Client(REMOTE_ADDR="203.0.113.50"), form, email="p9@example.org")
    assert refused.status_code == 429
    assert "This form is taking too many sign-ups right now. Please try again later." in refused.content.decode()
    assert SubscriptionRequest.objects.count() == 2


def test_an_address_is_mailed_at_most_once_an_hour_per_owner(form, server, other_marketer):
    first = submit(Client(REMOTE_ADDR="203.0.113.1"), form)
    second = submit(Client(REMOTE_ADDR="203.0.113.2"), form, email="ASHA@example.in ")
    assert "<strong>asha@example.in</strong>" in first.content.decode()
    assert (second.status_code, second.content) == (first.status_code, first.content)  # nothing told
    server.handler.wait_for(lambda h: len(h.messages) == 1)
    assert SubscriptionRequest.objects.count() == 1

    # Another marketer's form is another sender: alice's mail does not hold back theirs.
    account = SmtpAccountFactory(owner=other_marketer, host=server.host, port=server.port, security="none", username="")
    theirs = SubscriptionFormFactory(owner=other_marketer, smtp_account=account)
    submit(Client(REMOTE_ADDR="203.0.113.3"), theirs)
    server.handler.wait_for(lambda h: len(h.messages) == 2)
    assert server.handler.delivered_to() == ["asha@example.in", "asha@example.in"]


def test_the_once_an_hour_rule_holds_when_the_cache_was_emptied(form, server):
    submit(Client(REMOTE_ADDR="203.0.113.1"), form)
    server.handler.wait_for(lambda h: len(h.messages) == 1)
    cache.clear()  # a restarted or flushed Redis
    submit(Client(REMOTE_ADDR="203.0.113.2"), form)
    assert SubscriptionRequest.objects.count() == 1 and len(server.handler.messages) == 1
    SubscriptionRequest.objects.update(mailed_at=timezone.now() - timedelta(hours=1, minutes=1))
    cache.clear()  # the cache entry would have expired with the hour
    submit(Client(REMOTE_ADDR="203.0.113.3"), form)
    server.handler.wait_for(lambda h: len(h.messages) == 2)


def test_a_bad_address_is_a_clear_error_and_keeps_what_was_typed(visitor, form, server):
    response = submit(visitor, form, email="asha@localhost", name="Asha Rao")
    assert response.status_code == 400
    body = response.content.decode()
    assert "Enter a valid email address" in body
    assert 'value="Asha Rao"' in body and 'value="Pune"' in body
    assert not SubscriptionRequest.objects.exists()


def test_a_refused_confirmation_is_logged_and_can_be_retried_at_once(visitor, form, server, caplog):
    server.handler.rcpt_replies["asha@example.in"] = (550, "5.1.1 No such user")
    with caplog.at_level(logging.WARNING, logger="contacts.services.subscriptions"):
        refused = submit(visitor, form)
    assert refused.status_code == 200 and "Check your inbox" in refused.content.decode()
    assert "5.1.1" not in refused.content.decode()  # the server's words are the marketer's business
    notes = [r.getMessage() for r in caplog.records if r.name == "contacts.services.subscriptions"]
    assert len(notes) == 1 and "not sent" in notes[0] and "5.1.1 No such user" in notes[0]  # for the operator
    assert not SubscriptionRequest.objects.exists()
    del server.handler.rcpt_replies["asha@example.in"]
    assert "Check your inbox" in submit(visitor, form).content.decode()
    server.handler.wait_for(lambda h: len(h.messages) == 1)
    assert SubscriptionRequest.objects.get().mailed_at is not None


@dataclass
class HeldHandler(RecordingHandler):
    """A server that takes its time: RCPT is answered only once the test lets it."""

    release: threading.Event = field(default_factory=threading.Event)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        while not self.release.is_set():
            await asyncio.sleep(0.02)
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


def test_the_page_does_not_wait_for_the_smtp_server(visitor, form, smtp_server_factory, settings):
    settings.SMTP_TIMEOUT = 2  # what the page would wait for at most, were the mail sent in the request
    slow = smtp_server_factory(HeldHandler())
    form.smtp_account.port = slow.port
    form.smtp_account.save()
    try:
        with TestCase.captureOnCommitCallbacks() as queued:
            response = post(visitor, form)
        assert response.status_code == 200 and "Check your inbox" in response.content.decode()
        assert slow.handler.connections == 0  # the page answered before anyone spoke to the server
        assert SubscriptionRequest.objects.get().mailed_at is not None
    finally:
        slow.handler.release.set()
    for callback in queued:  # the worker's part: queue the task, which (eager here) sends the mail
        callback()
    slow.handler.wait_for(lambda h: len(h.messages) == 1)
    assert slow.handler.delivered_to() == ["asha@example.in"]


def test_a_disabled_form_takes_no_submissions(visitor, form, server):
    form.enabled = False
    form.save()
    assert visitor.get(page_path(form)).status_code == 404
    assert submit(visitor, form).status_code == 404
    assert not SubscriptionRequest.objects.exists()


@pytest.mark.parametrize("status", Contact.SUPPRESSED_STATUSES)
def test_a_suppressed_contact_comes_back_only_by_confirming(visitor, form, server, status):
    contact = ContactFactory(owner=form.owner, email="asha@example.in", name="Asha", attributes={})
    contacts.suppress(contact_ids=[contact.pk], status=status, now=timezone.now())
    response = submit(visitor, form)
    assert "Check your inbox" in response.content.decode()
    server.handler.wait_for(lambda h: len(h.messages) == 1)
    assert Contact.objects.get(pk=contact.pk).status == status  # not silently
    assert not form.contact_list.contacts.exists()

    confirmed = visitor.post(path_of(confirmation_link(server.handler.messages[0])))
    assert "Welcome back" in confirmed.content.decode()
    contact.refresh_from_db()
    assert contact.status == Contact.Status.SUBSCRIBED
    assert list(form.contact_list.contacts.all()) == [contact]


def test_single_opt_in_subscribes_a_new_address_at_once_with_consent_and_mails_no_one(visitor, form, server):
    form.double_opt_in = False
    form.save()
    response = submit(visitor, form)
    assert response.status_code == 200 and "Thank you for signing up" in response.content.decode()
    contact = Contact.objects.get(email="asha@example.in")
    assert contact.status == Contact.Status.SUBSCRIBED and contact.consent_form == form
    assert contact.name == "Asha" and contact.attributes == {"City": "Pune", "Company": "Acme"}
    assert list(form.contact_list.contacts.all()) == [contact]
    assert server.handler.messages == []


def test_single_opt_in_changes_an_existing_contact_only_once_its_address_confirms(visitor, form, server):
    form.double_opt_in = False
    form.save()
    contact = ContactFactory(
        owner=form.owner, email="asha@example.in", name="Asha Rao", attributes={"City": "Mumbai", "Plan": "gold"}
    )
    before = Contact.objects.values().get(pk=contact.pk)

    response = submit(visitor, form, name="Mallory", attr_City="Nowhere", attr_Company="Evil Corp")
    assert response.status_code == 200 and "Thank you for signing up" in response.content.decode()
    assert Contact.objects.values().get(pk=contact.pk) == before  # name, attributes, consent: all as they were
    assert not form.contact_list.contacts.exists()
    server.handler.wait_for(lambda h: len(h.messages) == 1)
    assert server.handler.delivered_to() == ["asha@example.in"]

    visitor.post(path_of(confirmation_link(server.handler.messages[0])))
    contact.refresh_from_db()
    assert contact.attributes == {"City": "Nowhere", "Company": "Evil Corp", "Plan": "gold"}
    assert contact.name == "Asha Rao"  # a name already there is kept, as on every confirmation
    assert contact.consent_form == form and contact.consent_at is not None
    assert list(form.contact_list.contacts.all()) == [contact]


def test_single_opt_in_never_resubscribes_a_suppressed_contact_silently(visitor, form, server):
    form.double_opt_in = False
    form.save()
    contact = ContactFactory(owner=form.owner, email="asha@example.in")
    contacts.suppress(contact_ids=[contact.pk], status=Contact.Status.UNSUBSCRIBED, now=timezone.now())

    response = submit(visitor, form)
    assert "Thank you for signing up" in response.content.decode()
    assert Contact.objects.get(pk=contact.pk).status == Contact.Status.UNSUBSCRIBED
    assert not form.contact_list.contacts.exists()
    server.handler.wait_for(lambda h: len(h.messages) == 1)
    visitor.post(path_of(confirmation_link(server.handler.messages[0])))
    assert Contact.objects.get(pk=contact.pk).status == Contact.Status.SUBSCRIBED


def test_a_single_opt_in_subscription_mailed_no_one_so_the_hour_rule_does_not_hold_back_a_later_link(
    visitor, form, server
):
    form.double_opt_in = False
    form.save()
    submit(visitor, form)
    assert server.handler.messages == []
    contact = Contact.objects.get(email="asha@example.in")
    contacts.suppress(contact_ids=[contact.pk], status=Contact.Status.UNSUBSCRIBED, now=timezone.now())
    submit(visitor, form)
    server.handler.wait_for(lambda h: len(h.messages) == 1)


def reset_addresses():
    Contact.objects.all().delete()
    SubscriptionRequest.objects.all().delete()
    cache.clear()


def arrange_state(state, form):
    if state == "a contact":
        ContactFactory(owner=form.owner, email="asha@example.in")
    elif state == "on the list":
        form.contact_list.contacts.add(ContactFactory(owner=form.owner, email="asha@example.in"))
    elif state in Contact.SUPPRESSED_STATUSES:
        contact = ContactFactory(owner=form.owner, email="asha@example.in")
        contacts.suppress(contact_ids=[contact.pk], status=state, now=timezone.now())
    elif state == "mailed within the hour":
        SubscriptionRequest.objects.create(
            form=form, email="asha@example.in", consent_text="x", created_at=timezone.now(), mailed_at=timezone.now()
        )


@pytest.mark.parametrize("double_opt_in", [True, False], ids=["double opt-in", "single opt-in"])
def test_every_valid_submission_gets_the_same_page_whatever_the_address_state(visitor, form, server, double_opt_in):
    form.double_opt_in = double_opt_in
    form.save()
    reset_addresses()
    fresh = submit(visitor, form)
    assert fresh.status_code == 200 and "asha@example.in" in fresh.content.decode()
    states = ["a contact", "on the list", *Contact.SUPPRESSED_STATUSES, "mailed within the hour", "the honeypot"]
    for state in states:
        reset_addresses()
        arrange_state(state, form)
        website = "http://spam.example/" if state == "the honeypot" else ""
        response = submit(visitor, form, website=website)
        assert (response.status_code, response.content.decode()) == (200, fresh.content.decode()), state


def test_an_invalid_submission_still_shows_its_errors_whatever_the_address_state(visitor, form, server):
    contact = ContactFactory(owner=form.owner, email="asha@example.in")
    contacts.suppress(contact_ids=[contact.pk], status=Contact.Status.BOUNCED, now=timezone.now())
    response = submit(visitor, form, form_token="")
    assert response.status_code == 400 and 'value="asha@example.in"' in response.content.decode()
    assert server.handler.messages == [] and not SubscriptionRequest.objects.exists()


def test_resubscribe_refuses_a_request_that_was_not_confirmed(form):
    contact = ContactFactory(owner=form.owner, email="asha@example.in")
    contacts.suppress(contact_ids=[contact.pk], status=Contact.Status.BOUNCED, now=timezone.now())
    pending = SubscriptionRequest.objects.create(
        form=form, email=contact.email, contact=contact, consent_text="x", created_at=timezone.now()
    )
    with pytest.raises(ValueError):
        contacts.resubscribe(subscription_request=pending, now=timezone.now())
    assert Contact.objects.get(pk=contact.pk).status == Contact.Status.BOUNCED


def test_only_the_attributes_the_form_asks_are_kept(visitor, form, server):
    form.double_opt_in = False
    form.save()
    submit(visitor, form, attr_Secret="x", status="subscribed", owner="1")
    assert Contact.objects.get(email="asha@example.in").attributes == {"City": "Pune", "Company": "Acme"}


def test_the_service_refuses_a_bad_address_itself(form):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        subscriptions.subscribe_request(
            form=form,
            email="=HYPERLINK(1)@example.com",
            name="",
            attributes={},
            honeypot="",
            ip=VISITOR_IP,
            client_key=VISITOR_IP,
            now=timezone.now(),
        )


class _FormFields(HTMLParser):
    def __init__(self):
        super().__init__()
        self.action, self.inputs, self.scripts = None, {}, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.action = attrs["action"]
        elif tag == "input":
            self.inputs[attrs["name"]] = attrs.get("value", "")
        elif tag == "script":
            self.scripts += 1


def test_the_embeddable_snippet_is_a_plain_form_that_posts_to_the_hosted_page(form, server):
    parser = _FormFields()
    parser.feed(embed.snippet_html(form=form))
    assert parser.scripts == 0
    assert parser.action == embed.hosted_url(form=form)
    assert set(parser.inputs) == {"form_token", "email", "name", "attr_City", "attr_Company", "website"}
    # Posted from another site: no cookie, no CSRF token.
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR=VISITOR_IP)
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(urlsplit(parser.action).path, {**parser.inputs, "email": "ravi@example.in"})
    assert response.status_code == 200 and "Check your inbox" in response.content.decode()
    server.handler.wait_for(lambda h: len(h.messages) == 1)
