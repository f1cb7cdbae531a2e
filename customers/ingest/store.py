"""Set-based bulk writes of parsed rows, one chunk at a time, on SQLite and PostgreSQL.

A writer opens TEMP tables on the current connection for one import (or one API batch) and
drops them when it closes:
- ingest_stage holds one chunk (PostgreSQL: loaded with COPY; SQLite: one executemany);
- ingest_seen keeps each external id's first row number, so that an id repeated later in the same
  file is reported ("first wins") without keeping the file's ids in Python memory;
- ingest_new_customers (orders with create_missing_customers) names the customers this import
  created, so that a later chunk with an earlier order moves their registered_at back.
Orders and events then go in with one INSERT ... SELECT ... ON CONFLICT DO NOTHING joined to the
customers table; customers are compared and written with one SELECT, one bulk INSERT and one bulk
UPDATE per chunk. Every write returns the ids of the customers it touched, for follow-up work
(metrics, segment refresh) that later callers may enqueue.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from django.db import connection
from django.db.models import Field, Model
from django.utils import timezone

from customers.ingest.rows import CustomerRow, EventRow, OrderRow
from customers.models import Customer, CustomerTag, Event, Order, Tag, TagSource

STAGE = "ingest_stage"
SEEN = "ingest_seen"
NEW_CUSTOMERS = "ingest_new_customers"


@dataclass(frozen=True, slots=True)
class Problem:
    row: int
    field: str | None
    reason: str


@dataclass
class ChunkResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    # (row, first row) for each row whose id came earlier in the same file or batch.
    repeated: list[tuple[int, int]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    customer_ids: set[int] = field(default_factory=set)


def _is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _adapt_for_sqlite(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return connection.ops.adapt_datetimefield_value(value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dt.date | bool | int | str) or value is None:
        return value
    return str(value)  # Decimal


class _Staging:
    """The TEMP tables of one import on the current connection."""

    def __init__(self, columns: Sequence[tuple[str, str]], *, with_new_customers: bool) -> None:
        # columns: (name, PostgreSQL type) after row_no and ext_id; SQLite tables stay untyped.
        self.columns = ("row_no", "ext_id", *(name for name, _type in columns))
        self.pg_types = ("bigint", "varchar(64)", *(pg_type for _name, pg_type in columns))
        self.with_new_customers = with_new_customers

    def create(self) -> None:
        is_pg = _is_postgresql()
        definition = ", ".join(
            f"{name} {pg_type}" if is_pg else name
            for name, pg_type in zip(self.columns, self.pg_types, strict=True)
        )
        self.drop()
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TEMP TABLE {STAGE} ({definition})")
            cursor.execute(
                f"CREATE TEMP TABLE {SEEN} (ext_id varchar(64) PRIMARY KEY, row_no bigint NOT NULL)"
            )
            if self.with_new_customers:
                cursor.execute(
                    f"CREATE TEMP TABLE {NEW_CUSTOMERS} (ext_id varchar(64) PRIMARY KEY)"
                )

    def drop(self) -> None:
        with connection.cursor() as cursor:
            for table in (STAGE, SEEN, NEW_CUSTOMERS):
                cursor.execute(f"DROP TABLE IF EXISTS {table}")

    def load(self, rows: Iterable[tuple[Any, ...]]) -> list[tuple[int, int]]:
        """Fill the stage with one chunk; returns the (row, first row) of repeated ids."""
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {STAGE}" if not _is_postgresql() else f"TRUNCATE {STAGE}")
            names = ", ".join(self.columns)
            staged = 0
            if _is_postgresql():
                with cursor.cursor.copy(f"COPY {STAGE} ({names}) FROM STDIN") as copy:
                    write_row = copy.write_row
                    for row in rows:
                        write_row(row)
                        staged += 1
            else:
                placeholders = ", ".join(["%s"] * len(self.columns))
                values = [[_adapt_for_sqlite(value) for value in row] for row in rows]
                staged = len(values)
                cursor.executemany(f"INSERT INTO {STAGE} ({names}) VALUES ({placeholders})", values)
            # ORDER BY row_no: the first row of a repeated id wins.
            cursor.execute(
                f"INSERT INTO {SEEN} (ext_id, row_no) SELECT ext_id, row_no FROM {STAGE} "
                f"WHERE true ORDER BY row_no ON CONFLICT (ext_id) DO NOTHING"
            )
            if cursor.rowcount == staged:
                # Every staged id was new and distinct: nothing repeated, and the join below (a
                # tenth of a big import's database time) is not needed.
                return []
            cursor.execute(
                f"SELECT s.row_no, f.row_no FROM {STAGE} s JOIN {SEEN} f ON f.ext_id = s.ext_id "
                f"WHERE f.row_no <> s.row_no ORDER BY s.row_no"
            )
            repeated = [(int(row), int(first)) for row, first in cursor.fetchall()]
            if repeated:
                cursor.execute(
                    f"DELETE FROM {STAGE} WHERE row_no IN ({', '.join(['%s'] * len(repeated))})",
                    [row for row, _first in repeated],
                )
        return repeated


def _model_defaults(model: type[Model], skip: set[str]) -> tuple[list[str], list[Any]]:
    """Columns and database values for a raw INSERT of a new row with the fields' defaults."""
    instance = model()
    columns, values = [], []
    for model_field in model._meta.concrete_fields:
        if model_field.primary_key or model_field.attname in skip:
            continue
        value = model_field.pre_save(instance, add=True)  # type: ignore[arg-type]
        columns.append(_quote(str(model_field.column)))
        values.append(model_field.get_db_prep_save(value, connection))
    return columns, values


