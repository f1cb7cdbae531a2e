"""Template helpers of the segment pages: durations and rule trees as JSON."""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.utils.formats import number_format
from django.utils.translation import gettext as _

register = template.Library()


@register.filter
def duration_ms(milliseconds: int | float | None) -> str:
    """420 ms, 3.4 s, 2 min 5 s: as long as a refresh or a query took."""
    if milliseconds is None or milliseconds == "":
        return "—"
    value = float(milliseconds)
    if value < 1000:
        return _("%(ms)s ms") % {"ms": number_format(round(value), force_grouping=True)}
    seconds = value / 1000
    if seconds < 60:
        return _("%(seconds)s s") % {"seconds": number_format(seconds, decimal_pos=1)}
    minutes, rest = divmod(round(seconds), 60)
    return _("%(minutes)d min %(seconds)d s") % {"minutes": minutes, "seconds": rest}


@register.filter
def json_pretty(value: Any) -> str:
    """A rule tree as indented JSON (the template escapes it)."""
    return json.dumps(value, ensure_ascii=False, indent=2)
