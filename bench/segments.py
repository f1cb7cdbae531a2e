"""Segments at scale: metrics, a rule preview and a segment refresh beside hand-written SQL.

The data is made in SQL on a database of its own (the benchmark database's name + "_segments"),
deterministic (hashes of the row number and the seed): 1,000,000 customers, 5,000,000 orders
over the two years before NOW (5 % refunded), 10,000,000 behaviour events over the year before
NOW (app_open, view_product and add_to_cart with a category, share, sign_in), a membership for
every customer at a varied tier, and five imported tags on 3 % to 40 % of the customers.
--customers and --orders scale it down (events: twice the orders).

Each measurement runs ours (the project's function, in a child process, as its job or API view
calls it) and a hand-written SQL doing the same work, from the same starting state, and compares
what both produced, so that neither can win by doing less:

- metrics_recompute: the nightly recompute_metrics(as_of=NOW) over a table holding yesterday's
  rows, against one INSERT ... ON CONFLICT DO UPDATE written by hand (numeric sums, FILTER
  clauses, GREATEST), both with the same work_mem. Aim: within 1.5x.
- segment_preview: preview_rules() of a five-condition tree (tier, spend, tag, an event count
  within 7 days, lifecycle): the count and five sample customers, against a hand-written COUNT and
  sample with joins and EXISTS. Best of several warm runs. Aim: under 1 s and within 1.3x.
- segment_refresh: refresh_segment_members() of a segment of about 300,000 members, the first
  refresh (nobody in it yet) and the next day's (members as of the day before), against one
  hand-written statement (a MATERIALIZED match, DELETE and INSERT as data-modifying CTEs).
  Aim: within 1.5x.

A miss prints the plans (EXPLAIN ANALYZE, BUFFERS) of our slowest statements and of the
hand-written one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from bench import database, generate, report, sqldata
from bench.context import ChildRun, Context

DEFAULT_CUSTOMERS = 1_000_000
DEFAULT_ORDERS = 5_000_000
EVENTS_PER_ORDER = 2  # 10,000,000 events for 5,000,000 orders
METRICS_AIM = 1.5
PREVIEW_AIM = 1.3
PREVIEW_AIM_SECONDS = 1.0
REFRESH_AIM = 1.5
METRICS_ROUNDS = 2  # each side's best of this many
PREVIEW_ROUNDS = 5
REFRESH_ROUNDS = 2
EXPLAIN_STATEMENTS = 2
WORK_MEM = "128MB"  # what recompute_metrics sets for its transaction; the hand-written gets it too

ZONE = "Asia/Shanghai"
NOW = dt.datetime(2025, 7, 1, 12, tzinfo=generate.SHANGHAI)
ORDER_HISTORY = dt.timedelta(days=730)
EVENT_HISTORY = dt.timedelta(days=365)
REFUNDED_PERCENT = 5
METRICS_SNAPSHOT = "bench_customers_customermetrics"
SEGMENT_NAME = "bench: about 300,000"
MEMBER_SNAPSHOT = "bench_segments_segmentmember"

# name, share of customers in percent
TAGS = (("VIP", 8), ("高价值用户", 12), ("母婴兴趣", 20), ("价格敏感", 40), ("直播间粉丝", 3))
EVENT_NAMES = (
    ["app_open"] * 3 + ["view_product"] * 3 + ["add_to_cart"] * 2 + ["share", "sign_in"]
)  # by mod(s, 10); 3..7 carry a category
EVENTS_SQL = f"""
    INSERT INTO customers_event (event_id, customer_id, name, occurred_at, properties, created_at)
    SELECT 'S' || lpad(i::text, 10, '0'), {sqldata.CUSTOMER_SQL},
           (ARRAY[{", ".join(f"'{name}'" for name in EVENT_NAMES)}])[1 + mod(h.s, 10)],
           {sqldata.WHEN_SQL},
           CASE WHEN mod(h.s, 10) BETWEEN 3 AND 7
                THEN jsonb_build_object('category', (ARRAY['美妆', '母婴', '服饰', '食品', '数码'])
                                                    [1 + mod(h.s / 10, 5)])
                ELSE '{{}}'::jsonb END,
           now()
    FROM generate_series(1, %(count)s) AS i {sqldata.HASHES_SQL}
