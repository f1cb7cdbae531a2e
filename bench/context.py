"""What the benchmarks of one run share: the options, the database and the generated data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import database, generate


@dataclass
class Options:
    orders: int = 1_000_000
    customers: int = 200_000
    seed: int = 20240601
    database_url: str = field(default_factory=database.database_url)
    # Which of orders and customers the user passed: a benchmark with sizes of its own (loyalty)
    # uses theirs only when given.
    given: frozenset[str] = frozenset()


@dataclass
class ChildRun:
    seconds: float  # the operation alone, timed inside the child
    wall_seconds: float  # the whole process, Python and Django start-up included
    cpu_seconds: float  # the process's own CPU time (user + system), start-up included
    peak_rss_kib: int  # the process's resident-memory high-water mark
    rss_after_setup_kib: int
    result: dict[str, Any]
    statements: int = 0  # SQL statements the operation ran
    slowest: list[dict[str, Any]] = field(default_factory=list)  # {number, seconds, sql}
    plans: dict[str, str] = field(default_factory=dict)  # by statement number (BENCH_EXPLAIN)


class Context:
    """Prepares each shared thing once per run, when the first benchmark asks for it."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._has_database = False
        self._orders_path: Path | None = None
        # What a benchmark module prepares once per run for its benchmarks, by its own key.
        self.shared: dict[str, Any] = {}

    @property
    def url(self) -> str:
        return self.options.database_url

    def database(self) -> None:
        """A fresh, migrated database holding the generated customers (and nothing else)."""
        if self._has_database:
            return
        started = time.perf_counter()
        database.create_fresh(self.url)
        migrated = time.perf_counter() - started
        seconds = database.insert_customers(self.url, self.options.customers)
        print(
            f"setup: fresh database {database.connect_kwargs(self.url)['dbname']} migrated in "
            f"{migrated:.1f} s; {self.options.customers:,} customers made in SQL in {seconds:.1f} s"
        )
        self._has_database = True

    def orders_csv(self) -> Path:
        if self._orders_path is None:
            started = time.perf_counter()
            is_cached = generate.orders_csv_path(
                orders=self.options.orders,
                customers=self.options.customers,
                seed=self.options.seed,
            ).exists()
            path = generate.orders_csv(
                orders=self.options.orders,
                customers=self.options.customers,
                seed=self.options.seed,
            )
            seconds = time.perf_counter() - started
            size = path.stat().st_size / 1024 / 1024
            how = "cached" if is_cached else f"generated in {seconds:.1f} s"
            print(f"setup: {_relative(path)} ({size:.1f} MiB) {how}")
            self._orders_path = path
        return self._orders_path

    def checkpoint(self) -> None:
        """Flush dirty pages so that one measurement does not pay for the previous one's writes."""
        with database.connect(self.url) as connection:
            connection.execute("CHECKPOINT")

    def run_child(
        self,
        operation: str,
        *args: str,
        url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ChildRun:
        """Run one operation of bench/child.py in a new process and measure it.

        url: the database it works on (default the run's); env: more environment variables.
        """
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.child", operation, *args],
            env=database.child_env(url or self.url) | (env or {}),
            cwd=database.BASE_DIR,
            stdout=subprocess.PIPE,
        )
        assert process.stdout is not None
        output = process.stdout.read()
        # wait4 rather than RUSAGE_CHILDREN: the peak of this process alone, not of every child
        # this run has reaped (the migrate command before it, for one).
        _pid, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        if process.returncode != 0:
            raise SystemExit(f"bench: {operation} failed (exit {process.returncode})")
        line = json.loads(output.decode().strip().splitlines()[-1])
        return ChildRun(
            seconds=line["seconds"],
            wall_seconds=wall,
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            peak_rss_kib=usage.ru_maxrss,  # KiB on Linux
            rss_after_setup_kib=line["rss_after_setup_kib"],
            result=line["result"],
            statements=line.get("statements", 0),
            slowest=line.get("slowest", []),
            plans=line.get("plans", {}),
        )


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(database.BASE_DIR))
    except ValueError:
        return str(path)
