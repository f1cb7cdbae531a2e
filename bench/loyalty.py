"""Loyalty at scale: our tier recompute and points award beside hand-written SQL.

The data is made in SQL on a database of its own (the benchmark database's name + "_loyalty"),
deterministic (hashes of the row number and the seed, never random()): 1,000,000 customers,
5,000,000 orders over the two years before NOW (about 5 % refunded, 10 to 2,000 yuan, skewed so
that few customers buy often), 1,000,000 review/share/sign_in events, and a membership for every
customer at a varied tier, some of them already inside their downgrade grace period.
--customers and --orders scale it down (events: a fifth of the orders).

Each measurement runs ours (the service, in a child process, as its RQ job calls it) and a
hand-written SQL that does the same work, from the same starting state: before a tier recompute
or a first award the loyalty tables are restored from a snapshot taken after the set-up; each
catch-up award starts from the ledger our first award wrote and is undone after it ran (its
entries deleted, its points taken off the balances); the tables are vacuumed, analysed and
checkpointed in between. The end states are compared (a checksum of every column both sides
write), so neither side can win by doing less.

- tiers_recompute: recompute_tiers(now=NOW) against one statement (the growth per member, the
  tier it earns by a LATERAL ... ORDER BY rank DESC LIMIT 1, the membership UPDATE and the tier
  change INSERT as data-modifying CTEs).
- points_award: award_points on the whole history (now=NOW - 1 day: every order and event earns
  for the first time), then the catch-up run at NOW that the after-ingest job makes (a day of new
  orders and events against the whole ledger); against one statement: a single INSERT ... SELECT
  of the order and event entries (the daily cap by a running SUM OVER the day) ON CONFLICT DO
  NOTHING, RETURNING into the balance UPDATE and the batch totals.

Aim: ours within 1.5 times the hand-written SQL. A miss prints the plans (EXPLAIN ANALYZE,
BUFFERS) of our slowest statements and of the hand-written one.
"""

from __future__ import annotations

import datetime as dt
import os
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from bench import database, generate, report, sqldata
from bench.context import ChildRun, Context

DEFAULT_CUSTOMERS = 1_000_000
DEFAULT_ORDERS = 5_000_000
ORDERS_PER_EVENT = 5  # 1,000,000 events for 5,000,000 orders
AIM_RATIO = 1.5  # ours at most this many times the hand-written SQL's seconds
TIERS_ROUNDS = 2  # each side's best of this many: one recompute takes seconds, noise matters
CATCH_UP_ROUNDS = 3  # the same for the catch-up award
EXPLAIN_STATEMENTS = 2  # our slowest statements whose plans a miss prints

ZONE = "Asia/Shanghai"  # settings.TIME_ZONE, which decides a day and a year
NOW = dt.datetime(2025, 7, 1, tzinfo=generate.SHANGHAI)
HISTORY = dt.timedelta(days=730)
FIRST_AWARD_AT = NOW - dt.timedelta(days=1)
REFUNDED_PERCENT = 5
SNAPSHOTS = {  # table: its copy as the set-up left it
    "loyalty_membership": "bench_loyalty_membership",
    "loyalty_tierchange": "bench_loyalty_tierchange",
}
LEDGER_TABLES = ("loyalty_pointsentry", "loyalty_pointsbatch")


@dataclass(frozen=True)
class LoyaltyData:
    url: str
    customers: int
    orders: int
    events: int


# --- the data ----------------------------------------------------------------------------------

