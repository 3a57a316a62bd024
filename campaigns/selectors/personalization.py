"""Reads for personalisation: which variables the recipients of a campaign can fill."""

from dataclasses import dataclass

from django.db import connection
from django.db.models import Count, Q, QuerySet, TextField, Value
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Coalesce, Trim

from campaigns import personalize
from campaigns.models import Campaign
from campaigns.selectors import audience
from contacts.models import Contact


def subscribed_contacts(*, campaign: Campaign) -> QuerySet[Contact]:
    """Subscribed contacts of the campaign's lists (the owner's own lists and contacts only), by address."""
    return audience.recipients(campaign=campaign).order_by("email")


def attribute_keys(*, campaign: Campaign) -> set[str]:
    """Every attribute key any recipient of the campaign has, in one query."""
    ids_sql, params = subscribed_contacts(campaign=campaign).order_by().values("id").query.sql_with_params()
    table = Contact._meta.db_table
    sql = (
        f"SELECT DISTINCT jsonb_object_keys(c.attributes) FROM {table} c "
        f"WHERE c.id IN ({ids_sql}) AND jsonb_typeof(c.attributes) = 'object'"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


@dataclass(frozen=True)
class VariableGap:
    name: str
    lacking: int  # recipients for whom it is empty or missing
    recipients: int


@dataclass(frozen=True)
class VariableCoverage:
    unknown: list  # names no recipient has (a misspelling, most often), sorted
    gaps: list  # a VariableGap for each other variable printed without a fallback that some recipients lack


def variable_coverage(*, campaign: Campaign) -> VariableCoverage:
    """What the recipients give the variables the subject and bodies use, in two queries at most."""
    used, bare = set(), set()
    for source in (campaign.subject, campaign.body_html, campaign.body_text):
        try:
            used |= personalize.variables_used(source or "")
            bare |= personalize.variables_without_fallback(source or "")
        except personalize.PersonalizationError:
            continue
    attributes = used - set(personalize.STANDARD_VARIABLES)
    bare -= {"email", personalize.UNSUBSCRIBE_VARIABLE}  # never empty
    if not attributes and not bare:
        return VariableCoverage(unknown=[], gaps=[])
    keys = attribute_keys(campaign=campaign) if attributes else set()
    unknown = sorted(attributes - personalize.attribute_identifiers(keys))
    gaps = _gaps(campaign=campaign, names=sorted(bare - set(unknown)), keys=keys)
    return VariableCoverage(unknown=unknown, gaps=gaps)


@dataclass(frozen=True)
class VariableUse:
    """A variable the message uses, for the review page: how many recipients lack a value, and what
    they get instead (`fallback`: its default's text; None: nothing, or the part it guards is left out)."""

    name: str
    lacking: int
    recipients: int
    fallback: str | None
    printed_bare: bool  # printed somewhere with no fallback and no {% if %} around it


def variable_uses(*, campaign: Campaign) -> list[VariableUse]:
    """Every variable of the subject and bodies but the address and the unsubscribe link, by name."""
    used, bare = set(), set()
    defaults: dict[str, str] = {}
    for source in (campaign.subject, campaign.body_html, campaign.body_text):
        try:
            used |= personalize.variables_used(source or "")
            bare |= personalize.variables_without_fallback(source or "")
            defaults = personalize.fallbacks(source or "") | defaults
        except personalize.PersonalizationError:
            continue
    names = sorted(used - {"email", personalize.UNSUBSCRIBE_VARIABLE})
    if not names:
        return []
    keys = attribute_keys(campaign=campaign) if set(names) - {"name"} else set()
    counts = {gap.name: gap for gap in _gaps(campaign=campaign, names=names, keys=keys, keep_full=True)}
    return [
        VariableUse(
            name=name,
            lacking=counts[name].lacking,
            recipients=counts[name].recipients,
            fallback=defaults.get(name),
            printed_bare=name in bare,
        )
        for name in names
    ]


def _gaps(*, campaign, names, keys, keep_full=False):
    """Counted in SQL over the contacts' attributes, one pass over the recipients for every name."""
    if not names:
        return []
    values, lacking = {}, {}
    for i, name in enumerate(names):
        if name == "name":
            values[f"name_{i}"] = Trim("name")
            lacks = Q(**{f"name_{i}": ""})
        else:
            # A column "First Name" gives {{ First_Name }} too: any key providing the name may fill it.
            lacks = Q()
            for j, key in enumerate(sorted(k for k in keys if name in personalize.attribute_identifiers([k]))):
                alias = f"value_{i}_{j}"
                values[alias], values[f"{alias}_text"] = KeyTransform(key, "attributes"), _trimmed_text(key)
                lacks &= _empty(alias)
        lacking[f"lacking_{i}"] = Count("id", filter=lacks)
    counts = audience.recipients(campaign=campaign).annotate(**values).aggregate(total=Count("id"), **lacking)
    gaps = [
        VariableGap(name=name, lacking=counts[f"lacking_{i}"], recipients=counts["total"])
        for i, name in enumerate(names)
    ]
    return gaps if keep_full else [gap for gap in gaps if gap.lacking]


def _trimmed_text(key):
    return Trim(Coalesce(KeyTextTransform(key, "attributes"), Value(""), output_field=TextField()))


def _empty(alias):
    """Missing, JSON null or blank: the message prints nothing."""
    return Q(**{f"{alias}__isnull": True}) | Q(**{alias: None}) | Q(**{f"{alias}_text": ""})
