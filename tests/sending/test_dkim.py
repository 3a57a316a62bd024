"""DKIM per SMTP account: every kind of message is signed with the account's key, and dkimpy verifies
what the SMTP server received against the TXT record `manage.py dkim_key` printed; the key is
encrypted at rest, rotates, aligns with the From domain; the account page's panel is the owner's alone
and its "Check DNS" asks a real DNS server (tests.dns_server)."""

import re
from io import StringIO

import dkim as dkimpy
import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.utils import timezone
from dkim.canonicalization import Relaxed
from dkim.util import parse_tag_value

from campaigns.models import Email
from contacts.models import SubscriptionRequest
from contacts.subscriptions import confirmation_mail
from delivery import previews
from sending import crypto, dkim, services
from sending.models import SmtpAccount
from tests.dns_server import dns_server  # noqa: F401  (pytest fixture)
from tests.factories import SubscriptionFormFactory

ALGORITHMS = ["rsa", "ed25519"]
BODY = '<p>Hello {{ name }}</p><p><a href="https://shop.example.com/offer">The offer</a></p>'


def make_key(account, *options, domain="alice.example", selector="s1", algorithm="rsa"):
    """Run `manage.py dkim_key` and return the record it printed, as a dkim.DkimRecord."""
    out = StringIO()
    args = [str(account.pk), "--domain", domain, "--selector", selector, "--algorithm", algorithm, *options]
    call_command("dkim_key", *args, stdout=out, stderr=StringIO())
    account.refresh_from_db()  # the instance the engine's campaigns hold, as a worker reads it
    return printed_record(out.getvalue())


def printed_record(output):
    fields = dict(re.findall(r"^(Name|Value):\s+(.+)$", output, re.MULTILINE))
    return dkim.DkimRecord(name=fields["Name"], value=fields["Value"])


def verifies(content, record):
    """dkimpy's verdict on a received message, its key looked up in a DNS holding only `record`."""

    def dnsfunc(name, timeout=5):
        return record.value.encode() if name == f"{record.name}.".encode() else None

    return dkimpy.verify(content, dnsfunc=dnsfunc)


def signature_tags(content):
    header = re.search(rb"^DKIM-Signature:(.*?)\r\n(?![ \t])", content, re.MULTILINE | re.DOTALL).group(1)
    return parse_tag_value(re.sub(rb"\s+", b"", header))


def signed_headers(content):
    return signature_tags(content)[b"h"].decode().split(":")


