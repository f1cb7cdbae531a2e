from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.utils import translation

from customers.models import Customer, CustomerMetrics, CustomerTag, Event, Tag
from loyalty.models import Membership, Tier
from segments.models import Segment, SegmentMember
from segments.rules import RulesInvalid, compile_rules, restrict_to
from segments.rules.compiler import years_before
from tests.factories import SHANGHAI

AS_OF = dt.datetime(2025, 6, 15, 12, 0, tzinfo=SHANGHAI)


def at(year: int, month: int, day: int, hour: int, minute: int) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def hours_before(hours: float) -> dt.datetime:
    return AS_OF - dt.timedelta(hours=hours)


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    with translation.override("en"):
        yield


def make_customer(external_id: str, name: str, **fields: Any) -> Customer:
    defaults: dict[str, Any] = {
        "city": "",
        "channel": "other",
        "gender": "u",
        "phone": "",
        "email": "",
        "registered_at": at(2024, 1, 1, 10, 0),
        "attributes": {},
    }
    return Customer.objects.create(external_id=external_id, name=name, **{**defaults, **fields})


def make_metrics(customer: Customer, **fields: Any) -> CustomerMetrics:
    return CustomerMetrics.objects.create(customer=customer, computed_as_of=AS_OF, **fields)


def make_event(customer: Customer, name: str, occurred_at: dt.datetime, **properties: Any) -> None:
    Event.objects.create(
        event_id=f"{customer.external_id}-{name}-{occurred_at.isoformat()}",
        customer=customer,
        name=name,
        occurred_at=occurred_at,
        properties=properties,
    )


@pytest.fixture
def people(db: None) -> dict[str, Customer]:
    return make_people()


def make_people() -> dict[str, Customer]:
    """王芳 (A), 李雷 (B) and 张伟 (C): the hand-checked data every op is tested against."""
    wang = make_customer(
        "A1",
        "王芳",
        city="上海",
        channel="app",
        gender="f",
        birth_date=dt.date(1990, 6, 15),
        registered_at=at(2025, 6, 10, 9, 0),
        last_seen_at=at(2025, 6, 15, 8, 0),
        phone="+8613800000001",
        email="wf@example.com",
        email_opt_in=False,
        attributes={"vip_level": 3, "source": "Douyin_%", "newsletter": True, "note": ""},
    )
    li = make_customer(
        "B2",
        "李雷",
        city="北京",
        channel="web",
        gender="m",
        birth_date=dt.date(1990, 6, 16),
        registered_at=at(2024, 1, 1, 10, 0),
        wechat_openid="o-abc",
        sms_opt_in=False,
        push_opt_in=False,
        wechat_opt_in=False,
        unsubscribed_at=at(2025, 5, 1, 10, 0),
        attributes={"vip_level": "gold", "source": "wechat", "newsletter": False},
    )
    zhang = make_customer(
        "C3",
        "张伟",
        channel="mini_program",
        registered_at=at(2025, 6, 15, 11, 0),
        phone="+8613800000003",
    )
    make_metrics(
        wang,
        orders_count=2,
        spend_total=Decimal("320.00"),
        orders_30d=1,
        spend_30d=Decimal("120.00"),
        orders_90d=2,
        spend_90d=Decimal("320.00"),
        orders_180d=2,
        spend_180d=Decimal("320.00"),
        orders_365d=2,
        spend_365d=Decimal("320.00"),
        avg_order_value=Decimal("160.00"),
        first_order_at=at(2025, 4, 1, 10, 0),
        # 3 days before as_of in Shanghai, though 4 in UTC (2025-06-11 16:30Z).
        last_order_at=at(2025, 6, 12, 0, 30),
        days_since_last_order=3,
        rfm_r=4,
        rfm_f=3,
        rfm_m=2,
        value_tier="potential",
        lifecycle_stage="active",
        last_active_at=at(2025, 6, 15, 8, 0),
    )
    make_metrics(
        li,
        orders_count=5,
        spend_total=Decimal("2500.50"),
        orders_90d=1,
        spend_90d=Decimal("800.00"),
        orders_180d=3,
        spend_180d=Decimal("1500.00"),
        orders_365d=5,
        spend_365d=Decimal("2500.50"),
        avg_order_value=Decimal("500.10"),
        first_order_at=at(2023, 1, 5, 10, 0),
        last_order_at=at(2025, 3, 17, 23, 30),
        days_since_last_order=90,
        rfm_r=2,
        rfm_f=5,
        rfm_m=5,
        value_tier="high",
        lifecycle_stage="silent",
        silent_level="light",
        last_active_at=at(2025, 4, 1, 10, 0),
    )
    Membership.objects.create(
        customer=wang,
        tier=Tier.objects.get(code="gold"),
        tier_since=at(2025, 1, 1, 0, 0),
        joined_at=wang.registered_at,
        points_balance=1200,
    )
    Membership.objects.create(
        customer=li,
        tier=Tier.objects.get(code="normal"),
        tier_since=at(2024, 1, 1, 10, 0),
        joined_at=li.registered_at,
        points_balance=0,
    )
    valuable = Tag.objects.create(name="高价值用户")
    asleep = Tag.objects.create(name="沉睡")
    CustomerTag.objects.create(customer=wang, tag=valuable)
    CustomerTag.objects.create(customer=li, tag=valuable)
    CustomerTag.objects.create(customer=li, tag=asleep)

    make_event(wang, "view_product", hours_before(1), category="美妆")
    make_event(wang, "view_product", hours_before(48), category="美妆")
    make_event(wang, "view_product", hours_before(6 * 24), category="美妆", price=99.5)
    make_event(wang, "view_product", hours_before(3 * 24), category="服装")
    make_event(wang, "view_product", hours_before(8 * 24), category="美妆")
    make_event(wang, "view_product", hours_before(7 * 24), category="边界")
    make_event(wang, "add_to_cart", hours_before(30), sku="S1")
    make_event(wang, "order", hours_before(20), amount=199)
    make_event(li, "view_product", hours_before(24), category="服装")
    make_event(li, "view_product", AS_OF + dt.timedelta(hours=1), category="美妆")
    make_event(li, "add_to_cart", hours_before(40), sku="S2")
    make_event(li, "add_to_cart", hours_before(100), sku="S3")
    make_event(li, "order", hours_before(76), amount=99)
    make_event(zhang, "add_to_cart", hours_before(2), sku="S1")
    return {"A": wang, "B": li, "C": zhang}


