from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import translation

from segments.rules import RuleError, RulesInvalid, compile_rules, list_fields, validate_rules
from segments.rules.fields import OPS_BY_TYPE
from segments.rules.schema import MAX_DEPTH, MAX_LIST_VALUES, MAX_NODES, rules_json_schema
from tests.segments.test_compiler import AS_OF


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    with translation.override("en"):
        yield


def errors_of(tree: object) -> list[tuple[str, str]]:
    return [(error.path, error.message) for error in validate_rules(tree)]


BAD: list[tuple[str, object, list[tuple[str, str]]]] = [
    ("root-not-an-object", [], [("", "A rule must be a JSON object, not a list.")]),
    (
        "no-node-key",
        {},
        [
            (
                "",
                "A rule needs one of the keys all, any, not, field, tag, event, segment "
                "(it has: none).",
            )
        ],
    ),
    (
        "op-of-another-type",
        {
            "all": [
                {"field": "city", "op": "eq", "value": "x"},
                {"any": [{"field": "city", "op": "gt", "value": "上海"}]},
            ]
        },
        [("all[1].any[0].op", "'gt' is not an op of text field 'city'")],
    ),
    (
        "op-of-bool",
        {"field": "sms_opt_in", "op": "eq", "value": True},
        [("op", "'eq' is not an op of bool field 'sms_opt_in'")],
    ),
    (
        "op-not-text",
        {"field": "spend_90d", "op": 3, "value": 1},
        [("op", "a number is not an op of number field 'spend_90d'")],
    ),
    (
        "op-missing",
        {"field": "lifecycle_stage", "value": ["active"]},
        [("op", "The op is missing: choice field 'lifecycle_stage' takes in, not_in.")],
    ),
    (
        "unknown-key",
        {"all": [{"field": "city", "op": "eq", "value": "x", "colour": 1}]},
        [("all[0].colour", "Unknown key 'colour': a field rule takes field, op, value.")],
    ),
    (
        "two-node-kinds",
        {"all": [{"field": "city", "tag": "x"}]},
        [
            (
                "all[0]",
                "A rule has only one of all, any, not, field, tag, event, segment; "
                "this one has field, tag.",
            )
        ],
    ),
    (
        "unknown-field",
        {"field": "colour", "op": "eq", "value": 1},
        [("field", "Unknown field 'colour'.")],
    ),
    (
        "bad-attribute-key",
        {"field": "attr.1st", "op": "eq", "value": 1},
        [
            (
                "field",
                "'attr.1st' is not a custom attribute name: after attr. come up to 64 letters, "
                "digits, _ or -, starting with a letter or _.",
            )
        ],
    ),
    (
        "value-missing",
        {"field": "spend_90d", "op": "gte"},
        [("value", "The value is missing: 'gte' needs one.")],
    ),
    (
        "number-as-text",
        {"field": "spend_90d", "op": "gte", "value": "500"},
        [("value", "The value must be a number, not text.")],
    ),
    (
        "number-as-bool",
        {"field": "spend_90d", "op": "gte", "value": True},
        [("value", "The value must be a number, not true/false.")],
    ),
    (
        "between-reversed",
        {"field": "spend_90d", "op": "between", "value": [500, 100]},
        [("value", "'between' needs [from, to] with from <= to, not [500, 100].")],
    ),
    (
        "between-one-value",
        {"field": "spend_90d", "op": "between", "value": [500]},
        [("value", "'between' needs a list of two values [from, to].")],
    ),
    (
        "between-bad-item",
        {"field": "registered_at", "op": "between", "value": ["2025-01-01", "soon"]},
        [
            (
                "value[1]",
                "The value must be a date written YYYY-MM-DD from 1900-01-01 to 2999-12-31, "
                "not 'soon'.",
            )
        ],
    ),
    (
        "whole-number",
        {"field": "orders_count", "op": "eq", "value": 2.5},
        [("value", "The value must be a whole number, not 2.5.")],
    ),
    (
        "number-too-large",
        {"field": "spend_90d", "op": "gt", "value": 10**13},
        [("value", "The value must be between -1000000000000 and 1000000000000.")],
    ),
    (
        "age-out-of-range",
        {"field": "age", "op": "gt", "value": 500},
        [("value", "'age' takes values from 0 to 200.")],
    ),
    (
        "unknown-lifecycle-choice",
        {"field": "lifecycle_stage", "op": "in", "value": ["active", "vip"]},
        [
            (
                "value[1]",
                "'vip' is not a choice of field 'lifecycle_stage'; choose from new, active, "
                "silent, lapsed, prospect.",
            )
        ],
    ),
    (
        "unknown-tier",
        {"field": "tier", "op": "not_in", "value": ["platinum"]},
        [
            (
                "value[0]",
                "'platinum' is not a choice of field 'tier'; choose from normal, silver, gold, "
                "diamond.",
            )
        ],
    ),
    (
        "choice-not-a-list",
        {"field": "value_tier", "op": "in", "value": "high"},
        [("value", "The value must be a list, not text.")],
    ),
    (
        "empty-list",
        {"field": "city", "op": "in", "value": []},
        [("value", "The list needs at least one value.")],
    ),
    (
        "too-many-values",
        {"field": "city", "op": "in", "value": ["x"] * (MAX_LIST_VALUES + 1)},
        [("value", "The list has more than 500 values.")],
    ),
    (
        "no-value-op-with-value",
        {"field": "city", "op": "is_set", "value": "x"},
        [("value", "'is_set' takes no value.")],
    ),
    (
        "negative-day-window",
        {"field": "registered_at", "op": "within_last_days", "value": -3},
        [("value", "The value must be a whole number of days from 1 to 36500.")],
    ),
    (
        "impossible-date",
        {"field": "registered_at", "op": "before", "value": "2025-02-30"},
        [
            (
                "value",
                "The value must be a date written YYYY-MM-DD from 1900-01-01 to 2999-12-31, "
                "not '2025-02-30'.",
            )
        ],
    ),
    (
        "text-too-long",
        {"field": "city", "op": "eq", "value": "x" * 256},
        [("value", "The text is longer than 255 characters.")],
    ),
    (
        "text-with-nul",
        {"field": "city", "op": "eq", "value": "a\x00b"},
        [("value", "The text contains a NUL character.")],
    ),
    (
        "text-lone-surrogate",
        {"field": "city", "op": "eq", "value": "\ud800"},
        [("value", "The text is not valid Unicode.")],
    ),
    (
        "not-finite",
        {"field": "spend_90d", "op": "gt", "value": float("inf")},
        [("value", "The value must be a finite number.")],
    ),
    (
        "attribute-mixed-list",
        {"field": "attr.level", "op": "in", "value": ["a", 1]},
        [("value", "'in' needs a list of texts or a list of numbers.")],
    ),
    (
        "attribute-contains-number",
        {"field": "attr.level", "op": "contains", "value": 1},
        [("value", "The value must be text, not a number.")],
    ),
    (
        "attribute-gt-text",
        {"field": "attr.level", "op": "gt", "value": "a"},
        [("value", "The value must be a number, not text.")],
    ),
    (
        "attribute-eq-null",
        {"field": "attr.level", "op": "eq", "value": None},
        [("value", "The value must be text, a number or true/false, not null.")],
    ),
    (
        "both-windows",
        {"event": "view_product", "within_days": 7, "within_hours": 3},
        [("within_hours", "Use within_days or within_hours, not both.")],
    ),
    (
        "negative-event-window",
        {"event": "view_product", "within_days": -1},
        [("within_days", "within_days must be a whole number from 1 to 36500.")],
    ),
    (
        "zero-hours",
        {"event": "view_product", "within_hours": 0},
        [("within_hours", "within_hours must be a whole number from 1 to 876000.")],
    ),
    (
        "blank-event-and-negative-count",
        {"event": " ", "count": {"op": "gt", "value": -1}},
        [
            ("event", "'event' needs a name, not blank text."),
            ("count.value", "A count must be a whole number of at least 0."),
        ],
    ),
    (
        "count-op",
        {"event": "view_product", "count": {"op": "in", "value": 1}},
        [("count.op", "'in' is not an op of count; it takes eq, ne, gt, gte, lt, lte, between.")],
    ),
    (
        "count-between-reversed",
        {"event": "view_product", "count": {"op": "between", "value": [3, 1]}},
        [("count.value", "'between' needs [from, to] with from <= to, not [3, 1].")],
    ),
    (
        "where-bad-key-and-null",
        {"event": "view_product", "where": {"a b": 1, "ok": None}},
        [
            (
                "where.a b",
                "'a b' is not a property name: up to 64 letters, digits, _ or -, starting with "
                "a letter or _.",
            ),
            (
                "where.ok",
                'A property condition is a value (text, number, true/false) or {"op": ..., '
                '"value": ...}, not null.',
            ),
        ],
    ),
    (
        "where-op",
        {"event": "view_product", "where": {"price": {"op": "before", "value": 1}}},
        [
            (
                "where.price.op",
                "'before' is not an op of an event property; it takes eq, ne, in, not_in, gt, "
                "gte, lt, lte, between, contains, starts_with, is_set, is_empty, is_true, "
                "is_false.",
            )
        ],
    ),
    (
        "follow-up-without-window",
        {"event": "add_to_cart", "not_followed_by": {"event": "order"}},
        [("not_followed_by", "A follow-up event needs within_days or within_hours.")],
    ),
    (
        "follow-up-unknown-key",
        {"event": "add_to_cart", "followed_by": {"event": "order", "within_hours": 2, "count": 1}},
        [
            (
                "followed_by.count",
                "Unknown key 'count': a follow-up rule takes event, within_days, within_hours, "
                "where.",
            )
        ],
    ),
    (
        "tag-op",
        {"tag": "x", "op": "gone"},
        [("op", "A tag rule's op is 'present' or 'absent', not 'gone'.")],
    ),
    ("tag-not-text", {"tag": 5}, [("tag", "'tag' must be a name (text), not a number.")]),
    ("tag-too-long", {"tag": "长" * 65}, [("tag", "The text is longer than 64 characters.")]),
    (
        "segment-not-an-id",
        {"segment": "12"},
        [("segment", "segment must be a segment id (a whole number), not text.")],
    ),
    (
        "segment-bool",
        {"segment": True},
        [("segment", "segment must be a segment id (a whole number), not true/false.")],
    ),
    ("not-of-a-list", {"not": [1]}, [("not", "A rule must be a JSON object, not a list.")]),
    (
        "group-of-an-object",
        {"all": {"x": 1}},
        [("all", "'all' must be a list of rules, not an object.")],
    ),
    (
        "every-error-is-reported",
        {"any": [{"field": "city", "op": "gt", "value": 1}, {"tag": ""}, {"all": 3}]},
        [
            ("any[0].op", "'gt' is not an op of text field 'city'"),
            ("any[1].tag", "'tag' needs a name, not blank text."),
            ("any[2].all", "'all' must be a list of rules, not a number."),
        ],
    ),
]