"""
TAGS_SQL = """
    INSERT INTO customers_customertag (customer_id, tag_id, source, created_at)
    SELECT c.id, t.id, 'import', now()
    FROM customers_customer c
    CROSS JOIN (SELECT tag.id, share.percent
                FROM customers_tag tag
                JOIN (SELECT * FROM jsonb_each_text(%(shares)s::jsonb)) share (name, percent)
                  ON share.name = tag.name) t
    WHERE mod(hashint8extended(c.id * 16 + t.id, %(seed)s) & 2147483647, 100) < t.percent::int
"""

# The five conditions of the issue: tier, spend, tag, an event count within 7 days, lifecycle.
PREVIEW_TREE: dict[str, Any] = {
    "all": [
        {"field": "tier", "op": "in", "value": ["silver", "gold", "diamond"]},
        {"field": "spend_total", "op": "gte", "value": 1000},
        {"tag": "价格敏感"},
        {"event": "view_product", "within_days": 7, "count": {"op": "gte", "value": 2}},
        {"field": "lifecycle_stage", "op": "in", "value": ["active", "new"]},
    ]
}
HAND_PREVIEW_WHERE = """
    FROM customers_customer c
    JOIN loyalty_membership ms ON ms.customer_id = c.id
    JOIN loyalty_tier t ON t.id = ms.tier_id
    JOIN customers_customermetrics m ON m.customer_id = c.id
    WHERE t.code IN ('silver', 'gold', 'diamond')
      AND m.spend_total >= 1000
      AND m.lifecycle_stage IN ('active', 'new')
      AND EXISTS (SELECT 1 FROM customers_customertag ct
                  JOIN customers_tag tag ON tag.id = ct.tag_id
                  WHERE ct.customer_id = c.id AND tag.name = '价格敏感')
      AND (SELECT count(*) FROM customers_event e
           WHERE e.customer_id = c.id AND e.name = 'view_product'
             AND e.occurred_at > %(since)s AND e.occurred_at <= %(now)s) >= 2
"""
# About 300,000 of 1,000,000: active, and in the upper three fifths by spend.
REFRESH_TREE: dict[str, Any] = {
    "all": [
        {"field": "lifecycle_stage", "op": "in", "value": ["active"]},
        {"field": "rfm_m", "op": "gte", "value": 3},
    ]
}
BACKGROUND_SQL = """
    WITH segment AS (
        INSERT INTO segments_segment (name, description, definition, kind, size,
            refresh_interval_minutes, is_template, template_key, last_error, created_at,
            updated_at)
        VALUES (%(name)s, '', '{"all": []}', 'static', 0, 60, false, '', '', now(), now())
        RETURNING id
    )
    INSERT INTO segments_segmentmember (segment_id, customer_id, joined_at)
    SELECT segment.id, c.id, now() FROM segment, customers_customer c WHERE c.id %% 3 = 0
"""
HAND_REFRESH_SQL = """
    WITH matched AS MATERIALIZED (
        SELECT customer_id FROM customers_customermetrics
        WHERE lifecycle_stage = 'active' AND rfm_m >= 3
    ),
    gone AS (
        DELETE FROM segments_segmentmember sm
        WHERE sm.segment_id = %(segment)s
          AND NOT EXISTS (SELECT 1 FROM matched WHERE matched.customer_id = sm.customer_id)
        RETURNING 1
    ),
    came AS (
        INSERT INTO segments_segmentmember (segment_id, customer_id, joined_at)
        SELECT %(segment)s, matched.customer_id, %(now)s FROM matched
        WHERE NOT EXISTS (SELECT 1 FROM segments_segmentmember sm
                          WHERE sm.segment_id = %(segment)s
                            AND sm.customer_id = matched.customer_id)
        RETURNING 1
    )
    UPDATE segments_segment
    SET size = (SELECT count(*) FROM segments_segmentmember WHERE segment_id = %(segment)s)
               - (SELECT count(*) FROM gone) + (SELECT count(*) FROM came),
        refreshed_at = %(now)s
    WHERE id = %(segment)s
"""


@dataclass(frozen=True)
class SegmentsData:
    url: str
    customers: int
    orders: int
    events: int
    segment_id: int


def segments_url(url: str) -> str:
    """The benchmark database's URL with "_segments" after its name."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}_segments"))


