"""The parts of the points ledger that earning, redemption and expiry share.

The ledger (PointsEntry) is append-only: our code inserts entries and never updates or deletes
one. Membership.points_balance is the sum of a customer's "available" entries and
Membership.pending_points the sum of the "pending" ones; every function that writes entries
moves those two columns by the same amounts in the same transaction.

Batches (earning, release, refunds, expiry) are set-based SQL that runs on SQLite and
PostgreSQL: one INSERT ... SELECT ... ON CONFLICT (idempotency_key) DO NOTHING writes the entries
of a whole run tagged with a PointsBatch, then one UPDATE ... FROM adds that batch's sums per
customer to the memberships. Only the rows the INSERT really wrote carry the batch id, so a run
that races another one, or runs twice, moves no balance twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from loyalty.models import (
    BatchKind,
    LoyaltySettings,
    Membership,
    PointsBatch,
    PointsBucket,
    PointsEntry,
)
from loyalty.services.memberships import db_datetime, quote_table

# Data older than this cannot come in through the importer (customers.ingest.rows.EARLIEST_YEAR);
# anything earlier still gets the first year's expiry instead of none.
FIRST_EARNING_YEAR = 1900
# Columns of an INSERT of ledger entries, in the order every batch's SELECT produces them.
ENTRY_COLUMNS = (
    "customer_id, kind, bucket, delta, rule_id, source_id, idempotency_key, reason, earned_on, "
    "effective_at, available_at, expires_at, batch_id, created_by_id, created_at"
)


class Actor(Protocol):
    pk: Any

    def has_perm(self, perm: str, obj: Any = None) -> bool: ...


class InsufficientPoints(ValidationError):
    """A redemption or deduction larger than the customer's available balance."""

    def __init__(self, *, balance: int, requested: int) -> None:
        super().__init__(
            _("Not enough points: the balance is %(balance)d and %(requested)d were requested."),
            code="insufficient_points",
            params={"balance": balance, "requested": requested},
        )
        self.balance = balance
        self.requested = requested


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one batch wrote. points_total: the change to balances and pending points together,
    except for a release: the points that became available (its pending side is the opposite)."""

    batch_id: int
    kind: str
    as_of: dt.datetime
    entries_count: int
    points_total: int


def local_zone() -> dt.tzinfo:
    """settings.TIME_ZONE, which decides what a day and a year are."""
    return timezone.get_default_timezone()


def current_settings() -> LoyaltySettings:
    """The settings row, or the defaults if it is missing (reads only; nothing is locked)."""
    return LoyaltySettings.objects.filter(pk=1).first() or LoyaltySettings(pk=1)


def expiry_instant(local_year: int, loyalty_settings: LoyaltySettings) -> dt.datetime | None:
    """When points earned in local_year expire: the first instant after the last day of the year
    expiry_years_after years later (stored as the next year's first instant, compared with <=).
    None when points do not expire."""
    if not loyalty_settings.points_expire:
        return None
    return dt.datetime(
        local_year + loyalty_settings.expiry_years_after + 1, 1, 1, tzinfo=local_zone()
    )


def points_to_yuan(points: int, loyalty_settings: LoyaltySettings) -> Decimal:
    # Rounded down to the fen: a redemption never pays out more than the points are worth.
    return (Decimal(points) / Decimal(loyalty_settings.points_per_yuan)).quantize(
        Decimal("0.01"), rounding=ROUND_DOWN
    )


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def local_date_sql(column: str) -> tuple[str, list[Any]]:
    """SQL for the local (TIME_ZONE) date of a datetime column, and its parameters."""
    sql, params = connection.ops.datetime_cast_date_sql(column, (), settings.TIME_ZONE)
    return sql, list(params)


def local_year_sql(column: str) -> tuple[str, list[Any]]:
    sql, params = connection.ops.datetime_extract_sql("year", column, (), settings.TIME_ZONE)
    return sql, list(params)


def add_days_sql(column: str, days: int) -> tuple[str, list[Any]]:
    """SQL for a datetime column plus a whole number of days."""
    if is_postgresql():
        return f"({column} + %s * INTERVAL '1 day')", [days]
    # Django's own SQLite function for datetime arithmetic; it keeps Django's text format.
    return f"django_format_dtdelta('+', {column}, %s)", [days * 86_400 * 1_000_000]


def expiry_table_sql(now: dt.datetime, loyalty_settings: LoyaltySettings) -> tuple[str, list[Any]]:
    """A CTE "expiry(year, expires_at)": the expiry instant of points earned in each local year.

    A table of instants rather than arithmetic in SQL, because SQLite has no time zones: the
    instants are made here, in Python, with the zone's real rules for every year.
    """
    last_year = now.astimezone(local_zone()).year
    rows: list[str] = []
    params: list[Any] = []
    for year in range(FIRST_EARNING_YEAR, last_year + 1):
        instant = expiry_instant(year, loyalty_settings)
        assert instant is not None
        rows.append("(%s, %s)")
        params += [year, db_datetime(instant)]
    return f"expiry(year, expires_at) AS (VALUES {', '.join(rows)})", params


def earliest_expiry(loyalty_settings: LoyaltySettings) -> dt.datetime | None:
    """The expiry that stands in for years before FIRST_EARNING_YEAR (they are long gone)."""
    return expiry_instant(FIRST_EARNING_YEAR, loyalty_settings)


def start_batch(kind: BatchKind, now: dt.datetime) -> PointsBatch:
    return PointsBatch.objects.create(kind=kind, as_of=now)


def finish_batch(batch: PointsBatch, *, counted_bucket: str | None = None) -> BatchResult:
    """Add the batch's entries to the memberships and record its totals on the batch row.

    counted_bucket: only that bucket's entries count in points_total (a release moves points
    from pending to available and would otherwise always total 0).
    """
    entries = quote_table(PointsEntry)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote_table(Membership)} SET "
            f"points_balance = points_balance + agg.available, "
            f"pending_points = pending_points + agg.pending "
            f"FROM (SELECT customer_id, "
            f"SUM(CASE WHEN bucket = %s THEN delta ELSE 0 END) AS available, "
            f"SUM(CASE WHEN bucket = %s THEN delta ELSE 0 END) AS pending "
            f"FROM {entries} WHERE batch_id = %s GROUP BY customer_id) AS agg "
            f"WHERE {quote_table(Membership)}.customer_id = agg.customer_id",
            [PointsBucket.AVAILABLE.value, PointsBucket.PENDING.value, batch.pk],
        )
        counted, counted_params = (
            ("bucket = %s", [counted_bucket]) if counted_bucket else ("1 = 1", [])
        )
        cursor.execute(
            f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN {counted} THEN delta ELSE 0 END), 0) "
            f"FROM {entries} WHERE batch_id = %s",
            [*counted_params, batch.pk],
        )
        count, total = cursor.fetchone()
    batch.entries_count = int(count)
    batch.points_total = int(total)
    batch.save(update_fields=["entries_count", "points_total"])
    return BatchResult(
        batch_id=batch.pk,
        kind=batch.kind,
        as_of=batch.as_of,
        entries_count=batch.entries_count,
        points_total=batch.points_total,
    )
