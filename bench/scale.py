"""The product at 100,000, 300,000 and 1,000,000 recipients, end to end, on the real path.

Needs PostgreSQL (DATABASE_URL: any database of the server; each size gets its own database,
scale_<size>, created and dropped here), Redis (REDIS_URL) and Postfix's smtp-sink.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/6 \\
        .venv/bin/python bench/scale.py --sizes 100000,300000,1000000

For each size, in a process of its own (a fresh Django, database and pair of workers):
1. `manage.py import_contacts` of a generated CSV of that many contacts (its own process: the
   time and its peak RSS);
2. campaign A to all of them, with another marketer's small campaign scheduled at the same moment,
   sent by the dispatcher's ticks (run here once a second, as beat would) and 2 Celery worker
   processes over Redis to smtp-sink. Measured: scheduled -> first message accepted, when the
   recipients were all written, each tick's time, the longest open transaction and the longest
   lock wait seen in pg_stat_activity (sampled every 0.5 s), the other marketer's first message,
   the send rate of the first tenth and of the second half of the messages, and the dashboard's
   and analytics page's JSON (fetched through Django's test Client every 2 s while it sends, as the pages
   poll, from a process of its own, as a web server is; with each request's SQL time apart);
3. 4 x size old sent rows written by SQL (not sent; INSERT ... SELECT from the contacts), so the
   email table holds 5 x size rows; then campaign B to the same list, measured as A over its first
   tenth, and cancelled there: the time cancel() took and anything accepted after it returned.
Prints a table per step and size with the ratio to the smallest size, and each goal.

PostgreSQL here runs with autovacuum off; the bench runs `VACUUM ANALYZE` where autovacuum would
have (after the import, after the old rows) and, with --vacuum-every S, on the email table every
S seconds while sending (0: never), paced with autovacuum's default cost delay and limit.
"""

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.throughput import (  # noqa: E402
    SINK_PORT,
    database_url_for,
    recreate_database,
    setup_django,
    start_sink,
    start_workers,
    wait_until_ready,
)

OTHER_RECIPIENTS = 2000

GOALS = {
    "import_seconds": ("import (import_contacts, CSV), s", "< 90 s at 1M"),
    "import_rss_mb": ("import peak RSS, MB", "< 300 MB"),
    "start_seconds": ("A: scheduled -> first message accepted, s", "< 30 s"),
    "prepared_seconds": ("A: all recipients written after, s", "(info)"),
    "longest_transaction_s": ("longest transaction seen, s", "< 5 s"),
    "longest_lock_wait_s": ("longest lock wait seen, s", "< 5 s"),
    "other_first_seconds": ("other marketer: first message after, s", "keeps running"),
    "other_done_seconds": ("other marketer: 2,000 sent after, s", "keeps running"),
    "tick_p95_preparing_ms": ("tick p95 while preparing, ms", "(bounded by RECIPIENTS_PREPARE_SECONDS)"),
    "tick_p95_ms": ("tick p95, all written, pending, ms", "< 300 ms"),
    "tick_max_ms": ("tick max, all written, ms", "(info)"),
    "batches_per_tick_median": ("batches claimed per tick, median", "(info)"),
    "allowance_ms": ("rate_limit.allowance after A, ms", "(info)"),
    "rate_first_tenth": ("A: rate, first tenth, /s", "(info)"),
    "rate_second_half": ("A: rate, second half, /s", "(info)"),
    "rate_ratio": ("A: rate second half / first tenth", ">= 0.95"),
    "dashboard_p95_ms": ("dashboard JSON p95 during send, ms", "< 50 ms"),
    "analytics_p95_ms": ("analytics JSON p95 during send, ms", "< 50 ms"),
    "dashboard_sql_p95_ms": ("dashboard JSON p95, its SQL only, ms", "(info)"),
    "analytics_sql_p95_ms": ("analytics JSON p95, its SQL only, ms", "(info)"),
    "dashboard_idle_p95_ms": ("dashboard JSON p95, idle after A, ms", "(reference)"),
    "analytics_idle_p95_ms": ("analytics JSON p95, idle after A, ms", "(reference)"),
    "old_rows_seconds": ("old rows written by SQL (4 x size), s", "(setup)"),
    "email_rows": ("email rows in the table at B's start", "5 x size"),
    "b_start_seconds": ("B: scheduled -> first message accepted, s", "within 10% of A"),
    # The goal for a tick is < 300 ms; B's covers its first tenth only (mostly while its
    # recipients are written), A's the whole send, so the two are not alike enough to hold within 10%.
    "b_tick_p95_ms": ("B: tick p95 over its first tenth, ms", "< 300 ms"),
    "b_rate_first_tenth": ("B: rate, first tenth, /s", "within 10% of A"),
    "b_rate_vs_a": ("B / A rate over the first tenth", "0.9 - 1.1"),
    "b_dashboard_p95_ms": ("B: dashboard JSON p95, ms", "< 50 ms"),
    "b_analytics_p95_ms": ("B: analytics JSON p95, ms", "< 50 ms"),
    "b_dashboard_sql_p95_ms": ("B: dashboard JSON p95, its SQL only, ms", "(info)"),
    "b_analytics_sql_p95_ms": ("B: analytics JSON p95, its SQL only, ms", "(info)"),
    "cancel_seconds": ("cancel B mid-send, s", "< 5 s"),
    "sent_after_cancel": ("B: accepted after cancel returned", "0"),
    "unsent_cancelled_seconds": ("B: every unsent row cancelled after, s", "(info)"),
}


