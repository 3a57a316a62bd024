"""Owner isolation in the admin (docs/architecture.md, "Invariants, and why").

Two marketers, alice (`marketer`) and mallory (`other_marketer`), each own one
object of every owned model. Every test drives the real admin through the
Django test client and checks that mallory never sees, reaches, chooses,
filters by or acts on alice's objects, that alice does, and that superusers see
everything while the system's own admins stay closed to marketers.

Everything alice owns carries "alice" in its visible strings (names, addresses,
URLs; her username and organization too), so "alice" appearing anywhere on one
of mallory's pages is a leak.
"""

import json
from types import SimpleNamespace

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import User
from accounts.owned_admin import scope_to_user
from campaigns.models import Campaign, Email, EmailTemplate, Segment
from contacts.models import Contact, ContactList, SubscriptionForm
from sending.models import SmtpAccount
from tests.factories import (
    CampaignFactory,
    ContactFactory,
    ContactListFactory,
    EmailFactory,
    EmailTemplateFactory,
    EventFactory,
    LinkFactory,
    SegmentFactory,
    SmtpAccountFactory,
    SubscriptionFormFactory,
)
from tests.sending.account_forms import NO_BOUNCE_MAILBOX
from tracking.models import Event, Link

pytestmark = pytest.mark.django_db

# key: (app_label, model_name, model class, writable by marketers)
OWNED = {
    "smtpaccount": ("sending", "smtpaccount", SmtpAccount, True),
    "contact": ("contacts", "contact", Contact, True),
    "contactlist": ("contacts", "contactlist", ContactList, True),
    "emailtemplate": ("campaigns", "emailtemplate", EmailTemplate, True),
    "campaign": ("campaigns", "campaign", Campaign, True),
    "email": ("campaigns", "email", Email, False),
    "link": ("tracking", "link", Link, False),
    "event": ("tracking", "event", Event, False),
    "subscriptionform": ("contacts", "subscriptionform", SubscriptionForm, True),
    "segment": ("campaigns", "segment", Segment, True),
}
ALL_OWNED = list(OWNED)
WRITABLE = [key for key, spec in OWNED.items() if spec[3]]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Three users per test; the default PBKDF2 rounds would dominate the run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def admin_url(key, view, *args):
    app_label, model_name = OWNED[key][:2]
    return reverse(f"admin:{app_label}_{model_name}_{view}", args=args)


def build_world(owner, title, slug):
    """One object of each owned model, with distinctive strings, all owned by `owner`."""
    smtp = SmtpAccountFactory(
        owner=owner, name=f"{title} Relay Account", from_email=f"relay@{slug}-corp.example", host=f"smtp.{slug}.example"
    )
    contact = ContactFactory(owner=owner, email=f"vip@{slug}-corp.example", name=f"{title} Vip Person")
    contact_list = ContactListFactory(owner=owner, name=f"{title} Newsletter List", contacts=[contact])
    template = EmailTemplateFactory(owner=owner, name=f"{title} Welcome Template", subject=f"{title} says hello")
    campaign = CampaignFactory(
        owner=owner,
        name=f"{title} Spring Campaign",
        subject=f"{title} spring news",
        smtp_account=smtp,
        lists=[contact_list],
    )
    email = EmailFactory(campaign=campaign, contact=contact)
    link = LinkFactory(campaign=campaign, url=f"https://{slug}-corp.example/spring-offer")
    event = EventFactory(email=email, kind=Event.Kind.CLICK, link=link)
    subscription_form = SubscriptionFormFactory(
        owner=owner,
        contact_list=contact_list,
        smtp_account=smtp,
        title=f"{title} Signup Form",
    )
    segment = SegmentFactory(
        owner=owner,
        name=f"{title} Loyal Segment",
        conditions=[
            {"field": "list", "operator": "on_list", "contact_list": contact_list},
            {"field": "campaign", "operator": "opened", "campaign": campaign},
        ],
    )
    objects = {
        "smtpaccount": smtp,
        "contact": contact,
        "contactlist": contact_list,
        "emailtemplate": template,
        "campaign": campaign,
        "email": email,
        "link": link,
        "event": event,
        "subscriptionform": subscription_form,
        "segment": segment,
    }
    # What each changelist row shows of the object (the event row shows its email's
    # address), which is also what the changelist search box finds it by.
    markers = {
        "smtpaccount": smtp.name,
        "contact": contact.email,
        "contactlist": contact_list.name,
        "emailtemplate": template.name,
        "campaign": campaign.name,
        "email": email.to_email,
        "link": link.url,
        "event": email.to_email,
        "subscriptionform": subscription_form.title,
        "segment": segment.name,
    }
    return SimpleNamespace(owner=owner, objects=objects, markers=markers, search_terms=markers, **objects)


@pytest.fixture
def world(marketer, other_marketer):
    return SimpleNamespace(
        alice=build_world(marketer, "Alice", "alice"),
        mallory=build_world(other_marketer, "Mallory", "mallory"),
    )


def html(response):
    return response.content.decode()


def assert_no_alice(response):
    """Nothing of alice's (names, addresses, username, organization) is on the page."""
    assert "alice" not in html(response).lower()


def exists(obj):
    return type(obj)._default_manager.filter(pk=obj.pk).exists()


