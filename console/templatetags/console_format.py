"""Formatting filters shared by the console's pages."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django import template
from django.utils.formats import number_format

register = template.Library()


@register.filter
def yuan(amount: Decimal | int | float | None) -> str:
    """¥1,234.50 (grouped the way the active language groups numbers)."""
    if amount is None or amount == "":
        return ""
    return "¥" + number_format(Decimal(amount), decimal_pos=2, force_grouping=True)


@register.filter
def json_items(value: Any) -> list[tuple[str, str]]:
    """A JSON object's (key, value) pairs to show, by key; nested values as compact JSON."""
    if value in (None, "", {}, []):
        return []
    if not isinstance(value, dict):
        return [("", _compact(value))]
    # By key: PostgreSQL's jsonb keeps no insertion order, and the page must not depend on it.
    return [(str(key), _compact(item)) for key, item in sorted(value.items())]


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
