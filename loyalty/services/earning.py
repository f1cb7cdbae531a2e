"""Earning points from orders and behaviour events, releasing them, and taking them back.

Every function here is one batch of set-based SQL (see ledger.py) and idempotent: each entry has
a key derived from its source ("order:<pk>:earn", "event:<pk>:earn", "order:<pk>:release:<bucket>",
"order:<pk>:refund"), the SELECT skips sources whose key exists, and ON CONFLICT DO NOTHING is
the backstop. Rerunning a batch, or replaying an import, never earns, releases or refunds twice.
Earning looks its sources up by (kind, source_id) rather than by key: an entry of kind
"order_earn" (or "event_earn") for the source is the same fact, and every catch-up run compares
the whole history against the ledger, where a join on integers (the (kind, source_id) index)
does not build a text key for each of millions of orders (bench/loyalty.py: 0 to 10 % less time).

Batches take turns on the loyalty settings row (lock_loyalty_settings), so that two runs never
read the same day's earnings at once (the daily cap) and never lock memberships in two orders.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from customers.models import Event, Order, OrderStatus
from loyalty.models import (
    BatchKind,
    LoyaltySettings,
    Membership,
    PointsBatch,
    PointsBucket,
    PointsEntry,
    PointsKind,
    PointsRule,
)
from loyalty.services.ledger import (
    ENTRY_COLUMNS,
    BatchResult,
    add_days_sql,
    earliest_expiry,
    expiry_table_sql,
    finish_batch,
    is_postgresql,
    local_date_sql,
    local_year_sql,
    start_batch,
)
from loyalty.services.memberships import (
    db_datetime,
    lock_loyalty_settings,
    quote_table,
    resolve_now,
)

DAILY_CAP_REASON = "daily cap"


def _expiry_parts(
    now: dt.datetime, loyalty_settings: LoyaltySettings
) -> tuple[str, list[Any], str, list[Any], str]:
    """(WITH clause opening, its params, expires_at expression, its params, join to expiry).

    The candidates CTE that follows must have a "year" column (the local year of earning).
    """
    if not loyalty_settings.points_expire:
        return "WITH ", [], "NULL", [], ""
    cte, cte_params = expiry_table_sql(now, loyalty_settings)
    return (
        f"WITH {cte}, ",
        cte_params,
        "COALESCE(x.expires_at, %s)",
        [db_datetime(earliest_expiry(loyalty_settings))],  # type: ignore[arg-type]
        "LEFT JOIN expiry x ON x.year = c.year",
    )


def _award_orders(batch: PointsBatch, now: dt.datetime, loyalty_settings: LoyaltySettings) -> None:
    # Orders earn into the pending bucket: the points wait out the return window, and a refund
    # inside it cancels them before they were ever spendable. An order worth 0 points (under
    # 1 yuan) still gets its 0-point entry, so that it is decided once and never looked at again.
    # ORDER BY (here and for events): the sort reads every candidate before the first row is
    # written. Without it, a plan made for an empty ledger (a nested loop that scans the ledger
    # for every order) rescans the rows this statement has already written, for every order.
    with_sql, with_params, expires_sql, expires_params, expiry_join = _expiry_parts(
        now, loyalty_settings
    )
    day_sql, day_params = local_date_sql("o.placed_at")
    year_sql, year_params = local_year_sql("o.placed_at")
    available_sql, available_params = add_days_sql(
        "o.placed_at", loyalty_settings.return_window_days
    )
    # Amounts are exact decimals on PostgreSQL; SQLite keeps them as floats, where 0.29 * 100 is
    # 28.999...: rounding to 4 places first gives back the exact product (2 decimals at most)
    # before truncation, which is the floor for amounts that are never negative.
    points_sql = (
        "FLOOR(o.amount * r.points)"
        if is_postgresql()
        else "CAST(ROUND(o.amount * r.points, 4) AS INTEGER)"
    )
    entries = quote_table(PointsEntry)
    sql = (
        f"{with_sql}candidates AS ("
        f"SELECT o.id AS source_id, o.customer_id, o.placed_at, r.id AS rule_id, "
        f"{points_sql} AS points, {day_sql} AS day, {year_sql} AS year, "
        f"{available_sql} AS available_at "
        f"FROM {quote_table(Order)} o "
        f"JOIN {quote_table(Membership)} m ON m.customer_id = o.customer_id "
        f"JOIN {quote_table(PointsRule)} r ON r.event_name = %s AND r.is_active = %s "
        f"WHERE o.status = %s AND o.placed_at <= %s "
        f"AND (r.active_since IS NULL OR o.placed_at >= r.active_since) "
        f"AND NOT EXISTS (SELECT 1 FROM {entries} p "
        f"WHERE p.kind = %s AND p.source_id = o.id)) "
        f"INSERT INTO {entries} ({ENTRY_COLUMNS}) "
        f"SELECT c.customer_id, %s, %s, c.points, c.rule_id, c.source_id, "
        f"'order:' || c.source_id || ':earn', '', c.day, c.placed_at, c.available_at, "
        f"{expires_sql}, %s, NULL, %s "
        f"FROM candidates c {expiry_join} WHERE 1 = 1 ORDER BY c.source_id "
        f"ON CONFLICT (idempotency_key) DO NOTHING"
    )
    params = [
        *with_params,
        *day_params,
        *year_params,
        *available_params,
        PointsRule.ORDER,
        True,
        OrderStatus.PAID.value,
        db_datetime(now),
        PointsKind.ORDER_EARN.value,
        PointsKind.ORDER_EARN.value,
        PointsBucket.PENDING.value,
        *expires_params,
        batch.pk,
        db_datetime(timezone.now()),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _award_events(batch: PointsBatch, now: dt.datetime, loyalty_settings: LoyaltySettings) -> None:
    # Events earn into the available bucket at once. A rule's daily cap holds per customer and
    # local day: the points already written that day (earned_on) come first, then this run's
    # events in time order (a running SUM OVER the day), and the event that crosses the cap earns
    # the rest up to it. An event past the cap gets a 0-point entry rather than none: it is
    # decided once, for good, so that raising the cap later does not pay out old days, and the
    # ledger shows why it earned nothing.
    with_sql, with_params, expires_sql, expires_params, expiry_join = _expiry_parts(
        now, loyalty_settings
    )
    day_sql, day_params = local_date_sql("e.occurred_at")
    year_sql, year_params = local_year_sql("e.occurred_at")
    entries = quote_table(PointsEntry)
    sql = (
        f"{with_sql}candidates AS ("
        f"SELECT e.id AS source_id, e.customer_id, e.occurred_at, r.id AS rule_id, "
        f"r.points AS points, r.daily_cap AS daily_cap, {day_sql} AS day, {year_sql} AS year "
        f"FROM {quote_table(Event)} e "
        f"JOIN {quote_table(Membership)} m ON m.customer_id = e.customer_id "
        f"JOIN {quote_table(PointsRule)} r ON r.event_name = e.name "
        f"WHERE r.is_active = %s AND r.event_name <> %s AND e.occurred_at <= %s "
        f"AND (r.active_since IS NULL OR e.occurred_at >= r.active_since) "
        f"AND NOT EXISTS (SELECT 1 FROM {entries} p "
        f"WHERE p.kind = %s AND p.source_id = e.id)), "
        f"earlier AS ("
        f"SELECT p.customer_id, p.rule_id, p.earned_on, SUM(p.delta) AS points "
        f"FROM {entries} p WHERE p.kind = %s AND EXISTS (SELECT 1 FROM candidates c "
        f"WHERE c.daily_cap IS NOT NULL AND c.customer_id = p.customer_id "
        f"AND c.rule_id = p.rule_id AND c.day = p.earned_on) "
        f"GROUP BY p.customer_id, p.rule_id, p.earned_on), "
        f"ranked AS ("
        f"SELECT c.source_id, c.customer_id, c.occurred_at, c.rule_id, c.points, c.daily_cap, "
        f"c.day, c.year, COALESCE(a.points, 0) + SUM(c.points) OVER ("
        f"PARTITION BY c.customer_id, c.rule_id, c.day ORDER BY c.occurred_at, c.source_id "
        f"ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running "
        f"FROM candidates c LEFT JOIN earlier a ON a.customer_id = c.customer_id "
        f"AND a.rule_id = c.rule_id AND a.earned_on = c.day), "
        f"decided AS ("
        f"SELECT k.*, CASE "
        f"WHEN k.daily_cap IS NULL OR k.running <= k.daily_cap THEN k.points "
        f"WHEN k.running - k.points >= k.daily_cap THEN 0 "
        f"ELSE k.daily_cap - (k.running - k.points) END AS earned "
        f"FROM ranked k) "
        f"INSERT INTO {entries} ({ENTRY_COLUMNS}) "
        f"SELECT c.customer_id, %s, %s, c.earned, c.rule_id, c.source_id, "
        f"'event:' || c.source_id || ':earn', "
        f"CASE WHEN c.earned < c.points THEN %s ELSE '' END, c.day, c.occurred_at, NULL, "
        f"{expires_sql}, %s, NULL, %s "
        f"FROM decided c {expiry_join} WHERE 1 = 1 ORDER BY c.source_id "
        f"ON CONFLICT (idempotency_key) DO NOTHING"
    )
    params = [
        *with_params,
        *day_params,
        *year_params,
        True,
        PointsRule.ORDER,
        db_datetime(now),
        PointsKind.EVENT_EARN.value,
        PointsKind.EVENT_EARN.value,
        PointsKind.EVENT_EARN.value,
        PointsBucket.AVAILABLE.value,
        DAILY_CAP_REASON,
        *expires_params,
        batch.pk,
        db_datetime(timezone.now()),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@transaction.atomic
def award_points(*, now: dt.datetime | None = None) -> BatchResult:
    """Earn points for every paid order and rule event up to now that has not earned yet.

    Only members earn (run sync_memberships first); the rest are earned on a later run. Orders
    go to pending (available after the return window), events to available. Idempotent.
    """
    now = resolve_now(now)
    loyalty_settings = lock_loyalty_settings()
    batch = start_batch(BatchKind.AWARD, now)
    _award_orders(batch, now, loyalty_settings)
    _award_events(batch, now, loyalty_settings)
    return finish_batch(batch)


@transaction.atomic
def release_pending_points(*, now: dt.datetime | None = None) -> BatchResult:
    """Move the points of paid orders whose return window has ended from pending to available.

    Two entries per order (pending -x, available +x, both at available_at); an order that was
    refunded, or already released, is left alone. Idempotent.
    """
    now = resolve_now(now)
    lock_loyalty_settings()
    batch = start_batch(BatchKind.RELEASE, now)
    entries = quote_table(PointsEntry)
    pending, available = PointsBucket.PENDING.value, PointsBucket.AVAILABLE.value
    sql = (
        f"INSERT INTO {entries} ({ENTRY_COLUMNS}) "
        f"SELECT p.customer_id, %s, b.bucket, "
        f"CASE WHEN b.bucket = %s THEN -p.delta ELSE p.delta END, p.rule_id, p.source_id, "
        f"'order:' || p.source_id || ':release:' || b.bucket, '', p.earned_on, p.available_at, "
        f"CASE WHEN b.bucket = %s THEN p.available_at END, "
        f"CASE WHEN b.bucket = %s THEN p.expires_at END, %s, NULL, %s "
        f"FROM {entries} p "
        f"JOIN {quote_table(Order)} o ON o.id = p.source_id "
        f"CROSS JOIN (SELECT %s AS bucket UNION ALL SELECT %s) b "
        f"WHERE p.kind = %s AND p.bucket = %s AND p.delta > 0 AND p.available_at <= %s "
        f"AND o.status = %s "
        f"AND NOT EXISTS (SELECT 1 FROM {entries} r "
        f"WHERE r.idempotency_key = 'order:' || p.source_id || ':release:available') "
        f"AND NOT EXISTS (SELECT 1 FROM {entries} r "
        f"WHERE r.idempotency_key = 'order:' || p.source_id || ':refund') "
        f"ON CONFLICT (idempotency_key) DO NOTHING"
    )
    params = [
        PointsKind.ORDER_RELEASE.value,
        pending,
        available,
        available,
        batch.pk,
        db_datetime(timezone.now()),
        pending,
        available,
        PointsKind.ORDER_EARN.value,
        pending,
        db_datetime(now),
        OrderStatus.PAID.value,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    return finish_batch(batch, counted_bucket=available)


@transaction.atomic
def reverse_refunded_orders(*, now: dt.datetime | None = None) -> BatchResult:
    """Take back the points of refunded orders: one entry per order, dated now. Idempotent.

    Still pending (inside the return window): a pending -x cancels them. Already released: an
    available -x takes them back even if that leaves the balance below zero, because a refund is
    not a redemption: the customer has already spent points the order no longer pays for, and
    the debt is settled by the points they earn next.
    """
    now = resolve_now(now)
    lock_loyalty_settings()
    batch = start_batch(BatchKind.REFUND, now)
    entries = quote_table(PointsEntry)
    sql = (
        f"INSERT INTO {entries} ({ENTRY_COLUMNS}) "
        f"SELECT p.customer_id, %s, CASE WHEN released.id IS NULL THEN %s ELSE %s END, "
        f"-p.delta, p.rule_id, p.source_id, 'order:' || o.id || ':refund', '', p.earned_on, "
        f"%s, NULL, NULL, %s, NULL, %s "
        f"FROM {quote_table(Order)} o "
        f"JOIN {entries} p ON p.kind = %s AND p.source_id = o.id "
        f"LEFT JOIN {entries} released "
        f"ON released.idempotency_key = 'order:' || o.id || ':release:available' "
        f"WHERE o.status = %s AND p.delta > 0 "
        f"AND NOT EXISTS (SELECT 1 FROM {entries} r "
        f"WHERE r.idempotency_key = 'order:' || o.id || ':refund') "
        f"ON CONFLICT (idempotency_key) DO NOTHING"
    )
    params = [
        PointsKind.ORDER_REFUND.value,
        PointsBucket.PENDING.value,
        PointsBucket.AVAILABLE.value,
        db_datetime(now),
        batch.pk,
        db_datetime(timezone.now()),
        PointsKind.ORDER_EARN.value,
        OrderStatus.REFUNDED.value,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    return finish_batch(batch)
