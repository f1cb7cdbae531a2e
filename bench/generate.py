"""Deterministic benchmark data: customers made in SQL, orders streamed to a CSV file.

The orders file is what a shop exports: one row per order, in time order, ids increasing, most
times with a +08:00 offset and some naive (read in the project's time zone). It is cached in
bench/out/ under a name that carries every parameter, so a second run reuses it.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import random
from collections.abc import Iterator
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent / "out"
# Bump when the rows generated for the same parameters change, so cached files are not reused.
GENERATOR_VERSION = 1
MAX_CUSTOMERS = 9_999_999  # external ids are C + 7 digits

CATEGORIES = ("美妆", "母婴", "服饰", "食品", "数码")
CATEGORY_WEIGHTS = (30, 12, 28, 20, 10)
ORDER_CHANNELS = ("tmall", "jd", "douyin", "pinduoduo", "mini_program", "app")
ORDER_CHANNEL_WEIGHTS = (30, 20, 20, 12, 10, 8)
REFUNDED_SHARE = 0.04
NAIVE_SHARE = 0.1  # rows whose placed_at has no offset
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
FIRST_ORDER_AT = dt.datetime(2023, 7, 1, tzinfo=SHANGHAI)
ORDER_SPAN = dt.timedelta(days=730)


def customer_external_id(number: int) -> str:
    return f"C{number:07d}"


def customers_sql(count: int) -> tuple[str, list[object]]:
    """One INSERT ... SELECT generate_series making `count` customers C0000001...; seconds."""
    if not 1 <= count <= MAX_CUSTOMERS:
        raise ValueError(f"customers must be between 1 and {MAX_CUSTOMERS}")
    # Varied but deterministic values from i alone; registered before the first order. (%% is
    # the modulo operator: the statement has a parameter.)
    sql = """
        INSERT INTO customers_customer (
            external_id, name, phone, email, wechat_openid, gender, birth_date, city, channel,
            registered_at, last_seen_at, sms_opt_in, email_opt_in, push_opt_in, wechat_opt_in,
            unsubscribed_at, attributes, created_at, updated_at)
        SELECT
            'C' || lpad(i::text, 7, '0'),
            '客户' || i,
            '+861' || lpad(((i::bigint * 7919) %% 10000000000)::text, 10, '0'),
            CASE WHEN i %% 4 = 0 THEN '' ELSE 'c' || i || '@example.com' END,
            CASE WHEN i %% 3 = 0 THEN '' ELSE 'o' || md5(i::text) END,
            (ARRAY['f', 'f', 'm', 'u'])[1 + i %% 4],
            CASE WHEN i %% 5 = 0 THEN NULL ELSE date '1965-01-01' + (i * 37) %% 14000 END,
            (ARRAY['上海', '北京', '杭州', '广州', '深圳', '成都', '武汉', '南京'])[1 + i %% 8],
            (ARRAY['app', 'mini_program', 'web', 'store', 'other'])[1 + i %% 5],
            timestamptz '2021-01-01 00:00+08' + ((i::bigint * 7727) %% 78796800) * interval '1 s',
            NULL,
            i %% 10 <> 0, i %% 7 <> 0, true, i %% 2 = 0,
            NULL,
            '{}'::jsonb,
            now(), now()
        FROM generate_series(1, %s) AS i
    """
    return sql, [count]


def orders_csv_path(*, orders: int, customers: int, seed: int, out_dir: Path = OUT_DIR) -> Path:
    return out_dir / f"orders-n{orders}-c{customers}-s{seed}-v{GENERATOR_VERSION}.csv"


def orders_csv(*, orders: int, customers: int, seed: int, out_dir: Path = OUT_DIR) -> Path:
    """The orders file for these parameters, written once (streamed, flat memory) then reused."""
    path = orders_csv_path(orders=orders, customers=customers, seed=seed, out_dir=out_dir)
    if path.exists():
        return path
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".csv.partial")
    with open(partial, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(
            ["order_id", "customer_id", "placed_at", "amount", "status", "channel", "category"]
        )
        writer.writerows(_order_rows(orders=orders, customers=customers, seed=seed))
    os.replace(partial, path)
    return path


def _order_rows(*, orders: int, customers: int, seed: int) -> Iterator[tuple[str, ...]]:
    rng = random.Random(seed)
    random_value = rng.random
    span_seconds = ORDER_SPAN.total_seconds()
    start = FIRST_ORDER_AT.replace(tzinfo=None)
    step = dt.timedelta(seconds=1)
    categories = rng.choices(CATEGORIES, CATEGORY_WEIGHTS, k=1024)
    channels = rng.choices(ORDER_CHANNELS, ORDER_CHANNEL_WEIGHTS, k=1024)
    for number in range(1, orders + 1):
        # Time order with up to an hour of jitter, as exports sorted by creation time look.
        seconds = int(span_seconds * number / orders + 3600 * random_value())
        placed = (start + step * seconds).strftime("%Y-%m-%dT%H:%M:%S")
        is_naive = random_value() < NAIVE_SHARE
        placed_at = placed.replace("T", " ") if is_naive else placed + "+08:00"
        # Few customers buy often: the square skews orders towards low customer numbers.
        customer = 1 + int(customers * random_value() ** 2)
        amount = max(1.0, rng.lognormvariate(5.0, 0.8))
        yield (
            f"O{number:09d}",
            customer_external_id(customer),
            placed_at,
            f"{amount:.2f}",
            "refunded" if random_value() < REFUNDED_SHARE else "paid",
            channels[int(random_value() * 1024)],
            categories[int(random_value() * 1024)],
        )