def matched(tree: dict[str, Any], *, as_of: dt.datetime = AS_OF) -> set[str]:
    return {
        name[0] for name in compile_rules(tree, as_of=as_of).values_list("external_id", flat=True)
    }


NO_VALUE: Any = object()


def field(key: str, op: str, value: Any = NO_VALUE) -> dict[str, Any]:
    node: dict[str, Any] = {"field": key, "op": op}
    if value is not NO_VALUE:
        node["value"] = value
    return node


flag = field


CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    # text
    ("text-eq", field("city", "eq", "上海"), {"A"}),
    ("text-ne-includes-blank", field("city", "ne", "上海"), {"B", "C"}),
    ("text-in", field("city", "in", ["上海", "北京"]), {"A", "B"}),
    ("text-not-in", field("city", "not_in", ["上海"]), {"B", "C"}),
    ("text-contains", field("city", "contains", "海"), {"A"}),
    ("text-starts-with", field("city", "starts_with", "北"), {"B"}),
    ("text-starts-with-ignores-case", field("external_id", "starts_with", "b"), {"B"}),
    ("text-is-set", flag("city", "is_set"), {"A", "B"}),
    ("text-is-empty", flag("city", "is_empty"), {"C"}),
    ("text-name-contains", field("name", "contains", "王"), {"A"}),
    # choice
    ("choice-in", field("channel", "in", ["app", "web"]), {"A", "B"}),
    ("choice-not-in", field("channel", "not_in", ["app"]), {"B", "C"}),
    ("choice-gender", field("gender", "in", ["f"]), {"A"}),
    # date (date-only column)
    ("date-only-before", field("birth_date", "before", "1990-06-16"), {"A"}),
    ("date-only-after", field("birth_date", "after", "1990-06-15"), {"B"}),
    ("date-only-between", field("birth_date", "between", ["1990-06-15", "1990-06-16"]), {"A", "B"}),
    (
        "date-only-between-one-day",
        field("birth_date", "between", ["1990-06-16", "1990-06-16"]),
        {"B"},
    ),
    # 王芳 was born 12784 days before AS_OF's date, 李雷 12783
    ("date-only-within-last-days", field("birth_date", "within_last_days", 12785), {"A", "B"}),
    ("date-only-within-last-days-edge", field("birth_date", "within_last_days", 12784), {"B"}),
    ("date-only-more-than-days-ago", field("birth_date", "more_than_days_ago", 12784), {"A"}),
    (
        "date-only-more-than-days-ago-edge",
        field("birth_date", "more_than_days_ago", 12783),
        {"A", "B"},
    ),
    # age (from birth_date, on as_of's date)
    ("age-eq-birthday-today", field("age", "eq", 35), {"A"}),
    ("age-eq-birthday-tomorrow", field("age", "eq", 34), {"B"}),
    ("age-ne-includes-unknown", field("age", "ne", 35), {"B", "C"}),
    ("age-gt", field("age", "gt", 34), {"A"}),
    ("age-gte", field("age", "gte", 35), {"A"}),
    ("age-lt", field("age", "lt", 35), {"B"}),
    ("age-lte", field("age", "lte", 34), {"B"}),
    ("age-between", field("age", "between", [34, 35]), {"A", "B"}),
    # date (datetime column, days in Shanghai)
    ("date-within-last-days", field("registered_at", "within_last_days", 7), {"A", "C"}),
    ("date-more-than-days-ago", field("registered_at", "more_than_days_ago", 7), {"B"}),
    ("date-before", field("registered_at", "before", "2025-06-10"), {"B"}),
    ("date-after", field("registered_at", "after", "2025-06-10"), {"C"}),
    (
        "date-between-one-day",
        field("registered_at", "between", ["2025-06-10", "2025-06-10"]),
        {"A"},
    ),
    ("date-nullable-within", field("last_seen_at", "within_last_days", 1), {"A"}),
    ("date-nullable-more-than", field("last_seen_at", "more_than_days_ago", 1), set()),
    ("date-not-of-nullable", {"not": field("last_seen_at", "within_last_days", 1)}, {"B", "C"}),
    ("date-unsubscribed-at", field("unsubscribed_at", "before", "2025-05-02"), {"B"}),
    # bool
    ("bool-has-phone", flag("has_phone", "is_true"), {"A", "C"}),
    ("bool-has-no-phone", flag("has_phone", "is_false"), {"B"}),
    ("bool-has-email", flag("has_email", "is_true"), {"A"}),
    ("bool-has-wechat", flag("has_wechat", "is_true"), {"B"}),
    ("bool-sms-opt-in", flag("sms_opt_in", "is_true"), {"A", "C"}),
    ("bool-sms-opt-out", flag("sms_opt_in", "is_false"), {"B"}),
    ("bool-email-opt-out", flag("email_opt_in", "is_false"), {"A"}),
    ("bool-push", flag("push_opt_in", "is_false"), {"B"}),
    ("bool-wechat", flag("wechat_opt_in", "is_true"), {"A", "C"}),
    ("bool-unsubscribed", flag("unsubscribed", "is_true"), {"B"}),
    ("bool-not-unsubscribed", flag("unsubscribed", "is_false"), {"A", "C"}),
    # number (metrics; C has no metrics row and reads as zeros)
    ("number-gte", field("spend_90d", "gte", 500), {"B"}),
    ("number-lt-includes-no-metrics", field("spend_90d", "lt", 500), {"A", "C"}),
    ("number-eq", field("spend_90d", "eq", 320), {"A"}),
    ("number-eq-decimal", field("spend_total", "eq", 2500.5), {"B"}),
    ("number-eq-zero-is-no-metrics", field("spend_90d", "eq", 0), {"C"}),
    ("number-ne", field("spend_90d", "ne", 320), {"B", "C"}),
    ("number-gt", field("spend_90d", "gt", 320), {"B"}),
    ("number-lte", field("spend_90d", "lte", 320), {"A", "C"}),
    ("number-between", field("spend_90d", "between", [0, 320]), {"A", "C"}),
    ("number-orders-count", field("orders_count", "gt", 3), {"B"}),
    ("number-orders-30d", field("orders_30d", "eq", 1), {"A"}),
    ("number-spend-30d", field("spend_30d", "gt", 100), {"A"}),
    ("number-orders-180d", field("orders_180d", "gte", 3), {"B"}),
    ("number-spend-180d", field("spend_180d", "between", [1000, 2000]), {"B"}),
    ("number-orders-365d", field("orders_365d", "lt", 5), {"A", "C"}),
    ("number-spend-365d", field("spend_365d", "gte", 2500.5), {"B"}),
    ("number-orders-90d", field("orders_90d", "eq", 2), {"A"}),
    ("number-nullable-lt", field("avg_order_value", "lt", 200), {"A"}),
    ("number-nullable-ne", field("avg_order_value", "ne", 160), {"B", "C"}),
    ("number-rfm-r", field("rfm_r", "gte", 4), {"A"}),
    ("number-rfm-f", field("rfm_f", "eq", 5), {"B"}),
    ("number-rfm-m", field("rfm_m", "lte", 2), {"A"}),
    # days since the last order (from last_order_at, in Shanghai days)
    ("days-since-eq", field("days_since_last_order", "eq", 3), {"A"}),
    ("days-since-gte", field("days_since_last_order", "gte", 90), {"B"}),
    ("days-since-gt", field("days_since_last_order", "gt", 89), {"B"}),
    ("days-since-gt-edge", field("days_since_last_order", "gt", 90), set()),
    ("days-since-lt", field("days_since_last_order", "lt", 90), {"A"}),
    ("days-since-lte", field("days_since_last_order", "lte", 3), {"A"}),
    ("days-since-between", field("days_since_last_order", "between", [3, 90]), {"A", "B"}),
    ("days-since-ne", field("days_since_last_order", "ne", 3), {"B", "C"}),
    ("date-first-order", field("first_order_at", "after", "2025-01-01"), {"A"}),
    ("date-last-order", field("last_order_at", "within_last_days", 7), {"A"}),
    ("date-last-active", field("last_active_at", "more_than_days_ago", 30), {"B"}),
    # metrics choices (no metrics row: "unclassified", "prospect", no silent level)
    ("choice-value-tier", field("value_tier", "in", ["high"]), {"B"}),
    ("choice-value-tier-default", field("value_tier", "in", ["unclassified"]), {"C"}),
    ("choice-lifecycle-default", field("lifecycle_stage", "in", ["prospect"]), {"C"}),
    ("choice-lifecycle-not-in", field("lifecycle_stage", "not_in", ["active", "silent"]), {"C"}),
    ("choice-silent-level", field("silent_level", "in", ["light"]), {"B"}),
    ("choice-silent-level-not-in", field("silent_level", "not_in", ["light"]), {"A", "C"}),
    # loyalty (C has no membership: no tier, 0 points)
    ("tier-in", field("tier", "in", ["gold"]), {"A"}),
    ("tier-not-in", field("tier", "not_in", ["gold"]), {"B", "C"}),
    ("tier-in-two", field("tier", "in", ["normal", "gold"]), {"A", "B"}),
    ("points-gte", field("points_balance", "gte", 1000), {"A"}),
    ("points-eq-zero-without-membership", field("points_balance", "eq", 0), {"B", "C"}),
    ("tier-since", field("tier_since", "before", "2025-01-01"), {"B"}),
    # custom attributes
    ("attr-number-gte", field("attr.vip_level", "gte", 3), {"A"}),
    ("attr-number-eq", field("attr.vip_level", "eq", 3), {"A"}),
    ("attr-text-eq", field("attr.vip_level", "eq", "gold"), {"B"}),
    ("attr-number-ne", field("attr.vip_level", "ne", 3), {"B", "C"}),
    ("attr-number-in", field("attr.vip_level", "in", [1, 2, 3]), {"A"}),
    ("attr-text-in", field("attr.vip_level", "in", ["gold", "silver"]), {"B"}),
    ("attr-number-not-in", field("attr.vip_level", "not_in", [3]), {"B", "C"}),
    ("attr-number-between", field("attr.vip_level", "between", [1, 5]), {"A"}),
    ("attr-number-lt-skips-text", field("attr.vip_level", "lt", 10), {"A"}),
    ("attr-number-gt", field("attr.vip_level", "gt", 2.5), {"A"}),
    ("attr-number-lte", field("attr.vip_level", "lte", 2), set()),
    ("attr-contains-like-characters", field("attr.source", "contains", "_%"), {"A"}),
    ("attr-contains-underscore-literal", field("attr.source", "contains", "i_"), set()),
    ("attr-starts-with-ignores-case", field("attr.source", "starts_with", "DOUYIN"), {"A"}),
    ("attr-is-true", flag("attr.newsletter", "is_true"), {"A"}),
    ("attr-is-false", flag("attr.newsletter", "is_false"), {"B"}),
    ("attr-eq-true", field("attr.newsletter", "eq", True), {"A"}),
    ("attr-ne-true", field("attr.newsletter", "ne", True), {"B", "C"}),
    ("attr-blank-is-not-set", flag("attr.note", "is_set"), set()),
    ("attr-is-empty", flag("attr.note", "is_empty"), {"A", "B", "C"}),
    ("attr-is-set", flag("attr.source", "is_set"), {"A", "B"}),
    ("attr-missing-key", field("attr.nothing", "eq", "x"), set()),
    # tags
    ("tag-present", {"tag": "高价值用户"}, {"A", "B"}),
    ("tag-present-explicit", {"tag": "沉睡", "op": "present"}, {"B"}),
    ("tag-absent", {"tag": "高价值用户", "op": "absent"}, {"C"}),
    ("tag-unknown", {"tag": "没有这个标签"}, set()),
    # events
    ("event-window", {"event": "view_product", "within_days": 7}, {"A", "B"}),
    (
        "event-where",
        {"event": "view_product", "within_days": 7, "where": {"category": "美妆"}},
        {"A"},
    ),
    (
        "event-count-gt",
        {
            "event": "view_product",
            "within_days": 7,
            "where": {"category": "美妆"},
            "count": {"op": "gt", "value": 2},
        },
        {"A"},
    ),
    (
        "event-count-gt-none",
        {
            "event": "view_product",
            "within_days": 7,
            "where": {"category": "美妆"},
            "count": {"op": "gt", "value": 3},
        },
        set(),
    ),
    (
        "event-count-eq",
        {
            "event": "view_product",
            "within_days": 7,
            "where": {"category": "美妆"},
            "count": {"op": "eq", "value": 3},
        },
        {"A"},
    ),
    (
        "event-count-eq-zero-is-absence",
        {
            "event": "view_product",
            "within_days": 7,
            "where": {"category": "美妆"},
            "count": {"op": "eq", "value": 0},
        },
        {"B", "C"},
    ),
    (
        "event-count-lt",
        {
            "event": "view_product",
            "within_days": 7,
            "where": {"category": "美妆"},
            "count": {"op": "lt", "value": 3},
        },
        {"B", "C"},
    ),
    (
        "event-count-lte",
        {
            "event": "view_product",
            "within_days": 7,
            "where": {"category": "美妆"},
            "count": {"op": "lte", "value": 3},
        },
        {"A", "B", "C"},
    ),
    (
        "event-count-ne",
        {
            "event": "view_product",
            "within_days": 7,
            "where": {"category": "美妆"},
            "count": {"op": "ne", "value": 3},
        },
        {"B", "C"},
    ),
    (
        "event-count-gte",
        {"event": "view_product", "within_days": 7, "count": {"op": "gte", "value": 4}},
        {"A"},
    ),
    (
        "event-count-between",
        {"event": "view_product", "within_days": 7, "count": {"op": "between", "value": [1, 3]}},
        {"B"},
    ),
    (
        "event-count-between-from-zero",
        {"event": "view_product", "within_days": 7, "count": {"op": "between", "value": [0, 1]}},
        {"B", "C"},
    ),
    (
        "event-no-window-stops-at-as-of",
        {"event": "view_product", "where": {"category": "美妆"}},
        {"A"},
    ),
    (
        "event-window-left-edge-excluded",
        {"event": "view_product", "within_days": 7, "where": {"category": "边界"}},
        set(),
    ),
    (
        "event-window-wider",
        {"event": "view_product", "within_days": 8, "where": {"category": "边界"}},
        {"A"},
    ),
    ("event-within-hours", {"event": "view_product", "within_hours": 2}, {"A"}),
    (
        "event-where-number",
        {"event": "view_product", "where": {"price": {"op": "gt", "value": 50}}},
        {"A"},
    ),
    (
        "event-where-in",
        {
            "event": "view_product",
            "within_days": 7,
            "where": {"category": {"op": "in", "value": ["服装", "鞋"]}},
        },
        {"A", "B"},
    ),
    ("event-unknown-name", {"event": "no_such_event"}, set()),
    # sequences
    (
        "sequence-not-followed",
        {
            "event": "add_to_cart",
            "within_hours": 48,
            "not_followed_by": {"event": "order", "within_hours": 24},
        },
        {"B", "C"},
    ),
    (
        "sequence-followed",
        {
            "event": "add_to_cart",
            "within_hours": 48,
            "followed_by": {"event": "order", "within_hours": 24},
        },
        {"A"},
    ),
    (
        "sequence-follow-up-right-edge-included",
        {"event": "add_to_cart", "followed_by": {"event": "order", "within_hours": 24}},
        {"A", "B"},
    ),
    (
        "sequence-follow-up-window-shorter",
        {"event": "add_to_cart", "followed_by": {"event": "order", "within_hours": 23}},
        {"A"},
    ),
    (
        "sequence-follow-up-where",
        {
            "event": "add_to_cart",
            "followed_by": {"event": "order", "within_days": 2, "where": {"amount": 199}},
        },
        {"A"},
    ),
    (
        "sequence-not-followed-counted",
        {
            "event": "add_to_cart",
            "not_followed_by": {"event": "order", "within_hours": 24},
            "count": {"op": "gte", "value": 1},
        },
        {"B", "C"},
    ),
    # groups
    ("empty-all-is-everyone", {"all": []}, {"A", "B", "C"}),
    ("empty-any-is-nobody", {"any": []}, set()),
    ("not-empty-all-is-nobody", {"not": {"all": []}}, set()),
    ("not-empty-any-is-everyone", {"not": {"any": []}}, {"A", "B", "C"}),
    ("all", {"all": [field("city", "eq", "上海"), field("tier", "in", ["gold"])]}, {"A"}),
    ("any", {"any": [field("city", "eq", "北京"), flag("has_phone", "is_true")]}, {"A", "B", "C"}),
    ("not", {"not": {"tag": "高价值用户"}}, {"C"}),
    (
        "nested",
        {
            "all": [
                {"any": [field("spend_90d", "gte", 500), {"tag": "沉睡", "op": "absent"}]},
                {"not": {"all": [field("city", "is_empty"), {"any": []}]}},
                {"event": "add_to_cart", "within_days": 7},
            ]
        },
        {"A", "B", "C"},
    ),
    (
        "nested-with-everyone-and-nobody",
        {"any": [{"all": [{"any": []}, field("city", "eq", "上海")]}, {"all": [{"all": []}]}]},
        {"A", "B", "C"},
    ),
]


