"""factory-boy factories for every model."""

import factory
from django.contrib.auth.models import Group
from django.utils import timezone

from accounts.models import MARKETERS_GROUP, User
from campaigns.models import Campaign, CampaignEvent, Email, EmailTemplate, Segment, SegmentCondition
from contacts.models import Contact, ContactList, SubscriptionForm
from sending.models import SmtpAccount, SmtpAccountState
from tracking.models import Event, Link

PASSWORD = "correct horse battery staple"


class MarketerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"marketer{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    organization = factory.LazyAttribute(lambda u: f"{u.username.title()} Ltd")
    postal_address = "1 Test Street, Pune"
    email_confirmed_at = factory.LazyFunction(timezone.now)
    approved_at = factory.LazyFunction(timezone.now)
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def in_marketers_group(obj, create, extracted, **kwargs):
        if create:
            obj.save()
            obj.groups.add(Group.objects.get(name=MARKETERS_GROUP))


class SuperuserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"admin{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    is_superuser = True
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def saved(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class SmtpAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SmtpAccount
        skip_postgeneration_save = True

    owner = factory.SubFactory(MarketerFactory)
    name = factory.Sequence(lambda n: f"SMTP {n}")
    host = "smtp.example.com"
    port = 587
    security = SmtpAccount.Security.STARTTLS
    username = factory.LazyAttribute(lambda a: a.owner.email)
    from_email = factory.LazyAttribute(lambda a: a.owner.email)
    from_name = factory.LazyAttribute(lambda a: a.owner.organization)

    @factory.post_generation
    def raw_password(obj, create, extracted, **kwargs):
        obj.set_password(extracted if extracted is not None else "smtp-secret")
        if create:
            obj.save()

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        """The engine's state (SmtpAccountFactory(paused_until=...)) goes on the account's state row,
        which the database made with the account."""
        state = {name: kwargs.pop(name) for name in list(kwargs) if name in STATE_FIELDS}
        account = super()._create(model_class, *args, **kwargs)
        if state:
            SmtpAccountState.objects.filter(account=account).update(**state)
        return account


STATE_FIELDS = {field.name for field in SmtpAccountState._meta.concrete_fields if not field.primary_key}


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    owner = factory.SubFactory(MarketerFactory)
    email = factory.Sequence(lambda n: f"contact{n}@example.org")
    name = factory.Sequence(lambda n: f"Contact {n}")
    attributes = factory.LazyFunction(lambda: {"City": "Pune"})


class ContactListFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ContactList
        skip_postgeneration_save = True

    owner = factory.SubFactory(MarketerFactory)
    name = factory.Sequence(lambda n: f"List {n}")

    @factory.post_generation
    def contacts(obj, create, extracted, **kwargs):
        if create and extracted:
            obj.contacts.add(*extracted)


class EmailTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EmailTemplate

    owner = factory.SubFactory(MarketerFactory)
    name = factory.Sequence(lambda n: f"Template {n}")
    subject = "Hello {{ name }}"
    body_html = "<p>Hello {{ name }}</p>"


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign
        skip_postgeneration_save = True

    owner = factory.SubFactory(MarketerFactory)
    name = factory.Sequence(lambda n: f"Campaign {n}")
    smtp_account = factory.SubFactory(SmtpAccountFactory, owner=factory.SelfAttribute("..owner"))
    subject = "Hello {{ name }}"
    body_html = "<p>Hello {{ name }}, news from us.</p>"

    @factory.post_generation
    def lists(obj, create, extracted, **kwargs):
        if create and extracted:
            obj.lists.add(*extracted)

    @factory.post_generation
    def segments(obj, create, extracted, **kwargs):
        if create and extracted:
            obj.segments.add(*extracted)


class SegmentFactory(factory.django.DjangoModelFactory):
    """A segment; `conditions=[dict(field=..., operator=..., ...), ...]` adds its condition rows."""

    class Meta:
        model = Segment
        skip_postgeneration_save = True

    owner = factory.SubFactory(MarketerFactory)
    name = factory.Sequence(lambda n: f"Segment {n}")

    @factory.post_generation
    def conditions(obj, create, extracted, **kwargs):
        if create and extracted:
            for values in extracted:
                SegmentCondition.objects.create(segment=obj, **values)


class CampaignEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CampaignEvent

    campaign = factory.SubFactory(CampaignFactory)
    at = factory.LazyFunction(timezone.now)
    from_status = Campaign.Status.SCHEDULED
    to_status = Campaign.Status.SENDING


class SubscriptionFormFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SubscriptionForm

    owner = factory.SubFactory(MarketerFactory)
    contact_list = factory.SubFactory(ContactListFactory, owner=factory.SelfAttribute("..owner"))
    smtp_account = factory.SubFactory(SmtpAccountFactory, owner=factory.SelfAttribute("..owner"))
    title = factory.Sequence(lambda n: f"Newsletter sign-up {n}")
    consent_text = "I agree to receive the monthly newsletter and can unsubscribe at any time."
    attributes_asked = factory.LazyFunction(lambda: ["City"])


class EmailFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Email

    campaign = factory.SubFactory(CampaignFactory)
    contact = factory.SubFactory(ContactFactory, owner=factory.SelfAttribute("..campaign.owner"))
    to_email = factory.LazyAttribute(lambda e: e.contact.email if e.contact else "someone@example.org")
    to_name = factory.LazyAttribute(lambda e: e.contact.name if e.contact else "")


class LinkFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Link

    campaign = factory.SubFactory(CampaignFactory)
    url = factory.Sequence(lambda n: f"https://example.com/page/{n}")


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    email = factory.SubFactory(EmailFactory)
    campaign = factory.SelfAttribute("email.campaign")
    kind = Event.Kind.OPEN
    user_agent = "Mozilla/5.0"
