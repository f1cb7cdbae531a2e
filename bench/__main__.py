"""`python -m bench [NAME ...] [--orders N] [--customers N] [--list]`: run benchmarks.

With no name, every benchmark in BENCHMARKS runs, in order, on one fresh database (the loyalty
ones on a database of their own). Each is a function taking the run's Context; add a new one by
adding it to BENCHMARKS. A name in GROUPS stands for several benchmarks ("loyalty").
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from bench import database, import_orders, loyalty, segments
from bench.context import Context, Options

BENCHMARKS: dict[str, tuple[Callable[[Context], None], str]] = {
    "import_orders": (
        import_orders.run,
        "CSV import of orders (import_file) against a bare COPY of the same file",
    ),
    "tiers_recompute": (
        loyalty.run_tiers_recompute,
        "recompute_tiers on 1M members and 5M orders against a hand-written SQL",
    ),
    "points_award": (
        loyalty.run_points_award,
        "award_points, first run and catch-up, against a hand-written SQL",
    ),
    "metrics_recompute": (
        segments.run_metrics_recompute,
        "recompute_metrics on 1M customers, 5M orders, 10M events against a hand-written SQL",
    ),
    "segment_preview": (
        segments.run_segment_preview,
        "a five-condition rule preview (count and sample) against a hand-written query",
    ),
    "segment_refresh": (
        segments.run_segment_refresh,
        "refresh of a ~300,000-member segment against a hand-written statement",
    ),
}
# Names that stand for several benchmarks.
GROUPS: dict[str, list[str]] = {
    "loyalty": ["tiers_recompute", "points_award"],
    "segments": ["metrics_recompute", "segment_preview", "segment_refresh"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run benchmarks on a fresh PostgreSQL database (BENCH_DATABASE_URL).",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "--orders",
        type=_positive,
        help=f"default {Options.orders:,} (loyalty: {loyalty.DEFAULT_ORDERS:,})",
    )
    parser.add_argument(
        "--customers",
        type=_positive,
        help=f"default {Options.customers:,} (loyalty: {loyalty.DEFAULT_CUSTOMERS:,})",
    )
    parser.add_argument("--seed", type=int, default=Options.seed, help="default %(default)s")
    args = parser.parse_args(argv)
    if args.list:
        for name, (_function, description) in BENCHMARKS.items():
            print(f"{name:20} {description}")
        for name, members in GROUPS.items():
            print(f"{name:20} {' and '.join(members)}")
        return 0
    unknown = [name for name in args.names if name not in BENCHMARKS and name not in GROUPS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)} (see --list)")
    names = [member for name in args.names for member in GROUPS.get(name, [name])]
    given = frozenset(name for name in ("orders", "customers") if getattr(args, name) is not None)
    options = Options(
        orders=args.orders or Options.orders,
        customers=args.customers or Options.customers,
        seed=args.seed,
        given=given,
    )
    reason = database.why_not_available(options.database_url)
    if reason is not None:
        print(
            f"bench: PostgreSQL does not answer at {options.database_url} ({reason}); "
            f"set BENCH_DATABASE_URL to one that does. skipped"
        )
        return 0
    context = Context(options)
    for name in dict.fromkeys(names or list(BENCHMARKS)):
        BENCHMARKS[name][0](context)
    return 0


def _positive(value: str) -> int:
    number = int(value.replace("_", "").replace(",", ""))
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


if __name__ == "__main__":
    sys.exit(main())