def raw_column(account, column):
    table = connection.ops.quote_name(SmtpAccount._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {connection.ops.quote_name(column)} FROM {table} WHERE id = %s", [account.pk])
        return cursor.fetchone()[0]


# --- every kind of message, verified by dkimpy ------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_tracked_campaign_message_is_signed_and_verifies_against_the_printed_record(engine, algorithm):
    record = make_key(engine.account, "--enable", algorithm=algorithm)
    campaign = engine.campaign(engine.contact_list("asha@example.in"), body_html=BODY)
    engine.send_now(campaign)

    engine.tick()

    (received,) = engine.handler.messages
    assert "/t/c/" in received.content.decode() and "/t/o/" in received.content.decode()  # tracked
    assert verifies(received.content, record)
    tags = signature_tags(received.content)
    assert tags[b"d"] == b"alice.example" and tags[b"s"] == b"s1"
    assert tags[b"a"] == (b"rsa-sha256" if algorithm == "rsa" else b"ed25519-sha256")
    assert tags[b"c"] == b"relaxed/relaxed"
    assert signed_headers(received.content) == [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "from",  # over-signed: a second From, To or Subject added on the way breaks the signature
        "to",
        "subject",
    ]
    assert engine.statuses(campaign) == {"asha@example.in": Email.Status.SENT}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_changed_body_or_an_added_from_fails_verification(engine, algorithm):
    record = make_key(engine.account, "--enable", algorithm=algorithm)
    engine.send_now(engine.campaign(engine.contact_list("asha@example.in"), body_html=BODY))
    engine.tick()
    content = engine.handler.messages[0].content
    assert verifies(content, record)

    assert not verifies(content.replace(b"Hello Asha", b"Hello Eve!"), record)
    header_end = content.index(b"\r\n\r\n")
    second_from = content[:header_end] + b"\r\nFrom: ceo@alice.example" + content[header_end:]
    assert not verifies(second_from, record)
    assert not verifies(content, dkim.DkimRecord(record.name, make_key_value_elsewhere(algorithm)))


def make_key_value_elsewhere(algorithm):
    """A record value for another key of the same algorithm."""
    algorithm = SmtpAccount.DkimAlgorithm.RSA if algorithm == "rsa" else SmtpAccount.DkimAlgorithm.ED25519
    pem = dkim.generate_private_key(algorithm)
    return dkim.record_for(domain="alice.example", selector="s1", algorithm=algorithm, private_pem=pem).value


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_text_only_campaign_with_reply_to_is_signed(engine, algorithm):
    SmtpAccount.objects.filter(pk=engine.account.pk).update(reply_to="desk@alice.example")
    record = make_key(engine.account, "--enable", algorithm=algorithm)
    campaign = engine.campaign(
        engine.contact_list("ravi@example.in"), body_html="", body_text="Hello {{ name }},\n\nplain  news.\n\n\n"
    )
    engine.send_now(campaign)

    engine.tick()

    content = engine.handler.messages[0].content
    assert verifies(content, record)
    assert "reply-to" in signed_headers(content)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_test_send_is_signed(engine, algorithm):
    record = make_key(engine.account, "--enable", algorithm=algorithm)
    campaign = engine.campaign(engine.contact_list("asha@example.in"), body_html=BODY)

    result = previews.send_test(campaign=campaign, addresses=["me@example.com", "boss@example.com"])

    assert result.sent == ["me@example.com", "boss@example.com"]
    assert len(engine.handler.messages) == 2
    for received in engine.handler.messages:
        assert received.parsed()["Subject"].startswith("[TEST]")
        assert verifies(received.content, record)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_subscription_confirmation_is_signed(engine, marketer, algorithm):
    record = make_key(engine.account, "--enable", algorithm=algorithm)
    form = SubscriptionFormFactory(owner=marketer, smtp_account=engine.account, title="Alice's newsletter")
    request = SubscriptionRequest.objects.create(
        form=form, email="asha@example.in", consent_text=form.consent_text, created_at=timezone.now()
    )

    confirmation_mail.send(request=request)

    (received,) = engine.handler.messages
    assert verifies(received.content, record)
    assert {"from", "to", "subject", "date", "message-id"} <= set(signed_headers(received.content))


def test_an_account_that_does_not_sign_sends_no_signature(engine):
    make_key(engine.account)  # a key, signing left off
    engine.send_now(engine.campaign(engine.contact_list("asha@example.in")))

    engine.tick()

    assert b"DKIM-Signature" not in engine.handler.messages[0].content


def test_a_batch_reads_the_key_once_and_signs_every_message(engine, monkeypatch):
    record = make_key(engine.account, "--enable", algorithm="ed25519")
    engine.send_now(engine.campaign(engine.contact_list(*[f"reader{i}@example.org" for i in range(5)])))
    loaded = []
    original = dkim.Signer.__init__

    def counting_init(self, **kwargs):
        loaded.append(kwargs["selector"])
        original(self, **kwargs)

    monkeypatch.setattr(dkim.Signer, "__init__", counting_init)  # counts, and parses the key as ever

    engine.tick()

    assert loaded == ["s1"]
    assert len(engine.handler.messages) == 5
    assert all(verifies(m.content, record) for m in engine.handler.messages)


def test_a_key_the_configured_keys_cannot_decrypt_pauses_the_account_and_loses_nothing(engine, settings):
    make_key(engine.account, "--enable")
    campaign = engine.campaign(engine.contact_list("asha@example.in"))
    engine.send_now(campaign)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the key's own is gone

    engine.tick()

    assert engine.handler.messages == [] and engine.handler.connections == 0
    assert engine.statuses(campaign) == {"asha@example.in": Email.Status.PENDING}
    engine.account.refresh_from_db()
    assert engine.account.is_paused and "FIELD_ENCRYPTION_KEYS" in engine.account.pause_reason


# --- canonicalisation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\r\n",
        b"\r\n\r\n\r\n",
        b"no line break",
        b"trailing \t \r\nspaces  and\ttabs\t\r\n\r\n",
        b" \r\n",
        b"a\r\n\r\nb\r\n \r\n\t\r\n",
        b"=20encoded=\r\n soft break\r\n",
    ],
)
def test_the_body_is_canonicalised_exactly_as_dkimpy_does(body):
    assert dkim.relaxed_body(body) == Relaxed.canonicalize_body(body)


# --- the key: at rest, rotation, alignment ------------------------------------------------------------


def test_the_private_key_is_encrypted_at_rest_and_never_printed(engine):
    out = StringIO()
    call_command("dkim_key", str(engine.account.pk), "--domain", "alice.example", "--selector", "s1", stdout=out)

    stored = raw_column(engine.account, "dkim_private_key")
    pem = Fernet(crypto.settings.FIELD_ENCRYPTION_KEYS[0].encode()).decrypt(stored.encode()).decode()
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert "PRIVATE KEY" not in stored and pem not in stored
    assert pem.splitlines()[1] not in stored
    assert "PRIVATE" not in out.getvalue() and pem.splitlines()[1] not in out.getvalue()
    assert "Name:  s1._domainkey.alice.example" in out.getvalue()
    assert re.search(r"^Value: v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]{300,}$", out.getvalue(), re.MULTILINE)


