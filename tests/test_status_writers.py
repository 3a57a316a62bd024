"""One writer per status: a write of a status outside the module that owns it fails here. The SMTP
account's engine state (SmtpAccountState) is held to its writers the same way, field by field.

The scan reads the project's Python source (not tests/, migrations/ or bench/) with `ast` and finds
every write of an owned field: the ORM's update(), create(), get_or_create(), update_or_create(),
model constructors (what bulk_create saves), `obj.field = ...`, `update_fields=[...]`,
bulk_update's fields, and raw SQL (`UPDATE <table> SET field = ...`, `INSERT INTO <table> (..., field)`)
in plain strings, f-strings and concatenations. A write's model comes from the code: `Email.objects...`,
`Email._meta.db_table`, a related manager (`campaign.emails`), a local variable or helper function
that returns one of those, an annotated parameter, or a field only one model has. A write whose model
the scan cannot tell is a finding too: name the model, or explain it in ALLOWED.
"""

import ast
import re
from collections import ChainMap
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.apps import apps

ROOT = Path(__file__).resolve().parent.parent
SKIPPED_DIRS = {"tests", "migrations", "bench", "var", "node_modules"}
ROW = "*"  # the whole row: only the owner creates or changes these rows

# (model, field) -> the module that owns its writes.
OWNERS = {
    ("Email", "status"): ("campaigns/ledger.py",),
    # What a delivery report said after the 250: the ledger writes Email rows' delivery facts.
    ("Email", "bounced_at"): ("campaigns/ledger.py",),
    ("Email", "complained_at"): ("campaigns/ledger.py",),
    ("Campaign", "status"): ("campaigns/services/lifecycle.py",),
    ("CampaignEvent", ROW): ("campaigns/services/lifecycle.py",),
    ("Contact", "status"): ("contacts/services/contacts.py",),
    ("ImportJob", "status"): ("contacts/imports/jobs.py",),
    # A subscription request's status is whether it was confirmed.
    ("SubscriptionRequest", "confirmed_at"): ("contacts/services/subscriptions.py",),
    # An account's tracking domain is used once verified: its check, and the clearing when it changes.
    ("SmtpAccount", "tracking_domain_verified_at"): ("sending/tracking_domains.py",),
}

# The SMTP account's engine state: the pacing clock is rate_limit's (adaptive_rate holds it back after a
# refusal), the learned rate adaptive_rate's (the services forget it), the rest (pauses, backoff,
# connection tests) the services'. Never the admin's: its form saves the account row only.
PACING_CLOCK = ("delivery/rate_limit.py", "delivery/adaptive_rate.py")
LEARNED_RATE = ("delivery/adaptive_rate.py", "sending/services.py")
STATE_WRITERS = {
    "next_send_at": PACING_CLOCK,
    **dict.fromkeys(
        ("learned_per_minute", "observed_limit_per_minute", "rate_note", "rate_changed_at", "last_throttled_at"),
        LEARNED_RATE,
    ),
}
OWNERS |= {
    ("SmtpAccountState", field.name): STATE_WRITERS.get(field.name, ("sending/services.py",))
    for field in apps.get_model("sending", "SmtpAccountState")._meta.concrete_fields
    if not field.primary_key
}

# (path, function, rule) -> why that write outside the owner is right. Keep it short.
ALLOWED = {
    (
        "contacts/imports/writers.py",
        "_copy_and_write",
        "Contact.status",
    ): "a new contact's first status, subscribed (the model's default); existing contacts keep theirs",
    (
        "privacy/services.py",
        "_scrub_import_jobs",
        "ImportJob.status",
    ): "`changes` holds only the scrubbed preview, rejected_rows and notes",
    (
        "sending/admin.py",
        "save_model",
        "SmtpAccount.tracking_domain_verified_at",
    ): "the form's columns: the verification sending.tracking_domains cleared when the name changed",
    (
        "sending/services.py",
        "rotate_encryption_keys",
        "SmtpAccount.tracking_domain_verified_at",
    ): "`new_tokens` holds only the secrets' columns (SECRET_FIELDS)",
}

