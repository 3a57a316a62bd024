"""The open pixel: always the 43-byte GIF with no-store headers; records only a valid token's open."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.models import Email
from tests.tracking.conftest import READER_UA
from tracking import tokens
from tracking.models import Event
from tracking.views import PIXEL_GIF

pytestmark = pytest.mark.django_db

APPLE_MPP_UA = "Mozilla/5.0"
GMAIL_PROXY_UA = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"


def pixel_url(token):
    return f"/t/o/{token}.gif"


def assert_pixel(response):
    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"
    assert response.content == PIXEL_GIF and len(response.content) == 43
    assert response.content.startswith(b"GIF89a")
    assert "no-store" in response["Cache-Control"]
    assert "Set-Cookie" not in response


def test_a_valid_token_records_the_first_open_a_count_and_an_event(anonymous, sent_email):
    before = timezone.now()
    assert_pixel(anonymous.get(pixel_url(tokens.open_token(sent_email.pk)), HTTP_USER_AGENT=READER_UA))
    sent_email.refresh_from_db()
    assert sent_email.first_opened_at >= before
    first = sent_email.first_opened_at
    assert sent_email.open_count == 1 and not sent_email.machine_open
    event = Event.objects.get(email=sent_email)
    assert (event.kind, event.campaign_id, event.is_machine, event.user_agent) == (
        "open",
        sent_email.campaign_id,
        False,
        READER_UA,
    )
    window_passes()
    assert_pixel(anonymous.get(pixel_url(tokens.open_token(sent_email.pk)), HTTP_USER_AGENT=READER_UA))
    sent_email.refresh_from_db()
    assert sent_email.first_opened_at == first and sent_email.open_count == 2
    assert Event.objects.filter(email=sent_email, kind="open", is_machine=False).count() == 2


def window_passes():
    """Every event recorded so far moves back past the repeat window."""
    Event.objects.update(at=F("at") - timedelta(seconds=settings.TRACKING_REPEAT_SECONDS + 1))


def test_an_open_repeated_within_the_window_records_nothing_and_still_gets_the_gif(anonymous, sent_email):
    url = pixel_url(tokens.open_token(sent_email.pk))
    for _ in range(20):
        assert_pixel(anonymous.get(url, HTTP_USER_AGENT=READER_UA))
    sent_email.refresh_from_db()
    assert sent_email.open_count == 1 and Event.objects.count() == 1

    window_passes()
    for _ in range(5):
        assert_pixel(anonymous.get(url, HTTP_USER_AGENT=READER_UA))
    sent_email.refresh_from_db()
    # The counter is what is recorded: one reader's open a window.
    assert sent_email.open_count == Event.objects.filter(kind="open", is_machine=False).count() == 2


def test_a_scanners_open_never_hides_the_readers_own(anonymous, sent_email):
    url = pixel_url(tokens.open_token(sent_email.pk))
    for _ in range(3):
        anonymous.get(url, HTTP_USER_AGENT=APPLE_MPP_UA)
        anonymous.get(url, HTTP_USER_AGENT=READER_UA)
    sent_email.refresh_from_db()
    assert sent_email.machine_open and sent_email.open_count == 1
    assert sorted(Event.objects.values_list("is_machine", flat=True)) == [False, True]


def test_a_head_request_gets_the_gif_and_records_nothing(anonymous, sent_email):
    response = anonymous.head(pixel_url(tokens.open_token(sent_email.pk)), HTTP_USER_AGENT=READER_UA)
    assert response.status_code == 200 and response["Content-Type"] == "image/gif"
    sent_email.refresh_from_db()
    assert sent_email.open_count == 0 and sent_email.first_opened_at is None and not Event.objects.exists()


@pytest.mark.parametrize(
    "token",
    [
        "forged.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "1.xyz",
        "not-a-token",
        "%00%ff",
        "x" * 300,
        "unsubscribe-kind",  # replaced below by a token of another purpose
    ],
)
def test_forged_malformed_and_foreign_tokens_get_the_same_gif_and_record_nothing(anonymous, sent_email, token):
    if token == "unsubscribe-kind":
        token = tokens.unsubscribe_token(sent_email.pk)
    assert_pixel(anonymous.get(pixel_url(token), HTTP_USER_AGENT=READER_UA))
    sent_email.refresh_from_db()
    assert sent_email.open_count == 0 and sent_email.first_opened_at is None and not sent_email.machine_open
    assert not Event.objects.exists()


def statements(queries):
    """The SQL statements run, without the savepoints of the test's own transaction."""
    return [q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]


