"""Reads of loyalty data: tier distribution, a customer's membership and history, points."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Case, Count, IntegerField, Q, Sum, Value, When
from django.utils import timezone

from loyalty.models import (
    Membership,
    PointsBucket,
    PointsEntry,
    PointsKind,
    Tier,
    TierChange,
)

# Tiers

TIER_CHANGES_SHOWN = 20


@dataclass(frozen=True)
class TierCount:
    tier: Tier
    members: int


def list_tier_distribution() -> list[TierCount]:
    """Every tier by rank with its member count (0 for an empty tier), in one GROUP BY."""
    tiers = Tier.objects.annotate(members=Count("memberships")).order_by("rank")
    return [TierCount(tier=tier, members=tier.members) for tier in tiers]


def get_membership(customer_id: int) -> Membership | None:
    return Membership.objects.select_related("tier").filter(customer_id=customer_id).first()


def list_tier_changes(customer_id: int, limit: int = TIER_CHANGES_SHOWN) -> list[TierChange]:
    """A customer's tier history, newest first."""
    return list(
        TierChange.objects.select_related("from_tier", "to_tier")
        .filter(customer_id=customer_id)
        .order_by("-changed_at", "-id")[:limit]
    )


# Points

POINTS_ENTRIES_SHOWN = 50


def list_points_entries(customer_id: int, limit: int = POINTS_ENTRIES_SHOWN) -> list[PointsEntry]:
    """A customer's points ledger, newest first."""
    return list(
        PointsEntry.objects.select_related("rule", "created_by")
        .filter(customer_id=customer_id)
        .order_by("-effective_at", "-id")[:limit]
    )


@dataclass(frozen=True)
class MonthPoints:
    """One local month of the ledger. issued: points that became spendable by earning (events)
    or by an order's release after its return window; adjustments and pending points are not
    issued. usage_rate: redeemed / issued (a fraction, 4 places), None when nothing was issued.
    """

    month: dt.date
    issued: int
    redeemed: int
    expired: int
    usage_rate: Decimal | None