class _FactWriter:
    """Insert-if-absent of orders or events, keyed on their external id."""

    model: type[Model]
    id_column: str
    time_column: str
    # Stage columns after row_no and ext_id: (name, PostgreSQL type); the first is customer_ext.
    stage_columns: Sequence[tuple[str, str]]

    def __init__(self, *, create_missing_customers: bool = False) -> None:
        self.create_missing_customers = create_missing_customers
        self.staging = _Staging(self.stage_columns, with_new_customers=create_missing_customers)
        self.customers_created = 0

    def __enter__(self) -> _FactWriter:
        self.staging.create()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.staging.drop()

    def stage_row(self, row_no: int, row: Any) -> tuple[Any, ...]:
        raise NotImplementedError

    def write(self, rows: Sequence[tuple[int, Any]], *, is_dry_run: bool = False) -> ChunkResult:
        """Stage the chunk, report repeats and unknown customers, insert the rest if absent.

        is_dry_run checks everything but leaves the target table alone (strict mode after the
        first bad row: the rest of the file is still checked so that every bad row is reported).
        """
        result = ChunkResult()
        result.repeated = self.staging.load(self.stage_row(row_no, row) for row_no, row in rows)
        staged = len(rows) - len(result.repeated)
        customer_table = _quote(Customer._meta.db_table)
        with connection.cursor() as cursor:
            if self.create_missing_customers:
                self._create_missing_customers(cursor, customer_table)
            if not is_dry_run and staged:
                target = [_quote(self.id_column), "customer_id"]
                target += [_quote(name) for name, _type in self.stage_columns[1:]]
                source = ["s.ext_id", "c.id"]
                source += [f"s.{name}" for name, _type in self.stage_columns[1:]]
                cursor.execute(
                    f"INSERT INTO {_quote(self.model._meta.db_table)} "
                    f"({', '.join(target)}, {_quote('created_at')}) "
                    f"SELECT {', '.join(source)}, %s FROM {STAGE} s "
                    f"JOIN {customer_table} c ON c.external_id = s.customer_ext "
                    f"WHERE true ON CONFLICT ({_quote(self.id_column)}) DO NOTHING "
                    f"RETURNING customer_id",
                    [
                        Order._meta.get_field("created_at").get_db_prep_save(
                            timezone.now(), connection
                        )
                    ],
                )
                result.customer_ids = {customer_id for (customer_id,) in cursor.fetchall()}
                result.inserted = cursor.rowcount if cursor.rowcount >= 0 else 0
                if result.inserted < staged:
                    changed = self._update_existing(cursor)
                    result.updated = len(changed)
                    result.customer_ids |= changed
            # Unknown customers are looked for only when some staged row was not inserted (its
            # customer is unknown, or its id was imported before): a first import of a big file
            # inserts every row and skips this join, a tenth of its database time.
            if result.inserted < staged:
                cursor.execute(
                    f"SELECT s.row_no, s.customer_ext FROM {STAGE} s "
                    f"LEFT JOIN {customer_table} c ON c.external_id = s.customer_ext "
                    f"WHERE c.id IS NULL ORDER BY s.row_no"
                )
                result.problems = [
                    Problem(int(row_no), "customer_id", f"unknown customer {customer_ext!r}")
                    for row_no, customer_ext in cursor.fetchall()
                ]
        if not is_dry_run:
            result.unchanged = staged - len(result.problems) - result.inserted - result.updated
        return result

    def _update_existing(self, cursor: Any) -> set[int]:
        """Apply what may change in a stored row; returns the customers whose rows changed."""
        return set()

    def _create_missing_customers(self, cursor: Any, customer_table: str) -> None:
        """New customers for unknown customer ids; registered_at = their earliest row's time."""
        if self.customers_created:
            # One grouped pass over the stage (UPDATE ... FROM: PostgreSQL, SQLite 3.33+). A
            # correlated MIN per customer rescans the stage for each one: quadratic, 7 minutes
            # for 300,000 orders of 60,000 customers.
            cursor.execute(
                f"UPDATE {customer_table} SET registered_at = f.first_at FROM ("
                f"SELECT s.customer_ext, MIN(s.{self.time_column}) AS first_at FROM {STAGE} s "
                f"JOIN {NEW_CUSTOMERS} n ON n.ext_id = s.customer_ext GROUP BY s.customer_ext"
                f") f WHERE {customer_table}.external_id = f.customer_ext "
                f"AND {customer_table}.registered_at > f.first_at"
            )
        cursor.execute(
            f"INSERT INTO {NEW_CUSTOMERS} (ext_id) SELECT DISTINCT s.customer_ext FROM {STAGE} s "
            f"LEFT JOIN {customer_table} c ON c.external_id = s.customer_ext "
            f"WHERE c.id IS NULL ON CONFLICT (ext_id) DO NOTHING"
        )
        if cursor.rowcount == 0:
            return
        columns, values = _model_defaults(Customer, {"external_id", "registered_at"})
        cursor.execute(
            f"INSERT INTO {customer_table} (external_id, registered_at, {', '.join(columns)}) "
            f"SELECT s.customer_ext, MIN(s.{self.time_column}), "
            f"{', '.join(['%s'] * len(values))} FROM {STAGE} s "
            f"WHERE s.customer_ext IN (SELECT ext_id FROM {NEW_CUSTOMERS}) "
            f"AND NOT EXISTS (SELECT 1 FROM {customer_table} c "
            f"WHERE c.external_id = s.customer_ext) "
            f"GROUP BY s.customer_ext ON CONFLICT (external_id) DO NOTHING",
            values,
        )
        self.customers_created += max(cursor.rowcount, 0)


