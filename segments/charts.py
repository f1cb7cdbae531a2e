"""Figures of the segment pages: pure functions from rows to a figure, no ORM and no request.

The size history is a Plotly figure: the page writes figure_data(figure) as a JSON data island
that static/js/charts.js draws. The list's trend line is a small inline SVG drawn on the server
(twenty points per row need no JavaScript).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from django.utils import timezone
from django.utils.translation import gettext as _

from segments.queries import SizePoint

INK = "#1d2733"
LINE = "#dde3e9"
SIZE_COLOUR = "#1f5f8b"
ERROR_COLOUR = "#b3261e"
FONT = "-apple-system, 'PingFang SC', 'Microsoft YaHei', 'Noto Sans CJK SC', Arial, sans-serif"

SPARKLINE_WIDTH = 120
SPARKLINE_HEIGHT = 28
SPARKLINE_PADDING = 2  # keeps the stroke and the end dot inside the box


def size_history_figure(points: Sequence[SizePoint]) -> go.Figure:
    """The segment's size after each refresh (oldest first) as a line; failed refreshes as red
    crosses on the time axis, with their error in the hover text."""
    good = [point for point in points if not point.error]
    failed = [point for point in points if point.error]
    traces: list[Any] = [
        go.Scatter(
            x=[timezone.localtime(point.as_of).isoformat() for point in good],
            y=[point.size for point in good],
            name=_("Members"),
            mode="lines+markers",
            line={"color": SIZE_COLOUR, "width": 2},
            marker={"size": 6},
            customdata=[[point.joined, point.left] for point in good],
            hovertemplate=(
                "%{y:,d} "
                + _("members")
                + " (+%{customdata[0]:,d} / -%{customdata[1]:,d})<extra></extra>"
            ),
        )
    ]
    if failed:
        traces.append(
            go.Scatter(
                x=[timezone.localtime(point.started_at).isoformat() for point in failed],
                y=[0] * len(failed),
                name=_("Failed refresh"),
                mode="markers",
                marker={"color": ERROR_COLOUR, "symbol": "x", "size": 9},
                text=[point.error[:200] for point in failed],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    figure = go.Figure(traces)
    figure.update_layout(
        template="none",
        font={"family": FONT, "size": 13, "color": INK},
        paper_bgcolor="#ffffff",
        plot_bgcolor="#ffffff",
        margin={"l": 64, "r": 24, "t": 16, "b": 48},
        hovermode="closest",
        showlegend=bool(failed),
        legend={"orientation": "h", "y": -0.2, "x": 0},
        xaxis={"type": "date", "showgrid": False},
        yaxis={
            "title": {"text": _("Members")},
            "rangemode": "tozero",
            "gridcolor": LINE,
            "tickformat": ",d",
        },
    )
    return figure


def figure_data(figure: go.Figure) -> dict[str, Any]:
    """The figure as plain JSON data for the page's data island."""
    data: dict[str, Any] = json.loads(figure.to_json())
    return data


@dataclass(frozen=True)
class Sparkline:
    """An SVG polyline of sizes: points in the viewBox and the last point for its dot."""

    points: str
    last_x: float
    last_y: float
    width: int = SPARKLINE_WIDTH
    height: int = SPARKLINE_HEIGHT


def sparkline(
    sizes: Sequence[int], *, width: int = SPARKLINE_WIDTH, height: int = SPARKLINE_HEIGHT
) -> Sparkline | None:
    """The trend line of sizes (oldest first) in a width x height box; None without two sizes.

    The y axis spans the sizes' own range, so a small change in a big segment still shows; a
    flat series is a line across the middle.
    """
    if len(sizes) < 2:
        return None
    low, high = min(sizes), max(sizes)
    inner_width = width - 2 * SPARKLINE_PADDING
    inner_height = height - 2 * SPARKLINE_PADDING
    step = inner_width / (len(sizes) - 1)
    coordinates = []
    for position, size in enumerate(sizes):
        x = SPARKLINE_PADDING + position * step
        share = 0.5 if high == low else (size - low) / (high - low)
        y = SPARKLINE_PADDING + (1 - share) * inner_height
        coordinates.append((round(x, 1), round(y, 1)))
    points = " ".join(f"{x:g},{y:g}" for x, y in coordinates)
    last_x, last_y = coordinates[-1]
    return Sparkline(points=points, last_x=last_x, last_y=last_y, width=width, height=height)
