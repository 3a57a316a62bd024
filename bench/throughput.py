"""Throughput of the full sending path against a plain smtplib loop, in the same run.

Needs a PostgreSQL server (DATABASE_URL: any database on it; the bench creates a database of its own,
bench_throughput_<pid>, and drops it at the end), redis-server (the bench starts a private one on a free
port, as tests/isolation.py does) and Postfix's smtp-sink (Debian package `postfix`, started on a free
port). Two runs on one machine share none of them.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/throughput.py --messages 20000

The campaign is what a marketer sends: a newsletter (a heading, five sections, five links, a <style>
block; 3 KB of HTML as written) with its text part derived, open and click tracking on, the footer with the
owner's organization and postal address, List-Unsubscribe (one-click), List-Id and Feedback-ID.
--untracked sends the earlier rows' message instead (one line of HTML, no tracking), for comparison.
--dkim rsa|ed25519 signs with a key generated for the run (sending.services.generate_dkim_key), and
each round then measures both, without and with the signature. --tracking-domain gives the account a
verified tracking domain: its messages' tracking URLs (and the reference's) are on that name.

The reference is 2 processes sending with smtplib over connections reused per 50 messages, the message
built with Django's EmailMultiAlternatives (text and HTML). For the newsletter it builds a comparable
message: the same HTML (the campaign rendered once, CSS inlined, before the run) with the recipient's
name put in, its links rewritten to click URLs of the same length, an open pixel, the same footer with an
unsubscribe URL of the same length, the same text part and the same List-Unsubscribe, List-Id and
Feedback-ID headers. It does no database work, renders no template and signs no token (its tokens are
the message number and a fixed signature-length string). With --dkim it signs every message with the
same key through the same code (sending.dkim.Signer, one per connection as the sender makes one per
batch), so both sides pay the same signature.

Prints the reference rate, the full path's rate (dispatcher ticks, Celery over Redis, 2 worker
processes, PostgreSQL) and their ratio; with --rounds N, N such pairs back to back and the
median ratio (the machine's speed drifts between minutes); with --cpu, the CPU time per
message of every program involved. With --rate-limit 600 it also runs an
account limited to 600 a minute for --limit-seconds and reports the achieved
rate and the busiest 60-second window.
"""

import argparse
import itertools
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.isolation import PrivateRedis, free_port  # noqa: E402

# The port make_campaign's account sends to unless told another (bench/fairness.py, bench/reliability.py
# and bench/scale.py set or read it); this bench starts its sink on a free port and passes that.
SINK_PORT = 2526
SINK_PORT_ATTEMPTS = 5
DKIM_ALGORITHMS = {"rsa": "rsa-sha256", "ed25519": "ed25519-sha256"}
GOALS = {None: 0.8, "rsa": 0.7, "ed25519": 0.7}

