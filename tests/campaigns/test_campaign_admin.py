"""The campaign changelist's figures (recipients, sent, failed) come from the tallies, never the email rows."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from campaigns.models import Campaign, Email
from tests.factories import (
    CampaignFactory,
    ContactFactory,
    ContactListFactory,
    EmailFactory,
    SmtpAccountFactory,
)

pytestmark = pytest.mark.django_db

S = Email.Status
F = Email.FailureClass
CAMPAIGNS = reverse("admin:campaigns_campaign_changelist")
# Quoted, as Django writes table names: campaigns_emailtemplate is another table.
EMAIL_TABLE = re.compile(r'"campaigns_email"')


def add_emails(campaign, statuses):
    for n, (status, failure_class) in enumerate(statuses):
        EmailFactory(
            campaign=campaign, to_email=f"r{n}-c{campaign.pk}@example.org", status=status, failure_class=failure_class
        )


@pytest.fixture
def campaigns(marketer):
    busy = CampaignFactory(owner=marketer, name="Busy", status=Campaign.Status.SENDING)
    add_emails(
        busy,
        [(S.SENT, "")] * 3
        + [(S.PENDING, ""), (S.QUEUED, ""), (S.DEFERRED, "")]
        + [(S.FAILED, F.BOUNCED), (S.FAILED, F.THROTTLED), (S.CANCELLED, "")],
    )
    quiet = CampaignFactory(owner=marketer, name="Quiet", status=Campaign.Status.COMPLETED)
    add_emails(quiet, [(S.SENT, ""), (S.FAILED, F.REJECTED)])
    empty = CampaignFactory(owner=marketer, name="Empty")
    return busy, quiet, empty


def cells(response, campaign):
    """The (recipients, sent, failed) cells of the campaign's changelist row, as text."""
    row = next(r for r in response.content.decode().split("<tr") if f"/{campaign.pk}/change/" in r)
    return tuple(
        re.sub(r"<[^>]+>", "", re.search(rf'<td class="field-{name}">(.*?)</td>', row).group(1))
        for name in ("recipient_count", "sent_count", "failed_count")
    )


def test_the_changelist_shows_each_campaigns_counts_without_reading_the_email_table(marketer_client, campaigns):
    busy, quiet, empty = campaigns
    with CaptureQueriesContext(connection) as queries:
        response = marketer_client.get(CAMPAIGNS)
    assert response.status_code == 200
    assert cells(response, busy) == ("9", "3", "2")
    assert cells(response, quiet) == ("2", "1", "1")
    assert cells(response, empty) == ("—", "0", "0")
    reading_emails = [q["sql"] for q in queries.captured_queries if EMAIL_TABLE.search(q["sql"])]
    assert reading_emails == []


@pytest.mark.parametrize("column, expected", [("5", ["Empty", "Quiet", "Busy"]), ("-6", ["Busy", "Quiet", "Empty"])])
def test_the_changelist_sorts_by_a_count(marketer_client, campaigns, column, expected):
    response = marketer_client.get(CAMPAIGNS, {"o": column})
    assert [c.name for c in response.context["cl"].result_list] == expected


def test_the_change_form_links_to_the_recipients_with_their_count_from_the_tallies(marketer_client, campaigns):
    busy = campaigns[0]
    response = marketer_client.get(reverse("admin:campaigns_campaign_change", args=[busy.pk]))
    assert f'?campaign__id__exact={busy.pk}">9 recipient(s)</a>' in response.content.decode()


def test_a_draft_shows_no_zero_recipients_but_a_hint_that_its_page_counts_them(marketer_client, marketer):
    contact_list = ContactListFactory(owner=marketer, contacts=ContactFactory.create_batch(3, owner=marketer))
    draft = CampaignFactory(owner=marketer, name="Draft", lists=[contact_list])

    listed = marketer_client.get(CAMPAIGNS)
    page = marketer_client.get(reverse("admin:campaigns_campaign_change", args=[draft.pk]))

    assert cells(listed, draft)[0] == "—"
    assert "Not started yet: its page counts who it would go to." in listed.content.decode()
    assert "Would go to 3 recipient(s)" in page.content.decode()


def test_the_smtp_account_is_spelled_smtp_on_the_list_and_the_form(marketer_client, marketer):
    SmtpAccountFactory(owner=marketer)
    pages = [marketer_client.get(CAMPAIGNS), marketer_client.get(reverse("admin:campaigns_campaign_add"))]

    for page in pages:
        text = page.content.decode()
        assert "SMTP account" in text
        assert "Smtp account" not in text and "smtp account" not in text.replace("SMTP account", "")


def test_a_new_campaign_preselects_the_only_smtp_account(marketer_client, marketer, other_marketer):
    account = SmtpAccountFactory(owner=marketer)
    SmtpAccountFactory(owner=other_marketer)

    form = marketer_client.get(reverse("admin:campaigns_campaign_add")).context["adminform"].form

    assert form.initial["smtp_account"] == account.pk


def test_with_two_smtp_accounts_none_is_preselected(marketer_client, marketer):
    SmtpAccountFactory.create_batch(2, owner=marketer)

    form = marketer_client.get(reverse("admin:campaigns_campaign_add")).context["adminform"].form

    assert "smtp_account" not in form.initial


def test_the_email_list_cuts_a_long_campaign_name_but_keeps_it_whole_in_its_title(marketer_client, marketer):
    name = "Quarterly newsletter: product updates, customer stories, upcoming webinars and the partner programme"
    EmailFactory(campaign=CampaignFactory(owner=marketer, name=name))

    page = marketer_client.get(reverse("admin:campaigns_email_changelist")).content.decode()

    assert f'<td class="field-campaign_name"><span title="{name}">{name}</span></td>' in page