def p95(values):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * 0.95))] if values else float("nan")


# --- in the process of one size ------------------------------------------------------------------


def write_csv(path, size):
    with open(path, "w") as fh:
        fh.write("email,name,city\n")
        for i in range(size):
            fh.write(f"reader{i}@example.org,Reader {i},City {i % 97}\n")


def run_import(csv_path, env, log_path):
    """manage.py import_contacts in its own process: (seconds, peak RSS in MB, its last output lines)."""
    started = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                str(ROOT / ".venv/bin/python"),
                "manage.py",
                "import_contacts",
                str(csv_path),
                "--owner",
                "scale",
                "--list",
                "Readers",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        sys.exit(f"import_contacts failed: see {log_path}")
    return seconds, usage.ru_maxrss / 1024


class Sampler(threading.Thread):
    """Every `every` seconds, `sample()`; stops when told."""

    def __init__(self, every, sample):
        super().__init__(daemon=True)
        self.every, self.sample, self.stopping = every, sample, threading.Event()

    def run(self):
        try:
            while not self.stopping.is_set():
                self.sample()
                self.stopping.wait(self.every)
        finally:
            from django.db import connections

            connections.close_all()

    def stop(self):
        self.stopping.set()
        self.join(timeout=30)


class TransactionWatch:
    """The longest open transaction and the longest lock wait in this database, from pg_stat_activity."""

    def __init__(self, url):
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.longest_transaction = 0.0
        self.longest_lock_wait = 0.0
        self.longest_query = ""

    def sample(self):
        rows = self.conn.execute(
            "SELECT EXTRACT(EPOCH FROM now() - xact_start), wait_event_type, "
            "EXTRACT(EPOCH FROM now() - state_change), left(query, 120) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL "
            "AND state <> 'idle' AND query NOT ILIKE 'VACUUM%%'"
        ).fetchall()
        for xact_age, wait_type, state_age, query in rows:
            if xact_age is not None and float(xact_age) > self.longest_transaction:
                self.longest_transaction, self.longest_query = float(xact_age), query
            if wait_type == "Lock" and state_age is not None:
                self.longest_lock_wait = max(self.longest_lock_wait, float(state_age))


