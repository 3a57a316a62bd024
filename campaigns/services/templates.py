"""Reusable EmailTemplates: a new campaign from a template, a campaign saved as a template."""

from django.db import transaction
from django.db.models import QuerySet

from accounts.models import User
from campaigns.models import Campaign, EmailTemplate


def campaign_from_template(*, template: EmailTemplate, owner: User) -> Campaign:
    """A new draft of `owner` with the template's subject and bodies (no account or lists yet)."""
    return Campaign.objects.create(
        owner=owner,
        name=_free_name(Campaign.objects.filter(owner=owner), template.name),
        subject=template.subject,
        body_html=template.body_html,
        body_text=template.body_text,
    )


def template_from_campaign(*, campaign: Campaign) -> EmailTemplate:
    """A template of the campaign's owner with its subject and bodies, under a name not taken yet."""
    with transaction.atomic():
        return EmailTemplate.objects.create(
            owner=campaign.owner,
            name=_free_name(EmailTemplate.objects.filter(owner=campaign.owner), campaign.name),
            subject=campaign.subject,
            body_html=campaign.body_html,
            body_text=campaign.body_text,
        )


def _free_name(queryset: QuerySet[Campaign] | QuerySet[EmailTemplate], base: str) -> str:
    base = base[:180]
    taken = set(queryset.filter(name__startswith=base).values_list("name", flat=True))
    if base not in taken:
        return base
    n = 2
    while f"{base} ({n})" in taken:
        n += 1
    return f"{base} ({n})"
