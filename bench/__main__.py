"""`python -m bench [NAME ...] [--orders N] [--customers N] [--list]`: run benchmarks.

With no name, every benchmark in BENCHMARKS runs, in order, on one fresh database. Each is a
function taking the run's Context; add a new one by adding it to BENCHMARKS.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from bench import database, import_orders
from bench.context import Context, Options

BENCHMARKS: dict[str, tuple[Callable[[Context], None], str]] = {
    "import_orders": (
        import_orders.run,
        "CSV import of orders (import_file) against a bare COPY of the same file",
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run benchmarks on a fresh PostgreSQL database (BENCH_DATABASE_URL).",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "--orders", type=_positive, default=Options.orders, help="default %(default)s"
    )
    parser.add_argument(
        "--customers", type=_positive, default=Options.customers, help="default %(default)s"
    )
    parser.add_argument("--seed", type=int, default=Options.seed, help="default %(default)s")
    args = parser.parse_args(argv)
    if args.list:
        for name, (_function, description) in BENCHMARKS.items():
            print(f"{name:20} {description}")
        return 0
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)} (see --list)")
    options = Options(orders=args.orders, customers=args.customers, seed=args.seed)
    reason = database.why_not_available(options.database_url)
    if reason is not None:
        print(
            f"bench: PostgreSQL does not answer at {options.database_url} ({reason}); "
            f"set BENCH_DATABASE_URL to one that does. skipped"
        )
        return 0
    context = Context(options)
    for name in args.names or list(BENCHMARKS):
        BENCHMARKS[name][0](context)
    return 0


def _positive(value: str) -> int:
    number = int(value.replace("_", "").replace(",", ""))
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


if __name__ == "__main__":
    sys.exit(main())
