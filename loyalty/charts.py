"""Plotly figures of the loyalty pages: pure functions from rows to a go.Figure.

No ORM and no request here, so each figure is tested without a database. A page passes
figure_data(figure) to its template, which writes it as a JSON data island; static/js/charts.js
draws every such island with Plotly.newPlot.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go
from django.utils.translation import gettext as _

from loyalty.queries import MonthPoints

INK = "#1d2733"
INK_SOFT = "#56636f"
LINE = "#dde3e9"
ISSUED_COLOUR = "#1f5f8b"
REDEEMED_COLOUR = "#1e7a4c"
EXPIRED_COLOUR = "#9e9e9e"
USAGE_COLOUR = "#8a5a00"
BELOW_TARGET_COLOUR = "#b3261e"
FONT = "-apple-system, 'PingFang SC', 'Microsoft YaHei', 'Noto Sans CJK SC', Arial, sans-serif"


@dataclass(frozen=True)
class TierBar:
    label: str
    members: int
    colour: str  # #RRGGBB


def _base_layout(**layout: Any) -> dict[str, Any]:
    # "none": no theme is shipped with every figure; the few settings below give the look.
    return {
        "template": "none",
        "font": {"family": FONT, "size": 13, "color": INK},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "margin": {"l": 56, "r": 56, "t": 24, "b": 48},
        "hovermode": "x unified",
        **layout,
    }


def _count_axis(title: str, highest: int) -> dict[str, Any]:
    axis: dict[str, Any] = {
        "title": {"text": title},
        "rangemode": "tozero",
        "gridcolor": LINE,
        "tickformat": ",d",
    }
    if highest < 10:
        # Counts are whole: without this, small ranges get ticks at halves, shown as 0 0 1 1 2.
        axis["dtick"] = 1
    return axis


def tier_distribution_figure(bars: Sequence[TierBar]) -> go.Figure:
    """One bar per tier (in the order given, lowest rank first), in the tier's colour."""
    figure = go.Figure(
        go.Bar(
            x=[bar.label for bar in bars],
            y=[bar.members for bar in bars],
            marker={"color": [bar.colour for bar in bars]},
            text=[f"{bar.members:,}" for bar in bars],
            textposition="outside",
            cliponaxis=False,
            name=_("Members"),
            hovertemplate="%{x}: %{y:,d}<extra></extra>",
        )
    )
    figure.update_layout(
        _base_layout(
            showlegend=False,
            hovermode="closest",
            xaxis={"type": "category", "showgrid": False},
            yaxis=_count_axis(_("Members"), max((bar.members for bar in bars), default=0)),
        )
    )
    return figure


def _percent(rate: Decimal | None) -> float | None:
    return None if rate is None else float(rate * 100)


def points_overview_figure(months: Sequence[MonthPoints], *, target: Decimal) -> go.Figure:
    """Points issued, redeemed and expired per month as bars; the usage rate (redeemed / issued)
    as a line on a percent axis, with the target as a dashed line and months below it in red."""
    labels = [month.month.strftime("%Y-%m") for month in months]
    target_percent = float(target * 100)
    usage = [_percent(month.usage_rate) for month in months]
    usage_colours = [
        BELOW_TARGET_COLOUR if month.usage_rate is not None and month.usage_rate < target else
        USAGE_COLOUR
        for month in months
    ]  # fmt: skip
    figure = go.Figure(
        [
            go.Bar(
                x=labels,
                y=[month.issued for month in months],
                name=_("Issued"),
                marker={"color": ISSUED_COLOUR},
            ),
            go.Bar(
                x=labels,
                y=[month.redeemed for month in months],
                name=_("Redeemed"),
                marker={"color": REDEEMED_COLOUR},
            ),
            go.Bar(
                x=labels,
                y=[month.expired for month in months],
                name=_("Expired"),
                marker={"color": EXPIRED_COLOUR},
            ),
            go.Scatter(
                x=labels,
                y=usage,
                name=_("Usage rate"),
                yaxis="y2",
                mode="lines+markers",
                line={"color": USAGE_COLOUR, "width": 2},
                marker={"color": usage_colours, "size": 9},
                connectgaps=False,
                hovertemplate="%{y:.1f}%",
            ),
            go.Scatter(
                x=labels,
                y=[target_percent] * len(labels),
                name=_("Target %(percent)s%%") % {"percent": f"{target_percent:g}"},
                yaxis="y2",
                mode="lines",
                line={"color": BELOW_TARGET_COLOUR, "width": 1.5, "dash": "dash"},
                hoverinfo="skip",
            ),
        ]
    )
    highest_rate = max((rate for rate in usage if rate is not None), default=0.0)
    figure.update_layout(
        _base_layout(
            barmode="group",
            legend={"orientation": "h", "y": -0.18, "x": 0},
            margin={"l": 64, "r": 64, "t": 24, "b": 72},
            xaxis={"type": "category", "showgrid": False},
            yaxis=_count_axis(
                _("Points"),
                max(
                    (max(month.issued, month.redeemed, month.expired) for month in months),
                    default=0,
                ),
            ),
            yaxis2={
                "title": {"text": _("Usage rate")},
                "overlaying": "y",
                "side": "right",
                "ticksuffix": "%",
                "showgrid": False,
                # Always shows the target line, and a rate above 100% when there is one.
                "range": [0, max(100.0, highest_rate) * 1.05],
                "dtick": 25,
            },
        )
    )
    return figure


def figure_data(figure: go.Figure) -> dict[str, Any]:
    """The figure as plain JSON data (lists, numbers, strings) for the page's data island."""
    data: dict[str, Any] = json.loads(figure.to_json())
    return data
