"""Customer metrics (CustomerMetrics rows), recomputed set-based in SQL for every customer at once.

Definitions, all relative to an explicit aware `as_of` (default now):

- Only PAID orders count, and only those placed at or before as_of.
- orders_count, spend_total, first_order_at, last_order_at: over all those orders.
- orders_Nd / spend_Nd (N = 30, 90, 180, 365): orders with as_of - N days < placed_at <= as_of.
- days_since_last_order: the local (settings.TIME_ZONE) date of as_of minus the local date of
  the last order, in whole days; null without orders.
- avg_order_value: spend_total / orders_count to 2 places, half up; null without orders.
- last_active_at: the later of the last order and the last "app_open" / "view_product" event at
  or before as_of; "days inactive" is measured on local dates like days_since_last_order.
- rfm_r, rfm_f, rfm_m: 1-5 among customers with at least one order (null for the rest); 5 is best
  (fewest days since the last order, most orders, most spend). score = 1 + floor(5 * (rank - 1)
  / n), rank = RANK() with the worst first, n = customers with orders. Ties share a score (the
  lowest their values reach), unlike NTILE, which splits ties arbitrarily. Incremental
  recomputes (after an import) score the touched customers against the breakpoints of the
  last full one (see _store_breakpoints), the recency ones in days as counted then: the nightly
  full recompute puts everyone back on one footing.
- value_tier, with the editable thresholds of MetricsSettings (defaults in brackets); "within 30
  days" means days_since_last_order <= 30, spend is spend_total; the first that holds wins:
  high: within [30] days, [3]+ orders, spend >= [500];
  potential: within [30] days, [1]-[2] orders, [200] <= spend < [500];
  low: last order [90]+ days ago, at most [1] order, spend < [200];
  otherwise (and always without orders) unclassified.
- lifecycle_stage, the first that holds: new when as_of - 7 days < registered_at; prospect when
  never active; active when inactive for <= 30 days; silent for 31-90; lapsed past 90.
- silent_level, for silent customers only ("" otherwise): light 31-45, medium 46-60, heavy 61-90.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from customers.models import (
    Customer,
    CustomerMetrics,
    Event,
    LifecycleStage,
    MetricsSettings,
    Order,
    OrderStatus,
    SilentLevel,
    ValueTier,
)

WINDOW_DAYS = (30, 90, 180, 365)
ACTIVITY_EVENTS = ("app_open", "view_product")
NEW_DAYS = 7  # registered after as_of - 7 days
ACTIVE_MAX_DAYS = 30
SILENT_MAX_DAYS = 90  # past it: lapsed
LIGHT_SILENT_MAX_DAYS = 45
MEDIUM_SILENT_MAX_DAYS = 60
RFM_SCORES = 5
# For this transaction only (set_config(..., true) is SET LOCAL). With the default 4MB the
# per-customer aggregates of a million customers and the three RFM sorts spill to disk, and the
# planner walks the orders index in customer order, one random heap read per order, rather
# than hash them (1M customers, 5M orders: 230 s against 140 s). Each sort or hash of the
# statement may use this much.
POSTGRES_WORK_MEM = "128MB"
# The breakpoints are the strict lower bounds of scores 2..5 (see _store_breakpoints).
RFM_BREAKPOINT_COUNT = RFM_SCORES - 1


@dataclasses.dataclass(frozen=True)
class RecomputeResult:
    as_of: dt.datetime
    is_full: bool
    customers: int  # rows written
    duration_ms: int
    # Counts over every row after a full recompute; empty after an incremental one.
    lifecycle_stages: dict[str, int]
    value_tiers: dict[str, int]
    rfm_breakpoints: dict[str, list[Any]]

    def as_json(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "is_full": self.is_full,
            "customers": self.customers,
            "duration_ms": self.duration_ms,
            "lifecycle_stages": self.lifecycle_stages,
            "value_tiers": self.value_tiers,
            "rfm_breakpoints": self.rfm_breakpoints,
        }


def current_metrics_settings() -> MetricsSettings:
    """The settings row, or the defaults (unsaved) before anyone saved one."""
    return MetricsSettings.objects.filter(pk=1).first() or MetricsSettings(pk=1)


@transaction.atomic
def recompute_metrics(
    *, as_of: dt.datetime | None = None, customer_ids: Iterable[int] | None = None
) -> RecomputeResult:
    """Write every customer's CustomerMetrics row as of `as_of` (default now) in a few statements.

    With customer_ids, only those customers' rows, their RFM scored against the breakpoints of
    the last full recompute (there being none, this runs a full recompute instead). A full
    recompute stores new breakpoints. Recomputes take turns on the MetricsSettings row.
    """
    as_of = _resolve_as_of(as_of)
    started = time.perf_counter()
    metrics_settings = _lock_metrics_settings()
    breakpoints = _breakpoints_from(metrics_settings)
    ids = None if customer_ids is None else sorted(set(customer_ids))
    is_full = ids is None or breakpoints is None
    if not is_full and not ids:
        return _incremental_result(as_of, 0, started, metrics_settings)
    sql, params = _upsert_sql(
        as_of=as_of,
        metrics_settings=metrics_settings,
        customer_ids=None if is_full else ids,
        breakpoints=None if is_full else breakpoints,
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT set_config('work_mem', %s, true)", [POSTGRES_WORK_MEM])
        cursor.execute(sql, params)
        written = cursor.rowcount
    if not is_full:
        return _incremental_result(as_of, written, started, metrics_settings)
    stages, tiers, new_breakpoints = _count_and_find_breakpoints()
    duration_ms = _elapsed_ms(started)
    MetricsSettings.objects.filter(pk=1).update(
        rfm_breakpoints=new_breakpoints,
        last_full_run_as_of=as_of,
        last_full_run_at=timezone.now(),
        last_full_run_ms=duration_ms,
        last_full_run_customers=written,
    )
    return RecomputeResult(
        as_of=as_of,
        is_full=True,
        customers=written,
        duration_ms=duration_ms,
        lifecycle_stages=stages,
        value_tiers=tiers,
        rfm_breakpoints=new_breakpoints,
    )


def _incremental_result(
    as_of: dt.datetime, written: int, started: float, metrics_settings: MetricsSettings
) -> RecomputeResult:
    return RecomputeResult(
        as_of=as_of,
        is_full=False,
        customers=written,
        duration_ms=_elapsed_ms(started),
        lifecycle_stages={},
        value_tiers={},
        rfm_breakpoints=metrics_settings.rfm_breakpoints,
    )


def _resolve_as_of(as_of: dt.datetime | None) -> dt.datetime:
    if as_of is None:
        return timezone.now()
    if timezone.is_naive(as_of):
        raise ValueError(f"as_of must be an aware datetime, not {as_of!r}")
    return as_of


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _lock_metrics_settings() -> MetricsSettings:
    # SELECT ... FOR UPDATE on PostgreSQL: a nightly and an after-import recompute writing the
    # same rows in different orders could deadlock. SQLite's IMMEDIATE transactions already
    # take the one write lock at BEGIN (Django skips FOR UPDATE there).
    MetricsSettings.objects.get_or_create(pk=1)
    return MetricsSettings.objects.select_for_update().get(pk=1)


def _table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _db_datetime(value: dt.datetime) -> Any:
    # SQLite keeps datetimes as naive UTC text; a raw parameter must be in the same form.
    return connection.ops.adapt_datetimefield_value(value)


def _db_amount(value: Decimal) -> Any:
    # On SQLite amounts are REALs, and an expression (a SUM) has no affinity to turn a text
    # parameter into a number: '500.00' would compare greater than any number.
    return float(value) if connection.vendor == "sqlite" else value


def _local_date_sql(column: str) -> str:
    if connection.vendor == "postgresql":
        return f"({column} AT TIME ZONE %(tz)s)::date"
    return f"django_datetime_cast_date({column}, %(tz)s, %(db_tz)s)"


def _days_between_sql(column: str) -> str:
    """Whole days from the local date of a datetime column to the local date of as_of."""
    if connection.vendor == "postgresql":
        return f"(%(as_of_date)s::date - {_local_date_sql(column)})"
    return f"CAST(julianday(%(as_of_date)s) - julianday({_local_date_sql(column)}) AS INTEGER)"


def _cents_sql(column: str) -> str:
    """An order amount in whole fen, as a double: sums of them are exact below 2 ** 53 fen.

    On PostgreSQL a double's SUM keeps a plain float per customer where a numeric SUM keeps an
    allocated state: the order aggregate runs about twice as fast and in a fraction of the
    memory. On SQLite amounts are REALs already; rounding to the fen drops their binary drift.
    """
    if connection.vendor == "postgresql":
        return f"({column} * 100)::bigint::float8"
    return f"ROUND({column} * 100)"


def _yuan_sql(cents: str) -> str:
    if connection.vendor == "postgresql":
        return f"ROUND(({cents})::numeric / 100, 2)"
    return f"(({cents}) / 100.0)"


def _average_sql(spend: str, count: str) -> str:
    """spend / count to the fen, half up (amounts are never negative)."""
    if connection.vendor == "postgresql":
        return f"ROUND({spend} / {count}, 2)"
    # In fen, in integers: REAL division would round 2.01 / 2 = 1.00499... down.
    cents = f"CAST(ROUND({spend} * 100) AS INTEGER)"
    return f"(((2 * {cents} + {count}) / (2 * {count})) / 100.0)"


def _ids_filter_sql(column: str) -> str:
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%(ids)s)"
    # One parameter however many ids: SQLite caps the number of parameters of a statement.
    return f"{column} IN (SELECT value FROM json_each(%(ids)s))"


def _ids_param(ids: list[int]) -> Any:
    if connection.vendor == "postgresql":
        return ids
    return "[" + ",".join(str(int(i)) for i in ids) + "]"


METRIC_COLUMNS = (
    "customer_id",
    "orders_count",
    "spend_total",
    "first_order_at",
    "last_order_at",
    "days_since_last_order",
    *(f"{kind}_{days}d" for days in WINDOW_DAYS for kind in ("orders", "spend")),
    "avg_order_value",
    "rfm_r",
    "rfm_f",
    "rfm_m",
    "value_tier",
    "lifecycle_stage",
    "silent_level",
    "last_active_at",
    "computed_as_of",
)


# The value tier of a row from its days_since_last_order, orders_count and spend_total, with the
# parameters of _tier_params: the recompute writes it and count_value_tiers previews it, so the
# two always agree. The first that holds wins; no order means a null day count: unclassified.
VALUE_TIER_CASE_SQL = """CASE
        WHEN days_since_last_order <= %(high_max_days)s
            AND orders_count >= %(high_min_orders)s
            AND spend_total >= %(high_min_spend)s THEN %(tier_high)s
        WHEN days_since_last_order <= %(potential_max_days)s
            AND orders_count >= %(potential_min_orders)s
            AND orders_count <= %(potential_max_orders)s
            AND spend_total >= %(potential_min_spend)s
            AND spend_total < %(potential_max_spend)s THEN %(tier_potential)s
        WHEN days_since_last_order >= %(low_min_days)s
            AND orders_count <= %(low_max_orders)s
            AND spend_total < %(low_max_spend)s THEN %(tier_low)s
        ELSE %(tier_unclassified)s
    END"""


def _upsert_sql(
    *,
    as_of: dt.datetime,
    metrics_settings: MetricsSettings,
    customer_ids: list[int] | None,
    breakpoints: dict[str, list[Any]] | None,
) -> tuple[str, dict[str, Any]]:
    """One INSERT ... SELECT ... ON CONFLICT DO UPDATE writing the rows of all (or some) customers.

    Orders are read once, grouped by customer, with a conditional COUNT and SUM per window;
    events once, for the last activity. Both backends run the same statement but for the
    date arithmetic and the id filter.
    """
    local_zone = timezone.get_default_timezone()
    params: dict[str, Any] = {
        "as_of": _db_datetime(as_of),
        "as_of_date": as_of.astimezone(local_zone).date().isoformat(),
        "tz": settings.TIME_ZONE,
        "db_tz": connection.timezone_name,
        "paid": OrderStatus.PAID.value,
        "new_since": _db_datetime(as_of - dt.timedelta(days=NEW_DAYS)),
        **{f"since_{days}": _db_datetime(as_of - dt.timedelta(days=days)) for days in WINDOW_DAYS},
        **{f"event_{i}": name for i, name in enumerate(ACTIVITY_EVENTS)},
        **_tier_params(metrics_settings),
        **_stage_params(),
        "computed_as_of": _db_datetime(as_of),
    }
    order_filter = customer_filter = event_filter = ""
    if customer_ids is not None:
        params["ids"] = _ids_param(customer_ids)
        order_filter = f"AND {_ids_filter_sql('customer_id')}"
        event_filter = f"AND {_ids_filter_sql('customer_id')}"
        customer_filter = f"WHERE {_ids_filter_sql('c.id')}"

    cents = _cents_sql("amount")
    windows = ",\n".join(
        f"COUNT(CASE WHEN placed_at > %(since_{days})s THEN 1 END) AS orders_{days}d, "
        + _yuan_sql(f"SUM(CASE WHEN placed_at > %(since_{days})s THEN {cents} ELSE 0 END)")
        + f" AS spend_{days}d"
        for days in WINDOW_DAYS
    )
    event_names = ", ".join(f"%(event_{i})s" for i in range(len(ACTIVITY_EVENTS)))
    rfm_sql = _rfm_rank_sql() if breakpoints is None else _rfm_breakpoint_sql(breakpoints, params)

    window_columns = ", ".join(
        f"COALESCE(o.{kind}_{days}d, 0) AS {kind}_{days}d"
        for days in WINDOW_DAYS
        for kind in ("orders", "spend")
    )
    copied = ", ".join(f"{kind}_{days}d" for days in WINDOW_DAYS for kind in ("orders", "spend"))
    columns = ", ".join(METRIC_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in METRIC_COLUMNS if c != "customer_id")
    sql = f"""