def segments_data(context: Context) -> SegmentsData:
    """The segments database of this run, made when the first segments benchmark asks for it."""
    data = context.shared.get("segments")
    if data is None:
        data = _make_data(context)
        # Yesterday's metrics, written by ours (which also makes the settings row the
        # hand-written SQL reads its thresholds from), kept in a snapshot for the nightly run.
        context.run_child(
            "recompute_metrics", (NOW - dt.timedelta(days=1)).isoformat(), url=data.url
        )
        with database.connect(data.url) as connection:
            connection.execute(f"DROP TABLE IF EXISTS {METRICS_SNAPSHOT}")
            connection.execute(
                f"CREATE TABLE {METRICS_SNAPSHOT} AS SELECT * FROM customers_customermetrics"
            )
        context.shared["segments"] = data
    assert isinstance(data, SegmentsData)
    return data


def _make_data(context: Context) -> SegmentsData:
    options = context.options
    customers = options.customers if "customers" in options.given else DEFAULT_CUSTOMERS
    orders = options.orders if "orders" in options.given else DEFAULT_ORDERS
    events = orders * EVENTS_PER_ORDER
    url = segments_url(context.url)
    started = time.perf_counter()
    database.create_fresh(url)
    migrated = time.perf_counter() - started
    customer_seconds = database.insert_customers(url, customers)
    started = time.perf_counter()
    with database.connect(url) as connection:
        common = {
            "seed": options.seed,
            "first_customer": sqldata.customer_range(connection, customers),
            "customers": customers,
            "refunded_percent": REFUNDED_PERCENT,
            "now": NOW,
        }
        connection.execute(
            sqldata.ORDERS_SQL,
            common
            | {
                "count": orders,
                "start": NOW - ORDER_HISTORY,
                "spread": ORDER_HISTORY.total_seconds() - 3600,
            },
        )
        connection.execute(
            EVENTS_SQL,
            common
            | {
                "count": events,
                "seed": options.seed + 2,
                "start": NOW - EVENT_HISTORY,
                "spread": EVENT_HISTORY.total_seconds() - 3600,
            },
        )
        connection.execute(sqldata.MEMBERSHIPS_SQL, common)
        for name, _share in TAGS:
            connection.execute(
                "INSERT INTO customers_tag (name, description, created_at) VALUES (%s, '', now())",
                [name],
            )
        shares = json.dumps(dict(TAGS), ensure_ascii=False)
        connection.execute(TAGS_SQL, {"shares": shares, "seed": options.seed + 5})
        row = connection.execute(
            "INSERT INTO segments_segment (name, description, definition, kind, size,"
            " refresh_interval_minutes, is_template, template_key, last_error, created_at,"
            " updated_at) VALUES (%s, '', %s, 'dynamic', 0, 60, false, '', '', now(), now())"
            " RETURNING id",
            [SEGMENT_NAME, json.dumps(REFRESH_TREE)],
        ).fetchone()
        assert row is not None
        # Other segments' members share the table, as they do in a console in use.
        connection.execute(BACKGROUND_SQL, {"name": "bench: every third customer"})
        connection.execute("VACUUM ANALYZE")
    print(
        f"setup: fresh database {database.connect_kwargs(url)['dbname']} migrated in "
        f"{migrated:.1f} s; {customers:,} customers in {customer_seconds:.1f} s, then "
        f"{orders:,} orders, {events:,} events, {customers:,} memberships and "
        f"{len(TAGS)} tags in {time.perf_counter() - started:.1f} s, all in SQL"
    )
    return SegmentsData(url, customers, orders, events, segment_id=row[0])


def _settle(url: str, tables: str) -> None:
    """Vacuum and analyse what the last run wrote, write dirty pages out, read the big tables."""
    with database.connect(url) as connection:
        connection.execute(f"VACUUM ANALYZE {tables}")
        connection.execute("CHECKPOINT")
        connection.execute("SELECT sum(amount) FROM customers_order").fetchone()
        connection.execute("SELECT count(*) FROM customers_event").fetchone()


def _run_ours(
    context: Context, data: SegmentsData, operation: str, *args: str, explain: list[str] = ()
) -> ChildRun:
    env = {"LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING")}
    if explain:
        env["BENCH_EXPLAIN"] = ",".join(explain)
    return context.run_child(operation, *args, url=data.url, env=env)


