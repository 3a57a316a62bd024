"""Latency of the dashboard and analytics JSON endpoints at a million Email rows.

Creates and drops its own PostgreSQL database, fills it with set-based SQL
(20 marketers, 200 campaigns, 1,000,000 emails in every status, opens, clicks,
unsubscribes), then calls the endpoints in-process with Django's test Client
(session, middleware, view, selector, JSON) and reports median and p95 latency,
against a plain `SELECT count(*)` of one campaign's rows measured in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/dashboard.py [--emails 1000000] [--runs 100] [--explain]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.throughput import database_url_for, recreate_database  # noqa: E402

DB_NAME = "bench_dashboard"


def setup_django(db_name):
    os.environ["DATABASE_URL"] = database_url_for(db_name)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.DEBUG = False  # no query log kept in memory
    call_command("migrate", verbosity=0)


def fill(*, emails, marketers, campaigns):
    from django.db import connection

    from accounts.services import create_marketer
    from campaigns.models import Campaign
    from sending.models import SmtpAccount

    owners = []
    per_owner = campaigns // marketers
    for m in range(marketers):
        owner = create_marketer(username=f"bench{m}", email=f"bench{m}@example.com", password="x-bench-password-1")
        account = SmtpAccount.objects.create(
            owner=owner,
            name="main",
            host="127.0.0.1",
            port=2525,
            security="none",
            from_email=f"bench{m}@example.com",
            max_per_minute=600,
        )
        Campaign.objects.bulk_create(
            Campaign(
                owner=owner,
                name=f"Campaign {m}-{c}",
                smtp_account=account,
                subject="Hello",
                body_html="<p>Hello</p>",
                status="sending" if c == 0 else "completed",
            )
            for c in range(per_owner)
        )
        owners.append(owner)
    ids = list(Campaign.objects.order_by("id").values_list("id", flat=True))
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE campaigns_campaign SET started_at = now() - interval '9 days', "
            "completed_at = CASE WHEN status = 'completed' THEN now() - interval '1 day' END"
        )
        t_insert = time.perf_counter()
        # One statement: the tally triggers (campaigns.tallies) fire once, over all its rows.
        # Rows go to the campaigns in blocks of 100 (each block every status); status, times, tracking follow from i.
        cur.execute(
            """
            INSERT INTO campaigns_email (campaign_id, to_email, to_name, status, attempts, message_id, smtp_code,
                smtp_response, failure_class, sent_at, first_opened_at, open_count, machine_open, first_clicked_at,
                click_count, unsubscribed_at, possible_duplicate, created_at, updated_at, next_attempt_at)
            SELECT c.ids[1 + (i / 100) %% c.n], 'r' || i || '@example.org', '', s.status, 1, '',
                CASE s.status WHEN 'sent' THEN 250 WHEN 'failed' THEN 550 WHEN 'deferred' THEN 451 END,
                CASE s.status WHEN 'sent' THEN '2.0.0 OK' WHEN 'failed' THEN '5.1.1 unknown user' ELSE '' END,
                CASE WHEN s.status = 'failed' THEN (ARRAY['bounced','rejected','throttled'])[1 + i %% 3] ELSE '' END,
                s.sent_at,
                CASE WHEN s.status = 'sent' AND i %% 10 < 3 THEN s.sent_at + interval '1 hour' END,
                CASE WHEN s.status = 'sent' AND i %% 10 < 3 THEN 1 ELSE 0 END,
                s.status = 'sent' AND i %% 10 = 3,
                CASE WHEN s.status = 'sent' AND i %% 20 = 0 THEN s.sent_at + interval '2 hours' END,
                CASE WHEN s.status = 'sent' AND i %% 20 = 0 THEN 1 ELSE 0 END,
                CASE WHEN s.status = 'sent' AND i %% 100 = 1 THEN s.sent_at + interval '3 hours' END,
                false, now() - interval '10 days', coalesce(s.sent_at, now() - (i %% 1000) * interval '1 minute'),
                CASE WHEN s.status = 'deferred' THEN now() + interval '1 minute' END
            FROM generate_series(0, %s - 1) AS i
            CROSS JOIN (SELECT %s::bigint[] AS ids, %s AS n) AS c
            CROSS JOIN LATERAL (
                SELECT CASE
                    WHEN i %% 100 < 70 THEN 'sent' WHEN i %% 100 < 75 THEN 'failed' WHEN i %% 100 < 85 THEN 'pending'
                    WHEN i %% 100 < 88 THEN 'queued' WHEN i %% 100 < 90 THEN 'deferred' ELSE 'cancelled' END AS status,
                    CASE WHEN i %% 100 < 70 THEN now() - (i %% 14400) * interval '1 minute' END AS sent_at
            ) AS s
            """,
            [emails, ids, len(ids)],
        )
        insert_seconds = time.perf_counter() - t_insert
        cur.execute(
            "INSERT INTO tracking_link (campaign_id, url, created_at) "
            "SELECT id, 'https://example.com/p/' || k, now() FROM campaigns_campaign, generate_series(1, 5) k"
        )
        cur.execute(
            """
            INSERT INTO tracking_event (email_id, campaign_id, kind, at, link_id, user_agent, is_machine)
            SELECT e.id, e.campaign_id, 'click', e.first_clicked_at,
                   (SELECT l.id FROM tracking_link l WHERE l.campaign_id = e.campaign_id ORDER BY l.id
                    OFFSET e.id % 5 LIMIT 1), 'Mozilla/5.0', false
            FROM campaigns_email e WHERE e.click_count > 0
            UNION ALL
            SELECT e.id, e.campaign_id, 'unsubscribe', e.unsubscribed_at, NULL, 'Mozilla/5.0', false
            FROM campaigns_email e WHERE e.unsubscribed_at IS NOT NULL
            """
        )
        cur.execute("SELECT count(*) FROM tracking_event")
        events = cur.fetchone()[0]
    recount = check_and_time_recount()
    connection.close()
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    return owners, ids, events, insert_seconds, recount


def check_and_time_recount():
    """The tallies the insert's triggers wrote must be what a recount from the rows gives."""
    from campaigns import tallies
    from campaigns.models import CampaignHourTally, CampaignTally

    def snapshot():
        return (
            set(
                CampaignTally.objects.exclude(n=0).values_list(
                    "campaign_id", "status", "failure_class", "n", "opened", "machine_only", "clicked", "unsubscribed"
                )
            ),
            set(CampaignHourTally.objects.values_list("campaign_id", "hour", *tallies.HOUR_FIGURES)),
        )

    by_triggers = snapshot()
    t = time.perf_counter()
    tallies.recount()
    seconds = time.perf_counter() - t
    by_recount = snapshot()
    assert by_triggers == by_recount, "the triggers' tallies differ from a recount"
    return seconds, len(by_recount[0]), len(by_recount[1])