class JsonWatch:
    """The dashboard's and a campaign's analytics JSON, as the pages poll them (every 2 s), timed.

    From a process of its own, as a web server is: in this process every request waited for the
    GIL behind the dispatcher's ticks, and the wait was counted as the endpoints' time. Each request's
    SQL time is kept beside its total, to tell the database's part from the machine's load.
    """

    def __init__(self, owner, campaign_id, env, *, every=2.0, samples=0):
        self.out = Path(tempfile.mkstemp(suffix=".jsonl")[1])
        self.proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--watch-json",
                f"{owner.pk},{campaign_id},{every},{samples}",
                "--json",
                str(self.out),
            ],
            env=env,
        )

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=60)
        return self.read()

    def wait(self):
        self.proc.wait()
        return self.read()

    def read(self):
        lines = [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]
        return {
            "times": {name: [line[name] for line in lines] for name in ("dashboard", "analytics")},
            "sql": {name: [line[f"{name}_sql"] for line in lines] for name in ("dashboard", "analytics")},
            "progress_seen": [line["preparing"] for line in lines if line["preparing"]],
        }


def watch_json(spec, out):
    """The child of JsonWatch: fetch both endpoints every `every` s (`samples` times, 0: until stopped)."""
    import signal

    owner_id, campaign_id, every, samples = spec.split(",")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from accounts.models import User

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    client = Client()
    client.force_login(User.objects.get(pk=owner_id))
    urls = {"dashboard": reverse("dashboard_data"), "analytics": reverse("campaign_analytics_data", args=[campaign_id])}
    sql_seconds = [0.0]

    def timed_sql(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            sql_seconds[0] += time.perf_counter() - started

    taken = 0
    with open(out, "w") as fh, connection.execute_wrapper(timed_sql):
        while not int(samples) or taken < int(samples):
            started_round = time.perf_counter()
            line = {}
            for name, url in urls.items():
                sql_seconds[0] = 0.0
                started = time.perf_counter()
                response = client.get(url)
                line[name] = (time.perf_counter() - started) * 1000
                line[f"{name}_sql"] = sql_seconds[0] * 1000
                assert response.status_code == 200, response.status_code
                if name == "analytics":
                    line["preparing"] = response.json().get("preparing")
            fh.write(json.dumps(line) + "\n")
            fh.flush()
            taken += 1
            time.sleep(max(0.0, float(every) - (time.perf_counter() - started_round)))


class Vacuum:
    """Autovacuum's work, where it is off: VACUUM ANALYZE of the email table, paced as autovacuum paces
    itself (its default cost delay and limit; a plain VACUUM runs unpaced and took a core from the
    send at 5,000,000 rows)."""

    def __init__(self, url):
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("SET vacuum_cost_delay = '2ms'")
        self.conn.execute("SET vacuum_cost_limit = 200")

    def sample(self):
        self.conn.execute("VACUUM ANALYZE campaigns_email")


def make_account(owner, name, per_minute):
    from sending.models import SmtpAccount

    return SmtpAccount.objects.create(
        owner=owner,
        name=name,
        host="127.0.0.1",
        port=SINK_PORT,
        security="none",
        from_email=f"{name}@example.com",
        from_name=name,
        max_per_minute=per_minute,
        max_per_hour=10**9,
        max_per_day=10**9,
        batch_size=50,
    )


def make_campaign(owner, account, contact_list, name):
    from campaigns.models import Campaign

    campaign = Campaign.objects.create(
        owner=owner,
        name=name,
        smtp_account=account,
        subject="Hello {{ name }}",
        body_html="<p>Hello {{ name }}, news from us.</p>",
        track_opens=False,
        track_clicks=False,
    )
    campaign.lists.add(contact_list)
    return campaign


def other_marketer(per_minute):
    """Another marketer with a small list, on an account of their own."""
    from accounts.services import create_marketer
    from contacts.models import Contact, ContactList

    owner = create_marketer(username="other", email="other@example.com", password="x-bench-password-1")
    contacts = Contact.objects.bulk_create(
        Contact(owner=owner, email=f"friend{i}@example.net", name=f"Friend {i}") for i in range(OTHER_RECIPIENTS)
    )
    contact_list = ContactList.objects.create(owner=owner, name="friends")
    contact_list.contacts.add(*contacts)
    return make_campaign(owner, make_account(owner, "other", per_minute), contact_list, "other")


def vacuum_analyze():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def sent_at_rank(campaign_id, rank):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sent_at FROM campaigns_email WHERE campaign_id = %s AND status = 'sent' "
            "ORDER BY sent_at OFFSET %s LIMIT 1",
            [campaign_id, rank],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def rate_between(campaign_id, first_rank, last_rank):
    """Messages per second between the first_rank-th and last_rank-th accepted message."""
    a, b = sent_at_rank(campaign_id, first_rank), sent_at_rank(campaign_id, last_rank)
    return (last_rank - first_rank) / max((b - a).total_seconds(), 1e-6)


def send(campaigns, *, stop_when, watch_url, json_campaign, vacuum_every, timeout, env):
    """Schedule `campaigns` now and tick once a second until stop_when() is true. Returns a dict of
    what was seen: scheduled_at, tick times (preparing or not), prepared_at, transaction and JSON watches."""
    from django.utils import timezone

    from campaigns.models import Campaign
    from campaigns.services import lifecycle
    from delivery import dispatcher, tasks

    main = campaigns[0]
    transactions = TransactionWatch(watch_url)
    samplers = [Sampler(0.5, transactions.sample)]
    if vacuum_every:
        samplers.append(Sampler(vacuum_every, Vacuum(watch_url).sample))
    scheduled_at = timezone.now()
    for campaign in campaigns:
        lifecycle.schedule(campaign=campaign, at=scheduled_at)
    for sampler in samplers:
        sampler.start()
    # The pages poll their JSON every 2 s (data-interval); one such reader here.
    json_watch = JsonWatch(main.owner, json_campaign.pk, env)
    ticks_preparing, ticks_prepared, prepared_at, started = [], [], None, time.perf_counter()
    batches_claimed = []
    try:
        while time.perf_counter() - started < timeout:
            tick_started = time.perf_counter()
            report = dispatcher.tick(enqueue=tasks.enqueue_batch)
            elapsed_ms = (time.perf_counter() - tick_started) * 1000
            preparing = Campaign.objects.filter(pk=main.pk, recipients_cursor__isnull=False).exists()
            if not preparing and prepared_at is not None:
                batches_claimed.append(len(report.batches))
            (ticks_preparing if preparing or prepared_at is None else ticks_prepared).append(elapsed_ms)
            if not preparing and prepared_at is None:
                prepared_at = timezone.now()
            if stop_when():
                break
            time.sleep(max(0.0, 1 - (time.perf_counter() - tick_started)))
        else:
            raise SystemExit(f"not done within {timeout} s")
    finally:
        watched = json_watch.stop()
        for sampler in samplers:
            sampler.stop()
        transactions.conn.close()
    return {
        "scheduled_at": scheduled_at,
        "prepared_at": prepared_at,
        "ticks_preparing": ticks_preparing,
        "ticks_prepared": ticks_prepared,
        "transactions": transactions,
        "json": watched["times"],
        "json_sql": watched["sql"],
        "progress_seen": watched["progress_seen"],
        "batches_claimed": batches_claimed,
    }


def allowance_ms(account):
    """What rate_limit.allowance costs now (the account's day of sent rows counted), best of 5."""
    from django.utils import timezone

    from delivery import rate_limit

    times = []
    for _ in range(5):
        started = time.perf_counter()
        rate_limit.allowance(account=account, now=timezone.now(), window_seconds=10)
        times.append((time.perf_counter() - started) * 1000)
    return min(times)


def one_size(args, size):
    import redis

    db_name = f"scale_{size}"
    recreate_database(db_name)
    sink = start_sink()
    var_dir = tempfile.mkdtemp(prefix="scale-")
    os.environ.update(VAR_DIR=var_dir, SMTP_ALLOW_PRIVATE_HOSTS="1", DEBUG="0")
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))  # with DEBUG off the built-in key is refused
    setup_django(db_name)
    from django.conf import settings
    from django.utils import timezone

    from accounts.services import create_marketer
    from campaigns.models import Campaign, Email
    from campaigns.services import lifecycle
    from contacts.models import ContactList

    result = {"size": size}
    env = {**os.environ, "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS)}
    owner = create_marketer(username="scale", email="scale@example.com", password="x-bench-password-1")

    csv_path = Path(var_dir) / "contacts.csv"
    write_csv(csv_path, size)
    result["import_seconds"], result["import_rss_mb"] = run_import(csv_path, env, Path(var_dir) / "import.log")
    print(
        f"[{size:,}] import_contacts: {result['import_seconds']:.1f} s, peak RSS {result['import_rss_mb']:.0f} MB",
        flush=True,
    )
    readers = ContactList.objects.get(owner=owner, name="Readers")
    account = make_account(owner, "scale", args.per_minute)
    other = other_marketer(args.per_minute)
    vacuum_analyze()

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    workers = start_workers(env, Path(var_dir) / "worker.log")
    watch_url = database_url_for(db_name)
    try:
        wait_until_ready(workers, env)

        # --- campaign A, with another marketer's small campaign at the same moment ---
        a = make_campaign(owner, account, readers, "A")

        def a_done():
            return Campaign.objects.filter(pk=a.pk, status=Campaign.Status.COMPLETED).exists()

        seen = send(
            [a, other],
            stop_when=a_done,
            watch_url=watch_url,
            json_campaign=a,
            vacuum_every=args.vacuum_every,
            timeout=args.timeout,
            env=env,
        )
        scheduled_at = seen["scheduled_at"]
        first = sent_at_rank(a.pk, 0)
        result["start_seconds"] = (first - scheduled_at).total_seconds()
        result["prepared_seconds"] = (seen["prepared_at"] - scheduled_at).total_seconds()
        result["longest_transaction_s"] = seen["transactions"].longest_transaction
        result["longest_transaction_query"] = seen["transactions"].longest_query
        result["longest_lock_wait_s"] = seen["transactions"].longest_lock_wait
        other_first = sent_at_rank(other.pk, 0)
        other_last = sent_at_rank(other.pk, OTHER_RECIPIENTS - 1)
        result["other_first_seconds"] = (other_first - scheduled_at).total_seconds()
        result["other_done_seconds"] = (other_last - scheduled_at).total_seconds() if other_last else None
        result["tick_p95_preparing_ms"] = p95(seen["ticks_preparing"])
        result["tick_p95_ms"] = p95(seen["ticks_prepared"])
        result["tick_max_ms"] = max(seen["ticks_prepared"], default=float("nan"))
        result["ticks"] = [len(seen["ticks_preparing"]), len(seen["ticks_prepared"])]
        result["batches_per_tick_median"] = statistics.median(seen["batches_claimed"] or [0])
        result["allowance_ms"] = allowance_ms(account)
        sent = Email.objects.filter(campaign=a, status="sent").count()
        result["a_sent"] = sent
        result["rate_first_tenth"] = rate_between(a.pk, 0, sent // 10)
        result["rate_second_half"] = rate_between(a.pk, sent // 2, sent - 1)
        result["rate_ratio"] = result["rate_second_half"] / result["rate_first_tenth"]
        result["dashboard_p95_ms"] = p95(seen["json"]["dashboard"])
        result["analytics_p95_ms"] = p95(seen["json"]["analytics"])
        result["dashboard_sql_p95_ms"] = p95(seen["json_sql"]["dashboard"])
        result["analytics_sql_p95_ms"] = p95(seen["json_sql"]["analytics"])
        result["json_samples"] = len(seen["json"]["dashboard"])
        # The same endpoints with nothing sending: what the data costs, apart from the machine being busy.
        idle = JsonWatch(owner, a.pk, env, every=0, samples=40).wait()
        result["dashboard_idle_p95_ms"] = p95(idle["times"]["dashboard"])
        result["analytics_idle_p95_ms"] = p95(idle["times"]["analytics"])
        result["progress_seen"] = seen["progress_seen"][:1] + seen["progress_seen"][-1:]
        print(
            f"[{size:,}] A: {json.dumps({k: v for k, v in result.items() if k not in ('size',)}, default=str)}",
            flush=True,
        )

        # --- 4 x size old rows, then campaign B to the same list, cancelled after its first tenth ---
        started = time.perf_counter()
        write_old_rows(owner=owner, account=account, contact_list=readers, campaigns=args.old_campaigns)
        vacuum_analyze()
        result["old_rows_seconds"] = time.perf_counter() - started
        result["email_rows"] = Email.objects.count()
        print(
            f"[{size:,}] old rows: {result['email_rows']:,} email rows in {result['old_rows_seconds']:.0f} s",
            flush=True,
        )
        b = make_campaign(owner, account, readers, "B")
        tenth = size // 10

        def b_tenth_sent():
            return Email.objects.filter(campaign=b, status="sent").count() >= tenth

        seen = send(
            [b],
            stop_when=b_tenth_sent,
            watch_url=watch_url,
            json_campaign=b,
            vacuum_every=args.vacuum_every,
            timeout=args.timeout,
            env=env,
        )
        started = time.perf_counter()
        lifecycle.cancel(campaign=b, reason="bench: cancel mid-send")
        result["cancel_seconds"] = time.perf_counter() - started
        cancelled_at = timezone.now()
        result["b_start_seconds"] = (sent_at_rank(b.pk, 0) - seen["scheduled_at"]).total_seconds()
        result["b_tick_p95_ms"] = p95(seen["ticks_prepared"] or seen["ticks_preparing"])
        result["b_tick_p95_preparing_ms"] = p95(seen["ticks_preparing"])
        result["b_rate_first_tenth"] = rate_between(b.pk, 0, tenth - 1)
        result["b_rate_vs_a"] = result["b_rate_first_tenth"] / result["rate_first_tenth"]
        result["b_dashboard_p95_ms"] = p95(seen["json"]["dashboard"])
        result["b_analytics_p95_ms"] = p95(seen["json"]["analytics"])
        result["b_dashboard_sql_p95_ms"] = p95(seen["json_sql"]["dashboard"])
        result["b_analytics_sql_p95_ms"] = p95(seen["json_sql"]["analytics"])
        result["b_longest_transaction_s"] = seen["transactions"].longest_transaction
        # Ticks go on (they finish cancelling the unsent rows); wait for every row to be final.
        from delivery import dispatcher, tasks

        deadline = time.perf_counter() + 300
        while time.perf_counter() < deadline:
            dispatcher.tick(enqueue=tasks.enqueue_batch)
            if not Email.objects.filter(campaign=b, status__in=["pending", "queued", "deferred"]).exists():
                break
            time.sleep(1)
        result["unsent_cancelled_seconds"] = (timezone.now() - cancelled_at).total_seconds()
        time.sleep(3)
        result["sent_after_cancel"] = Email.objects.filter(campaign=b, sent_at__gt=cancelled_at).count()
        result["b_sent"] = Email.objects.filter(campaign=b, status="sent").count()
    finally:
        os.killpg(workers.pid, 15)
        workers.wait(timeout=60)
        sink.terminate()
        from django.db import connections

        connections.close_all()
    if not args.keep:
        import psycopg

        with psycopg.connect(os.environ["BENCH_ADMIN_URL"], autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    return result


def write_old_rows(*, owner, account, contact_list, campaigns):
    """`campaigns` completed campaigns to the whole list, their rows written by SQL as sent a week ago."""
    from django.db import connection, transaction

    from campaigns.models import Campaign

    for number in range(campaigns):
        old = make_campaign(owner, account, contact_list, f"old {number}")
        Campaign.objects.filter(pk=old.pk).update(status=Campaign.Status.COMPLETED)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO campaigns_email (campaign_id, contact_id, to_email, to_name, status, attempts, message_id,
                    smtp_code, smtp_response, failure_class, open_count, machine_open, click_count,
                    possible_duplicate, sent_at, created_at, updated_at)
                SELECT %s, c.id, c.email, c.name, 'sent', 1, '<old-' || %s || '-' || c.id || '@example.com>', 250,
                    '250 ok', '', 0, false, 0, false, now() - interval '7 days', now() - interval '7 days',
                    now() - interval '7 days'
                FROM campaigns_contact c WHERE c.owner_id = %s
                """,
                [old.pk, old.pk, owner.pk],
            )


# --- the parent: one process per size, then the table ----------------------------------------------


def print_table(results):
    sizes = [r["size"] for r in results]
    header = f"{'step':48} {'goal':>22} " + " ".join(f"{s:>12,}" for s in sizes) + "   ratio to smallest"
    print("\n" + header)
    print("-" * len(header))
    for key, (label, goal) in GOALS.items():
        values = [r.get(key) for r in results]
        cells = " ".join(f"{v:>12,.2f}" if isinstance(v, float) else f"{v!s:>12}" for v in values)
        base = values[0]
        ratios = ", ".join(
            f"{v / base:.2f}" if isinstance(v, (int, float)) and isinstance(base, (int, float)) and base else "-"
            for v in values
        )
        print(f"{label:48} {goal:>22} {cells}   {ratios}")
    for r in results:
        print(
            f"  {r['size']:,}: longest transaction ({r['longest_transaction_s']:.2f} s): "
            f"{r.get('longest_transaction_query', '')!r}; ticks (preparing, after) {r.get('ticks')}; "
            f"JSON samples {r.get('json_samples')}; progress shown {r.get('progress_seen')}; "
            f"B's longest transaction {r.get('b_longest_transaction_s', 0):.2f} s; B sent {r.get('b_sent')}"
        )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument("--old-campaigns", type=int, default=4, help="old campaigns of `size` rows before B")
    parser.add_argument("--vacuum-every", type=float, default=0, help="VACUUM the email table every S s while sending")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument(
        "--per-minute",
        type=int,
        default=120000,
        help="the accounts' limit: above what this machine sends, so the workers set the pace, "
        "while each tick claims a window's worth rather than every row written",
    )
    parser.add_argument("--keep", action="store_true", help="keep each size's database")
    parser.add_argument("--one-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    parser.add_argument("--watch-json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.watch_json:
        watch_json(args.watch_json, args.json)
        return
    for name in ("DATABASE_URL", "REDIS_URL"):
        if not os.environ.get(name):
            sys.exit(f"{name} must be set")
    if args.one_size:
        result = one_size(args, args.one_size)
        Path(args.json).write_text(json.dumps(result, default=str))
        return
    os.environ["BENCH_ADMIN_URL"] = os.environ["DATABASE_URL"]
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        out = Path(tempfile.mkstemp(suffix=".json")[1])
        command = [
            sys.executable,
            __file__,
            "--one-size",
            str(size),
            "--json",
            str(out),
            "--old-campaigns",
            str(args.old_campaigns),
            "--vacuum-every",
            str(args.vacuum_every),
            "--timeout",
            str(args.timeout),
            "--per-minute",
            str(args.per_minute),
        ] + (["--keep"] if args.keep else [])
        started = time.perf_counter()
        subprocess.run(command, check=True)
        results.append(json.loads(out.read_text()))
        print(f"[{size:,}] done in {time.perf_counter() - started:.0f} s", flush=True)
        print_table(results)


if __name__ == "__main__":
    main()
