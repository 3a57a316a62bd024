"""Who a segment is: its conditions compiled into one Contact queryset.

The one place that says what each condition means. The live count, the changelist's counts, a
campaign's audience and preview (campaigns.selectors.audience) and the start's single INSERT ... SELECT
(campaigns.ledger.materialise_statement, which embeds this queryset's SQL) all use it, so
what the marketer is shown is what the start sends to.

Every condition is a plain filter on the contact row, or an EXISTS over the owner's own lists and
campaigns' emails; nothing is read into Python. Attribute values are compared as text, numbers and
dates behind a pattern check: a stored "n/a" compared as a number matches nothing instead of
failing the statement (a bare cast would raise).
"""

import zoneinfo
from datetime import datetime, time, timedelta
from functools import reduce
from operator import and_, or_

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Case, Count, Exists, Expression, FloatField, OuterRef, Q, QuerySet, TextField, Value, When
from django.db.models import F as F_
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast, Left, Trim
from django.utils import timezone

from accounts.models import User
from campaigns.models import Email, Segment, SegmentCondition, parse_date, parse_days, parse_number
from contacts.models import Contact, ContactList

F, O = SegmentCondition.Field, SegmentCondition.Operator
# The same rule as models.NUMBER_PATTERN and DATE_PATTERN, in the syntax PostgreSQL's ~ and Python's re share.
NUMBER_REGEX = r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"
DATE_REGEX = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"


def contacts_matching(*, segment: Segment, now: datetime | None = None) -> QuerySet[Contact]:
    """The owner's contacts the segment matches, whatever their status (unordered)."""
    conditions = list(segment.conditions.all())
    return contacts_matching_conditions(
        owner_id=segment.owner_id,
        match=segment.match,
        conditions=conditions,
        now=now,
        # The owner's zone only where a date needs it (with the owner selected, no query).
        zone_name=segment.owner.timezone if _needs_zone(conditions) else None,
    )


def contacts_matching_conditions(
    *,
    owner_id: int,
    match: str,
    conditions: list[SegmentCondition],
    now: datetime | None = None,
    zone_name: str | None = None,
) -> QuerySet[Contact]:
    """The same for conditions not saved yet (the live count of the form being edited).

    No condition matches every contact. `now` fixes "the last N days" (the start passes its own time);
    a date added is a day in the owner's time zone (`zone_name`, read from the owner if not given).
    """
    now = now or timezone.now()
    zone = _zone(zone_name or _owner_zone_name(owner_id)) if _needs_zone(conditions) else None
    aliases: dict[str, Expression] = {}
    filters: list[Q | Exists] = []
    for i, condition in enumerate(conditions):
        filters.append(
            _condition_filter(
                condition, name=f"segment_value_{i}", aliases=aliases, owner_id=owner_id, now=now, zone=zone
            )
        )
    combine = or_ if match == Segment.Match.ANY else and_
    matched = reduce(combine, filters) if filters else Q()
    return Contact.objects.filter(owner_id=owner_id).alias(**aliases).filter(matched).order_by()


def campaign_segments(*, campaign_id: int) -> list[Segment]:
    """The campaign's segments that are its owner's (a resend has none: its source decides), with their conditions."""
    # One read (plus the conditions' when there are segments): the owner's check and the resend's rule are
    # conditions on the same campaign row.
    return list(
        Segment.objects.filter(
            campaigns__id=campaign_id, campaigns__owner_id=F_("owner_id"), campaigns__source_campaign_id__isnull=True
        )
        .select_related("owner")
        .prefetch_related("conditions")
        .order_by("id")
    )


def campaign_segment_contact_ids(*, campaign_id: int, now: datetime | None = None) -> list[QuerySet]:
    """One queryset of contact ids per segment of the campaign."""
    return [contacts_matching(segment=s, now=now).values("id") for s in campaign_segments(campaign_id=campaign_id)]


def match_counts(*, segments: list[Segment], now: datetime | None = None) -> dict[int, tuple[int, int]]:
    """{segment id: (contacts matching, of which subscribed)} for these segments, in one statement.

    The changelist's columns: one UNION ALL of a count per segment, so the page costs one query
    however many segments it shows (their conditions prefetched).
    """
    if not segments:
        return {}
    parts, params = [], []
    for segment in segments:
        sql, part_params = contacts_matching(segment=segment, now=now).values("id", "status").query.sql_with_params()
        parts.append(f"SELECT %s, COUNT(*), COALESCE(SUM(CASE WHEN m.status = %s THEN 1 ELSE 0 END), 0) FROM ({sql}) m")
        params += [segment.pk, Contact.Status.SUBSCRIBED, *part_params]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        return {row[0]: (row[1], row[2]) for row in cursor.fetchall()}


def count(*, owner_id: int, match: str, conditions: list[SegmentCondition]) -> dict:
    """The live count: how many of the owner's contacts match, and how many of them are subscribed."""
    return contacts_matching_conditions(owner_id=owner_id, match=match, conditions=conditions).aggregate(
        matching=Count("id"),
        subscribed=Count("id", filter=Q(status=Contact.Status.SUBSCRIBED)),
    )


# --- one condition -----------------------------------------------------------------------------


def _condition_filter(condition, *, name, aliases, owner_id, now, zone):
    """A Q or Exists for one condition; a value that cannot be read (saved before a rule changed) matches nobody."""
    try:
        return _COMPILERS[condition.field](condition, name=name, aliases=aliases, owner_id=owner_id, now=now, zone=zone)
    except (KeyError, ValidationError, ValueError):
        # Not pk__in=[]: that compiles to no SQL at all (EmptyResultSet), and the start embeds this SQL.
        return Q(pk__isnull=True)


