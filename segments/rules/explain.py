"""Why a customer is (or is not) matched by a rule tree: every group and leaf, true or false, with
the customer's actual values ("spend in 90 days is 320.00", "2 matching events").

Each leaf's result comes from the database: its compiled condition run for this one customer (a
query per leaf, which is fine for one customer). Groups combine their children's results as the
compiled query does. The values shown are read from the customer's rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from customers.models import Customer
from segments.rules.compiler import check_as_of, compile_node, matching_events
from segments.rules.evaluate import MISSING, CustomerData, field_value, load_customers
from segments.rules.fields import ATTRIBUTE, CHOICE, OP_LABELS
from segments.rules.nodes import (
    EventNode,
    FieldNode,
    GroupNode,
    Node,
    NotNode,
    PropertyCondition,
    SegmentNode,
    TagNode,
    describe_value,
)
from segments.rules.validation import parse_rules


@dataclass
class ExplainNode:
    path: str
    kind: str  # all, any, not, field, tag, event, segment
    label: str  # the rule in words
    result: bool
    actual: Any = None  # the customer's value (JSON-ready)
    reason: str = ""  # the value in words, e.g. "Spend in 90 days (yuan) is 320.00."
    children: list[ExplainNode] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "label": self.label,
            "result": self.result,
            "actual": self.actual,
            "reason": self.reason,
            "children": [child.as_dict() for child in self.children],
        }


def explain_rules(
    tree: object,
    *,
    customer_id: int,
    as_of: dt.datetime,
    segment_id: int | None = None,
) -> ExplainNode:
    """Every node of the tree, true or false for one customer and why.

    Raises RulesInvalid for a bad tree and Customer.DoesNotExist for an unknown customer.
    """
    check_as_of(as_of)
    node = parse_rules(tree, segment_id=segment_id)
    snapshots = load_customers([customer_id], with_events=False)
    if not snapshots:
        raise Customer.DoesNotExist(f"customer {customer_id} does not exist")
    return _Explainer(snapshots[0], as_of).explain(node)


class _Explainer:
    def __init__(self, customer: CustomerData, as_of: dt.datetime) -> None:
        self.customer = customer
        self.as_of = as_of

    def holds(self, node: Node) -> bool:
        return (
            Customer.objects.filter(pk=self.customer.id)
            .filter(compile_node(node, as_of=self.as_of))
            .exists()
        )

    def explain(self, node: Node) -> ExplainNode:
        if isinstance(node, GroupNode):
            children = [self.explain(child) for child in node.children]
            results = [child.result for child in children]
            if node.kind == "all":
                label = _("All of these hold")
                result = all(results)
                reason = "" if children else _("An empty 'all' matches everyone.")
            else:
                label = _("At least one of these holds")
                result = any(results)
                reason = "" if children else _("An empty 'any' matches nobody.")
            return ExplainNode(
                node.path, node.kind, label, result, reason=reason, children=children
            )
        if isinstance(node, NotNode):
            child = self.explain(node.child)
            return ExplainNode(
                node.path, "not", _("This does not hold"), not child.result, children=[child]
            )
        if isinstance(node, FieldNode):
            return self._field(node)
        if isinstance(node, TagNode):
            return self._tag(node)
        if isinstance(node, EventNode):
            return self._event(node)
        return self._segment(node)

    def _field(self, node: FieldNode) -> ExplainNode:
        spec = node.field
        actual = field_value(spec, self.customer, self.as_of)
        # Choice values in words (中度 for "medium", 金卡 for "gold"), as the builder shows them.
        labels = dict(spec.choice_options()) if spec.type == CHOICE else {}
        label = " ".join(
            part
            for part in (str(spec.label), str(OP_LABELS[node.op]), _show(node.value, labels))
            if part
        )
        if spec.type == ATTRIBUTE and actual is MISSING:
            reason = _("The customer has no attribute %(key)s.") % {"key": spec.json_key}
            shown: Any = None
        elif actual is None or actual == "":
            reason = _("%(field)s is empty.") % {"field": spec.label}
            shown = None if actual is None else ""
        else:
            shown = _json_value(actual)
            reason = _("%(field)s is %(value)s.") % {
                "field": spec.label,
                "value": _show(actual, labels),
            }
            if spec.relation == "metrics" and self.customer.metrics is None:
                reason += " " + _("(No metrics computed yet: the default value.)")
            elif spec.relation == "membership" and self.customer.membership is None:
                reason += " " + _("(Not a member: the default value.)")
        return ExplainNode(node.path, "field", label, self.holds(node), shown, reason)

    def _tag(self, node: TagNode) -> ExplainNode:
        has_tag = node.name in self.customer.tags
        label = (
            _("Has the tag %(tag)s") if node.is_present else _("Does not have the tag %(tag)s")
        ) % {"tag": node.name}
        reason = _("The customer has the tag.") if has_tag else _("The customer lacks the tag.")
        return ExplainNode(node.path, "tag", label, self.holds(node), has_tag, reason)

    def _event(self, node: EventNode) -> ExplainNode:
        matched = matching_events(node, as_of=self.as_of, customer=self.customer.id).count()
        label = _event_label(node)
        reason = ngettext("%(count)d matching event.", "%(count)d matching events.", matched) % {
            "count": matched
        }
        actual: dict[str, int] = {"count": matched}
        if node.is_sequence:
            before = matching_events(
                node, as_of=self.as_of, customer=self.customer.id, with_follow_ups=False
            ).count()
            actual["before_follow_ups"] = before
            reason = ngettext(
                "%(before)d %(name)s event in the window, %(count)d of them with the follow-up "
                "the rule asks for.",
                "%(before)d %(name)s events in the window, %(count)d of them with the follow-up "
                "the rule asks for.",
                before,
            ) % {"before": before, "name": node.name, "count": matched}
        return ExplainNode(node.path, "event", label, self.holds(node), actual, reason)

    def _segment(self, node: SegmentNode) -> ExplainNode:
        label = _("In segment %(name)s (%(id)d)") % {"name": node.name, "id": node.segment_id}
        if node.definition is not None:
            child = self.explain(node.definition)
            return ExplainNode(
                node.path, "segment", label, self.holds(node), reason="", children=[child]
            )
        is_member = node.segment_id in self.customer.static_segments
        reason = (
            _("The customer is a stored member of this static segment.")
            if is_member
            else _("The customer is not a stored member of this static segment.")
        )
        return ExplainNode(node.path, "segment", label, self.holds(node), is_member, reason)


def _window_words(window: dt.timedelta) -> str:
    # The parsed tree keeps a window, not the unit it was written in: days when whole, 2 or more.
    if window % dt.timedelta(days=1) or window < dt.timedelta(days=2):
        return _("within %(hours)s hours") % {"hours": int(window.total_seconds() // 3600)}
    return _("within %(days)s days") % {"days": window.days}


def _where_words(where: tuple[PropertyCondition, ...]) -> str:
    conditions = [
        " ".join(part for part in (c.key, str(OP_LABELS[c.op]), _show(c.value)) if part)
        for c in where
    ]
    return _("where %(conditions)s") % {"conditions": "; ".join(conditions)}


def _event_label(node: EventNode) -> str:
    """The leaf in words, as the segment summary says it: "Event view_product, within 7 days,
    where category is 美妆, count is more than 3"."""
    parts = [_("Event %(name)s") % {"name": node.name}]
    if node.window is not None:
        parts.append(_window_words(node.window))
    if node.where:
        parts.append(_where_words(node.where))
    parts.append(
        _("count %(op)s %(value)s")
        % {"op": OP_LABELS[node.count.op], "value": _show(node.count.value)}
    )
    for follow_up, words in (
        (node.followed_by, _("then followed by")),
        (node.not_followed_by, _("then not followed by")),
    ):
        if follow_up is not None:
            inner = [follow_up.name, _window_words(follow_up.window)]
            if follow_up.where:
                inner.append(_where_words(follow_up.where))
            parts.append(f"{words} {' '.join(inner)}")
    return ", ".join(parts)


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return describe_value(value) if not isinstance(value, dict | list) else value


def _show(value: Any, labels: dict[str, str] | None = None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_show(item, labels) for item in value) + "]"
    if isinstance(value, str) and labels:
        return labels.get(value, value)
    return str(value)
