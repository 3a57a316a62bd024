"""Contact import throughput: `manage.py import_contacts` against PostgreSQL COPY, in the same run.

Needs PostgreSQL (DATABASE_URL; the benchmark creates and drops its own database).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/import_contacts.py

Generates a CSV of --rows rows (default 100,000: 5% invalid addresses, 5% repeats of
earlier addresses in another case, five extra columns), then:
1. reference: PostgreSQL COPY of the same file into a bare table (no checks, no indexes);
2. `import_contacts ... --dry-run` (the same reading, validation, deduplication and lookups, no
   writes), then `import_contacts --owner bench --list Bench FILE` (detection, validation,
   deduplication, suppression, set-based writes, list membership);
3. the admin's path for another marketer: upload and preview (dry run) through the admin
   form, confirm, the Celery task (run eagerly here), with the process's peak memory.
Prints the times and the ratio import/COPY; the goal is 100,000 rows in under 10 s.
"""

import argparse
import io
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
MAINTENANCE_URL = ""
sys.path.insert(0, str(ROOT))


def database_url_for(name):
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + name))


def admin_database(sql):
    import psycopg

    # The maintenance database: the one DATABASE_URL names may not exist (only test_<name> does).
    with psycopg.connect(MAINTENANCE_URL, autocommit=True) as conn:
        conn.execute(sql)


def generate(path, rows, seed=7):
    rng = random.Random(seed)
    cities = ["Pune", "Chennai", "Köln", "Bengaluru", "Mumbai", "Delhi"]
    written = []
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("Email Address,First Name,Last Name,Company,City,Plan\r\n")
        for i in range(rows):
            roll = rng.random()
            if roll < 0.05:
                address = rng.choice([f"broken-{i}", f"x{i}@@example.com", "", f"no domain {i}@"])
            elif roll < 0.10 and written:
                address = rng.choice(written).upper()
            else:
                address = f"person.{i}@example{i % 50}.com"
                written.append(address)
            fh.write(f"{address},First{i},Last{i},Company {i % 997},{rng.choice(cities)},plan{i % 4}\r\n")


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database", default="bench_import_contacts")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("DATABASE_URL must point at PostgreSQL")

    global MAINTENANCE_URL
    MAINTENANCE_URL = database_url_for("postgres")
    workdir = Path(tempfile.mkdtemp(prefix="bench-import-"))
    csv_path = workdir / "contacts.csv"
    t = time.perf_counter()
    generate(csv_path, args.rows)
    print(f"generated {args.rows:,} rows ({csv_path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t:.2f}s")

    admin_database(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    admin_database(f'CREATE DATABASE "{args.database}"')
    os.environ["DATABASE_URL"] = database_url_for(args.database)
    os.environ.setdefault("VAR_DIR", str(workdir / "var"))
    os.environ["MEDIA_ROOT"] = str(workdir / "media")
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "1"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    try:
        import django

        django.setup()
        run(args, csv_path)
    finally:
        from django.db import connections

        connections.close_all()
        admin_database(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')


def run(args, csv_path):
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from contacts.models import Contact, ImportJob
    from tests.factories import MarketerFactory

    call_command("migrate", verbosity=0)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.DEBUG = False
    MarketerFactory(username="bench")
    admin_user = MarketerFactory(username="bench_admin")

    # 1. reference: COPY into a bare table
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE bench_copy (email text, first_name text, last_name text, company text, city text, plan text)"
        )
    raw = connection.connection
    t = time.perf_counter()
    with raw.cursor() as cursor, open(csv_path, "rb") as fh:
        with cursor.copy("COPY bench_copy FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
            while chunk := fh.read(1 << 20):
                copy.write(chunk)
    raw.commit()
    copy_seconds = time.perf_counter() - t
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM bench_copy")
        copied = cursor.fetchone()[0]
    print(f"reference  PostgreSQL COPY into a bare table: {copied:,} rows in {copy_seconds:.2f}s")

    # 2. the command: first a dry run (reading, validation, merging and the per-chunk lookup query,
    # nothing written), which separates the per-row Python work from the writes; then the import.
    rss_before = peak_rss_mb()
    t = time.perf_counter()
    call_command(
        "import_contacts",
        str(csv_path),
        "--owner",
        "bench",
        "--list",
        "Bench",
        "--no-progress",
        "--dry-run",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    dry_run_seconds = time.perf_counter() - t
    print(f"import_contacts --dry-run (no writes): {dry_run_seconds:.2f}s")
    out = io.StringIO()
    t = time.perf_counter()
    call_command(
        "import_contacts",
        str(csv_path),
        "--owner",
        "bench",
        "--list",
        "Bench",
        "--no-progress",
        stdout=out,
        stderr=io.StringIO(),
    )
    command_seconds = time.perf_counter() - t
    print(f"import_contacts: {command_seconds:.2f}s (peak RSS {peak_rss_mb():.0f} MB, was {rss_before:.0f} MB)")
    print("  " + out.getvalue().strip().replace("\n", "\n  ").split("\n  Rejected rows")[0])
    contacts = Contact.objects.filter(owner__username="bench").count()
    print(f"  contacts in the database: {contacts:,}")

    # 3. the admin's path (another marketer: everything is created again)
    client = Client()
    client.force_login(admin_user)
    t = time.perf_counter()
    with open(csv_path, "rb") as fh:
        response = client.post(reverse("admin:contacts_importjob_add"), {"file": fh, "new_list_name": "Admin"})
    assert response.status_code == 302, response.content[:2000]
    preview_seconds = time.perf_counter() - t
    job = ImportJob.objects.get(owner=admin_user)
    t = time.perf_counter()
    response = client.post(reverse("admin:contacts_importjob_preview", args=[job.pk]), {"confirm": "1"})
    assert response.status_code == 302
    confirm_seconds = time.perf_counter() - t
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE, (job.status, job.notes)
    print(
        f"admin: upload + preview {preview_seconds:.2f}s, confirm + import (Celery task, eager) "
        f"{confirm_seconds:.2f}s, total {preview_seconds + confirm_seconds:.2f}s; "
        f"peak RSS of the process {peak_rss_mb():.0f} MB"
    )
    print(
        f"  created {job.created_count:,}, merged {job.merged_count:,}, rejected {job.rejected_count:,}, "
        f"kept out {job.suppressed_count:,}"
    )

    print()
    print(
        f"rows {args.rows:,}: COPY {copy_seconds:.2f}s, import_contacts {command_seconds:.2f}s "
        f"(dry run {dry_run_seconds:.2f}s, so writes ~{command_seconds - dry_run_seconds:.2f}s), "
        f"ratio {command_seconds / copy_seconds:.1f}x COPY; "
        f"{args.rows / command_seconds:,.0f} rows/s; goal < 10 s: {'met' if command_seconds < 10 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
