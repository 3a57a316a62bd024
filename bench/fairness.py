"""Fair share between marketers: a small campaign sent while a large one runs, on the real path.

Needs PostgreSQL (DATABASE_URL), Redis (REDIS_URL) and Postfix's smtp-sink (Debian package
`postfix`). It creates and drops its own database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/12 \
        .venv/bin/python bench/fairness.py --messages 100000

Two Celery worker processes over Redis, smtp-sink, and ticks published to the dispatch queue every
10 s as beat publishes them (the workers run them). Every campaign is sent with "send now" through
the service the admin action calls, with the same tick at once.

- Run A: Alice's campaign alone, on an account with no practical limit: her throughput (the
  reference, measured in the same run).
- Run B: the same campaign again, and --bob-after seconds in (just after a tick: the worst moment for
  whoever waits for the next one), Bob's 10-recipient campaign on his own account: the seconds from
  his "send now" to his first and last accepted message (sent_at), and Alice's throughput B / A.

Goals (issue 13): Bob's first message within 15 s, his last within 30 s, Alice's ratio >= 0.9.
"""

import argparse
import inspect
import os
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path

import throughput  # noqa: E402  (database, sink, worker and campaign helpers)

ROOT = throughput.ROOT
# A port of its own: bench/throughput.py's sink may be running beside this one.
throughput.SINK_PORT = 2536
TICK_SECONDS = 10  # beat's interval (DISPATCH_INTERVAL_SECONDS' default)
UNLIMITED = 10**8


def send_now(campaign):
    """What the admin action "Send selected now" does; on code from before the tick at once
    (send_now without `dispatch_now`), only the start."""
    from campaigns.services import lifecycle
    from delivery import tasks

    if "dispatch_now" in inspect.signature(lifecycle.send_now).parameters:
        lifecycle.send_now(campaign=campaign, dispatch_now=tasks.dispatch_now)
    else:
        lifecycle.send_now(campaign=campaign)


class BeatLikeTicks:
    """A tick published to the dispatch queue every TICK_SECONDS from the start, as beat does."""

    def __init__(self):
        self.next_at = time.monotonic()

    def due(self):
        from delivery import tasks

        while time.monotonic() >= self.next_at:
            tasks.dispatch.delay()
            self.next_at += TICK_SECONDS


def completed_at(campaign):
    from campaigns.models import Campaign

    return (
        Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.COMPLETED)
        .values_list("completed_at", flat=True)
        .first()
    )


def sent_span(campaign, since):
    from django.db.models import Max, Min

    from campaigns.models import Email

    first, last = (
        Email.objects.filter(campaign=campaign, status="sent").aggregate(Min("sent_at"), Max("sent_at")).values()
    )
    return (first - since).total_seconds(), (last - since).total_seconds()


def per_second(campaign, since):
    """Sent messages in each second after `since`: where the workers ran dry, if they did."""
    from campaigns.models import Email

    counts = {}
    for sent_at in Email.objects.filter(campaign=campaign, status="sent").values_list("sent_at", flat=True):
        second = int((sent_at - since).total_seconds())
        counts[second] = counts.get(second, 0) + 1
    return " ".join(str(counts.get(second, 0)) for second in range(max(counts) + 1))