def test_rotating_encryption_keys_re_encrypts_the_dkim_key(engine, settings):
    record = make_key(engine.account)
    old = raw_column(engine.account, "dkim_private_key")
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, *settings.FIELD_ENCRYPTION_KEYS]

    call_command("rotate_encryption_keys", stdout=StringIO())

    rotated = raw_column(engine.account, "dkim_private_key")
    assert rotated != old
    Fernet(new_key.encode()).decrypt(rotated.encode())  # the newest key reads it alone
    engine.account.refresh_from_db()
    assert dkim.dkim_record(engine.account) == record


def test_without_rotate_the_command_prints_the_existing_record_and_with_it_makes_a_new_key(engine):
    first = make_key(engine.account, "--enable", algorithm="rsa")
    assert make_key(engine.account, selector="other") == first  # kept: no --rotate
    engine.send_now(engine.campaign(engine.contact_list("asha@example.in")))
    engine.tick()
    before = engine.handler.messages[0].content

    second = make_key(engine.account, "--rotate", selector="s2", algorithm="ed25519")

    assert second.name == "s2._domainkey.alice.example" and "k=ed25519" in second.value
    engine.send_now(engine.campaign(engine.contact_list("ravi@example.in", name="second")))
    engine.tick()
    after = engine.handler.messages[1].content
    assert verifies(after, second) and not verifies(after, first)
    assert verifies(before, first)  # mail signed before the rotation still verifies on the old record


@pytest.mark.parametrize("domain", ["other.example", "example", "evil-alice.example", "not a domain"])
def test_a_domain_the_from_address_does_not_align_with_is_refused(engine, domain):
    with pytest.raises(CommandError) as refused:
        make_key(engine.account, domain=domain)

    assert "alice.example" in str(refused.value) or "domain name" in str(refused.value)
    engine.account.refresh_from_db()
    assert engine.account.dkim_private_key == "" and engine.account.dkim_domain == ""


def test_a_parent_of_the_from_domain_aligns(engine):
    SmtpAccount.objects.filter(pk=engine.account.pk).update(from_email="news@mail.alice.example")
    engine.account.refresh_from_db()
    record = make_key(engine.account, "--enable", domain="Alice.Example.")

    assert record.name == "s1._domainkey.alice.example"
    engine.send_now(engine.campaign(engine.contact_list("asha@example.in")))
    engine.tick()
    assert verifies(engine.handler.messages[0].content, record)


def test_signing_cannot_be_turned_on_without_a_key(engine):
    with pytest.raises(dkim.DkimSetupError, match="Generate a DKIM key first"):
        services.set_dkim_signing(account=engine.account, enabled=True)


# --- the account page's panel ---------------------------------------------------------------------------


def change_url(account):
    return f"/admin/sending/smtpaccount/{account.pk}/change/"


def dkim_url(account):
    return f"/admin/sending/smtpaccount/{account.pk}/dkim/"


def test_the_panel_generates_a_key_shows_its_record_and_never_the_private_key(engine, marketer_client):
    page = marketer_client.get(change_url(engine.account)).content.decode()
    assert "No key yet." in page and 'value="alice.example"' in page

    response = marketer_client.post(
        dkim_url(engine.account),
        {
            "dkim_action": "generate",
            "dkim-domain": "alice.example",
            "dkim-selector": "mail1",
            "dkim-algorithm": "ed25519-sha256",
        },
        follow=True,
    )

    page = response.content.decode()
    engine.account.refresh_from_db()
    record = dkim.dkim_record(engine.account)
    assert record.name == "mail1._domainkey.alice.example"
    assert record.name in page and record.value in page
    assert "New DKIM key made" in page and "Signing off." in page
    pem = engine.account.get_dkim_private_key()
    assert pem.splitlines()[1] not in page and "PRIVATE KEY" not in page

    marketer_client.post(dkim_url(engine.account), {"dkim_action": "enable"})
    engine.account.refresh_from_db()
    assert engine.account.dkim_enabled
    assert "Signing on:" in marketer_client.get(change_url(engine.account)).content.decode()


