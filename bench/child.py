"""The measured side of a benchmark, run in its own process: `python -m bench.child NAME ARGS`.

It sets Django up on the benchmark database (DATABASE_URL from the parent), runs one operation
through the project's own code, and prints one JSON line: the seconds the operation took, its
result, and the resident memory after Django's set-up. The parent reads the process's peak
resident memory from the kernel when it reaps it (os.wait4), so this process need not.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any


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


OPERATIONS: dict[str, Callable[..., dict[str, Any]]] = {"import_orders": import_orders}


def main(argv: list[str]) -> None:
    import django

    django.setup()
    rss_after_setup = _rss_kib()
    operation = OPERATIONS[argv[0]]
    started = time.perf_counter()
    result = operation(*argv[1:])
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {"seconds": seconds, "rss_after_setup_kib": rss_after_setup, "result": result},
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
