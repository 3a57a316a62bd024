"""Throughput of the full sending path against a plain smtplib loop, in the same run.

Needs PostgreSQL (DATABASE_URL), Redis (REDIS_URL) and Postfix's smtp-sink
(Debian package `postfix`). It creates and drops its own database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/12 \
        .venv/bin/python bench/throughput.py --messages 20000

Prints the reference rate (2 processes, smtplib, reused connections, comparable
messages), the full path's rate (dispatcher ticks, Celery over Redis, 2 worker
processes, PostgreSQL) and their ratio; with --rounds N, N such pairs back to back and the
median ratio (the machine's speed drifts between minutes); with --cpu, the CPU time per
message of every program involved. With --rate-limit 600 it also runs an
account limited to 600 a minute for --limit-seconds and reports the achieved
rate and the busiest 60-second window.
"""

import argparse
import multiprocessing
import os
import secrets
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
SINK_PORT = 2526
BENCH_DATABASE = "bench_throughput"


def database_url_for(name):
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + name))


def recreate_database(name):
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def start_sink():
    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not os.path.exists(binary):
        sys.exit("smtp-sink not found: apt-get install postfix")
    proc = subprocess.Popen([binary, "-u", "root", f"127.0.0.1:{SINK_PORT}", "256"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            smtplib.SMTP("127.0.0.1", SINK_PORT, timeout=1).quit()
            return proc
        except OSError:
            time.sleep(0.1)
    sys.exit("smtp-sink did not start")


# --- reference: plain smtplib -------------------------------------------------------


def _reference_worker(count, batch):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.mail import EmailMultiAlternatives

    sent = 0
    while sent < count:
        conn = smtplib.SMTP("127.0.0.1", SINK_PORT)
        conn.ehlo()
        for _ in range(min(batch, count - sent)):
            message = EmailMultiAlternatives(
                subject=f"Hello Contact {sent}",
                body=f"Hello Contact {sent}, news from us.",
                from_email="Bench <bench@example.com>",
                to=[f"Contact {sent} <contact{sent}@example.org>"],
            )
            message.attach_alternative(f"<p>Hello Contact {sent}, news from us.</p>", "text/html")
            conn.sendmail("bench@example.com", [f"contact{sent}@example.org"], message.message().as_bytes())
            sent += 1
        conn.quit()


def reference_rate(messages, processes=2, batch=50):
    per = messages // processes
    procs = [multiprocessing.Process(target=_reference_worker, args=(per, batch)) for _ in range(processes)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return per * processes / (time.perf_counter() - start)


# --- where the CPU goes ---------------------------------------------------------------


def cpu_by_program():
    """CPU seconds (user + system) of every live process, summed by program name. (A process that
    ends during a round is left out: the figures are a floor, PostgreSQL's when a worker renews
    its connections.)"""
    tick = os.sysconf("SC_CLK_TCK")
    totals = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().split(b"\0")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        name = comm
        if any(b"celery" in part for part in cmdline[:2]):
            # The pool's children run the tasks; their parent takes them from Redis and hands them out.
            name = "celery pool" if _parent_is_celery(fields[1]) else "celery main"
        if comm.startswith("postgres") or comm == "postmaster":
            # "postgres: autovacuum worker", "postgres: walwriter", "postgres: <user> <db> <client>"
            words = [w for w in b" ".join(cmdline).decode(errors="replace").split() if not w.endswith(":")]
            # Backends of other databases (other programs sharing the server) are counted apart.
            if len(words) > 2 and "(" in words[2]:
                name = "postgres backends" if words[1] == BENCH_DATABASE else "postgres backends, other databases"
            else:
                name = "postgres " + " ".join(words[:2])
        totals[name] = totals.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return totals


def _parent_is_celery(ppid):
    try:
        with open(f"/proc/{ppid}/cmdline", "rb") as f:
            return b"celery" in f.read()
    except OSError:
        return False


def print_cpu(label, before, after, messages):
    spent = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in after}
    spent = {name: s for name, s in spent.items() if s > 0.05}
    total = sum(spent.values())
    parts = ", ".join(f"{name} {s / messages * 1e6:,.0f}" for name, s in sorted(spent.items(), key=lambda i: -i[1]))
    print(f"  CPU per message, {label}: {total / messages * 1e6:,.0f} us ({parts})")


# --- the full path ---------------------------------------------------------------------


def setup_django(db_name):
    os.environ["DATABASE_URL"] = database_url_for(db_name)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def make_campaign(messages, max_per_minute, name):
    from accounts.services import create_marketer
    from campaigns.models import Campaign
    from contacts.models import Contact, ContactList
    from sending.models import SmtpAccount

    owner = create_marketer(username=f"bench-{name}", email=f"{name}@example.com", password="x-bench-password-1")
    account = SmtpAccount.objects.create(
        owner=owner,
        name=name,
        host="127.0.0.1",
        port=SINK_PORT,
        security="none",
        from_email="bench@example.com",
        from_name="Bench",
        max_per_minute=max_per_minute,
        max_per_hour=10**9,
        max_per_day=10**9,
        batch_size=50,
    )
    contacts = Contact.objects.bulk_create(
        Contact(owner=owner, email=f"contact{i}@example.org", name=f"Contact {i}") for i in range(messages)
    )
    contact_list = ContactList.objects.create(owner=owner, name="bench")
    contact_list.contacts.add(*contacts)
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


def start_workers(env, log_path, concurrency=2):
    return subprocess.Popen(
        [
            str(ROOT / ".venv/bin/celery"),
            "-A",
            "config",
            "worker",
            "--concurrency",
            str(concurrency),
            "--pool",
            "prefork",
            "-l",
            os.environ.get("BENCH_WORKER_LOG_LEVEL", "WARNING"),
        ],
        cwd=ROOT,
        env=env,
        stdout=open(log_path, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_until_ready(workers, env, timeout=60):
    """Until the worker answers a ping, then a second more: a worker still starting up (imports,
    forks, connecting) burned CPU during the first reference run and flattered the first ratio.
    (Asked from a subprocess: a broker connection left in this process hangs the forked
    reference processes.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if workers.poll() is not None:
            sys.exit("the Celery worker exited while starting")
        ping = subprocess.run(
            [str(ROOT / ".venv/bin/celery"), "-A", "config", "inspect", "ping", "--timeout", "1"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if ping.returncode == 0:
            time.sleep(1)
            return
    sys.exit(f"the Celery worker did not answer within {timeout} s")


def run_campaign(campaign, tick_seconds, timeout):
    """Tick like beat would (every tick_seconds) until the campaign completes; returns the seconds
    from 'send now' to the campaign's completed_at (whoever completed it: the last batch, or a tick)."""
    from django.db.models import Max, Min
    from django.utils import timezone

    from campaigns.models import Campaign, Email
    from campaigns.services import lifecycle
    from delivery import dispatcher, tasks

    start, started_at = time.perf_counter(), timezone.now()
    lifecycle.send_now(campaign=campaign)
    while time.perf_counter() - start < timeout:
        dispatcher.tick(enqueue=tasks.enqueue_batch)
        completed_at = (
            Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.COMPLETED)
            .values_list("completed_at", flat=True)
            .first()
        )
        if completed_at is not None:
            elapsed = (completed_at - started_at).total_seconds()
            first, last = Email.objects.filter(campaign=campaign).aggregate(Min("sent_at"), Max("sent_at")).values()
            print(
                f"  first message accepted {(first - started_at).total_seconds():.2f} s after 'send now', "
                f"the last at {(last - started_at).total_seconds():.2f} s, campaign completed at {elapsed:.2f} s"
            )
            return elapsed
        time.sleep(tick_seconds)
    raise SystemExit(f"campaign {campaign.pk} did not complete within {timeout} s")


def busiest_window(campaign, seconds=60):
    from campaigns.models import Email

    times = sorted(Email.objects.filter(campaign=campaign, status="sent").values_list("sent_at", flat=True))
    best, j = 0, 0
    for i, t in enumerate(times):
        while (t - times[j]).total_seconds() >= seconds:
            j += 1
        best = max(best, i - j + 1)
    return best, len(times)


def vacuum_analyze():
    """What autovacuum does between campaigns: statistics for the planner, dead rows of the
    previous round cleared. (This machine's PostgreSQL runs with autovacuum off; without it a
    round ran against the dead index entries of every round before it, ~30% slower.)"""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def throughput_round(args, number):
    """One reference run and one full-path run, back to back: the machine's speed drifts over
    minutes (other tenants), so each ratio compares two runs made under the same conditions.
    Even rounds run the full path first, so a drift in one direction favours neither side."""
    label = f"round {number}: " if args.rounds > 1 else ""
    campaign = make_campaign(args.messages, max_per_minute=10**8, name=f"unlimited{number}")
    vacuum_analyze()
    runs = [reference_run, full_path_run]
    if number % 2 == 0:
        runs.reverse()
    rates = {}
    for run in runs:
        rates[run] = run(args, label, campaign)
    ratio = rates[full_path_run] / rates[reference_run]
    print(f"{label}ratio full/reference: {ratio:.2f} (goal >= 0.8)")
    return ratio


def reference_run(args, label, campaign):
    before, children = cpu_by_program(), os.times()
    ref = reference_rate(args.messages)
    after = cpu_by_program()
    after["reference processes"] = (
        os.times().children_user + os.times().children_system - children.children_user - children.children_system
    )
    print(f"{label}reference (smtplib, 2 processes): {args.messages} messages at {ref:,.0f}/s")
    if args.cpu:
        print_cpu("reference", before, after, args.messages)
    return ref


def full_path_run(args, label, campaign):
    before = cpu_by_program()
    elapsed = run_campaign(campaign, tick_seconds=1, timeout=1800)
    after = cpu_by_program()
    full = args.messages / elapsed
    print(
        f"{label}full path (dispatch, Celery/Redis, 2 workers, PostgreSQL): {args.messages} messages at {full:,.0f}/s"
    )
    if args.cpu:
        print_cpu("full path", before, after, args.messages)
    return full


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rate-limit", type=int, default=600)
    parser.add_argument("--limit-seconds", type=int, default=180)
    parser.add_argument("--skip-limit", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--rounds", type=int, default=1, help="reference and full path back to back, N times")
    parser.add_argument("--cpu", action="store_true", help="print CPU time per message by program")
    args = parser.parse_args()
    for name in ("DATABASE_URL", "REDIS_URL"):
        if not os.environ.get(name):
            sys.exit(f"{name} must be set")

    db_name = BENCH_DATABASE
    recreate_database(db_name)
    sink = start_sink()
    var_dir = tempfile.mkdtemp()
    os.environ["VAR_DIR"] = var_dir
    os.environ["SMTP_ALLOW_PRIVATE_HOSTS"] = "1"
    # As in production: with DEBUG on, Django keeps every SQL statement of a worker in memory.
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))  # with DEBUG off the built-in key is refused
    setup_django(db_name)
    from django.conf import settings

    env = {**os.environ, "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS)}
    import redis

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    workers = start_workers(env, Path(var_dir) / "worker.log")
    try:
        wait_until_ready(workers, env)
        if not args.skip_throughput:
            reference_rate(2000)  # warm-up, not counted: the first reference run was the slowest of all
            ratios = [throughput_round(args, number) for number in range(1, args.rounds + 1)]
            if len(ratios) > 1:
                print(
                    f"ratio full/reference, median of {len(ratios)} rounds: {statistics.median(ratios):.2f} "
                    f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)}; goal >= 0.8)"
                )
        if not args.skip_limit:
            limit = args.rate_limit
            limited = make_campaign(limit * args.limit_seconds // 60 * 3, max_per_minute=limit, name="limited")
            from campaigns.models import Email
            from campaigns.services import lifecycle
            from delivery import dispatcher, tasks

            lifecycle.send_now(campaign=limited)
            start = time.perf_counter()
            while time.perf_counter() - start < args.limit_seconds:
                dispatcher.tick(enqueue=tasks.enqueue_batch)
                time.sleep(1)
            sent = Email.objects.filter(campaign=limited, status="sent").count()
            achieved = sent / (args.limit_seconds / 60)
            window, _ = busiest_window(limited)
            print(
                f"limited to {limit}/min over {args.limit_seconds} s: achieved {achieved:.1f}/min "
                f"({(achieved - limit) / limit * 100:+.1f}%), busiest 60 s window {window}"
            )
            lifecycle.cancel(campaign=limited)
    finally:
        os.killpg(workers.pid, signal.SIGTERM)
        workers.wait(timeout=30)
        sink.terminate()
        from django.db import connections

        connections.close_all()


if __name__ == "__main__":
    main()