INSERT INTO {_table(CustomerMetrics)} ({columns})
WITH paid AS (
    SELECT customer_id,
        COUNT(*) AS orders_count,
        {_yuan_sql(f"SUM({cents})")} AS spend_total,
        MIN(placed_at) AS first_order_at,
        MAX(placed_at) AS last_order_at,
        {windows}
    FROM {_table(Order)}
    WHERE status = %(paid)s AND placed_at <= %(as_of)s {order_filter}
    GROUP BY customer_id
),
scored AS (
    SELECT dated.*, {rfm_sql}
    FROM (
        SELECT paid.*, {_days_between_sql("paid.last_order_at")} AS days_since_last_order
        FROM paid
    ) AS dated
),
seen AS (
    SELECT customer_id, MAX(occurred_at) AS last_event_at
    FROM {_table(Event)}
    WHERE name IN ({event_names}) AND occurred_at <= %(as_of)s {event_filter}
    GROUP BY customer_id
),
joined AS (
    SELECT c.id AS customer_id, c.registered_at,
        COALESCE(o.orders_count, 0) AS orders_count,
        COALESCE(o.spend_total, 0) AS spend_total,
        o.first_order_at, o.last_order_at, o.days_since_last_order,
        {window_columns},
        o.rfm_r, o.rfm_f, o.rfm_m,
        CASE
            WHEN o.last_order_at IS NULL THEN e.last_event_at
            WHEN e.last_event_at IS NULL OR o.last_order_at >= e.last_event_at
                THEN o.last_order_at
            ELSE e.last_event_at
        END AS last_active_at
    FROM {_table(Customer)} AS c
    LEFT JOIN scored AS o ON o.customer_id = c.id
    LEFT JOIN seen AS e ON e.customer_id = c.id
    {customer_filter}
),
staged AS (
    SELECT measured.*,
        CASE
            WHEN registered_at > %(new_since)s THEN %(stage_new)s
            WHEN inactive_days IS NULL THEN %(stage_prospect)s
            WHEN inactive_days <= %(active_max)s THEN %(stage_active)s
            WHEN inactive_days <= %(silent_max)s THEN %(stage_silent)s
            ELSE %(stage_lapsed)s
        END AS lifecycle_stage
    FROM (
        SELECT joined.*, {_days_between_sql("joined.last_active_at")} AS inactive_days
        FROM joined
    ) AS measured
)
SELECT customer_id, orders_count, spend_total, first_order_at, last_order_at,
    days_since_last_order, {copied},
    CASE WHEN orders_count > 0 THEN {_average_sql("spend_total", "orders_count")} END,
    rfm_r, rfm_f, rfm_m,
    {VALUE_TIER_CASE_SQL},
    lifecycle_stage,
    CASE
        WHEN lifecycle_stage <> %(stage_silent)s THEN ''
        WHEN inactive_days <= %(light_max)s THEN %(level_light)s
        WHEN inactive_days <= %(medium_max)s THEN %(level_medium)s
        ELSE %(level_heavy)s
    END,
    last_active_at,
    %(computed_as_of)s