def _explain(
    context: Context,
    data: SegmentsData,
    ours: ChildRun,
    hand_sql: str,
    params: dict[str, Any],
    operation: str,
    *args: str,
) -> None:
    """The plans of the hand-written SQL and of our slowest statements, all rolled back."""
    with database.connect(data.url) as connection, connection.transaction(force_rollback=True):
        connection.execute("SELECT set_config('work_mem', %s, true)", [WORK_MEM])
        plan = connection.execute(f"EXPLAIN (ANALYZE, BUFFERS) {hand_sql}", params)
        hand_plan = "\n".join(line for (line,) in plan.fetchall())
    print("    plan of the hand-written SQL:")
    print(report.indent(hand_plan))
    numbers = [str(timing["number"]) for timing in ours.slowest[:EXPLAIN_STATEMENTS]]
    explained = _run_ours(context, data, operation, *args, explain=numbers)
    for number in numbers:
        sql = next(timing["sql"] for timing in ours.slowest if str(timing["number"]) == number)
        print(f"    plan of our statement #{number}: {report.condensed(sql)}")
        print(report.indent(explained.plans.get(number, "(not run this time)")))


# --- metrics -----------------------------------------------------------------------------------

METRIC_COLUMNS = (
    "customer_id, orders_count, spend_total, first_order_at, last_order_at, "
    "days_since_last_order, orders_30d, spend_30d, orders_90d, spend_90d, orders_180d, "
    "spend_180d, orders_365d, spend_365d, avg_order_value, rfm_r, rfm_f, rfm_m, value_tier, "
    "lifecycle_stage, silent_level, last_active_at, computed_as_of"
)
_WINDOWS = (30, 90, 180, 365)
HAND_METRICS_SQL = f"""
    INSERT INTO customers_customermetrics ({METRIC_COLUMNS})
    WITH paid AS (
        SELECT customer_id, count(*) AS orders_count, sum(amount) AS spend_total,
               min(placed_at) AS first_order_at, max(placed_at) AS last_order_at,
               %(as_of_date)s::date - (max(placed_at) AT TIME ZONE %(zone)s)::date
                   AS days_since_last_order,
               {
    ", ".join(
        f"count(*) FILTER (WHERE placed_at > %(since_{d})s) AS orders_{d}d, "
        f"coalesce(sum(amount) FILTER (WHERE placed_at > %(since_{d})s), 0) AS spend_{d}d"
        for d in _WINDOWS
    )
}
        FROM customers_order
        WHERE status = 'paid' AND placed_at <= %(as_of)s
        GROUP BY customer_id
    ),
    scored AS (
        SELECT paid.*,
               1 + 5 * (rank() OVER (ORDER BY days_since_last_order DESC) - 1)
                   / count(*) OVER () AS rfm_r,
               1 + 5 * (rank() OVER (ORDER BY orders_count) - 1) / count(*) OVER () AS rfm_f,
               1 + 5 * (rank() OVER (ORDER BY spend_total) - 1) / count(*) OVER () AS rfm_m
        FROM paid
    ),
    seen AS (
        SELECT customer_id, max(occurred_at) AS last_event_at
        FROM customers_event
        WHERE name IN ('app_open', 'view_product') AND occurred_at <= %(as_of)s
        GROUP BY customer_id
    ),
    active AS (
        SELECT c.id AS cid, c.registered_at, s.*,
               greatest(s.last_order_at, e.last_event_at) AS last_active_at,
               %(as_of_date)s::date
                   - (greatest(s.last_order_at, e.last_event_at) AT TIME ZONE %(zone)s)::date
                   AS inactive_days
        FROM customers_customer c
        LEFT JOIN scored s ON s.customer_id = c.id
        LEFT JOIN seen e ON e.customer_id = c.id
    ),
    staged AS (
        SELECT active.*,
               CASE WHEN registered_at > %(new_since)s THEN 'new'
                    WHEN inactive_days IS NULL THEN 'prospect'
                    WHEN inactive_days <= 30 THEN 'active'
                    WHEN inactive_days <= 90 THEN 'silent'
                    ELSE 'lapsed' END AS stage
        FROM active
    )
    SELECT cid, coalesce(orders_count, 0), coalesce(spend_total, 0), first_order_at,
           last_order_at, days_since_last_order,
           {", ".join(f"coalesce(orders_{d}d, 0), coalesce(spend_{d}d, 0)" for d in _WINDOWS)},
           round(spend_total / orders_count, 2), rfm_r, rfm_f, rfm_m,
           CASE WHEN days_since_last_order <= %(high_max_days)s
                     AND orders_count >= %(high_min_orders)s
                     AND spend_total >= %(high_min_spend)s THEN 'high'
                WHEN days_since_last_order <= %(potential_max_days)s
                     AND orders_count BETWEEN %(potential_min_orders)s
                                          AND %(potential_max_orders)s
                     AND spend_total >= %(potential_min_spend)s
                     AND spend_total < %(potential_max_spend)s THEN 'potential'
                WHEN days_since_last_order >= %(low_min_days)s
                     AND orders_count <= %(low_max_orders)s
                     AND spend_total < %(low_max_spend)s THEN 'low'
                ELSE 'unclassified' END,
           stage,
           CASE WHEN stage <> 'silent' THEN ''
                WHEN inactive_days <= 45 THEN 'light'
                WHEN inactive_days <= 60 THEN 'medium'
                ELSE 'heavy' END,
           last_active_at, %(as_of)s
    FROM staged
    ON CONFLICT (customer_id) DO UPDATE SET {
    ", ".join(
        f"{column} = excluded.{column}"
        for column in METRIC_COLUMNS.split(", ")
        if column != "customer_id"
    )
}
"""
_THRESHOLDS = (
    *("high_max_days", "high_min_orders", "high_min_spend"),
    *("potential_max_days", "potential_min_orders", "potential_max_orders"),
    *("potential_min_spend", "potential_max_spend"),
    *("low_min_days", "low_max_orders", "low_max_spend"),
)


