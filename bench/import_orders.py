"""Import a million orders with our CSV import, against a bare COPY of the same file.

Ours is customers.ingest.csv_import.import_file("orders", path), the code behind
`manage.py import_orders FILE` and the upload page: it parses and validates every row in Python,
stages each chunk with COPY, reports repeated ids and unknown customers, and inserts into the
orders table (unique order id, customer foreign key, indexes, a check) joined to customers.
Ours runs in a child process so that its peak memory is its own.

Two yardsticks, from the same file in the same run:
- bare COPY: the file into a table with the same column types and nothing else, the fastest
  PostgreSQL can take these rows;
- database floor: one INSERT ... SELECT of those copied rows into a table shaped like the orders
  table (its indexes, unique and check constraints, deferred foreign key), joined to customers:
  what writing the rows costs the database alone, with no parsing and no checks of ours.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench import database
from bench.context import Context

AIM_RATIO = 1 / 3  # ours at least a third of the bare COPY rate
AIM_PEAK_MIB = 300  # peak resident memory of our import process
COPY_TABLE = "bench_orders_copy"
FLOOR_TABLE = "bench_orders_floor"


def run(context: Context) -> None:
    context.database()
    path = context.orders_csv()
    rows = context.options.orders
    load_before = os.getloadavg()[0]

    context.checkpoint()
    copy_seconds = _bare_copy(context.url, path)
    copied = _count(context.url, COPY_TABLE)

    context.checkpoint()
    ours = context.run_child("import_orders", str(path))
    imported = _count(context.url, "customers_order")

    context.checkpoint()
    floor_seconds = _database_floor(context.url)
    floored = _count(context.url, FLOOR_TABLE)
    load_after = os.getloadavg()[0]

    copy_rate = copied / copy_seconds
    our_rate = imported / ours.seconds
    ratio = our_rate / copy_rate
    peak_mib = ours.peak_rss_kib / 1024
    report = ours.result
    print(f"import_orders: {rows:,} orders for {context.options.customers:,} customers")
    print(f"  {'':15} {'rows':>11} {'seconds':>9} {'rows/s':>10}")
    print(f"  {'bare COPY':15} {copied:>11,} {copy_seconds:>9.2f} {copy_rate:>10,.0f}")
    print(
        f"  {'database floor':15} {floored:>11,} {floor_seconds:>9.2f} "
        f"{floored / floor_seconds:>10,.0f}   (INSERT ... SELECT into the orders table's shape)"
    )
    print(
        f"  {'ours':15} {imported:>11,} {ours.seconds:>9.2f} {our_rate:>10,.0f}   "
        f"(process: {ours.wall_seconds:.1f} s with start-up, {ours.cpu_seconds:.1f} s of CPU)"
    )
    print(
        f"  report: {report['status']}, {report['rows_total']:,} rows, "
        f"{report['imported']:,} imported, {report['rejected']:,} rejected"
    )
    for error in report["first_errors"]:
        print(f"    {error}")
    print(
        f"  ratio ours / COPY: {ratio:.3f} (aim >= {AIM_RATIO:.2f}): "
        f"{'PASS' if ratio >= AIM_RATIO else 'MISS'}; "
        f"ours / database floor: {our_rate / (floored / floor_seconds):.2f}"
    )
    print(
        f"  peak memory of ours: {peak_mib:.0f} MiB, {ours.rss_after_setup_kib / 1024:.0f} MiB of "
        f"it after Django set-up (aim < {AIM_PEAK_MIB} MiB): "
        f"{'PASS' if peak_mib < AIM_PEAK_MIB else 'MISS'}"
    )
    cpus = os.cpu_count() or 1
    if max(load_before, load_after) > cpus:
        print(
            f"  note: load average {load_before:.1f} -> {load_after:.1f} on {cpus} CPUs: other "
            f"work shared the machine, so these times are longer than on an idle one"
        )
    if not copied == imported == floored == rows:
        print(f"  WARNING: expected {rows:,} rows in every table")


def _bare_copy(url: str, path: Path) -> float:
    """COPY the file, from the client as psql's \\copy does, into a bare table; seconds."""
    with database.connect(url) as connection:
        connection.execute(f"DROP TABLE IF EXISTS {COPY_TABLE}")
        connection.execute(
            f"CREATE TABLE {COPY_TABLE} (order_id varchar(64), customer_id varchar(64), "
            f"placed_at timestamptz, amount numeric(12, 2), status varchar(10), "
            f"channel varchar(20), category varchar(32))"
        )
        started = time.perf_counter()
        with (
            connection.transaction(),
            connection.cursor() as cursor,
            cursor.copy(f"COPY {COPY_TABLE} FROM STDIN (FORMAT csv, HEADER true)") as copy,
            open(path, "rb") as stream,
        ):
            while block := stream.read(1024 * 1024):
                copy.write(block)
        return time.perf_counter() - started


def _database_floor(url: str) -> float:
    """The copied rows into a copy of the orders table, in one statement; seconds to commit."""
    with database.connect(url) as connection:
        connection.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")
        connection.execute(f"CREATE TABLE {FLOOR_TABLE} (LIKE customers_order INCLUDING ALL)")
        connection.execute(
            f"ALTER TABLE {FLOOR_TABLE} ADD FOREIGN KEY (customer_id) "
            f"REFERENCES customers_customer (id) DEFERRABLE INITIALLY DEFERRED"
        )
        started = time.perf_counter()
        with connection.transaction():  # the deferred foreign-key checks run at its commit
            connection.execute(
                f"INSERT INTO {FLOOR_TABLE} (external_id, customer_id, placed_at, amount, status, "
                f"channel, category, created_at) "
                f"SELECT o.order_id, c.id, o.placed_at, o.amount, o.status, o.channel, "
                f"o.category, now() FROM {COPY_TABLE} o "
                f"JOIN customers_customer c ON c.external_id = o.customer_id "
                f"ON CONFLICT (external_id) DO NOTHING"
            )
        return time.perf_counter() - started


def _count(url: str, table: str) -> int:
    with database.connect(url) as connection:
        row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else 0
