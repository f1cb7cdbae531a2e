from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from typing import Any

import pytest
from django.utils import translation

from loyalty.charts import (
    BELOW_TARGET_COLOUR,
    USAGE_COLOUR,
    TierBar,
    figure_data,
    points_overview_figure,
    tier_distribution_figure,
)
from loyalty.queries import MonthPoints
from loyalty.templatetags.loyalty_format import chart, percent, signed_points

TARGET = Decimal("0.30")


@pytest.fixture(autouse=True)
def english() -> Any:
    with translation.override("en"):
        yield


def month(
    year: int, number: int, issued: int, redeemed: int, expired: int, rate: str | None
) -> MonthPoints:
    return MonthPoints(
        month=dt.date(year, number, 1),
        issued=issued,
        redeemed=redeemed,
        expired=expired,
        usage_rate=None if rate is None else Decimal(rate),
    )


THREE_MONTHS = [
    month(2025, 4, 1000, 500, 0, "0.5000"),
    month(2025, 5, 0, 0, 120, None),
    month(2025, 6, 800, 160, 40, "0.2000"),
]


def test_the_tier_chart_has_one_bar_per_tier_in_its_colour_and_order() -> None:
    bars = [
        TierBar(label="Normal", members=1200, colour="#8d99a6"),
        TierBar(label="Silver", members=30, colour="#a7b4c2"),
        TierBar(label="Gold", members=4, colour="#d4a017"),
        TierBar(label="Diamond", members=0, colour="#4f7cff"),
    ]

    data = figure_data(tier_distribution_figure(bars))

    assert len(data["data"]) == 1
    trace = data["data"][0]
    assert trace["type"] == "bar"
    assert trace["x"] == ["Normal", "Silver", "Gold", "Diamond"]
    assert trace["y"] == [1200, 30, 4, 0]
    assert trace["text"] == ["1,200", "30", "4", "0"]
    assert trace["marker"]["color"] == ["#8d99a6", "#a7b4c2", "#d4a017", "#4f7cff"]
    assert data["layout"]["yaxis"]["title"]["text"] == "Members"
    assert "dtick" not in data["layout"]["yaxis"]
    assert data["layout"]["xaxis"]["type"] == "category"


def test_a_chart_of_few_members_has_whole_number_ticks() -> None:
    bars = [TierBar(label="Normal", members=3, colour="#8d99a6")]

    data = figure_data(tier_distribution_figure(bars))

    assert data["layout"]["yaxis"]["dtick"] == 1


def test_the_tier_chart_of_no_tiers_is_an_empty_bar() -> None:
    data = figure_data(tier_distribution_figure([]))

    assert data["data"][0]["x"] == []
    assert data["data"][0]["y"] == []


def test_the_points_chart_has_issued_redeemed_and_expired_bars_per_month() -> None:
    data = figure_data(points_overview_figure(THREE_MONTHS, target=TARGET))

    bars = [trace for trace in data["data"] if trace["type"] == "bar"]
    assert [trace["name"] for trace in bars] == ["Issued", "Redeemed", "Expired"]
    for trace in bars:
        assert trace["x"] == ["2025-04", "2025-05", "2025-06"]
    assert [trace["y"] for trace in bars] == [[1000, 0, 800], [500, 0, 160], [0, 120, 40]]
    assert data["layout"]["barmode"] == "group"


def test_the_usage_rate_is_a_percent_line_with_a_gap_where_nothing_was_issued() -> None:
    data = figure_data(points_overview_figure(THREE_MONTHS, target=TARGET))

    usage = next(trace for trace in data["data"] if trace["name"] == "Usage rate")
    assert usage["yaxis"] == "y2"
    assert usage["y"] == [50.0, None, 20.0]
    assert usage["connectgaps"] is False
    assert data["layout"]["yaxis2"]["ticksuffix"] == "%"
    assert data["layout"]["yaxis2"]["overlaying"] == "y"


def test_months_below_the_target_are_marked_in_red_and_the_target_is_a_dashed_line() -> None:
    data = figure_data(points_overview_figure(THREE_MONTHS, target=TARGET))

    usage = next(trace for trace in data["data"] if trace["name"] == "Usage rate")
    assert usage["marker"]["color"] == [USAGE_COLOUR, USAGE_COLOUR, BELOW_TARGET_COLOUR]
    target = next(trace for trace in data["data"] if trace["name"] == "Target 30%")
    assert target["y"] == [30.0, 30.0, 30.0]
    assert target["yaxis"] == "y2"
    assert target["line"]["dash"] == "dash"


@pytest.mark.parametrize(
    ("rates", "top"),
    [(["0.2000"], 105.0), (["1.5000"], 157.5)],
    ids=["under-100-percent", "over-100-percent"],
)
def test_the_rate_axis_always_shows_the_target_and_the_highest_rate(
    rates: list[str], top: float
) -> None:
    months = [month(2025, 1, 100, int(Decimal(rate) * 100), 0, rate) for rate in rates]

    data = figure_data(points_overview_figure(months, target=TARGET))

    assert data["layout"]["yaxis2"]["range"] == [0, top]


def test_the_rate_at_exactly_the_target_is_not_below_it() -> None:
    months = [month(2025, 1, 1000, 300, 0, "0.3000")]

    data = figure_data(points_overview_figure(months, target=TARGET))

    usage = next(trace for trace in data["data"] if trace["name"] == "Usage rate")
    assert usage["marker"]["color"] == [USAGE_COLOUR]


def test_figure_data_is_plain_json_without_a_heavy_theme() -> None:
    data = figure_data(points_overview_figure(THREE_MONTHS, target=TARGET))

    assert json.loads(json.dumps(data)) == data
    assert len(json.dumps(data)) < 5_000


def test_the_chart_tag_writes_a_data_island_that_cannot_close_its_script_early() -> None:
    figure = {"data": [{"x": ["</script><script>alert(1)</script>"], "y": [1]}], "layout": {}}

    html = str(chart(figure, "tier-chart", 'Members "by" tier'))

    assert html.startswith(
        '<div class="chart" id="tier-chart" role="img" aria-label="Members &quot;by&quot; tier">'
        '</div><script type="application/json" data-chart="tier-chart">'
    )
    island = re.search(r'data-chart="tier-chart">(.*)</script>$', html)
    assert island is not None
    assert "</script>" not in island.group(1)
    assert json.loads(island.group(1)) == figure


@pytest.mark.parametrize(
    ("rate", "places", "shown"),
    [
        (Decimal("0.2575"), 1, "25.8%"),
        (Decimal("0.3"), 0, "30%"),
        (Decimal("0"), 1, "0.0%"),
        (None, 1, "—"),
    ],
)
def test_rates_show_as_percentages(rate: Decimal | None, places: int, shown: str) -> None:
    assert percent(rate, places) == shown


@pytest.mark.parametrize(
    ("points", "shown"), [(1200, "+1,200"), (-300, "-300"), (0, "0")], ids=["plus", "minus", "zero"]
)
def test_points_show_with_their_sign(points: int, shown: str) -> None:
    assert signed_points(points) == shown