# --- changelists ----------------------------------------------------------


@pytest.mark.parametrize("key", ALL_OWNED)
def test_changelist_shows_only_own_objects(key, world, marketer_client, other_client):
    alice_obj = world.alice.objects[key]
    change_url = admin_url(key, "change", alice_obj.pk)

    own = marketer_client.get(admin_url(key, "changelist"))
    assert own.status_code == 200
    assert world.alice.markers[key] in html(own)
    assert change_url in html(own)
    assert list(own.context["cl"].result_list) == [alice_obj]

    other = other_client.get(admin_url(key, "changelist"))
    assert other.status_code == 200
    assert world.mallory.markers[key] in html(other)  # the page did render rows: mallory's own
    assert world.alice.markers[key] not in html(other)
    assert change_url not in html(other)
    assert list(other.context["cl"].result_list) == [world.mallory.objects[key]]
    assert_no_alice(other)


@pytest.mark.parametrize("key", ALL_OWNED)
def test_changelist_search_does_not_find_other_owners_objects(key, world, marketer_client, other_client):
    params = {"q": world.alice.search_terms[key]}

    own = marketer_client.get(admin_url(key, "changelist"), params)
    assert list(own.context["cl"].result_list) == [world.alice.objects[key]]

    other = other_client.get(admin_url(key, "changelist"), params)
    assert other.status_code == 200
    assert list(other.context["cl"].result_list) == []
    # The search box echoes the term itself; no row, no link to alice's object.
    assert admin_url(key, "change", world.alice.objects[key].pk) not in html(other)
    assert 'class="paginator"' in html(other) and "0 results" in html(other)


# --- change, delete and history of another owner's object ------------------


@pytest.mark.parametrize("view", ["change", "delete", "history"])
@pytest.mark.parametrize("key", ALL_OWNED)
def test_other_owners_object_urls_answer_404(key, view, world, other_client):
    alice_obj = world.alice.objects[key]
    response = other_client.get(admin_url(key, view, alice_obj.pk))
    assert response.status_code == 404  # not the admin's "doesn't exist" redirect, not 403
    assert world.alice.markers[key] not in html(response)

    # Indistinguishable from an id that does not exist at all.
    missing = other_client.get(admin_url(key, view, 987654))
    assert missing.status_code == 404


@pytest.mark.parametrize("key", ALL_OWNED)
def test_owner_reaches_own_object_urls(key, world, marketer_client):
    alice_obj = world.alice.objects[key]
    change = marketer_client.get(admin_url(key, "change", alice_obj.pk))
    assert change.status_code == 200
    assert change.context["original"] == alice_obj
    history = marketer_client.get(admin_url(key, "history", alice_obj.pk))
    assert history.status_code == 200
    assert history.context["object"] == alice_obj
    delete = marketer_client.get(admin_url(key, "delete", alice_obj.pk))
    # The ledger (emails, links, events) is written by the engine only.
    assert delete.status_code == (200 if OWNED[key][3] else 403)


@pytest.mark.parametrize("key", ALL_OWNED)
def test_posting_delete_for_other_owners_object_deletes_nothing(key, world, other_client):
    alice_obj = world.alice.objects[key]
    response = other_client.post(admin_url(key, "delete", alice_obj.pk), {"post": "yes"})
    assert response.status_code == 404
    assert exists(alice_obj)


@pytest.mark.parametrize("key", ALL_OWNED)
def test_posting_change_for_other_owners_object_changes_nothing(key, world, other_client):
    alice_obj = world.alice.objects[key]
    before = type(alice_obj)._default_manager.get(pk=alice_obj.pk)
    data = {"name": "Hijacked", "email": "h@x.example", "url": "https://x.example/", "to_email": "h@x.example"}
    response = other_client.post(admin_url(key, "change", alice_obj.pk), data)
    assert response.status_code == 404  # read-only admins too: 404 comes before their 403
    after = type(alice_obj)._default_manager.get(pk=alice_obj.pk)
    assert str(after) == str(before)
    assert getattr(after, "owner_id", None) in (None, world.alice.owner.pk)


def test_superuser_gets_404_not_redirect_for_missing_object(superuser_client, world):
    response = superuser_client.get(admin_url("campaign", "change", 987654))
    assert response.status_code == 404


# --- autocomplete -----------------------------------------------------------


def autocomplete(client, app_label, model_name, field_name, term=""):
    return client.get(
        reverse("admin:autocomplete"),
        {"app_label": app_label, "model_name": model_name, "field_name": field_name, "term": term},
    )


def result_ids(response):
    assert response.status_code == 200
    return {int(row["id"]) for row in json.loads(response.content)["results"]}


@pytest.mark.parametrize(
    "app_label, model_name, field_name, target",
    [
        ("contacts", "contactlist", "contacts", "contact"),
        ("campaigns", "campaign", "smtp_account", "smtpaccount"),
        ("campaigns", "campaign", "lists", "contactlist"),
    ],
)
def test_autocomplete_returns_only_own_objects(
    app_label, model_name, field_name, target, world, marketer_client, other_client
):
    alice_obj, mallory_obj = world.alice.objects[target], world.mallory.objects[target]

    # Searching for alice's object by its own text: only alice finds it.
    term = world.alice.search_terms[target]
    assert result_ids(autocomplete(marketer_client, app_label, model_name, field_name, term)) == {alice_obj.pk}
    response = autocomplete(other_client, app_label, model_name, field_name, term)
    assert result_ids(response) == set()
    assert_no_alice(response)

    # An empty term lists everything the user may choose: their own only.
    response = autocomplete(other_client, app_label, model_name, field_name, "")
    assert result_ids(response) == {mallory_obj.pk}
    assert_no_alice(response)


