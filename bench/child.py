"""The measured side of a benchmark, run in its own process: `python -m bench.child NAME ARGS`.

It sets Django up on the benchmark database (DATABASE_URL from the parent), runs one operation
through the project's own code, and prints one JSON line: the seconds the operation took, its
result, and the resident memory after Django's set-up. The parent reads the process's peak
resident memory from the kernel when it reaps it (os.wait4), so this process need not.

Every SQL statement the operation runs is timed; the slowest come back in the JSON line. With
BENCH_EXPLAIN set to statement numbers ("3,5", counted from 1 in the order they ran), each of
those statements is first run under EXPLAIN (ANALYZE, BUFFERS) in a savepoint that is rolled
back, then for real, and the plans come back too.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

SLOWEST_STATEMENTS = 5  # how many of the operation's statements the JSON line reports


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def import_orders(path: str) -> dict[str, Any]:
    from customers.ingest.csv_import import import_file

    report = import_file("orders", path)
    return {key: value for key, value in report.as_dict().items() if key != "errors"} | {
        "first_errors": report.errors[:5]
    }


def recompute_tiers(now_iso: str) -> dict[str, Any]:
    import dataclasses

    from loyalty.services.tiers import recompute_tiers

    return dataclasses.asdict(recompute_tiers(now=dt.datetime.fromisoformat(now_iso)))


def award_points(now_iso: str) -> dict[str, Any]:
    import dataclasses

    from loyalty.services.points import award_points

    result = dataclasses.asdict(award_points(now=dt.datetime.fromisoformat(now_iso)))
    return result | {"as_of": result["as_of"].isoformat()}


def recompute_metrics(as_of_iso: str) -> dict[str, Any]:
    from customers.metrics import recompute_metrics

    result = recompute_metrics(as_of=dt.datetime.fromisoformat(as_of_iso))
    return result.as_json()


def segment_preview(tree_json: str, as_of_iso: str, rounds: str) -> dict[str, Any]:
    """preview_rules run `rounds` times; the seconds of each (the first one warms the caches)."""
    from segments.rules.preview import preview_rules

    tree = json.loads(tree_json)
    as_of = dt.datetime.fromisoformat(as_of_iso)
    times = []
    for _round in range(int(rounds)):
        started = time.perf_counter()
        preview = preview_rules(tree, as_of=as_of)
        times.append(time.perf_counter() - started)
    return {
        "count": preview.count,
        "sample_ids": [customer.pk for customer in preview.sample],
        "sql_ms": preview.sql_ms,
        "round_seconds": times,
    }


def refresh_segment(segment_id: str, as_of_iso: str) -> dict[str, Any]:
    from segments.services.refresh import refresh_segment_members

    refresh = refresh_segment_members(
        segment_id=int(segment_id), as_of=dt.datetime.fromisoformat(as_of_iso)
    )
    if refresh.error:
        raise SystemExit(f"refresh failed: {refresh.error}")
    return {"size": refresh.size, "joined": refresh.joined, "left": refresh.left}


OPERATIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "import_orders": import_orders,
    "recompute_tiers": recompute_tiers,
    "award_points": award_points,
    "recompute_metrics": recompute_metrics,
    "segment_preview": segment_preview,
    "refresh_segment": refresh_segment,
}


@contextmanager
def _statements(explain: set[int]) -> Iterator[tuple[list[dict[str, Any]], dict[int, str]]]:
    """Time every statement on the default connection; EXPLAIN those numbered in explain."""
    from django.db import connection

    timings: list[dict[str, Any]] = []
    plans: dict[int, str] = {}

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any):
        number = len(timings) + 1
        if number in explain and not many:
            cursor = context["cursor"].cursor  # the driver's own: it skips these wrappers
            cursor.execute("SAVEPOINT bench_explain")
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
            plans[number] = "\n".join(row[0] for row in cursor.fetchall())
            cursor.execute("ROLLBACK TO SAVEPOINT bench_explain")
            cursor.execute("RELEASE SAVEPOINT bench_explain")
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            timings.append({"number": number, "seconds": time.perf_counter() - started, "sql": sql})

    with connection.execute_wrapper(wrapper):
        yield timings, plans


def main(argv: list[str]) -> None:
    import django

    django.setup()
    rss_after_setup = _rss_kib()
    operation = OPERATIONS[argv[0]]
    explain = {int(number) for number in os.environ.get("BENCH_EXPLAIN", "").split(",") if number}
    with _statements(explain) as (timings, plans):
        started = time.perf_counter()
        result = operation(*argv[1:])
        seconds = time.perf_counter() - started
    slowest = sorted(timings, key=lambda timing: -timing["seconds"])[:SLOWEST_STATEMENTS]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rss_after_setup_kib": rss_after_setup,
                "result": result,
                "statements": len(timings),
                "slowest": slowest,
                "plans": {str(number): plan for number, plan in plans.items()},
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
