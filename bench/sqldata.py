"""Benchmark data made in SQL, shared by the benchmarks that need a big database quickly.

Deterministic: hashes of the row number and the seed, never random(). u1..u3 are uniform in
[0, 1) and s a non-negative int, all from two 64-bit hashes of the row number: independent
enough for a benchmark. Rows go in time order over a history with up to an hour of jitter; the
square skews them towards low customer numbers, so that few customers buy (and visit) often.
"""

from __future__ import annotations

from typing import Any

from bench import database

HASHES_SQL = """
    CROSS JOIN LATERAL (SELECT hashint8extended(i, %(seed)s) AS a,
                               hashint8extended(i, %(seed)s + 1) AS b) r
    CROSS JOIN LATERAL (SELECT (r.a & 4294967295)::float8 / 4294967296 AS u1,
                               ((r.a >> 32) & 4294967295)::float8 / 4294967296 AS u2,
                               (r.b & 4294967295)::float8 / 4294967296 AS u3,
                               (r.b >> 32) & 2147483647 AS s) h
"""
CUSTOMER_SQL = "%(first_customer)s + floor(%(customers)s * h.u1 * h.u1)::bigint"
WHEN_SQL = (
    "%(start)s + floor(%(spread)s * (i - 1)::float8 / %(count)s + 3600 * h.u2) "
    "* interval '1 second'"
)
# Parameters: seed, first_customer, customers, start, spread, count, refunded_percent.
ORDERS_SQL = f"""
    INSERT INTO customers_order (
        external_id, customer_id, placed_at, amount, status, channel, category, created_at)
    SELECT 'L' || lpad(i::text, 9, '0'), {CUSTOMER_SQL}, {WHEN_SQL},
           round((10 + 1990 * h.u3 * h.u3)::numeric, 2),
           CASE WHEN mod(h.s, 100) < %(refunded_percent)s THEN 'refunded' ELSE 'paid' END,
           (ARRAY['tmall', 'jd', 'douyin', 'pinduoduo', 'mini_program', 'app'])
               [1 + mod(h.s / 100, 6)],
           (ARRAY['美妆', '母婴', '服饰', '食品', '数码'])[1 + mod(h.s / 600, 5)],
           now()
    FROM generate_series(1, %(count)s) AS i {HASHES_SQL}
"""
# 70 % normal, 15 % silver, 10 % gold, 5 % diamond; a fifth of those above the lowest tier went
# below it 1 to 60 days ago (the grace period is 30 days: half of them have run out of it).
# Parameters: seed, now.
MEMBERSHIPS_SQL = """
    INSERT INTO loyalty_membership (customer_id, tier_id, tier_since, below_tier_since,
                                    points_balance, pending_points, joined_at)
    SELECT c.id, t.id, c.registered_at,
           CASE WHEN t.rank > 0 AND mod(h.s, 5) = 0
                THEN %(now)s - (1 + mod(h.s / 5, 60)) * interval '1 day' END,
           0, 0, c.registered_at
    FROM customers_customer c
    CROSS JOIN LATERAL (SELECT hashint8extended(c.id, %(seed)s + 4) & 2147483647 AS s) h
    JOIN loyalty_tier t ON t.rank = least(
        (SELECT max(rank) FROM loyalty_tier),
        CASE WHEN mod(h.s / 300, 100) < 70 THEN 0 WHEN mod(h.s / 300, 100) < 85 THEN 1
             WHEN mod(h.s / 300, 100) < 95 THEN 2 ELSE 3 END)
"""


def customer_range(connection: Any, customers: int) -> int:
    """The first customer id; the ids must run without gaps (the generators rely on it)."""
    row = connection.execute("SELECT min(id), max(id) FROM customers_customer").fetchone()
    assert row is not None
    assert row[1] - row[0] + 1 == customers, "the customer ids have gaps"
    return int(row[0])


def settings_row(connection: Any, table: str) -> dict[str, Any]:
    """The singleton settings row (pk 1) of table, by column name."""
    cursor = connection.execute(f"SELECT * FROM {table} WHERE id = 1")
    names = [column.name for column in cursor.description]
    row = cursor.fetchone()
    assert row is not None, f"a migration makes the {table} row"
    return dict(zip(names, row, strict=True))


def fingerprint(url: str, table: str, columns: str, where: str = "") -> tuple[Any, ...]:
    """Rows and a checksum of the columns of every row, in no order."""
    with database.connect(url) as connection:
        row = connection.execute(
            f"SELECT count(*), sum(hashtextextended(ROW({columns})::text, 0)::numeric) "
            f"FROM {table} {where}"
        ).fetchone()
    assert row is not None
    return tuple(row)
