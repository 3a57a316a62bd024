"""The migrations that install the tally triggers carry their own SQL, so that a later change to
campaigns.tallies never rewrites what an applied migration did; migrated from before the tallies
with emails already there, the database ends with today's triggers and exact tallies."""

import ast
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.apps import apps as installed_apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from campaigns import tallies
from campaigns.models import Email
from tests.campaigns.test_tallies import expected_tallies, stored_tallies

BEFORE_TALLIES = ("campaigns", "0005_dashboard_indexes")


def migration_files():
    for app in installed_apps.get_app_configs():
        folder = Path(app.path) / "migrations"
        if folder.is_dir() and Path(app.path).is_relative_to(Path(__file__).parents[2]):
            yield from sorted(folder.glob("[0-9]*.py"))


def imported_modules(path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_no_migration_imports_the_live_tallies_module():
    files = list(migration_files())
    assert any(f.name == "0006_tallies.py" for f in files)
    importing = [f"{f.parent.parent.name}/{f.name}" for f in files if "campaigns.tallies" in imported_modules(f)]
    assert importing == []


def installed_trigger_sql():
    """What the database runs for each tally trigger: the bodies of their functions."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT proname, prosrc FROM pg_proc WHERE proname LIKE %s", ["%\\_tally\\_%"])
        return dict(cursor.fetchall())


def current_trigger_sql():
    """The same, as campaigns.tallies installs them today (and `recount_tallies` does)."""
    functions = (
        re.match(r"CREATE OR REPLACE FUNCTION (\w+)\(\).*?\$\$(.*)\$\$", sql, re.S)
        for sql in tallies.install_statements()
    )
    return {m.group(1): m.group(2) for m in functions if m}


# serialized_rollback: like every test here that commits, so the Marketers group and the lock row (data
# migrations) come back after the flush, for this test and the next.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_migrating_past_the_tallies_with_emails_there_counts_them_and_installs_todays_triggers():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate([BEFORE_TALLIES])
        old = MigrationExecutor(connection).loader.project_state([BEFORE_TALLIES]).apps
        owner = old.get_model("accounts", "User").objects.create(username="before-tallies")
        campaign = old.get_model("campaigns", "Campaign").objects.create(owner=owner, name="Before the tallies")
        now = timezone.now()
        old.get_model("campaigns", "Email").objects.bulk_create(
            [
                old.get_model("campaigns", "Email")(
                    campaign=campaign,
                    to_email=f"r{i}@example.org",
                    status=status,
                    sent_at=sent_at,
                    first_opened_at=now if i % 3 == 0 and sent_at else None,
                    failure_class=failure_class,
                )
                for i, (status, sent_at, failure_class) in enumerate(
                    [(Email.Status.SENT, now - timedelta(minutes=20 * i), "") for i in range(6)]
                    + [(Email.Status.FAILED, None, Email.FailureClass.BOUNCED), (Email.Status.PENDING, None, "")]
                )
            ]
        )
    finally:
        MigrationExecutor(connection).migrate(latest)

    assert installed_trigger_sql() == current_trigger_sql()
    assert len(current_trigger_sql()) == 4
    counts, hours = stored_tallies()
    assert (counts, hours) == expected_tallies()
    assert sum(n for n, *_ in counts.values()) == 8
    # Still kept after the migrations: a write goes through today's triggers.
    Email.objects.filter(status=Email.Status.PENDING).update(status=Email.Status.SENT, sent_at=now)
    assert stored_tallies() == expected_tallies()