EVENTS_SQL = f"""
    INSERT INTO customers_event (event_id, customer_id, name, occurred_at, properties, created_at)
    SELECT 'L' || lpad(i::text, 9, '0'), {sqldata.CUSTOMER_SQL},
           (ARRAY['sign_in', 'sign_in', 'review', 'share'])[1 + mod(h.s, 4)], {sqldata.WHEN_SQL},
           '{{}}'::jsonb, now()
    FROM generate_series(1, %(count)s) AS i {sqldata.HASHES_SQL}
"""
JOINED_SQL = """
    INSERT INTO loyalty_tierchange (customer_id, from_tier_id, to_tier_id, reason, spend,
                                    orders_count, window_days, changed_at)
    SELECT customer_id, NULL, tier_id, 'joined', 0, 0, %(window_days)s, joined_at
    FROM loyalty_membership
"""


def loyalty_url(url: str) -> str:
    """The benchmark database's URL with "_loyalty" after its name."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}_loyalty"))


def loyalty_data(context: Context) -> LoyaltyData:
    """The loyalty database of this run, made when the first loyalty benchmark asks for it."""
    data = context.shared.get("loyalty")
    if data is None:
        data = _make_data(context)
        context.shared["loyalty"] = data
    assert isinstance(data, LoyaltyData)
    return data


def _make_data(context: Context) -> LoyaltyData:
    options = context.options
    customers = options.customers if "customers" in options.given else DEFAULT_CUSTOMERS
    orders = options.orders if "orders" in options.given else DEFAULT_ORDERS
    data = LoyaltyData(
        url=loyalty_url(context.url),
        customers=customers,
        orders=orders,
        events=max(1, orders // ORDERS_PER_EVENT),
    )
    started = time.perf_counter()
    database.create_fresh(data.url)
    migrated = time.perf_counter() - started
    customer_seconds = database.insert_customers(data.url, customers)
    started = time.perf_counter()
    with database.connect(data.url) as connection:
        first_customer = sqldata.customer_range(connection, customers)
        spread = HISTORY.total_seconds() - 3600  # the jitter stays inside the history
        common = {
            "seed": options.seed,
            "first_customer": first_customer,
            "customers": customers,
            "start": NOW - HISTORY,
            "spread": spread,
            "refunded_percent": REFUNDED_PERCENT,
            "now": NOW,
        }
        connection.execute(sqldata.ORDERS_SQL, common | {"count": data.orders})
        orders_seconds = time.perf_counter() - started
        connection.execute(EVENTS_SQL, common | {"count": data.events, "seed": options.seed + 2})
        connection.execute(sqldata.MEMBERSHIPS_SQL, common)
        window_days = _settings(connection)["growth_window_days"]
        connection.execute(JOINED_SQL, {"window_days": window_days})
        connection.execute(
            "VACUUM ANALYZE customers_order, customers_event, loyalty_membership, "
            "loyalty_tierchange"
        )
        for table, snapshot in SNAPSHOTS.items():
            connection.execute(f"DROP TABLE IF EXISTS {snapshot}")
            connection.execute(f"CREATE TABLE {snapshot} AS SELECT * FROM {table}")
    print(
        f"setup: fresh database {database.connect_kwargs(data.url)['dbname']} migrated in "
        f"{migrated:.1f} s; {customers:,} customers in {customer_seconds:.1f} s, "
        f"{data.orders:,} orders in {orders_seconds:.1f} s, then {data.events:,} events and "
        f"{customers:,} memberships in {time.perf_counter() - started - orders_seconds:.1f} s, "
        f"all in SQL"
    )
    return data


def _settings(connection: Any) -> dict[str, Any]:
    return sqldata.settings_row(connection, "loyalty_loyaltysettings")


def _reset(url: str) -> None:
    """Back to the state the set-up left: no ledger, the snapshot's memberships and changes."""
    with database.connect(url) as connection:
        with connection.transaction():
            connection.execute(f"TRUNCATE {', '.join([*LEDGER_TABLES, *SNAPSHOTS])}")
            for table, snapshot in SNAPSHOTS.items():
                connection.execute(f"INSERT INTO {table} SELECT * FROM {snapshot}")
        connection.execute(f"VACUUM ANALYZE {', '.join([*LEDGER_TABLES, *SNAPSHOTS])}")
        _settle(connection)