@pytest.mark.parametrize(
    ("tree", "expected"),
    [(tree, expected) for _id, tree, expected in BAD],
    ids=[case_id for case_id, _tree, _expected in BAD],
)
def test_a_bad_tree_gets_the_path_of_each_bad_node_and_what_is_wrong(
    db: None, tree: object, expected: list[tuple[str, str]]
) -> None:
    assert errors_of(tree) == expected


def test_nesting_deeper_than_the_limit_is_an_error_at_the_too_deep_node(db: None) -> None:
    # given
    tree: dict[str, Any] = {"all": []}
    for _level in range(MAX_DEPTH):
        tree = {"not": tree}

    # when / then
    assert errors_of(tree) == [
        (".".join(["not"] * MAX_DEPTH), "The rule is nested more than 20 levels deep.")
    ]


def test_the_deepest_allowed_tree_is_valid(db: None) -> None:
    # given
    tree: dict[str, Any] = {"all": []}
    for _level in range(MAX_DEPTH - 1):
        tree = {"not": tree}

    # when / then
    assert errors_of(tree) == []


def test_more_nodes_than_the_limit_is_an_error(db: None) -> None:
    # given
    tree = {"any": [{"tag": f"t{i}"} for i in range(MAX_NODES)]}

    # when / then
    assert errors_of(tree) == [("", "The rule has more than 500 groups and conditions.")]
    assert errors_of({"any": [{"tag": f"t{i}"} for i in range(MAX_NODES - 1)]}) == []


