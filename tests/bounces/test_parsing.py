"""bounces.parsing against real reports (tests/bounces/samples/README.md says where each comes from)
and against reports built for our own emails: kind, recipients, status, and which email."""

from pathlib import Path

import pytest

from bounces import parsing
from bounces.parsing import Kind
from sending import verp
from tests.bounces import reports
from tracking import tokens

SAMPLES = Path(__file__).parent / "samples"
BOUNCES = "bounces@mail.alice.example"

# (sample, kind, original recipients, status)
CORPUS = [
    ("flufl/aol_01.txt", Kind.HARD, ("screenname@aol.com",), ""),
    ("flufl/dsn_01.txt", Kind.HARD, ("userx@example.com",), "5.0.0"),
    ("flufl/dsn_02.txt", Kind.SOFT, ("zzzzz@example.uk",), "4.4.7"),
    ("flufl/dsn_03.txt", Kind.HARD, ("userx@example.be",), ""),
    ("flufl/dsn_05.txt", Kind.DELAYED, ("userx@example.cz",), "4.4.1"),
    ("flufl/dsn_10.txt", Kind.HARD, ("anne.person@dom.ain",), "5.0.0"),
    ("flufl/dsn_11.txt", Kind.HARD, ("joem@example.com",), "5.1.1"),
    ("flufl/dsn_14.txt", Kind.HARD, ("userx@example.com.dk",), "5.1.1"),
    ("flufl/dsn_17.txt", Kind.DELAYED, ("userx@example.fi",), "4.3.0"),
    ("flufl/dumbass_01.txt", Kind.NOT_A_REPORT, (), ""),
    ("flufl/exim_01.txt", Kind.HARD, ("userx@its.example.nl",), "5.1.1"),
    ("flufl/groupwise_01.txt", Kind.HARD, ("userx@example.edu",), ""),
    ("flufl/hotpop_01.txt", Kind.HARD, ("userx@example.com",), ""),
    ("flufl/llnl_01.txt", Kind.HARD, ("user1@example.gov",), ""),
    ("flufl/microsoft_01.txt", Kind.HARD, ("userx@example.com",), ""),
    ("flufl/newmailru_01.txt", Kind.HARD, ("zzzzz@newmail.ru",), ""),
    ("flufl/postfix_01.txt", Kind.HARD, ("xxxxx@local.ie",), "5.1.1"),
    ("flufl/postfix_05.txt", Kind.HARD, ("userx@example.net",), ""),
    ("flufl/qmail_03.txt", Kind.HARD, ("userx@example.jp",), "5.1.1"),
    ("flufl/qmail_04.txt", Kind.HARD, ("userx@example.au",), ""),
    ("flufl/sendmail_01.txt", Kind.HARD, ("zzzzz@nfg.nl", "zzzzz@shaft.coal.nl"), ""),
    ("flufl/simple_03.txt", Kind.DELAYED, ("userx@example.za",), ""),
    ("flufl/simple_15.txt", Kind.HARD, ("userx@example.be",), "5.1.1"),
    ("flufl/simple_34.txt", Kind.HARD, ("roland@example.com",), "5.1.1"),
    ("flufl/simple_44.txt", Kind.SOFT, ("user@example.com",), "4.4.4"),
    ("flufl/sina_01.txt", Kind.HARD, ("userx@sina.com", "usery@sina.com"), ""),
    ("flufl/smtp32_04.txt", Kind.HARD, ("after_another@example.net", "one_bad_address@example.net"), "5.3.0"),
    ("flufl/yahoo_01.txt", Kind.SOFT, ("userx@example.com",), "4.4.1"),
    ("flufl/yahoo_11.txt", Kind.HARD, ("bad_user@aol.com",), "5.1.1"),
    ("flufl/yahoo_13.txt", Kind.HARD, ("bogus-address@example.net",), "5.1.1"),
    ("flufl/yale_01.txt", Kind.HARD, ("userx@cs.yale.edu", "userx@yale.edu"), ""),
    ("postfix/delayed_4.2.2.eml", Kind.DELAYED, ("asha@full.test",), "4.2.2"),
    ("postfix/hard_5.1.1.eml", Kind.HARD, ("ghost@nosuch.test",), "5.1.1"),
    ("postfix/soft_4.2.2_expired.eml", Kind.SOFT, ("asha@full.test",), "4.2.2"),
    ("arf/not_spam.eml", Kind.NOT_A_REPORT, (), "not-spam"),
    ("arf/redacted_headers_only.eml", Kind.COMPLAINT, ("meera@hotmail.example",), "abuse"),
    ("arf/rfc5965_abuse.eml", Kind.COMPLAINT, ("user@example.com",), "abuse"),
]


