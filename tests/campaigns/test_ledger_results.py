"""mark_sent, the one transition made per message: answered at once by ledger.mark_sent, or through a
batch's ResultWriter (prepared once per connection on PostgreSQL, its answer read later by `settle`),
never overwriting a row that is no longer the worker's."""

import uuid
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection
from django.utils import timezone

from campaigns import ledger
from campaigns.models import Email
from tests.factories import EmailFactory

S = Email.Status


@pytest.fixture
def queued():
    token = uuid.uuid4()
    email = EmailFactory(status=S.QUEUED, batch_id=token)
    return email, token


@pytest.mark.django_db
def test_a_result_is_recorded_once_and_a_row_no_longer_owned_is_left_alone(queued):
    email, token = queued
    now = timezone.now()

    assert ledger.mark_sent(email_id=email.pk, batch_id=token, code=250, text="250 2.0.0 OK", now=now) is True
    assert ledger.mark_sent(email_id=email.pk, batch_id=token, code=250, text="250 again", now=now) is False

    email.refresh_from_db()
    assert (email.status, email.smtp_response, email.attempts, email.batch_id) == (S.SENT, "250 2.0.0 OK", 1, None)
    assert email.sent_at == now


@pytest.mark.django_db
def test_an_answer_read_later_is_settled_before_any_other_statement(queued):
    email, token = queued
    with ledger.ResultWriter() as results:
        results.mark_sent(email_id=email.pk, batch_id=token, code=250, text="250 OK", now=timezone.now())
        # The ORM's next statement on this connection reads the outstanding answer first.
        assert Email.objects.get(pk=email.pk).status == S.SENT
        assert results.settle() is None

        other = EmailFactory(status=S.SENT, campaign=email.campaign)
        results.mark_sent(email_id=other.pk, batch_id=token, code=250, text="250 OK", now=timezone.now())
        assert results.settle() is False  # not queued under this token: logged, not overwritten
    other.refresh_from_db()
    assert other.smtp_response == ""


@pytest.mark.django_db
def test_the_writer_settles_what_is_outstanding_when_it_closes(queued):
    email, token = queued
    with ledger.ResultWriter() as results:
        results.mark_sent(email_id=email.pk, batch_id=token, code=250, text="250 OK", now=timezone.now())
    assert results.settle() is None
    email.refresh_from_db()
    assert email.status == S.SENT


@pytest.mark.django_db
def test_a_slot_reservation_while_an_answer_is_outstanding_needs_no_settling_by_hand(queued):
    """The reservation is one statement on PostgreSQL: it passes through the writer's wrapper like
    any other, where a transaction (BEGIN) would not."""
    from delivery import rate_limit
    from tests.factories import SmtpAccountFactory

    email, token = queued
    account = SmtpAccountFactory(owner=email.campaign.owner, max_per_minute=600)
    now = timezone.now()
    with ledger.ResultWriter() as results:
        results.mark_sent(email_id=email.pk, batch_id=token, code=250, text="250 OK", now=now)
        slots, interval = rate_limit.reserve_slots(account_id=account.pk, now=now, wanted=50)
        assert results.settle() is None  # settled by the reservation's statement
    assert interval == 0.1 and len(slots) == 10 and slots[0] == now
    assert slots[-1] - slots[0] == timedelta(seconds=0.9)
    account.refresh_from_db()
    assert account.state.next_send_at == now + timedelta(seconds=1)


# Outside a test transaction, as in a worker (autocommit): the refused statement aborts nothing else.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_statement_the_server_refuses_raises_when_settled_and_the_connection_goes_on(queued):
    email, token = queued
    results = ledger.ResultWriter()
    # smtp_code is a smallint: the server refuses the value, which only the answer tells.
    results.mark_sent(email_id=email.pk, batch_id=token, code=99999, text="odd", now=timezone.now())
    with pytest.raises(DatabaseError, match="smallint"):
        results.settle()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
