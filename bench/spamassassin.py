"""SpamAssassin's score of the messages the sender builds: a newsletter, a short announcement, plain text.

Creates and drops its own database (--db, default bench_spamassassin, on the server of DATABASE_URL)
with one marketer, an SMTP account, a list of three contacts and three campaigns to it:

1. a standard newsletter: a logo, a heading, three stories with their links (HTML, text derived);
2. a short announcement: three sentences and one link (HTML), open tracking off, as the compose page
   advises for an HTML part this short;
3. a text-only campaign: body_text alone;

and, for reference and not held to the goal, what the compose page's warning is about (SpamAssassin's
HTML_IMAGE_ONLY_* rules score any image in an HTML part of at most 3,200 characters, markup included):
the announcement with the open pixel, and the newsletter cut to its first story (the logo and the pixel).

Each is started and claimed as the dispatcher does (lifecycle.start, ledger.claim_as_batches with the
account's Message-ID domain), loaded as a batch loads it (campaign_loader), and built by
delivery.message.build for its first recipient, tracking on: the bytes an SMTP server would receive.
Each message is scored by `spamassassin -t -L` (local rules only: no DNS, no network tests; the rules
shipped with Debian's package, as sa-update needs the network) and the score and the rules that fired
are printed against the goal, at most 0.5 each. SITE_URL is https://mail.example.com here (tracking URLs
on a bare IP address, the development default, are a spam sign of their own).

    apt-get install spamassassin
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/spamassassin.py [--db bench_spamassassin] [--show NAME]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL = 0.5
SITE_URL = "https://mail.example.com"

NEWSLETTER_HTML = """<html><head><style>
h1 { font-family: Georgia, serif; color: #1d3557; }
h2 { font-family: Georgia, serif; color: #1d3557; margin-top: 24px; }
p { font-family: Arial, Helvetica, sans-serif; font-size: 15px; line-height: 22px; color: #333333; }
a { color: #1d6fa5; }
</style></head><body>
<p><img src="https://www.green-valley.example/img/logo.png" width="160" height="48" alt="Green Valley Gardens"></p>
<h1>Green Valley Gardens: the March letter</h1>
<p>Hello {{ name|default:"there" }},</p>
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
<a href="https://www.green-valley.example/courses">See the courses and dates</a>.</p>
<p>Thank you for reading, and see you in the garden.<br>Maya and the Green Valley team</p>
</body></html>"""

ANNOUNCEMENT_HTML = """<p>Hello {{ name|default:"there" }},</p>
<p>The garden opens an hour earlier from Monday: 8 am to 6 pm, every day but Sunday.</p>
<p><a href="https://www.green-valley.example/visit">Plan your visit</a></p>
<p>Maya, Green Valley Gardens</p>"""

PLAIN_TEXT = """Hello {{ name|default:"there" }},

The plant sale is on Saturday 14 March, from 9 am to 1 pm, at the main gate.
Seedlings, herbs and fruit bushes grown here in the nursery, from two euros.

Bring a box or a basket; we have no plastic bags.

Details: https://www.green-valley.example/plant-sale

Maya, Green Valley Gardens"""

ANNOUNCEMENT = {"subject": "We open an hour earlier from Monday", "body_html": ANNOUNCEMENT_HTML}
CAMPAIGNS = {
    "newsletter": {"subject": "The March letter: roses, seeds and courses", "body_html": NEWSLETTER_HTML},
    "announcement": {**ANNOUNCEMENT, "track_opens": False},
    "text only": {"subject": "Plant sale on Saturday 14 March", "body_text": PLAIN_TEXT},
}
# Scored and shown, not held to the goal: the compose page warns of these.
REFERENCE = {
    "announcement + pixel": ANNOUNCEMENT,
    "newsletter, 1 story": {
        "subject": "The March letter: the new rose beds",
        "body_html": NEWSLETTER_HTML.split("<h2>The seed library</h2>")[0] + "</body></html>",
    },
}


def database_url_for(name):
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + name))


def recreate_database(name, *, drop_only=False):
    import psycopg

    with psycopg.connect(database_url_for("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(db_name):
    os.environ["DATABASE_URL"] = database_url_for(db_name)
    os.environ["DATABASE_POOL"] = "0"
    os.environ["SITE_URL"] = SITE_URL
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.DEBUG = False
    call_command("migrate", verbosity=0)
    import logging

    logging.getLogger("campaigns").setLevel(logging.WARNING)


def built_messages():
    """{campaign name: (the raw bytes build() makes for its first recipient, whether the compose page warns)}."""
    from django.utils import timezone

    from accounts.services import create_marketer
    from campaigns import ledger
    from campaigns.models import Campaign, Email
    from campaigns.services import lifecycle
    from contacts.models import Contact, ContactList
    from delivery import campaign_loader, message, previews
    from sending import addresses
    from sending.models import SmtpAccount

    owner = create_marketer(
        username="maya", email="maya@green-valley.example", password="x-bench-password-1", organization=""
    )
    owner.organization = "Green Valley Gardens"
    owner.postal_address = "12 Orchard Lane\nBristol BS1 4AA\nUnited Kingdom"
    owner.save()
    account = SmtpAccount.objects.create(
        owner=owner,
        name="Newsletter",
        host="smtp.green-valley.example",
        port=587,
        from_email="news@green-valley.example",
        from_name="Green Valley Gardens",
        reply_to="maya@green-valley.example",
    )
    readers = ContactList.objects.create(owner=owner, name="Friends of the garden")
    for address, name in (("ana.silva@example.org", "Ana Silva"), ("tom@example.net", "Tom Baker")):
        readers.contacts.add(Contact.objects.create(owner=owner, email=address, name=name))
    raw = {}
    for name, fields in {**CAMPAIGNS, **REFERENCE}.items():
        campaign = Campaign.objects.create(owner=owner, name=name, smtp_account=account, status="scheduled", **fields)
        campaign.lists.set([readers])
        now = timezone.now()
        lifecycle.start(campaign_id=campaign.pk, now=now, prepare_seconds=10**9)
        ledger.claim_as_batches(
            campaign_ids=[campaign.pk],
            limit=10,
            batch_size=10,
            now=now,
            message_id_domain=addresses.sender_domain(account.from_email),
        )
        loaded = campaign_loader.campaigns_with_owner_and_account([campaign.pk])[campaign.pk]
        email = Email.objects.filter(campaign=campaign).order_by("pk").first()
        assert email is not None and loaded.smtp_account is not None
        warns = previews.short_html_with_image(campaign=loaded) is not None
        raw[name] = message.build(email=email, campaign=loaded, account=loaded.smtp_account)[1], warns
    return raw


_RULE_LINE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)$")


def score(raw):
    """(score, [(points, rule, description)]) from `spamassassin -t -L`'s report."""
    result = subprocess.run(
        ["spamassassin", "-t", "-L"], input=raw, capture_output=True, check=True, timeout=300
    ).stdout.decode("utf-8", "replace")
    status = re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+)", result, re.M)
    assert status, "no X-Spam-Status in spamassassin's output"
    report = result.split("Content analysis details:", 1)[-1]
    rules = [
        (float(m.group(1)), m.group(2), m.group(3).strip()) for m in map(_RULE_LINE.match, report.splitlines()) if m
    ]
    return float(status.group(1)), rules


def version():
    out = subprocess.run(["spamassassin", "--version"], capture_output=True, text=True, check=True).stdout
    return " ".join(out.split()[:3])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="bench_spamassassin")
    parser.add_argument("--show", help="also print the message of this campaign (newsletter, announcement, ...)")
    args = parser.parse_args()
    if not shutil.which("spamassassin"):
        sys.exit("spamassassin is not installed: apt-get install spamassassin")
    recreate_database(args.db)
    try:
        setup_django(args.db)
        messages = built_messages()
        from django.db import connections

        connections.close_all()
    finally:
        recreate_database(args.db, drop_only=True)
    print(f"{version()}, spamassassin -t -L (local rules only); goal: at most {GOAL} each")
    failed = []
    for name, (raw, warns) in messages.items():
        if args.show == name:
            print(raw.decode("utf-8", "replace"))
        total, rules = score(raw)
        held = name not in REFERENCE
        verdict = ("ok" if total <= GOAL else "OVER") if held else "reference"
        warning = ", the compose page warns: a short HTML with an image" if warns else ""
        print(f"\n{name:22} {total:5.1f}  {verdict}   ({len(raw):,} bytes{warning})")
        for points, rule, description in rules:
            print(f"    {points:5.1f} {rule:28} {description}")
        if held and total > GOAL:
            failed.append(name)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
