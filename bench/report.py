"""How the benchmarks that race the project's code against hand-written SQL print what they saw."""

from __future__ import annotations

import os
import re

from bench.context import ChildRun


def print_times(hand_times: list[float], our_runs: list[ChildRun]) -> None:
    print(f"    {'':18} {'seconds':>9}")
    print(f"    {'hand-written SQL':18} {seconds_text(hand_times):>9}")
    ours = min(our_runs, key=lambda run: run.seconds)
    print(
        f"    {'ours':18} {seconds_text([run.seconds for run in our_runs]):>9}   "
        f"({ours.statements} statements; process: {ours.wall_seconds:.1f} s with start-up)"
    )


def seconds_text(times: list[float]) -> str:
    return " / ".join(f"{seconds:.2f}" if seconds >= 0.1 else f"{seconds:.4f}" for seconds in times)


def print_verdict(ratio: float, *, aim: float, same: bool, ours: ChildRun) -> bool:
    """Print the ratio against the aim and our slowest statements; True when it passes."""
    passed = ratio <= aim
    print(
        f"    ratio ours / hand-written: {ratio:.2f} (aim <= {aim}): "
        f"{'PASS' if passed else 'MISS'}; same result: "
        f"{'yes' if same else 'NO, the two results differ'}"
    )
    slowest = ", ".join(
        f"#{timing['number']} {timing['seconds']:.3f} s {label(timing['sql'])}"
        for timing in ours.slowest[:3]
    )
    print(f"    ours, slowest statements: {slowest}")
    return passed


def label(sql: str) -> str:
    """What a statement writes (or reads), and from which of orders and events."""
    found = _WRITE.search(sql)
    text = " ".join(found.group(0).split()) if found else " ".join(sql.split()[:4])
    sources = [name for table, name in _SOURCES if table in sql]
    return f"{text} ({', '.join(sources)})" if sources else text


def condensed(sql: str) -> str:
    # Some statements open with a VALUES list of 126 years of expiry dates, or of the tiers.
    return _VALUES_ROWS.sub(r"\1, ...", " ".join(sql.split()))[:400]


_WRITE = re.compile(r"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM|CREATE\s+TEMP\s+TABLE)\s+\S+")
_SOURCES = (("customers_order", "orders"), ("customers_event", "events"))
_VALUES_ROWS = re.compile(r"(\([^()]*\))(?:, \([^()]*\))+")


def indent(text: str) -> str:
    return "\n".join(f"      {line}" for line in text.splitlines())


def print_load(load_before: float) -> None:
    load_after = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    if max(load_before, load_after) > cpus:
        print(
            f"  note: load average {load_before:.1f} -> {load_after:.1f} on {cpus} CPUs: other "
            f"work shared the machine, so these times are longer than on an idle one"
        )
