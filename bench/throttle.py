"""The adaptive rate on the real path against servers that throttle: does sending converge on the
server's limit? (issue 13's goal: sustained >= 0.9 N over 5+ minutes, <= 2 % deferred, no 60 s window
above N, with the account configured at 2N.)

Needs PostgreSQL (DATABASE_URL), Redis (REDIS_URL) and Debian's postfix package (run as root). It
creates and drops its own database, starts 2 Celery worker processes and ticks like beat (every 10 s).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/12 \\
        .venv/bin/python bench/throttle.py --limit 600 --minutes 6

Two servers, one after the other, each limiting messages per client to --limit a minute:
  postfix  a private Postfix instance: smtpd_client_message_rate_limit, anvil_rate_time_unit 60s
           (fixed windows, refused MAILs counted too), reply "450 4.7.1 Error: too much mail from ..."
  sliding  our aiosmtpd server counting the last 60 s at every MAIL (stricter: no window turn)
The reference is the server's limit N, measured against in the same run: the ratio printed is the
sustained rate over N.
"""

import argparse
import os
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.throughput import (  # noqa: E402
    make_campaign,
    recreate_database,
    setup_django,
    start_workers,
    wait_until_ready,
)


def per_minute(times, start, minutes):
    counts = [0] * minutes
    for at in times:
        index = int((at - start).total_seconds() // 60)
        if 0 <= index < minutes:
            counts[index] += 1
    return counts


def busiest(times, seconds=60):
    best, first = 0, 0
    for last, at in enumerate(times):
        while (at - times[first]).total_seconds() >= seconds:
            first += 1
        best = max(best, last - first + 1)
    return best


def run_against(*, name, label, host, port, limit, minutes, tick_seconds):
    from django.db.models import Q
    from django.utils import timezone

    from campaigns.models import Email
    from campaigns.services import lifecycle
    from delivery import dispatcher, tasks
    from sending.models import SmtpAccount, SmtpAccountState

    campaign = make_campaign(limit * minutes * 2 + 100, max_per_minute=2 * limit, name=f"throttle-{name}")
    SmtpAccount.objects.filter(pk=campaign.smtp_account_id).update(host=host, port=port)
    start = timezone.now()
    lifecycle.send_now(campaign=campaign)
    began = time.monotonic()
    while time.monotonic() - began < minutes * 60:
        dispatcher.tick(enqueue=tasks.enqueue_batch)
        time.sleep(tick_seconds)
    lifecycle.cancel(campaign=campaign)
    time.sleep(3)  # batches in flight finish their current message
    emails = Email.objects.filter(campaign=campaign)
    times = sorted(emails.filter(status="sent").values_list("sent_at", flat=True))
    in_time = [t for t in times if (t - start).total_seconds() < minutes * 60]
    deferred = emails.filter(Q(status="deferred") | Q(attempts__gt=1) | Q(status="sent", attempts__gt=1)).count()
    state = SmtpAccountState.objects.get(account_id=campaign.smtp_account_id)
    sustained = len(in_time) / minutes
    print(f"\n{label}: server limit {limit}/min per client, account configured at {2 * limit}/min, {minutes} min")
    print(f"  per minute: {', '.join(str(n) for n in per_minute(in_time, start, minutes))}")
    print(
        f"  sustained {sustained:.0f}/min = {sustained / limit:.3f} N (goal >= 0.9); "
        f"deferred {deferred} of {len(in_time)} = {deferred / max(1, len(in_time)) * 100:.2f} % (goal <= 2 %); "
        f"busiest 60 s window {busiest(in_time)} (goal <= {limit})"
    )
    print(
        f"  learned rate {state.learned_per_minute}/min, observed limit {state.observed_limit_per_minute}; "
        f"{state.rate_note}"
    )
    return sustained / limit


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=600, help="the servers' messages per client per minute")
    parser.add_argument("--minutes", type=int, default=6)
    parser.add_argument("--tick-seconds", type=float, default=10, help="as beat runs the dispatcher")
    parser.add_argument("--servers", default="postfix,sliding")
    args = parser.parse_args()
    for name in ("DATABASE_URL", "REDIS_URL"):
        if not os.environ.get(name):
            sys.exit(f"{name} must be set")

    db_name = "bench_throttle"
    recreate_database(db_name)
    var_dir = tempfile.mkdtemp()
    os.environ.update(VAR_DIR=var_dir, SMTP_ALLOW_PRIVATE_HOSTS="1", DEBUG="0")
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))  # with DEBUG off the built-in key is refused
    setup_django(db_name)
    import redis
    from django.conf import settings

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    env = {**os.environ, "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS)}
    workers = start_workers(env, Path(var_dir) / "worker.log")
    ratios = {}
    try:
        wait_until_ready(workers, env)
        for server in args.servers.split(","):
            if server == "postfix":
                from tests.postfix import missing, start_postfix

                if missing():
                    sys.exit(missing())
                postfix = start_postfix(
                    main_cf={
                        "smtpd_client_message_rate_limit": args.limit,
                        "anvil_rate_time_unit": "60s",
                    }
                )
                try:
                    ratios[server] = run_against(
                        name="postfix",
                        label="postfix",
                        host=postfix.host,
                        port=postfix.port,
                        limit=args.limit,
                        minutes=args.minutes,
                        tick_seconds=args.tick_seconds,
                    )
                    print(f"  Postfix logged {len(postfix.refusals())} refusals, queued {len(postfix.message_ids())}")
                finally:
                    postfix.stop()
            elif server == "sliding":
                from tests.smtp_server import RateLimitingHandler, SmtpServer

                handler = RateLimitingHandler(limit=args.limit, window_seconds=60, sliding=True)
                own = SmtpServer(handler)
                own.start()
                try:
                    ratios[server] = run_against(
                        name="sliding",
                        label="sliding (aiosmtpd)",
                        host=own.host,
                        port=own.port,
                        limit=args.limit,
                        minutes=args.minutes,
                        tick_seconds=args.tick_seconds,
                    )
                    print(
                        f"  the server refused {handler.refused_mail} MAILs, busiest 60 s it accepted "
                        f"{handler.busiest_window(60)}"
                    )
                finally:
                    own.stop()
    finally:
        os.killpg(workers.pid, signal.SIGTERM)
        workers.wait(timeout=30)
        from django.db import connections

        connections.close_all()
    print("\nsustained / N: " + ", ".join(f"{name} {ratio:.3f}" for name, ratio in ratios.items()))


if __name__ == "__main__":
    main()
