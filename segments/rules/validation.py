"""Validation of a rule tree into typed nodes (nodes.py), with every problem and its path.

The shape is described in schema.py. Each error names the path of the bad node ("all[2].op",
"" for the root) and what is wrong; validation goes on past an error so that one answer lists
them all (up to MAX_ERRORS). References to saved segments are checked against the database:
a dynamic segment's rules are validated and inlined, and a reference back to the segment being
defined, directly or through others, is an error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from django.utils.translation import gettext as _

from segments.models import Segment
from segments.rules.errors import RuleError, RulesInvalid
from segments.rules.fields import (
    ATTRIBUTE,
    ATTRIBUTE_KEY_RE,
    ATTRIBUTE_PREFIX,
    NUMBER,
    OPS_BY_TYPE,
    get_field,
)
from segments.rules.nodes import (
    AT_LEAST_ONE,
    CountCondition,
    EventNode,
    FieldNode,
    FollowUp,
    GroupNode,
    Node,
    NotNode,
    PropertyCondition,
    SegmentNode,
    TagNode,
)
from segments.rules.schema import (
    FOLLOW_UP_KEYS,
    GROUP_KINDS,
    KEYS_BY_KIND,
    MAX_DAYS,
    MAX_DEPTH,
    MAX_ERRORS,
    MAX_HOURS,
    MAX_INLINED_NODES,
    MAX_JSON_VALUES,
    MAX_NODES,
    MAX_NUMBER,
    MAX_SEGMENT_CHAIN,
    MAX_WHERE_KEYS,
    NO_VALUE_OPS,
    NODE_KINDS,
    TAG_OPS,
)
from segments.rules.values import (
    INVALID,
    ValueChecker,
    index,
    join,
    kind_args,
    kind_of,
    limit_args,
    quote,
    type_name,
    whole_number,
)


class _Limit(Exception):
    """Too many errors or nodes: stop looking."""


class _Parser(ValueChecker):
    def __init__(self, *, segment_stack: tuple[int, ...], budget: list[int]) -> None:
        super().__init__()
        self.cycle: RuleError | None = None
        self.segment_stack = segment_stack
        # Shared with the parsers of inlined segments: nodes left before the tree is too large.
        self.budget = budget
        self.nodes = 0

    # -- bookkeeping
    def error(self, path: str, message: str) -> None:
        super().error(path, message)
        if len(self.errors) >= MAX_ERRORS:
            raise _Limit

    def _count_node(self, path: str) -> None:
        self.nodes += 1
        self.budget[0] -= 1
        if self.nodes > MAX_NODES:
            self.error(
                "",
                _("The rule has more than %(limit)d groups and conditions.")
                % limit_args(MAX_NODES),
            )
            raise _Limit
        if self.budget[0] < 0:
            self.error(
                path,
                _(
                    "With the segments it refers to, the rule has more than %(limit)d groups "
                    "and conditions."
                )
                % limit_args(MAX_INLINED_NODES),
            )
            raise _Limit

    # -- nodes
    def parse(self, node: object, path: str, depth: int) -> Node | None:
        if depth > MAX_DEPTH:
            self.error(
                path,
                _("The rule is nested more than %(limit)d levels deep.") % limit_args(MAX_DEPTH),
            )
            raise _Limit
        if not isinstance(node, dict):
            self.error(path, _("A rule must be a JSON object, not %(kind)s.") % kind_args(node))
            return None
        kinds = [kind for kind in NODE_KINDS if kind in node]
        if not kinds:
            keys = ", ".join(sorted(str(key) for key in node)) or _("none")
            self.error(
                path,
                _(
                    "A rule needs one of the keys all, any, not, field, tag, event, segment "
                    "(it has: %(keys)s)."
                )
                % {"keys": keys},
            )
            return None
        if len(kinds) > 1:
            self.error(
                path,
                _(
                    "A rule has only one of all, any, not, field, tag, event, segment; "
                    "this one has %(keys)s."
                )
                % {"keys": ", ".join(kinds)},
            )
            return None
        kind = kinds[0]
        self._count_node(path)
        self._unknown_keys(node, KEYS_BY_KIND[kind], path, kind)
        if kind in GROUP_KINDS:
            return self._group(node[kind], kind, path, depth)
        if kind == "not":
            child = self.parse(node["not"], join(path, "not"), depth + 1)
            return NotNode(path=path, child=child) if child is not None else None
        if kind == "field":
            return self._field(node, path)
        if kind == "tag":
            return self._tag(node, path)
        if kind == "event":
            return self._event(node, path)
        return self._segment(node, path)

    def _unknown_keys(
        self, node: dict[Any, Any], allowed: tuple[str, ...], path: str, kind: str
    ) -> None:
        for key in node:
            if key not in allowed:
                self.error(
                    join(path, str(key)),
                    _("Unknown key %(key)s: a %(kind)s rule takes %(allowed)s.")
                    % {"key": quote(key), "kind": kind, "allowed": ", ".join(allowed)},
                )

    def _group(self, children: object, kind: str, path: str, depth: int) -> Node | None:
        here = join(path, kind)
        if not isinstance(children, list):
            self.error(
                here,
                _("%(kind)s must be a list of rules, not %(what)s.")
                % {"kind": quote(kind), "what": kind_of(children)},
            )
            return None
        parsed = [self.parse(child, index(here, i), depth + 1) for i, child in enumerate(children)]
        if any(child is None for child in parsed):
            return None
        return GroupNode(path=path, kind=kind, children=tuple(c for c in parsed if c is not None))

    # -- field conditions
    def _field(self, node: dict[str, Any], path: str) -> Node | None:
        key = node["field"]
        if not isinstance(key, str):
            self.error(
                join(path, "field"), _("field must be a field name, not %(kind)s.") % kind_args(key)
            )
            return None
        spec = get_field(key)
        if spec is None:
            if key.startswith(ATTRIBUTE_PREFIX):
                message = _(
                    "%(key)s is not a custom attribute name: after attr. come up to 64 letters, "
                    "digits, _ or -, starting with a letter or _."
                ) % {"key": quote(key)}
            else:
                message = _("Unknown field %(key)s.") % {"key": quote(key)}
            self.error(join(path, "field"), message)
            return None
        op_path = join(path, "op")
        if "op" not in node:
            self.error(
                op_path,
                _("The op is missing: %(type)s %(key)s takes %(ops)s.")
                % {"type": type_name(spec), "key": quote(key), "ops": ", ".join(spec.ops)},
            )
            return None
        op = node["op"]
        if not isinstance(op, str) or op not in spec.ops:
            shown = quote(op) if isinstance(op, str) else kind_of(op)
            self.error(
                op_path,
                _("%(op)s is not an op of %(type)s %(key)s")
                % {"op": shown, "type": type_name(spec), "key": quote(key)},
            )
            return None
        value_path = join(path, "value")
        has_value = "value" in node
        value = node.get("value")
        if op in NO_VALUE_OPS:
            if has_value:
                self.error(value_path, _("%(op)s takes no value.") % {"op": quote(op)})
                return None
            return FieldNode(path=path, field=spec, op=op)
        if not has_value:
            self.error(value_path, _("The value is missing: %(op)s needs one.") % {"op": quote(op)})
            return None
        if spec.type == ATTRIBUTE:
            parsed = self._attribute_value(op, value, value_path)
            if parsed is None:
                return None
            return FieldNode(path=path, field=spec, op=op, value=parsed[0], value_kind=parsed[1])
        checked = self._typed_value(spec, op, value, value_path)
        if checked is INVALID:
            return None
        return FieldNode(path=path, field=spec, op=op, value=checked)

    # -- tags
    def _tag(self, node: dict[str, Any], path: str) -> Node | None:
        name = self._name(node["tag"], join(path, "tag"), "tag")
        op = node.get("op", "present")
        if op not in TAG_OPS:
            shown = quote(op) if isinstance(op, str) else kind_of(op)
            self.error(
                join(path, "op"),
                _("A tag rule's op is 'present' or 'absent', not %(op)s.") % {"op": shown},
            )
            return None
        if name is INVALID:
            return None
        return TagNode(path=path, name=name, is_present=op == "present")

    # -- events
    def _window(self, node: dict[str, Any], path: str, *, is_required: bool) -> Any:
        has_days = "within_days" in node
        has_hours = "within_hours" in node
        if has_days and has_hours:
            self.error(join(path, "within_hours"), _("Use within_days or within_hours, not both."))
            return INVALID
        if not has_days and not has_hours:
            if is_required:
                self.error(path, _("A follow-up event needs within_days or within_hours."))
                return INVALID
            return None
        key, limit = ("within_days", MAX_DAYS) if has_days else ("within_hours", MAX_HOURS)
        amount = whole_number(node[key])
        if amount is None or not 1 <= amount <= limit:
            self.error(
                join(path, key),
                _("%(key)s must be a whole number from 1 to %(limit)d.")
                % {"key": key, "limit": limit},
            )
            return INVALID
        return dt.timedelta(days=amount) if has_days else dt.timedelta(hours=amount)

    def _where(self, value: object, path: str) -> Any:
        if not isinstance(value, dict):
            self.error(
                path,
                _("where must be an object of event properties, not %(kind)s.") % kind_args(value),
            )
            return INVALID
        if len(value) > MAX_WHERE_KEYS:
            self.error(
                path, _("where has more than %(limit)d properties.") % limit_args(MAX_WHERE_KEYS)
            )
            return INVALID
        conditions = []
        for key, condition in value.items():
            here = join(path, str(key))
            if not ATTRIBUTE_KEY_RE.match(str(key)):
                self.error(
                    here,
                    _(
                        "%(key)s is not a property name: up to 64 letters, digits, _ or -, "
                        "starting with a letter or _."
                    )
                    % {"key": quote(key)},
                )
                conditions.append(INVALID)
                continue
            conditions.append(self._property_condition(str(key), condition, here))
        if any(condition is INVALID for condition in conditions):
            return INVALID
        return tuple(conditions)

    def _property_condition(self, key: str, condition: object, path: str) -> Any:
        if isinstance(condition, dict):
            for unknown in condition:
                if unknown not in ("op", "value"):
                    self.error(
                        join(path, str(unknown)),
                        _("Unknown key %(key)s: a property condition takes op, value.")
                        % {"key": quote(unknown)},
                    )
                    return INVALID
            op = condition.get("op")
            ops = OPS_BY_TYPE[ATTRIBUTE]
            if not isinstance(op, str) or op not in ops:
                shown = quote(op) if isinstance(op, str) else kind_of(op)
                self.error(
                    join(path, "op"),
                    _("%(op)s is not an op of an event property; it takes %(ops)s.")
                    % {"op": shown, "ops": ", ".join(ops)},
                )
                return INVALID
            if op in NO_VALUE_OPS:
                if "value" in condition:
                    self.error(join(path, "value"), _("%(op)s takes no value.") % {"op": quote(op)})
                    return INVALID
                return PropertyCondition(key=key, op=op, value=None, value_kind=None)
            if "value" not in condition:
                self.error(
                    join(path, "value"),
                    _("The value is missing: %(op)s needs one.") % {"op": quote(op)},
                )
                return INVALID
            parsed = self._attribute_value(op, condition["value"], join(path, "value"))
            if parsed is None:
                return INVALID
            return PropertyCondition(key=key, op=op, value=parsed[0], value_kind=parsed[1])
        if isinstance(condition, str | bool | int | float):
            parsed = self._attribute_value("eq", condition, path)
            if parsed is None:
                return INVALID
            return PropertyCondition(key=key, op="eq", value=parsed[0], value_kind=parsed[1])
        self.error(
            path,
            _(
                "A property condition is a value (text, number, true/false) or "
                '{"op": ..., "value": ...}, not %(kind)s.'
            )
            % kind_args(condition),
        )
        return INVALID

    def _count(self, value: object, path: str) -> Any:
        if not isinstance(value, dict):
            self.error(
                path,
                _('count must be an object {"op": ..., "value": ...}, not %(kind)s.')
                % kind_args(value),
            )
            return INVALID
        for key in value:
            if key not in ("op", "value"):
                self.error(
                    join(path, str(key)),
                    _("Unknown key %(key)s: count takes op, value.") % {"key": quote(key)},
                )
                return INVALID
        op = value.get("op")
        ops = OPS_BY_TYPE[NUMBER]
        if not isinstance(op, str) or op not in ops:
            shown = quote(op) if isinstance(op, str) else kind_of(op)
            self.error(
                join(path, "op"),
                _("%(op)s is not an op of count; it takes %(ops)s.")
                % {"op": shown, "ops": ", ".join(ops)},
            )
            return INVALID
        if "value" not in value:
            self.error(
                join(path, "value"),
                _("The value is missing: %(op)s needs one.") % {"op": quote(op)},
            )
            return INVALID

        def whole(item: object, item_path: str) -> Any:
            number = whole_number(item)
            if number is None or not 0 <= number <= MAX_NUMBER:
                self.error(item_path, _("A count must be a whole number of at least 0."))
                return INVALID
            return number

        number = (
            self._pair(value["value"], join(path, "value"), whole)
            if op == "between"
            else whole(value["value"], join(path, "value"))
        )
        if number is INVALID:
            return INVALID
        return CountCondition(op=op, value=number)

    def _follow_up(self, value: object, path: str) -> Any:
        if not isinstance(value, dict):
            self.error(
                path,
                _(
                    'A follow-up must be an object like {"event": "order", "within_hours": 24}, '
                    "not %(kind)s."
                )
                % kind_args(value),
            )
            return INVALID
        errors_before = len(self.errors)
        self._unknown_keys(value, FOLLOW_UP_KEYS, path, _("follow-up"))
        if "event" not in value:
            self.error(join(path, "event"), _("A follow-up needs the name of its event."))
            return INVALID
        name = self._name(value["event"], join(path, "event"), "event")
        window = self._window(value, path, is_required=True)
        where = self._where(value["where"], join(path, "where")) if "where" in value else ()
        if INVALID in (name, window, where) or len(self.errors) > errors_before:
            return INVALID
        return FollowUp(name=name, window=window, where=where)

    def _event(self, node: dict[str, Any], path: str) -> Node | None:
        errors_before = len(self.errors)
        name = self._name(node["event"], join(path, "event"), "event")
        window = self._window(node, path, is_required=False)
        where = self._where(node["where"], join(path, "where")) if "where" in node else ()
        count = self._count(node["count"], join(path, "count")) if "count" in node else AT_LEAST_ONE
        follow_ups = {
            key: self._follow_up(node[key], join(path, key)) if key in node else None
            for key in ("followed_by", "not_followed_by")
        }
        if len(self.errors) > errors_before:
            return None
        return EventNode(
            path=path,
            name=name,
            window=window,
            where=where,
            count=count,
            followed_by=follow_ups["followed_by"],
            not_followed_by=follow_ups["not_followed_by"],
        )

    # -- segments
    def _segment(self, node: dict[str, Any], path: str) -> Node | None:
        here = join(path, "segment")
        segment_id = node["segment"]
        if isinstance(segment_id, bool) or not isinstance(segment_id, int) or segment_id < 1:
            self.error(
                here,
                _("segment must be a segment id (a whole number), not %(kind)s.")
                % kind_args(segment_id),
            )
            return None
        if segment_id in self.segment_stack:
            self._cycle(here, segment_id)
            return None
        segment = (
            Segment.objects.filter(pk=segment_id).only("pk", "name", "kind", "definition").first()
        )
        if segment is None:
            self.error(here, _("Segment %(id)d does not exist.") % {"id": segment_id})
            return None
        if not segment.is_dynamic:
            return SegmentNode(path=path, segment_id=segment_id, name=segment.name, definition=None)
        if len(self.segment_stack) >= MAX_SEGMENT_CHAIN:
            self.error(
                here,
                _("Segments refer to segments more than %(limit)d levels deep.")
                % limit_args(MAX_SEGMENT_CHAIN),
            )
            return None
        inner = _Parser(segment_stack=(*self.segment_stack, segment_id), budget=self.budget)
        try:
            definition = inner.parse(segment.definition, "", 1)
        except _Limit:
            definition = None
        if inner.cycle is not None:
            # The cycle is the problem of the tree being checked, whichever segment closes it.
            self.cycle = inner.cycle
            self.error(here, inner.cycle.message)
            return None
        if inner.errors or definition is None:
            first = inner.errors[0] if inner.errors else RuleError("", _("invalid"))
            self.error(
                here,
                _("Segment %(id)d (%(name)s) has an invalid rule: %(error)s")
                % {"id": segment_id, "name": segment.name, "error": str(first)},
            )
            return None
        return SegmentNode(
            path=path, segment_id=segment_id, name=segment.name, definition=definition
        )

    def _cycle(self, path: str, segment_id: int) -> None:
        start = self.segment_stack.index(segment_id)
        through = self.segment_stack[start + 1 :]
        if through:
            message = _("Segment %(id)d refers back to itself through %(chain)s.") % {
                "id": segment_id,
                "chain": " → ".join(_("segment %(id)d") % {"id": s} for s in through),
            }
        else:
            message = _("Segment %(id)d refers to itself.") % {"id": segment_id}
        self.cycle = RuleError(path, message)
        self.error(path, message)


def _json_values(tree: object) -> Iterator[object]:
    stack = [tree]
    while stack:
        value = stack.pop()
        yield value
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def _too_large(tree: object) -> bool:
    return any(i >= MAX_JSON_VALUES for i, _value in enumerate(_json_values(tree)))


def parse_rules(tree: object, *, segment_id: int | None = None) -> Node:
    """The typed tree of a valid rule tree; raises RulesInvalid listing every problem found.

    segment_id is the saved segment this tree defines (None for a new one or a preview): a
    reference back to it, directly or through other segments, is an error.
    """
    if _too_large(tree):
        raise RulesInvalid([RuleError("", _("The rule is too large."))])
    parser = _Parser(
        segment_stack=(segment_id,) if segment_id is not None else (),
        budget=[MAX_INLINED_NODES],
    )
    try:
        node = parser.parse(tree, "", 1)
    except _Limit:
        node = None
    if parser.errors or node is None:
        raise RulesInvalid(parser.errors or [RuleError("", _("The rule is invalid."))])
    return node


def validate_rules(tree: object, *, segment_id: int | None = None) -> list[RuleError]:
    """Every problem of a rule tree (empty when it is valid), each with its path."""
    try:
        parse_rules(tree, segment_id=segment_id)
    except RulesInvalid as invalid:
        return invalid.errors
    return []
