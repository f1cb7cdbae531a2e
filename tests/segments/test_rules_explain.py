from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import translation

from customers.models import Customer
from segments.models import Segment, SegmentMember
from segments.rules import explain_rules
from tests.segments.test_compiler import AS_OF, CASES, make_people, matched


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    with translation.override("en"):
        yield


@pytest.fixture
def people(db: None) -> dict[str, Customer]:
    return make_people()


def test_explain_shows_why_a_customer_is_not_matched_with_her_actual_values(
    people: dict[str, Customer],
) -> None:
    # given
    tree = {
        "all": [
            {"field": "spend_90d", "op": "gte", "value": 500},
            {
                "event": "view_product",
                "within_days": 7,
                "where": {"category": "美妆"},
                "count": {"op": "gt", "value": 3},
            },
            {"tag": "沉睡", "op": "absent"},
        ]
    }

    # when
    explained = explain_rules(tree, customer_id=people["A"].pk, as_of=AS_OF)

    # then
    assert explained.as_dict() == {
        "path": "",
        "kind": "all",
        "label": "All of these hold",
        "result": False,
        "actual": None,
        "reason": "",
        "children": [
            {
                "path": "all[0]",
                "kind": "field",
                "label": "Spend in 90 days (yuan) is at least 500",
                "result": False,
                "actual": "320.00",
                "reason": "Spend in 90 days (yuan) is 320.00.",
                "children": [],
            },
            {
                "path": "all[1]",
                "kind": "event",
                "label": (
                    "Event view_product, within 7 days, where category equals 美妆, "
                    "count is more than 3"
                ),
                "result": False,
                "actual": {"count": 3},
                "reason": "3 matching events.",
                "children": [],
            },
            {
                "path": "all[2]",
                "kind": "tag",
                "label": "Does not have the tag 沉睡",
                "result": True,
                "actual": False,
                "reason": "The customer lacks the tag.",
                "children": [],
            },
        ],
    }


def test_explain_says_when_a_metric_is_the_default_of_a_missing_metrics_row(
    people: dict[str, Customer],
) -> None:
    # when
    explained = explain_rules(
        {"field": "spend_90d", "op": "lt", "value": 500}, customer_id=people["C"].pk, as_of=AS_OF
    )

    # then
    assert (explained.result, explained.actual, explained.reason) == (
        True,
        "0",
        "Spend in 90 days (yuan) is 0. (No metrics computed yet: the default value.)",
    )


@pytest.mark.parametrize(
    ("tree", "who", "expected"),
    [
        (
            {"field": "days_since_last_order", "op": "gte", "value": 90},
            "B",
            (True, 90, "Days since the last order is 90."),
        ),
        ({"field": "age", "op": "eq", "value": 35}, "A", (True, 35, "Age is 35.")),
        ({"field": "age", "op": "eq", "value": 35}, "C", (False, None, "Age is empty.")),
        (
            {"field": "registered_at", "op": "within_last_days", "value": 7},
            "A",
            (True, "2025-06-10T09:00:00+08:00", "Registered is 2025-06-10 09:00."),
        ),
        (
            {"field": "tier", "op": "in", "value": ["gold"]},
            "A",
            (True, "gold", "Membership tier is Gold."),
        ),
        (
            {"field": "lifecycle_stage", "op": "in", "value": ["silent"]},
            "A",
            (False, "active", "Lifecycle stage is Active."),
        ),
        (
            {"field": "silent_level", "op": "in", "value": ["medium"]},
            "A",
            (False, "", "Silent level is empty."),
        ),
        (
            {"field": "unsubscribed", "op": "is_true"},
            "B",
            (True, True, "Unsubscribed from everything is yes."),
        ),
        (
            {"field": "attr.vip_level", "op": "gte", "value": 3},
            "B",
            (False, "gold", "vip_level is gold."),
        ),
        (
            {"field": "attr.nothing", "op": "is_set"},
            "A",
            (False, None, "The customer has no attribute nothing."),
        ),
        ({"tag": "高价值用户"}, "B", (True, True, "The customer has the tag.")),
        (
            {"field": "points_balance", "op": "eq", "value": 0},
            "C",
            (True, 0, "Points balance is 0. (Not a member: the default value.)"),
        ),
    ],
    ids=[
        "days-since",
        "age",
        "age-unknown",
        "datetime-in-shanghai",
        "tier",
        "choice-in-words",
        "choice-empty",
        "derived-bool",
        "attribute-of-another-type",
        "attribute-missing",
        "tag",
        "no-membership",
    ],
)
def test_explain_reports_each_leaf_with_the_value_it_read(
    people: dict[str, Customer], tree: dict[str, Any], who: str, expected: tuple[Any, Any, str]
) -> None:
    # when
    explained = explain_rules(tree, customer_id=people[who].pk, as_of=AS_OF)

    # then
    assert (explained.result, explained.actual, explained.reason) == expected


