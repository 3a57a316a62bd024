"""A campaign start to a segment against the same start to a list, at a million contacts (PostgreSQL).

Creates and drops its own database (--db, default bench_segments, on the server of DATABASE_URL), fills
it with set-based SQL: one marketer, --contacts contacts (default 1,000,000) with attributes (City of
five, Orders 0-49), a list holding all of them, and a past campaign sent to all of them, 30 % opened by a
reader at some time in the last 60 days. Then times `lifecycle.start` of campaigns to them, every chunk of
its recipients written in the start (prepare_seconds unbounded: a real start writes the first 2 s of chunks
and leaves the rest to the ticks): the scheduled -> sending move, its event, the audience's count and each
chunk's INSERT ... SELECT, with their tally triggers. Campaigns to:

1. reference: the list of every contact;
2. a segment matching every contact (status is subscribed);
3. a realistic segment: City equals Pune and opened any campaign in the last 30 days;
4. reference for 3: a list holding exactly the contacts segment 3 matches.

Each start is a new campaign, run in a transaction rolled back afterwards, the email table vacuumed
before it, so every start finds the same tables; variants take turns, in reverse order every other round. Prints the
median of --rounds rounds and the ratios segment / list
(the goal: a segment of 1M contacts starts as fast as a list of 1M), and the live count of each segment.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/segments.py [--contacts 1000000] [--rounds 5] [--db bench_segments] [--explain]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class Rollback(Exception):
    pass


def database_url_for(name):
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + name))


def recreate_database(name):
    import psycopg

    # From the server's maintenance database: DATABASE_URL may name the very database recreated here.
    with psycopg.connect(database_url_for("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(db_name):
    os.environ["DATABASE_URL"] = database_url_for(db_name)
    os.environ["DATABASE_POOL"] = "0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.DEBUG = False
    call_command("migrate", verbosity=0)
    import logging

    logging.getLogger("campaigns").setLevel(logging.WARNING)  # no line per start


def fill(*, contacts):
    from django.db import connection

    from accounts.services import create_marketer
    from campaigns.models import Campaign
    from contacts.models import ContactList
    from sending.models import SmtpAccount

    owner = create_marketer(username="bench", email="bench@example.com", password="x-bench-password-1")
    account = SmtpAccount.objects.create(
        owner=owner, name="main", host="127.0.0.1", port=2525, security="none", from_email="bench@example.com"
    )
    everyone = ContactList.objects.create(owner=owner, name="Everyone")
    past = Campaign.objects.create(
        owner=owner, name="Past", smtp_account=account, subject="Hello", body_html="<p>Hello</p>", status="completed"
    )
    t = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO campaigns_contact (owner_id, email, name, attributes, status, consent_text, consent_ip_hash,
                                           created_at, updated_at)
            SELECT %s, 'c' || i || '@example.org', 'Contact ' || i,
                   jsonb_build_object('City', (ARRAY['Pune','Mumbai','Delhi','Chennai','Kolkata'])[1 + i %% 5],
                                      'Orders', (i %% 50)::text),
                   'subscribed', '', '', now() - (i %% 100000) * interval '1 minute', now()
            FROM generate_series(1, %s) AS i
            """,
            [owner.pk, contacts],
        )
        cur.execute(
            "INSERT INTO campaigns_contactlist_contacts (contactlist_id, contact_id) "
            "SELECT %s, id FROM campaigns_contact WHERE owner_id = %s",
            [everyone.pk, owner.pk],
        )
        # The past campaign's emails: all sent 61 days ago; i % 10 < 3 opened, spread over the last 60 days.
        cur.execute(
            """
            INSERT INTO campaigns_email (campaign_id, contact_id, to_email, to_name, status, attempts, message_id,
                smtp_code, smtp_response, failure_class, sent_at, first_opened_at, open_count, machine_open,
                click_count, possible_duplicate, created_at, updated_at)
            SELECT %s, c.id, c.email, c.name, 'sent', 1, '', 250, '2.0.0 OK', '', now() - interval '61 days',
                   CASE WHEN c.id %% 10 < 3 THEN now() - (c.id %% 60) * interval '1 day' - interval '1 hour' END,
                   CASE WHEN c.id %% 10 < 3 THEN 1 ELSE 0 END, false, 0, false,
                   now() - interval '61 days', now() - interval '61 days'
            FROM campaigns_contact c WHERE c.owner_id = %s
            """,
            [past.pk, owner.pk],
        )
    fill_seconds = time.perf_counter() - t
    connection.close()
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    return owner, account, everyone, fill_seconds