def _metrics_params(url: str, as_of: dt.datetime) -> dict[str, Any]:
    with database.connect(url) as connection:
        settings = sqldata.settings_row(connection, "customers_metricssettings")
    local = as_of.astimezone(generate.SHANGHAI)
    return {
        "as_of": as_of,
        "as_of_date": local.date(),
        "zone": ZONE,
        "new_since": as_of - dt.timedelta(days=7),
        **{f"since_{d}": as_of - dt.timedelta(days=d) for d in _WINDOWS},
        **{name: settings[name] for name in _THRESHOLDS},
    }


def _hand_metrics(url: str, as_of: dt.datetime) -> float:
    params = _metrics_params(url, as_of)
    with database.connect(url) as connection:
        started = time.perf_counter()
        with connection.transaction():
            connection.execute("SELECT set_config('work_mem', %s, true)", [WORK_MEM])
            connection.execute(HAND_METRICS_SQL, params)
        return time.perf_counter() - started


def _metrics_state(url: str) -> tuple[Any, ...]:
    return sqldata.fingerprint(url, "customers_customermetrics", METRIC_COLUMNS)


def _metrics_reset(url: str) -> None:
    """Yesterday's rows, as the nightly run finds them."""
    with database.connect(url) as connection, connection.transaction():
        connection.execute("TRUNCATE customers_customermetrics")
        connection.execute(
            f"INSERT INTO customers_customermetrics ({METRIC_COLUMNS}) "
            f"SELECT {METRIC_COLUMNS} FROM {METRICS_SNAPSHOT}"
        )
    _settle(url, "customers_customermetrics")


def run_metrics_recompute(context: Context) -> None:
    data = segments_data(context)
    load_before = os.getloadavg()[0]
    hand_times: list[float] = []
    our_runs: list[ChildRun] = []
    hand_state: tuple[Any, ...] = ()
    our_state: tuple[Any, ...] = ()
    for _round in range(METRICS_ROUNDS):
        _metrics_reset(data.url)
        hand_times.append(_hand_metrics(data.url, NOW))
        hand_state = _metrics_state(data.url)
        _metrics_reset(data.url)
        our_runs.append(_run_ours(context, data, "recompute_metrics", NOW.isoformat()))
        our_state = _metrics_state(data.url)
    ours = min(our_runs, key=lambda run: run.seconds)
    ratio = ours.seconds / min(hand_times)
    result = ours.result
    print(
        f"metrics_recompute: {data.customers:,} customers, {data.orders:,} orders, "
        f"{data.events:,} events, as of {NOW.isoformat()} over yesterday's rows "
        f"(best of {METRICS_ROUNDS})"
    )
    print(f"  lifecycle {result['lifecycle_stages']}; value tiers {result['value_tiers']}")
    report.print_times(hand_times, our_runs)
    passed = report.print_verdict(ratio, aim=METRICS_AIM, same=hand_state == our_state, ours=ours)
    if not passed:
        _metrics_reset(data.url)
        _explain(
            context,
            data,
            ours,
            HAND_METRICS_SQL,
            _metrics_params(data.url, NOW),
            "recompute_metrics",
            NOW.isoformat(),
        )
    report.print_load(load_before)


