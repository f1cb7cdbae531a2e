"""Expiring points, first in first out, set-based for every customer at once.

Points are used in the order they expire (the oldest first), so what has expired by now is:
    the available credits whose expires_at <= now
  - every available debit that is not an expiry (redemptions, deductions, refunds), whenever
    it happened: spending takes the oldest points first
  - what earlier runs already expired,
never below 0. That can never exceed the balance, so expiry never makes a balance negative.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from loyalty.models import BatchKind, Membership, PointsBucket, PointsEntry, PointsKind
from loyalty.services.ledger import (
    ENTRY_COLUMNS,
    BatchResult,
    finish_batch,
    is_postgresql,
    local_date_sql,
    start_batch,
)
from loyalty.services.memberships import (
    db_datetime,
    lock_loyalty_settings,
    quote_table,
    resolve_now,
)


def _due_sql(now: dt.datetime) -> tuple[str, list[Any]]:
    """CTEs ending in "due(customer_id, instant, amount, expired)": what to expire now.

    instant: the latest expiry that has passed, which dates the entry; expired: the total of
    earlier expiry entries. The scan reads every credit whose expiry has passed; with one
    expiry instant a year, that stays a small part of the ledger.
    """
    entries = quote_table(PointsEntry)
    sql = (
        f"credits AS (SELECT customer_id, MAX(expires_at) AS instant, SUM(delta) AS amount "
        f"FROM {entries} WHERE bucket = %s AND delta > 0 AND kind <> %s AND expires_at <= %s "
        f"GROUP BY customer_id), "
        f"debits AS (SELECT p.customer_id, "
        f"SUM(CASE WHEN p.kind = %s THEN 0 ELSE -p.delta END) AS used, "
        f"SUM(CASE WHEN p.kind = %s THEN -p.delta ELSE 0 END) AS expired "
        f"FROM {entries} p JOIN credits c ON c.customer_id = p.customer_id "
        f"WHERE p.bucket = %s AND p.delta < 0 GROUP BY p.customer_id), "
        f"due AS (SELECT c.customer_id, c.instant, "
        f"CAST(c.amount - COALESCE(d.used, 0) - COALESCE(d.expired, 0) AS BIGINT) AS amount, "
        f"CAST(COALESCE(d.expired, 0) AS BIGINT) AS expired "
        f"FROM credits c LEFT JOIN debits d ON d.customer_id = c.customer_id)"
    )
    expire = PointsKind.EXPIRE.value
    available = PointsBucket.AVAILABLE.value
    return sql, [available, expire, db_datetime(now), expire, expire, available]


@transaction.atomic
def expire_points(*, now: dt.datetime | None = None) -> BatchResult:
    """Write one EXPIRE entry per customer whose points have expired by now (FIFO). Idempotent.

    The entry is dated at the expiry instant. Its key names the customer, the instant's local
    date and the total expired so far ("expire:<customer>:<date>:<total>"): a rerun finds
    nothing left to expire, and points that arrive late with an expiry already past (an order
    released after its year ended, a replayed old event) expire on the next run rather than a
    year later. With points_expire off, nothing expires.
    """
    now = resolve_now(now)
    loyalty_settings = lock_loyalty_settings()
    batch = start_batch(BatchKind.EXPIRE, now)
    if not loyalty_settings.points_expire:
        return finish_batch(batch)
    due_sql, due_params = _due_sql(now)
    members = quote_table(Membership)
    entries = quote_table(PointsEntry)
    with connection.cursor() as cursor:
        if is_postgresql():
            # A redemption checks the balance under the membership row lock; take those locks
            # before reading the ledger so that none slips in between the sum and the entry
            # (each statement below then sees every redemption committed before it).
            cursor.execute(
                f"WITH {due_sql} SELECT COUNT(*) FROM (SELECT m.customer_id FROM {members} m "
                f"WHERE m.customer_id IN (SELECT customer_id FROM due WHERE amount > 0) "
                f"ORDER BY m.customer_id FOR UPDATE OF m) locked",
                due_params,
            )
        date_sql, date_params = local_date_sql("instant")
        cursor.execute(
            f"WITH {due_sql} INSERT INTO {entries} ({ENTRY_COLUMNS}) "
            f"SELECT customer_id, %s, %s, -amount, NULL, NULL, "
            f"'expire:' || customer_id || ':' || {date_sql} || ':' || (expired + amount), "
            f"'', NULL, instant, NULL, instant, %s, NULL, %s "
            f"FROM due WHERE amount > 0 "
            f"ON CONFLICT (idempotency_key) DO NOTHING",
            [
                *due_params,
                PointsKind.EXPIRE.value,
                PointsBucket.AVAILABLE.value,
                *date_params,
                batch.pk,
                db_datetime(timezone.now()),
            ],
        )
    return finish_batch(batch)