def test_a_huge_payload_is_refused_before_it_is_read(db: None) -> None:
    assert errors_of({"any": [[0] * 30_000]}) == [("", "The rule is too large.")]


def test_compile_rules_raises_rules_invalid_carrying_every_error(db: None) -> None:
    # when
    with pytest.raises(RulesInvalid) as raised:
        compile_rules({"all": [{"field": "city", "op": "gt", "value": "上海"}]}, as_of=AS_OF)

    # then
    assert raised.value.errors == [RuleError("all[0].op", "'gt' is not an op of text field 'city'")]
    assert raised.value.messages == ["all[0].op: 'gt' is not an op of text field 'city'"]


GOOD: list[tuple[str, dict[str, Any]]] = [
    ("every-group", {"all": [{"any": [{"not": {"all": []}}]}, {"any": []}]}),
    ("whole-float-for-whole-number", {"field": "orders_count", "op": "gte", "value": 3.0}),
    ("decimal-money", {"field": "spend_90d", "op": "between", "value": [99.5, 500]}),
    ("choices", {"field": "tier", "op": "in", "value": ["gold", "diamond"]}),
    ("no-value-op", {"field": "city", "op": "is_empty"}),
    ("attribute-bool", {"field": "attr.vip", "op": "eq", "value": False}),
    ("attribute-chinese-key", {"field": "attr.会员等级", "op": "gte", "value": 2}),
    ("tag-absent", {"tag": "高价值用户", "op": "absent"}),
    (
        "full-event",
        {
            "event": "add_to_cart",
            "within_hours": 48,
            "where": {"category": "美妆", "price": {"op": "between", "value": [10, 99.9]}},
            "count": {"op": "eq", "value": 0},
            "followed_by": {"event": "view_product", "within_days": 1},
            "not_followed_by": {"event": "order", "within_hours": 24, "where": {"paid": True}},
        },
    ),
]


