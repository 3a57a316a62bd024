"""VERP addresses: an Email id signed into the envelope sender, read back from a bounce's recipient."""

import pytest
from django.core.exceptions import ValidationError

from sending import verp
from tests.factories import SmtpAccountFactory

BOUNCES = "bounces@mail.example.com"


@pytest.mark.parametrize("email_id", [1, 35, 36, 123456789, 2**63 - 1])
def test_an_address_carries_its_email_id_back(email_id):
    address = verp.address(bounce_address=BOUNCES, email_id=email_id)
    local, _, domain = address.partition("@")
    assert domain == "mail.example.com" and local.startswith("bounces+")
    assert len(local) <= verp.LOCAL_PART_LIMIT
    assert local == local.lower() and local.replace("+", "").replace("-", "").isalnum()
    assert verp.parse(address) == email_id
    assert verp.parse(f"<{address.upper()}>") == email_id  # a receiver that changes the case


def test_a_forged_or_damaged_token_names_no_email():
    address = verp.address(bounce_address=BOUNCES, email_id=42)
    payload, mac = address.split("+")[1].split("@")[0].split("-")
    other = verp.address(bounce_address=BOUNCES, email_id=43).split("+")[1].split("@")[0].split("-")[1]
    assert verp.parse(f"bounces+{verp._base36(43)}-{mac}@mail.example.com") is None  # another id, 42's MAC
    assert verp.parse(f"bounces+{payload}-{other}@mail.example.com") is None  # 42 with 43's MAC
    assert verp.parse(f"bounces+{payload}-{mac[:-1]}@mail.example.com") is None
    for value in (None, "", "bounces@mail.example.com", "bounces+@x", "bounces+zz-@x", "+-", "a" * 300):
        assert verp.parse(value) is None


def test_a_token_signed_before_a_key_rotation_still_verifies(settings):
    address = verp.address(bounce_address=BOUNCES, email_id=7)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-key-" + "x" * 50
    assert verp.parse(address) == 7
    settings.SECRET_KEY_FALLBACKS = []
    assert verp.parse(address) is None


@pytest.mark.django_db
def test_the_envelope_sender_is_the_from_address_unless_a_bounce_address_is_set(marketer):
    account = SmtpAccountFactory(owner=marketer, from_email="news@alice.example")
    assert verp.envelope_sender(account=account, email_id=5) == "news@alice.example"
    account.bounce_address = "Bounces@Mail.Alice.Example"
    sender = verp.envelope_sender(account=account, email_id=5)
    assert sender.startswith("bounces+") and sender.endswith("@mail.alice.example")
    assert verp.parse(sender) == 5


@pytest.mark.django_db
@pytest.mark.parametrize(
    "value", ["bounces+x@mail.example.com", "a-very-long-bounce-mailbox-name-here@mail.example.com"]
)
def test_a_bounce_address_leaves_room_for_the_token(marketer, value):
    account = SmtpAccountFactory.build(owner=marketer, bounce_address=value)
    with pytest.raises(ValidationError) as error:
        account.full_clean()
    assert "bounce_address" in error.value.message_dict