@pytest.mark.filterwarnings("error::django.core.paginator.UnorderedObjectListWarning")
@pytest.mark.parametrize(
    "model_name, field_name, factory",
    [("campaign", "smtp_account", SmtpAccountFactory), ("campaign", "lists", ContactListFactory)],
)
def test_autocomplete_lists_own_objects_in_name_order(
    model_name, field_name, factory, world, other_marketer, other_client
):
    # These admins annotate counts (GROUP BY), which drops Meta.ordering unless the
    # admin orders explicitly; paging through unordered rows may skip or repeat some.
    for name in ("Mallory Zulu", "Mallory Alpha", "Mallory Mike"):
        factory(owner=other_marketer, name=name)
    response = autocomplete(other_client, "campaigns", model_name, field_name, "Mallory")
    texts = [row["text"] for row in json.loads(response.content)["results"]]
    assert texts == sorted(texts)
    assert len(texts) == 4
    assert_no_alice(response)


def test_contact_autocomplete_matches_partial_terms_only_among_own_contacts(world, marketer, other_client):
    ContactFactory(owner=marketer, email="vip2@alice-corp.example")
    response = autocomplete(other_client, "contacts", "contactlist", "contacts", "vip")
    assert result_ids(response) == {world.mallory.contact.pk}
    assert_no_alice(response)


def test_autocomplete_on_owner_field_is_forbidden_for_marketers(world, other_client, superuser_client):
    # Users are superuser-only: a marketer cannot list other accounts through autocomplete.
    assert autocomplete(other_client, "contacts", "contact", "owner", "alice").status_code == 403
    response = autocomplete(superuser_client, "contacts", "contact", "owner", "alice")
    assert result_ids(response) == {world.alice.owner.pk}


def test_superuser_autocomplete_sees_every_owner(world, superuser_client):
    ids = result_ids(autocomplete(superuser_client, "contacts", "contactlist", "contacts", "vip"))
    assert ids == {world.alice.contact.pk, world.mallory.contact.pk}


def autocomplete_sources():
    """(model, field name) of every relation of every model in the admin, forward and reverse: what
    anyone can put in the autocomplete URL."""
    return sorted(
        (
            (model, field.name)
            for model in admin.site._registry
            for field in model._meta.get_fields()
            if field.is_relation
        ),
        key=lambda source: (source[0]._meta.label, source[1]),
    )


def declared_autocomplete_sources():
    """(model, field name) of every autocomplete widget the admin's forms and inlines show."""
    declared = set()
    for model, model_admin in admin.site._registry.items():
        declared |= {(model, name) for name in model_admin.autocomplete_fields}
        for inline in model_admin.inlines:
            declared |= {(inline.model, name) for name in inline.autocomplete_fields}
    return declared


def own_choices(field, user):
    remote = field.related_model
    to_field = getattr(field.remote_field, "field_name", None) or remote._meta.pk.attname
    return {str(value) for value in scope_to_user(remote._default_manager.all(), user).values_list(to_field, flat=True)}


def test_every_autocomplete_source_answers_each_marketer_with_their_own_objects_only(
    world, marketer_client, other_client
):
    """Probing every relation of the admin's models as each marketer: never a 500 (a contact's `lists`,
    a reverse relation, used to be one), and a list only of the caller's own objects; every widget the
    forms show answers 200 with all of them."""
    declared = declared_autocomplete_sources()
    assert declared, "the admin shows autocomplete widgets"
    for client, me in ((marketer_client, world.alice), (other_client, world.mallory)):
        for model, field_name in autocomplete_sources():
            response = autocomplete(client, model._meta.app_label, model._meta.model_name, field_name)
            where = f"{model._meta.label}.{field_name} as {me.owner.username}"
            assert response.status_code in (200, 403, 404), where
            if response.status_code != 200:
                assert (model, field_name) not in declared, where
                continue
            field = model._meta.get_field(field_name)
            results = {row["id"] for row in json.loads(response.content)["results"]}
            mine = own_choices(field, me.owner)
            assert results <= mine, where
            if (model, field_name) in declared:
                assert results == mine and mine, where


def test_a_contacts_lists_are_no_autocomplete_source(world, marketer_client, other_client):
    # A reverse relation: no form has it. Refused as Django refuses every other unsuitable source.
    for client in (marketer_client, other_client):
        assert autocomplete(client, "contacts", "contact", "lists", "Newsletter").status_code == 403
        assert autocomplete(client, "contacts", "contact", "emails", "").status_code == 403
    assert result_ids(autocomplete(marketer_client, "contacts", "contactlist", "contacts", "vip")) == {
        world.alice.contact.pk
    }


# --- add and change forms: relation choices ---------------------------------


def form_of(response):
    assert response.status_code == 200, response.status_code
    return response.context["adminform"].form


