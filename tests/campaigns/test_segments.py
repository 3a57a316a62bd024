"""Segments: every condition compiled to SQL and run on the real database, the
rules a condition row is checked by, owner isolation, and a campaign to lists and segments materialising
each address once with the same one-statement insert."""

from datetime import date, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from campaigns import ledger
from campaigns.models import Campaign, Email, Segment, SegmentCondition
from campaigns.selectors import audience, segments
from campaigns.services import lifecycle
from contacts.models import Contact
from contacts.services import contacts as contact_service
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory, EmailFactory, SegmentFactory

pytestmark = pytest.mark.django_db

F, O = SegmentCondition.Field, SegmentCondition.Operator
NOW = timezone.now()


@pytest.fixture
def people(marketer, other_marketer):
    """Alice's contacts, each with attributes the conditions tell apart; and one of Mallory's, matching everything."""
    made = {
        "pune": ContactFactory(
            owner=marketer,
            email="pune@example.org",
            attributes={"City": "Pune", "Age": "34", "Joined": "2025-03-10", "Score": 7.5},
        ),
        "mumbai": ContactFactory(
            owner=marketer,
            email="mumbai@example.org",
            attributes={"City": "Mumbai", "Age": "n/a", "Joined": "soon", "Score": "high"},
        ),
        "blank": ContactFactory(
            owner=marketer, email="blank@example.org", attributes={"City": "  ", "Age": " 19 ", "Joined": "2026-02-31"}
        ),
        "none": ContactFactory(owner=marketer, email="none@example.org", attributes={"City": None}),
        "bounced": ContactFactory(
            owner=marketer,
            email="bounced@example.org",
            status=Contact.Status.BOUNCED,
            attributes={"City": "pune", "Age": "61", "Joined": "2024-12-31T09:00:00"},
        ),
    }
    ContactFactory(
        owner=other_marketer,
        email="mallory@example.org",
        attributes={"City": "Pune", "Age": "34", "Joined": "2025-03-10", "Score": 7.5},
    )
    return made


def matched(owner, *conditions, match=Segment.Match.ALL, now=NOW):
    rows = [SegmentCondition(**values) for values in conditions]
    found = segments.contacts_matching_conditions(owner_id=owner.pk, match=match, conditions=rows, now=now)
    return {address.split("@")[0] for address in found.values_list("email", flat=True)}


def attribute(name, operator, value=""):
    return {"field": F.ATTRIBUTE, "attribute": name, "operator": operator, "value": value}


@pytest.mark.parametrize(
    "condition, expected",
    [
        (attribute("City", O.EQUALS, "PUNE"), {"pune", "bounced"}),  # case does not matter
        (attribute("City", O.NOT_EQUALS, "Pune"), {"mumbai", "blank", "none"}),  # a missing value is not Pune
        (attribute("City", O.CONTAINS, "um"), {"mumbai"}),
        (attribute("City", O.NOT_CONTAINS, "UN"), {"mumbai", "blank", "none"}),
        (attribute("City", O.IS_EMPTY), {"blank", "none"}),  # blank, JSON null
        (attribute("Plan", O.IS_EMPTY), {"pune", "mumbai", "blank", "none", "bounced"}),  # nobody has it
        (attribute("City", O.IS_NOT_EMPTY), {"pune", "mumbai", "bounced"}),
        (attribute("Age", O.NUMBER_EQUALS, "34"), {"pune"}),
        (attribute("Age", O.NUMBER_LT, "34"), {"blank"}),  # " 19 ", trimmed; "n/a" is no number and matches nothing
        (attribute("Age", O.NUMBER_LTE, "34.0"), {"pune", "blank"}),
        (attribute("Age", O.NUMBER_GT, "34"), {"bounced"}),
        (attribute("Age", O.NUMBER_GTE, "34"), {"pune", "bounced"}),
        (attribute("Score", O.NUMBER_GT, "7"), {"pune"}),  # a JSON number; "high" is none
        (attribute("Joined", O.DATE_BEFORE, "2025-01-01"), {"bounced"}),  # a date and time: its date
        (attribute("Joined", O.DATE_ON, "2025-03-10"), {"pune"}),
        # "soon" is no date; a date written YYYY-MM-DD is compared as written, so 2026-02-31 (no such day)
        # sorts after 2025-06-01 instead of failing the whole query.
        (attribute("Joined", O.DATE_AFTER, "2025-06-01"), {"blank"}),
    ],
    ids=lambda v: v["operator"] + ":" + v["attribute"] if isinstance(v, dict) else None,
)
def test_every_attribute_operator(people, marketer, condition, expected):
    assert matched(marketer, condition) == expected