@pytest.mark.parametrize(
    ("tree", "expected"),
    [(tree, expected) for _id, tree, expected in CASES],
    ids=[case_id for case_id, _tree, _expected in CASES],
)
def test_every_op_matches_the_hand_checked_customers(
    people: dict[str, Customer], tree: dict[str, Any], expected: set[str]
) -> None:
    # when
    found = matched(tree)

    # then
    assert found == expected


def test_the_compiled_rules_run_as_one_query(
    people: dict[str, Customer], django_assert_num_queries: Any
) -> None:
    # given
    tree = {
        "all": [
            field("city", "in", ["上海", "北京"]),
            field("spend_90d", "lt", 1000),
            field("tier", "in", ["gold", "normal"]),
            field("attr.vip_level", "gte", 1),
            {"tag": "高价值用户"},
            {"event": "view_product", "within_days": 7, "count": {"op": "gt", "value": 2}},
            {
                "event": "add_to_cart",
                "not_followed_by": {"event": "order", "within_hours": 24},
                "count": {"op": "eq", "value": 0},
            },
        ]
    }
    queryset = compile_rules(tree, as_of=AS_OF)

    # when
    with django_assert_num_queries(1):
        found = list(queryset.values_list("external_id", flat=True))

    # then
    assert found == ["A1"]


