"""A bounce mailbox of 10,000 DSNs read by `bounces.services.read_mailbox`, over IMAPS and POP3S.

Needs PostgreSQL (DATABASE_URL: any database of the server; the bench creates its own,
bench_bounces_<random>, and drops it at the end), Redis (REDIS_URL: read_mailbox's lock) and Debian's
Dovecot (apt-get install dovecot-imapd dovecot-pop3d; root, as tests/dovecot.py starts it).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/bounces.py --messages 10000

One marketer, one SMTP account with a bounce address, and a private Dovecot (tests/dovecot.py) as the
account's bounce mailbox. For each protocol (IMAPS, then POP3S) and each size (N/10, then N), twice
(a timed read, then a read under tracemalloc):

1. a new list of that many contacts and a completed campaign to them, its Email rows written as sent
   by set-based SQL (the ledger's `sent` state, as bench/segments.py writes its past campaign);
2. one report per email, delivered into the Maildir: ~85 % hard bounces (5.1.1), ~10 % soft bounces
   (4.2.2), ~5 % ARF complaints, each mailed to its email's VERP address;
3. `read_mailbox` of the account's mailbox in a fresh process (spawned: its memory is the read's
   alone), which reports its time, its RSS before the read and its peak RSS during it (VmHWM, reset
   before the read), its own CPU time (user and system: the share of the time the machine's other work
   does not decide), the SQL statements it sent and their time, and, in the tracemalloc read,
   tracemalloc's peak; with --profile DIR, the timed read of N runs under pyinstrument (slower) and
   its report is written to DIR.

Then the database and the mailbox are checked: every email records its report, the hard-bounced and
complained contacts are suppressed, the mailbox is empty. The reference, measured in the same run on
the timed read's messages: `bounces.parsing.parse` of each (read from the Maildir first) with no
database and no IMAP; the ratio shows what the database and the mailbox protocol add.

Goals (issue 25): N messages in under 60 s, memory flat (the peak at N about the peak at N/10).
"""

import argparse
import os
import resource
import secrets
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
# This file is bench/bounces.py: its folder must not hide the `bounces` app.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

GOAL_SECONDS = 60
BOUNCE_ADDRESS = "bounces@mail.bench.example"
PROTOCOLS = {"imap": "IMAPS", "pop3": "POP3S"}


def database_url_for(name):
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + name))