@pytest.mark.parametrize(
    "operator, expected",
    [
        (O.IS, {"pune", "mumbai", "blank", "none"}),
        (O.IS_NOT, {"bounced"}),
    ],
)
def test_status(people, marketer, operator, expected):
    assert matched(marketer, {"field": F.STATUS, "operator": operator, "contact_status": "subscribed"}) == expected


def test_list_membership_is_on_and_is_not_on(people, marketer):
    vips = ContactListFactory(owner=marketer, contacts=[people["pune"], people["bounced"]])

    assert matched(marketer, {"field": F.LIST, "operator": O.ON_LIST, "contact_list": vips}) == {"pune", "bounced"}
    assert matched(marketer, {"field": F.LIST, "operator": O.NOT_ON_LIST, "contact_list": vips}) == {
        "mumbai",
        "blank",
        "none",
    }


@pytest.fixture
def engagement(people, marketer):
    """Alice's sent campaign: pune opened and clicked it, mumbai opened it, blank got it and did not open it
    (a machine open only), none's email failed; bounced opened another campaign 40 days ago."""
    campaign = CampaignFactory(owner=marketer, name="Spring", status=Campaign.Status.COMPLETED)
    sent = {"status": Email.Status.SENT, "sent_at": NOW - timedelta(days=3)}
    EmailFactory(
        campaign=campaign,
        contact=people["pune"],
        first_opened_at=NOW - timedelta(days=2),
        open_count=2,
        first_clicked_at=NOW - timedelta(days=2),
        click_count=1,
        **sent,
    )
    EmailFactory(
        campaign=campaign, contact=people["mumbai"], first_opened_at=NOW - timedelta(days=1), open_count=1, **sent
    )
    EmailFactory(campaign=campaign, contact=people["blank"], machine_open=True, **sent)
    EmailFactory(campaign=campaign, contact=people["none"], status=Email.Status.FAILED)
    older = CampaignFactory(owner=marketer, name="Winter", status=Campaign.Status.COMPLETED)
    EmailFactory(
        campaign=older,
        contact=people["bounced"],
        status=Email.Status.SENT,
        sent_at=NOW - timedelta(days=41),
        first_opened_at=NOW - timedelta(days=40),
        open_count=1,
    )
    return campaign


@pytest.mark.parametrize(
    "operator, expected",
    [
        (O.OPENED, {"pune", "mumbai"}),
        (O.CLICKED, {"pune"}),
        (O.NOT_OPENED, {"blank"}),  # sent and no reader's open: a machine open is none; a failed email was not received
    ],
)
def test_engagement_with_a_campaign(engagement, marketer, operator, expected):
    assert matched(marketer, {"field": F.CAMPAIGN, "operator": operator, "campaign": engagement}) == expected


@pytest.mark.parametrize(
    "operator, days, expected",
    [
        (O.OPENED_IN_LAST_DAYS, "30", {"pune", "mumbai"}),
        (O.OPENED_IN_LAST_DAYS, "45", {"pune", "mumbai", "bounced"}),
        (O.NOT_OPENED_IN_LAST_DAYS, "30", {"blank", "none", "bounced"}),
    ],
)
def test_opened_anything_in_the_last_days(engagement, marketer, operator, days, expected):
    assert matched(marketer, {"field": F.ACTIVITY, "operator": operator, "value": days}) == expected


def test_the_last_days_are_counted_from_the_time_given(engagement, marketer):
    condition = {"field": F.ACTIVITY, "operator": O.OPENED_IN_LAST_DAYS, "value": "1"}

    assert matched(marketer, condition) == {"mumbai"}
    assert matched(marketer, condition, now=NOW - timedelta(days=1)) == {"pune", "mumbai"}