def test_campaign_add_form_offers_only_own_smtp_accounts_and_lists(world, other_client):
    response = other_client.get(admin_url("campaign", "add"))
    form = form_of(response)
    assert "owner" not in form.fields
    assert list(form.fields["smtp_account"].queryset) == [world.mallory.smtpaccount]
    assert list(form.fields["lists"].queryset) == [world.mallory.contactlist]
    assert "Mallory Relay Account" in html(response)
    assert "Mallory Newsletter List" in html(response)
    assert_no_alice(response)


def test_campaign_change_form_offers_only_own_smtp_accounts_and_lists(world, other_client):
    response = other_client.get(admin_url("campaign", "change", world.mallory.campaign.pk))
    form = form_of(response)
    assert set(form.fields["smtp_account"].queryset) == {world.mallory.smtpaccount}
    assert set(form.fields["lists"].queryset) == {world.mallory.contactlist}
    assert_no_alice(response)


def test_contact_list_form_offers_only_own_contacts(world, other_client):
    response = other_client.get(admin_url("contactlist", "change", world.mallory.contactlist.pk))
    form = form_of(response)
    assert set(form.fields["contacts"].queryset) == {world.mallory.contact}
    assert_no_alice(response)


def campaign_post_data(**overrides):
    data = {
        "name": "Summer Campaign",
        "subject": "Summer",
        "body_html": "<p>Summer</p>",
        "body_text": "",
        "track_opens": "on",
        "track_clicks": "on",
        "scheduled_at_0": "",
        "scheduled_at_1": "",
    }
    data.update(overrides)
    return data


def test_campaign_add_rejects_other_owners_smtp_account(world, other_client):
    data = campaign_post_data(smtp_account=world.alice.smtpaccount.pk, lists=[world.mallory.contactlist.pk])
    response = other_client.post(admin_url("campaign", "add"), data)
    form = form_of(response)
    assert "smtp_account" in form.errors
    assert form.errors["smtp_account"].as_data()[0].code == "invalid_choice"
    assert not Campaign.objects.filter(name="Summer Campaign").exists()
    assert_no_alice(response)


def test_campaign_add_rejects_other_owners_list(world, other_client):
    data = campaign_post_data(smtp_account=world.mallory.smtpaccount.pk, lists=[world.alice.contactlist.pk])
    response = other_client.post(admin_url("campaign", "add"), data)
    form = form_of(response)
    assert "lists" in form.errors
    assert form.errors["lists"].as_data()[0].code == "invalid_choice"
    assert not Campaign.objects.filter(name="Summer Campaign").exists()
    assert_no_alice(response)


def test_campaign_add_with_own_choices_succeeds(world, other_client, other_marketer):
    data = campaign_post_data(smtp_account=world.mallory.smtpaccount.pk, lists=[world.mallory.contactlist.pk])
    response = other_client.post(admin_url("campaign", "add"), data)
    assert response.status_code == 302
    campaign = Campaign.objects.get(name="Summer Campaign")
    assert campaign.owner == other_marketer
    assert campaign.smtp_account == world.mallory.smtpaccount
    assert list(campaign.lists.all()) == [world.mallory.contactlist]


def test_campaign_change_rejects_other_owners_smtp_account(world, other_client):
    campaign = world.mallory.campaign
    data = campaign_post_data(name=campaign.name, smtp_account=world.alice.smtpaccount.pk)
    response = other_client.post(admin_url("campaign", "change", campaign.pk), data)
    assert "smtp_account" in form_of(response).errors
    campaign.refresh_from_db()
    assert campaign.smtp_account == world.mallory.smtpaccount


def test_contact_list_add_rejects_other_owners_contact(world, other_client):
    data = {"name": "Stolen List", "description": "", "contacts": [world.alice.contact.pk]}
    response = other_client.post(admin_url("contactlist", "add"), data)
    form = form_of(response)
    assert form.errors["contacts"].as_data()[0].code == "invalid_choice"
    assert not ContactList.objects.filter(name="Stolen List").exists()
    assert world.alice.contact.lists.count() == 1


# --- list filters -----------------------------------------------------------


def add_second_set(part, title):
    """A second campaign (with email, link, event) and a second list for the same owner.

    The admin renders a relation filter only when it offers two or more choices
    (counting the empty one of a nullable or many-to-many relation), and silently
    ignores the parameter of a filter it does not render.
    """
    owner = part.owner
    contact_list = ContactListFactory(owner=owner, name=f"{title} Second List", contacts=[part.contact])
    smtp = SmtpAccountFactory(owner=owner, name=f"{title} Second Relay")
    campaign = CampaignFactory(owner=owner, name=f"{title} Second Campaign", smtp_account=smtp)
    email = EmailFactory(campaign=campaign, contact=part.contact, to_email=part.contact.email)
    link = LinkFactory(campaign=campaign)
    EventFactory(email=email, link=link)
    return contact_list


@pytest.fixture
def two_of_each(world):
    add_second_set(world.alice, "Alice")
    add_second_set(world.mallory, "Mallory")
    return world


def filter_displays(response):
    """Every choice label of every list filter on a changelist, by filter title."""
    cl = response.context["cl"]
    return {str(spec.title): [str(choice["display"]) for choice in spec.choices(cl)] for spec in cl.filter_specs}