def _month_starts(months: int, now: dt.datetime) -> list[dt.date]:
    local_now = now.astimezone(timezone.get_default_timezone())
    index = local_now.year * 12 + local_now.month - 1
    return [
        dt.date(month_index // 12, month_index % 12 + 1, 1)
        for month_index in range(index - months + 1, index + 1)
    ]


def get_points_overview(*, months: int = 12, now: dt.datetime | None = None) -> list[MonthPoints]:
    """Points issued, redeemed and expired in each of the last `months` local months up to now,
    oldest first (months without entries included), from one GROUP BY over the ledger."""
    if months < 1:
        raise ValueError(f"months must be at least 1, not {months}")
    now = now or timezone.now()
    starts = _month_starts(months, now)
    zone = timezone.get_default_timezone()
    bounds = [dt.datetime(start.year, start.month, 1, tzinfo=zone) for start in starts]
    # The month of each entry by comparison with the months' first instants, not TruncMonth:
    # SQLite would call a Python function on every row for the time zone.
    month_index = Case(
        *(
            When(effective_at__lt=bound, then=Value(index - 1))
            for index, bound in enumerate(bounds[1:], start=1)
        ),
        default=Value(len(bounds) - 1),
        output_field=IntegerField(),
    )
    rows = (
        PointsEntry.objects.filter(effective_at__gte=bounds[0], effective_at__lte=now)
        .annotate(month_index=month_index)
        .values("month_index")
        .annotate(
            issued=Sum(
                "delta",
                filter=Q(
                    bucket=PointsBucket.AVAILABLE,
                    kind__in=[PointsKind.EVENT_EARN, PointsKind.ORDER_RELEASE],
                    delta__gt=0,
                ),
            ),
            redeemed=Sum("delta", filter=Q(kind=PointsKind.REDEEM)),
            expired=Sum("delta", filter=Q(kind=PointsKind.EXPIRE)),
        )
        .order_by("month_index")
    )
    by_month: dict[dt.date, dict[str, Any]] = {
        starts[row["month_index"]]: dict(row) for row in rows
    }
    overview = []
    for start in starts:
        row = by_month.get(start, {})
        issued = int(row.get("issued") or 0)
        redeemed = -int(row.get("redeemed") or 0)
        overview.append(
            MonthPoints(
                month=start,
                issued=issued,
                redeemed=redeemed,
                expired=-int(row.get("expired") or 0),
                usage_rate=(
                    (Decimal(redeemed) / Decimal(issued)).quantize(Decimal("0.0001"))
                    if issued
                    else None
                ),
            )
        )
    return overview


@dataclass(frozen=True)
class LedgerMismatch:
    """A customer whose stored points differ from the ledger's sums (stored None: no member)."""

    customer_id: int
    stored_balance: int | None
    stored_pending: int | None
    ledger_balance: int
    ledger_pending: int


@dataclass(frozen=True)
class LedgerCheck:
    members_checked: int
    mismatches: list[LedgerMismatch]

    @property
    def is_consistent(self) -> bool:
        return not self.mismatches


def check_points_ledger() -> LedgerCheck:
    """Compare every membership's points with the ledger's sums (one GROUP BY over the ledger).

    Also reports ledger entries that add up to something for a customer without a membership.
    """
    entries = connection.ops.quote_name(PointsEntry._meta.db_table)
    members = connection.ops.quote_name(Membership._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH ledger AS (SELECT customer_id, "
            f"SUM(CASE WHEN bucket = %s THEN delta ELSE 0 END) AS balance, "
            f"SUM(CASE WHEN bucket = %s THEN delta ELSE 0 END) AS pending "
            f"FROM {entries} GROUP BY customer_id) "
            f"SELECT m.customer_id, m.points_balance, m.pending_points, "
            f"COALESCE(l.balance, 0), COALESCE(l.pending, 0) "
            f"FROM {members} m LEFT JOIN ledger l ON l.customer_id = m.customer_id "
            f"WHERE m.points_balance <> COALESCE(l.balance, 0) "
            f"OR m.pending_points <> COALESCE(l.pending, 0) "
            f"UNION ALL "
            f"SELECT l.customer_id, NULL, NULL, l.balance, l.pending FROM ledger l "
            f"WHERE (l.balance <> 0 OR l.pending <> 0) AND NOT EXISTS "
            f"(SELECT 1 FROM {members} m WHERE m.customer_id = l.customer_id) "
            f"ORDER BY 1",
            [PointsBucket.AVAILABLE.value, PointsBucket.PENDING.value],
        )
        mismatches = [
            LedgerMismatch(
                customer_id=int(customer_id),
                stored_balance=None if balance is None else int(balance),
                stored_pending=None if pending is None else int(pending),
                ledger_balance=int(ledger_balance),
                ledger_pending=int(ledger_pending),
            )
            for customer_id, balance, pending, ledger_balance, ledger_pending in cursor.fetchall()
        ]
    return LedgerCheck(members_checked=Membership.objects.count(), mismatches=mismatches)


# The field's rule of thumb for points programmes: about a third of the points issued should be
# used; far below that, members do not value the points (or cannot use them).
POINTS_USAGE_TARGET = Decimal("0.30")


@dataclass(frozen=True)
class PointsTotals:
    issued: int
    redeemed: int
    expired: int
    usage_rate: Decimal | None  # redeemed / issued over all the months, 4 places

    def is_below(self, target: Decimal = POINTS_USAGE_TARGET) -> bool:
        return self.usage_rate is not None and self.usage_rate < target


def sum_points_months(months: list[MonthPoints]) -> PointsTotals:
    """The totals of get_points_overview's months, with the overall usage rate."""
    issued = sum(month.issued for month in months)
    redeemed = sum(month.redeemed for month in months)
    return PointsTotals(
        issued=issued,
        redeemed=redeemed,
        expired=sum(month.expired for month in months),
        usage_rate=(
            (Decimal(redeemed) / Decimal(issued)).quantize(Decimal("0.0001")) if issued else None
        ),
    )
