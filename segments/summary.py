"""A rule tree in words, for the segment page: one line per group or condition, nested.

Pure: segment names come in as a mapping, so this reads no database. A node the words do not
cover (an invalid tree saved before a field was removed, say) is shown as its JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _

from segments.rules.fields import OP_LABELS, get_field

DAY_OPS = ("within_last_days", "more_than_days_ago")


@dataclass(frozen=True)
class SummaryLine:
    text: str
    kind: str
    children: list[SummaryLine] = field(default_factory=list)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _value(value: Any, labels: Mapping[str, str]) -> str:
    if isinstance(value, list):
        return ", ".join(_value(item, labels) for item in value)
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, str):
        return labels.get(value, value)
    return str(value)


def _field_line(node: Mapping[str, Any]) -> str:
    key = node.get("field")
    spec = get_field(key) if isinstance(key, str) else None
    op = node.get("op")
    if spec is None or not isinstance(op, str) or op not in OP_LABELS:
        return _json(dict(node))
    label = str(spec.label)
    value = node.get("value")
    if op in DAY_OPS:
        template = (
            _("%(field)s within the last %(days)s days")
            if op == "within_last_days"
            else _("%(field)s more than %(days)s days ago")
        )
        return template % {"field": label, "days": value}
    # Static choices only: tier codes would need the database.
    choice_labels = {code: str(text) for code, text in spec.choices}
    if op == "between" and isinstance(value, list) and len(value) == 2:
        return _("%(field)s is between %(low)s and %(high)s") % {
            "field": label,
            "low": _value(value[0], choice_labels),
            "high": _value(value[1], choice_labels),
        }
    parts = [label, str(OP_LABELS[op])]
    if "value" in node:
        parts.append(_value(value, choice_labels))
    return " ".join(parts)


def _window(node: Mapping[str, Any]) -> str:
    if "within_days" in node:
        return _("within %(days)s days") % {"days": node["within_days"]}
    if "within_hours" in node:
        return _("within %(hours)s hours") % {"hours": node["within_hours"]}
    return ""


def _where(node: Mapping[str, Any]) -> str:
    where = node.get("where")
    if not isinstance(where, dict) or not where:
        return ""
    conditions = []
    for key, condition in where.items():
        if isinstance(condition, dict):
            op = condition.get("op")
            shown = str(OP_LABELS.get(op, op)) if isinstance(op, str) else _json(op)
            text = f"{key} {shown}"
            if "value" in condition:
                text += f" {_value(condition['value'], {})}"
            conditions.append(text)
        else:
            conditions.append(f"{key} = {_value(condition, {})}")
    return _("where %(conditions)s") % {"conditions": "; ".join(conditions)}


def _event_line(node: Mapping[str, Any]) -> str:
    parts = [_("Event %(name)s") % {"name": node.get("event")}]
    parts += [part for part in (_window(node), _where(node)) if part]
    count = node.get("count")
    if isinstance(count, dict) and isinstance(count.get("op"), str):
        parts.append(
            _("count %(op)s %(value)s")
            % {
                "op": OP_LABELS.get(count["op"], count["op"]),
                "value": _value(count.get("value"), {}),
            }
        )
    else:
        parts.append(_("at least once"))
    for key, words in (
        ("followed_by", _("then followed by")),
        ("not_followed_by", _("then not followed by")),
    ):
        follow_up = node.get(key)
        if isinstance(follow_up, dict):
            inner = [str(follow_up.get("event"))]
            inner += [part for part in (_window(follow_up), _where(follow_up)) if part]
            parts.append(f"{words} {' '.join(inner)}")
    return ", ".join(parts)


def summarise_rules(tree: Any, *, segment_names: Mapping[int, str]) -> SummaryLine:
    """The tree in words; segment_names names the segments it refers to."""
    if not isinstance(tree, dict):
        return SummaryLine(_json(tree), "raw")
    if len(tree) == 1 and isinstance(tree.get("all"), list):
        children = [summarise_rules(child, segment_names=segment_names) for child in tree["all"]]
        text = _("All of these hold:") if children else _("Everyone (an empty 'all')")
        return SummaryLine(text, "all", children)
    if len(tree) == 1 and isinstance(tree.get("any"), list):
        children = [summarise_rules(child, segment_names=segment_names) for child in tree["any"]]
        text = _("At least one of these holds:") if children else _("Nobody (an empty 'any')")
        return SummaryLine(text, "any", children)
    if len(tree) == 1 and "not" in tree:
        child = summarise_rules(tree["not"], segment_names=segment_names)
        return SummaryLine(_("Not this:"), "not", [child])
    if "field" in tree:
        return SummaryLine(_field_line(tree), "field")
    if "tag" in tree:
        text = (
            _("Does not have the tag %(tag)s")
            if tree.get("op") == "absent"
            else _("Has the tag %(tag)s")
        ) % {"tag": tree["tag"]}
        return SummaryLine(text, "tag")
    if "event" in tree:
        return SummaryLine(_event_line(tree), "event")
    segment_id = tree.get("segment")
    if isinstance(segment_id, int) and len(tree) == 1:
        name = segment_names.get(segment_id)
        if name is None:
            text = _("In segment #%(id)d, which does not exist") % {"id": segment_id}
        else:
            text = _("In segment %(name)s (#%(id)d)") % {"name": name, "id": segment_id}
        return SummaryLine(text, "segment")
    return SummaryLine(_json(tree), "raw")