@pytest.mark.parametrize(
    "key, title, own_label",
    [
        ("campaign", "SMTP account", "Mallory Relay Account"),
        ("campaign", "lists", "Mallory Newsletter List"),
        ("contact", "contact list", "Mallory Newsletter List"),
        ("email", "campaign", "Mallory Spring Campaign"),
        ("link", "campaign", "Mallory Spring Campaign"),
        ("event", "campaign", "Mallory Spring Campaign"),
    ],
)
def test_relation_list_filters_show_only_own_objects(key, title, own_label, two_of_each, other_client, marketer_client):
    response = other_client.get(admin_url(key, "changelist"))
    displays = filter_displays(response)
    assert own_label in displays[title]
    assert not any("alice" in label.lower() for labels in displays.values() for label in labels)
    assert_no_alice(response)

    # The owner's filter offers their own object.
    own = filter_displays(marketer_client.get(admin_url(key, "changelist")))
    assert own_label.replace("Mallory", "Alice") in own[title]
    assert not any("mallory" in label.lower() for labels in own.values() for label in labels)


@pytest.mark.parametrize(
    "key, param, target",
    [
        ("campaign", "smtp_account__id__exact", "smtpaccount"),
        ("campaign", "lists__id__exact", "contactlist"),
        ("contact", "lists__id__exact", "contactlist"),
        ("email", "campaign__id__exact", "campaign"),
        ("link", "campaign__id__exact", "campaign"),
        ("event", "campaign__id__exact", "campaign"),
    ],
)
def test_filtering_by_other_owners_object_shows_nothing(key, param, target, two_of_each, other_client):
    world = two_of_each
    assert filter_displays(other_client.get(admin_url(key, "changelist")))  # the filters are rendered
    response = other_client.get(admin_url(key, "changelist"), {param: world.alice.objects[target].pk})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []
    assert_no_alice(response)


def test_filters_and_columns_ignore_another_owners_list_holding_my_contact(world, other_client, marketer_client):
    # Rows may point across owners (a superuser can put mallory's contact into
    # alice's list); mallory still must not see the name of alice's list.
    world.alice.contactlist.contacts.add(world.mallory.contact)

    response = other_client.get(admin_url("contact", "changelist"))
    assert filter_displays(response)["contact list"] == ["All", "Mallory Newsletter List", "-"]
    assert_no_alice(response)

    # Alice sees her list in her filter, and nothing of mallory's.
    own = marketer_client.get(admin_url("contact", "changelist"))
    assert filter_displays(own)["contact list"] == ["All", "Alice Newsletter List", "-"]
    assert "mallory" not in html(own).lower()


def test_campaign_filter_ignores_another_owners_list_on_my_campaign(world, marketer_client):
    world.alice.campaign.lists.add(world.mallory.contactlist)
    response = marketer_client.get(admin_url("campaign", "changelist"))
    assert filter_displays(response)["lists"] == ["All", "Alice Newsletter List", "-"]
    assert "mallory" not in html(response).lower()


# --- actions ----------------------------------------------------------------


@pytest.mark.parametrize("key", ALL_OWNED)
def test_delete_selected_with_other_owners_ids_deletes_nothing(key, world, other_client):
    alice_obj = world.alice.objects[key]
    data = {"action": "delete_selected", "_selected_action": [alice_obj.pk], "index": "0"}

    confirm = other_client.post(admin_url(key, "changelist"), data)
    if OWNED[key][3]:
        # The confirmation page lists nothing: the selection is read through the scoped queryset.
        assert confirm.status_code == 200
        assert list(confirm.context["queryset"]) == []
        assert confirm.context["deletable_objects"] == [[]]
        assert world.alice.markers[key] not in html(confirm)
    elif confirm.status_code == 302:
        # A read-only admin with actions of its own (emails): delete is not one of them.
        assert "delete_selected" not in dict(
            other_client.get(admin_url(key, "changelist")).context["action_form"].fields["action"].choices
        )
    else:
        # Read-only admins without actions: the POST just renders mallory's own changelist.
        assert confirm.status_code == 200
        assert confirm.context["action_form"] is None
        assert list(confirm.context["cl"].result_list) == [world.mallory.objects[key]]
    assert exists(alice_obj)

    done = other_client.post(admin_url(key, "changelist"), {**data, "post": "yes"})
    assert done.status_code in ((302,) if OWNED[key][3] else (200, 302))
    assert exists(alice_obj)
    assert exists(world.mallory.objects[key])


@pytest.mark.parametrize("key", ["contact", "contactlist", "emailtemplate", "campaign", "smtpaccount"])
def test_delete_selected_across_all_deletes_only_own_objects(key, world, other_client, other_marketer):
    if key in ("contactlist", "campaign", "smtpaccount"):
        # A segment's conditions protect the lists and campaigns they name.
        Segment.objects.filter(owner=other_marketer).delete()
    if key == "smtpaccount":
        # Campaigns and subscription forms protect their SMTP account.
        Campaign.objects.filter(owner=other_marketer).delete()
        SubscriptionForm.objects.filter(owner=other_marketer).delete()
    if key == "campaign":
        # Deleting a campaign deletes its ledger rows, which marketers may not delete (read-only admins).
        Email.objects.filter(campaign__owner=other_marketer).delete()
        Link.objects.filter(campaign__owner=other_marketer).delete()
    mallory_obj, alice_obj = world.mallory.objects[key], world.alice.objects[key]
    data = {
        "action": "delete_selected",
        "select_across": "1",
        "index": "0",
        "post": "yes",
        "_selected_action": [mallory_obj.pk],
    }
    response = other_client.post(admin_url(key, "changelist"), data)
    assert response.status_code == 302
    assert not exists(mallory_obj)
    assert exists(alice_obj)


