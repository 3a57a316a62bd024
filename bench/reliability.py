"""Reliability under worker kills: no email lost, duplicates bounded by the kills.

Sends one campaign through 2 Celery worker processes while SIGKILLing one of
them every few seconds and restarting it. The SMTP server (aiosmtpd, in this
process) hangs up on 1% of recipients mid-transaction (before accepting the
message) and answers 451 4.7.0 to 5% of recipients. Needs PostgreSQL (DATABASE_URL) and
Redis (REDIS_URL); it creates and drops its own database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/13 \
        .venv/bin/python bench/reliability.py --recipients 10000 --kill-every 4

Prints: recipients, delivered, lost, duplicates, kills, stuck rows. Lost and
stuck must be 0 and duplicates at most the number of kills (one message in
flight per killed worker's connection).
"""

import argparse
import collections
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput  # noqa: E402  (shared database and campaign helpers)

ROOT = throughput.ROOT
PORT = 2527


class FlakyHandler:
    def __init__(self, *, throttle_rate, drop_rate, seed=7):
        self.random = random.Random(seed)
        self.throttle_rate, self.drop_rate = throttle_rate, drop_rate
        self.received = collections.Counter()
        self.dropped = 0
        self.lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # Offer PIPELINING like the providers do, so the sender's pipelined dialogue is the one tested.
        session.host_name = hostname
        responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.random.random() < self.drop_rate:
            # Hang up mid-transaction, before any message was accepted.
            self.dropped += 1
            server.transport.close()
            return "421 never seen"
        if self.random.random() < self.throttle_rate:
            return "451 4.7.0 Try again later (throttled)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            for address in envelope.rcpt_tos:
                self.received[address] += 1
        return "250 2.0.0 Ok: queued"


class Workers:
    """Two single-process Celery workers that can be killed and restarted."""

    def __init__(self, env, log_dir):
        self.env, self.log_dir = env, log_dir
        self.procs = [None, None]
        self.kills = 0

    def start(self, slot):
        log = open(self.log_dir / f"worker{slot}.log", "a")
        self.procs[slot] = subprocess.Popen(
            [
                str(ROOT / ".venv/bin/celery"),
                "-A",
                "config",
                "worker",
                "--concurrency",
                "1",
                "--pool",
                "prefork",
                "-n",
                f"reliability{slot}@%h",
                "-l",
                "WARNING",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill_and_restart(self, slot):
        os.killpg(self.procs[slot].pid, signal.SIGKILL)
        self.procs[slot].wait()
        self.kills += 1
        self.start(slot)

    def stop(self):
        for proc in self.procs:
            if proc and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            if proc:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=10000)
    parser.add_argument("--kill-every", type=float, default=4.0)
    parser.add_argument("--min-kills", type=int, default=10)
    parser.add_argument("--timeout", type=int, default=900)
    args = parser.parse_args()
    for name in ("DATABASE_URL", "REDIS_URL"):
        if not os.environ.get(name):
            sys.exit(f"{name} must be set")

    db_name = "bench_reliability"
    throughput.recreate_database(db_name)
    var_dir = Path(tempfile.mkdtemp())
    os.environ.update(
        VAR_DIR=str(var_dir),
        SMTP_ALLOW_PRIVATE_HOSTS="1",
        # Short ladder and lease so the run ends in minutes; the logic is the production one.
        EMAIL_RETRY_LADDER="2,4,8",
        EMAIL_LEASE_SECONDS="15",
    )
    throughput.setup_django(db_name)
    import redis
    from django.conf import settings

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    handler = FlakyHandler(throttle_rate=0.05, drop_rate=0.01)
    controller = Controller(handler, hostname="127.0.0.1", port=PORT)
    controller.start()
    throughput.SINK_PORT = PORT
    campaign = throughput.make_campaign(args.recipients, max_per_minute=10**8, name="reliability")
    env = {**os.environ, "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS)}
    workers = Workers(env, var_dir)
    workers.start(0)
    workers.start(1)

    from campaigns.models import Campaign, Email
    from campaigns.services import lifecycle
    from delivery import dispatcher, tasks

    lifecycle.send_now(campaign=campaign)
    start = time.monotonic()
    next_kill = start + args.kill_every
    victim = 0
    try:
        while time.monotonic() - start < args.timeout:
            dispatcher.tick(enqueue=tasks.enqueue_batch)
            done = Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.COMPLETED).exists()
            if done:
                break  # (no kill is made once done: waiting for more would only run out the timeout)
            if time.monotonic() >= next_kill and not done:
                workers.kill_and_restart(victim)
                victim = 1 - victim
                next_kill = time.monotonic() + args.kill_every
            time.sleep(1)
        elapsed = time.monotonic() - start
    finally:
        workers.stop()
        controller.stop()

    rows = dict(Email.objects.filter(campaign=campaign).values_list("to_email", "status"))
    failed = {a for a, s in rows.items() if s == Email.Status.FAILED}
    delivered = {a for a, n in handler.received.items() if n > 0}
    lost = [a for a in rows if a not in delivered and a not in failed]
    sent_but_never_received = [a for a, s in rows.items() if s == Email.Status.SENT and a not in delivered]
    duplicates = sum(n - 1 for n in handler.received.values() if n > 1)
    stuck = sum(1 for s in rows.values() if s not in (Email.Status.SENT, Email.Status.FAILED, Email.Status.CANCELLED))
    print(f"recipients: {len(rows)}")
    print(f"delivered: {len(delivered)}")
    print(f"failed (reported, throttled 4 times): {len(failed)}")
    print(f"lost: {len(lost)} (recorded sent but never received: {len(sent_but_never_received)})")
    print(f"duplicates: {duplicates}")
    print(f"kills: {workers.kills}")
    print(f"stuck rows: {stuck}")
    print(f"connections dropped by the server: {handler.dropped}")
    print(f"elapsed: {elapsed:.0f} s")
    ok = not lost and not stuck and duplicates <= workers.kills
    if ok and workers.kills < args.min_kills:
        print(
            f"verdict: INCONCLUSIVE (only {workers.kills} kills before the campaign completed, fewer than "
            f"--min-kills {args.min_kills}: send more recipients or kill more often)"
        )
        sys.exit(2)
    print("verdict:", "OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