@pytest.fixture
def added_on_days(people, marketer):
    """Created at 2026-03-09 23:30, 2026-03-10 00:30 and 2026-03-10 23:59 in Alice's zone (Asia/Kolkata), and now."""
    from zoneinfo import ZoneInfo

    kolkata = ZoneInfo("Asia/Kolkata")
    assert marketer.timezone == "Asia/Kolkata"
    for name, at in [
        ("pune", datetime(2026, 3, 9, 23, 30, tzinfo=kolkata)),
        ("mumbai", datetime(2026, 3, 10, 0, 30, tzinfo=kolkata)),
        ("blank", datetime(2026, 3, 10, 23, 59, tzinfo=kolkata)),
        ("none", NOW - timedelta(days=2)),
        ("bounced", NOW - timedelta(days=2)),
    ]:
        Contact.objects.filter(pk=people[name].pk).update(created_at=at)


@pytest.mark.parametrize(
    "operator, value, expected",
    [
        # The owner's own days: 2026-03-10 00:30 IST is 2026-03-09 19:00 UTC, and still the 10th.
        (O.DATE_BEFORE, "2026-03-10", {"pune"}),
        (O.DATE_ON, "2026-03-10", {"mumbai", "blank"}),
        (O.DATE_AFTER, "2026-03-09", {"mumbai", "blank", "none", "bounced"}),
        (O.IN_LAST_DAYS, "7", {"none", "bounced"}),
    ],
)
def test_date_added(added_on_days, marketer, operator, value, expected):
    assert matched(marketer, {"field": F.CREATED, "operator": operator, "value": value}) == expected


def test_all_and_any_of_the_conditions(people, marketer):
    pune = attribute("City", O.EQUALS, "Pune")
    young = attribute("Age", O.NUMBER_LT, "40")

    assert matched(marketer, pune, young) == {"pune"}
    assert matched(marketer, pune, young, match=Segment.Match.ANY) == {"pune", "blank", "bounced"}


def test_no_condition_matches_every_contact_of_the_owner_and_no_one_else(people, marketer):
    assert matched(marketer) == {"pune", "mumbai", "blank", "none", "bounced"}


def test_another_owners_list_or_campaign_matches_nobody_even_if_stored(people, marketer, other_marketer):
    # Refused on save (below); should one be stored anyway (a superuser's mistake), it reaches none of
    # Mallory's list members and none of her campaign's recipients.
    mallory_list = ContactListFactory(owner=other_marketer, contacts=[people["pune"]])
    mallory_campaign = CampaignFactory(owner=other_marketer)
    EmailFactory(
        campaign=mallory_campaign, contact=people["pune"], status=Email.Status.SENT, first_opened_at=NOW, click_count=1
    )

    assert matched(marketer, {"field": F.LIST, "operator": O.ON_LIST, "contact_list": mallory_list}) == set()
    for operator in (O.OPENED, O.CLICKED):
        assert matched(marketer, {"field": F.CAMPAIGN, "operator": operator, "campaign": mallory_campaign}) == set()


def test_a_stored_value_that_no_longer_reads_matches_nobody(people, marketer):
    assert matched(marketer, attribute("Age", O.NUMBER_LT, "many")) == set()
    assert matched(marketer, {"field": F.CREATED, "operator": O.DATE_ON, "value": "31/01/2026"}) == set()


def test_a_campaign_to_a_segment_whose_value_no_longer_reads_starts_and_sends_it_to_no_one(people, marketer):
    broken = SegmentFactory(owner=marketer, conditions=[attribute("Age", O.NUMBER_LT, "many")])
    campaign = CampaignFactory(
        owner=marketer, segments=[broken], lists=[ContactListFactory(owner=marketer, contacts=[people["pune"]])]
    )

    assert audience.audience_count(campaign=campaign) == 1
    assert ledger.materialise(campaign_id=campaign.pk, now=NOW) == 1
    assert segments.match_counts(segments=[broken]) == {broken.pk: (0, 0)}