def _settle(connection: Any) -> None:
    """Write dirty pages out and read the orders and events, so that no run pays for another."""
    connection.execute("CHECKPOINT")
    connection.execute("SELECT sum(amount) FROM customers_order").fetchone()
    connection.execute("SELECT sum(length(name)) FROM customers_event").fetchone()


def _tiers_state(url: str) -> tuple[Any, ...]:
    return sqldata.fingerprint(
        url,
        "loyalty_membership",
        "customer_id, tier_id, tier_since, below_tier_since, points_balance, pending_points, "
        "joined_at",
    ) + sqldata.fingerprint(
        url,
        "loyalty_tierchange",
        "customer_id, from_tier_id, to_tier_id, reason, spend, orders_count, window_days, "
        "changed_at",
    )


def _points_state(url: str) -> tuple[Any, ...]:
    # Not the ids, batch ids and creation times: those differ between any two runs.
    ledger = sqldata.fingerprint(
        url,
        "loyalty_pointsentry",
        "customer_id, kind, bucket, delta, rule_id, source_id, idempotency_key, reason, "
        "earned_on, effective_at, available_at, expires_at, created_by_id",
    )
    balances = sqldata.fingerprint(
        url, "loyalty_membership", "customer_id, points_balance, pending_points"
    )
    batches = sqldata.fingerprint(
        url, "loyalty_pointsbatch", "kind, as_of, entries_count, points_total"
    )
    return ledger + balances + batches


# --- tiers -------------------------------------------------------------------------------------

# One statement: the plan once (a MATERIALIZED CTE), read by the UPDATE and the INSERT.
HAND_TIERS_SQL = """
    WITH growth AS (
        SELECT customer_id, sum(amount) AS spend, count(*) AS orders_count
        FROM customers_order
        WHERE status = 'paid' AND placed_at > %(window_start)s AND placed_at <= %(now)s
        GROUP BY customer_id
    ),
    plan AS MATERIALIZED (
        SELECT m.customer_id, m.tier_id AS from_tier_id, q.id AS to_tier_id,
               coalesce(g.spend, 0) AS spend, coalesce(g.orders_count, 0) AS orders_count,
               CASE WHEN q.rank > t.rank THEN 'upgrade'
                    WHEN q.rank < t.rank
                         AND coalesce(m.below_tier_since, %(now)s) <= %(grace_cutoff)s
                         THEN 'downgrade'
                    WHEN q.rank < t.rank AND m.below_tier_since IS NULL THEN 'grace_start'
                    WHEN q.rank < t.rank THEN 'in_grace'
                    WHEN m.below_tier_since IS NOT NULL THEN 'grace_clear'
               END AS action
        FROM loyalty_membership m
        JOIN loyalty_tier t ON t.id = m.tier_id
        LEFT JOIN growth g ON g.customer_id = m.customer_id
        CROSS JOIN LATERAL (
            SELECT q.id, q.rank FROM loyalty_tier q
            WHERE q.min_spend <= coalesce(g.spend, 0)
              AND q.min_orders <= coalesce(g.orders_count, 0)
            ORDER BY q.rank DESC LIMIT 1
        ) q
    ),
    moved AS (
        UPDATE loyalty_membership m
        SET tier_id = CASE WHEN p.action IN ('upgrade', 'downgrade') THEN p.to_tier_id
                           ELSE m.tier_id END,
            tier_since = CASE WHEN p.action IN ('upgrade', 'downgrade') THEN %(now)s
                              ELSE m.tier_since END,
            below_tier_since = CASE WHEN p.action = 'grace_start' THEN %(now)s END
        FROM plan p
        WHERE m.customer_id = p.customer_id
          AND p.action IN ('upgrade', 'downgrade', 'grace_start', 'grace_clear')
    )
    INSERT INTO loyalty_tierchange (customer_id, from_tier_id, to_tier_id, reason, spend,
                                    orders_count, window_days, changed_at)
    SELECT customer_id, from_tier_id, to_tier_id, action, spend, orders_count,
           %(window_days)s, %(now)s
    FROM plan WHERE action IN ('upgrade', 'downgrade')
"""