def test_smtp_test_connection_action_skips_other_owners_accounts(world, other_client, monkeypatch):
    from sending import smtp

    tested = []
    monkeypatch.setattr(smtp, "test_connection", tested.append)  # records, never connects
    data = {"action": "test_connection", "_selected_action": [world.alice.smtpaccount.pk], "index": "0"}
    response = other_client.post(admin_url("smtpaccount", "changelist"), data)
    assert response.status_code == 302
    assert tested == []
    world.alice.smtpaccount.refresh_from_db()
    assert world.alice.smtpaccount.state.last_tested_at is None


# --- saving: owner and per-owner unique names -------------------------------

ADD_DATA = {
    "smtpaccount": {
        **NO_BOUNCE_MAILBOX,
        "name": "Fresh Relay",
        "from_name": "Fresh",
        "from_email": "fresh@fresh.example",
        "reply_to": "",
        "host": "smtp.fresh.example",
        "port": "587",
        "security": "starttls",
        "username": "",
        "new_password": "",
        "max_per_minute": "15",
        "max_per_hour": "500",
        "max_per_day": "2000",
        "batch_size": "50",
    },
    "contact": {"email": "fresh@fresh.example", "name": "Fresh Person", "attributes": "{}", "status": "subscribed"},
    "contactlist": {"name": "Fresh List", "description": ""},
    "emailtemplate": {"name": "Fresh Template", "subject": "Hi", "body_html": "<p>Hi</p>", "body_text": ""},
    "campaign": campaign_post_data(name="Fresh Campaign"),
    # Its list and SMTP account: the marketer's own, filled in by add_data().
    "subscriptionform": {
        "title": "Fresh Signup",
        "consent_text": "Yes please.",
        "attributes_asked": "City",
        "double_opt_in": "on",
        "enabled": "on",
    },
    "segment": {
        "name": "Fresh Segment",
        "description": "",
        "match": "all",
        "conditions-TOTAL_FORMS": "1",
        "conditions-INITIAL_FORMS": "0",
        "conditions-MIN_NUM_FORMS": "1",
        "conditions-MAX_NUM_FORMS": "1000",
        "conditions-0-field": "attribute",
        "conditions-0-attribute": "City",
        "conditions-0-operator": "equals",
        "conditions-0-value": "Pune",
    },
}
LOOKUP = {
    "smtpaccount": {"name": "Fresh Relay"},
    "contact": {"email": "fresh@fresh.example"},
    "contactlist": {"name": "Fresh List"},
    "emailtemplate": {"name": "Fresh Template"},
    "campaign": {"name": "Fresh Campaign"},
    "subscriptionform": {"title": "Fresh Signup"},
    "segment": {"name": "Fresh Segment"},
}


def add_data(key, world_of_owner):
    data = dict(ADD_DATA[key])
    if key == "subscriptionform":
        data.update(contact_list=world_of_owner.contactlist.pk, smtp_account=world_of_owner.smtpaccount.pk)
    return data


@pytest.mark.parametrize("key", WRITABLE)
def test_add_form_has_no_owner_field_for_marketers(key, marketer_client):
    form = form_of(marketer_client.get(admin_url(key, "add")))
    assert "owner" not in form.fields
    assert form.fields  # a real form was rendered


@pytest.mark.parametrize("key", WRITABLE)
def test_add_sets_owner_to_logged_in_marketer(key, world, marketer, other_marketer, marketer_client):
    model = OWNED[key][2]
    # A forged owner in the POST is ignored: the field is not on the form.
    response = marketer_client.post(admin_url(key, "add"), {**add_data(key, world.alice), "owner": other_marketer.pk})
    assert response.status_code == 302, response.context["adminform"].form.errors
    created = model._default_manager.get(**LOOKUP[key])
    assert created.owner == marketer


# key: field and a value that clashes with alice's own object of that model
CLASHES = {
    "smtpaccount": ("name", "Alice Relay Account"),
    "contact": ("email", "VIP@Alice-Corp.example"),  # addresses are unique case-insensitively
    "contactlist": ("name", "Alice Newsletter List"),
    "emailtemplate": ("name", "Alice Welcome Template"),
    "segment": ("name", "Alice Loyal Segment"),
}


@pytest.mark.parametrize("key", list(CLASHES))
def test_same_name_for_same_owner_is_a_form_error(key, world, marketer, marketer_client):
    model = OWNED[key][2]
    field, value = CLASHES[key]
    before = model._default_manager.count()
    response = marketer_client.post(admin_url(key, "add"), {**ADD_DATA[key], field: value})
    form = form_of(response)  # 200 with the form again, not an IntegrityError
    assert form.errors
    assert 'class="errornote"' in html(response)
    assert model._default_manager.count() == before