def test_events_after_as_of_do_not_count_and_an_earlier_as_of_rewinds_windows(
    people: dict[str, Customer],
) -> None:
    # given: 李雷 views beauty products one hour after AS_OF
    tree = {"event": "view_product", "within_hours": 2, "where": {"category": "美妆"}}

    # when / then
    assert matched(tree) == {"A"}
    assert matched(tree, as_of=AS_OF + dt.timedelta(hours=2)) == {"B"}
    assert matched(field("registered_at", "within_last_days", 1), as_of=at(2025, 6, 10, 12, 0)) == {
        "A"
    }


def test_a_cart_whose_follow_up_window_is_still_open_counts_as_not_followed_yet(
    people: dict[str, Customer],
) -> None:
    # given: 张伟 added to cart 2 hours before AS_OF; an order an hour later closes it
    tree = {
        "event": "add_to_cart",
        "within_hours": 48,
        "not_followed_by": {"event": "order", "within_hours": 24},
    }
    assert "C" in matched(tree)
    make_event(people["C"], "order", hours_before(1))

    # when
    found = matched(tree)

    # then: the order counts only as of a time after it
    assert found == {"B"}
    assert matched(tree, as_of=hours_before(1.5)) == {"B", "C"}


def test_a_static_segment_is_its_stored_members_and_a_dynamic_one_its_rules(
    people: dict[str, Customer],
) -> None:
    # given
    static = Segment.objects.create(
        name="冻结", kind="static", definition=field("city", "eq", "上海")
    )
    SegmentMember.objects.create(segment=static, customer=people["B"], joined_at=AS_OF)
    dynamic = Segment.objects.create(name="上海", definition=field("city", "eq", "上海"))
    outer = Segment.objects.create(name="外层", definition={"segment": dynamic.pk})

    # when / then
    assert matched({"segment": static.pk}) == {"B"}
    assert matched({"segment": dynamic.pk}) == {"A"}
    assert matched({"not": {"segment": outer.pk}}) == {"B", "C"}
    assert matched({"any": [{"segment": static.pk}, {"segment": outer.pk}]}) == {"A", "B"}