@pytest.mark.parametrize(
    "tree", [tree for _id, tree in GOOD], ids=[case_id for case_id, _tree in GOOD]
)
def test_a_good_tree_has_no_errors(db: None, tree: dict[str, Any]) -> None:
    assert errors_of(tree) == []


def test_the_registry_gives_every_field_the_ops_of_its_type_and_labels_for_the_builder(
    db: None,
) -> None:
    # when
    fields = {spec.key: spec.as_dict() for spec in list_fields()}

    # then
    assert fields["city"]["ops"] == [
        {"op": "eq", "label": "equals"},
        {"op": "ne", "label": "does not equal"},
        {"op": "in", "label": "is one of"},
        {"op": "not_in", "label": "is none of"},
        {"op": "contains", "label": "contains"},
        {"op": "starts_with", "label": "starts with"},
        {"op": "is_set", "label": "is filled in"},
        {"op": "is_empty", "label": "is empty"},
    ]
    assert fields["tier"]["choices"] == [
        {"value": "normal", "label": "Normal"},
        {"value": "silver", "label": "Silver"},
        {"value": "gold", "label": "Gold"},
        {"value": "diamond", "label": "Diamond"},
    ]
    assert [choice["value"] for choice in fields["lifecycle_stage"]["choices"]] == [
        "new",
        "active",
        "silent",
        "lapsed",
        "prospect",
    ]
    assert (fields["spend_90d"]["type"], fields["spend_90d"]["group"]) == ("number", "metrics")
    assert {spec.type for spec in list_fields()} == {"number", "text", "date", "bool", "choice"}
    assert all(
        [op["op"] for op in f["ops"]] == list(OPS_BY_TYPE[f["type"]]) for f in fields.values()
    )


def test_the_json_schema_names_every_field_and_node_kind() -> None:
    # when
    schema = rules_json_schema()

    # then
    assert schema["$ref"] == "#/$defs/node"
    assert [ref["$ref"] for ref in schema["$defs"]["node"]["oneOf"]] == [
        "#/$defs/all",
        "#/$defs/any",
        "#/$defs/not",
        "#/$defs/field",
        "#/$defs/tag",
        "#/$defs/event",
        "#/$defs/segment",
    ]
    field_keys = schema["$defs"]["field"]["properties"]["field"]["anyOf"][0]["enum"]
    assert field_keys == [spec.key for spec in list_fields()]
