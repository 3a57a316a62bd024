"""Provider presets on the SMTP account admin form, and the defaults of an account made by hand.

Each test fills the real admin add (or change) form as a browser would: it starts
from the values the page offers (its initial values), changes what a marketer
would type or choose, and posts the lot.
"""

import pytest
from django.urls import reverse

from sending.models import SmtpAccount
from sending.presets import PRESET_FIELDS, PRESETS
from tests.factories import SmtpAccountFactory
from tests.sending.account_forms import NO_BOUNCE_MAILBOX

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:sending_smtpaccount_add")


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def as_browser_sends(form):
    """The POST a browser makes for `form` untouched: every field with the value the page shows."""
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if isinstance(value, bool):
            if value:
                data[name] = "on"
            continue
        data[name] = "" if value is None else str(value)
    return data


def add_form_data(client, **typed):
    page = client.get(ADD_URL)
    assert page.status_code == 200
    data = {**as_browser_sends(page.context["adminform"].form), **NO_BOUNCE_MAILBOX}
    data.update({"name": "Main relay", "from_email": "news@alice.example", "from_name": "Alice Ltd"})
    data.update({k: str(v) for k, v in typed.items()})
    return data


def form_errors(response):
    if response.context and "adminform" in response.context:
        return response.context["adminform"].form.errors
    return None


def saved(response, marketer, name="Main relay"):
    assert response.status_code == 302, form_errors(response)
    return SmtpAccount.objects.get(owner=marketer, name=name)


def preset_values(key):
    return {name: PRESETS[key][name] for name in PRESET_FIELDS}


def account_values(account):
    return {name: getattr(account, name) for name in PRESET_FIELDS}


# --- the form offers the presets ----------------------------------------------------------------


def test_the_add_form_offers_every_preset_next_to_the_server_fields(marketer_client):
    page = marketer_client.get(ADD_URL)

    assert page.status_code == 200
    form = page.context["adminform"].form
    choices = dict(form.fields["preset"].choices)
    assert choices[""].startswith("— none")
    for key, preset in PRESETS.items():
        assert choices[key] == preset["label"]
    html = page.content.decode()
    assert '<select name="preset"' in html
    assert '<option value="gmail">Gmail (personal)</option>' in html
    server = next(fs for fs in page.context["adminform"] if fs.name == "Server")
    assert server.fields[0] == "preset"
    # Nothing is chosen until the marketer chooses.
    assert form["preset"].value() in (None, "")


# --- choosing a preset ------------------------------------------------------------------------------


def test_gmail_fills_host_port_security_and_limits_even_when_host_and_port_are_blank(marketer_client, marketer):
    data = add_form_data(marketer_client, preset="gmail", host="", port="")

    account = saved(marketer_client.post(ADD_URL, data), marketer)

    assert (account.host, account.port, account.security) == ("smtp.gmail.com", 587, SmtpAccount.Security.STARTTLS)
    assert (account.max_per_minute, account.max_per_hour, account.max_per_day) == (20, 100, 500)
    assert account.batch_size == 50  # not a preset field: the form's value stands
    assert account.owner == marketer


def test_a_preset_replaces_what_was_typed_in_its_fields(marketer_client, marketer):
    data = add_form_data(
        marketer_client,
        preset="gmail",
        host="mail.example.net",
        port=2525,
        security="none",
        max_per_minute=999,
        max_per_hour=9999,
        max_per_day=99999,
        batch_size=25,
    )

    account = saved(marketer_client.post(ADD_URL, data), marketer)

    assert account_values(account) == preset_values("gmail")
    assert account.batch_size == 25


def test_a_preset_fills_fields_left_blank_or_missing_from_the_post(marketer_client, marketer):
    data = add_form_data(marketer_client, preset="gmail")
    for name in PRESET_FIELDS:
        del data[name]

    account = saved(marketer_client.post(ADD_URL, data), marketer)

    assert account_values(account) == preset_values("gmail")


@pytest.mark.parametrize("key", list(PRESETS))
def test_every_preset_fills_its_published_values(marketer_client, marketer, key):
    data = add_form_data(marketer_client, preset=key, host="", port="")

    account = saved(marketer_client.post(ADD_URL, data), marketer)

    assert account_values(account) == preset_values(key)


def test_a_preset_does_not_hide_errors_in_other_fields(marketer_client, marketer):
    data = add_form_data(marketer_client, preset="gmail", host="", port="", from_email="")

    response = marketer_client.post(ADD_URL, data)

    assert response.status_code == 200
    errors = form_errors(response)
    assert set(errors) == {"from_email"}
    assert not SmtpAccount.objects.exists()


def test_an_unknown_preset_is_refused(marketer_client, marketer):
    data = add_form_data(marketer_client, preset="no-such-provider", host="", port="")

    response = marketer_client.post(ADD_URL, data)

    assert response.status_code == 200
    assert set(form_errors(response)) == {"preset", "host", "port"}
    assert not SmtpAccount.objects.exists()


def test_a_preset_on_the_change_form_updates_server_and_limits_and_keeps_the_password(marketer_client, marketer):
    account = SmtpAccountFactory(
        owner=marketer,
        name="Old relay",
        host="smtp.old.example",
        port=25,
        security="none",
        max_per_minute=5,
        batch_size=10,
        raw_password="kept-secret",
    )
    url = reverse("admin:sending_smtpaccount_change", args=[account.pk])
    page = marketer_client.get(url)
    data = {**as_browser_sends(page.context["adminform"].form), **NO_BOUNCE_MAILBOX}
    data["preset"] = "microsoft_365"

    response = marketer_client.post(url, data)

    assert response.status_code == 302, form_errors(response)
    account.refresh_from_db()
    assert account_values(account) == preset_values("microsoft_365")
    assert account.batch_size == 10
    assert account.get_password() == "kept-secret"


# --- no preset --------------------------------------------------------------------------------------


def test_without_a_preset_the_typed_values_are_kept(marketer_client, marketer):
    data = add_form_data(
        marketer_client,
        preset="",
        host="mail.example.net",
        port=2525,
        security="ssl",
        max_per_minute=7,
        max_per_hour=70,
        max_per_day=700,
        batch_size=25,
        username="alice",
        new_password="pw",
    )

    account = saved(marketer_client.post(ADD_URL, data), marketer)

    assert (account.host, account.port, account.security) == ("mail.example.net", 2525, SmtpAccount.Security.SSL)
    assert (account.max_per_minute, account.max_per_hour, account.max_per_day, account.batch_size) == (7, 70, 700, 25)
    assert (account.username, account.get_password()) == ("alice", "pw")


def test_without_a_preset_a_blank_host_is_an_error(marketer_client):
    data = add_form_data(marketer_client, preset="", host="")

    response = marketer_client.post(ADD_URL, data)

    assert response.status_code == 200
    assert set(form_errors(response)) == {"host"}
    assert not SmtpAccount.objects.exists()


def test_a_new_account_without_a_preset_gets_the_conservative_defaults(marketer_client, marketer):
    page = marketer_client.get(ADD_URL)
    form = page.context["adminform"].form
    # What the empty form shows...
    assert (form["max_per_minute"].value(), form["batch_size"].value()) == (15, 50)

    # ...is what a marketer who only fills in the server gets.
    data = add_form_data(marketer_client, host="mail.example.net")
    account = saved(marketer_client.post(ADD_URL, data), marketer)

    assert (account.max_per_minute, account.max_per_hour, account.max_per_day) == (15, 500, 2000)
    assert account.batch_size == 50
    assert (account.port, account.security) == (587, SmtpAccount.Security.STARTTLS)