@pytest.mark.parametrize("key", list(CLASHES))
def test_same_name_for_another_owner_is_allowed(key, world, other_marketer, other_client):
    model = OWNED[key][2]
    field, value = CLASHES[key]
    response = other_client.post(admin_url(key, "add"), {**ADD_DATA[key], field: value})
    assert response.status_code == 302, response.context["adminform"].form.errors
    lookup = {f"{field}__iexact": value, "owner": other_marketer}
    assert model._default_manager.filter(**lookup).count() == 1


@pytest.mark.parametrize("key", list(CLASHES))
def test_renaming_into_a_clash_is_a_form_error(key, world, marketer, marketer_client):
    model = OWNED[key][2]
    field, value = CLASHES[key]
    other = {
        "smtpaccount": lambda: SmtpAccountFactory(owner=marketer, name="Second Relay"),
        "contact": lambda: ContactFactory(owner=marketer, email="second@alice-corp.example"),
        "contactlist": lambda: ContactListFactory(owner=marketer, name="Second List"),
        "emailtemplate": lambda: EmailTemplateFactory(owner=marketer, name="Second Template"),
        "segment": lambda: SegmentFactory(owner=marketer, name="Second Segment"),
    }[key]()
    response = marketer_client.post(admin_url(key, "change", other.pk), {**ADD_DATA[key], field: value})
    assert form_of(response).errors
    other.refresh_from_db()
    assert getattr(other, field) != value
    assert model._default_manager.filter(owner=marketer).count() == 2


# --- superusers -------------------------------------------------------------


@pytest.mark.parametrize("key", ALL_OWNED)
def test_superuser_sees_every_owners_objects(key, world, superuser_client):
    response = superuser_client.get(admin_url(key, "changelist"))
    assert response.status_code == 200
    assert set(response.context["cl"].result_list) == {world.alice.objects[key], world.mallory.objects[key]}
    assert world.alice.markers[key] in html(response)
    assert world.mallory.markers[key] in html(response)
    for owner_world in (world.alice, world.mallory):
        assert superuser_client.get(admin_url(key, "change", owner_world.objects[key].pk)).status_code == 200
        assert superuser_client.get(admin_url(key, "history", owner_world.objects[key].pk)).status_code == 200


def test_superuser_campaign_form_offers_every_owners_choices(world, superuser_client):
    form = form_of(superuser_client.get(admin_url("campaign", "add")))
    assert "owner" in form.fields
    assert set(form.fields["smtp_account"].queryset) == {world.alice.smtpaccount, world.mallory.smtpaccount}
    assert set(form.fields["lists"].queryset) == {world.alice.contactlist, world.mallory.contactlist}


def test_superuser_filters_list_every_owners_objects(world, superuser_client):
    displays = filter_displays(superuser_client.get(admin_url("campaign", "changelist")))
    assert {"Alice Relay Account", "Mallory Relay Account"} <= set(displays["SMTP account"])
    assert {"Alice Newsletter List", "Mallory Newsletter List"} <= set(displays["lists"])


def test_superuser_adds_for_a_chosen_owner(world, marketer, superuser_client):
    data = {"name": "Made By Root", "description": "", "owner": marketer.pk}
    response = superuser_client.post(admin_url("contactlist", "add"), data)
    assert response.status_code == 302
    assert ContactList.objects.get(name="Made By Root").owner == marketer


def test_superuser_cannot_attach_one_owners_smtp_account_to_anothers_campaign(world, marketer, superuser_client):
    data = campaign_post_data(owner=marketer.pk, smtp_account=world.mallory.smtpaccount.pk)
    response = superuser_client.post(admin_url("campaign", "add"), data)
    assert "smtp_account" in form_of(response).errors
    assert not Campaign.objects.filter(name="Summer Campaign").exists()


# --- system admins: superusers only -------------------------------------------


@pytest.fixture
def system_objects(marketer):
    from axes.models import AccessAttempt
    from django.contrib.auth.models import Group
    from django_celery_beat.models import IntervalSchedule, PeriodicTask
    from django_celery_results.models import TaskResult

    interval = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.SECONDS)
    task = PeriodicTask.objects.create(
        name="dispatch-every-ten-seconds", task="delivery.tasks.dispatch", interval=interval
    )
    result = TaskResult.objects.create(task_id="result-0001", task_name="delivery.tasks.dispatch", status="SUCCESS")
    group = Group.objects.get(name="Marketers")
    attempt = AccessAttempt.objects.create(
        username=marketer.username,
        ip_address="203.0.113.5",
        user_agent="curl",
        get_data="",
        post_data="",
        http_accept="*/*",
        path_info="/admin/login/",
        failures_since_start=3,
    )
    return {
        "axes.accessattempt": attempt,
        "django_celery_beat.periodictask": task,
        "django_celery_beat.intervalschedule": interval,
        "django_celery_results.taskresult": result,
        "accounts.user": marketer,
        "auth.group": group,
    }


SYSTEM_MODELS = [
    "axes.accessattempt",
    "django_celery_beat.periodictask",
    "django_celery_beat.intervalschedule",
    "django_celery_results.taskresult",
    "accounts.user",
    "auth.group",
]