def recreate_database(name, *, drop_only=False):
    import psycopg

    with psycopg.connect(database_url_for("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(*, migrate):
    os.environ["DATABASE_POOL"] = "0"
    os.environ["SMTP_ALLOW_PRIVATE_HOSTS"] = "1"  # the private Dovecot listens on 127.0.0.1, free ports
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import logging

    from django.conf import settings
    from django.core.management import call_command

    settings.DEBUG = False  # DEBUG would keep every query in memory
    logging.getLogger("bounces").setLevel(logging.WARNING)
    if migrate:
        call_command("migrate", verbosity=0)


# --- the data ------------------------------------------------------------------------------------


def owner_and_account():
    from accounts.services import create_marketer
    from sending.models import SmtpAccount

    owner = create_marketer(username="bench", email="bench@bench.example", password="x-bench-password-1")
    account = SmtpAccount.objects.create(
        owner=owner,
        name="main",
        host="127.0.0.1",
        port=2525,
        security="none",
        from_email="news@bench.example",
        bounce_address=BOUNCE_ADDRESS,
    )
    return owner, account


def sent_campaign(*, owner, account, size, label):
    """A completed campaign to `size` new contacts, every email sent: [(email id, address)] by id."""
    from django.db import connection

    from campaigns.models import Campaign

    campaign = Campaign.objects.create(
        owner=owner, name=f"Sent {label}", smtp_account=account, subject="Hello", body_html="<p>Hello</p>"
    )
    with connection.cursor() as cur:
        cur.execute("UPDATE campaigns_campaign SET status = 'completed' WHERE id = %s", [campaign.pk])
        cur.execute(
            """
            INSERT INTO campaigns_contact (owner_id, email, name, attributes, status, consent_text, consent_ip_hash,
                                           created_at, updated_at)
            SELECT %s, %s || '-' || i || '@example.org', 'Reader ' || i, '{}'::jsonb, 'subscribed', '', '',
                   now() - interval '30 days', now() - interval '30 days'
            FROM generate_series(1, %s) AS i
            """,
            [owner.pk, label, size],
        )
        cur.execute(
            """
            INSERT INTO campaigns_email (campaign_id, contact_id, to_email, to_name, status, attempts, message_id,
                smtp_code, smtp_response, failure_class, sent_at, open_count, machine_open, click_count,
                possible_duplicate, created_at, updated_at)
            SELECT %s, c.id, c.email, c.name, 'sent', 1, '<' || c.id || '.bench@bench.example>', 250,
                   '2.0.0 OK', '', now() - interval '1 hour', 0, false, 0, false,
                   now() - interval '1 hour', now() - interval '1 hour'
            FROM campaigns_contact c WHERE c.owner_id = %s AND c.email LIKE %s
            """,
            [campaign.pk, owner.pk, f"{label}-%"],
        )
        cur.execute(
            "SELECT id, to_email, message_id FROM campaigns_email WHERE campaign_id = %s ORDER BY id", [campaign.pk]
        )
        rows = cur.fetchall()
        cur.execute("ANALYZE campaigns_email")
        cur.execute("ANALYZE campaigns_contact")
    return campaign, rows


def kind_of(index):
    """~5 % complaints, ~10 % soft bounces, the rest hard bounces."""
    position = index % 20
    return "complaint" if position == 0 else "soft" if position in (1, 2) else "hard"


def report_for(index, email_id, recipient, message_id):
    from sending import verp
    from tests.bounces import reports

    to = verp.address(bounce_address=BOUNCE_ADDRESS, email_id=email_id)
    kind = kind_of(index)
    if kind == "complaint":
        original = reports.original_headers(to=recipient, message_id=message_id, return_path=to)
        return reports.arf(to=to, recipient=recipient, original=original)
    if kind == "soft":
        return reports.dsn(
            to=to,
            recipient=recipient,
            status="4.2.2",
            diagnostic="smtp; 452 4.2.2 <{r}>: Mailbox full",
            original=reports.original_headers(to=recipient, message_id=message_id, return_path=to),
        )
    return reports.dsn(
        to=to,
        recipient=recipient,
        original=reports.original_headers(to=recipient, message_id=message_id, return_path=to),
    )


def deliver_reports(dovecot, rows):
    started = time.perf_counter()
    for index, (email_id, recipient, message_id) in enumerate(rows):
        dovecot.deliver(report_for(index, email_id, recipient, message_id))
    return time.perf_counter() - started


def parse_reference(dovecot):
    """Seconds `bounces.parsing.parse` takes over the messages in the Maildir (files read beforehand)."""
    from bounces import parsing

    raws = [path.read_bytes() for path in dovecot.stored()]
    started = time.perf_counter()
    for raw in raws:
        parsing.parse(raw)
    return len(raws), time.perf_counter() - started


# --- the measured read, in a process of its own --------------------------------------------------


def _status_kb(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak_rss():
    """Reset VmHWM to the current RSS (Linux's clear_refs 5); False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def measured_read(mailbox_id, trace, profile_path=None):
    """Runs in a spawned process: one `read_mailbox` of the mailbox, with its time and memory; under
    pyinstrument, its report written to `profile_path`, when one is given."""
    import tracemalloc

    setup_django(migrate=False)
    from django.db import connection

    from bounces import services
    from sending.models import BounceMailbox

    mailbox = BounceMailbox.objects.select_related("account__owner").get(pk=mailbox_id)
    connection.ensure_connection()
    rss_before = _status_kb("VmRSS")
    peak_reset = _reset_peak_rss()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    profiler = _profiler() if profile_path else None
    if trace:
        tracemalloc.start()
    statements = [0, 0.0]
    cpu_started = time.process_time()
    started = time.perf_counter()
    with connection.execute_wrapper(_counted(statements)):
        figures = services.read_mailbox(mailbox=mailbox)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    if profiler is not None:
        profiler.stop()
        Path(profile_path).write_text(profiler.output_text(unicode=True, show_all=False))
    traced_peak = tracemalloc.get_traced_memory()[1] if trace else None
    if trace:
        tracemalloc.stop()
    if peak_reset:
        growth_kb = _status_kb("VmHWM") - rss_before
    else:
        growth_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss_before
    connection.close()
    return {
        "figures": figures,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "statements": statements[0],
        "statement_seconds": statements[1],
        "rss_before_mb": rss_before / 1024,
        "rss_growth_mb": max(0, growth_kb) / 1024,
        "traced_peak_mb": None if traced_peak is None else traced_peak / 2**20,
    }


def _counted(statements):
    """A database execute wrapper counting the statements sent (savepoints included, not COMMIT) and
    the seconds they took, round trip included."""

    def wrapper(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statements[0] += 1
            statements[1] += time.perf_counter() - started

    return wrapper


def _profiler():
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001)
    profiler.start()
    return profiler


def read_in_own_process(mailbox_id, *, trace, profile_path=None):
    from django.db import connections

    connections.close_all()
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(measured_read, mailbox_id, trace, profile_path).result()


# --- one round: data, reports, the read, the checks -----------------------------------------------


def check(*, owner, campaign, rows, dovecot, figures):
    from campaigns.models import Email
    from contacts.models import Contact

    emails = Email.objects.filter(campaign=campaign)
    expected = {"hard": 0, "soft": 0, "complaint": 0}
    for index in range(len(rows)):
        expected[kind_of(index)] += 1
    recorded = {
        "hard": emails.filter(bounce_kind=Email.BounceKind.HARD).count(),
        "soft": emails.filter(bounce_kind=Email.BounceKind.SOFT).count(),
        "complaint": emails.filter(complained_at__isnull=False).count(),
    }
    suppressed = Contact.objects.filter(
        owner=owner, emails__campaign=campaign, status__in=Contact.SUPPRESSED_STATUSES
    ).count()
    problems = []
    if recorded != expected:
        problems.append(f"emails record {recorded}, expected {expected}")
    if suppressed != expected["hard"] + expected["complaint"]:
        problems.append(f"{suppressed} contacts suppressed, expected {expected['hard'] + expected['complaint']}")
    if figures.errors or figures.unmatched or figures.read != len(rows):
        problems.append(f"figures: {figures}")
    left = len(dovecot.stored())
    if left:
        problems.append(f"{left} messages left in the mailbox")
    return {
        "emails_recorded": sum(recorded.values()),
        "contacts_suppressed": suppressed,
        "mailbox_empty": left == 0,
        "problems": problems,
    }


def run_round(*, owner, account, dovecot, protocol, size, trace, label, profile_path=None):
    from sending import services as account_services

    campaign, rows = sent_campaign(owner=owner, account=account, size=size, label=label)
    deliver_seconds = deliver_reports(dovecot, rows)
    reference = parse_reference(dovecot) if not trace else None
    port = dovecot.imaps_port if protocol == "imap" else dovecot.pop3s_port
    mailbox = account_services.configure_bounce_mailbox(
        account=account,
        protocol=protocol,
        host=dovecot.host,
        port=port,
        security="ssl",
        username=dovecot.username,
        password=dovecot.password,
    )
    result = read_in_own_process(mailbox.pk, trace=trace, profile_path=profile_path)
    result.update(check(owner=owner, campaign=campaign, rows=rows, dovecot=dovecot, figures=result["figures"]))
    result.update(size=size, deliver_seconds=deliver_seconds, reference=reference)
    return result


# --- output ---------------------------------------------------------------------------------------


def print_protocol(protocol, results):
    print(f"\n{PROTOCOLS[protocol]}: read_mailbox in a process of its own")
    header = (
        f"  {'messages':>9} {'seconds':>8} {'CPU, s':>7} {'msg/s':>7} {'RSS before':>11} {'RSS growth':>11} "
        f"{'tracemalloc':>12} {'SQL/msg':>8} {'SQL, s':>7} {'suppressed':>11} {'recorded':>9} {'empty':>6} "
        f"{'parse only, s':>14} {'ratio':>6}"
    )
    print(header)
    for size in sorted({r["size"] for r in results}):
        timed = next(r for r in results if r["size"] == size and r["traced_peak_mb"] is None)
        traced = next((r for r in results if r["size"] == size and r["traced_peak_mb"] is not None), None)
        parsed, parse_seconds = timed["reference"]
        traced_text = f"{traced['traced_peak_mb']:.1f} MB" if traced else "-"
        print(
            f"  {size:>9,} {timed['seconds']:>8.1f} {timed['cpu_seconds']:>7.1f} {size / timed['seconds']:>7.0f} "
            f"{timed['rss_before_mb']:>8.0f} MB {timed['rss_growth_mb']:>8.1f} MB {traced_text:>12} "
            f"{timed['statements'] / size:>8.1f} {timed['statement_seconds']:>7.1f} "
            f"{timed['contacts_suppressed']:>11,} {timed['emails_recorded']:>9,} "
            f"{'yes' if timed['mailbox_empty'] else 'NO':>6} {parse_seconds:>14.2f} "
            f"{timed['seconds'] / parse_seconds:>6.1f}"
        )
        if traced:
            print(
                f"  {'':>9} (the tracemalloc read: {traced['seconds']:.1f} s, RSS growth "
                f"{traced['rss_growth_mb']:.1f} MB, suppressed {traced['contacts_suppressed']:,}, "
                f"empty {'yes' if traced['mailbox_empty'] else 'NO'})"
            )


def print_goals(results, messages):
    print(f"\nGoals: {messages:,} messages in < {GOAL_SECONDS} s; memory flat from {messages // 10:,} to {messages:,}")
    failed = False
    for protocol, rows in results.items():
        full = next(r for r in rows if r["size"] == messages and r["traced_peak_mb"] is None)
        small_traced = next((r for r in rows if r["size"] == messages // 10 and r["traced_peak_mb"] is not None), None)
        full_traced = next((r for r in rows if r["size"] == messages and r["traced_peak_mb"] is not None), None)
        ok = full["seconds"] < GOAL_SECONDS
        failed |= not ok
        print(
            f"  {PROTOCOLS[protocol]:6} {full['seconds']:6.1f} s (the reader's CPU {full['cpu_seconds']:.1f} s)   "
            f"{'ok' if ok else 'MISSED'}"
        )
        if small_traced and full_traced:
            ratio = full_traced["traced_peak_mb"] / small_traced["traced_peak_mb"]
            print(
                f"  {PROTOCOLS[protocol]:6} tracemalloc peak {small_traced['traced_peak_mb']:.1f} MB -> "
                f"{full_traced['traced_peak_mb']:.1f} MB (x{ratio:.2f} for x10 messages)"
            )
    problems = [p for rows in results.values() for r in rows for p in r["problems"]]
    for problem in problems:
        print(f"  CHECK FAILED: {problem}")
    return failed or bool(problems)


def close_connections():
    """Django's connections closed, if Django was set up at all (the database is dropped next)."""
    from django.conf import settings

    if settings.configured:
        from django.db import connections

        connections.close_all()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--protocols", default="imap,pop3", help="imap, pop3 or both (default)")
    parser.add_argument("--no-tracemalloc", action="store_true", help="only the timed reads")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="run the timed reads of N under pyinstrument (slower) and write its report to DIR/bounces-<protocol>.txt",
    )
    args = parser.parse_args()
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    if any(p not in PROTOCOLS for p in protocols):
        sys.exit(f"--protocols: one or more of {', '.join(PROTOCOLS)}")
    if args.messages < 10:
        sys.exit("--messages: at least 10")

    db_name = f"bench_bounces_{secrets.token_hex(4)}"
    recreate_database(db_name)
    os.environ["DATABASE_URL"] = database_url_for(db_name)
    dovecot = None
    try:
        setup_django(migrate=True)
        from tests import dovecot as private_dovecot

        reason = private_dovecot.missing()
        if reason:
            sys.exit(reason)
        dovecot = private_dovecot.start_dovecot()
        os.environ["SMTP_CA_FILE"] = str(dovecot.cert_file)  # for the spawned readers
        from django.conf import settings

        settings.SMTP_CA_FILE = str(dovecot.cert_file)
        owner, account = owner_and_account()
        print(
            f"bench/bounces.py: {args.messages:,} messages; database {db_name}; "
            f"Dovecot {private_dovecot.DOVECOT}; {os.cpu_count()} CPUs"
        )
        results = {}
        for protocol in protocols:
            results[protocol] = []
            for size in (args.messages // 10, args.messages):
                for trace in (False,) if args.no_tracemalloc else (False, True):
                    label = f"{protocol}-{size}-{'traced' if trace else 'timed'}"
                    profiled = args.profile and size == args.messages and not trace
                    profile_path = Path(args.profile) / f"bounces-{protocol}.txt" if profiled else None
                    result = run_round(
                        owner=owner,
                        account=account,
                        dovecot=dovecot,
                        protocol=protocol,
                        size=size,
                        trace=trace,
                        label=label,
                        profile_path=profile_path,
                    )
                    results[protocol].append(result)
                    print(
                        f"  [{label}] {size:,} delivered in {result['deliver_seconds']:.1f} s; read in "
                        f"{result['seconds']:.1f} s; {result['figures']}",
                        flush=True,
                    )
        for protocol, rows in results.items():
            print_protocol(protocol, rows)
        parse_rates = [
            r["reference"][0] / r["reference"][1] for rows in results.values() for r in rows if r["reference"]
        ]
        print(
            "\nparse only (bounces.parsing.parse, no database, no mailbox): "
            f"median {statistics.median(parse_rates):,.0f} msg/s"
        )
        failed = print_goals(results, args.messages)
    finally:
        if dovecot is not None:
            dovecot.stop()
        close_connections()
        recreate_database(db_name, drop_only=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