def audiences(owner, account, everyone):
    """The four campaigns (drafts moved to scheduled by hand), by variant name."""
    from django.db import connection

    from campaigns.models import Campaign, Segment, SegmentCondition
    from campaigns.selectors import segments
    from contacts.models import ContactList

    F, O = SegmentCondition.Field, SegmentCondition.Operator
    all_of_them = Segment.objects.create(owner=owner, name="All subscribed")
    SegmentCondition.objects.create(segment=all_of_them, field=F.STATUS, operator=O.IS, contact_status="subscribed")
    realistic = Segment.objects.create(owner=owner, name="Pune, opened lately")
    SegmentCondition.objects.create(
        segment=realistic, field=F.ATTRIBUTE, attribute="City", operator=O.EQUALS, value="Pune"
    )
    SegmentCondition.objects.create(segment=realistic, field=F.ACTIVITY, operator=O.OPENED_IN_LAST_DAYS, value="30")
    same_as_realistic = ContactList.objects.create(owner=owner, name="The realistic segment's contacts")
    ids_sql, params = segments.contacts_matching(segment=realistic).values("id").query.sql_with_params()
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO campaigns_contactlist_contacts (contactlist_id, contact_id) "
            f"SELECT %s, s.id FROM ({ids_sql}) s",
            [same_as_realistic.pk, *params],
        )
        cur.execute("ANALYZE campaigns_contactlist_contacts")

    def campaign_to(*, lists=(), segments=()):
        """A new scheduled campaign for each start: no earlier start's rows (rolled back) share its keys."""

        def make():
            made = Campaign.objects.create(
                owner=owner,
                name="Bench start",
                smtp_account=account,
                subject="Hi",
                body_html="<p>Hi</p>",
                status="scheduled",
            )
            made.lists.set(lists)
            made.segments.set(segments)
            return made

        return make

    return {
        "list of all": campaign_to(lists=[everyone]),
        "segment of all": campaign_to(segments=[all_of_them]),
        "list like realistic": campaign_to(lists=[same_as_realistic]),
        "realistic segment": campaign_to(segments=[realistic]),
    }, {"segment of all": all_of_them, "realistic segment": realistic}


def timed_start(campaign):
    """Seconds of lifecycle.start and the rows it created; rolled back.

    The email table is vacuumed first (not timed): the rows a rolled-back start inserted stay in the
    table and its indexes as dead entries until then, and each start would pay for all the earlier ones.
    """
    from django.db import connection, transaction
    from django.utils import timezone

    from campaigns.services import lifecycle

    with connection.cursor() as cur:
        cur.execute("VACUUM campaigns_email")
    result = {}
    try:
        with transaction.atomic():
            t = time.perf_counter()
            result["rows"] = lifecycle.start(campaign_id=campaign.pk, now=timezone.now(), prepare_seconds=10**9)
            result["seconds"] = time.perf_counter() - t
            raise Rollback
    except Rollback:
        pass
    return result["seconds"], result["rows"]


def explain(campaign):
    from django.db import connection
    from django.utils import timezone

    from campaigns import ledger

    sql, params = ledger.materialise_statement(campaign_id=campaign.pk, now=timezone.now())
    with connection.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params)
        plan = "\n".join(row[0] for row in cur.fetchall())
        cur.execute("ROLLBACK")
    return plan


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", default="bench_segments")
    parser.add_argument("--explain", action="store_true", help="print each start's plan (EXPLAIN ANALYZE)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("Needs PostgreSQL: set DATABASE_URL=postgres://...")

    recreate_database(args.db)
    try:
        setup_django(args.db)
        owner, account, everyone, fill_seconds = fill(contacts=args.contacts)
        print(
            f"filled {args.contacts:,} contacts, their list and a past campaign's {args.contacts:,} emails "
            f"in {fill_seconds:.1f} s"
        )
        campaigns, segments_by_variant = audiences(owner, account, everyone)
        run(campaigns, segments_by_variant, rounds=args.rounds, show_plans=args.explain)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            import psycopg

            with psycopg.connect(database_url_for("postgres"), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')


def run(campaigns, segments_by_variant, *, rounds, show_plans):
    from campaigns.selectors import segments

    times = {name: [] for name in campaigns}
    rows = {}
    for r in range(rounds):
        order = list(campaigns) if r % 2 == 0 else list(reversed(campaigns))
        for name in order:
            seconds, created = timed_start(campaigns[name]())
            times[name].append(seconds)
            rows[name] = created
        print(f"round {r + 1}: " + ", ".join(f"{name} {times[name][-1]:.2f} s" for name in campaigns), flush=True)
    median = {name: statistics.median(values) for name, values in times.items()}
    print()
    for name in campaigns:
        print(
            f"{name:>22}: {rows[name]:>9,} recipients, median {median[name]:.2f} s "
            f"(min {min(times[name]):.2f}, max {max(times[name]):.2f})"
        )
    print()
    print(f"ratio segment of all / list of all:               {median['segment of all'] / median['list of all']:.2f}")
    print(
        f"ratio realistic segment / list of the same contacts: "
        f"{median['realistic segment'] / median['list like realistic']:.2f}"
    )
    print(
        f"ratio realistic segment / list of all:             {median['realistic segment'] / median['list of all']:.2f}"
    )
    for name, segment in segments_by_variant.items():
        t = time.perf_counter()
        figures = segments.count(
            owner_id=segment.owner_id, match=segment.match, conditions=list(segment.conditions.all())
        )
        print(f"live count of the {name}: {figures['matching']:,} in {(time.perf_counter() - t) * 1000:.0f} ms")
    if show_plans:
        for name, make in campaigns.items():
            print(f"\n--- {name}\n{explain(make())}")


if __name__ == "__main__":
    main()