class OrderWriter(_FactWriter):
    model = Order
    id_column = "external_id"
    time_column = "placed_at"
    stage_columns = (
        ("customer_ext", "varchar(64)"),
        ("placed_at", "timestamptz"),
        ("amount", "numeric(12, 2)"),
        ("status", "varchar(10)"),
        ("channel", "varchar(20)"),
        ("category", "varchar(32)"),
    )

    def stage_row(self, row_no: int, row: OrderRow) -> tuple[Any, ...]:
        return (row_no, *row)

    def _update_existing(self, cursor: Any) -> set[int]:
        # An order is a fact: only its status moves on (paid -> refunded, which takes its points
        # back). Amount, time and customer of a stored order are never rewritten by a re-import.
        # A row naming another (or an unknown) customer is reported and changes nothing.
        table = _quote(Order._meta.db_table)
        customers = _quote(Customer._meta.db_table)
        cursor.execute(
            f"UPDATE {table} SET status = s.status FROM {STAGE} s "
            f"JOIN {customers} c ON c.external_id = s.customer_ext "
            f"WHERE {table}.external_id = s.ext_id AND {table}.customer_id = c.id "
            f"AND {table}.status <> s.status "
            f"RETURNING {table}.customer_id"
        )
        return {customer_id for (customer_id,) in cursor.fetchall()}


