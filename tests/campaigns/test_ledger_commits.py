from django.db import connection

from campaigns import ledger


def synchronous_commit():
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def test_results_skip_the_disk_flush_inside_a_batch_and_only_there(db, settings):
    settings.EMAIL_RESULTS_SYNCHRONOUS_COMMIT = False
    before = synchronous_commit()
    with ledger.ledger_commits():
        assert synchronous_commit() == "off"
    assert synchronous_commit() == before == "on"


def test_operators_can_keep_every_result_flushed(db, settings):
    settings.EMAIL_RESULTS_SYNCHRONOUS_COMMIT = True
    with ledger.ledger_commits():
        assert synchronous_commit() == "on"
