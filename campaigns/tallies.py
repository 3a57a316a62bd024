"""The dashboards' counters (CampaignTally, CampaignHourTally), kept by database triggers.

Every write to campaigns_email, whatever issues it (the ledger's bulk UPDATEs, the one-statement
materialise, tracking, cascading deletes, an operator's psql), goes through the triggers in the
same transaction, so the tallies are exact at every instant and the sending path makes no extra
round trip.

- PostgreSQL: statement-level AFTER INSERT / UPDATE / DELETE triggers with transition tables. Each
  statement adds +1 for every new row and -1 for every old row, grouped by key, and upserts only
  the keys whose figures changed, in key order (concurrent statements lock tally rows in the same
  order, so they cannot deadlock on them).
- SQLite: row-level triggers doing the same for OLD and NEW.

The same contribution queries, with the Email table as source, rebuild the tallies from scratch
(`recount`, `manage.py recount_tallies`, which also installs the triggers as written here). Migration
0006 installs the triggers and fills the tallies; each migration carries a frozen copy of the SQL it
runs (never this module), so a change here needs a new migration holding the new `install_statements`
(tests/campaigns/test_migrations.py compares what a fresh migrate installs with this module).

SQLite caveat: Django rebuilds a SQLite table to alter it (new table, copy, drop), which drops its
triggers; after such a migration of campaigns_email, `recount_tallies` puts them back.
"""

from django.db import connection, transaction

EMAIL = "campaigns_email"
CAMPAIGN = "campaigns_campaign"
TALLY = "campaigns_campaigntally"
HOURS = "campaigns_campaignhourtally"

TALLY_KEY = ("campaign_id", "status", "failure_class")
TALLY_FIGURES = ("n", "opened", "machine_only", "clicked", "unsubscribed")
HOUR_KEY = ("campaign_id", "hour")
HOUR_METRICS = ("sent", "sent_opened", "opened", "failed")
QUARTERS = range(4)
HOUR_FIGURES = tuple(f"{metric}{q}" for metric in HOUR_METRICS for q in QUARTERS)

# What a row counts in CampaignTally (each 0 or 1), over the row `r`.
TALLY_TERMS = {
    "n": "1",
    "opened": "{r}.first_opened_at IS NOT NULL",
    "machine_only": "{r}.machine_open AND {r}.first_opened_at IS NULL",
    "clicked": "{r}.click_count > 0",
    "unsubscribed": "{r}.unsubscribed_at IS NOT NULL",
}

# Each hour metric: the moment that places the row, when the row counts, and what it adds.
HOUR_TERMS = (
    # (moment, condition, {metric: value})
    ("sent_at", "{r}.status = 'sent' AND {r}.sent_at IS NOT NULL",
     {"sent": "1", "sent_opened": "{r}.first_opened_at IS NOT NULL"}),
    ("first_opened_at", "{r}.first_opened_at IS NOT NULL", {"opened": "1"}),
    ("updated_at", "{r}.status = 'failed'", {"failed": "1"}),
)

# The counted columns: an UPDATE touching none of them changes no tally (SQLite's WHEN clause).
COUNTED_COLUMNS = ("campaign_id", "status", "failure_class", "sent_at", "first_opened_at", "machine_open",
                   "unsubscribed_at")


class Dialect:
    """SQL that differs between PostgreSQL and SQLite: where a moment falls, in UTC."""

    def __init__(self, vendor):
        self.vendor = vendor

    def epoch(self, ts):
        if self.vendor == "postgresql":
            return f"date_part('epoch', {ts})"
        # Django stores UTC text ('2026-11-28 06:30:00.123456'); %s truncates to whole seconds.
        return f"CAST(strftime('%s', {ts}) AS INTEGER)"

    def hour(self, ts):
        return f"CAST(floor({self.epoch(ts)} / 3600) AS INTEGER)" if self.vendor == "postgresql" \
            else f"({self.epoch(ts)} / 3600)"

    def quarter(self, ts):
        if self.vendor == "postgresql":
            return f"(CAST(floor({self.epoch(ts)} / 900) AS INTEGER) % 4)"
        return f"(({self.epoch(ts)} / 900) % 4)"


def _signed(sign, expr):
    """sign (1 or -1) times a 0/1 condition, as an integer in both dialects."""
    return sign if expr == "1" else f"{sign} * CAST(({expr}) AS INTEGER)"


def _tally_rows(*, r, source, sign):
    terms = ", ".join(f"{_signed(sign, TALLY_TERMS[f].format(r=r))} AS {f}" for f in TALLY_FIGURES)
    return f"SELECT {r}.campaign_id AS campaign_id, {r}.status AS status, {r}.failure_class AS failure_class, " \
           f"{terms} {source}"


