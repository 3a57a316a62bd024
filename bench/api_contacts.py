"""The REST API's contact writes and reads, over HTTP to gunicorn, against PostgreSQL COPY in the same run.

Needs PostgreSQL (DATABASE_URL; the benchmark creates and drops its own database).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/api_contacts.py

1. reference: PostgreSQL COPY of the same --rows contacts into a bare table;
2. POST /api/v1/contacts/bulk in requests of --batch contacts (five attributes each, on one list),
   one client after another, to gunicorn with --workers workers: every contact new;
3. the same again: every contact exists, half of them changed;
4. GET /api/v1/contacts pages (limit 100) walked from the start, and GET /api/v1/contacts/{id} of
   random contacts: p50 and p95 of each.
Prints the times, contacts/s and the ratio of the first pass to COPY; the goal (issue 27) is
100,000 contacts upserted in under 30 s, reads at p95 under 50 ms.
"""

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def database_url_for(name):
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + name))


def admin_database(sql):
    import psycopg

    with psycopg.connect(database_url_for("postgres"), autocommit=True) as conn:
        conn.execute(sql)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def contacts(rows, *, variant=0):
    cities = ["Pune", "Chennai", "Köln", "Bengaluru", "Mumbai", "Delhi"]
    return [
        {
            "email": f"person.{i}@example{i % 50}.com",
            "name": f"First{i} Last{i}",
            "attributes": {
                "Company": f"Company {i % 997}",
                "City": cities[(i + variant * (i % 2)) % len(cities)],
                "Plan": f"plan{i % 4}",
                "Source": "shop",
                "Customer": str(100000 + i),
            },
        }
        for i in range(rows)
    ]


class Api:
    def __init__(self, port, token):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method, path, body=None):
        self.connection.request(method, path, body=None if body is None else json.dumps(body), headers=self.headers)
        response = self.connection.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:500]!r}")
        return json.loads(data) if data else None


def wait_for(port, deadline=60):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


def upsert_all(api, rows, batch, list_id):
    t = time.perf_counter()
    totals = {}
    for start in range(0, len(rows), batch):
        result = api.call(
            "POST", "/api/v1/contacts/bulk", {"contacts": rows[start : start + batch], "list_ids": [list_id]}
        )
        for key in ("created", "updated", "unchanged", "suppressed"):
            totals[key] = totals.get(key, 0) + result[key]
        totals["rejected"] = totals.get("rejected", 0) + len(result["rejected"])
    return time.perf_counter() - t, totals


def timed(call, repeat):
    seconds = []
    for _ in range(repeat):
        t = time.perf_counter()
        call()
        seconds.append((time.perf_counter() - t) * 1000)
    return statistics.median(seconds), statistics.quantiles(seconds, n=20)[-1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--database", default="bench_api_contacts")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("DATABASE_URL must point at PostgreSQL")
    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    admin_database(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    admin_database(f'CREATE DATABASE "{args.database}"')
    os.environ["DATABASE_URL"] = database_url_for(args.database)
    os.environ["VAR_DIR"] = str(workdir / "var")
    os.environ["API_RATE_LIMIT"] = "1000000"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    server = None
    try:
        import django

        django.setup()
        token, list_id = prepare()
        reference = copy_reference(contacts(args.rows))
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(args.workers)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=open(workdir / "gunicorn.log", "w"),
        )
        wait_for(port)
        run(args, Api(port, token), list_id, reference)
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        from django.db import connections

        connections.close_all()
        admin_database(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')


def prepare():
    from django.core.management import call_command

    from api import services
    from contacts.models import ContactList
    from tests.factories import MarketerFactory

    call_command("migrate", verbosity=0)
    owner = MarketerFactory(username="bench")
    _, token = services.create_token(owner=owner, name="bench")
    return token, ContactList.objects.create(owner=owner, name="Bench").pk


def copy_reference(rows):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_copy (email text, name text, attributes jsonb)")
    raw = connection.connection
    t = time.perf_counter()
    with raw.cursor() as cursor:
        with cursor.copy("COPY bench_copy (email, name, attributes) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((row["email"], row["name"], json.dumps(row["attributes"])))
    raw.commit()
    seconds = time.perf_counter() - t
    print(f"reference  PostgreSQL COPY of {len(rows):,} contacts into a bare table: {seconds:.2f}s")
    return seconds


def run(args, api, list_id, reference):
    rows = contacts(args.rows)
    seconds, totals = upsert_all(api, rows, args.batch, list_id)
    print(
        f"bulk upsert, all new: {args.rows:,} contacts in {seconds:.2f}s ({args.rows / seconds:,.0f}/s), "
        f"{totals}; ratio to COPY {seconds / reference:.1f}x; goal < 30 s: {'met' if seconds < 30 else 'NOT met'}"
    )
    seconds, totals = upsert_all(api, contacts(args.rows, variant=1), args.batch, list_id)
    print(f"bulk upsert, all existing (half changed): {seconds:.2f}s ({args.rows / seconds:,.0f}/s), {totals}")

    pages = []

    def next_page():
        cursor = pages[-1] if pages and pages[-1] else None
        page = api.call("GET", "/api/v1/contacts?limit=100" + (f"&cursor={cursor}" if cursor else ""))
        pages.append(page["next_cursor"])

    p50, p95 = timed(next_page, args.reads)
    print(f"GET /contacts?limit=100, {args.reads} pages walked: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    ids = [item["id"] for item in api.call("GET", "/api/v1/contacts?limit=500")["items"]]
    rng = random.Random(7)
    p50, p95 = timed(lambda: api.call("GET", f"/api/v1/contacts/{rng.choice(ids)}"), args.reads)
    print(f"GET /contacts/{{id}}, {args.reads} random: p50 {p50:.1f} ms, p95 {p95:.1f} ms; goal p95 < 50 ms")


if __name__ == "__main__":
    main()