def trigger_overhead(*, statements, rounds):
    """Microseconds the tally triggers add to one single-row UPDATE, as the sender makes them.

    Each statement moves a different pending row to sent. Measured two ways: from the client, each
    statement committing on its own (autocommit, synchronous_commit off as in ledger.result_commits),
    as the sender sees it; and inside the server (a PL/pgSQL loop of the same statements, no round
    trips, less noise from a busy machine). Rounds with and without the triggers alternate over fresh
    rows; the tallies are recounted afterwards. Returns {way: {"with": [...], "without": [...]}}.
    """
    from django.db import connection

    from campaigns import tallies

    def client(ids):
        with connection.cursor() as cur:
            t = time.perf_counter()
            for email_id in ids:
                cur.execute("UPDATE campaigns_email SET status = 'sent', sent_at = now() WHERE id = %s", [email_id])
            return (time.perf_counter() - t) / len(ids) * 1e6

    def server(ids):
        with connection.cursor() as cur:
            t = time.perf_counter()
            cur.execute(
                "DO $$ DECLARE i bigint; BEGIN FOREACH i IN ARRAY '{%s}'::bigint[] LOOP "
                "UPDATE campaigns_email SET status = 'sent', sent_at = now() WHERE id = i; END LOOP; END $$"
                % ",".join(str(int(i)) for i in ids)
            )
            return (time.perf_counter() - t) / len(ids) * 1e6

    ways = {"client, autocommit": client, "server, PL/pgSQL loop": server}
    with connection.cursor() as cur:
        cur.execute("SET synchronous_commit TO off")
        cur.execute(
            "SELECT id FROM campaigns_email WHERE status = 'pending' ORDER BY random() LIMIT %s",
            [statements * rounds * 2 * len(ways)],
        )
        pending = [row[0] for row in cur.fetchall()]
    results = {way: {"with": [], "without": []} for way in ways}
    try:
        for r in range(rounds):
            for mode in ("with", "without") if r % 2 == 0 else ("without", "with"):
                with connection.cursor() as cur:
                    cur.execute(
                        f"ALTER TABLE campaigns_email {'ENABLE' if mode == 'with' else 'DISABLE'} "
                        "TRIGGER campaigns_email_tally_update"
                    )
                for way, run in ways.items():
                    ids, pending = pending[:statements], pending[statements:]
                    results[way][mode].append(run(ids))
    finally:
        with connection.cursor() as cur:
            cur.execute("ALTER TABLE campaigns_email ENABLE TRIGGER campaigns_email_tally_update")
            cur.execute("SET synchronous_commit TO DEFAULT")
        tallies.recount()
    return results


