"""A local stand-in for Amazon SNS's HTTPS host: it serves a signing certificate and records the
subscription confirmations fetched from it; `sign` signs a message as SNS does with that certificate."""

import base64
import datetime
import http.server
import json
import ssl
import threading
import uuid
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"


def signing_certificate():
    """An RSA key and a self-signed certificate for it, as SNS's SigningCertURL serves."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.eu-west-1.amazonaws.com")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM)


class SnsServer:
    def __init__(self, tls_files):
        self.key, self.certificate_pem = signing_certificate()
        self.confirmed = []  # the paths (with query) of the confirmations fetched
        self.certificate_fetches = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = urlsplit(self.path).path
                if path.endswith(".pem"):
                    server.certificate_fetches += 1
                    self._answer(server.certificate_pem, "application/x-pem-file")
                elif path == "/confirm":
                    server.confirmed.append(self.path)
                    self._answer(b"<ConfirmSubscriptionResponse/>", "text/xml")
                else:
                    self.send_error(404)

            def _answer(self, body, content_type):
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls_files.cert_file, tls_files.key_file)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.base = f"https://localhost:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def certificate_url(self):
        return f"{self.base}/SimpleNotificationService-0123456789abcdef.pem"

    def sign(self, message, *, version="1", key=None, certificate_url=None):
        """`message` with SNS's SignatureVersion, SigningCertURL and Signature added."""
        signed = {**message, "SignatureVersion": version, "SigningCertURL": certificate_url or self.certificate_url}
        text = "".join(
            f"{field}\n{signed[field]}\n" for field in SIGNED_FIELDS[signed["Type"]] if field in signed
        ).encode()
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = (key or self.key).sign(text, padding.PKCS1v15(), algorithm)
        signed["Signature"] = base64.b64encode(signature).decode()
        return signed

    def subscription_confirmation(self):
        token = uuid.uuid4().hex
        return self.sign(
            {
                "Type": "SubscriptionConfirmation",
                "MessageId": str(uuid.uuid4()),
                "Token": token,
                "TopicArn": TOPIC_ARN,
                "Message": f"You have chosen to subscribe to the topic {TOPIC_ARN}.",
                "SubscribeURL": f"{self.base}/confirm?Action=ConfirmSubscription&Token={token}",
                "Timestamp": "2024-05-01T12:00:00.000Z",
            }
        )

    def notification(self, ses_notification, **sign_kwargs):
        return self.sign(
            {
                "Type": "Notification",
                "MessageId": str(uuid.uuid4()),
                "TopicArn": TOPIC_ARN,
                "Message": json.dumps(ses_notification),
                "Timestamp": "2024-05-01T12:00:00.000Z",
            },
            **sign_kwargs,
        )


def ses_bounce(recipient, *, email_id=None, bounce_type="Permanent"):
    """An SES bounce notification, with the original headers (ours among them) included."""
    headers = [{"name": "From", "value": "Alice Ltd <news@alice.example>"}, {"name": "To", "value": recipient}]
    if email_id is not None:
        headers.append({"name": "X-Metadata", "value": json.dumps({"email_id": str(email_id)})})
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": recipient,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": "2024-05-01T12:00:00.000Z",
            "feedbackId": "0100018f2b3c4d5e-example-000000",
        },
        "mail": {
            "timestamp": "2024-05-01T11:59:58.000Z",
            "source": "news@alice.example",
            "messageId": "0100018f2b3c4d5e-11111111-2222-3333-4444-555555555555-000000",
            "destination": [recipient],
            "headersTruncated": False,
            "headers": headers,
            "commonHeaders": {"from": ["Alice Ltd <news@alice.example>"], "to": [recipient], "subject": "Welcome"},
        },
    }


def ses_complaint(recipient, *, email_id=None):
    notification = ses_bounce(recipient, email_id=email_id)
    del notification["bounce"]
    notification["notificationType"] = "Complaint"
    notification["complaint"] = {
        "complainedRecipients": [{"emailAddress": recipient}],
        "complaintFeedbackType": "abuse",
        "timestamp": "2024-05-01T12:00:00.000Z",
        "feedbackId": "0100018f2b3c4d5e-example-000001",
    }
    return notification