def test_numbers_and_dates_stored_as_anything_never_break_the_query(marketer):
    odd = ["", "1e5", "--3", "٣", "12abc", "2026-13-45", "9999-99-99", "NaN", "Infinity", " ", "0x10", "1,5"]
    for n, value in enumerate(odd):
        ContactFactory(owner=marketer, email=f"odd{n}@example.org", attributes={"Age": value, "Joined": value})
    ContactFactory(owner=marketer, email="list@example.org", attributes={"Age": [1, 2], "Joined": {"y": 2026}})

    assert matched(marketer, attribute("Age", O.NUMBER_GT, "0")) == set()
    # Only strings shaped like a date are compared: 9999-99-99 and 2026-13-45 are, and sort as written.
    assert matched(marketer, attribute("Joined", O.DATE_AFTER, "2026-01-01")) == {"odd5", "odd6"}


# --- what a condition row accepts -----------------------------------------------------------------


def checked(segment, **values):
    condition = SegmentCondition(segment=segment, **values)
    with pytest.raises(ValidationError) as refused:
        condition.full_clean()
    return refused.value.message_dict


def test_a_number_comparison_needs_a_number(marketer):
    segment = SegmentFactory(owner=marketer)
    errors = checked(segment, **attribute("Age", O.NUMBER_GT, "thirty"))
    assert errors == {"value": ["“thirty” is not a number (write it like 12 or 3.5)."]}


def test_a_date_must_parse(marketer):
    segment = SegmentFactory(owner=marketer)
    assert checked(segment, **attribute("Joined", O.DATE_AFTER, "2026-02-31")) == {
        "value": ["“2026-02-31” is not a date: write it like 2026-12-31."]
    }
    assert checked(segment, field=F.CREATED, operator=O.DATE_BEFORE, value="31/12/2026") == {
        "value": ["“31/12/2026” is not a date: write it like 2026-12-31."]
    }


def test_days_are_a_whole_number(marketer):
    segment = SegmentFactory(owner=marketer)
    assert checked(segment, field=F.ACTIVITY, operator=O.OPENED_IN_LAST_DAYS, value="-3") == {
        "value": ["“-3” is not a number of days (a whole number from 1 to 36500)."]
    }


def test_an_operator_must_suit_its_field(marketer):
    segment = SegmentFactory(owner=marketer)
    errors = checked(segment, field=F.STATUS, operator=O.CONTAINS, contact_status="subscribed", value="x")
    assert errors == {"operator": ["“contains” does not apply to status; choose one of: is, is not."]}


def test_each_field_asks_for_what_it_compares_with(marketer):
    segment = SegmentFactory(owner=marketer)
    assert checked(segment, field=F.STATUS, operator=O.IS) == {"contact_status": ["Choose the status."]}
    assert checked(segment, field=F.LIST, operator=O.ON_LIST) == {"contact_list": ["Choose the list."]}
    assert checked(segment, field=F.CAMPAIGN, operator=O.OPENED) == {"campaign": ["Choose the campaign."]}
    assert checked(segment, **attribute("", O.IS_EMPTY)) == {"attribute": ["Name the attribute, e.g. City."]}
    assert checked(segment, **attribute("City", O.EQUALS, "")) == {"value": ["Type the text to compare with."]}


def test_another_owners_list_or_campaign_is_refused(marketer, other_marketer):
    segment = SegmentFactory(owner=marketer)
    assert checked(
        segment, field=F.LIST, operator=O.ON_LIST, contact_list=ContactListFactory(owner=other_marketer)
    ) == {"contact_list": ["This list belongs to someone else."]}
    assert checked(segment, field=F.CAMPAIGN, operator=O.OPENED, campaign=CampaignFactory(owner=other_marketer)) == {
        "campaign": ["This campaign belongs to someone else."]
    }


def test_a_list_or_campaign_a_segment_names_cannot_be_deleted(marketer):
    from django.db.models import ProtectedError

    vips, spring = ContactListFactory(owner=marketer), CampaignFactory(owner=marketer)
    SegmentFactory(
        owner=marketer,
        conditions=[
            {"field": F.LIST, "operator": O.ON_LIST, "contact_list": vips},
            {"field": F.CAMPAIGN, "operator": O.OPENED, "campaign": spring},
        ],
    )
    with pytest.raises(ProtectedError):
        vips.delete()
    with pytest.raises(ProtectedError):
        spring.delete()

    Segment.objects.all().delete()
    vips.delete()
    spring.delete()


