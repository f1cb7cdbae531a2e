"""Set-based SQL that brings a table of (owner, customer) rows in line with a compiled rule query.

Segment members and rule-made tags are both "the customers this rule tree matches", kept as rows.
Each direction is one statement evaluated in the database: insert the matched customers who have
no row yet, delete the rows of customers no longer matched. Nothing is loaded into Python.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import F, Model, QuerySet
from django.utils import timezone

from customers.models import Customer

MATCHED = "matched_customer_id"  # the column of customer ids the compiled query is reduced to
ERROR_MAX_LENGTH = 2000  # characters of an error kept on a segment or a refresh row


def resolve_as_of(as_of: dt.datetime | None) -> dt.datetime:
    if as_of is None:
        return timezone.now()
    if timezone.is_naive(as_of):
        raise ValueError(f"an aware datetime is needed, not {as_of!r}")
    return as_of


def db_datetime(value: dt.datetime) -> Any:
    """An aware datetime as a bound parameter of raw SQL (SQLite keeps naive UTC text)."""
    return connection.ops.adapt_datetimefield_value(value)


def quote_table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def matched_sql(queryset: QuerySet[Customer]) -> tuple[str, tuple[Any, ...]]:
    """The SQL and parameters of "the ids of the customers this query matches"."""
    sql, params = queryset.order_by().values(**{MATCHED: F("pk")}).query.sql_with_params()
    return sql, tuple(params)


def describe_error(exc: Exception) -> str:
    """The text kept on a segment or tag rule whose refresh failed."""
    rule_errors = getattr(exc, "errors", None)
    if isinstance(rule_errors, list) and rule_errors and hasattr(rule_errors[0], "path"):
        text = "; ".join(f"{error.path}: {error.message}" for error in rule_errors)
    elif isinstance(exc, ValidationError):
        text = "; ".join(exc.messages)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text[:ERROR_MAX_LENGTH]


def _execute(sql: str, params: Sequence[Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return max(cursor.rowcount, 0)


def _in_list(customer_ids: Sequence[int] | None, column: str) -> tuple[str, tuple[int, ...]]:
    if customer_ids is None:
        return "", ()
    return f" AND {column} IN ({', '.join(['%s'] * len(customer_ids))})", tuple(customer_ids)


def insert_matched(
    *,
    table: type[Model],
    owner_column: str,
    owner_id: int,
    matched: tuple[str, tuple[Any, ...]],
    values: dict[str, Any],
    skip_existing: bool = True,
) -> int:
    """INSERT the matched customers who have no row of this owner yet; returns how many.

    values are further columns and their bound values (e.g. joined_at). No DISTINCT: the
    compiled query joins only single-valued relations (metrics, membership, its tier), so it
    lists a customer once (tests/segments/test_compiler.py holds the field registry to that).
    skip_existing=False leaves out the anti-join, for an owner known to have no rows.
    """
    target = quote_table(table)
    owner = connection.ops.quote_name(owner_column)
    customer = connection.ops.quote_name("customer_id")
    extra_columns = "".join(f", {connection.ops.quote_name(name)}" for name in values)
    extra_values = "".join(", %s" for _ in values)
    sql = (
        f"INSERT INTO {target} ({owner}, {customer}{extra_columns}) "
        f"SELECT %s, matched.{MATCHED}{extra_values} "
        f"FROM ({matched[0]}) matched"
    )
    params: tuple[Any, ...] = (owner_id, *values.values(), *matched[1])
    if skip_existing:
        sql += (
            f" WHERE NOT EXISTS (SELECT 1 FROM {target} existing "
            f"WHERE existing.{owner} = %s AND existing.{customer} = matched.{MATCHED})"
        )
        params = (*params, owner_id)
    return _execute(sql, params)


def delete_unmatched(
    *,
    table: type[Model],
    owner_column: str,
    owner_id: int,
    matched: tuple[str, tuple[Any, ...]],
    customer_ids: Sequence[int] | None = None,
    only: dict[str, Any] | None = None,
) -> int:
    """DELETE this owner's rows whose customer the query no longer matches; returns how many.

    customer_ids limits the rows looked at to those customers; only adds column = value filters
    (rule-made tags delete their own source's rows, never a manual one).
    """
    target = quote_table(table)
    owner = connection.ops.quote_name(owner_column)
    customer = f"{target}.{connection.ops.quote_name('customer_id')}"
    restrict, restrict_params = _in_list(customer_ids, customer)
    only = only or {}
    only_sql = "".join(f" AND {connection.ops.quote_name(name)} = %s" for name in only)
    sql = (
        f"DELETE FROM {target} WHERE {owner} = %s{only_sql}{restrict} "
        f"AND NOT EXISTS (SELECT 1 FROM ({matched[0]}) matched "
        f"WHERE matched.{MATCHED} = {customer})"
    )
    return _execute(sql, (owner_id, *only.values(), *restrict_params, *matched[1]))


def sync_matched(
    *,
    table: type[Model],
    owner_column: str,
    owner_id: int,
    matched: tuple[str, tuple[Any, ...]],
    values: dict[str, Any],
    only: dict[str, Any] | None = None,
) -> tuple[int, int]:
    """Bring all of this owner's rows in line with the query: (how many joined, how many left).

    An owner with no rows yet gets a plain INSERT: an anti-join against a table the statistics
    call empty can be planned as a scan of the table per matched customer, quadratic in the
    rows being written. On PostgreSQL otherwise one statement evaluates the query once (a
    MATERIALIZED CTE) for both directions, its DELETE and INSERT as data-modifying CTEs; other
    databases run delete_unmatched and insert_matched, each evaluating the query.
    """
    only = only or {}
    owner_rows = table._default_manager.filter(**{owner_column: owner_id}, **only)
    if not owner_rows.exists():
        # Rows of another kind (a manual tag where a rule adds its own) still need skipping.
        others = bool(only) and table._default_manager.filter(**{owner_column: owner_id}).exists()
        joined = insert_matched(
            table=table,
            owner_column=owner_column,
            owner_id=owner_id,
            matched=matched,
            values=values,
            skip_existing=others,
        )
        return joined, 0
    common: dict[str, Any] = {
        "table": table,
        "owner_column": owner_column,
        "owner_id": owner_id,
        "matched": matched,
    }
    if connection.vendor != "postgresql":
        left = delete_unmatched(**common, only=only)
        return insert_matched(**common, values=values), left
    target = quote_table(table)
    owner = connection.ops.quote_name(owner_column)
    customer = connection.ops.quote_name("customer_id")
    only_sql = "".join(f" AND gone_row.{connection.ops.quote_name(name)} = %s" for name in only)
    extra_columns = "".join(f", {connection.ops.quote_name(name)}" for name in values)
    extra_values = "".join(", %s" for _ in values)
    sql = (
        f"WITH matched AS MATERIALIZED ({matched[0]}), "
        f"gone AS (DELETE FROM {target} gone_row WHERE gone_row.{owner} = %s{only_sql} "
        f"AND NOT EXISTS (SELECT 1 FROM matched WHERE matched.{MATCHED} = gone_row.{customer}) "
        f"RETURNING 1), "
        f"came AS (INSERT INTO {target} ({owner}, {customer}{extra_columns}) "
        f"SELECT %s, matched.{MATCHED}{extra_values} FROM matched "
        f"WHERE NOT EXISTS (SELECT 1 FROM {target} existing "
        f"WHERE existing.{owner} = %s AND existing.{customer} = matched.{MATCHED}) RETURNING 1) "
        f"SELECT (SELECT COUNT(*) FROM came), (SELECT COUNT(*) FROM gone)"
    )
    params = (*matched[1], owner_id, *only.values(), owner_id, *values.values(), owner_id)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        joined, left = cursor.fetchone()
    return int(joined), int(left)
