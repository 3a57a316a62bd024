"""The link check's page, fragment and JSON (campaigns.views): the owner's only, the start a CSRF-checked
POST, the results shown in place. The run itself: tests/delivery/test_link_check.py."""

import json

import pytest
from django.test import Client
from django.urls import reverse

from campaigns.models import LinkCheckRun
from delivery import link_check
from tests.factories import CampaignFactory
from tests.http_server import http_server_factory  # noqa: F401  (pytest fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_cooldown(settings):
    settings.LINK_CHECK_COOLDOWN_SECONDS = 0


def page_url(campaign):
    return reverse("campaign_link_checks", args=[campaign.pk])


def status_url(campaign):
    return reverse("campaign_link_checks_status", args=[campaign.pk])


def csrf_client(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def token_of(client, campaign):
    return str(client.get(page_url(campaign)).context["csrf_token"])


def test_another_marketers_campaign_is_a_404_everywhere(marketer, other_client):
    campaign = CampaignFactory(owner=marketer)

    assert other_client.get(page_url(campaign)).status_code == 404
    assert other_client.get(status_url(campaign)).status_code == 404
    assert other_client.get(status_url(campaign) + "?format=json").status_code == 404
    assert other_client.post(page_url(campaign)).status_code == 404
    assert not LinkCheckRun.objects.exists()


def test_a_superuser_sees_any_marketers_check(marketer, superuser_client):
    campaign = CampaignFactory(owner=marketer)

    assert superuser_client.get(page_url(campaign)).status_code == 200


def test_the_page_offers_the_check_before_any_run(marketer, marketer_client):
    campaign = CampaignFactory(owner=marketer, name="Spring news")

    response = marketer_client.get(page_url(campaign))

    page = response.content.decode()
    assert response.status_code == 200
    assert "<h1>Link check</h1>" in page and "<h2>Spring news</h2>" in page
    assert "The links have not been checked yet." in page
    assert ">Check links</button>" in page
    assert 'data-poll="' not in page


def test_a_post_without_the_csrf_token_is_refused_and_starts_nothing(marketer):
    campaign = CampaignFactory(owner=marketer)

    response = csrf_client(marketer).post(page_url(campaign))

    assert response.status_code == 403
    assert not LinkCheckRun.objects.exists()


def test_a_post_starts_a_run_queued_after_commit_and_returns_to_the_page(marketer, django_capture_on_commit_callbacks):
    campaign = CampaignFactory(owner=marketer)
    client = csrf_client(marketer)
    token = token_of(client, campaign)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(page_url(campaign), {"csrfmiddlewaretoken": token, "next": "//evil.example/"})

    assert response.status_code == 302 and response["Location"] == page_url(campaign)
    run = LinkCheckRun.objects.get()
    assert (run.campaign, run.requested_by, run.started_at) == (campaign, marketer, None)
    assert len(callbacks) == 1  # the task is published once the run is committed
    page = client.get(page_url(campaign)).content.decode()
    assert "Waiting for a worker to check the links" in page
    assert 'data-poll="1500"' in page


def test_the_script_gets_the_fragment_back_with_a_refusal_in_it(marketer, settings, django_capture_on_commit_callbacks):
    settings.LINK_CHECK_COOLDOWN_SECONDS = 60
    campaign = CampaignFactory(owner=marketer)
    client = csrf_client(marketer)
    token = token_of(client, campaign)
    headers = {"X-Requested-With": "fetch"}

    with django_capture_on_commit_callbacks(execute=False):
        first = client.post(page_url(campaign), {"csrfmiddlewaretoken": token}, headers=headers)
        second = client.post(page_url(campaign), {"csrfmiddlewaretoken": token}, headers=headers)

    assert first.status_code == 200 and second.status_code == 200
    assert first.content.decode().lstrip().startswith('<section id="link-checks"')
    assert "errornote" not in first.content.decode()
    assert "The links of this campaign were checked 0 s ago: try again in" in second.content.decode()
    assert LinkCheckRun.objects.count() == 1


def test_the_results_show_in_place_and_as_json(marketer, marketer_client, http_server_factory):
    server = http_server_factory()
    campaign = CampaignFactory(
        owner=marketer,
        body_html=f'<a href="{server.url("/ok")}">a</a> <a href="{server.url("/to?url=/missing")}">b</a>',
    )
    run = link_check.request_link_check(campaign=campaign, user=marketer, enqueue=lambda run_id: None)
    link_check.run_link_check(run_id=run.pk)

    fragment = marketer_client.get(status_url(campaign)).content.decode()
    data = json.loads(marketer_client.get(status_url(campaign) + "?format=json").content)

    assert "Checked 2 links on" in fragment and 'data-poll="' not in fragment
    assert f"The link answers 404 Not Found after 1 redirect, at {server.url('/missing')}." in fragment
    assert (data["state"], data["running"], data["counts"]) == ("done", False, {"ok": 1, "warning": 0, "error": 1})
    assert [(r["url"], r["level"], r["status_code"], r["final_url"]) for r in data["results"]] == [
        (server.url("/to?url=/missing"), "error", 404, server.url("/missing")),  # errors first
        (server.url("/ok"), "ok", 200, server.url("/ok")),
    ]


def test_a_plain_post_returns_to_the_page_it_names(marketer, django_capture_on_commit_callbacks):
    campaign = CampaignFactory(owner=marketer)
    client = csrf_client(marketer)
    review = reverse("admin:campaigns_campaign_change", args=[campaign.pk])

    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(page_url(campaign), {"csrfmiddlewaretoken": token_of(client, campaign), "next": review})

    assert response["Location"] == review