def _tiers_params(url: str) -> dict[str, Any]:
    with database.connect(url) as connection:
        settings = _settings(connection)
    return {
        "now": NOW,
        "window_start": NOW - dt.timedelta(days=settings["growth_window_days"]),
        "grace_cutoff": NOW - dt.timedelta(days=settings["downgrade_grace_days"]),
        "window_days": settings["growth_window_days"],
    }


def _hand_tiers(url: str) -> float:
    params = _tiers_params(url)
    with database.connect(url) as connection:
        started = time.perf_counter()
        with connection.transaction():
            connection.execute(HAND_TIERS_SQL, params)
        return time.perf_counter() - started


def run_tiers_recompute(context: Context) -> None:
    data = loyalty_data(context)
    load_before = os.getloadavg()[0]
    hand_times: list[float] = []
    our_runs: list[ChildRun] = []
    hand_state: tuple[Any, ...] = ()
    our_state: tuple[Any, ...] = ()
    for _round in range(TIERS_ROUNDS):
        _reset(data.url)
        hand_times.append(_hand_tiers(data.url))
        hand_state = _tiers_state(data.url)
        _reset(data.url)
        our_runs.append(_run_ours(context, data, "recompute_tiers", NOW))
        our_state = _tiers_state(data.url)
    hand = min(hand_times)
    ours = min(our_runs, key=lambda run: run.seconds)
    ratio = ours.seconds / hand
    result = ours.result
    print(
        f"tiers_recompute: {data.customers:,} members, {data.orders:,} orders, "
        f"as of {NOW.isoformat()} (best of {TIERS_ROUNDS})"
    )
    print(
        f"  upgraded {result['upgraded']:,}, downgraded {result['downgraded']:,}, grace started "
        f"{result['grace_started']:,}, grace cleared {result['grace_cleared']:,}, still in grace "
        f"{result['still_in_grace']:,}, unchanged {result['unchanged']:,}"
    )
    report.print_times(hand_times, our_runs)
    report.print_verdict(ratio, aim=AIM_RATIO, same=hand_state == our_state, ours=ours)
    if ratio > AIM_RATIO:
        _explain(context, data, "recompute_tiers", NOW, ours, HAND_TIERS_SQL, _tiers_params)
    report.print_load(load_before)


# --- points ------------------------------------------------------------------------------------

