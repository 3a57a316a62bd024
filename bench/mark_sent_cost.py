"""What one `mark_sent` costs PostgreSQL, counted in instructions rather than timed.

A shared machine's timings drift too much to show a change of a few percent in one statement; the
instructions PostgreSQL executes for it do not. So the server runs under callgrind, collecting only inside
PortalRun and CommitTransactionCommand, and this script marks --messages queued rows of one campaign sent,
one by one through ledger.ResultWriter as the sender does, on a connection that does nothing else. That
backend's profile, divided by --messages, is the cost of one send (the UPDATE, its tally trigger, the
commit). Setup (a private cluster, the schema of a fresh migrate):

    initdb -D /tmp/cg/data -A trust -U postgres   # as the postgres user
    echo "port=5499
    autovacuum=off" >> /tmp/cg/data/postgresql.conf
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=PortalRun \\
        --toggle-collect=CommitTransactionCommand --callgrind-out-file=/tmp/cg/cg.%p \\
        postgres -D /tmp/cg/data &
    createdb -h 127.0.0.1 -p 5499 -U postgres micro
    DATABASE_URL=postgres://postgres@127.0.0.1:5499/micro .venv/bin/python manage.py migrate

then, for each variant of the schema:

    DATABASE_URL=postgres://postgres@127.0.0.1:5499/micro .venv/bin/python bench/mark_sent_cost.py --messages 300

and read the profile of the backend that printed its pid (written when it exits): `callgrind_annotate
--inclusive=yes /tmp/cg/cg.<pid>`, its total divided by the messages. Repeated runs of one schema agree
within about 5% (the table grows by each run's rows).
"""

import argparse
import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from campaigns import ledger  # noqa: E402
from tests.factories import CampaignFactory, MarketerFactory  # noqa: E402

QUEUED_ROWS = (
    "INSERT INTO campaigns_email (campaign_id, to_email, to_name, status, attempts, message_id, smtp_response, "
    "failure_class, open_count, machine_open, click_count, possible_duplicate, created_at, updated_at, batch_id, "
    "lease_expires_at) "
    "SELECT %s, 'r' || i || '@example.org', '', 'queued', 0, '<' || i || '@example.org>', '', '', 0, false, 0, "
    "false, now(), now(), md5((i / 50)::text)::uuid, now() + interval '1 hour' FROM generate_series(1, %s) AS i"
)


def queued_campaign(messages):
    """A campaign whose rows are queued in batches of 50, as a claim leaves them: [(id, batch_id)]."""
    campaign = CampaignFactory(owner=MarketerFactory(username=f"cost{uuid.uuid4().hex[:8]}"))
    with connection.cursor() as cursor:
        cursor.execute(QUEUED_ROWS, [campaign.pk, messages])
        cursor.execute("VACUUM ANALYZE campaigns_email")
        cursor.execute("SELECT id, batch_id FROM campaigns_email WHERE campaign_id = %s ORDER BY id", [campaign.pk])
        return cursor.fetchall()


def mark_all_sent(rows):
    now = timezone.now()
    with ledger.ledger_commits(), ledger.ResultWriter() as results:
        for email_id, batch_id in rows:
            results.mark_sent(email_id=email_id, batch_id=batch_id, code=250, text="2.0.0 Ok: queued", now=now)
            results.settle()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=300)
    args = parser.parse_args()
    rows = queued_campaign(args.messages)
    connection.close()  # the sends on a backend of their own, so its profile holds nothing else
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    mark_all_sent(rows)
    connection.close()
    print(f"{args.messages} sends on backend {pid}: divide the total of its callgrind profile by {args.messages}")


if __name__ == "__main__":
    main()