def test_a_segment_that_refers_back_to_the_one_being_defined_is_an_error(db: None) -> None:
    # given: 12 -> 15 -> 12
    first = Segment.objects.create(name="一", definition={"all": []})
    second = Segment.objects.create(name="二", definition={"all": [{"segment": first.pk}]})
    first.definition = {"any": [{"segment": second.pk}]}
    first.save()

    # when
    with pytest.raises(RulesInvalid) as raised:
        compile_rules(first.definition, as_of=AS_OF, segment_id=first.pk)

    # then
    assert [(e.path, e.message) for e in raised.value.errors] == [
        (
            "any[0].segment",
            f"Segment {first.pk} refers back to itself through segment {second.pk}.",
        )
    ]


def test_a_segment_referring_to_itself_directly_is_an_error(db: None) -> None:
    # given
    segment = Segment.objects.create(name="自己", definition={"all": []})

    # when
    with pytest.raises(RulesInvalid) as raised:
        compile_rules({"all": [{"segment": segment.pk}]}, as_of=AS_OF, segment_id=segment.pk)

    # then
    assert [(e.path, e.message) for e in raised.value.errors] == [
        ("all[0].segment", f"Segment {segment.pk} refers to itself.")
    ]


def test_a_cycle_among_saved_segments_is_an_error_for_a_new_rule_using_them(db: None) -> None:
    # given: two saved segments that refer to each other (written around the services)
    first = Segment.objects.create(name="一", definition={"all": []})
    second = Segment.objects.create(name="二", definition={"segment": first.pk})
    first.definition = {"segment": second.pk}
    first.save()

    # when
    with pytest.raises(RulesInvalid) as raised:
        compile_rules({"not": {"segment": first.pk}}, as_of=AS_OF)

    # then
    assert [(e.path, e.message) for e in raised.value.errors] == [
        ("not.segment", f"Segment {first.pk} refers back to itself through segment {second.pk}.")
    ]