def test_conditions_read_as_words(marketer):
    vips = ContactListFactory(owner=marketer, name="VIPs")
    segment = SegmentFactory(
        owner=marketer,
        match=Segment.Match.ANY,
        conditions=[
            attribute("City", O.EQUALS, "Pune"),
            {"field": F.LIST, "operator": O.ON_LIST, "contact_list": vips},
            {"field": F.ACTIVITY, "operator": O.OPENED_IN_LAST_DAYS, "value": "30"},
        ],
    )
    assert segments.describe(segment=segment) == (
        "City equals “Pune” or is on the list “VIPs” or opened a campaign in the last 30 days"
    )
    spring = CampaignFactory(owner=marketer, name="Spring")
    assert [
        str(SegmentCondition(**values))
        for values in [
            {"field": F.STATUS, "operator": O.IS_NOT, "contact_status": "bounced"},
            {"field": F.CAMPAIGN, "operator": O.NOT_OPENED, "campaign": spring},
            {"field": F.CREATED, "operator": O.DATE_BEFORE, "value": "2026-01-01"},
            {"field": F.CREATED, "operator": O.IN_LAST_DAYS, "value": "7"},
            attribute("Age", O.NUMBER_GTE, "18"),
            attribute("Plan", O.IS_EMPTY),
        ]
    ] == [
        "Status is not Bounced",
        "received and did not open “Spring”",
        "Date added before 2026-01-01",
        "Date added in the last 7 days",
        "Age ≥ 18",
        "Plan is empty",
    ]


# --- campaigns to segments ------------------------------------------------------------------------


@pytest.fixture
def list_and_segment(people, marketer):
    """A campaign to a list (pune, mumbai) and a segment (City is Pune or Mumbai, or Age < 40) that overlap."""
    the_list = ContactListFactory(owner=marketer, contacts=[people["pune"], people["mumbai"]])
    segment = SegmentFactory(
        owner=marketer,
        match=Segment.Match.ANY,
        conditions=[
            attribute("City", O.EQUALS, "pune"),
            attribute("Age", O.NUMBER_LT, "40"),
        ],
    )
    return CampaignFactory(owner=marketer, lists=[the_list], segments=[segment])


def test_a_list_and_an_overlapping_segment_materialise_each_address_once(list_and_segment):
    counted = audience.audience_count(campaign=list_and_segment)
    inserted = ledger.materialise(campaign_id=list_and_segment.pk, now=timezone.now())

    addresses = list(Email.objects.filter(campaign=list_and_segment).values_list("to_email", flat=True))
    # bounced is Pune too, and suppressed: never materialised; Mallory's Pune contact is not Alice's.
    assert sorted(addresses) == ["blank@example.org", "mumbai@example.org", "pune@example.org"]
    assert counted == inserted == 3