def test_explain_of_a_sequence_counts_the_events_before_and_after_the_follow_up_test(
    people: dict[str, Customer],
) -> None:
    # given: 李雷's cart 40 h ago has no order after it; the one 100 h ago has one 24 h later
    tree = {"event": "add_to_cart", "not_followed_by": {"event": "order", "within_hours": 24}}

    # when
    explained = explain_rules(tree, customer_id=people["B"].pk, as_of=AS_OF)

    # then
    assert (explained.result, explained.actual, explained.reason) == (
        True,
        {"count": 1, "before_follow_ups": 2},
        "2 add_to_cart events in the window, 1 of them with the follow-up the rule asks for.",
    )
    assert explained.label == (
        "Event add_to_cart, count is at least 1, then not followed by order within 24 hours"
    )


def test_explain_opens_a_dynamic_segment_and_reads_a_static_one(
    people: dict[str, Customer],
) -> None:
    # given
    shanghai = Segment.objects.create(
        name="上海", definition={"field": "city", "op": "eq", "value": "上海"}
    )
    frozen = Segment.objects.create(name="冻结", kind="static", definition={"all": []})
    SegmentMember.objects.create(segment=frozen, customer=people["B"], joined_at=AS_OF)
    tree = {"any": [{"segment": shanghai.pk}, {"not": {"segment": frozen.pk}}]}

    # when
    explained = explain_rules(tree, customer_id=people["B"].pk, as_of=AS_OF).as_dict()

    # then
    assert explained["result"] is False
    dynamic, negated = explained["children"]
    assert (dynamic["label"], dynamic["result"]) == (f"In segment 上海 ({shanghai.pk})", False)
    assert [(c["path"], c["label"], c["result"], c["actual"]) for c in dynamic["children"]] == [
        ("", "City equals 上海", False, "北京")
    ]
    assert (negated["result"], negated["children"][0]["actual"]) == (False, True)
    assert negated["children"][0]["reason"] == (
        "The customer is a stored member of this static segment."
    )


def test_explain_of_empty_groups_says_what_they_mean(people: dict[str, Customer]) -> None:
    # when
    everyone = explain_rules({"all": []}, customer_id=people["A"].pk, as_of=AS_OF)
    nobody = explain_rules({"any": []}, customer_id=people["A"].pk, as_of=AS_OF)

    # then
    assert (everyone.result, everyone.reason) == (True, "An empty 'all' matches everyone.")
    assert (nobody.result, nobody.reason) == (False, "An empty 'any' matches nobody.")


def test_explain_of_an_unknown_customer_raises(db: None) -> None:
    with pytest.raises(Customer.DoesNotExist):
        explain_rules({"all": []}, customer_id=999_999, as_of=AS_OF)


@pytest.mark.parametrize(
    "tree", [tree for _id, tree, _expected in CASES], ids=[case_id for case_id, *_rest in CASES]
)
def test_explain_agrees_with_the_compiled_query_for_every_customer(
    people: dict[str, Customer], tree: dict[str, Any]
) -> None:
    # given
    expected = matched(tree)

    # when
    explained = {
        key
        for key, customer in people.items()
        if explain_rules(tree, customer_id=customer.pk, as_of=AS_OF).result
    }

    # then
    assert explained == expected
