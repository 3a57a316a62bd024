"""A campaign's link check (delivery.link_check), run in this process against a real HTTP server, and read
back as pre-flight checks (campaigns.selectors.link_checks). The worker's side: tests/e2e/test_link_check_worker.py."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from campaigns.models import LinkCheckResult, LinkCheckRun
from campaigns.selectors import link_checks
from campaigns.selectors.link_checks import Check
from delivery import link_check
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory
from tests.http_server import http_server_factory  # noqa: F401  (pytest fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_cooldown(settings):
    settings.LINK_CHECK_COOLDOWN_SECONDS = 0


@pytest.fixture
def server(http_server_factory):
    return http_server_factory()


def campaign_with(marketer, html, text="", contacts=()):
    audience = ContactListFactory(owner=marketer, contacts=list(contacts))
    return CampaignFactory(owner=marketer, body_html=html, body_text=text, lists=[audience])


def start(campaign, user=None):
    queued = []
    run = link_check.request_link_check(campaign=campaign, user=user, enqueue=queued.append)
    assert queued == [run.pk]
    return run


def results_of(run):
    return {r.url: (r.level, r.status_code) for r in LinkCheckResult.objects.filter(run=run)}


def test_the_links_are_those_tracking_rewrites_and_the_text_parts(marketer, server, settings):
    contact = ContactFactory(owner=marketer, email="ann@example.org", attributes={"City": "Pune"})
    html = (
        f'<p><a href="{server.url("/ok")}">ok</a> <a href="mailto:us@example.com">mail</a> '
        '<a href="tel:+911234">call</a> <a href="#top">top</a> <a href="{{ unsubscribe_url }}">unsub</a> '
        f'<a href="{settings.SITE_URL}/t/u/preview/">ours</a> '
        f'<a href="{server.url("/ok")}">the same again</a> '
        f'<a href="{server.url("/city")}?c={{{{ City }}}}">in your city</a></p>'
    )
    text = f"Hello. Read {server.url('/chain/1')}. Or write to mailto:us@example.com.\n{{{{ unsubscribe_url }}}}"
    campaign = campaign_with(marketer, html, text, contacts=[contact])

    found = link_check.links_of(campaign=campaign)

    assert [(link.url, link.personalized) for link in found.links] == [
        (server.url("/ok"), False),
        (server.url("/city?c=Pune"), True),
        (server.url("/chain/1"), False),
    ]
    assert found.sample_recipient == "ann@example.org"


def test_a_run_records_each_link_and_the_checks_say_what_blocks(marketer, server):
    contact = ContactFactory(owner=marketer, email="ann@example.org", attributes={"City": "Pune"})
    campaign = campaign_with(
        marketer,
        f'<a href="{server.url("/ok")}">a</a> <a href="{server.url("/missing")}">b</a> '
        f'<a href="{server.url("/chain/2")}">c</a> <a href="{server.url("/limited")}">d</a> '
        f'<a href="{server.url("/to")}?url={{{{ City }}}}">e</a>',
        contacts=[contact],
    )
    run = start(campaign)

    done = link_check.run_link_check(run_id=run.pk)

    assert done.finished_at is not None and done.error == ""
    assert (done.urls_found, done.sample_recipient) == (5, "ann@example.org")
    assert results_of(run) == {
        server.url("/ok"): ("ok", 200),
        server.url("/missing"): ("error", 404),
        server.url("/chain/2"): ("ok", 200),
        server.url("/limited"): ("warning", 429),
        server.url("/to?url=Pune"): ("ok", 200),  # a relative redirect to /Pune, which answers 200
    }
    assert link_checks.checks(campaign=campaign, now=timezone.now()) == [
        Check("link_error", "error", f"{server.url('/missing')}: The link answers 404 Not Found."),
        Check(
            "link_warning",
            "warning",
            f"{server.url('/limited')}: The site answers 429 Too Many Requests: it limits automated requests. "
            "Open the link yourself.",
        ),
    ]


def test_before_any_run_and_while_one_runs_the_checks_ask_for_patience(marketer, server):
    campaign = campaign_with(marketer, f'<a href="{server.url("/ok")}">a</a>')
    now = timezone.now()

    assert link_checks.checks(campaign=campaign, now=now) == [
        Check("links_not_checked", "warning", "The links have not been checked.")
    ]
    start(campaign)
    assert link_checks.checks(campaign=campaign, now=timezone.now()) == [
        Check("links_checking", "warning", "The links are still being checked.")
    ]


def test_a_change_to_the_campaign_after_the_run_makes_it_stale(marketer, server):
    campaign = campaign_with(marketer, f'<a href="{server.url("/ok")}">a</a>')
    link_check.run_link_check(run_id=start(campaign).pk)
    assert link_checks.checks(campaign=campaign, now=timezone.now()) == []

    campaign.body_html += " more"
    campaign.save()

    assert [c.code for c in link_checks.checks(campaign=campaign, now=timezone.now())] == ["links_stale"]


def test_a_campaign_that_does_not_render_says_so(marketer):
    campaign = campaign_with(marketer, "<p>{% if %}</p>")
    run = start(campaign)

    link_check.run_link_check(run_id=run.pk)

    state = link_checks.link_check_state(campaign=campaign, now=timezone.now())
    assert state.state == "failed"
    assert state.run.error.startswith("The message does not render: ")
    (check,) = link_checks.checks(campaign=campaign, now=timezone.now())
    assert check.code == "links_not_checked" and "does not render" in check.message


def test_a_redelivered_task_checks_nothing_twice(marketer, server):
    campaign = campaign_with(marketer, f'<a href="{server.url("/ok")}">a</a>')
    run = start(campaign)

    assert link_check.run_link_check(run_id=run.pk) is not None
    assert link_check.run_link_check(run_id=run.pk) is None
    assert server.paths() == ["/ok"]


def test_a_new_request_supersedes_the_open_run_whose_worker_then_checks_nothing(marketer, server):
    campaign = campaign_with(marketer, f'<a href="{server.url("/ok")}">a</a>')
    first = start(campaign)
    second = start(campaign)

    first.refresh_from_db()
    assert first.superseded_at is not None
    assert link_check.run_link_check(run_id=first.pk) is None
    assert server.requests == []
    assert link_check.run_link_check(run_id=second.pk).urls_found == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_run_superseded_while_it_checks_stops_before_its_next_link(marketer, server, settings):
    settings.LINK_CHECK_CONCURRENCY = 1
    campaign = campaign_with(marketer, f'<a href="{server.url("/slow")}">a</a> <a href="{server.url("/ok")}">b</a>')
    first = start(campaign)

    def work():
        try:
            link_check.run_link_check(run_id=first.pk)
        finally:
            connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while server.paths() != ["/slow"]:
            assert time.monotonic() < deadline, "the first link was never asked"
            time.sleep(0.02)
        start(campaign)
    finally:
        server.release()
        worker.join(60)

    assert server.paths() == ["/slow"]  # the second link was never asked by the superseded run
    assert list(LinkCheckResult.objects.filter(run=first).values_list("url", flat=True)) == [server.url("/slow")]


def test_a_new_run_waits_for_the_cooldown(marketer, settings):
    settings.LINK_CHECK_COOLDOWN_SECONDS = 60
    campaign = campaign_with(marketer, "<p>no links</p>")
    start(campaign)

    with pytest.raises(link_check.LinkCheckRefused, match=r"checked 0 s ago: try again in (60|59) s"):
        start(campaign)
    assert LinkCheckRun.objects.filter(campaign=campaign).count() == 1

    LinkCheckRun.objects.update(requested_at=timezone.now() - timedelta(seconds=61))
    start(campaign)
    assert LinkCheckRun.objects.filter(campaign=campaign).count() == 2


def test_the_database_keeps_one_open_run_per_campaign(marketer):
    campaign = campaign_with(marketer, "<p>no links</p>")
    start(campaign)

    with pytest.raises(IntegrityError), transaction.atomic():
        LinkCheckRun.objects.create(campaign=campaign, requested_at=timezone.now())


def test_a_run_the_broker_never_got_says_so(marketer):
    campaign = campaign_with(marketer, "<p>no links</p>")
    run = start(campaign)

    link_check.record_not_queued(run_id=run.pk, error=ConnectionError("broker down"))

    state = link_checks.link_check_state(campaign=campaign, now=timezone.now())
    assert state.state == "failed"
    assert state.run.error == "The link check could not be queued: broker down"


def test_a_run_no_worker_took_is_shown_as_lost_after_a_while(marketer):
    campaign = campaign_with(marketer, "<p>no links</p>")
    start(campaign)

    later = timezone.now() + link_checks.UNTAKEN_PATIENCE + timedelta(seconds=1)
    assert link_checks.link_check_state(campaign=campaign, now=later).state == "lost"