def _metrics_today(context: Context, data: SegmentsData) -> None:
    """The preview and the refresh read today's metrics, whichever benchmark ran before."""
    if context.shared.get("segments_metrics_today"):
        return
    _hand_metrics(data.url, NOW)
    _settle(data.url, "customers_customermetrics")
    context.shared["segments_metrics_today"] = True


# --- preview -----------------------------------------------------------------------------------


def _preview_params() -> dict[str, Any]:
    return {"now": NOW, "since": NOW - dt.timedelta(days=7)}


def _hand_preview(url: str) -> tuple[float, int, list[int]]:
    """The count and the first five ids; the seconds of both statements together."""
    params = _preview_params()
    with database.connect(url) as connection:
        started = time.perf_counter()
        row = connection.execute(f"SELECT count(*) {HAND_PREVIEW_WHERE}", params).fetchone()
        ids = connection.execute(
            f"SELECT c.id {HAND_PREVIEW_WHERE} ORDER BY c.id LIMIT 5", params
        ).fetchall()
        seconds = time.perf_counter() - started
    assert row is not None
    return seconds, int(row[0]), [int(id_) for (id_,) in ids]


def run_segment_preview(context: Context) -> None:
    data = segments_data(context)
    _metrics_today(context, data)
    load_before = os.getloadavg()[0]
    tree = json.dumps(PREVIEW_TREE, ensure_ascii=False)
    hand_times: list[float] = []
    hand_count = 0
    hand_sample: list[int] = []
    for _round in range(PREVIEW_ROUNDS):
        seconds, hand_count, hand_sample = _hand_preview(data.url)
        hand_times.append(seconds)
    ours = _run_ours(context, data, "segment_preview", tree, NOW.isoformat(), str(PREVIEW_ROUNDS))
    result = ours.result
    our_times = result["round_seconds"]
    best = min(our_times)
    ratio = best / min(hand_times)
    same = result["count"] == hand_count and result["sample_ids"] == hand_sample
    print(
        f"segment_preview: five conditions (tier, spend, tag, view_product count in 7 days, "
        f"lifecycle) over {data.customers:,} customers and {data.events:,} events, "
        f"best of {PREVIEW_ROUNDS} warm runs"
    )
    print(f"  count {result['count']:,}; sample {result['sample_ids']}")
    print(f"    {'':18} {'seconds':>9}")
    print(f"    {'hand-written SQL':18} {report.seconds_text(hand_times)}")
    print(
        f"    {'ours':18} {report.seconds_text(our_times)}   "
        f"(sql_ms as reported by the preview: {result['sql_ms']})"
    )
    under = best <= PREVIEW_AIM_SECONDS
    print(
        f"    ours under {PREVIEW_AIM_SECONDS:.0f} s: {'PASS' if under else 'MISS'} ({best:.3f} s)"
    )
    passed = report.print_verdict(ratio, aim=PREVIEW_AIM, same=same, ours=ours)
    if not (passed and under):
        _explain(
            context,
            data,
            ours,
            f"SELECT count(*) {HAND_PREVIEW_WHERE}",
            _preview_params(),
            "segment_preview",
            tree,
            NOW.isoformat(),
            "1",
        )
    report.print_load(load_before)


# --- refresh -----------------------------------------------------------------------------------


def _members_state(url: str, segment_id: int) -> tuple[Any, ...]:
    members = sqldata.fingerprint(
        url,
        "segments_segmentmember",
        "segment_id, customer_id, joined_at",
        where=f"WHERE segment_id = {int(segment_id)}",
    )
    with database.connect(url) as connection:
        row = connection.execute(
            "SELECT size FROM segments_segment WHERE id = %s", [segment_id]
        ).fetchone()
    assert row is not None
    return (*members, row[0])