def _hour_rows(dialect, *, r, source, sign, where=""):
    selects = []
    for moment, condition, values in HOUR_TERMS:
        ts = f"{r}.{moment}"
        metrics = ", ".join(
            f"{_signed(sign, values[m].format(r=r))} AS {m}" if m in values else f"0 AS {m}" for m in HOUR_METRICS
        )
        selects.append(
            f"SELECT {r}.campaign_id AS campaign_id, {dialect.hour(ts)} AS hour, {dialect.quarter(ts)} AS q, "
            f"{metrics} {source} WHERE {condition.format(r=r)}{where}"
        )
    return " UNION ALL ".join(selects)


def _upsert(table, key, figures, inner, *, pivot=False):
    """INSERT the grouped sums of `inner`'s rows, adding to the rows already there; keys whose
    figures sum to zero (nothing counted changed) are left alone."""
    if pivot:
        sums = [f"SUM(CASE WHEN q = {q} THEN {m} ELSE 0 END)" for m in HOUR_METRICS for q in QUARTERS]
    else:
        sums = [f"SUM({f})" for f in figures]
    keys = ", ".join(key)
    add = ", ".join(f"{f} = {table}.{f} + excluded.{f}" for f in figures)
    return (
        f"INSERT INTO {table} ({keys}, {', '.join(figures)}) SELECT {keys}, {', '.join(sums)} FROM ({inner}) AS d "
        f"GROUP BY {keys} HAVING {' OR '.join(f'{s} <> 0' for s in sums)} ORDER BY {keys} "
        f"ON CONFLICT ({keys}) DO UPDATE SET {add}"
    )


def _changes(dialect, sides, *, where=""):
    """The two upserts for rows seen through `sides`: [(r, source, sign)]."""
    tally = " UNION ALL ".join(_tally_rows(r=r, source=f"{source}{where and ' WHERE ' + where}",
                                           sign=sign) for r, source, sign in sides)
    hours = " UNION ALL ".join(_hour_rows(dialect, r=r, source=source, sign=sign,
                                          where=where and f" AND {where}") for r, source, sign in sides)
    return [
        _upsert(TALLY, TALLY_KEY, TALLY_FIGURES, tally),
        _upsert(HOURS, HOUR_KEY, HOUR_FIGURES, hours, pivot=True),
    ]


# Rows deleted after their campaign (or with the tallies already gone, as a flush may do) are not
# counted: the campaign's tallies go with it.
def _campaign_exists(r):
    return f"EXISTS (SELECT 1 FROM {CAMPAIGN} c WHERE c.id = {r}.campaign_id)"


TRIGGERS = ("insert", "update", "delete")


def _forget_campaigns(condition):
    """A deleted campaign's tallies go with it (the trigger on the campaign table)."""
    return "".join(f"    DELETE FROM {table} WHERE {condition};\n" for table in (TALLY, HOURS))


def _tally_add(key, values):
    """PL/pgSQL adding `values` (expressions) to the CampaignTally row of `key`: an UPDATE, an
    upsert the first time."""
    where = " AND ".join(f"{k} = {v}" for k, v in zip(TALLY_KEY, key))
    return (
        f"UPDATE {TALLY} SET {', '.join(f'{f} = {TALLY}.{f} + {v}' for f, v in zip(TALLY_FIGURES, values))} "
        f"WHERE {where}; IF NOT FOUND THEN INSERT INTO {TALLY} ({', '.join(TALLY_KEY + TALLY_FIGURES)}) "
        f"VALUES ({', '.join(list(key) + list(values))}) ON CONFLICT ({', '.join(TALLY_KEY)}) DO UPDATE SET "
        f"{', '.join(f'{f} = {TALLY}.{f} + excluded.{f}' for f in TALLY_FIGURES)}; END IF;"
    )


def _hour_add(campaign, hour, quarter, values):
    """PL/pgSQL adding `values` ({metric: expression}, the others 0) to one quarter of a
    CampaignHourTally row."""
    by_figure = {f"{m}{q}": f"CASE WHEN {quarter} = {q} THEN {values[m]} ELSE 0 END" if m in values else "0"
                 for m in HOUR_METRICS for q in QUARTERS}
    changed = {f: v for f, v in by_figure.items() if v != "0"}
    return (
        f"UPDATE {HOURS} SET {', '.join(f'{f} = {HOURS}.{f} + {v}' for f, v in changed.items())} "
        f"WHERE campaign_id = {campaign} AND hour = {hour}; IF NOT FOUND THEN INSERT INTO {HOURS} "
        f"({', '.join(HOUR_KEY + HOUR_FIGURES)}) VALUES ({campaign}, {hour}, {', '.join(by_figure.values())}) "
        f"ON CONFLICT ({', '.join(HOUR_KEY)}) DO UPDATE SET "
        f"{', '.join(f'{f} = {HOURS}.{f} + excluded.{f}' for f in changed)}; END IF;"
    )


