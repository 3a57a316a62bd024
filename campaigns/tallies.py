"""The dashboards' counters (CampaignTally, CampaignHourTally), kept by database triggers.

Every write to campaigns_email, whatever issues it (the ledger's bulk UPDATEs, the one-statement
materialise, tracking, cascading deletes, an operator's psql), goes through the triggers in the
same transaction, so the tallies are exact at every instant and the sending path makes no extra
round trip.

Statement-level AFTER INSERT / UPDATE / DELETE triggers with transition tables: each statement
adds +1 for every new row and -1 for every old row, grouped by key, and upserts only the keys whose
figures changed, in key order (concurrent statements lock tally rows in the same order, so they
cannot deadlock on them).

The same contribution queries, with the Email table as source, rebuild the tallies from scratch
(`recount`, `manage.py recount_tallies`, which also installs the triggers as written here). Migration
0006 installs the triggers and fills the tallies; each migration carries a frozen copy of the SQL it
runs (never this module), so a change here needs a new migration holding the new `install_statements`
(tests/campaigns/test_migrations.py compares what a fresh migrate installs with this module).
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
    (
        "sent_at",
        "{r}.status = 'sent' AND {r}.sent_at IS NOT NULL",
        {"sent": "1", "sent_opened": "{r}.first_opened_at IS NOT NULL"},
    ),
    ("first_opened_at", "{r}.first_opened_at IS NOT NULL", {"opened": "1"}),
    ("updated_at", "{r}.status = 'failed'", {"failed": "1"}),
)


# Where a moment falls, in UTC: its hour since the epoch, and its quarter of that hour.
def _hour(ts):
    return f"CAST(floor(date_part('epoch', {ts}) / 3600) AS INTEGER)"


def _quarter(ts):
    return f"(CAST(floor(date_part('epoch', {ts}) / 900) AS INTEGER) % 4)"


def _signed(sign, expr):
    """sign (1 or -1) times a 0/1 condition, as an integer."""
    return sign if expr == "1" else f"{sign} * CAST(({expr}) AS INTEGER)"


def _tally_rows(*, r, source, sign):
    terms = ", ".join(f"{_signed(sign, TALLY_TERMS[f].format(r=r))} AS {f}" for f in TALLY_FIGURES)
    return (
        f"SELECT {r}.campaign_id AS campaign_id, {r}.status AS status, {r}.failure_class AS failure_class, "
        f"{terms} {source}"
    )


def _hour_rows(*, r, source, sign, where=""):
    selects = []
    for moment, condition, values in HOUR_TERMS:
        ts = f"{r}.{moment}"
        metrics = ", ".join(
            f"{_signed(sign, values[m].format(r=r))} AS {m}" if m in values else f"0 AS {m}" for m in HOUR_METRICS
        )
        selects.append(
            f"SELECT {r}.campaign_id AS campaign_id, {_hour(ts)} AS hour, {_quarter(ts)} AS q, "
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


def _changes(sides, *, where=""):
    """The two upserts for rows seen through `sides`: [(r, source, sign)]."""
    tally = " UNION ALL ".join(
        _tally_rows(r=r, source=f"{source}{where and ' WHERE ' + where}", sign=sign) for r, source, sign in sides
    )
    hours = " UNION ALL ".join(
        _hour_rows(r=r, source=source, sign=sign, where=where and f" AND {where}") for r, source, sign in sides
    )
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
    by_figure = {
        f"{m}{q}": f"CASE WHEN {quarter} = {q} THEN {values[m]} ELSE 0 END" if m in values else "0"
        for m in HOUR_METRICS
        for q in QUARTERS
    }
    changed = {f: v for f, v in by_figure.items() if v != "0"}
    return (
        f"UPDATE {HOURS} SET {', '.join(f'{f} = {HOURS}.{f} + {v}' for f, v in changed.items())} "
        f"WHERE campaign_id = {campaign} AND hour = {hour}; IF NOT FOUND THEN INSERT INTO {HOURS} "
        f"({', '.join(HOUR_KEY + HOUR_FIGURES)}) VALUES ({campaign}, {hour}, {', '.join(by_figure.values())}) "
        f"ON CONFLICT ({', '.join(HOUR_KEY)}) DO UPDATE SET "
        f"{', '.join(f'{f} = {HOURS}.{f} + excluded.{f}' for f in changed)}; END IF;"
    )


def _one_row_result():
    """PL/pgSQL for the statement the sending engine makes most: one row changing status, and
    nothing else counted (no open, click or unsubscribe; not from sent or failed), so that at most
    one hour figure is added (sent or failed). A handful of plain UPDATEs, cheaper than the
    set-based statements for one row. Anything else takes the set-based path.

    Returns (declarations, code); the code returns from the trigger when it applies.
    """
    sent, failed = (HOUR_TERMS[0][1].format(r="n"), HOUR_TERMS[2][1].format(r="n"))
    moment = {"sent": "n.sent_at", "failed": "n.updated_at"}
    same = " AND ".join(
        [
            "o.campaign_id = n.campaign_id",
            "o.first_opened_at IS NULL",
            "n.first_opened_at IS NULL",
            "o.machine_open = n.machine_open",
            "(o.click_count > 0) = (n.click_count > 0)",
            "(o.unsubscribed_at IS NULL) = (n.unsubscribed_at IS NULL)",
            "o.status NOT IN ('sent', 'failed')",
        ]
    )
    # (With first_opened_at null, machine_only is machine_open.)
    select = (
        f"SELECT (SELECT count(*) FROM new_rows), n.campaign_id, o.status, o.failure_class, n.status, n.failure_class, "
        f"{_signed('1', 'n.machine_open')}, {_signed('1', TALLY_TERMS['clicked'].format(r='n'))}, "
        f"{_signed('1', TALLY_TERMS['unsubscribed'].format(r='n'))}, {same}, "
        f"CASE WHEN {sent} THEN {_hour(moment['sent'])} WHEN {failed} THEN {_hour(moment['failed'])} END, "
        f"CASE WHEN {sent} THEN {_quarter(moment['sent'])} ELSE {_quarter(moment['failed'])} END, "
        f"{_signed('1', sent)}, {_signed('1', failed)} "
        f"INTO v_rows, v_campaign, v_old_status, v_old_class, v_new_status, v_new_class, v_machine, v_clicked, "
        f"v_unsubscribed, v_lean, v_hour, v_quarter, v_sent, v_failed FROM old_rows o CROSS JOIN new_rows n LIMIT 1"
    )
    old_key, new_key = ["v_campaign", "v_old_status", "v_old_class"], ["v_campaign", "v_new_status", "v_new_class"]
    taken = ["-1", "0", "-v_machine", "-v_clicked", "-v_unsubscribed"]
    added = ["1", "0", "v_machine", "v_clicked", "v_unsubscribed"]
    code = "\n    ".join(
        [
            f"{select};",
            "IF v_rows = 0 THEN RETURN NULL; END IF;",
            "IF v_rows = 1 AND v_lean THEN",
            "    IF (v_old_status, v_old_class) < (v_new_status, v_new_class) THEN",
            f"        {_tally_add(old_key, taken)} {_tally_add(new_key, added)}",
            "    ELSIF (v_old_status, v_old_class) > (v_new_status, v_new_class) THEN",
            f"        {_tally_add(new_key, added)} {_tally_add(old_key, taken)}",
            "    END IF;",
            f"    IF v_hour IS NOT NULL THEN "
            f"{_hour_add('v_campaign', 'v_hour', 'v_quarter', {'sent': 'v_sent', 'failed': 'v_failed'})} "
            "END IF;",
            "    RETURN NULL;",
            "END IF;",
        ]
    )
    # (Prefixed: PL/pgSQL variables would shadow the columns of the same names in the set-based statements.)
    declare = (
        "DECLARE v_rows bigint; v_campaign bigint; v_old_status text; v_old_class text; v_new_status text; "
        "v_new_class text; v_machine integer; v_clicked integer; v_unsubscribed integer; v_lean boolean; "
        "v_hour integer; v_quarter integer; v_sent integer; v_failed integer;\n"
    )
    return declare, code


def install_statements():
    sides = {
        "insert": [("r", "FROM new_rows r", "1")],
        "update": [("r", "FROM old_rows r", "-1"), ("r", "FROM new_rows r", "1")],
        "delete": [("r", "FROM old_rows r", "-1")],
    }
    referencing = {
        "insert": "NEW TABLE AS new_rows",
        "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "delete": "OLD TABLE AS old_rows",
    }
    statements = []
    for op in TRIGGERS:
        body = ";\n    ".join(_changes(sides[op], where=_campaign_exists("r") if op == "delete" else ""))
        declare, one_row = _one_row_result() if op == "update" else ("", "")
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


def uninstall_statements():
    triggers = [(EMAIL, f"{EMAIL}_tally_{op}") for op in TRIGGERS] + [(CAMPAIGN, f"{CAMPAIGN}_tally_delete")]
    # Each trigger runs a function of its name.
    return [f"DROP TRIGGER IF EXISTS {name} ON {table}" for table, name in triggers] + [
        f"DROP FUNCTION IF EXISTS {name}()" for _, name in triggers
    ]


def recount_statements():
    # Writers wait (readers do not) until the tallies are rebuilt, so none is counted twice or missed.
    # A rebuilt table has no row to add to: the upsert's ON CONFLICT never fires.
    return [
        f"LOCK TABLE {EMAIL} IN SHARE MODE",
        f"DELETE FROM {TALLY}",
        f"DELETE FROM {HOURS}",
        *_changes([("e", f"FROM {EMAIL} e", "1")]),
    ]


def install(*, using_connection=None):
    conn = using_connection or connection
    with conn.cursor() as cursor:
        for sql in install_statements():
            cursor.execute(sql)


def uninstall(*, using_connection=None):
    conn = using_connection or connection
    with conn.cursor() as cursor:
        for sql in uninstall_statements():
            cursor.execute(sql)


def recount(*, using_connection=None):
    """Rebuild both tallies from the Email rows, in one transaction; safe while sending goes on."""
    conn = using_connection or connection
    with transaction.atomic(using=conn.alias), conn.cursor() as cursor:
        for sql in recount_statements():
            cursor.execute(sql)