_ENTRY_COLUMNS = (
    "customer_id, kind, bucket, delta, rule_id, source_id, idempotency_key, reason, earned_on, "
    "effective_at, available_at, expires_at, batch_id, created_by_id, created_at"
)
# Points earned in a local year expire at the start of the year expiry_years_after + 1 later.
_EXPIRES = (
    "make_timestamptz(extract(year FROM {column} AT TIME ZONE %(zone)s)::int "
    "+ %(expiry_years_after)s + 1, 1, 1, 0, 0, 0, %(zone)s)"
)
# One statement: the new entries of orders and of events in one INSERT ... SELECT, sorted by
# source so that every candidate is read before the first row is written (the statement reads
# the ledger it writes), RETURNING into the balance UPDATE and the batch totals.
HAND_AWARD_SQL = f"""
    WITH order_rows AS (
        SELECT o.customer_id, 'order_earn' AS kind, 'pending' AS bucket,
               floor(o.amount * r.points) AS delta, r.id AS rule_id, o.id AS source_id,
               'order:' || o.id || ':earn' AS idempotency_key, '' AS reason,
               (o.placed_at AT TIME ZONE %(zone)s)::date AS earned_on,
               o.placed_at AS effective_at,
               o.placed_at + %(return_window_days)s * interval '1 day' AS available_at,
               {{order_expires}} AS expires_at
        FROM customers_order o
        JOIN loyalty_membership m ON m.customer_id = o.customer_id
        JOIN loyalty_pointsrule r ON r.event_name = 'order' AND r.is_active
        WHERE o.status = 'paid' AND o.placed_at <= %(now)s
          AND (r.active_since IS NULL OR o.placed_at >= r.active_since)
          AND NOT EXISTS (SELECT 1 FROM loyalty_pointsentry p
                          WHERE p.kind = 'order_earn' AND p.source_id = o.id)
    ),
    candidates AS MATERIALIZED (
        SELECT e.id AS source_id, e.customer_id, e.occurred_at, r.id AS rule_id, r.points,
               r.daily_cap, (e.occurred_at AT TIME ZONE %(zone)s)::date AS day
        FROM customers_event e
        JOIN loyalty_membership m ON m.customer_id = e.customer_id
        JOIN loyalty_pointsrule r
             ON r.event_name = e.name AND r.is_active AND r.event_name <> 'order'
        WHERE e.occurred_at <= %(now)s
          AND (r.active_since IS NULL OR e.occurred_at >= r.active_since)
          AND NOT EXISTS (SELECT 1 FROM loyalty_pointsentry p
                          WHERE p.kind = 'event_earn' AND p.source_id = e.id)
    ),
    -- What capped rules already paid on the days of the candidates.
    earlier AS (
        SELECT p.customer_id, p.rule_id, p.earned_on, sum(p.delta) AS points
        FROM loyalty_pointsentry p
        WHERE p.kind = 'event_earn'
          AND (p.customer_id, p.rule_id, p.earned_on) IN (
              SELECT customer_id, rule_id, day FROM candidates WHERE daily_cap IS NOT NULL)
        GROUP BY p.customer_id, p.rule_id, p.earned_on
    ),
    event_rows AS (
        SELECT customer_id, 'event_earn' AS kind, 'available' AS bucket, earned AS delta,
               rule_id, source_id, 'event:' || source_id || ':earn' AS idempotency_key,
               CASE WHEN earned < points THEN 'daily cap' ELSE '' END AS reason,
               day AS earned_on, occurred_at AS effective_at,
               NULL::timestamptz AS available_at, {{event_expires}} AS expires_at
        FROM (
            SELECT k.*,
                   CASE WHEN k.daily_cap IS NULL OR k.running <= k.daily_cap THEN k.points
                        WHEN k.running - k.points >= k.daily_cap THEN 0
                        ELSE k.daily_cap - (k.running - k.points) END AS earned
            FROM (
                SELECT c.*, coalesce(a.points, 0) + sum(c.points) OVER (
                           PARTITION BY c.customer_id, c.rule_id, c.day
                           ORDER BY c.occurred_at, c.source_id
                           ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running
                FROM candidates c
                LEFT JOIN earlier a ON a.customer_id = c.customer_id
                     AND a.rule_id = c.rule_id AND a.earned_on = c.day
            ) k
        ) x
    ),
    entries AS (
        INSERT INTO loyalty_pointsentry ({_ENTRY_COLUMNS})
        SELECT customer_id, kind, bucket, delta, rule_id, source_id, idempotency_key, reason,
               earned_on, effective_at, available_at, expires_at, %(batch)s, NULL, now()
        FROM (SELECT * FROM order_rows UNION ALL SELECT * FROM event_rows) n
        ORDER BY kind, source_id
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING customer_id, bucket, delta
    ),
    totals AS (
        UPDATE loyalty_pointsbatch
        SET entries_count = (SELECT count(*) FROM entries),
            points_total = (SELECT coalesce(sum(delta), 0) FROM entries)
        WHERE id = %(batch)s
    )
    UPDATE loyalty_membership m
    SET points_balance = m.points_balance + s.available,
        pending_points = m.pending_points + s.pending
    FROM (SELECT customer_id,
                 coalesce(sum(delta) FILTER (WHERE bucket = 'available'), 0) AS available,
                 coalesce(sum(delta) FILTER (WHERE bucket = 'pending'), 0) AS pending
          FROM entries GROUP BY customer_id) s
    WHERE m.customer_id = s.customer_id
"""


