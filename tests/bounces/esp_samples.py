"""Each ESP's webhook post as its documentation shows it, signed the way the ESP signs it.

`post_for(esp, kind, ...)` returns the keyword arguments of Django's test client `post()`: the body,
its content type, and the ESP's signature headers. Kinds: "bounce" (a hard bounce) and "complaint"
(where the ESP reports complaints), "delivery" and "deferred".
"""

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from sending.esp import Esp

MAILGUN_KEY = "key-0123456789abcdef0123456789abcdef"
MANDRILL_KEY = "mandrill-webhook-key-0123456789"
MAILERSEND_SECRET = "mailersend-signing-secret-0123456789"
POSTAL_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())


def _public_key_body(private_key) -> str:
    """A public key as the ESPs' consoles show it: the PEM's base64 body on one line."""
    pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "".join(line for line in pem.decode().splitlines() if not line.startswith("-----"))


POSTAL_PUBLIC_KEY = _public_key_body(POSTAL_KEY)
SENDGRID_PUBLIC_KEY = _public_key_body(SENDGRID_KEY)

# The signing key each ESP's account is configured with in the tests ("" for basic auth only).
SIGNING_KEYS = {
    Esp.SENDGRID: SENDGRID_PUBLIC_KEY,
    Esp.MAILGUN: MAILGUN_KEY,
    Esp.MANDRILL: MANDRILL_KEY,
    Esp.POSTAL: POSTAL_PUBLIC_KEY,
    Esp.MAILERSEND: MAILERSEND_SECRET,
}
# The ESPs whose posts carry a signature of their own (beside our basic auth).
SIGNING_ESPS = tuple(SIGNING_KEYS)
# Postal reports no complaints.
COMPLAINING_ESPS = tuple(esp for esp in Esp if esp not in (Esp.POSTAL, Esp.AMAZON_SES))


@dataclass
class Sample:
    recipient: str
    email_id: int | None  # None: the ESP echoes no metadata (Postal, MailerSend), or the test leaves it out


def post_for(esp, kind, sample, *, url="", forged=False):
    """The test client's post() keyword arguments for `kind` of `esp`; `forged`: signed with another key."""
    build = {
        Esp.SENDGRID: _sendgrid,
        Esp.MAILGUN: _mailgun,
        Esp.POSTMARK: _postmark,
        Esp.BREVO: _brevo,
        Esp.MAILJET: _mailjet,
        Esp.SPARKPOST: _sparkpost,
        Esp.MANDRILL: _mandrill,
        Esp.POSTAL: _postal,
        Esp.MAILERSEND: _mailersend,
    }[esp]
    return build(kind, sample, url=url, forged=forged)


def _json_post(payload, headers=None):
    return {"data": json.dumps(payload), "content_type": "application/json", "headers": headers or {}}


def _metadata(sample):
    return {} if sample.email_id is None else {"email_id": str(sample.email_id)}


# --- SendGrid: ECDSA P-256 over the timestamp and the body ---------------------------------------


def _sendgrid(kind, sample, *, url, forged):
    event = {
        "bounce": {"event": "bounce", "type": "bounce", "status": "5.1.1", "reason": "550 5.1.1 unknown user"},
        "complaint": {"event": "spamreport"},
        "delivery": {"event": "delivered", "response": "250 OK"},
        "deferred": {"event": "deferred", "response": "400 try again later", "attempt": "1"},
    }[kind]
    payload = [
        {
            "email": sample.recipient,
            "timestamp": 1513299569,
            "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
            "sg_event_id": "sg_event_id",
            "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
            **event,
            **_metadata(sample),
        }
    ]
    body = json.dumps(payload).encode()
    timestamp = str(int(time.time()))
    key = ec.generate_private_key(ec.SECP256R1()) if forged else SENDGRID_KEY
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "data": body,
        "content_type": "application/json",
        "headers": {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        },
    }


# --- Mailgun: HMAC-SHA256 of timestamp + token, in the body ---------------------------------------