def timed(fn, runs):
    fn()  # warm up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, int(round(0.95 * len(times))) - 1)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--emails", type=int, default=1_000_000)
    parser.add_argument("--marketers", type=int, default=20)
    parser.add_argument("--campaigns", type=int, default=200)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of every statement")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--overhead-statements",
        type=int,
        default=2000,
        help="single-row UPDATEs per round of the trigger overhead measurement (0: skip it)",
    )
    parser.add_argument("--overhead-rounds", type=int, default=4)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        sys.exit("set DATABASE_URL to a PostgreSQL server")
    admin_url = os.environ["DATABASE_URL"]
    recreate_database(DB_NAME)
    try:
        setup_django(DB_NAME)
        from django.db import connection
        from django.test import Client
        from django.urls import reverse

        from accounts.models import User
        from campaigns.models import Campaign

        t0 = time.perf_counter()
        owners, ids, events, insert_seconds, recount = fill(
            emails=args.emails, marketers=args.marketers, campaigns=args.campaigns
        )
        print(
            f"filled {args.emails:,} emails, {len(ids)} campaigns, {len(owners)} marketers, {events:,} events "
            f"in {time.perf_counter() - t0:.0f} s (the emails' INSERT with its tally triggers {insert_seconds:.1f} s)"
        )
        recount_seconds, tally_rows, hour_rows = recount
        print(
            f"tallies: {tally_rows:,} rows by status, {hour_rows:,} hour rows; equal to a recount, "
            f"which takes {recount_seconds:.1f} s"
        )
        owner = owners[len(owners) // 2]
        campaign = Campaign.objects.filter(owner=owner, status="sending").first()
        root = User.objects.create_superuser("benchroot", "root@example.com", "x-bench-password-1")

        marketer_client, root_client = Client(), Client()
        marketer_client.force_login(owner)
        root_client.force_login(root)
        dash = reverse("dashboard_data")
        data = reverse("campaign_analytics_data", args=[campaign.pk])
        cases = [
            ("SELECT count(*) of one campaign (reference)", None, None),
            ("dashboard, marketer (10 campaigns, 50,000 emails)", marketer_client, dash),
            ("analytics, one campaign (5,000 emails)", marketer_client, data),
            ("analytics, recipient search", marketer_client, data + "?q=r12"),
            ("analytics, recipient page 100", marketer_client, data + "?page=100"),
            ("dashboard, superuser (all 1,000,000 emails)", root_client, dash),
        ]

        def reference():
            with connection.cursor() as cur:
                cur.execute("SELECT count(*) FROM campaigns_email WHERE campaign_id = %s", [campaign.pk])
                cur.fetchone()

        print(f"\n{'endpoint':52} {'median ms':>10} {'p95 ms':>8} {'p95/ref':>8} {'SQL':>4}")
        ref_p95 = None
        for label, client, url in cases:
            if client is None:
                median, p95 = timed(reference, args.runs)
                ref_p95, statements = p95, 1
            else:

                def call(client=client, url=url):
                    response = client.get(url)
                    assert response.status_code == 200, response.status_code

                captured = []

                def record(execute, sql, params, many, context):
                    captured.append((sql, params))
                    return execute(sql, params, many, context)

                with connection.execute_wrapper(record):
                    call()
                statements = len(captured)
                median, p95 = timed(call, args.runs)
                if args.explain:
                    with connection.cursor() as cur:
                        for sql, params in captured:
                            if "campaigns_" in sql or "tracking_" in sql:
                                cur.execute("EXPLAIN (ANALYZE) " + sql, params)
                                print("\n" + sql[:400] + "\n" + "\n".join(r[0] for r in cur.fetchall()))
            print(f"{label:52} {median:10.1f} {p95:8.1f} {p95 / ref_p95:8.1f} {statements:4}")
        if args.overhead_statements:
            results = trigger_overhead(statements=args.overhead_statements, rounds=args.overhead_rounds)
            print(
                f"\nsingle-row UPDATE ... SET status = 'sent', sent_at = now(), "
                f"{args.overhead_statements:,} per round, "
                f"{args.overhead_rounds} rounds each way, median of the rounds (us per statement):"
            )
            for way, modes in results.items():
                with_us, without_us = statistics.median(modes["with"]), statistics.median(modes["without"])
                print(
                    f"  {way:22} with the tally triggers {with_us:5.0f}, without {without_us:5.0f}: "
                    f"+{with_us - without_us:.0f} us (rounds with: {', '.join(f'{x:.0f}' for x in modes['with'])}; "
                    f"without: {', '.join(f'{x:.0f}' for x in modes['without'])})"
                )
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            import psycopg

            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


if __name__ == "__main__":
    main()