class EventWriter(_FactWriter):
    model = Event
    id_column = "event_id"
    time_column = "occurred_at"
    stage_columns = (
        ("customer_ext", "varchar(64)"),
        ("name", "varchar(64)"),
        ("occurred_at", "timestamptz"),
        ("properties", "jsonb"),
    )

    def stage_row(self, row_no: int, row: EventRow) -> tuple[Any, ...]:
        return (row_no, *row[:4], json.dumps(row.properties, ensure_ascii=False))


# Customers: a re-import updates changed fields. The columns in the file are authoritative (a blank
# cell clears the field to its empty value), columns the file lacks are left alone, and consent
# (the opt-in flags and unsubscribed_at) changes only when a cell says so: a blank never grants or
# withdraws consent. The tags column sets the customer's import-made tags (manual and rule tags
# are never touched).
CONSENT_FIELDS = ("sms_opt_in", "email_opt_in", "push_opt_in", "wechat_opt_in", "unsubscribed_at")
# Customers per UPDATE of a re-import: 13 parameters each stays under SQLite's 32,766.
UPDATE_BATCH = 1000
PROFILE_FIELDS = (
    "name",
    "phone",
    "email",
    "wechat_openid",
    "city",
    "gender",
    "birth_date",
    "channel",
    "registered_at",
)


class CustomerWriter:
    """Create or update customers keyed on external_id, and their import-made tags."""

    def __init__(self, *, columns: Iterable[str]) -> None:
        present = set(columns)
        self.fields = [name for name in (*PROFILE_FIELDS, *CONSENT_FIELDS) if name in present]
        self.has_tags = "tags" in present
        self.staging = _Staging((), with_new_customers=False)

    def __enter__(self) -> CustomerWriter:
        self.staging.create()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.staging.drop()

    def write(
        self, rows: Sequence[tuple[int, CustomerRow]], *, is_dry_run: bool = False
    ) -> ChunkResult:
        result = ChunkResult()
        result.repeated = self.staging.load((row_no, row.external_id) for row_no, row in rows)
        repeated_rows = {row_no for row_no, _first in result.repeated}
        rows = [(row_no, row) for row_no, row in rows if row_no not in repeated_rows]
        existing = {
            customer.external_id: customer
            for customer in Customer.objects.filter(
                external_id__in=[row.external_id for _n, row in rows]
            )
        }
        now = timezone.now()
        to_create: list[Customer] = []
        to_update: list[Customer] = []
        for _row_no, row in rows:
            customer = existing.get(row.external_id)
            if customer is None:
                customer = Customer(external_id=row.external_id, created_at=now, updated_at=now)
                self._apply(customer, row)
                to_create.append(customer)
            elif self._apply(customer, row):
                customer.updated_at = now
                to_update.append(customer)
        if is_dry_run:
            return result
        Customer.objects.bulk_create(to_create)
        if to_update:
            _update_customers(to_update, [*self.fields, "updated_at"])
        result.inserted = len(to_create)
        updated_ids = {customer.pk for customer in to_update}
        if self.has_tags:
            by_external_id = {customer.external_id: customer for customer in to_create}
            by_external_id.update(existing)
            tags_changed = self._write_tags(
                [(by_external_id[row.external_id].pk, row.tags) for _row_no, row in rows],
                existing_ids={customer.pk for customer in existing.values()},
            )
            updated_ids |= tags_changed - {customer.pk for customer in to_create}
        result.updated = len(updated_ids)
        result.unchanged = len(rows) - result.inserted - result.updated
        result.customer_ids = {customer.pk for customer in to_create} | updated_ids
        return result

    def _apply(self, customer: Customer, row: CustomerRow) -> bool:
        """Set the file's values on the customer; True when anything changed."""
        changed = False
        for name in self.fields:
            value = getattr(row, name)
            if value is None and name in CONSENT_FIELDS:
                continue
            if getattr(customer, name) != value:
                setattr(customer, name, value)
                changed = True
        return changed

    def _write_tags(
        self, wanted: list[tuple[int, tuple[str, ...]]], *, existing_ids: set[int]
    ) -> set[int]:
        """Make each customer's import-made tags the listed ones; returns the customers changed."""
        names = {name for _customer_id, tags in wanted for name in tags}
        if names:
            Tag.objects.bulk_create([Tag(name=name) for name in names], ignore_conflicts=True)
        tag_ids = dict(Tag.objects.filter(name__in=names).values_list("name", "id"))
        current: dict[int, dict[int, tuple[int, str]]] = {}
        if existing_ids:
            for link_id, customer_id, tag_id, source in CustomerTag.objects.filter(
                customer_id__in=existing_ids
            ).values_list("id", "customer_id", "tag_id", "source"):
                current.setdefault(customer_id, {})[tag_id] = (link_id, source)
        to_add: list[CustomerTag] = []
        to_remove: list[int] = []
        changed: set[int] = set()
        for customer_id, tags in wanted:
            links = current.get(customer_id, {})
            wanted_ids = {tag_ids[name] for name in tags}
            for tag_id in wanted_ids - links.keys():
                to_add.append(
                    CustomerTag(customer_id=customer_id, tag_id=tag_id, source=TagSource.IMPORT)
                )
                changed.add(customer_id)
            for tag_id, (link_id, source) in links.items():
                if source == TagSource.IMPORT and tag_id not in wanted_ids:
                    to_remove.append(link_id)
                    changed.add(customer_id)
        if to_add:
            CustomerTag.objects.bulk_create(to_add, ignore_conflicts=True)
        if to_remove:
            CustomerTag.objects.filter(id__in=to_remove).delete()
        return changed