MODELS = {model.__name__: model for model in apps.get_models()}
TABLES = {model._meta.db_table: name for name, model in MODELS.items()}
COLUMNS = {(m, f): MODELS[m]._meta.get_field(f).column for m, f in OWNERS if f != ROW}
FIELD_MODELS = {}  # a field's name -> the models that have it
ACCESSORS = {}  # a relation's name (campaign.emails, email.campaign) -> the models it leads to
for _name, _model in MODELS.items():
    for _field in _model._meta.get_fields():
        if getattr(_field, "concrete", False):
            FIELD_MODELS.setdefault(_field.name, set()).add(_name)
        if _field.is_relation and _field.related_model:
            _accessor = _field.get_accessor_name() if _field.auto_created else _field.name
            ACCESSORS.setdefault(_accessor, set()).add(_field.related_model.__name__)
# What keeps the model of what it is called on: managers, querysets, rows, the table's name.
KEEPS_MODEL = {
    "objects",
    "_default_manager",
    "_base_manager",
    "_meta",
    "db_table",
    "all",
    "filter",
    "exclude",
    "select_for_update",
    "select_related",
    "prefetch_related",
    "only",
    "defer",
    "order_by",
    "using",
    "distinct",
    "annotate",
    "alias",
    "iterator",
    "first",
    "last",
    "get",
    "earliest",
    "latest",
}
UPDATE_SQL = re.compile(
    r"\bUPDATE\s+(\S+)(?:\s+(?:AS\s+)?\w+)?\s+SET\b(.*?)(?=\bWHERE\b|\bFROM\b|\bRETURNING\b|$)",
    re.IGNORECASE | re.DOTALL,
)
INSERT_SQL = re.compile(r"\bINSERT\s+INTO\s+(\S+?)\s*\(([^)]*)\)", re.IGNORECASE)
SET_COLUMN = re.compile(r"(?:^|,)\s*(?:\w+\.)?\"?(\w+)\"?\s*=(?!=)")  # `status =`, `e.status =`, not `==`
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


@dataclass(frozen=True)
class Write:
    path: str
    line: int
    function: str
    rule: str  # "Email.status"; "?.status" when the model cannot be told
    how: str

    def owners(self):
        return OWNERS.get(tuple(self.rule.split(".")), ())

    def broken(self):
        return self.path not in self.owners() and (self.path, self.function, self.rule) not in ALLOWED

    def __str__(self):
        if self.rule.startswith("?."):
            return (
                f"{self.path}:{self.line}: `{self.how}` writes `{self.rule[2:]}` of a model the scan cannot "
                "tell: name the model (Email.objects...) or explain it in ALLOWED"
            )
        return f"{self.path}:{self.line}: `{self.how}` writes {self.rule}; only {' or '.join(self.owners())} may"


def own_nodes(node):
    """The nodes of this function (or module), not those of the functions and classes it defines."""
    for child in ast.iter_child_nodes(node):
        yield child
        if not isinstance(child, (*FUNCTIONS, ast.Lambda, ast.ClassDef)):
            yield from own_nodes(child)


def bindings(node):
    """Each name a function (or module) binds -> what it binds it to: an assignment's value, a loop's
    iterable (a queryset's rows are its model's), a parameter's annotation, the function of that name."""
    names = {}

    def bind(target, value):
        if isinstance(target, ast.Name):
            names.setdefault(target.id, []).append(value)
        elif isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
            for one_target, one_value in zip(target.elts, value.elts):
                bind(one_target, one_value)

    arguments = node.args if isinstance(node, FUNCTIONS) else None
    for arg in arguments.posonlyargs + arguments.args + arguments.kwonlyargs if arguments else []:
        if arg.annotation is not None:
            bind(ast.Name(arg.arg), arg.annotation)
    for child in own_nodes(node):
        if isinstance(child, (ast.Assign, ast.AnnAssign, ast.NamedExpr)) and child.value is not None:
            for target in getattr(child, "targets", [getattr(child, "target", None)]):
                bind(target, child.value)
        elif isinstance(child, ast.For):
            bind(child.target, child.iter)
        elif isinstance(child, FUNCTIONS):
            bind(ast.Name(child.name), child)
    return names