def run(alice, *, bob=None, bob_after=None, timeout, profile=False):
    """Send Alice's campaign (and Bob's, bob_after seconds in) until both complete. Returns
    (Alice's rate, Bob's (first, last) seconds after his send-now, or None)."""
    from django.utils import timezone

    ticks = BeatLikeTicks()
    start, alice_sent_now = time.monotonic(), timezone.now()
    send_now(alice)
    bob_sent_now = None
    while time.monotonic() - start < timeout:
        ticks.due()
        if bob is not None and bob_sent_now is None and time.monotonic() - start >= bob_after:
            bob_sent_now = timezone.now()
            send_now(bob)
        alice_done = completed_at(alice)
        if alice_done is not None and (bob is None or (bob_sent_now is not None and completed_at(bob))):
            seconds = (alice_done - alice_sent_now).total_seconds()
            rate = alice.emails.count() / seconds
            first, last = sent_span(alice, alice_sent_now)
            print(
                f"  Alice: first message {first:.2f} s after 'send now', last {last:.2f} s, "
                f"completed {seconds:.2f} s: {rate:,.0f}/s"
            )
            if profile:
                print(f"  Alice's messages a second: {per_second(alice, alice_sent_now)}")
            if bob is not None and alice_done < bob_sent_now:
                print("  (Alice's campaign completed before Bob's send-now: use a smaller --bob-after)")
            bob_times = None
            if bob is not None:
                bob_times = sent_span(bob, bob_sent_now)
                print(
                    f"  Bob (send now {(bob_sent_now - alice_sent_now).total_seconds():.1f} s into Alice's): "
                    f"first message {bob_times[0]:.2f} s after 'send now', last {bob_times[1]:.2f} s"
                )
            return rate, bob_times
        time.sleep(0.1)
    raise SystemExit(f"not completed within {timeout} s")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100000, help="Alice's recipients")
    parser.add_argument(
        "--bob-after",
        type=float,
        default=20.5,
        help="seconds after Alice's send-now that Bob sends now (ticks at 0, 10, 20 s ...)",
    )
    parser.add_argument("--profile", action="store_true", help="print Alice's messages a second")
    parser.add_argument("--label", default="", help="a name for the code measured, printed in the table")
    args = parser.parse_args()
    for name in ("DATABASE_URL", "REDIS_URL"):
        if not os.environ.get(name):
            sys.exit(f"{name} must be set")

    db_name = "bench_fairness"
    throughput.recreate_database(db_name)
    sink = throughput.start_sink()
    var_dir = tempfile.mkdtemp()
    os.environ["VAR_DIR"] = var_dir
    os.environ["SMTP_ALLOW_PRIVATE_HOSTS"] = "1"
    os.environ["DEBUG"] = "0"  # as in production: with DEBUG on, Django keeps every SQL statement
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))  # with DEBUG off the built-in key is refused
    throughput.setup_django(db_name)
    from django.conf import settings

    env = {**os.environ, "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS)}
    import redis

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    workers = throughput.start_workers(env, Path(var_dir) / "worker.log")
    timeout = args.messages / 300 + 120
    try:
        throughput.wait_until_ready(workers, env)
        print(
            f"{args.label or 'this code'}: Alice {args.messages:,} recipients, Bob 10; "
            f"2 worker processes, ticks every {TICK_SECONDS} s; load {os.getloadavg()[0]:.1f}"
        )
        # Not counted: a worker's first batches (connections, imports, caches) were the slowest of all.
        run(throughput.make_campaign(2000, max_per_minute=UNLIMITED, name="warmup-campaign"), timeout=timeout)
        alone = throughput.make_campaign(args.messages, max_per_minute=UNLIMITED, name="alice-alone")
        throughput.vacuum_analyze()
        print("run A: Alice alone")
        rate_a, _ = run(alone, timeout=timeout, profile=args.profile)
        alice = throughput.make_campaign(args.messages, max_per_minute=UNLIMITED, name="alice")
        bob = throughput.make_campaign(10, max_per_minute=UNLIMITED, name="bob")
        throughput.vacuum_analyze()
        print("run B: Alice, and Bob's 10")
        rate_b, (bob_first, bob_last) = run(
            alice, bob=bob, bob_after=args.bob_after, timeout=timeout, profile=args.profile
        )
        print()
        print("| code | Alice alone (A) | Alice beside Bob (B) | B / A | Bob's first | Bob's last |")
        print("|---|---|---|---|---|---|")
        print(
            f"| {args.label or 'this code'} | {rate_a:,.0f}/s | {rate_b:,.0f}/s | {rate_b / rate_a:.2f} | "
            f"{bob_first:.1f} s | {bob_last:.1f} s |"
        )
        print(
            f"ratio Alice B/A: {rate_b / rate_a:.2f} (goal >= 0.9); Bob's first {bob_first:.1f} s (goal <= 15), "
            f"last {bob_last:.1f} s (goal <= 30); load {os.getloadavg()[0]:.1f}"
        )
    finally:
        os.killpg(workers.pid, signal.SIGTERM)
        workers.wait(timeout=30)
        sink.terminate()
        from django.db import connections

        connections.close_all()


if __name__ == "__main__":
    main()
