"""The segment's admin pages: the form and its condition rows round trip, the errors it says, the live count
view (login, CSRF, owner scoping), the changelist's counts; and a campaign's segments on its form."""

import pytest
from django.test import Client
from django.urls import reverse

from campaigns.models import Campaign, Segment, SegmentCondition
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory, SegmentFactory

pytestmark = pytest.mark.django_db

F, O = SegmentCondition.Field, SegmentCondition.Operator
ADD = reverse("admin:campaigns_segment_add")
CHANGELIST = reverse("admin:campaigns_segment_changelist")
COUNT = reverse("admin:campaigns_segment_count")


def segment_data(*rows, name="Pune readers", match="all", initial=0, **extra):
    """The segment form's POST: its fields and the conditions inline's management form and rows."""
    data = {
        "name": name,
        "description": "",
        "match": match,
        "conditions-TOTAL_FORMS": str(len(rows)),
        "conditions-INITIAL_FORMS": str(initial),
        "conditions-MIN_NUM_FORMS": "1",
        "conditions-MAX_NUM_FORMS": "1000",
        **extra,
    }
    for n, row in enumerate(rows):
        for key, value in row.items():
            data[f"conditions-{n}-{key}"] = value
    return data


def row(field, operator, **values):
    return {
        "field": field,
        "operator": operator,
        "attribute": "",
        "value": "",
        "contact_status": "",
        "contact_list": "",
        "campaign": "",
        **values,
    }


@pytest.fixture
def contacts(marketer, other_marketer):
    for n, city in enumerate(["Pune", "Pune", "Mumbai"]):
        ContactFactory(owner=marketer, email=f"c{n}@example.org", attributes={"City": city, "Age": str(30 + n)})
    ContactFactory(owner=marketer, email="gone@example.org", attributes={"City": "Pune"}, status="unsubscribed")
    ContactFactory(owner=other_marketer, email="theirs@example.org", attributes={"City": "Pune"})


def test_the_add_form_shows_the_conditions_and_the_live_count(marketer_client):
    page = marketer_client.get(ADD).content.decode()

    assert 'id="segment-count"' in page and f'data-url="{COUNT}"' in page
    assert "js/segment_form.js" in page
    assert 'name="conditions-0-field"' in page and 'name="conditions-0-operator"' in page
    assert 'name="owner"' not in page


