"""Who a campaign would go to before it starts.

The same rule as ledger.materialise_statement, read-only: the owner's own subscribed
contacts on the campaign's own lists or matching its own segments, each address once; for a
resend, the owner's own subscribed contacts its source campaign was sent to and who did not open it.
"""

from dataclasses import dataclass, field

from django.db.models import Count, QuerySet, Sum

from campaigns.models import Campaign, CampaignTally, Email
from campaigns.selectors import segments
from contacts.models import Contact, ContactList


def recipients(*, campaign: Campaign) -> QuerySet:
    """The contacts a start would materialise now (unordered)."""
    return _subscribed(campaign).filter(id__in=_audience_ids(campaign))


def _subscribed(campaign):
    return Contact.objects.filter(owner_id=campaign.owner_id, status=Contact.Status.SUBSCRIBED)


def _audience_ids(campaign):
    """Contact ids of the audience, repeats kept: one IN of a UNION ALL, as the start's own statement
    (ledger.materialise_statement). As an OR of an IN per list and segment it cannot become a
    semi-join: PostgreSQL would probe a segment's ids once per contact."""
    branches = _audience_branches(campaign)
    return branches[0].union(*branches[1:], all=True) if len(branches) > 1 else branches[0]


def _audience_branches(campaign):
    """One queryset of contact ids per source of the audience: a resend's source, else the lists and each segment."""
    if campaign.source_campaign_id is not None:
        return [non_opener_contact_ids(campaign=campaign).order_by()]
    on_lists = (
        ContactList.contacts.through.objects.filter(
            contactlist__campaigns=campaign, contactlist__owner_id=campaign.owner_id
        )
        .values("contact_id")
        .order_by()
    )
    return [on_lists, *(ids.order_by() for ids in segments.campaign_segment_contact_ids(campaign_id=campaign.pk))]


def non_opener_contact_ids(*, campaign: Campaign) -> QuerySet:
    """Contacts the resend's source was sent to who never opened it (a machine open is no open)."""
    if campaign.source_rule != Campaign.SourceRule.NOT_OPENED or campaign.source_campaign_id is None:
        return Email.objects.none().values("contact_id")
    return Email.objects.filter(
        campaign_id=campaign.source_campaign_id, status=Email.Status.SENT, first_opened_at__isnull=True
    ).values("contact_id")


def audience_count(*, campaign: Campaign) -> int:
    """How many emails a start would create now: one per contact (contacts are unique per owner by
    address, the emails' ON CONFLICT key). Counted branch by branch, each list and segment its own
    semi-join and the union folding repeats: over recipients(), PostgreSQL underestimates the distinct
    ids in the union and probes the contacts' key once per id."""
    if campaign.pk is None:
        return 0
    subscribed = _subscribed(campaign).order_by().values("id")
    counted = [subscribed.filter(id__in=ids) for ids in _audience_branches(campaign)]
    return counted[0].union(*counted[1:]).count() if len(counted) > 1 else counted[0].count()


@dataclass(frozen=True)
class AudienceSource:
    """One list, segment or resend source of a campaign: its contacts, and those it leaves out by status."""

    kind: str  # "list", "segment", "resend"
    name: str
    contacts: int
    subscribed: int
    left_out: dict[str, int] = field(default_factory=dict)  # status label -> contacts, only those > 0


@dataclass(frozen=True)
class AudienceBreakdown:
    sources: list[AudienceSource]
    recipients: int  # each address once: what a start would write now
    duplicates: int  # subscribed contacts counted by more than one source


def breakdown(*, campaign: Campaign) -> AudienceBreakdown:
    """Who the campaign reaches per list and segment, and who is left out and why (suppressed, or on
    more than one source). One count per source: a campaign has a handful."""
    sources = [_source(kind, name, ids, campaign) for kind, name, ids in _named_branches(campaign)]
    recipients = audience_count(campaign=campaign)
    return AudienceBreakdown(
        sources=sources, recipients=recipients, duplicates=sum(s.subscribed for s in sources) - recipients
    )


def _named_branches(campaign):
    if campaign.source_campaign_id is not None:
        source = campaign.source_campaign
        return [
            ("resend", f"who received “{source.name}” and did not open it", non_opener_contact_ids(campaign=campaign))
        ]
    lists = ContactList.objects.filter(campaigns=campaign, owner_id=campaign.owner_id).order_by("name")
    named = [
        (
            "list",
            contact_list.name,
            ContactList.contacts.through.objects.filter(contactlist=contact_list).values("contact_id"),
        )
        for contact_list in lists
    ]
    for segment in segments.campaign_segments(campaign_id=campaign.pk):
        named.append(("segment", segment.name, segments.contacts_matching(segment=segment).values("id")))
    return named


def _source(kind, name, ids, campaign):
    by_status = dict(
        Contact.objects.filter(owner_id=campaign.owner_id, id__in=ids.order_by())
        .order_by()
        .values_list("status")
        .annotate(n=Count("id"))
    )
    labels = dict(Contact.Status.choices)
    return AudienceSource(
        kind=kind,
        name=name,
        contacts=sum(by_status.values()),
        subscribed=by_status.get(Contact.Status.SUBSCRIBED, 0),
        left_out={labels[s]: by_status[s] for s in Contact.SUPPRESSED_STATUSES if by_status.get(s)},
    )


def unsent_count(*, campaign: Campaign) -> int:
    """Emails the campaign has still to send: its open rows (from its tallies), and the recipients not
    written yet (a campaign not started: its whole audience now; one being prepared: the rest)."""
    if campaign.started_at is None:
        return audience_count(campaign=campaign)
    open_rows = (
        CampaignTally.objects.filter(
            campaign_id=campaign.pk, status__in=(Email.Status.PENDING, Email.Status.QUEUED, Email.Status.DEFERRED)
        ).aggregate(n=Sum("n"))["n"]
        or 0
    )
    progress = preparation_progress(campaign=campaign)
    return open_rows + (progress[1] - progress[0] if progress else 0)


def describe_audience(*, campaign: Campaign) -> str:
    """Who the start will pick, in the owner's words (the draft's page)."""
    source = campaign.source_campaign
    if source is not None:
        return f"the contacts who received “{source.name}” and did not open it, still subscribed"
    return "the subscribed contacts of its lists and segments, each address once"


def preparation_progress(*, campaign: Campaign) -> tuple[int, int] | None:
    """(written, expected) while the campaign's recipients are being written in chunks, else None.

    Written is read from its tallies (exact, a handful of rows); expected was counted when the
    preparation began, and is never shown below what is written already."""
    if campaign.recipients_cursor is None:
        return None
    written = CampaignTally.objects.filter(campaign_id=campaign.pk).aggregate(n=Sum("n"))["n"] or 0
    return written, max(written, campaign.recipients_expected or 0)


def describe_preparation(progress: tuple[int, int] | None) -> str:
    """ "preparing recipients (n of N)" for preparation_progress's answer, or "" for None."""
    if progress is None:
        return ""
    return f"preparing recipients ({progress[0]:,} of {progress[1]:,})"