def model_of(node, scope, depth=0):
    """The model whose manager, queryset, row or table name `node` is; None when the code does not say."""
    if depth > 10:
        return None
    if isinstance(node, ast.Name) and node.id in MODELS:
        return node.id
    if isinstance(node, ast.Name):
        return next(filter(None, (model_of(value, scope, depth + 1) for value in scope.get(node.id, []))), None)
    if isinstance(node, FUNCTIONS):  # a helper: the model of what it returns
        inner = scope.new_child(bindings(node))
        returns = [child.value for child in own_nodes(node) if isinstance(child, ast.Return) and child.value]
        return next(filter(None, (model_of(value, inner, depth + 1) for value in returns)), None)
    if isinstance(node, ast.Attribute) and node.attr in KEEPS_MODEL:
        return model_of(node.value, scope, depth + 1)
    if isinstance(node, ast.Attribute):
        leads_to = ACCESSORS.get(node.attr, set())
        return next(iter(leads_to)) if len(leads_to) == 1 else None
    if isinstance(node, (ast.Call, ast.Subscript)):
        return model_of(node.func if isinstance(node, ast.Call) else node.value, scope, depth + 1)
    if isinstance(node, ast.IfExp):
        return model_of(node.body, scope, depth + 1) or model_of(node.orelse, scope, depth + 1)
    return None


def string_fields(node):
    """The strings of a literal list, tuple or set, or a dict literal's keys; None when the code does not say."""
    items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None)
    if items is None or not all(isinstance(i, ast.Constant) and isinstance(i.value, str) for i in items):
        return None
    return {item.value for item in items}


def is_text(node):
    return (
        isinstance(node, ast.JoinedStr)
        or (isinstance(node, ast.Constant) and isinstance(node.value, str))
        or (
            isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and (is_text(node.left) or is_text(node.right))
        )
    )


def sql_text(node):
    """A string expression as SQL text, each interpolated part as `{its source}`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            sql_text(part) if isinstance(part, ast.Constant) else "{" + ast.unparse(part.value) + "}"
            for part in node.values
        )
    if isinstance(node, ast.BinOp) and is_text(node):
        return sql_text(node.left) + sql_text(node.right)
    return "{" + ast.unparse(node) + "}"


class Scan(ast.NodeVisitor):
    def __init__(self, path, tree):
        self.path, self.writes, self.function, self.scope = path, [], "<module>", ChainMap(bindings(tree))

    def record(self, line, model, fields, how):
        """A Write per owned (model, field) this write touches; fields None: which ones, the code does not say."""
        if model is None:
            for field in fields or ():
                if len(FIELD_MODELS.get(field, ())) == 1:  # a field only one model has names it
                    self.record(line, next(iter(FIELD_MODELS[field])), {field}, how)
                elif any(f == field for _, f in OWNERS):
                    self.writes.append(Write(self.path, line, self.function, f"?.{field}", how))
        for owned_model, field in OWNERS if model else ():
            if owned_model == model and (field == ROW or fields is None or field in fields):
                self.writes.append(Write(self.path, line, self.function, f"{model}.{field}", how))

    def visit(self, node):
        return self.scan_sql(node) if is_text(node) else super().visit(node)

    def visit_FunctionDef(self, node):
        outer = self.scope, self.function
        self.scope, self.function = self.scope.new_child(bindings(node)), node.name
        self.generic_visit(node)
        self.scope, self.function = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Expr(self, node):
        if not is_text(node.value):  # a docstring is no SQL
            self.generic_visit(node)

    def visit_Assign(self, node):
        for target in node.targets:
            for one in target.elts if isinstance(target, ast.Tuple) else [target]:
                if isinstance(one, ast.Attribute):
                    self.record(node.lineno, model_of(one.value, self.scope), {one.attr}, f".{one.attr} = ...")
        self.generic_visit(node)

    def visit_Call(self, node):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        receiver = model_of(func.value, self.scope) if isinstance(func, ast.Attribute) else None
        fields = {k.arg for k in node.keywords if k.arg}
        for k in node.keywords:
            if k.arg in (None, "defaults", "create_defaults"):  # **{...} or **name, and defaults={...}
                more = string_fields(k.value)
                fields = None if fields is None or more is None else fields | more
        if name in MODELS:  # a row to save, or to bulk_create
            self.record(node.lineno, name, fields, f"{name}(...)")
        elif name in ("update", "create", "get_or_create", "update_or_create"):
            self.record(node.lineno, receiver, fields, f".{name}(...)")
        listed = next((k.value for k in node.keywords if k.arg in ("update_fields", "fields")), None)
        if name == "bulk_update" and listed is None and len(node.args) > 1:
            listed = node.args[1]
        if name in ("save", "bulk_update", "bulk_create") and listed is not None:
            self.record(node.lineno, receiver, string_fields(listed), f".{name}(update_fields=...)")
        self.generic_visit(node)

    def scan_sql(self, node):
        text = sql_text(node)
        statements = [(m, {c.lower() for c in SET_COLUMN.findall(m.group(2))}) for m in UPDATE_SQL.finditer(text)]
        statements += [(m, {c.strip(' "').lower() for c in m.group(2).split(",")}) for m in INSERT_SQL.finditer(text)]
        for match, columns in statements:
            line, table = node.lineno + text[: match.start()].count("\n"), match.group(1).strip('"')
            how = " ".join(text[match.start() : match.end(1)].split()) + " ..."  # UPDATE {table} ..., INSERT INTO ...
            expression = table[1:-1].strip() if table.startswith("{") else None  # "" for "{}": str.format, sql.SQL
            if table.lower() not in TABLES and expression is None:
                continue  # a temporary table
            model = TABLES.get(table.lower())
            if expression:
                model = model_of(ast.parse(expression, mode="eval").body, self.scope)
            owned = {f for (m, f), column in COLUMNS.items() if m == model and column in columns}
            self.record(line, model, columns if model is None else set() if (model, ROW) in OWNERS else owned, how)


def scan_source(source, path):
    tree = ast.parse(source)
    scan = Scan(path, tree)
    scan.visit(tree)
    return scan.writes


def project_sources():
    for file in sorted(ROOT.rglob("*.py")):
        parts = file.relative_to(ROOT).parts
        if not (SKIPPED_DIRS & set(parts) or any(part.startswith(".") for part in parts)):
            yield file.relative_to(ROOT).as_posix(), file.read_text()


@pytest.fixture(scope="module")
def project_writes():
    return [write for path, source in project_sources() for write in scan_source(source, path)]


def test_every_status_is_written_by_its_owner_only(project_writes):
    broken = [str(write) for write in project_writes if write.broken()]
    assert not broken, "status written outside its owner:\n" + "\n".join(broken)


def test_each_owner_is_seen_writing_its_status(project_writes):
    """The scan follows the owners' own writes: a scan that sees nothing proves nothing."""
    seen = {f"{model}.{field}" for model, field in OWNERS} - {w.rule for w in project_writes if not w.broken()}
    assert not seen, f"no write found for {sorted(seen)}: has an owner moved?"