def test_counting_a_campaign_to_a_segment_probes_nothing_per_contact(list_and_segment):
    """An OR of `id IN (list)` and `id IN (segment)` cannot become a semi-join: PostgreSQL ran the segment's
    subquery per contact (a SubPlan), and counting a campaign to a segment of a million took over five
    minutes, in every start and on the campaign's page. One IN of a UNION ALL, as the start's statement."""
    recipients = audience.recipients(campaign=list_and_segment)
    sql, params = recipients.order_by().values("id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN SELECT COUNT(*) FROM (" + sql + ") x", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "SubPlan" not in plan, plan
    assert recipients.count() == audience.audience_count(campaign=list_and_segment) == 3


def test_the_start_is_still_one_insert_statement(list_and_segment):
    sql, params = ledger.materialise_statement(campaign_id=list_and_segment.pk, now=timezone.now())

    assert sql.count("INSERT INTO") == 1 and sql.count("FROM campaigns_contact c") == 1
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        assert cursor.rowcount == 3


def test_a_campaign_to_segments_only_schedules_and_sends_to_them(people, marketer):
    segment = SegmentFactory(owner=marketer, conditions=[attribute("City", O.IS_NOT_EMPTY)])
    campaign = CampaignFactory(owner=marketer, segments=[segment])

    assert lifecycle.problems_before_scheduling(campaign=campaign) == []
    lifecycle.send_now(campaign=campaign)

    assert set(Email.objects.filter(campaign=campaign).values_list("to_email", flat=True)) == {
        "pune@example.org",
        "mumbai@example.org",
    }


def test_a_contact_suppressed_before_the_start_is_left_out(people, marketer):
    segment = SegmentFactory(owner=marketer, conditions=[attribute("City", O.IS_NOT_EMPTY)])
    campaign = CampaignFactory(owner=marketer, segments=[segment])
    contact_service.suppress(contact_ids=[people["mumbai"].pk], status=Contact.Status.UNSUBSCRIBED, now=NOW)

    assert audience.audience_count(campaign=campaign) == 1
    assert ledger.materialise(campaign_id=campaign.pk, now=NOW) == 1


def test_engagement_segments_materialise_with_the_start_time(engagement, marketer):
    segment = SegmentFactory(
        owner=marketer,
        conditions=[
            {"field": F.ACTIVITY, "operator": O.OPENED_IN_LAST_DAYS, "value": "30"},
            {"field": F.CAMPAIGN, "operator": O.CLICKED, "campaign": engagement},
        ],
    )
    campaign = CampaignFactory(owner=marketer, segments=[segment])

    assert ledger.materialise(campaign_id=campaign.pk, now=NOW) == 1
    assert Email.objects.get(campaign=campaign).to_email == "pune@example.org"


def test_neither_list_nor_segment_cannot_be_scheduled(marketer):
    campaign = CampaignFactory(owner=marketer)

    assert lifecycle.problems_before_scheduling(campaign=campaign)[-1] == "choose at least one contact list or segment"


def test_another_owners_segment_is_refused_and_never_materialised(people, marketer, other_marketer):
    # Attached by a superuser: scheduling refuses it, and a start would leave it out all the same.
    theirs = SegmentFactory(owner=other_marketer, conditions=[attribute("City", O.EQUALS, "Pune")])
    campaign = CampaignFactory(owner=marketer, segments=[theirs])

    assert "a chosen segment belongs to someone else" in lifecycle.problems_before_scheduling(campaign=campaign)
    assert audience.audience_count(campaign=campaign) == 0
    assert ledger.materialise(campaign_id=campaign.pk, now=NOW) == 0


def test_duplicate_copies_the_segments(list_and_segment):
    copy = lifecycle.duplicate(campaign=list_and_segment)

    assert list(copy.segments.all()) == list(list_and_segment.segments.all())
    assert audience.audience_count(campaign=copy) == 3


def test_a_resend_goes_to_its_source_not_to_segments(list_and_segment):
    lifecycle.send_now(campaign=list_and_segment)
    Campaign.objects.filter(pk=list_and_segment.pk).update(status=Campaign.Status.COMPLETED)
    Email.objects.filter(campaign=list_and_segment).update(status=Email.Status.SENT, sent_at=NOW)
    list_and_segment.refresh_from_db()
    resend = lifecycle.resend_to_non_openers(campaign=list_and_segment)

    assert list(resend.segments.all()) == []
    assert ledger.materialise(campaign_id=resend.pk, now=NOW) == 3


def test_extending_a_started_campaign_adds_contacts_that_match_since(list_and_segment, marketer):
    lifecycle.send_now(campaign=list_and_segment)
    ContactFactory(owner=marketer, email="new@example.org", attributes={"City": "Pune"})

    assert lifecycle.extend_to_new_contacts(campaign=list_and_segment) == 1


def test_match_counts_for_a_page_of_segments_in_one_statement(people, marketer, django_assert_num_queries):
    first = SegmentFactory(owner=marketer, conditions=[attribute("City", O.EQUALS, "Pune")])
    second = SegmentFactory(owner=marketer, conditions=[attribute("City", O.EQUALS, "Nowhere")])
    page = list(Segment.objects.filter(owner=marketer).prefetch_related("conditions"))

    with django_assert_num_queries(1):
        counts = segments.match_counts(segments=page)

    assert counts == {first.pk: (2, 1), second.pk: (0, 0)}


def test_the_live_count_counts_matching_and_subscribed(people, marketer):
    figures = segments.count(
        owner_id=marketer.pk,
        match=Segment.Match.ALL,
        conditions=[SegmentCondition(**attribute("City", O.EQUALS, "Pune"))],
    )

    assert figures == {"matching": 2, "subscribed": 1}


def test_date_helper_reads_iso_dates_only():
    from campaigns.models import parse_date

    assert parse_date(" 2026-12-03 ") == date(2026, 12, 3)