def test_a_missing_segment_is_an_error(db: None) -> None:
    # when
    with pytest.raises(RulesInvalid) as raised:
        compile_rules({"segment": 999_999}, as_of=AS_OF)

    # then
    assert [(e.path, e.message) for e in raised.value.errors] == [
        ("segment", "Segment 999999 does not exist.")
    ]


def test_a_referenced_segment_with_a_broken_rule_is_an_error_naming_it(db: None) -> None:
    # given
    broken = Segment.objects.create(name="坏的", definition={"field": "colour", "op": "eq"})

    # when
    with pytest.raises(RulesInvalid) as raised:
        compile_rules({"all": [{"segment": broken.pk}]}, as_of=AS_OF)

    # then
    assert [(e.path, e.message) for e in raised.value.errors] == [
        (
            "all[0].segment",
            f"Segment {broken.pk} (坏的) has an invalid rule: field: Unknown field 'colour'.",
        )
    ]


INJECTIONS = [
    "'; DROP TABLE customers_customer; --",
    '" OR 1=1 --',
    "上海' OR '1'='1",
    "%",
    "_",
    "\\",
    "\\%",
    '$."x"',
    "上海\u200b",  # zero-width space
    "ש\u202eלום",  # right-to-left override
    "e\u0301",  # combining accent
    "🙂" * 10,
    "\U0010ffff",
]


