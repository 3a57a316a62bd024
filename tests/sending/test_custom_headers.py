"""Headers of the marketer's own ("Name: value" lines on an SMTP account or a campaign): what is refused,
with which message, on the admin forms too; a campaign's header replaces the account's of the same name."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from campaigns.models import Campaign
from sending import headers
from sending.models import SmtpAccount
from tests.campaigns.test_personalize import campaign_post
from tests.factories import SmtpAccountFactory
from tests.sending.test_smtp_presets import add_form_data, form_errors


def refusals(text):
    with pytest.raises(ValidationError) as refused:
        headers.validate_custom_headers(text)
    return refused.value.messages


def test_good_lines_pass_and_come_back_as_written_in_order():
    text = "X-Campaign-Code: spring-26\r\n\r\nX-Team:  Garden news \r\nPrecedence: bulk\n"

    headers.validate_custom_headers(text)

    assert headers.custom_headers(text) == (
        ("X-Campaign-Code", "spring-26"),
        ("X-Team", "Garden news"),
        ("Precedence", "bulk"),
    )
    assert headers.custom_headers("") == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("X-Grüße: hallo", "Line 1: “X-Grüße” is not a header name: use only the letters A-Z, digits and hyphens."),
        ("X Code: 1", "Line 1: “X Code” is not a header name: use only the letters A-Z, digits and hyphens."),
        ("-X: 1", "Line 1: “-X” is not a header name: use only the letters A-Z, digits and hyphens."),
        (
            "just some words",
            "Line 1: “just some words” is not a header: write it as Name: value (like X-Campaign-Code: spring-26).",
        ),
        (": value", "Line 1: “: value” is not a header: write it as Name: value (like X-Campaign-Code: spring-26)."),
        ("X-Empty:", "Line 1: X-Empty has no value."),
        (
            "X-A: 1\nX-B: 2\rBcc: victim@example.org",
            "Line 2: a line break or control character is not allowed in a header.",
        ),
        ("X-A: nul\x00here", "Line 1: a line break or control character is not allowed in a header."),
        ("X-A: 1\n folded on", "Line 2: it starts with a space: write each header on one line, as Name: value."),
        ("X-A: 1\nx-a: 2", "Line 2: x-a is written twice; keep one."),
        ("X-Long: " + "a" * 901, f"Line 1: the value of X-Long is longer than {headers.MAX_VALUE_CHARS} characters."),
    ],
)
def test_a_bad_line_is_refused_with_its_number_and_why(text, message):
    assert refusals(text) == [message]


@pytest.mark.parametrize(
    "name",
    [
        "From",
        "to",
        "SUBJECT",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        "List-Unsubscribe",
        "List-Id",
        "List-Help",
        "Feedback-ID",
        "Return-Path",
        "DKIM-Signature",
        "Received",
        "Bcc",
        "Cc",
        "Sender",
        "Reply-To",
        "Resent-To",
        "ARC-Seal",
    ],
)
def test_the_headers_the_product_or_the_servers_write_are_refused(name):
    assert refusals(f"X-Fine: 1\n{name}: something") == [
        f"Line 2: {name} is set by the product (or by the mail servers on the way); it cannot be set here."
    ]


def test_every_bad_line_is_reported_at_once():
    assert refusals("Bcc: a@example.org\nX-Ok: 1\nnonsense") == [
        "Line 1: Bcc is set by the product (or by the mail servers on the way); it cannot be set here.",
        "Line 3: “nonsense” is not a header: write it as Name: value (like X-Campaign-Code: spring-26).",
    ]


def test_too_many_headers_are_refused():
    text = "\n".join(f"X-H{i}: {i}" for i in range(headers.MAX_HEADERS + 1))
    assert refusals(text) == [f"At most {headers.MAX_HEADERS} headers; this has {headers.MAX_HEADERS + 1}."]


def test_stored_lines_that_fail_the_check_never_reach_a_message():
    # Stored by a path that skipped the form's check (a plain UPDATE, an older rule): left out when sending.
    assert headers.custom_headers("Bcc: victim@example.org\nX-Ok: 1\nX-Bad\r: 2") == (("X-Ok", "1"),)


def test_a_campaign_header_replaces_the_accounts_of_the_same_name_whatever_its_case():
    merged = headers.merged(
        account_headers="X-Team: garden\nX-Code: from-the-account", campaign_headers="x-code: spring\nX-Extra: yes"
    )
    assert merged == (("X-Team", "garden"), ("x-code", "spring"), ("X-Extra", "yes"))


# --- the admin forms -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_account_form_refuses_a_reserved_header_with_its_reason_and_saves_good_ones(marketer_client, marketer):
    add_url = reverse("admin:sending_smtpaccount_add")
    data = add_form_data(
        marketer_client, host="smtp.alice.example", custom_headers="X-Team: news\r\nList-Id: <mine.example>"
    )

    response = marketer_client.post(add_url, data)

    assert form_errors(response)["custom_headers"] == [
        "Line 2: List-Id is set by the product (or by the mail servers on the way); it cannot be set here."
    ]
    assert not SmtpAccount.objects.filter(owner=marketer).exists()
    page = response.content.decode()
    assert "List-Id is set by the product" in page and "X-Team: news" in page  # nothing typed is lost

    data["custom_headers"] = "X-Team: news\r\nX-Code: 7"
    response = marketer_client.post(add_url, data)

    assert response.status_code == 302, form_errors(response)
    assert SmtpAccount.objects.get(owner=marketer).custom_headers == "X-Team: news\r\nX-Code: 7"


@pytest.mark.django_db
def test_the_campaign_form_refuses_a_header_with_a_bad_name(marketer_client, marketer):
    account = SmtpAccountFactory(owner=marketer)
    data = campaign_post(account, custom_headers="X-Code: 1\r\nX-Ärger: yes", text_only="on")

    response = marketer_client.post(reverse("admin:campaigns_campaign_add"), data)

    assert form_errors(response)["custom_headers"] == [
        "Line 2: “X-Ärger” is not a header name: use only the letters A-Z, digits and hyphens."
    ]
    assert not Campaign.objects.filter(owner=marketer).exists()

    data["custom_headers"] = "X-Code: 1"
    response = marketer_client.post(reverse("admin:campaigns_campaign_add"), data)

    assert response.status_code == 302, form_errors(response)
    campaign = Campaign.objects.get(owner=marketer)
    assert (campaign.custom_headers, campaign.text_only) == ("X-Code: 1", True)