FROM staged
WHERE 1 = 1
ON CONFLICT (customer_id) DO UPDATE SET {updates}
"""
    # "WHERE 1 = 1" above: SQLite would read the ON of ON CONFLICT as a join's ON without it.
    return sql, params


def count_value_tiers(*, metrics_settings: MetricsSettings) -> dict[str, int]:
    """How many customers each value tier would hold with these thresholds (saved or not).

    Reads the stored CustomerMetrics columns with the recompute's own CASE: while the orders
    stay as they are, these are the tiers a recompute as of the rows' computed_as_of would
    write. Writes nothing.
    """
    sql = (
        f"SELECT {VALUE_TIER_CASE_SQL} AS tier, COUNT(*) FROM {_table(CustomerMetrics)} GROUP BY 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, _tier_params(metrics_settings))
        found = dict(cursor.fetchall())
    return {tier.value: int(found.get(tier.value, 0)) for tier in ValueTier}


def _rfm_rank_sql() -> str:
    # The worst first, so that ties share the lowest score their values reach.
    orders = {
        "rfm_r": "days_since_last_order DESC",
        "rfm_f": "orders_count",
        "rfm_m": "spend_total",
    }
    return ", ".join(
        f"1 + ({RFM_SCORES} * (RANK() OVER (ORDER BY {order}) - 1)) / COUNT(*) OVER () AS {name}"
        for name, order in orders.items()
    )


def _rfm_breakpoint_sql(breakpoints: dict[str, list[Any]], params: dict[str, Any]) -> str:
    parts = []
    for key, column, compare in (
        ("r", "days_since_last_order", "<"),
        ("f", "orders_count", ">"),
        ("m", "spend_total", ">"),
    ):
        terms = []
        for i, value in enumerate(breakpoints[key]):
            name = f"rfm_{key}_{i}"
            if value is None:
                continue
            params[name] = _db_amount(Decimal(value)) if key == "m" else int(value)
            terms.append(f"CASE WHEN {column} {compare} %({name})s THEN 1 ELSE 0 END")
        parts.append(f"{' + '.join(['1', *terms])} AS rfm_{key}")
    return ", ".join(parts)


def _tier_params(metrics_settings: MetricsSettings) -> dict[str, Any]:
    s = metrics_settings
    return {
        "high_max_days": s.high_max_days,
        "high_min_orders": s.high_min_orders,
        "high_min_spend": _db_amount(s.high_min_spend),
        "potential_max_days": s.potential_max_days,
        "potential_min_orders": s.potential_min_orders,
        "potential_max_orders": s.potential_max_orders,
        "potential_min_spend": _db_amount(s.potential_min_spend),
        "potential_max_spend": _db_amount(s.potential_max_spend),
        "low_min_days": s.low_min_days,
        "low_max_orders": s.low_max_orders,
        "low_max_spend": _db_amount(s.low_max_spend),
        "tier_high": ValueTier.HIGH.value,
        "tier_potential": ValueTier.POTENTIAL.value,
        "tier_low": ValueTier.LOW.value,
        "tier_unclassified": ValueTier.UNCLASSIFIED.value,
    }


def _stage_params() -> dict[str, Any]:
    return {
        "active_max": ACTIVE_MAX_DAYS,
        "silent_max": SILENT_MAX_DAYS,
        "light_max": LIGHT_SILENT_MAX_DAYS,
        "medium_max": MEDIUM_SILENT_MAX_DAYS,
        **{f"stage_{stage.value}": stage.value for stage in LifecycleStage},
        **{f"level_{level.value}": level.value for level in SilentLevel},
    }


def _breakpoints_from(metrics_settings: MetricsSettings) -> dict[str, list[Any]] | None:
    """The last full recompute's breakpoints; None before the first one.

    A breakpoint is None when that recompute had no customer with orders: nobody to beat, so
    a touched customer scores 1, as the only one with orders would in a full recompute.
    """
    stored = metrics_settings.rfm_breakpoints or {}
    values = [stored.get(key) for key in ("r", "f", "m")]
    if metrics_settings.last_full_run_as_of is None or any(
        not isinstance(v, list) or len(v) != RFM_BREAKPOINT_COUNT for v in values
    ):
        return None
    return {"r": stored["r"], "f": stored["f"], "m": stored["m"]}


def _count_and_find_breakpoints() -> tuple[dict[str, int], dict[str, int], dict[str, list[Any]]]:
    """Count the rows by stage and tier; for each score s of 2..5, the best value below s.

    With score = 1 + floor(5 * (rank - 1) / n), a value scores s or more exactly when it is
    better than the breakpoint of s, for values seen in the full recompute and for new ones
    alike: an incremental recompute places a touched customer among everyone else as a full
    recompute would, as long as everyone else's values stay where they were.
    """
    metrics = _table(CustomerMetrics)
    scores = range(2, RFM_SCORES + 1)
    selects = [
        *(f"MIN(CASE WHEN rfm_r < {s} THEN days_since_last_order END)" for s in scores),
        *(f"MAX(CASE WHEN rfm_f < {s} THEN orders_count END)" for s in scores),
        *(f"MAX(CASE WHEN rfm_m < {s} THEN spend_total END)" for s in scores),
        *("COUNT(CASE WHEN lifecycle_stage = %s THEN 1 END)" for _ in LifecycleStage),
        *("COUNT(CASE WHEN value_tier = %s THEN 1 END)" for _ in ValueTier),
    ]
    params = [stage.value for stage in LifecycleStage] + [tier.value for tier in ValueTier]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(selects)} FROM {metrics}", params)
        row = cursor.fetchone()
    n = RFM_BREAKPOINT_COUNT
    recency, frequency, monetary = row[:n], row[n : 2 * n], row[2 * n : 3 * n]
    stage_counts = row[3 * n : 3 * n + len(LifecycleStage)]
    tier_counts = row[3 * n + len(LifecycleStage) :]
    breakpoints: dict[str, list[Any]] = {
        "r": [None if v is None else int(v) for v in recency],
        "f": [None if v is None else int(v) for v in frequency],
        "m": [None if v is None else _money_text(v) for v in monetary],
    }
    stages = {stage.value: count for stage, count in zip(LifecycleStage, stage_counts, strict=True)}
    tiers = {tier.value: count for tier, count in zip(ValueTier, tier_counts, strict=True)}
    return stages, tiers, breakpoints


def _money_text(value: Any) -> str:
    # Through str: a SQLite REAL becomes the decimal it stands for, not its binary expansion.
    return str(Decimal(str(value)).quantize(Decimal("0.01")))