def test_every_allowed_write_still_exists(project_writes):
    found = {(w.path, w.function, w.rule) for w in project_writes}
    assert not set(ALLOWED) - found, f"stale ALLOWED entries: {sorted(set(ALLOWED) - found)}"


# Each rule broken once, in the ways the scan knows: (the rule, source that breaks it).
BREAKING = [
    ("Email.status", "Email.objects.filter(batch_id=batch_id).update(status='sent')"),
    ("Email.status", "campaign.emails.update(**{'status': 'cancelled', 'batch_id': None})"),
    (
        "Email.status",
        (
            "def _mine():\n    return Email.objects.filter(status='queued')\n"
            "def release():\n    rows = _mine()\n    rows = rows.filter(id=1)\n"
            "    rows.update(status='pending')"
        ),
    ),
    ("Email.status", "table = Email._meta.db_table\nSQL = f'''UPDATE {table}\n SET updated_at = %s, status = %s'''"),
    ("Email.status", "SQL = f\"UPDATE {Email._meta.db_table} e SET lease_expires_at = NULL, e.status = '{S.SENT}'\""),
    (
        "Email.status",
        (
            "email, contact = Email._meta.db_table, Contact._meta.db_table\n"
            "SQL = f'INSERT INTO {email} (campaign_id, status) SELECT %s, %s FROM {contact}'"
        ),
    ),
    ("Email.status", "cursor.execute('INSERT INTO campaigns_email (campaign_id, to_email, status) VALUES (1, 2, 3)')"),
    ("Email.status", "SQL = 'UPDATE ' + Email._meta.db_table + ' SET status = %s WHERE id = %s'"),
    ("Campaign.status", "def pause(campaign: Campaign):\n    campaign.status = 'paused'"),
    ("Campaign.status", "campaign = Campaign.objects.get(pk=1)\ncampaign.save(update_fields=['status', 'updated_at'])"),
    ("Campaign.status", "Campaign.objects.create(owner=owner, name='x', status='sending')"),
    ("Campaign.status", "email.campaign.status = 'completed'"),
    ("CampaignEvent.*", "CampaignEvent.objects.bulk_create([CampaignEvent(campaign_id=1, to_status='paused')])"),
    ("CampaignEvent.*", "SQL = 'INSERT INTO campaigns_campaignevent (campaign_id, at) VALUES (%s, %s)'"),
    ("Contact.status", "Contact.objects.bulk_update(contacts, ['name', 'status'])"),
    ("Contact.status", "for contact in Contact.objects.filter(owner=owner):\n    contact.status, x = 'bounced', 1"),
    ("Contact.status", "Contact.objects.get_or_create(owner=owner, email=e, defaults={'status': 'unsubscribed'})"),
    ("Contact.status", "sql = f'UPDATE {Contact._meta.db_table} AS c SET status = %s FROM x WHERE c.id = x.id'"),
    ("ImportJob.status", "ImportJob.objects.create(owner=owner, original_name='a.csv', status='done')"),
    ("ImportJob.status", "def fail(*, job, **changes):\n    ImportJob.objects.filter(pk=job.pk).update(**changes)"),
    ("SubscriptionRequest.confirmed_at", "def confirm(*, request, now):\n    request.confirmed_at = now"),
    ("SubscriptionRequest.confirmed_at", "SubscriptionRequest.objects.filter(pk=1).update(confirmed_at=now)"),
    ("?.status", "def cancel(queryset):\n    queryset.update(status='cancelled')"),
    ("?.status", "query = sql.SQL('UPDATE {} SET status = %s').format(sql.Identifier(name))"),
    ("?.status", "def move(obj):\n    obj.status = 'done'\n    obj.save()"),
    ("SmtpAccountState.paused_until", "SmtpAccountState.objects.filter(account_id=1).update(paused_until=None)"),
    (
        "SmtpAccountState.learned_per_minute",
        "def slow(account: SmtpAccount):\n    account.state.learned_per_minute = 3",
    ),
    ("SmtpAccountState.next_send_at", "SQL = f'UPDATE {SmtpAccountState._meta.db_table} s SET next_send_at = %s'"),
    ("SmtpAccountState.last_test_result", "def tested(account):\n    account.state.last_test_result = 'OK'"),
    ("SmtpAccountState.backoff_until", "account.state.save(update_fields=['backoff_until'])"),
]