def _status(condition, **_):
    matched = Q(status=condition.contact_status)
    return ~matched if condition.operator == O.IS_NOT else matched


def _list(condition, *, owner_id, **_):
    on_list = Exists(
        ContactList.contacts.through.objects.filter(
            contact_id=OuterRef("pk"),
            contactlist_id=condition.contact_list_id,
            contactlist__owner_id=owner_id,
        )
    )
    return ~on_list if condition.operator == O.NOT_ON_LIST else on_list


def _attribute(condition, *, name, aliases, **_):
    op = condition.operator
    # Text of the value, trimmed; NULL when the key is missing or JSON null (checked on the JSON value itself).
    aliases[f"{name}_json"] = KeyTransform(condition.attribute, "attributes")
    aliases[name] = Case(
        When(**{f"{name}_json": None}, then=Value(None)),
        default=Trim(Cast(KeyTextTransform(condition.attribute, "attributes"), TextField())),
        output_field=TextField(),
    )
    missing = Q(**{f"{name}__isnull": True})
    value = condition.value.strip()
    if op == O.EQUALS:
        return Q(**{f"{name}__iexact": value})
    if op == O.NOT_EQUALS:
        return missing | ~Q(**{f"{name}__iexact": value})
    if op == O.CONTAINS:
        return Q(**{f"{name}__icontains": value})
    if op == O.NOT_CONTAINS:
        return missing | ~Q(**{f"{name}__icontains": value})
    if op == O.IS_EMPTY:
        return missing | Q(**{name: ""})
    if op == O.IS_NOT_EMPTY:
        return ~missing & ~Q(**{name: ""})
    if op in SegmentCondition.NUMBER_OPERATORS:
        aliases[f"{name}_number"] = Case(
            When(**{f"{name}__regex": NUMBER_REGEX}, then=Cast(name, FloatField())),
            default=Value(None),
            output_field=FloatField(),
        )
        lookup = {
            O.NUMBER_EQUALS: "exact",
            O.NUMBER_LT: "lt",
            O.NUMBER_LTE: "lte",
            O.NUMBER_GT: "gt",
            O.NUMBER_GTE: "gte",
        }[op]
        return Q(**{f"{name}_number__{lookup}": parse_number(value)})
    if op in SegmentCondition.DATE_OPERATORS:
        # YYYY-MM-DD sorts as text, so no cast (a stored 2026-02-31 would make PostgreSQL's fail).
        aliases[f"{name}_date"] = Case(
            When(**{f"{name}__regex": DATE_REGEX}, then=Left(name, 10)),
            default=Value(None),
            output_field=TextField(),
        )
        lookup = {O.DATE_BEFORE: "lt", O.DATE_ON: "exact", O.DATE_AFTER: "gt"}[op]
        return Q(**{f"{name}_date__{lookup}": parse_date(value).isoformat()})
    raise ValueError(op)


def _campaign(condition, *, owner_id, **_):
    emails = Email.objects.filter(
        contact_id=OuterRef("pk"), campaign_id=condition.campaign_id, campaign__owner_id=owner_id
    )
    if condition.operator == O.OPENED:
        return Exists(emails.filter(first_opened_at__isnull=False))
    if condition.operator == O.CLICKED:
        return Exists(emails.filter(click_count__gt=0))
    if condition.operator == O.NOT_OPENED:
        # As the resend to non-openers reads it: sent, and no reader's open (a machine open is none).
        return Exists(emails.filter(status=Email.Status.SENT, first_opened_at__isnull=True))
    raise ValueError(condition.operator)


def _activity(condition, *, now, **_):
    # A contact's emails are its owner's campaigns' (the start only ever inserts those), so no join to
    # the campaign: the probe stays on the email_contact_opened index alone.
    since = now - timedelta(days=parse_days(condition.value))
    opened = Exists(Email.objects.filter(contact_id=OuterRef("pk"), first_opened_at__gte=since))
    if condition.operator == O.OPENED_IN_LAST_DAYS:
        return opened
    if condition.operator == O.NOT_OPENED_IN_LAST_DAYS:
        return ~opened
    raise ValueError(condition.operator)


def _created(condition, *, now, zone, **_):
    if condition.operator == O.IN_LAST_DAYS:
        return Q(created_at__gte=now - timedelta(days=parse_days(condition.value)))
    # A day is the owner's own day (their time zone), whoever runs the query and wherever.
    day = parse_date(condition.value)
    start = datetime.combine(day, time.min, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)
    if condition.operator == O.DATE_BEFORE:
        return Q(created_at__lt=start)
    if condition.operator == O.DATE_ON:
        return Q(created_at__gte=start, created_at__lt=end)
    if condition.operator == O.DATE_AFTER:
        return Q(created_at__gte=end)
    raise ValueError(condition.operator)


_COMPILERS = {
    F.STATUS: _status,
    F.LIST: _list,
    F.ATTRIBUTE: _attribute,
    F.CAMPAIGN: _campaign,
    F.ACTIVITY: _activity,
    F.CREATED: _created,
}


def _needs_zone(conditions):
    return any(c.field == F.CREATED and c.operator != O.IN_LAST_DAYS for c in conditions)


def _owner_zone_name(owner_id):
    return User.objects.filter(pk=owner_id).values_list("timezone", flat=True).first()


def _zone(name):
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def describe(*, segment: Segment) -> str:
    """The conditions in words, as the changelist and a campaign's page show them."""
    conditions = [str(c) for c in segment.conditions.all()]
    if not conditions:
        return "every contact"
    joiner = " or " if segment.match == Segment.Match.ANY else " and "
    return joiner.join(conditions)