def system_url(label, view, *args):
    app_label, model_name = label.split(".")
    return reverse(f"admin:{app_label}_{model_name}_{view}", args=args)


@pytest.mark.parametrize("label", SYSTEM_MODELS)
def test_system_admins_are_forbidden_to_marketers(label, system_objects, marketer_client):
    obj = system_objects[label]
    assert marketer_client.get(system_url(label, "changelist")).status_code == 403
    assert marketer_client.get(system_url(label, "add")).status_code == 403
    assert marketer_client.get(system_url(label, "change", obj.pk)).status_code == 403
    assert marketer_client.post(system_url(label, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert type(obj)._default_manager.filter(pk=obj.pk).exists()


@pytest.mark.parametrize("label", SYSTEM_MODELS)
def test_system_admins_work_for_superusers(label, system_objects, superuser_client):
    obj = system_objects[label]
    response = superuser_client.get(system_url(label, "changelist"))
    assert response.status_code == 200
    assert obj in set(response.context["cl"].result_list)
    assert superuser_client.get(system_url(label, "change", obj.pk)).status_code == 200


def test_marketer_index_lists_only_owned_models(world, marketer_client, superuser_client):
    response = marketer_client.get(reverse("admin:index"))
    assert response.status_code == 200
    app_list = response.context["app_list"]
    models = {(app["app_label"], m["object_name"].lower()) for app in app_list for m in app["models"]}
    # Import jobs and API tokens are owned too; their isolation tests are in
    # tests/campaigns/test_import_rules.py and tests/api/test_tokens.py.
    assert models == {spec[:2] for spec in OWNED.values()} | {("contacts", "importjob"), ("api", "apitoken")}
    for label in SYSTEM_MODELS:
        assert system_url(label, "changelist") not in html(response)

    for app_label in ("django_celery_beat", "django_celery_results", "auth"):
        app_index = marketer_client.get(reverse("admin:app_list", args=[app_label]))
        assert app_index.status_code in (403, 404)

    root = superuser_client.get(reverse("admin:index"))
    for label in SYSTEM_MODELS:
        assert system_url(label, "changelist") in html(root)


def test_marketer_cannot_approve_users_through_user_admin_action(system_objects, marketer, marketer_client):
    pending = User.objects.create_user("pending", "pending@example.com", "x", is_staff=True)
    data = {"action": "approve_selected", "_selected_action": [pending.pk], "index": "0"}
    response = marketer_client.post(reverse("admin:accounts_user_changelist"), data)
    assert response.status_code == 403
    pending.refresh_from_db()
    assert pending.approved_at is None


# --- no N+1 on the changelists ----------------------------------------------


def make_rich(key, owner):
    """One object of `key` for `owner`, with the related rows its changelist row shows."""
    if key == "campaign":
        campaign = CampaignFactory(owner=owner, lists=[ContactListFactory(owner=owner)])
        EmailFactory(campaign=campaign)
        return campaign
    if key == "contact":
        contact = ContactFactory(owner=owner)
        ContactListFactory(owner=owner, contacts=[contact])
        ContactListFactory(owner=owner, contacts=[contact])
        return contact
    if key == "contactlist":
        return ContactListFactory(owner=owner, contacts=[ContactFactory(owner=owner), ContactFactory(owner=owner)])
    if key == "smtpaccount":
        account = SmtpAccountFactory(owner=owner)
        CampaignFactory(owner=owner, smtp_account=account)
        return account
    if key == "emailtemplate":
        return EmailTemplateFactory(owner=owner)
    if key == "subscriptionform":
        return SubscriptionFormFactory(owner=owner)
    if key == "segment":
        contact_list, campaign = ContactListFactory(owner=owner), CampaignFactory(owner=owner)
        return SegmentFactory(
            owner=owner,
            conditions=[
                {"field": "list", "operator": "on_list", "contact_list": contact_list},
                {"field": "campaign", "operator": "clicked", "campaign": campaign},
                {"field": "created", "operator": "date_after", "value": "2026-01-01"},
                {"field": "activity", "operator": "opened_in_last_days", "value": "30"},
            ],
        )
    campaign = CampaignFactory(owner=owner)
    if key == "email":
        return EmailFactory(campaign=campaign)
    if key == "link":
        return LinkFactory(campaign=campaign)
    if key == "event":
        email = EmailFactory(campaign=campaign)
        return EventFactory(email=email, link=LinkFactory(campaign=campaign), kind=Event.Kind.CLICK)
    raise AssertionError(key)


@pytest.mark.parametrize("key", ALL_OWNED)
def test_changelist_query_count_does_not_grow_with_rows(key, marketer, marketer_client, django_assert_max_num_queries):
    url = admin_url(key, "changelist")
    make_rich(key, marketer)
    marketer_client.get(url)  # warm caches (content types, permissions)
    with CaptureQueriesContext(connection) as one:
        response = marketer_client.get(url)
    assert response.context["cl"].result_count == 1

    for _ in range(19):
        make_rich(key, marketer)
    with django_assert_max_num_queries(len(one)) as twenty:
        response = marketer_client.get(url)
    assert len(response.context["cl"].result_list) == 20
    assert len(twenty) == len(one)