NEWSLETTER_SUBJECT = "{{ name }}, the March letter from Green Valley Gardens"
NEWSLETTER_HTML = """<html><head><style>
body { margin: 0; padding: 0; background: #f4f4f0; }
.page { max-width: 600px; margin: 0 auto; padding: 24px; background: #ffffff; }
h1 { font-family: Georgia, serif; font-size: 26px; line-height: 32px; color: #1d3557; margin: 0 0 16px; }
h2 { font-family: Georgia, serif; font-size: 19px; color: #1d3557; margin: 24px 0 8px; }
p { font-family: Arial, Helvetica, sans-serif; font-size: 15px; line-height: 22px; color: #333333; }
a { color: #1d6fa5; }
</style></head><body><div class="page">
<h1>Green Valley Gardens: the March letter</h1>
<p>Hello {{ name }},</p>
<p>Spring is close, and the nursery is busy again. This month we planted the new rose beds, opened
the seed library on Saturdays and started the evening courses. Here is what is new, and what is
coming in April.</p>
<h2>The new rose beds</h2>
<p>Forty old varieties now grow along the south wall, each with a label telling where it comes from
and how it likes to be pruned. Come and see them bud over the next few weeks; the best time is in
the morning, before the sun reaches the wall.
<a href="https://www.green-valley.example/news/rose-beds">Read about the roses</a>.</p>
<h2>The seed library</h2>
<p>Borrow a packet of seeds, grow them, and bring back a packet from your own harvest in the autumn.
Tomatoes, beans and sweet peas are the most asked for; we also keep local varieties you will not
find in shops. <a href="https://www.green-valley.example/seed-library">How the library works</a>.</p>
<h2>Evening courses</h2>
<p>Composting on Tuesdays, pruning fruit trees on Thursdays, both from six to eight, with tea. Places
are limited to twelve a course so that everyone gets their hands in the soil.
<a href="https://www.green-valley.example/courses?season=spring">See the courses and dates</a>.</p>
<h2>The plant sale</h2>
<p>Seedlings, herbs and fruit bushes grown here in the nursery, from two euros, on Saturday 14 March
from nine to one at the main gate. Bring a box or a basket: we have run out of the paper bags.
<a href="https://www.green-valley.example/events/plant-sale">What will be on sale</a>.</p>
<h2>From the kitchen garden</h2>
<p>The first radishes are up under the fleece, the broad beans sown in November have come through the
frost, and the rhubarb is ready for the first pulling. Ruth, who looks after the vegetable beds, has
written down how she keeps slugs off the lettuce without pellets: beer traps, copper tape and a
nightly walk with a torch. It works, she says, if you keep at it every evening from April to June.</p>
<h2>Opening hours</h2>
<p>From Monday the garden opens an hour earlier: eight in the morning to six in the evening, every day
but Sunday. The cafe keeps its hours, and dogs on a lead are still welcome on the outer paths.
<a href="https://www.green-valley.example/visit#opening-hours">Plan your visit</a>.</p>
<p>Thank you for reading, and see you in the garden.<br>Maya and the Green Valley team</p>
</div></body></html>"""
ORGANIZATION = "Green Valley Gardens"
POSTAL_ADDRESS = "Green Valley Gardens\n12 Orchard Lane\n4021 Linz\nAustria"
PLAIN_HTML = "<p>Hello {{ name }}, news from us.</p>"

# What the reference puts in place of the recipient's name and a token, in the sample rendered once.
NAME_PLACEHOLDER = "0NAME0"
TOKEN_PLACEHOLDER = "0TOKEN0"
_HREF = re.compile(r'(<a\b[^>]*?\shref=")(https?://[^"]*)(")', re.IGNORECASE)


def database_url_for(name):
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + name))


def recreate_database(name, server_url=None):
    import psycopg

    with psycopg.connect(server_url or os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name, server_url):
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_sink(port=None):
    """smtp-sink on `port` (SINK_PORT by default); exits when it does not answer."""
    proc = _launch_sink(port or SINK_PORT)
    if proc is None:
        sys.exit("smtp-sink did not start")
    return proc


def start_sink_on_free_port():
    """(smtp-sink, its port) on a free loopback port; another port when the one found is taken meanwhile."""
    for _ in range(SINK_PORT_ATTEMPTS):
        port = free_port()
        proc = _launch_sink(port)
        if proc is not None:
            return proc, port
    sys.exit("smtp-sink did not start")