@pytest.mark.parametrize("rule, source", BREAKING)
def test_a_write_outside_its_owner_is_caught(rule, source):
    writes = [w for w in scan_source(source, "campaigns/elsewhere.py") if w.broken()]
    assert rule in {w.rule for w in writes}, writes
    assert all(str(w).startswith("campaigns/elsewhere.py:") for w in writes)


@pytest.mark.parametrize("rule, source", [(r, s) for r, s in BREAKING if not r.startswith("?")])
def test_the_same_write_in_its_owner_passes(rule, source):
    owner = OWNERS[tuple(rule.split("."))][0]
    assert not [w for w in scan_source(source, owner) if w.rule == rule and w.broken()]


def test_the_message_names_the_place_and_the_rule():
    source = "import x\n\nEmail.objects.filter(pk=1).update(status='sent')\n"
    (write,) = scan_source(source, "campaigns/views.py")
    assert str(write) == ("campaigns/views.py:3: `.update(...)` writes Email.status; only campaigns/ledger.py may")


@pytest.mark.parametrize(
    "source",
    [
        "Email.objects.filter(status='sent').count()",  # a read
        "Email.objects.filter(status='queued').update(lease_expires_at=None)",  # another field
        "SQL = f'UPDATE {Email._meta.db_table} SET lease_expires_at = %s WHERE status = %s'",
        "SQL = f'SELECT status FROM {Email._meta.db_table} WHERE status = %s'",
        "SQL = f'UPDATE {Email._meta.db_table} SET x = CASE WHEN status = %s THEN 1 END'",
        "def f():\n    '''Each transition: UPDATE campaigns_email SET status = ... (a docstring)'''",
        "render(request, 'page.html', status=404)",
        "Contact.objects.create(owner=owner, email=e)",  # a new contact, subscribed by default
        "CampaignTally.objects.filter(campaign_id=1).update(status='sent')",  # a model no rule names
        "cursor.execute('INSERT INTO import_new_contacts (email, status) VALUES (%s, %s)')",  # a temporary table
    ],
)
def test_what_is_not_a_write_of_an_owned_status(source):
    assert scan_source(source, "campaigns/elsewhere.py") == []