def _update_customers(customers: Sequence[Customer], names: Sequence[str]) -> None:
    """Write these columns of these customers: UPDATE ... FROM (VALUES ...), a batch at a time.

    Not bulk_update: its CASE WHEN id = ... per column is built in Python expression by
    expression and evaluated per row, quadratic in the batch (a 10,000-row chunk took 30 s).
    On PostgreSQL the values are cast to the column types (a VALUES list types its parameters as
    text); SQLite converts on assignment by the column's affinity.
    """
    fields: list[Field[Any, Any]] = []
    for name in names:
        model_field = Customer._meta.get_field(name)
        assert isinstance(model_field, Field)  # a column of the customer, not a relation
        fields.append(model_field)
    quote = connection.ops.quote_name
    table = quote(Customer._meta.db_table)
    is_postgresql = _is_postgresql()
    assignments = ", ".join(
        f"{quote(str(f.column))} = CAST(v.{quote(str(f.column))} AS {f.db_type(connection)})"
        if is_postgresql
        else f"{quote(str(f.column))} = v.{quote(str(f.column))}"
        for f in fields
    )
    columns = ", ".join(quote(column) for column in ["id", *(str(f.column) for f in fields)])
    row_sql = f"({', '.join(['%s'] * (len(fields) + 1))})"
    with connection.cursor() as cursor:
        for start in range(0, len(customers), UPDATE_BATCH):
            batch = customers[start : start + UPDATE_BATCH]
            params: list[Any] = []
            for customer in batch:
                params.append(customer.pk)
                params.extend(
                    f.get_db_prep_save(getattr(customer, f.attname), connection) for f in fields
                )
            # A CTE names the VALUES columns on both backends (SQLite has no "AS v(a, b)").
            cursor.execute(
                f"WITH v({columns}) AS (VALUES {', '.join([row_sql] * len(batch))}) "
                f"UPDATE {table} SET {assignments} FROM v "
                f"WHERE {table}.{quote('id')} = v.{quote('id')}",
                params,
            )


def writer_for(
    kind: str, *, columns: Iterable[str] = (), create_missing_customers: bool = False
) -> OrderWriter | EventWriter | CustomerWriter:
    if kind == "orders":
        return OrderWriter(create_missing_customers=create_missing_customers)
    if kind == "events":
        return EventWriter()
    if kind == "customers":
        return CustomerWriter(columns=columns)
    raise ValueError(f"unknown kind {kind!r}")