def _launch_sink(port):
    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not os.path.exists(binary):
        sys.exit("smtp-sink not found: apt-get install postfix")
    proc = subprocess.Popen(
        [binary, "-u", "root", f"127.0.0.1:{port}", "256"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None  # the port was taken
        try:
            smtplib.SMTP("127.0.0.1", port, timeout=1).quit()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    proc.wait()
    return None


# --- reference: plain smtplib -------------------------------------------------------


@dataclass(frozen=True)
class ReferenceMessage:
    """What the reference needs to build a message comparable to the campaign's, without the database:
    the campaign rendered once for NAME_PLACEHOLDER with its unsubscribe URL's token TOKEN_PLACEHOLDER,
    the tracking URLs around TOKEN_PLACEHOLDER, and the campaign's header lines. `signature` fills a
    token to the length of a signed one."""

    subject: str
    text: str
    content_html: str
    footer_html: str
    click_url: str
    open_url: str
    unsubscribe_url: str
    signature: str
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    algorithm: str
    private_pem: str


def reference_message_for(campaign):
    """The campaign rendered once, as the reference's template (in this process, before the run)."""
    from delivery import message
    from tracking import tokens

    site = message.tracking_site(campaign.smtp_account)  # the account's tracking domain, with --tracking-domain
    unsubscribe = message.tracking_url("tracking:unsubscribe", TOKEN_PLACEHOLDER, site=site)
    variables = message.variables_for(
        name=NAME_PLACEHOLDER, email="contact0@example.org", attributes={}, unsubscribe=unsubscribe
    )
    rendered = message.render(campaign=campaign, variables=variables)
    header_lines = message.campaign_header_lines(campaign=campaign, account=campaign.smtp_account)
    headers = tuple(tuple(line.replace("\r\n ", " ").split(": ", 1)) for line in header_lines)
    return ReferenceMessage(
        subject=rendered.subject,
        text=rendered.text,
        content_html=rendered.content_html,
        footer_html=rendered.footer_html,
        click_url=message.tracking_url("tracking:click", TOKEN_PLACEHOLDER, site=site),
        open_url=message.tracking_url("tracking:open", TOKEN_PLACEHOLDER, site=site),
        unsubscribe_url=unsubscribe,
        signature=tokens.open_token(1).rpartition(".")[2],
        headers=headers,
    )


def dkim_key_of(account):
    if not account.dkim_enabled:
        return None
    return DkimKey(
        domain=account.dkim_domain,
        selector=account.dkim_selector,
        algorithm=account.dkim_algorithm,
        private_pem=account.get_dkim_private_key(),
    )


def _plain_reference_message(number):
    """The earlier rows' reference message: one line of text and of HTML, nothing tracked."""
    from django.core.mail import EmailMultiAlternatives

    message = EmailMultiAlternatives(
        subject=f"Hello Contact {number}",
        body=f"Hello Contact {number}, news from us.",
        from_email="Bench <bench@example.com>",
        to=[f"Contact {number} <contact{number}@example.org>"],
    )
    message.attach_alternative(f"<p>Hello Contact {number}, news from us.</p>", "text/html")
    return message


def _comparable_message(spec, number):
    """The campaign's message for recipient `number` as the reference builds it: placeholders replaced,
    links rewritten to click URLs, the pixel and the footer added before </body>."""
    from django.core.mail import EmailMultiAlternatives

    from delivery.message import with_footer

    name = f"Contact {number}"
    links = itertools.count(1)

    def click(match):
        token = f"{number}-{next(links)}.{spec.signature}"
        return match.group(1) + spec.click_url.replace(TOKEN_PLACEHOLDER, token) + match.group(3)

    unsubscribe_token = f"{number}.{spec.signature}"
    pixel = (
        f'<img src="{spec.open_url.replace(TOKEN_PLACEHOLDER, unsubscribe_token)}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0">'
    )
    html = _HREF.sub(click, spec.content_html.replace(NAME_PLACEHOLDER, name))
    html = with_footer(html, pixel + spec.footer_html.replace(TOKEN_PLACEHOLDER, unsubscribe_token))
    unsubscribe = spec.unsubscribe_url.replace(TOKEN_PLACEHOLDER, unsubscribe_token)
    message = EmailMultiAlternatives(
        subject=spec.subject.replace(NAME_PLACEHOLDER, name),
        body=spec.text.replace(NAME_PLACEHOLDER, name).replace(TOKEN_PLACEHOLDER, unsubscribe_token),
        from_email="Bench <bench@example.com>",
        to=[f"{name} <contact{number}@example.org>"],
        headers={
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            **dict(spec.headers),
        },
    )
    message.attach_alternative(html, "text/html")
    return message


def _reference_worker(count, batch, port, spec, dkim_key):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from sending.dkim import Signer

    sent = 0
    while sent < count:
        conn = smtplib.SMTP("127.0.0.1", port)
        conn.ehlo()
        signer = Signer(**vars(dkim_key)) if dkim_key else None
        for _ in range(min(batch, count - sent)):
            message = _comparable_message(spec, sent) if spec else _plain_reference_message(sent)
            if signer:
                raw = signer.sign(message.message().as_bytes(linesep="\r\n"))
            elif spec:
                raw = message.message().as_bytes(linesep="\r\n")
            else:
                raw = message.message().as_bytes()  # as the earlier rows measured it
            conn.sendmail("bench@example.com", [f"contact{sent}@example.org"], raw)
            sent += 1
        conn.quit()


def reference_rate(messages, *, port, spec=None, dkim_key=None, processes=2, batch=50):
    per = messages // processes
    procs = [
        multiprocessing.Process(target=_reference_worker, args=(per, batch, port, spec, dkim_key))
        for _ in range(processes)
    ]
    start = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    if any(p.exitcode for p in procs):
        sys.exit("a reference process failed")
    return per * processes / (time.perf_counter() - start)


# --- where the CPU goes ---------------------------------------------------------------


def cpu_by_program(database):
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
                name = "postgres backends" if words[1] == database else "postgres backends, other databases"
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


def make_campaign(messages, max_per_minute, name, *, newsletter=False, dkim=None, port=None, tracking_domain=False):
    """A campaign to `messages` contacts of one list, from a marketer and SMTP account of its own
    sending to `port` (SINK_PORT by default). `newsletter`: what a marketer sends (NEWSLETTER_HTML,
    tracking on, organization and postal address in the footer); else one line of HTML, untracked.
    `dkim` ("rsa" or "ed25519"): the account signs with a key generated for it. `tracking_domain`: the
    account has a verified tracking domain of its own, which its messages' tracking URLs use."""
    from django.utils import timezone

    from accounts.models import User
    from accounts.services import create_marketer
    from campaigns.models import Campaign
    from contacts.models import Contact, ContactList
    from sending.models import SmtpAccount
    from sending.services import generate_dkim_key, set_dkim_signing

    owner = create_marketer(
        username=f"bench-{name}",
        email=f"{name}@example.com",
        password="x-bench-password-1",
        organization=ORGANIZATION if newsletter else "",
    )
    if newsletter:
        User.objects.filter(pk=owner.pk).update(postal_address=POSTAL_ADDRESS)
        owner.postal_address = POSTAL_ADDRESS
    account = SmtpAccount.objects.create(
        owner=owner,
        name=name,
        host="127.0.0.1",
        port=port or SINK_PORT,
        security="none",
        from_email="bench@example.com",
        from_name="Bench",
        max_per_minute=max_per_minute,
        max_per_hour=10**9,
        max_per_day=10**9,
        batch_size=50,
        tracking_domain=f"links-{name}.bench.example" if tracking_domain else "",
        tracking_domain_verified_at=timezone.now() if tracking_domain else None,
    )
    if dkim:
        generate_dkim_key(
            account=account,
            domain="example.com",
            selector=f"bench{os.getpid()}",
            algorithm=DKIM_ALGORITHMS[dkim],
            now=timezone.now(),
        )
        set_dkim_signing(account=account, enabled=True)
    contacts = Contact.objects.bulk_create(
        Contact(owner=owner, email=f"contact{i}@example.org", name=f"Contact {i}") for i in range(messages)
    )
    contact_list = ContactList.objects.create(owner=owner, name="bench")
    contact_list.contacts.add(*contacts)
    campaign = Campaign.objects.create(
        owner=owner,
        name=name,
        smtp_account=account,
        subject=NEWSLETTER_SUBJECT if newsletter else "Hello {{ name }}",
        body_html=NEWSLETTER_HTML if newsletter else PLAIN_HTML,
        track_opens=newsletter,
        track_clicks=newsletter,
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


def variant_label(dkim):
    return f"{dkim} DKIM" if dkim else "no DKIM"


def throughput_round(args, number, variants):
    """For each variant (None: no DKIM; "rsa", "ed25519"), one reference run and one full-path run, back
    to back: the machine's speed drifts over minutes (other tenants), so each ratio compares two runs
    made under the same conditions. Even rounds run the full path first, so a drift in one direction
    favours neither side. Returns {variant: ratio}."""
    ratios = {}
    for dkim in variants:
        label = f"round {number}: " if args.rounds > 1 else ""
        if len(variants) > 1:
            label += f"{variant_label(dkim)}: "
        campaign = make_campaign(
            args.messages,
            max_per_minute=10**8,
            name=f"unlimited{number}{dkim or ''}",
            newsletter=not args.untracked,
            dkim=dkim,
            port=args.sink_port,
            tracking_domain=args.tracking_domain,
        )
        reference = {
            "spec": None if args.untracked else reference_message_for(campaign),
            "dkim_key": dkim_key_of(campaign.smtp_account),
        }
        vacuum_analyze()
        runs = [reference_run, full_path_run]
        if number % 2 == 0:
            runs.reverse()
        rates = {}
        for run in runs:
            rates[run] = run(args, label, campaign, reference)
        if number == 1:
            print_message_sizes(campaign, reference)
        ratio = ratios[dkim] = rates[full_path_run] / rates[reference_run]
        print(f"{label}ratio full/reference: {ratio:.2f} (goal >= {GOALS[dkim]})")
    return ratios


def reference_run(args, label, campaign, reference):
    before, children = cpu_by_program(args.database), os.times()
    ref = reference_rate(args.messages, port=args.sink_port, **reference)
    after = cpu_by_program(args.database)
    after["reference processes"] = (
        os.times().children_user + os.times().children_system - children.children_user - children.children_system
    )
    print(f"{label}reference (smtplib, 2 processes): {args.messages} messages at {ref:,.0f}/s")
    if args.cpu:
        print_cpu("reference", before, after, args.messages)
    return ref


def full_path_run(args, label, campaign, reference):
    before = cpu_by_program(args.database)
    elapsed = run_campaign(campaign, tick_seconds=1, timeout=1800)
    after = cpu_by_program(args.database)
    full = args.messages / elapsed
    print(
        f"{label}full path (dispatch, Celery/Redis, 2 workers, PostgreSQL): {args.messages} messages at {full:,.0f}/s"
    )
    if args.cpu:
        print_cpu("full path", before, after, args.messages)
    return full


def print_message_sizes(campaign, reference):
    """The bytes of one message of each side (the full path's rebuilt for a sent Email, signed as
    the session would sign it), so a reader sees the two are comparable."""
    from campaigns.models import Email
    from delivery import message
    from sending.dkim import Signer

    email = Email.objects.filter(campaign=campaign).order_by("pk").first()
    _, full = message.build(email=email, campaign=campaign, account=campaign.smtp_account)
    number = int(email.to_email.removeprefix("contact").partition("@")[0])
    spec, dkim_key = reference["spec"], reference["dkim_key"]
    built = _comparable_message(spec, number) if spec else _plain_reference_message(number)
    ref = built.message().as_bytes(linesep="\r\n")
    if dkim_key:
        signer = Signer(**vars(dkim_key))
        full, ref = signer.sign(full), signer.sign(ref)
    links = len(_HREF.findall(spec.content_html)) if spec else 0
    print(f"  one message: full path {len(full):,} bytes, reference {len(ref):,} bytes ({links} links tracked)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rate-limit", type=int, default=600)
    parser.add_argument("--limit-seconds", type=int, default=180)
    parser.add_argument("--skip-limit", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--rounds", type=int, default=1, help="reference and full path back to back, N times")
    parser.add_argument("--cpu", action="store_true", help="print CPU time per message by program")
    parser.add_argument(
        "--untracked", action="store_true", help="the earlier rows' message: one line of HTML, nothing tracked"
    )
    parser.add_argument(
        "--dkim", choices=sorted(DKIM_ALGORITHMS), help="also measure with the account signing (and the reference)"
    )
    parser.add_argument(
        "--tracking-domain",
        action="store_true",
        help="the account has a verified tracking domain (the reference's URLs are on it too)",
    )
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        sys.exit("DATABASE_URL must be set (any database of the server: the bench creates its own)")

    server_url = os.environ["DATABASE_URL"]
    args.database = f"bench_throughput_{os.getpid()}"
    # A SIGTERM ends the run through the cleanup below, so its database, Redis and sink go with it.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(f"stopped by signal {signum}"))
    recreate_database(args.database, server_url)
    var_dir = tempfile.mkdtemp(prefix="bench-throughput-")
    redis_server, sink, workers = PrivateRedis(Path(var_dir) / "redis"), None, None
    try:
        os.environ["REDIS_URL"] = redis_server.start()
        sink, args.sink_port = start_sink_on_free_port()
        os.environ["VAR_DIR"] = var_dir
        os.environ["SMTP_ALLOW_PRIVATE_HOSTS"] = "1"
        # As in production: with DEBUG on, Django keeps every SQL statement of a worker in memory.
        os.environ["DEBUG"] = "0"
        os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))  # with DEBUG off the built-in key is refused
        setup_django(args.database)
        from django.conf import settings

        env = {**os.environ, "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS)}
        workers = start_workers(env, Path(var_dir) / "worker.log")
        wait_until_ready(workers, env)
        print(
            f"{'untracked one-line message' if args.untracked else 'newsletter, tracked'}"
            f"{', on a tracking domain' if args.tracking_domain else ''}; database "
            f"{args.database}, smtp-sink on port {args.sink_port}, redis-server {os.environ['REDIS_URL']}"
        )
        if not args.skip_throughput:
            # A warm-up, not counted: the first reference run was the slowest of all.
            reference_rate(2000, port=args.sink_port)
            run_rounds(args)
        if not args.skip_limit:
            run_limited(args)
    finally:
        if workers is not None:
            os.killpg(workers.pid, signal.SIGTERM)
            workers.wait(timeout=30)
        if sink is not None:
            sink.terminate()
            sink.wait()
        redis_server.stop()
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        drop_database(args.database, server_url)
        shutil.rmtree(var_dir, ignore_errors=True)


def run_rounds(args):
    variants = [None] + ([args.dkim] if args.dkim else [])
    rounds = [throughput_round(args, number, variants) for number in range(1, args.rounds + 1)]
    if len(rounds) > 1:
        for dkim in variants:
            ratios = [ratios_of_round[dkim] for ratios_of_round in rounds]
            print(
                f"ratio full/reference, {variant_label(dkim)}, median of {len(ratios)} rounds: "
                f"{statistics.median(ratios):.2f} (rounds: {', '.join(f'{r:.2f}' for r in ratios)}; "
                f"goal >= {GOALS[dkim]})"
            )


def run_limited(args):
    from campaigns.models import Email
    from campaigns.services import lifecycle
    from delivery import dispatcher, tasks

    limit = args.rate_limit
    limited = make_campaign(
        limit * args.limit_seconds // 60 * 3,
        max_per_minute=limit,
        name="limited",
        newsletter=not args.untracked,
        port=args.sink_port,
    )
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


if __name__ == "__main__":
    main()