@pytest.mark.parametrize("value", INJECTIONS, ids=[f"value-{i}" for i in range(len(INJECTIONS))])
def test_values_are_bound_parameters_and_never_change_the_sql(
    people: dict[str, Customer], value: str
) -> None:
    # given
    def tree(text: str) -> dict[str, Any]:
        return {
            "any": [
                field("city", "eq", text),
                field("name", "contains", text),
                field("city", "starts_with", text),
                field("attr.source", "in", [text]),
                {"tag": text},
                {"event": text, "where": {"category": text}},
                {"event": "view_product", "where": {"category": {"op": "contains", "value": text}}},
            ]
        }

    benign_sql, _params = compile_rules(tree("x"), as_of=AS_OF).query.sql_with_params()
    queryset = compile_rules(tree(value), as_of=AS_OF)

    # when
    sql, params = queryset.query.sql_with_params()
    found = set(queryset.values_list("external_id", flat=True))

    # then
    assert sql == benign_sql
    assert value in params
    assert found == set()
    assert Customer.objects.count() == 3


def test_a_json_key_never_reaches_the_sql_text(people: dict[str, Customer]) -> None:
    # given
    tree = field("attr.vip-level_等级", "eq", "x")

    # when
    sql, params = compile_rules(tree, as_of=AS_OF).query.sql_with_params()

    # then
    assert "vip-level_等级" not in sql
    assert any("vip-level_等级" in str(param) for param in params)


