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
    """PL/pgSQL adding `values` (expressions) to the CampaignTally row of `key`: an UPDATE of the
    figures that change (a literal 0 changes nothing), an upsert the first time."""
    changed = [(f, v) for f, v in zip(TALLY_FIGURES, values) if v != "0"]
    where = " AND ".join(f"{k} = {v}" for k, v in zip(TALLY_KEY, key))
    return (
        f"UPDATE {TALLY} SET {', '.join(f'{f} = {TALLY}.{f} + {v}' for f, v in changed)} "
        f"WHERE {where}; IF NOT FOUND THEN INSERT INTO {TALLY} ({', '.join(TALLY_KEY + TALLY_FIGURES)}) "
        f"VALUES ({', '.join(list(key) + list(values))}) ON CONFLICT ({', '.join(TALLY_KEY)}) DO UPDATE SET "
        f"{', '.join(f'{f} = {TALLY}.{f} + excluded.{f}' for f, _ in changed)}; END IF;"
    )


def _hour_add(campaign, hour, figure):
    """PL/pgSQL adding 1 to one figure (a metric of a quarter) of a CampaignHourTally row."""
    values = ", ".join("1" if f == figure else "0" for f in HOUR_FIGURES)
    return (
        f"UPDATE {HOURS} SET {figure} = {HOURS}.{figure} + 1 WHERE campaign_id = {campaign} AND hour = {hour}; "
        f"IF NOT FOUND THEN INSERT INTO {HOURS} ({', '.join(HOUR_KEY + HOUR_FIGURES)}) "
        f"VALUES ({campaign}, {hour}, {values}) ON CONFLICT ({', '.join(HOUR_KEY)}) DO UPDATE SET "
        f"{figure} = {HOURS}.{figure} + excluded.{figure}; END IF;"
    )


# What the one-row path reads of the old (o) and new (n) row, into PL/pgSQL variables o_<column>, n_<column>.
ONE_ROW_COLUMNS = {
    "campaign_id": ("bigint", "on"),
    "status": ("text", "on"),
    "failure_class": ("text", "on"),
    "first_opened_at": ("timestamptz", "on"),
    "machine_open": ("boolean", "on"),
    "click_count": ("integer", "on"),
    "unsubscribed_at": ("timestamptz", "on"),
    "sent_at": ("timestamptz", "n"),
    "updated_at": ("timestamptz", "n"),
}
ONE_ROW_READ = [(side, column) for column, (_, sides) in ONE_ROW_COLUMNS.items() for side in sides]


def _new_row_variables(term):
    """A row term (TALLY_TERMS, HOUR_TERMS) over the new row's PL/pgSQL variables."""
    return term.replace("{r}.", "n_")


def _one_row_result():
    """PL/pgSQL for the statement the sending engine makes most: one row changing status, and
    nothing else counted (no open, click or unsubscribe; not from sent or failed), so that at most
    one hour figure is added (sent or failed). Anything else takes the set-based path.

    What this costs is the statements' executor start-up, not their rows: so one plain read of the
    two rows (columns, no expressions; a loop that stops at a second row instead of a count), and
    UPDATEs that name only the figures they change (the common send moves `n` alone; a quarter hour
    is one column).

    Returns (declarations, code); the code returns from the trigger when it applies.
    """
    variables = ", ".join(f"{side}_{column}" for side, column in ONE_ROW_READ)
    read = (
        f"v_rows := 0; FOR {variables} IN SELECT {', '.join(f'{side}.{column}' for side, column in ONE_ROW_READ)} "
        "FROM old_rows o CROSS JOIN new_rows n LOOP v_rows := v_rows + 1; EXIT WHEN v_rows > 1; END LOOP"
    )
    o = {column: f"o_{column}" for column in ONE_ROW_COLUMNS}
    n = {column: f"n_{column}" for column in ONE_ROW_COLUMNS}
    lean = " AND ".join(
        [
            f"{o['campaign_id']} = {n['campaign_id']}",
            f"{o['first_opened_at']} IS NULL",
            f"{n['first_opened_at']} IS NULL",
            f"{o['machine_open']} = {n['machine_open']}",
            f"({o['click_count']} > 0) = ({n['click_count']} > 0)",
            f"({o['unsubscribed_at']} IS NULL) = ({n['unsubscribed_at']} IS NULL)",
            f"{o['status']} NOT IN ('sent', 'failed')",
        ]
    )
    # (With first_opened_at null, machine_only is machine_open.)
    figures = {
        "v_machine": _new_row_variables(TALLY_TERMS["machine_only"]),
        "v_clicked": _new_row_variables(TALLY_TERMS["clicked"]),
        "v_unsubscribed": _new_row_variables(TALLY_TERMS["unsubscribed"]),
    }
    sent, failed = _new_row_variables(HOUR_TERMS[0][1]), _new_row_variables(HOUR_TERMS[2][1])
    old_key, new_key = (
        ["n_campaign_id", "o_status", "o_failure_class"],
        ["n_campaign_id", "n_status", "n_failure_class"],
    )
    taken = ["-1", "0", "-v_machine", "-v_clicked", "-v_unsubscribed"]
    added = ["1", "0", "v_machine", "v_clicked", "v_unsubscribed"]

    def moves(old, new):
        in_key_order = (
            "IF (o_status, o_failure_class) < (n_status, n_failure_class) THEN "
            f"{_tally_add(old_key, old)} {_tally_add(new_key, new)} "
            "ELSIF (o_status, o_failure_class) > (n_status, n_failure_class) THEN "
            f"{_tally_add(new_key, new)} {_tally_add(old_key, old)} END IF;"
        )
        return in_key_order

    def quarters(metric):
        branches = (
            f"{'ELSIF' if q else 'IF'} v_quarter = {q} THEN {_hour_add('n_campaign_id', 'v_hour', f'{metric}{q}')}"
            for q in QUARTERS
        )
        return " ".join(branches) + " END IF;"

    code = "\n    ".join(
        [
            f"{read};",
            "IF v_rows = 0 THEN RETURN NULL; END IF;",
            f"IF v_rows = 1 AND {lean} THEN",
            *(f"    {name} := CAST(({term}) AS INTEGER);" for name, term in figures.items()),
            "    IF v_machine = 0 AND v_clicked = 0 AND v_unsubscribed = 0 THEN",
            f"        {moves(['-1', '0', '0', '0', '0'], ['1', '0', '0', '0', '0'])}",
            "    ELSE",
            f"        {moves(taken, added)}",
            "    END IF;",
            f"    IF {sent} THEN v_moment := n_sent_at; ELSIF {failed} THEN v_moment := n_updated_at; END IF;",
            "    IF v_moment IS NOT NULL THEN",
            f"        v_hour := {_hour('v_moment')}; v_quarter := {_quarter('v_moment')};",
            f"        IF {sent} THEN {quarters('sent')} ELSE {quarters('failed')} END IF;",
            "    END IF;",
            "    RETURN NULL;",
            "END IF;",
        ]
    )
    # (Prefixed: PL/pgSQL variables would shadow the columns of the same names in the set-based statements.)
    declare = (
        "DECLARE v_rows integer; "
        + " ".join(f"{side}_{column} {ONE_ROW_COLUMNS[column][0]};" for side, column in ONE_ROW_READ)
        + " v_machine integer; v_clicked integer; v_unsubscribed integer; v_moment timestamptz; v_hour integer; "
        "v_quarter integer;\n"
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