def _one_row_result(dialect):
    """PL/pgSQL for the statement the sending engine makes most: one row changing status, and
    nothing else counted (no open, click or unsubscribe; not from sent or failed), so that at most
    one hour figure is added (sent or failed). A handful of plain UPDATEs, where the set-based
    statements cost about twice as much. Anything else takes the set-based path.

    Returns (declarations, code); the code returns from the trigger when it applies.
    """
    sent, failed = (HOUR_TERMS[0][1].format(r="n"), HOUR_TERMS[2][1].format(r="n"))
    moment = {"sent": "n.sent_at", "failed": "n.updated_at"}
    same = " AND ".join([
        "o.campaign_id = n.campaign_id", "o.first_opened_at IS NULL", "n.first_opened_at IS NULL",
        "o.machine_open = n.machine_open", "(o.click_count > 0) = (n.click_count > 0)",
        "(o.unsubscribed_at IS NULL) = (n.unsubscribed_at IS NULL)", "o.status NOT IN ('sent', 'failed')",
    ])
    # (With first_opened_at null, machine_only is machine_open.)
    select = (
        f"SELECT (SELECT count(*) FROM new_rows), n.campaign_id, o.status, o.failure_class, n.status, n.failure_class, "
        f"{_signed('1', 'n.machine_open')}, {_signed('1', TALLY_TERMS['clicked'].format(r='n'))}, "
        f"{_signed('1', TALLY_TERMS['unsubscribed'].format(r='n'))}, {same}, "
        f"CASE WHEN {sent} THEN {dialect.hour(moment['sent'])} WHEN {failed} THEN {dialect.hour(moment['failed'])} END, "
        f"CASE WHEN {sent} THEN {dialect.quarter(moment['sent'])} ELSE {dialect.quarter(moment['failed'])} END, "
        f"{_signed('1', sent)}, {_signed('1', failed)} "
        f"INTO v_rows, v_campaign, v_old_status, v_old_class, v_new_status, v_new_class, v_machine, v_clicked, "
        f"v_unsubscribed, v_lean, v_hour, v_quarter, v_sent, v_failed FROM old_rows o CROSS JOIN new_rows n LIMIT 1"
    )
    old_key, new_key = ["v_campaign", "v_old_status", "v_old_class"], ["v_campaign", "v_new_status", "v_new_class"]
    taken = ["-1", "0", "-v_machine", "-v_clicked", "-v_unsubscribed"]
    added = ["1", "0", "v_machine", "v_clicked", "v_unsubscribed"]
    code = "\n    ".join([
        f"{select};",
        "IF v_rows = 0 THEN RETURN NULL; END IF;",
        "IF v_rows = 1 AND v_lean THEN",
        "    IF (v_old_status, v_old_class) < (v_new_status, v_new_class) THEN",
        f"        {_tally_add(old_key, taken)} {_tally_add(new_key, added)}",
        "    ELSIF (v_old_status, v_old_class) > (v_new_status, v_new_class) THEN",
        f"        {_tally_add(new_key, added)} {_tally_add(old_key, taken)}",
        "    END IF;",
        f"    IF v_hour IS NOT NULL THEN {_hour_add('v_campaign', 'v_hour', 'v_quarter', {'sent': 'v_sent', 'failed': 'v_failed'})} "
        "END IF;",
        "    RETURN NULL;",
        "END IF;",
    ])
    # (Prefixed: PL/pgSQL variables would shadow the columns of the same names in the set-based statements.)
    declare = ("DECLARE v_rows bigint; v_campaign bigint; v_old_status text; v_old_class text; v_new_status text; "
               "v_new_class text; v_machine integer; v_clicked integer; v_unsubscribed integer; v_lean boolean; "
               "v_hour integer; v_quarter integer; v_sent integer; v_failed integer;\n")
    return declare, code


