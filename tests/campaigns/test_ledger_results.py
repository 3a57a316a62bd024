"""mark_sent, the one transition made per message: prepared once per connection on PostgreSQL,
its answer read at once (wait=True) or later (wait=False, `settle`), never overwriting a row
that is no longer the worker's."""

import uuid

import pytest
from django.db import DatabaseError, connection
from django.utils import timezone

from campaigns.delivery import ledger
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

    assert ledger.mark_sent(email_id=email.pk, token=token, code=250, text="250 2.0.0 OK", now=now) is True
    assert ledger.mark_sent(email_id=email.pk, token=token, code=250, text="250 again", now=now) is False

    email.refresh_from_db()
    assert (email.status, email.smtp_response, email.attempts, email.batch_id) == (S.SENT, "250 2.0.0 OK", 1, None)
    assert email.sent_at == now


@pytest.mark.django_db
def test_an_answer_read_later_is_settled_before_any_other_statement(queued, require_postgres):
    email, token = queued
    with ledger.settling():
        ledger.mark_sent(email_id=email.pk, token=token, code=250, text="250 OK", now=timezone.now(), wait=False)
        # The ORM's next statement on this connection reads the outstanding answer first.
        assert Email.objects.get(pk=email.pk).status == S.SENT
        assert ledger.settle() is None

        other = EmailFactory(status=S.SENT, campaign=email.campaign)
        ledger.mark_sent(email_id=other.pk, token=token, code=250, text="250 OK", now=timezone.now(), wait=False)
        assert ledger.settle() is False  # not queued under this token: logged, not overwritten
    other.refresh_from_db()
    assert other.smtp_response == ""


# Outside a test transaction, as in a worker (autocommit): the refused statement aborts nothing else.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_statement_the_server_refuses_raises_when_settled_and_the_connection_goes_on(queued, require_postgres):
    email, token = queued
    # smtp_code is a smallint: the server refuses the value, which only the answer tells.
    ledger.mark_sent(email_id=email.pk, token=token, code=99999, text="odd", now=timezone.now(), wait=False)
    with pytest.raises(DatabaseError, match="smallint"):
        ledger.settle()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