def _award_sql_and_params(url: str, now: dt.datetime) -> tuple[str, dict[str, Any]]:
    with database.connect(url) as connection:
        settings = _settings(connection)
    expires = _EXPIRES if settings["points_expire"] else "NULL::timestamptz"
    sql = HAND_AWARD_SQL.format(
        order_expires=expires.format(column="o.placed_at"),
        event_expires=expires.format(column="occurred_at"),
    )
    params = {
        "now": now,
        "zone": ZONE,
        "return_window_days": settings["return_window_days"],
        "expiry_years_after": settings["expiry_years_after"],
    }
    return sql, params


def _hand_award(url: str, now: dt.datetime) -> float:
    sql, params = _award_sql_and_params(url, now)
    with database.connect(url) as connection:
        started = time.perf_counter()
        with connection.transaction():
            row = connection.execute(
                "INSERT INTO loyalty_pointsbatch (kind, as_of, entries_count, points_total, "
                "created_at) VALUES ('award', %s, 0, 0, now()) RETURNING id",
                [now],
            ).fetchone()
            assert row is not None
            connection.execute(sql, params | {"batch": row[0]})
        return time.perf_counter() - started


def run_points_award(context: Context) -> None:
    data = loyalty_data(context)
    load_before = os.getloadavg()[0]

    _reset(data.url)
    hand_first = _hand_award(data.url, FIRST_AWARD_AT)
    hand_first_state = _points_state(data.url)
    _reset(data.url)
    ours_first = _run_ours(context, data, "award_points", FIRST_AWARD_AT)
    ours_first_state = _points_state(data.url)

    # Both catch-ups start from the ledger our first run wrote; each is undone after it runs.
    _settle_ledger(data.url)
    hand_catch_up: list[float] = []
    ours_catch_up: list[ChildRun] = []
    hand_state: tuple[Any, ...] = ()
    our_state: tuple[Any, ...] = ()
    for round_number in range(CATCH_UP_ROUNDS):
        hand_catch_up.append(_hand_award(data.url, NOW))
        if round_number == 0:
            hand_state = _points_state(data.url)
        _undo_last_batch(data.url)
        ours_catch_up.append(_run_ours(context, data, "award_points", NOW))
        if round_number == 0:
            our_state = _points_state(data.url)
        _undo_last_batch(data.url)

    print(
        f"points_award: {data.customers:,} members, {data.orders:,} orders, {data.events:,} events"
    )
    for title, hand_times, our_runs, same, now in (
        ("first run", [hand_first], [ours_first], hand_first_state == ours_first_state,
         FIRST_AWARD_AT),
        (f"catch-up (best of {CATCH_UP_ROUNDS})", hand_catch_up, ours_catch_up,
         hand_state == our_state, NOW),
    ):  # fmt: skip
        ours = min(our_runs, key=lambda run: run.seconds)
        result = ours.result
        print(
            f"  {title}, as of {now.isoformat()}: {result['entries_count']:,} entries, "
            f"{result['points_total']:,} points"
        )
        report.print_times(hand_times, our_runs)
        ratio = ours.seconds / min(hand_times)
        report.print_verdict(ratio, aim=AIM_RATIO, same=same, ours=ours)
        if ratio > AIM_RATIO:
            if now == FIRST_AWARD_AT:
                _reset(data.url)
            _explain(
                context,
                data,
                "award_points",
                now,
                ours,
                *_award_sql_and_params(data.url, now),
                prepare_hand=_batch_row_sql(now),
            )
            if now == NOW:
                _undo_last_batch(data.url)
    report.print_load(load_before)