def _postgresql_install():
    dialect = Dialect("postgresql")
    sides = {
        "insert": [("r", "FROM new_rows r", "1")],
        "update": [("r", "FROM old_rows r", "-1"), ("r", "FROM new_rows r", "1")],
        "delete": [("r", "FROM old_rows r", "-1")],
    }
    referencing = {
        "insert": "NEW TABLE AS new_rows", "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "delete": "OLD TABLE AS old_rows",
    }
    statements = []
    for op in TRIGGERS:
        body = ";\n    ".join(_changes(dialect, sides[op], where=_campaign_exists("r") if op == "delete" else ""))
        declare, one_row = _one_row_result(dialect) if op == "update" else ("", "")
        statements += [
            f"CREATE OR REPLACE FUNCTION {EMAIL}_tally_{op}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"{declare}BEGIN\n    {one_row}\n    {body};\n    RETURN NULL;\nEND $$",
            f"DROP TRIGGER IF EXISTS {EMAIL}_tally_{op} ON {EMAIL}",
            f"CREATE TRIGGER {EMAIL}_tally_{op} AFTER {op.upper()} ON {EMAIL} REFERENCING {referencing[op]} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {EMAIL}_tally_{op}()",
        ]
    statements += [
        f"CREATE OR REPLACE FUNCTION {CAMPAIGN}_tally_delete() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN\n{_forget_campaigns('campaign_id IN (SELECT id FROM old_rows)')}    RETURN NULL;\nEND $$",
        f"DROP TRIGGER IF EXISTS {CAMPAIGN}_tally_delete ON {CAMPAIGN}",
        f"CREATE TRIGGER {CAMPAIGN}_tally_delete AFTER DELETE ON {CAMPAIGN} REFERENCING OLD TABLE AS old_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {CAMPAIGN}_tally_delete()",
    ]
    return statements


def _sqlite_install():
    dialect = Dialect("sqlite")
    sides = {"insert": [("NEW", "", "1")], "update": [("OLD", "", "-1"), ("NEW", "", "1")],
             "delete": [("OLD", "", "-1")]}
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in COUNTED_COLUMNS) + (
        " OR (OLD.click_count > 0) IS NOT (NEW.click_count > 0)"
        " OR (NEW.status = 'failed' AND OLD.updated_at IS NOT NEW.updated_at)"
    )
    statements = []
    for op in TRIGGERS:
        when = f" WHEN {changed}" if op == "update" else ""
        # SQLite's rows have no FROM; a WHERE needs one, so the row's SELECTs get "WHERE" conditions only.
        body = ";\n    ".join(_changes(dialect, sides[op], where=_campaign_exists("OLD") if op == "delete" else ""))
        statements += [
            f"DROP TRIGGER IF EXISTS {EMAIL}_tally_{op}",
            f"CREATE TRIGGER {EMAIL}_tally_{op} AFTER {op.upper()} ON {EMAIL} FOR EACH ROW{when}\n"
            f"BEGIN\n    {body};\nEND",
        ]
    statements += [
        f"DROP TRIGGER IF EXISTS {CAMPAIGN}_tally_delete",
        f"CREATE TRIGGER {CAMPAIGN}_tally_delete AFTER DELETE ON {CAMPAIGN} FOR EACH ROW\nBEGIN\n"
        f"{_forget_campaigns('campaign_id = OLD.id')}END",
    ]
    return statements


def install_statements(vendor):
    return {"postgresql": _postgresql_install, "sqlite": _sqlite_install}[vendor]()


def uninstall_statements(vendor):
    triggers = [(EMAIL, f"{EMAIL}_tally_{op}") for op in TRIGGERS] + [(CAMPAIGN, f"{CAMPAIGN}_tally_delete")]
    on = (lambda table: f" ON {table}") if vendor == "postgresql" else (lambda table: "")
    statements = [f"DROP TRIGGER IF EXISTS {name}{on(table)}" for table, name in triggers]
    if vendor == "postgresql":  # (each PostgreSQL trigger runs a function of its name)
        statements += [f"DROP FUNCTION IF EXISTS {name}()" for _, name in triggers]
    return statements


def recount_statements(vendor):
    dialect = Dialect(vendor)
    source = f"FROM {EMAIL} e"
    statements = [f"DELETE FROM {TALLY}", f"DELETE FROM {HOURS}"] + [
        # A rebuilt table has no row to add to: the upsert's ON CONFLICT never fires.
        sql for sql in _changes(dialect, [("e", source, "1")])
    ]
    if vendor == "postgresql":
        # Writers wait (readers do not) until the tallies are rebuilt, so none is counted twice or missed.
        statements.insert(0, f"LOCK TABLE {EMAIL} IN SHARE MODE")
    return statements


def install(*, using_connection=None):
    conn = using_connection or connection
    with conn.cursor() as cursor:
        for sql in install_statements(conn.vendor):
            cursor.execute(sql)


def uninstall(*, using_connection=None):
    conn = using_connection or connection
    with conn.cursor() as cursor:
        for sql in uninstall_statements(conn.vendor):
            cursor.execute(sql)


def recount(*, using_connection=None):
    """Rebuild both tallies from the Email rows, in one transaction; safe while sending goes on."""
    conn = using_connection or connection
    with transaction.atomic(using=conn.alias), conn.cursor() as cursor:
        for sql in recount_statements(conn.vendor):
            cursor.execute(sql)