def _mailgun(kind, sample, *, url, forged):
    event = {
        "bounce": {
            "event": "failed",
            "severity": "permanent",
            "reason": "bounce",
            "delivery-status": {
                "code": 550,
                "message": "5.1.1 The email account that you tried to reach does not exist.",
                "description": "",
            },
        },
        "complaint": {"event": "complained"},
        "delivery": {"event": "delivered", "delivery-status": {"code": 250, "message": "OK"}},
        "deferred": {"event": "failed", "severity": "temporary", "reason": "generic"},
    }[kind]
    timestamp, token = str(int(time.time())), "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
    key = b"key-forged" if forged else MAILGUN_KEY.encode()
    signature = hmac.new(key, (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return _json_post(
        {
            "signature": {"timestamp": timestamp, "token": token, "signature": signature},
            "event-data": {
                "id": "CPgfbmQMTCKtHW6uIWtuVe",
                "timestamp": 1521472262.908181,
                "recipient": sample.recipient,
                "message": {"headers": {"message-id": "20130503182626.18666.16540@mg.example.com"}},
                "user-variables": _metadata(sample),
                "tags": [],
                **event,
            },
        }
    )


# --- Postmark, Brevo, Mailjet, SparkPost: basic auth alone ---------------------------------------


def _postmark(kind, sample, *, url, forged):
    common = {"MessageID": "883953f4-6105-42a2-a16a-77a8eac79483", "Metadata": _metadata(sample), "Tag": "news"}
    payload = {
        "bounce": {
            "RecordType": "Bounce",
            "ID": 4323372036854775807,
            "Type": "HardBounce",
            "TypeCode": 1,
            "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
            "Email": sample.recipient,
            "BouncedAt": "2019-11-05T16:33:54.9070259Z",
            "Inactive": True,
        },
        "complaint": {
            "RecordType": "SpamComplaint",
            "ID": 42,
            "Type": "SpamComplaint",
            "Email": sample.recipient,
            "BouncedAt": "2019-11-05T16:33:54.9070259Z",
        },
        "delivery": {
            "RecordType": "Delivery",
            "Recipient": sample.recipient,
            "DeliveredAt": "2019-11-05T16:33:54.9070259Z",
            "Details": "Test delivery webhook details",
        },
        "deferred": {"RecordType": "Bounce", "ID": 43, "Type": "Transient", "Email": sample.recipient},
    }[kind]
    return _json_post({**payload, **common})


def _brevo(kind, sample, *, url, forged):
    event = {"bounce": "hard_bounce", "complaint": "spam", "delivery": "delivered", "deferred": "deferred"}[kind]
    payload = {
        "event": event,
        "email": sample.recipient,
        "id": 26224,
        "date": "2020-10-09 00:00:00",
        "ts": 1604933619,
        "message-id": "<201798300811.5787683@relay.domain.com>",
        "ts_event": 1604933654,
        "subject": "My first newsletter",
        "tag": "news",
        "ts_epoch": 1604933654000,
        "reason": "550 5.1.1 unknown user" if kind == "bounce" else "",
    }
    if sample.email_id is not None:
        payload["X-Mailin-custom"] = json.dumps(_metadata(sample))
    return _json_post(payload)


def _mailjet(kind, sample, *, url, forged):
    event = {
        "bounce": {
            "event": "bounce",
            "blocked": False,
            "hard_bounce": True,
            "error_related_to": "recipient",
            "error": "user unknown",
        },
        "complaint": {"event": "spam", "source": "JMRPP"},
        "delivery": {"event": "sent", "smtp_reply": "sent (250 2.0.0 OK 1433333948 fa5si855896wjc.199 - gsmtp)"},
        "deferred": {"event": "bounce", "hard_bounce": False, "error_related_to": "domain", "error": "greylisted"},
    }[kind]
    payload = {
        "time": 1433333949,
        "MessageID": 19421777835146490,
        "Message_GUID": "1ab23cd4-e567-8901-2345-6789f0gh1i2j",
        "email": sample.recipient,
        "mj_campaign_id": 7257,
        "mj_contact_id": 4,
        "customcampaign": "",
        "CustomID": "",
        "Payload": json.dumps(_metadata(sample)) if sample.email_id is not None else "",
        **event,
    }
    return _json_post(payload)


def _sparkpost(kind, sample, *, url, forged):
    event = {
        "bounce": {
            "type": "bounce",
            "bounce_class": "10",
            "raw_reason": "550 5.1.1 <recipient@example.com>: Recipient address rejected: User unknown",
        },
        "complaint": {"type": "spam_complaint", "fbtype": "abuse", "report_by": "server.email.com"},
        "delivery": {"type": "delivery", "raw_reason": "250 2.0.0 OK"},
        "deferred": {"type": "delay", "bounce_class": "21", "raw_reason": "452 4.2.2 mailbox full"},
    }[kind]
    payload = [
        {
            "msys": {
                "message_event": {
                    "event_id": "92356927693813856",
                    "timestamp": "1460989507",
                    "transmission_id": "65832150921904138",
                    "message_id": "0e0d94b7-9085-4e3c-ab30-e3f2cd9c273e",
                    "campaign_id": "newsletter",
                    "rcpt_to": sample.recipient,
                    "raw_rcpt_to": sample.recipient,
                    "rcpt_meta": _metadata(sample),
                    **event,
                }
            }
        }
    ]
    return _json_post(payload)


# --- Mandrill: HMAC-SHA1 of the URL and the sorted form fields ------------------------------------


def _mandrill(kind, sample, *, url, forged):
    event = {"bounce": "hard_bounce", "complaint": "spam", "delivery": "send", "deferred": "deferral"}[kind]
    events = [
        {
            "event": event,
            "_id": "exampleaaaaaaaaaaaaaaaaaaaaaaaaa",
            "ts": 1385020180,
            "msg": {
                "ts": 1365109999,
                "subject": "This an example webhook message",
                "email": sample.recipient,
                "sender": "news@alice.example",
                "tags": ["webhook-example"],
                "state": "bounced" if kind == "bounce" else "sent",
                "metadata": _metadata(sample),
                "_id": "exampleaaaaaaaaaaaaaaaaaaaaaaaaa",
                "bounce_description": "bad_mailbox",
                "diag": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
            },
        }
    ]
    fields = {"mandrill_events": json.dumps(events)}
    signed = url + "".join(key + fields[key] for key in sorted(fields))
    key = b"forged-key" if forged else MANDRILL_KEY.encode()
    signature = base64.b64encode(hmac.new(key, signed.encode(), hashlib.sha1).digest()).decode()
    return {
        "data": urlencode(fields),
        "content_type": "application/x-www-form-urlencoded",
        "headers": {"X-Mandrill-Signature": signature},
    }


# --- Postal: RSA (SHA1, PKCS#1 v1.5) over the body -----------------------------------------------


def _postal(kind, sample, *, url, forged):
    status = {"bounce": "HardFail", "delivery": "Sent", "deferred": "SoftFail"}[kind]
    payload = {
        "event": "MessageDeliveryFailed" if kind == "bounce" else "MessageSent",
        "timestamp": 1491838023,
        "uuid": "0f8e4b1a-0d22-4cba-8c5f-9a3d2d6e2c11",
        "payload": {
            "status": status,
            "details": "Permanent SMTP delivery error when sending to mx.example.com",
            "output": "550 5.1.1 The email account that you tried to reach does not exist.",
            "sent_with_ssl": False,
            "timestamp": 1491838023.09,
            "time": 0.52,
            "message": {
                "id": 12345,
                "token": "abcdef123",
                "direction": "outgoing",
                "message_id": "5817a64332f44_4ec93ff59e79d154565eb@app34.mail",
                "to": sample.recipient,
                "from": "news@alice.example",
                "subject": "Welcome",
                "timestamp": 1477945177.12994,
                "spam_status": "NotSpam",
                "tag": "news",
            },
        },
    }
    body = json.dumps(payload).encode()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if forged else POSTAL_KEY
    signature = key.sign(body, padding.PKCS1v15(), hashes.SHA1())
    return {
        "data": body,
        "content_type": "application/json",
        "headers": {"X-Postal-Signature": base64.b64encode(signature).decode()},
    }


# --- MailerSend: HMAC-SHA256 of the body ---------------------------------------------------------


def _mailersend(kind, sample, *, url, forged):
    activity, morph = {
        "bounce": ("hard_bounced", {"object": "recipient_bounce", "reason": "Host or domain name not found"}),
        "complaint": ("spam_complaint", {"object": "spam_complaint", "reason": None}),
        "delivery": ("delivered", None),
        "deferred": ("soft_bounced", {"object": "recipient_bounce", "reason": "Mailbox full"}),
    }[kind]
    payload = {
        "type": f"activity.{activity}",
        "domain_id": "7nxe3yjmeq28vp0k",
        "created_at": "2022-01-01T12:00:00.000000Z",
        "webhook_id": "7z3m5jgrogdpyo6n",
        "url": "https://www.example.com/webhook",
        "data": {
            "object": "activity",
            "id": "62b1a5e6b7a5c8b1d40d3d1a",
            "type": activity,
            "created_at": "2022-01-01T12:00:00.000000Z",
            "email": {
                "object": "email",
                "id": "62b1a5e6b7a5c8b1d40d3d19",
                "created_at": "2022-01-01T12:00:00.000000Z",
                "from": "news@alice.example",
                "subject": "Welcome",
                "status": "rejected",
                "tags": None,
                "message": {"object": "message", "id": "62b1a5e5b7a5c8b1d40d3d18"},
                "recipient": {"object": "recipient", "id": "62b1a5e5b7a5c8b1d40d3d17", "email": sample.recipient},
            },
            "morph": morph,
            "template_id": "",
        },
    }
    body = json.dumps(payload).encode()
    secret = b"forged-secret" if forged else MAILERSEND_SECRET.encode()
    return {
        "data": body,
        "content_type": "application/json",
        "headers": {"Signature": hmac.new(secret, body, hashlib.sha256).hexdigest()},
    }
