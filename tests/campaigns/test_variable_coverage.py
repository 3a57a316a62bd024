"""Variables some recipients lack: counted in SQL over the contacts' attributes, shown on save, on the
preview and when scheduling; a fallback ({{ City|default:"there" }}) silences the warning."""

import pytest
from django.urls import reverse

from campaigns.selectors import audience, personalization
from contacts.models import Contact
from tests.campaigns.test_personalize import campaign_post
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory, SmtpAccountFactory

pytestmark = pytest.mark.django_db

SUBJECT = "new for {{ City }} in Pune"


@pytest.fixture
def lists(marketer, other_marketer):
    """7 recipients; City is empty or missing for 3 of them (and for others who are not recipients)."""
    with_city = [ContactFactory(owner=marketer, attributes={"City": "Pune", "First Name": "A"}) for _ in range(4)]
    without = [
        ContactFactory(owner=marketer, attributes={"City": ""}),
        ContactFactory(owner=marketer, attributes={"City": None, "First Name": "  "}),
        ContactFactory(owner=marketer, email="no-city@example.org", attributes={"Plan": "gold"}),
    ]
    not_recipients = [
        ContactFactory(owner=marketer, attributes={}, status=Contact.Status.UNSUBSCRIBED),
        ContactFactory(owner=other_marketer, attributes={}),  # mallory's, on alice's list by a superuser
    ]
    first = ContactListFactory(owner=marketer, contacts=[*with_city[:3], *without, *not_recipients])
    second = ContactListFactory(owner=marketer, contacts=[*with_city[2:], without[0]])  # overlaps the first
    return [first, second]


@pytest.fixture
def account(marketer):
    return SmtpAccountFactory(owner=marketer)


def warnings_of(response):
    """The variables' warnings (a short body with the open pixel has its own: tests/campaigns/test_compose_warnings.py)."""
    return [str(m) for m in response.context["messages"] if m.level_tag == "warning" and "open pixel" not in str(m)]


def test_the_count_of_recipients_lacking_each_variable_is_read_in_sql(marketer, lists):
    Contact.objects.filter(email="no-city@example.org").update(name=" ")
    campaign = CampaignFactory(
        owner=marketer,
        lists=lists,
        subject=SUBJECT,
        body_html='<p>{{ name }} {{ First_Name }} {{ Plan|default:"basic" }} {{ email }} {{ unsubscribe_url }}</p>',
    )

    coverage = personalization.variable_coverage(campaign=campaign)

    assert audience.audience_count(campaign=campaign) == 7
    assert coverage.unknown == []
    assert coverage.gaps == [
        personalization.VariableGap(name="City", lacking=3, recipients=7),
        # From the column "First Name"; blank counts as empty.
        personalization.VariableGap(name="First_Name", lacking=3, recipients=7),
        personalization.VariableGap(name="name", lacking=1, recipients=7),
    ]


def test_a_variable_some_recipients_lack_is_flagged_with_its_count_on_save(marketer_client, account, lists):
    response = marketer_client.post(
        "/admin/campaigns/campaign/add/",
        {**campaign_post(account), "lists": [lst.pk for lst in lists], "subject": SUBJECT},
        follow=True,
    )

    assert warnings_of(response) == [
        "{{ City }} is empty or missing for 3 of 7 recipients: they get nothing in its place. "
        'Give it a fallback, like {{ City|default:"there" }}.'
    ]


@pytest.mark.parametrize(
    "subject", ['new for {{ City|default:"you" }} in Pune', "new{% if City %} for {{ City }}{% endif %} in Pune"]
)
def test_a_fallback_or_a_guard_silences_the_warning(marketer_client, account, lists, subject):
    response = marketer_client.post(
        "/admin/campaigns/campaign/add/",
        {**campaign_post(account), "lists": [lst.pk for lst in lists], "subject": subject},
        follow=True,
    )

    assert warnings_of(response) == []


def test_a_variable_no_recipient_has_keeps_its_spelling_warning_even_with_a_fallback(marketer, lists):
    campaign = CampaignFactory(owner=marketer, lists=lists, subject='new for {{ Ctiy|default:"you" }}')

    coverage = personalization.variable_coverage(campaign=campaign)

    assert (coverage.unknown, coverage.gaps) == (["Ctiy"], [])


def test_the_preview_shows_the_count(marketer_client, marketer, lists):
    campaign = CampaignFactory(owner=marketer, lists=lists, subject=SUBJECT)

    page = marketer_client.get(reverse("admin:campaigns_campaign_preview", args=[campaign.pk])).content.decode()

    assert "{{ City }} is empty or missing for 3 of 7 recipients" in page


def test_scheduling_warns_with_the_count(marketer_client, marketer, lists):
    campaign = CampaignFactory(owner=marketer, name="Pune news", lists=lists, subject=SUBJECT)

    response = marketer_client.post(
        reverse("admin:campaigns_campaign_changelist"),
        {"action": "schedule", "_selected_action": [campaign.pk], "post": "yes"},
        follow=True,
    )

    assert any(
        w.startswith("Pune news: {{ City }} is empty or missing for 3 of 7 recipients") for w in warnings_of(response)
    )