def _members_reset(url: str, segment_id: int, *, day_before: bool) -> None:
    """Nobody in the segment, or the members of the day before (from the snapshot)."""
    with database.connect(url) as connection, connection.transaction():
        connection.execute("DELETE FROM segments_segmentmember WHERE segment_id = %s", [segment_id])
        connection.execute("TRUNCATE segments_segmentrefresh")
        if day_before:
            connection.execute(
                f"INSERT INTO segments_segmentmember (segment_id, customer_id, joined_at) "
                f"SELECT segment_id, customer_id, joined_at FROM {MEMBER_SNAPSHOT}"
            )
        connection.execute(
            "UPDATE segments_segment SET size = (SELECT count(*) FROM segments_segmentmember"
            " WHERE segment_id = %(id)s), refreshed_at = NULL WHERE id = %(id)s",
            {"id": segment_id},
        )
    _settle(url, "segments_segmentmember, segments_segment, segments_segmentrefresh")


def _hand_refresh(url: str, segment_id: int, now: dt.datetime) -> float:
    with database.connect(url) as connection:
        started = time.perf_counter()
        with connection.transaction():
            connection.execute(HAND_REFRESH_SQL, {"segment": segment_id, "now": now})
        return time.perf_counter() - started


def _members_of_day_before(context: Context, data: SegmentsData) -> None:
    """A snapshot of the members as of the day before NOW (metrics then, refreshed then)."""
    if context.shared.get("segments_members_snapshot"):
        return
    yesterday = NOW - dt.timedelta(days=1)
    _hand_metrics(data.url, yesterday)
    _members_reset(data.url, data.segment_id, day_before=False)
    _hand_refresh(data.url, data.segment_id, yesterday)
    with database.connect(data.url) as connection:
        connection.execute(f"DROP TABLE IF EXISTS {MEMBER_SNAPSHOT}")
        connection.execute(
            f"CREATE TABLE {MEMBER_SNAPSHOT} AS SELECT * FROM segments_segmentmember "
            f"WHERE segment_id = {int(data.segment_id)}"
        )
    _hand_metrics(data.url, NOW)
    _settle(data.url, "customers_customermetrics")
    context.shared["segments_members_snapshot"] = True
    context.shared["segments_metrics_today"] = True


def run_segment_refresh(context: Context) -> None:
    data = segments_data(context)
    _members_of_day_before(context, data)
    load_before = os.getloadavg()[0]
    print(
        f"segment_refresh: a segment of about 300,000 of {data.customers:,} customers "
        f"(active, spend score 3+), as of {NOW.isoformat()}, best of {REFRESH_ROUNDS}"
    )
    for title, day_before in (
        ("first refresh (no members yet)", False),
        ("next day's refresh (members as of the day before)", True),
    ):
        hand_times: list[float] = []
        our_runs: list[ChildRun] = []
        hand_state: tuple[Any, ...] = ()
        our_state: tuple[Any, ...] = ()
        for _round in range(REFRESH_ROUNDS):
            _members_reset(data.url, data.segment_id, day_before=day_before)
            hand_times.append(_hand_refresh(data.url, data.segment_id, NOW))
            hand_state = _members_state(data.url, data.segment_id)
            _members_reset(data.url, data.segment_id, day_before=day_before)
            our_runs.append(
                _run_ours(context, data, "refresh_segment", str(data.segment_id), NOW.isoformat())
            )
            our_state = _members_state(data.url, data.segment_id)
        ours = min(our_runs, key=lambda run: run.seconds)
        result = ours.result
        print(
            f"  {title}: size {result['size']:,}, joined {result['joined']:,}, "
            f"left {result['left']:,}"
        )
        report.print_times(hand_times, our_runs)
        ratio = ours.seconds / min(hand_times)
        passed = report.print_verdict(
            ratio, aim=REFRESH_AIM, same=hand_state == our_state, ours=ours
        )
        if not passed:
            _members_reset(data.url, data.segment_id, day_before=day_before)
            _explain(
                context,
                data,
                ours,
                HAND_REFRESH_SQL,
                {"segment": data.segment_id, "now": NOW},
                "refresh_segment",
                str(data.segment_id),
                NOW.isoformat(),
            )
    report.print_load(load_before)
