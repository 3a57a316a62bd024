"""The campaigns a batch sends, with their owners and SMTP accounts, read fresh for every batch.

Every batch needs the three (the content, the footer's organization and address, the connection's
settings). They are read with one plain statement and built into model instances as the ORM builds
them (`from_db`, after each column's converters): `select_related(...)` costs a worker several times as
much, in compiling alone (measured in BENCHMARKS.md, Costs behind the code). Nothing is kept
between batches, so whatever changed, by the admin or by a plain UPDATE, reaches the next batch.
"""

import functools

from django.db import DEFAULT_DB_ALIAS, connection

from accounts.models import User
from campaigns.models import Campaign
from sending.models import SmtpAccount

_MODELS = ((Campaign, "c"), (User, "u"), (SmtpAccount, "a"))


def campaigns_with_owner_and_account(campaign_ids) -> dict:
    """{campaign id: Campaign with .owner and .smtp_account loaded}; a deleted campaign is absent."""
    ids = sorted(set(campaign_ids))
    if not ids:
        return {}
    sql, columns = _statement()
    with connection.cursor() as cursor:
        cursor.execute(sql.format(ids=", ".join(["%s"] * len(ids))), ids)
        rows = cursor.fetchall()
    loaded = {}
    for row in rows:
        campaign, owner, account = (_instance(model, fields, row[start:end]) for model, fields, start, end in columns)
        campaign.owner = owner
        campaign.smtp_account = account
        loaded[campaign.pk] = campaign
    return loaded


def _instance(model, fields, values):
    if values[0] is None:  # the LEFT JOIN found no account
        return None
    converted = []
    for (column, converters), value in zip(fields, values):
        for converter in converters:
            value = converter(value, column, connection)
        converted.append(value)
    return model.from_db(DEFAULT_DB_ALIAS, [column.target.attname for column, _ in fields], converted)


@functools.cache
def _statement():
    """The SELECT and, per model, its (field, converters) and the slice of the row it fills."""
    selected, columns, start = [], [], 0
    for model, alias in _MODELS:
        fields = []
        for field in model._meta.concrete_fields:
            selected.append(f"{alias}.{connection.ops.quote_name(field.column)}")
            column = field.get_col(alias)
            fields.append((column, connection.ops.get_db_converters(column) + field.get_db_converters(connection)))
        columns.append((model, tuple(fields), start, start + len(fields)))
        start += len(fields)
    sql = (
        f"SELECT {', '.join(selected)} FROM {Campaign._meta.db_table} c "
        f"JOIN {User._meta.db_table} u ON u.id = c.owner_id "
        f"LEFT JOIN {SmtpAccount._meta.db_table} a ON a.id = c.smtp_account_id "
        "WHERE c.id IN ({ids})"
    )
    return sql, columns
