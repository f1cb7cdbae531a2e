"""Template helpers of the loyalty pages: chart data islands, percentages, signed points."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django import template
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

# The escapes of Django's json_script: the JSON can never close the <script> element early.
_JSON_SCRIPT_ESCAPES = {ord(">"): "\\u003E", ord("<"): "\\u003C", ord("&"): "\\u0026"}


@register.simple_tag
def chart(figure: dict[str, Any], chart_id: str, label: str = "") -> SafeString:
    """The element a chart is drawn in and its figure as a JSON data island (no inline code).

    static/js/charts.js finds every <script type="application/json" data-chart="id"> and draws
    it into the element with that id.
    """
    data = json.dumps(figure, cls=DjangoJSONEncoder).translate(_JSON_SCRIPT_ESCAPES)
    return format_html(
        '<div class="chart" id="{}" role="img" aria-label="{}"></div>'
        '<script type="application/json" data-chart="{}">{}</script>',
        chart_id,
        label,
        chart_id,
        mark_safe(data),  # noqa: S308 - escaped above the way json_script escapes
    )


@register.filter
def percent(rate: Decimal | float | None, places: int = 1) -> str:
    """A fraction as a percentage: 0.2575 -> 25.8%; "—" when there is none."""
    if rate is None or rate == "":
        return "—"
    # number_format cuts the digits off; round half up first, as people round.
    shown = (Decimal(rate) * 100).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return number_format(shown, decimal_pos=places) + "%"


@register.filter
def signed_points(points: int | None) -> str:
    """+1,200 / -300 / 0, grouped the way the active language groups numbers."""
    if points is None:
        return ""
    sign = "+" if points > 0 else "-" if points < 0 else ""
    return sign + number_format(abs(points), force_grouping=True)


@register.filter
def yuan(amount: Decimal | int | float | None) -> str:
    """¥1,234.50, as console_format's yuan (loyalty cannot load the console's library)."""
    if amount is None or amount == "":
        return ""
    return "¥" + number_format(Decimal(amount), decimal_pos=2, force_grouping=True)
