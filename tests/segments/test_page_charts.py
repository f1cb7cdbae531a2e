from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from django.utils import translation

from segments.charts import figure_data, size_history_figure, sparkline
from segments.queries import SizePoint
from segments.summary import SummaryLine, summarise_rules
from tests.factories import SHANGHAI


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    with translation.override("en"):
        yield


def point(day: int, size: int, error: str = "") -> SizePoint:
    moment = dt.datetime(2026, 3, day, 12, tzinfo=SHANGHAI)
    return SizePoint(
        started_at=moment,
        as_of=moment,
        scope="full",
        size=size,
        joined=size,
        left=0,
        duration_ms=10,
        error=error,
    )


@pytest.mark.parametrize(
    ("sizes", "points"),
    [
        ([1, 2, 3], "2,26 60,14 118,2"),
        ([5, 5], "2,14 118,14"),
        ([10, 0, 10, 5], "2,2 40.7,26 79.3,2 118,14"),
    ],
    ids=["rising", "flat", "zigzag"],
)
def test_the_trend_line_spans_the_box_from_the_lowest_to_the_highest_size(
    sizes: list[int], points: str
) -> None:
    line = sparkline(sizes)

    assert line is not None
    assert line.points == points
    assert (line.last_x, line.last_y) == tuple(float(n) for n in points.split()[-1].split(","))


@pytest.mark.parametrize("sizes", [[], [7]], ids=["none", "one"])
def test_there_is_no_trend_line_without_two_sizes(sizes: list[int]) -> None:
    assert sparkline(sizes) is None


def test_the_size_history_draws_sizes_and_marks_failed_refreshes() -> None:
    figure = figure_data(
        size_history_figure([point(1, 10), point(2, 0, "database is locked"), point(3, 12)])
    )

    sizes, failures = figure["data"]
    assert sizes["y"] == [10, 12]
    assert sizes["x"] == ["2026-03-01T12:00:00+08:00", "2026-03-03T12:00:00+08:00"]
    assert failures["name"] == "Failed refresh"
    assert failures["text"] == ["database is locked"]
    assert figure["layout"]["showlegend"] is True


def lines(line: SummaryLine, depth: int = 0) -> list[str]:
    found = ["  " * depth + line.text]
    for child in line.children:
        found += lines(child, depth + 1)
    return found


def test_the_rules_read_as_nested_lines() -> None:
    tree = {
        "all": [
            {
                "any": [
                    {"field": "spend_90d", "op": "gte", "value": 500},
                    {"field": "channel", "op": "in", "value": ["app", "mini_program"]},
                ]
            },
            {
                "event": "view_product",
                "within_days": 7,
                "where": {"category": "美妆", "price": {"op": "gt", "value": 99.5}},
                "count": {"op": "gt", "value": 3},
                "not_followed_by": {"event": "order", "within_hours": 24},
            },
            {"not": {"tag": "黑名单"}},
            {"field": "last_order_at", "op": "within_last_days", "value": 30},
            {"field": "registered_at", "op": "between", "value": ["2024-01-01", "2024-06-30"]},
            {"segment": 3},
            {"segment": 4},
            {"weird": 1},
        ]
    }

    summary = summarise_rules(tree, segment_names={3: "上海"})

    assert lines(summary) == [
        "All of these hold:",
        "  At least one of these holds:",
        "    Spend in 90 days (yuan) is at least 500",
        "    Acquisition channel is one of App, Mini program",
        "  Event view_product, within 7 days, where category = 美妆; price is more than 99.5, "
        "count is more than 3, then not followed by order within 24 hours",
        "  Not this:",
        "    Has the tag 黑名单",
        "  Last order within the last 30 days",
        "  Registered is between 2024-01-01 and 2024-06-30",
        "  In segment 上海 (#3)",
        "  In segment #4, which does not exist",
        '  {"weird": 1}',
    ]