def test_a_segment_and_its_conditions_round_trip(marketer_client, marketer, contacts):
    vips = ContactListFactory(owner=marketer, name="VIPs")
    response = marketer_client.post(
        ADD,
        segment_data(
            row(F.ATTRIBUTE, O.EQUALS, attribute="City", value="Pune"),
            row(F.LIST, O.NOT_ON_LIST, contact_list=vips.pk),
            row(F.ACTIVITY, O.NOT_OPENED_IN_LAST_DAYS, value="30"),
        ),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    segment = Segment.objects.get(name="Pune readers")
    assert segment.owner == marketer
    assert [str(c) for c in segment.conditions.all()] == [
        "City equals “Pune”",
        "is not on the list “VIPs”",
        "opened no campaign in the last 30 days",
    ]

    change = reverse("admin:campaigns_segment_change", args=[segment.pk])
    page = marketer_client.get(change).content.decode()
    assert (
        'value="Pune"' in page and f'data-url="{reverse("admin:campaigns_segment_count", args=[segment.pk])}"' in page
    )
    first, second, third = segment.conditions.all()
    response = marketer_client.post(
        change,
        segment_data(
            {**row(F.ATTRIBUTE, O.CONTAINS, attribute="City", value="un"), "id": first.pk, "segment": segment.pk},
            {
                **row(F.LIST, O.NOT_ON_LIST, contact_list=vips.pk),
                "id": second.pk,
                "segment": segment.pk,
                "DELETE": "on",
            },
            {**row(F.ACTIVITY, O.NOT_OPENED_IN_LAST_DAYS, value="30"), "id": third.pk, "segment": segment.pk},
            match="any",
            initial=3,
        ),
    )
    assert response.status_code == 302, response.context["inline_admin_formsets"][0].formset.errors
    segment.refresh_from_db()
    assert segment.match == "any"
    assert [str(c) for c in segment.conditions.all()] == [
        "City contains “un”",
        "opened no campaign in the last 30 days",
    ]


def test_the_form_says_what_is_wrong_with_a_condition(marketer_client, other_marketer):
    theirs = ContactListFactory(owner=other_marketer, name="Mallory's list")
    response = marketer_client.post(
        ADD,
        segment_data(
            row(F.ATTRIBUTE, O.NUMBER_GT, attribute="Age", value="forty"),
            row(F.CREATED, O.DATE_AFTER, value="2026-02-30"),
            row(F.LIST, O.ON_LIST, contact_list=theirs.pk),
            row(F.STATUS, O.CONTAINS, contact_status="subscribed", value="x"),
        ),
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "“forty” is not a number (write it like 12 or 3.5)." in page
    assert "“2026-02-30” is not a date: write it like 2026-12-31." in page
    assert "Select a valid choice" in page  # another owner's list is no choice of hers
    assert "“contains” does not apply to status; choose one of: is, is not." in page
    assert "Mallory" not in page
    assert not Segment.objects.exists()


def test_a_segment_needs_a_condition(marketer_client):
    response = marketer_client.post(ADD, segment_data(row("", "")))

    assert response.status_code == 200 and not Segment.objects.exists()


# --- the live count ----------------------------------------------------------------------------------


def test_the_live_count_follows_the_form_as_posted(marketer_client, contacts):
    data = segment_data(row(F.ATTRIBUTE, O.EQUALS, attribute="City", value="pune"))

    response = marketer_client.post(COUNT, data)

    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    assert response.json() == {"matching": 3, "subscribed": 2}  # not Mallory's Pune contact
    data = segment_data(
        row(F.ATTRIBUTE, O.EQUALS, attribute="City", value="pune"),
        row(F.ATTRIBUTE, O.NUMBER_GT, attribute="Age", value="30"),
        match="all",
    )
    assert marketer_client.post(COUNT, data).json() == {"matching": 1, "subscribed": 1}
    data["match"] = "any"
    assert marketer_client.post(COUNT, data).json() == {"matching": 4, "subscribed": 3}


def test_the_live_count_says_what_it_cannot_count_yet(marketer_client, contacts):
    data = segment_data(row(F.ATTRIBUTE, O.NUMBER_GT, attribute="Age", value="thirty"))

    assert marketer_client.post(COUNT, data).json() == {
        "errors": ["Condition 1: “thirty” is not a number (write it like 12 or 3.5)."]
    }


def test_the_live_count_of_a_saved_segment_reads_the_edited_rows(marketer_client, marketer, contacts):
    segment = SegmentFactory(
        owner=marketer, conditions=[{"field": F.ATTRIBUTE, "attribute": "City", "operator": O.EQUALS, "value": "Pune"}]
    )
    condition = segment.conditions.get()
    url = reverse("admin:campaigns_segment_count", args=[segment.pk])
    data = segment_data(
        {**row(F.ATTRIBUTE, O.EQUALS, attribute="City", value="Mumbai"), "id": condition.pk, "segment": segment.pk},
        initial=1,
    )

    assert marketer_client.post(url, data).json() == {"matching": 1, "subscribed": 1}
    assert segment.conditions.get().value == "Pune"  # counting saves nothing


def test_the_live_count_is_for_logged_in_staff_with_the_csrf_token(marketer, contacts):
    data = segment_data(row(F.ATTRIBUTE, O.EQUALS, attribute="City", value="Pune"))
    anonymous = Client()
    response = anonymous.post(COUNT, data)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(marketer)
    assert strict.post(COUNT, data).status_code == 403
    page = strict.get(ADD)
    token = page.cookies["csrftoken"].value
    assert strict.post(COUNT, {**data, "csrfmiddlewaretoken": token}).json() == {"matching": 3, "subscribed": 2}
    assert strict.get(COUNT).status_code == 405


def test_the_live_count_never_reaches_another_owners_segment_list_or_campaign(
    marketer, other_client, other_marketer, contacts
):
    alices = SegmentFactory(
        owner=marketer, conditions=[{"field": F.ATTRIBUTE, "attribute": "City", "operator": O.IS_NOT_EMPTY}]
    )
    assert (
        other_client.post(reverse("admin:campaigns_segment_count", args=[alices.pk]), segment_data()).status_code == 404
    )
    alice_list = ContactListFactory(owner=marketer)
    alice_campaign = CampaignFactory(owner=marketer)

    answer = other_client.post(
        COUNT,
        segment_data(
            row(F.LIST, O.ON_LIST, contact_list=alice_list.pk), row(F.CAMPAIGN, O.OPENED, campaign=alice_campaign.pk)
        ),
    ).json()
    assert len(answer["errors"]) == 2 and all("Select a valid choice" in e for e in answer["errors"])
    # Mallory's own count counts her own contacts only.
    assert other_client.post(
        COUNT, segment_data(row(F.ATTRIBUTE, O.EQUALS, attribute="City", value="Pune"))
    ).json() == {"matching": 1, "subscribed": 1}


# --- the changelist --------------------------------------------------------------------------------


def test_the_changelist_counts_each_segment(marketer_client, marketer, other_marketer, contacts):
    SegmentFactory(
        owner=marketer,
        name="Pune",
        conditions=[{"field": F.ATTRIBUTE, "attribute": "City", "operator": O.EQUALS, "value": "Pune"}],
    )
    SegmentFactory(owner=other_marketer, name="Mallory's segment")

    response = marketer_client.get(CHANGELIST)

    page = response.content.decode()
    assert "Mallory" not in page
    [segment] = response.context["cl"].result_list
    assert (segment.matching, segment.subscribed) == (3, 2)
    assert "City equals “Pune”" in page
    assert '<td class="field-matching_count">3</td>' in page
    assert '<td class="field-subscribed_count">2</td>' in page


# --- campaigns ----------------------------------------------------------------------------------------


def test_a_campaigns_form_offers_only_the_owners_segments(marketer_client, marketer, other_marketer):
    mine = SegmentFactory(owner=marketer, name="Mine")
    SegmentFactory(owner=other_marketer, name="Theirs")

    form = marketer_client.get(reverse("admin:campaigns_campaign_add")).context["adminform"].form

    assert list(form.fields["segments"].queryset) == [mine]


def test_a_campaign_to_a_segment_says_who_it_would_go_to(marketer_client, marketer, contacts):
    segment = SegmentFactory(
        owner=marketer, conditions=[{"field": F.ATTRIBUTE, "attribute": "City", "operator": O.EQUALS, "value": "Pune"}]
    )
    campaign = CampaignFactory(owner=marketer, segments=[segment])

    page = marketer_client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk])).content.decode()

    assert "Would go to 2 recipient(s): the subscribed contacts of its lists and segments, each address once." in page


def test_a_campaign_cannot_be_given_another_owners_segment(other_client, marketer, other_marketer):
    alices = SegmentFactory(owner=marketer, name="Alice's segment")
    data = {
        "name": "Mallory's",
        "subject": "Hi",
        "body_html": "<p>Hi</p>",
        "body_text": "",
        "track_opens": "on",
        "scheduled_at_0": "",
        "scheduled_at_1": "",
        "segments": [alices.pk],
    }

    response = other_client.post(reverse("admin:campaigns_campaign_add"), data)

    assert response.status_code == 200
    assert "segments" in response.context["adminform"].form.errors
    assert not Campaign.objects.filter(name="Mallory's").exists()
