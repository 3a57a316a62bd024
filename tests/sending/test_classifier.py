"""Every row of the design's SMTP reply classification table, through classifier.classify."""

import pytest

from sending.classifier import Verdict, classify

# (code, reply text as smtplib hands it over, expected verdict)
TABLE = [
    # 250: accepted
    (250, "2.0.0 OK: queued as 4XyZ", Verdict.SENT),
    (250, b"2.0.0 Ok", Verdict.SENT),
    # 421, 450, 451, 452, 454, any 4.x.x: throttled or transient
    (421, "4.7.0 Too many connections, try again later", Verdict.DEFERRED),
    (421, "Service not available, closing transmission channel", Verdict.DEFERRED),
    (450, "4.2.1 Mailbox temporarily unavailable", Verdict.DEFERRED),
    (451, "4.7.0 Temporary server error. Please try again later", Verdict.DEFERRED),
    (451, "4.3.0 Local error in processing", Verdict.DEFERRED),
    (452, "4.5.3 Too many recipients", Verdict.DEFERRED),
    (454, "4.7.0 TLS not available due to local problem", Verdict.DEFERRED),
    # "any 4.x.x": a 5xx basic code whose enhanced status says temporary
    (550, "4.7.1 Rate limited, try again later", Verdict.DEFERRED),
    (554, "4.4.2 Connection dropped", Verdict.DEFERRED),
    # 550 5.4.5, 554 5.2.0 quota, 535/534 auth: the account, not the recipient
    (550, "5.4.5 Daily user sending quota exceeded.", Verdict.ACCOUNT),
    (554, "5.2.0 Sending quota exceeded for this account", Verdict.ACCOUNT),
    (535, "5.7.8 Username and Password not accepted", Verdict.ACCOUNT),
    (535, b"5.7.8 Authentication credentials invalid", Verdict.ACCOUNT),
    (534, "5.7.9 Application-specific password required", Verdict.ACCOUNT),
    (534, "5.7.14 Please log in via your web browser", Verdict.ACCOUNT),
    # 550 5.1.1, 553 5.1.3, 5.2.1: the address
    (550, "5.1.1 The email account that you tried to reach does not exist", Verdict.BOUNCED),
    (553, "5.1.3 Invalid address syntax", Verdict.BOUNCED),
    (550, "5.2.1 The email account that you tried to reach is disabled", Verdict.BOUNCED),
    (554, "5.2.1 Mailbox disabled, not accepting messages", Verdict.BOUNCED),
    # other 5xx: the message
    (550, "5.7.1 Message rejected as spam by content filtering", Verdict.REJECTED),
    (552, "5.3.4 Message size exceeds fixed limit", Verdict.REJECTED),
    (554, "5.6.0 Message headers malformed", Verdict.REJECTED),
    (500, "Syntax error, command unrecognised", Verdict.REJECTED),
    # no reply at all (connection lost after DATA, timeout): unknown
    (None, "connection lost", Verdict.UNKNOWN),
    (None, "", Verdict.UNKNOWN),
]


@pytest.mark.parametrize(("code", "text", "verdict"), TABLE, ids=[f"{c}-{str(t)[:24]}" for c, t, _ in TABLE])
def test_each_row_of_the_classification_table(code, text, verdict):
    result = classify(code, text)

    assert result.verdict == verdict
    assert result.code == code
    assert result.throttled is (verdict == Verdict.DEFERRED)


def test_the_reply_text_and_enhanced_code_are_kept_exactly():
    result = classify(550, b"5.1.1 <gone@example.org>: Recipient address rejected")

    assert result.enhanced == "5.1.1"
    assert result.text == "5.1.1 <gone@example.org>: Recipient address rejected"


def test_the_basic_code_in_the_text_is_not_taken_for_an_enhanced_code():
    # The sender stores "550 5.4.5 ..." (code and text joined): "550" must not shadow "5.4.5".
    assert classify(550, "550 5.4.5 Daily sending quota exceeded").verdict == Verdict.ACCOUNT
    assert classify(550, "550 5.1.1 User unknown").verdict == Verdict.BOUNCED


def test_quota_wording_without_an_account_code_is_a_plain_rejection():
    # A full mailbox is the recipient's quota, not the sending account's.
    assert classify(552, "5.2.2 Mailbox full: over quota").verdict == Verdict.REJECTED