@pytest.mark.parametrize(("sample", "kind", "recipients", "status"), CORPUS, ids=[row[0] for row in CORPUS])
def test_each_sample_reads_as_its_kind_recipients_and_status(sample, kind, recipients, status):
    report = parsing.parse((SAMPLES / sample).read_bytes())
    assert (report.kind, report.recipients, report.status) == (kind, recipients, status)


def test_the_corpus_covers_every_sample_file():
    files = {str(p.relative_to(SAMPLES)) for p in SAMPLES.glob("*/*") if p.suffix in (".txt", ".eml")}
    assert files == {row[0] for row in CORPUS}


def test_a_postfix_dsn_gives_its_diagnostic_and_the_original_message_id():
    report = parsing.parse((SAMPLES / "postfix/hard_5.1.1.eml").read_bytes())
    assert report.text == (
        "550 5.1.1 <ghost@nosuch.test>: Recipient address rejected: User unknown in virtual mailbox table"
    )
    assert report.message_id == "<orig-ghost@nosuch.test@alice.example>"
    assert report.email_id is None  # its VERP token was made up


def test_the_email_id_comes_from_the_verp_address_the_report_was_mailed_to():
    address = verp.address(bounce_address=BOUNCES, email_id=4242)
    report = parsing.parse(reports.dsn(to=address, recipient="asha@example.in"))
    assert (report.kind, report.email_id, report.status) == (Kind.HARD, 4242, "5.1.1")
    assert report.text == "550 5.1.1 <asha@example.in>: Recipient address rejected: User unknown"

    delivered_to = reports.dsn(to="Bounces <bounces@mail.alice.example>", recipient="asha@example.in")
    delivered_to = f"Delivered-To: {address.upper()}\r\n".encode() + delivered_to
    assert parsing.parse(delivered_to).email_id == 4242


def test_the_email_id_comes_from_the_return_path_of_the_original_when_the_report_went_elsewhere():
    address = verp.address(bounce_address=BOUNCES, email_id=77)
    original = reports.original_headers(to="asha@example.in", message_id="<m77@alice.example>", return_path=address)
    report = parsing.parse(reports.dsn(to="postmaster@alice.example", recipient="asha@example.in", original=original))
    assert (report.email_id, report.message_id) == (77, "<m77@alice.example>")


def test_a_forged_verp_address_names_no_email():
    forged = verp.address(bounce_address=BOUNCES, email_id=77).replace("+", "+1", 1)
    report = parsing.parse(reports.dsn(to=forged, recipient="asha@example.in"))
    assert report.kind == Kind.HARD and report.email_id is None


def test_an_arf_complaint_names_its_email_by_original_mail_from_or_the_unsubscribe_link():
    address = verp.address(bounce_address=BOUNCES, email_id=9)
    original = reports.original_headers(to="asha@example.in", message_id="<m9@alice.example>")
    report = parsing.parse(
        reports.arf(to="fbl@alice.example", recipient="asha@example.in", original=original, original_mail_from=address)
    )
    assert (report.kind, report.recipients, report.email_id, report.status) == (
        Kind.COMPLAINT,
        ("asha@example.in",),
        9,
        "abuse",
    )
    assert report.message_id == "<m9@alice.example>"

    # A feedback loop that strips the envelope still includes the original with its List-Unsubscribe.
    link = f"List-Unsubscribe: <https://app.example/t/u/{tokens.unsubscribe_token(10)}/>\r\n"
    report = parsing.parse(reports.arf(to="fbl@alice.example", recipient="asha@example.in", original=link + original))
    assert report.email_id == 10


def test_a_mail_to_the_unsubscribe_address_is_an_unsubscribe_request_for_its_email():
    report = parsing.parse(reports.unsubscribe_request(email_id=31))
    assert (report.kind, report.email_id) == (Kind.UNSUBSCRIBE, 31)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage",
        b"Subject: unsubscribe 31.forged\r\n\r\nplease\r\n",
        b"From: a@b.example\r\nSubject: Out of office\r\n\r\nI am away until Monday.\r\n",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\n",
    ],
)
def test_what_is_no_report_reads_as_none_and_never_raises(raw):
    assert parsing.parse(raw).kind == Kind.NOT_A_REPORT