def test_a_refused_key_says_why_and_keeps_what_was_typed(engine, marketer_client):
    response = marketer_client.post(
        dkim_url(engine.account),
        {
            "dkim_action": "generate",
            "dkim-domain": "bob.example",
            "dkim-selector": "mine",
            "dkim-algorithm": "rsa-sha256",
        },
        follow=True,
    )

    page = response.content.decode()
    assert "No DKIM key made: The DKIM domain bob.example must be the From address" in page
    assert 'value="bob.example"' in page and 'value="mine"' in page
    engine.account.refresh_from_db()
    assert not engine.account.has_dkim_key


def test_another_marketers_account_panel_is_404_and_changes_nothing(engine, other_client):
    for action in ("generate", "enable", "check"):
        response = other_client.post(
            dkim_url(engine.account),
            {
                "dkim_action": action,
                "dkim-domain": "alice.example",
                "dkim-selector": "x",
                "dkim-algorithm": "rsa-sha256",
            },
        )
        assert response.status_code == 404
    engine.account.refresh_from_db()
    assert not engine.account.has_dkim_key and not engine.account.dkim_enabled


def test_the_panel_needs_a_post_with_the_csrf_token(engine, marketer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(marketer)
    data = {
        "dkim_action": "generate",
        "dkim-domain": "alice.example",
        "dkim-selector": "s1",
        "dkim-algorithm": "rsa-sha256",
    }

    assert client.post(dkim_url(engine.account), data).status_code == 403
    assert client.get(dkim_url(engine.account)).status_code == 405
    engine.account.refresh_from_db()
    assert not engine.account.has_dkim_key

    token = client.get(change_url(engine.account)).context["csrf_token"]
    assert client.post(dkim_url(engine.account), {**data, "csrfmiddlewaretoken": str(token)}).status_code == 302
    engine.account.refresh_from_db()
    assert engine.account.has_dkim_key


def test_the_from_address_cannot_leave_the_signed_domain(engine, marketer_client):
    make_key(engine.account, "--enable")
    page = marketer_client.get(change_url(engine.account))
    data = {
        key: value
        for key, value in page.context["adminform"].form.initial.items()
        if value is not None and key in page.context["adminform"].form.fields
    }
    data.update(from_email="news@bob.example", name=engine.account.name)

    response = marketer_client.post(change_url(engine.account), data)

    assert response.status_code == 200
    assert "This account signs with DKIM for alice.example" in response.content.decode()
    engine.account.refresh_from_db()
    assert engine.account.from_email == "news@alice.example"


# --- "Check DNS", against a real DNS server --------------------------------------------------------------


@pytest.fixture
def local_dns(dns_server, settings):
    settings.DKIM_DNS_NAMESERVERS = ["127.0.0.1"]
    settings.DKIM_DNS_PORT = dns_server.port
    settings.DKIM_DNS_TIMEOUT_SECONDS = 1
    return dns_server


def check_page(client, account):
    return client.post(dkim_url(account), {"dkim_action": "check"}, follow=True).content.decode()


def test_check_dns_says_the_published_record_matches(engine, marketer_client, local_dns):
    record = make_key(engine.account, algorithm="rsa")  # 410 characters: two TXT strings
    local_dns.txt[record.name] = [record.value]

    page = check_page(marketer_client, engine.account)

    assert "DKIM record matches" in page
    assert local_dns.queries == [record.name]
    assert dkim.check_published_record(record).outcome == dkim.DnsOutcome.MATCHES


def test_check_dns_says_another_key_differs_and_a_missing_record_is_not_found(engine, marketer_client, local_dns):
    record = make_key(engine.account, algorithm="ed25519")
    local_dns.txt[record.name] = ["v=DKIM1; k=ed25519; p=" + "A" * 43 + "="]
    assert "DKIM record differs" in check_page(marketer_client, engine.account)

    local_dns.txt[record.name] = ["v=spf1 -all"]
    assert "DKIM record differs" in check_page(marketer_client, engine.account)

    local_dns.txt[record.name] = []
    assert "DKIM record not found" in check_page(marketer_client, engine.account)

    del local_dns.txt[record.name]
    assert "DKIM record not found" in check_page(marketer_client, engine.account)


def test_check_dns_reports_a_failing_or_silent_server_as_a_dns_error(engine, marketer_client, local_dns):
    record = make_key(engine.account)
    local_dns.txt[record.name] = [record.value]
    local_dns.failing = True
    assert "DKIM record DNS error" in check_page(marketer_client, engine.account)

    local_dns.failing, local_dns.silent = False, True
    page = check_page(marketer_client, engine.account)
    assert "DKIM record DNS error" in page and "within the time allowed" in page


def test_check_dns_without_a_key_asks_for_one_first(engine, marketer_client, local_dns):
    assert "DKIM: generate a key first." in check_page(marketer_client, engine.account)
    assert local_dns.queries == []