def test_the_pixel_takes_at_most_three_sql_statements(anonymous, sent_email):
    url = pixel_url(tokens.open_token(sent_email.pk))
    for user_agent in (READER_UA, APPLE_MPP_UA, READER_UA):  # reader, machine, a reader's repeat
        with CaptureQueriesContext(connection) as queries:
            assert_pixel(anonymous.get(url, HTTP_USER_AGENT=user_agent))
        assert len(statements(queries.captured_queries)) <= 3  # the row's lock, the event, the counters
    with CaptureQueriesContext(connection) as queries:
        assert_pixel(anonymous.get(pixel_url("forged.sig"), HTTP_USER_AGENT=READER_UA))
    assert statements(queries.captured_queries) == []


@pytest.mark.parametrize(
    "user_agent", [APPLE_MPP_UA, GMAIL_PROXY_UA, "Barracuda Sentinel (EE)", "python-requests/2.32"]
)
def test_apple_mpp_proxies_and_scanners_are_machine_opens_left_out_of_the_open_rate(anonymous, sent_email, user_agent):
    assert_pixel(anonymous.get(pixel_url(tokens.open_token(sent_email.pk)), HTTP_USER_AGENT=user_agent))
    sent_email.refresh_from_db()
    assert sent_email.machine_open
    assert sent_email.first_opened_at is None and sent_email.open_count == 0
    event = Event.objects.get(email=sent_email)
    assert event.is_machine and event.kind == "open"


def test_an_open_seconds_after_sending_is_a_machine_open_and_a_later_one_a_reader(anonymous, sent_email):
    Email.objects.filter(pk=sent_email.pk).update(sent_at=timezone.now() - timedelta(seconds=1))
    anonymous.get(pixel_url(tokens.open_token(sent_email.pk)), HTTP_USER_AGENT=READER_UA)
    sent_email.refresh_from_db()
    assert sent_email.machine_open and sent_email.first_opened_at is None and sent_email.open_count == 0
    assert Event.objects.get().is_machine

    Email.objects.filter(pk=sent_email.pk).update(sent_at=timezone.now() - timedelta(minutes=10))
    anonymous.get(pixel_url(tokens.open_token(sent_email.pk)), HTTP_USER_AGENT=READER_UA)
    sent_email.refresh_from_db()
    assert sent_email.first_opened_at is not None and sent_email.open_count == 1
    assert sent_email.machine_open  # still says a machine opened it too


def test_nothing_is_recorded_for_a_token_of_a_deleted_campaign(anonymous, sent_email):
    token = tokens.open_token(sent_email.pk)
    sent_email.campaign.delete()
    assert_pixel(anonymous.get(pixel_url(token), HTTP_USER_AGENT=READER_UA))
    assert not Event.objects.exists() and not Email.objects.exists()


def test_no_ip_address_is_stored(anonymous, sent_email):
    anonymous.get(pixel_url(tokens.open_token(sent_email.pk)), HTTP_USER_AGENT=READER_UA, REMOTE_ADDR="203.0.113.77")
    event = Event.objects.get()
    assert all("203.0.113.77" not in str(getattr(event, f.attname)) for f in Event._meta.concrete_fields)
    sent_email.refresh_from_db()
    assert all("203.0.113.77" not in str(getattr(sent_email, f.attname)) for f in Email._meta.concrete_fields)
