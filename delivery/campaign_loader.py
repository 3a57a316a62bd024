"""The campaigns a batch sends, with their owners and SMTP accounts (and each account's state row),
read fresh for every batch.

Every batch needs them (the content, the footer's organization and address, the connection's
settings, the account's pause and learned rate). They are read with one plain statement and built
into model instances as the ORM builds them (`from_db`, after each column's converters):
`select_related(...)` costs a worker several times as much, in compiling alone (measured in
BENCHMARKS.md, Costs behind the code). Nothing is kept between batches, so whatever changed, by the
admin or by a plain UPDATE, reaches the next batch.
"""

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import Model
from django.db.models.expressions import Col

from accounts.models import User
from campaigns.models import Campaign
from sending.models import SmtpAccount, SmtpAccountState

_MODELS = ((Campaign, "c"), (User, "u"), (SmtpAccount, "a"), (SmtpAccountState, "s"))
# Each field's column, with the converters its value goes through.
Fields = tuple[tuple[Col, list[Callable[..., Any]]], ...]
# A model, its fields, and the slice of the row they fill.
ModelColumns = tuple[type[Model], Fields, int, int]


def campaigns_with_owner_and_account(campaign_ids: Iterable[int]) -> dict[int, Campaign]:
    """{campaign id: Campaign with .owner, .smtp_account and its .state loaded}; a deleted campaign is absent."""
    ids = sorted(set(campaign_ids))
    if not ids:
        return {}
    sql, columns = _statement()
    with connection.cursor() as cursor:
        cursor.execute(sql.format(ids=", ".join(["%s"] * len(ids))), ids)
        rows = cursor.fetchall()
    loaded = {}
    for row in rows:
        campaign, owner, account, state = (
            _instance(model, fields, row[start:end]) for model, fields, start, end in columns
        )
        # Every campaign has an owner (joined); an account only when it has one (LEFT JOIN), and every
        # account its state row.
        assert isinstance(campaign, Campaign) and isinstance(owner, User)
        assert account is None or isinstance(account, SmtpAccount)
        if account is not None:
            assert isinstance(state, SmtpAccountState)
            account.state = state
        campaign.owner = owner
        campaign.smtp_account = account
        loaded[campaign.pk] = campaign
    return loaded


def _instance(model: type[Model], fields: Fields, values: Sequence[Any]) -> Model | None:
    if values[0] is None:  # the LEFT JOIN found no account (nor, then, its state)
        return None
    converted = []
    for (column, converters), value in zip(fields, values):
        for converter in converters:
            value = converter(value, column, connection)
        converted.append(value)
    return model.from_db(DEFAULT_DB_ALIAS, [column.target.attname for column, _ in fields], converted)


@functools.cache
def _statement() -> tuple[str, list[ModelColumns]]:
    """The SELECT and, per model, its (field, converters) and the slice of the row it fills."""
    selected: list[str] = []
    columns: list[ModelColumns] = []
    start = 0
    for model, alias in _MODELS:
        fields = []
        for field in model._meta.concrete_fields:
            assert field.column is not None  # a concrete field has one
            selected.append(f"{alias}.{connection.ops.quote_name(field.column)}")
            column = field.get_col(alias)
            fields.append((column, connection.ops.get_db_converters(column) + field.get_db_converters(connection)))
        columns.append((model, tuple(fields), start, start + len(fields)))
        start += len(fields)
    sql = (
        f"SELECT {', '.join(selected)} FROM {Campaign._meta.db_table} c "
        f"JOIN {User._meta.db_table} u ON u.id = c.owner_id "
        f"LEFT JOIN {SmtpAccount._meta.db_table} a ON a.id = c.smtp_account_id "
        f"LEFT JOIN {SmtpAccountState._meta.db_table} s ON s.account_id = a.id "
        "WHERE c.id IN ({ids})"
    )
    return sql, columns