def test_restrict_to_limits_the_compiled_query_to_some_customers(
    people: dict[str, Customer],
) -> None:
    # given
    queryset = compile_rules({"all": []}, as_of=AS_OF)

    # when
    found = restrict_to(queryset, [people["A"].pk, people["C"].pk])

    # then
    assert sorted(found.values_list("external_id", flat=True)) == ["A1", "C3"]


def test_nobody_still_compiles_to_sql_that_other_queries_can_embed(
    people: dict[str, Customer],
) -> None:
    # given
    queryset = compile_rules({"any": []}, as_of=AS_OF)

    # when
    sql, _params = queryset.values("pk").query.sql_with_params()

    # then
    assert sql.startswith("SELECT")
    assert Customer.objects.filter(pk__in=queryset.values("pk")).count() == 0


def test_a_naive_as_of_is_refused(db: None) -> None:
    # when / then
    with pytest.raises(ValueError, match="aware datetime"):
        compile_rules({"all": []}, as_of=dt.datetime(2025, 6, 15, 12, 0))  # noqa: DTZ001


@pytest.mark.parametrize(
    ("day", "years", "expected"),
    [
        (dt.date(2024, 2, 29), 1, dt.date(2023, 2, 28)),
        (dt.date(2024, 2, 29), 4, dt.date(2020, 2, 29)),
        (dt.date(2025, 6, 15), 35, dt.date(1990, 6, 15)),
    ],
    ids=["leap-day-to-common-year", "leap-day-to-leap-year", "plain"],
)
def test_years_before_keeps_the_day_and_moves_29_february_to_the_28th(
    day: dt.date, years: int, expected: dt.date
) -> None:
    assert years_before(day, years) == expected


def test_an_age_rule_on_29_february_birthdays(db: None) -> None:
    # given: born 2000-02-29; on 2025-02-28 they are 24, on 2025-03-01 25
    make_customer("L1", "闰", birth_date=dt.date(2000, 2, 29))

    # when / then
    assert matched(field("age", "eq", 24), as_of=at(2025, 2, 28, 12, 0)) == {"L"}
    assert matched(field("age", "eq", 25), as_of=at(2025, 3, 1, 12, 0)) == {"L"}


def test_every_field_joins_only_relations_that_hold_one_row_per_customer() -> None:
    # Refreshes insert the compiled query's ids without DISTINCT: a relation holding several
    # rows per customer (orders, tags) would list a customer once per row. Those belong in
    # EXISTS subqueries, as tags and events are.
    from segments.rules import list_fields

    for spec in list_fields():
        if spec.relation is None:
            continue
        model: Any = Customer
        for name in spec.column.split("__")[:-1]:
            field = model._meta.get_field(name)
            assert field.one_to_one or field.many_to_one, (spec.key, name)
            model = field.related_model