def _settle_ledger(url: str) -> None:
    """The ledger as it stands between two runs: vacuumed, analysed, its pages written out."""
    with database.connect(url) as connection:
        connection.execute(f"VACUUM ANALYZE loyalty_membership, {', '.join(LEDGER_TABLES)}")
        _settle(connection)


def _undo_last_batch(url: str) -> None:
    """Take out the newest batch: its entries, what it added to balances, the batch row."""
    with database.connect(url) as connection, connection.transaction():
        row = connection.execute("SELECT max(id) FROM loyalty_pointsbatch").fetchone()
        assert row is not None
        connection.execute(UNDO_BALANCES_SQL, {"batch": row[0]})
        connection.execute(
            "DELETE FROM loyalty_pointsentry WHERE batch_id = %(batch)s", {"batch": row[0]}
        )
        connection.execute(
            "DELETE FROM loyalty_pointsbatch WHERE id = %(batch)s", {"batch": row[0]}
        )
    _settle_ledger(url)


UNDO_BALANCES_SQL = """
    UPDATE loyalty_membership m
    SET points_balance = m.points_balance - s.available,
        pending_points = m.pending_points - s.pending
    FROM (SELECT customer_id,
                 coalesce(sum(delta) FILTER (WHERE bucket = 'available'), 0) AS available,
                 coalesce(sum(delta) FILTER (WHERE bucket = 'pending'), 0) AS pending
          FROM loyalty_pointsentry WHERE batch_id = %(batch)s GROUP BY customer_id) s
    WHERE m.customer_id = s.customer_id
"""


def _batch_row_sql(now: dt.datetime) -> str:
    return (
        f"INSERT INTO loyalty_pointsbatch (kind, as_of, entries_count, points_total, created_at) "
        f"VALUES ('award', '{now.isoformat()}', 0, 0, now())"
    )


# --- reporting ---------------------------------------------------------------------------------


def _run_ours(
    context: Context,
    data: LoyaltyData,
    operation: str,
    now: dt.datetime,
    *,
    explain: list[str] | None = None,
) -> ChildRun:
    # The services log a line per run at INFO; this output is the benchmark's.
    env = {"LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING")}
    if explain:
        env["BENCH_EXPLAIN"] = ",".join(explain)
    return context.run_child(operation, now.isoformat(), url=data.url, env=env)


def _explain(
    context: Context,
    data: LoyaltyData,
    operation: str,
    now: dt.datetime,
    ours: ChildRun,
    hand_sql: str,
    hand_params: Any,
    *,
    prepare_hand: str | None = None,
) -> None:
    """Print the plans of our slowest statements and of the hand-written one; the database
    must be in the state the measured runs started from, and is left so."""
    params = hand_params(data.url) if callable(hand_params) else hand_params
    numbers = [str(timing["number"]) for timing in ours.slowest[:EXPLAIN_STATEMENTS]]
    with database.connect(data.url) as connection, connection.transaction(force_rollback=True):
        if prepare_hand:
            connection.execute(prepare_hand)
            row = connection.execute("SELECT max(id) FROM loyalty_pointsbatch").fetchone()
            assert row is not None
            params = params | {"batch": row[0]}
        plan = connection.execute(f"EXPLAIN (ANALYZE, BUFFERS) {hand_sql}", params)
        hand_plan = "\n".join(line for (line,) in plan.fetchall())
    print("    plan of the hand-written SQL:")
    print(report.indent(hand_plan))
    explained = _run_ours(context, data, operation, now, explain=numbers)
    for number in numbers:
        sql = next(timing["sql"] for timing in ours.slowest if str(timing["number"]) == number)
        print(f"    plan of our statement #{number}: {report.condensed(sql)}")
        print(report.indent(explained.plans.get(number, "(not run this time)")))
