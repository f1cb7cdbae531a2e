"""The shape of a rule tree, its limits, and the same shape as a JSON Schema (validation.py
checks a tree against all of it and turns it into typed nodes).

A tree is a JSON object, one of:
  {"all": [node, ...]}   every child holds; an empty "all" matches everyone
  {"any": [node, ...]}   at least one child holds; an empty "any" matches nobody
  {"not": node}
  {"field": "spend_90d", "op": "gte", "value": 500}            (fields.py lists fields and ops)
  {"tag": "高价值用户"} or {"tag": "...", "op": "absent"}
  {"event": "view_product", "within_days": 7, "where": {"category": "美妆"},
   "count": {"op": "gt", "value": 3}}                           (within_hours also)
  {"event": "add_to_cart", "within_hours": 48,
   "not_followed_by": {"event": "order", "within_hours": 24}}   (and "followed_by")
  {"segment": 12}                                               member of another saved segment

Every problem is reported with the path of the bad node ("all[2].any[0].op"; "" is the root)
and what is wrong. Limits: MAX_DEPTH levels, MAX_NODES nodes, MAX_LIST_VALUES values in a list.
The semantics (missing values, time windows, sequences) are in compiler.py's docstring.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from segments.rules.fields import ATTRIBUTE, ATTRIBUTE_KEY_RE, FIELDS, NUMBER, OPS_BY_TYPE

MAX_DEPTH = 20  # levels of nesting, the root being level 1
MAX_NODES = 500  # groups and conditions in one tree
MAX_INLINED_NODES = 2000  # with the dynamic segments it refers to, inlined
MAX_SEGMENT_CHAIN = 10  # segments referring to segments referring to segments ...
MAX_JSON_VALUES = 20_000  # a cheap guard before anything else looks at a huge payload
MAX_LIST_VALUES = 500
MAX_TEXT_LENGTH = 255
MAX_NAME_LENGTH = 64  # Tag.name, Event.name
MAX_WHERE_KEYS = 20
MAX_ERRORS = 50
MAX_NUMBER = 10**12
MAX_DAYS = 36_500
MAX_HOURS = MAX_DAYS * 24
MIN_DATE = dt.date(1900, 1, 1)
MAX_DATE = dt.date(2999, 12, 31)
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")

GROUP_KINDS = ("all", "any")
NODE_KINDS = ("all", "any", "not", "field", "tag", "event", "segment")
KEYS_BY_KIND: dict[str, tuple[str, ...]] = {
    "all": ("all",),
    "any": ("any",),
    "not": ("not",),
    "field": ("field", "op", "value"),
    "tag": ("tag", "op"),
    "event": (
        "event",
        "within_days",
        "within_hours",
        "where",
        "count",
        "followed_by",
        "not_followed_by",
    ),
    "segment": ("segment",),
}
FOLLOW_UP_KEYS = ("event", "within_days", "within_hours", "where")
TAG_OPS = ("present", "absent")
# Ops whose value is a list, a [from, to] pair, or nothing.
LIST_OPS = {"in", "not_in"}
NO_VALUE_OPS = {"is_set", "is_empty", "is_true", "is_false"}
DAY_OPS = {"within_last_days", "more_than_days_ago"}
NUMBER_ONLY_ATTRIBUTE_OPS = {"gt", "gte", "lt", "lte", "between"}
TEXT_ONLY_ATTRIBUTE_OPS = {"contains", "starts_with"}


# -- The same shape as a JSON Schema (draft 2020-12), for the API docs and the builder.


def rules_json_schema() -> dict[str, Any]:
    """The rule language as a JSON Schema. The schema checks shapes; validate_rules checks
    meaning (a field's ops and value types, choices, segment references, limits)."""
    field_keys = [spec.key for spec in FIELDS]
    all_ops = sorted({op for ops in OPS_BY_TYPE.values() for op in ops})
    scalar: dict[str, Any] = {"type": ["string", "number", "boolean"]}
    window = {"type": "integer", "minimum": 1}
    where = {
        "type": "object",
        "maxProperties": MAX_WHERE_KEYS,
        "propertyNames": {"pattern": ATTRIBUTE_KEY_RE.pattern.replace("\\Z", "$")},
        "additionalProperties": {
            "oneOf": [
                scalar,
                {
                    "type": "object",
                    "properties": {
                        "op": {"enum": list(OPS_BY_TYPE[ATTRIBUTE])},
                        "value": {},
                    },
                    "required": ["op"],
                    "additionalProperties": False,
                },
            ]
        },
    }
    follow_up = {
        "type": "object",
        "properties": {
            "event": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH},
            "within_days": window,
            "within_hours": window,
            "where": {"$ref": "#/$defs/where"},
        },
        "required": ["event"],
        "additionalProperties": False,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://yunying.example/schemas/segment-rules.json",
        "title": "Segment rules",
        "description": (
            "A rule tree: groups all / any / not nested freely, leaves on fields, tags, events "
            "and other segments. An empty 'all' matches everyone, an empty 'any' nobody."
        ),
        "$ref": "#/$defs/node",
        "$defs": {
            "node": {
                "oneOf": [
                    {"$ref": "#/$defs/all"},
                    {"$ref": "#/$defs/any"},
                    {"$ref": "#/$defs/not"},
                    {"$ref": "#/$defs/field"},
                    {"$ref": "#/$defs/tag"},
                    {"$ref": "#/$defs/event"},
                    {"$ref": "#/$defs/segment"},
                ]
            },
            "all": {
                "type": "object",
                "properties": {"all": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                "required": ["all"],
                "additionalProperties": False,
            },
            "any": {
                "type": "object",
                "properties": {"any": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                "required": ["any"],
                "additionalProperties": False,
            },
            "not": {
                "type": "object",
                "properties": {"not": {"$ref": "#/$defs/node"}},
                "required": ["not"],
                "additionalProperties": False,
            },
            "field": {
                "type": "object",
                "properties": {
                    "field": {
                        "anyOf": [
                            {"enum": field_keys},
                            {"type": "string", "pattern": r"^attr\.[^\W\d][\w-]{0,63}$"},
                        ]
                    },
                    "op": {"enum": all_ops},
                    "value": {
                        "anyOf": [
                            scalar,
                            {"type": "array", "items": scalar, "maxItems": MAX_LIST_VALUES},
                        ]
                    },
                },
                "required": ["field", "op"],
                "additionalProperties": False,
            },
            "tag": {
                "type": "object",
                "properties": {
                    "tag": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH},
                    "op": {"enum": list(TAG_OPS), "default": "present"},
                },
                "required": ["tag"],
                "additionalProperties": False,
            },
            "event": {
                "type": "object",
                "properties": {
                    "event": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH},
                    "within_days": window,
                    "within_hours": window,
                    "where": {"$ref": "#/$defs/where"},
                    "count": {
                        "type": "object",
                        "properties": {
                            "op": {"enum": list(OPS_BY_TYPE[NUMBER])},
                            "value": {
                                "anyOf": [
                                    {"type": "integer", "minimum": 0},
                                    {
                                        "type": "array",
                                        "items": {"type": "integer", "minimum": 0},
                                        "minItems": 2,
                                        "maxItems": 2,
                                    },
                                ]
                            },
                        },
                        "required": ["op", "value"],
                        "additionalProperties": False,
                        "default": {"op": "gte", "value": 1},
                    },
                    "followed_by": {"$ref": "#/$defs/follow_up"},
                    "not_followed_by": {"$ref": "#/$defs/follow_up"},
                },
                "required": ["event"],
                "additionalProperties": False,
            },
            "follow_up": follow_up,
            "where": where,
            "segment": {
                "type": "object",
                "properties": {"segment": {"type": "integer", "minimum": 1}},
                "required": ["segment"],
                "additionalProperties": False,
            },
        },
    }
