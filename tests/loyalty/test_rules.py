from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.utils import timezone, translation

from customers.models import Customer
from loyalty.models import LoyaltySettings, Membership, PointsEntry, PointsRule, Tier
from loyalty.services.memberships import sync_memberships
from loyalty.services.points import award_points
from loyalty.services.rules import (
    PointsRuleError,
    PointsRuleInput,
    PointsRulesError,
    preview_tier_rules,
    update_points_rules,
    update_points_settings,
    update_tier_rules,
    validate_points_rules,
)
from loyalty.services.tiers import TierRulesError, current_tier_rules, recompute_tiers
from tests.factories import SHANGHAI, UserFactory

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=SHANGHAI)


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    # The messages are asserted in English, whatever LANGUAGE_CODE the settings have.
    with translation.override("en"):
        yield


def saved_rules() -> list[PointsRuleInput]:
    return [PointsRuleInput.from_rule(rule) for rule in PointsRule.objects.order_by("pk")]


def rules_with(index: int, **changes: Any) -> list[PointsRuleInput]:
    rules = saved_rules()
    rules[index] = dataclasses.replace(rules[index], **changes)
    return rules


def rule_state() -> list[tuple[Any, ...]]:
    return list(
        PointsRule.objects.order_by("pk").values_list(
            "event_name", "points", "daily_cap", "is_active", "active_since"
        )
    )


def settings_row() -> LoyaltySettings:
    return LoyaltySettings.objects.get(pk=1)


# --- points rules -----------------------------------------------------------------------------


def test_an_admin_changes_a_rule_and_the_next_earning_run_uses_it(
    admin_user: Any, customer_factory: Any, event_factory: Any
) -> None:
    customer = customer_factory()
    sync_memberships(now=NOW)
    event_factory(customer=customer, name="review", occurred_at=NOW - dt.timedelta(hours=1))
    review = saved_rules()[1]
    assert review.event_name == "review"

    update_points_rules(rules=rules_with(1, points=8), actor=admin_user)
    award_points(now=NOW)

    assert list(PointsEntry.objects.values_list("kind", "delta")) == [("event_earn", 8)]


def test_a_rule_switched_off_or_not_yet_on_earns_nothing(
    admin_user: Any, customer_factory: Any, event_factory: Any
) -> None:
    customer = customer_factory()
    sync_memberships(now=NOW)
    event_factory(customer=customer, name="review", occurred_at=NOW - dt.timedelta(hours=2))
    event_factory(customer=customer, name="share", occurred_at=NOW - dt.timedelta(hours=2))
    rules = rules_with(1, is_active=False)
    rules[2] = dataclasses.replace(rules[2], active_since=NOW - dt.timedelta(hours=1))

    update_points_rules(rules=rules, actor=admin_user)
    award_points(now=NOW)

    assert PointsEntry.objects.count() == 0


def test_rules_left_out_of_the_list_stay_as_they_are(admin_user: Any, db: None) -> None:
    before = rule_state()

    update_points_rules(rules=[dataclasses.replace(saved_rules()[1], points=7)], actor=admin_user)

    assert rule_state() == [before[0], ("review", 7, None, True, None), *before[2:]]


def test_a_new_rule_may_not_take_the_event_of_a_rule_left_out(admin_user: Any, db: None) -> None:
    new = PointsRuleInput(id=None, event_name="share", points=3)

    with pytest.raises(PointsRulesError) as raised:
        update_points_rules(rules=[new], actor=admin_user)

    assert raised.value.rule_errors == [
        PointsRuleError(0, "share", "event_name", "Event 'share' already has a rule.")
    ]


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        (
            {"id": 987654},
            [
                ("id", "This rule no longer exists; reload the page and edit again."),
                # the saved review rule is no longer listed, so it keeps its event name
                ("event_name", "Event 'review' already has a rule."),
            ],
        ),
        (
            {"active_since": dt.datetime(2025, 1, 1)},  # noqa: DTZ001 - the naive time is the point
            [("active_since", "Enter a date and time with a time zone.")],
        ),
        (
            {"active_since": dt.datetime(1, 1, 1, tzinfo=dt.UTC)},
            [("active_since", "Enter a time in 1900 or later.")],
        ),
        ({"event_name": "x" * 65}, [("event_name", "An event name has at most 64 characters.")]),
        ({"event_name": "  "}, [("event_name", "Enter an event name.")]),
        ({"points": True}, [("points", "Points are a whole number from 0 to 100000.")]),
        (
            {"points": 100_001, "daily_cap": 10_000_001},
            [
                ("points", "Points are a whole number from 0 to 100000."),
                (
                    "daily_cap",
                    "A daily cap is a whole number from 1 to 10000000; leave it empty for no cap.",
                ),
            ],
        ),
    ],
    ids=["gone", "naive-time", "long-name", "blank-name", "bool-points", "too-many", "year-1"],
)
def test_validation_names_the_rule_and_field(
    db: None, changes: dict[str, Any], errors: list[tuple[str, str]]
) -> None:
    rules = rules_with(1, **changes)

    found = validate_points_rules(rules)

    assert [(error.index, error.field, error.message) for error in found] == [
        (1, field, message) for field, message in errors
    ]


def test_a_rule_listed_twice_is_an_error(db: None) -> None:
    rules = saved_rules()

    found = validate_points_rules([*rules, rules[1]])

    assert [(error.index, error.field, error.message) for error in found] == [
        (4, "id", "This rule is listed twice."),
        (4, "event_name", "Event 'review' already has a rule."),
    ]


def test_operators_and_managers_may_not_change_points_rules(
    make_user: Callable[..., Any], db: None
) -> None:
    before = rule_state()

    for role in ("Operators", "Managers"):
        with pytest.raises(PermissionDenied):
            update_points_rules(rules=rules_with(1, points=99), actor=make_user(role))

    assert rule_state() == before


def test_changing_rules_without_the_add_permission_may_not_add_one(db: None) -> None:
    user: Any = UserFactory(username="editor")
    user.user_permissions.add(Permission.objects.get(codename="change_pointsrule"))
    rules = [*saved_rules(), PointsRuleInput(id=None, event_name="invite", points=20)]

    with pytest.raises(PermissionDenied):
        update_points_rules(rules=rules, actor=user)
    # a fresh instance: Django caches a user's permissions on the instance
    fresh: Any = UserFactory(username="editor")
    update_points_rules(rules=rules_with(1, points=6), actor=fresh)

    assert not PointsRule.objects.filter(event_name="invite").exists()
    assert PointsRule.objects.get(event_name="review").points == 6


# --- settings ---------------------------------------------------------------------------------


def test_an_admin_changes_the_points_settings_and_is_recorded(admin_user: Any, db: None) -> None:
    update_points_settings(
        return_window_days=14,
        points_per_yuan=50,
        points_expire=False,
        expiry_years_after=0,
        actor=admin_user,
    )

    row = settings_row()
    assert (
        row.return_window_days,
        row.points_per_yuan,
        row.points_expire,
        row.expiry_years_after,
        row.updated_by,
    ) == (14, 50, False, 0, admin_user)
    assert (row.growth_window_days, row.downgrade_grace_days) == (365, 30)


def test_points_settings_out_of_range_are_refused_by_field_and_nothing_saved(
    admin_user: Any, db: None
) -> None:
    with pytest.raises(ValidationError) as raised:
        update_points_settings(
            return_window_days=91,
            points_per_yuan=0,
            points_expire=True,
            expiry_years_after=1,
            actor=admin_user,
        )

    assert raised.value.message_dict == {
        "return_window_days": ["Ensure this value is less than or equal to 90."],
        "points_per_yuan": ["Ensure this value is greater than or equal to 1."],
    }
    assert (settings_row().return_window_days, settings_row().points_per_yuan) == (7, 100)


def test_a_manager_may_not_change_the_settings(make_user: Callable[..., Any], db: None) -> None:
    with pytest.raises(PermissionDenied):
        update_points_settings(
            return_window_days=1,
            points_per_yuan=1,
            points_expire=False,
            expiry_years_after=0,
            actor=make_user("Managers"),
        )

    assert settings_row().return_window_days == 7


# --- tier rules with their settings -----------------------------------------------------------


def test_tier_rules_and_settings_are_saved_together(
    admin_user: Any, tiers: dict[str, Tier]
) -> None:
    rules = current_tier_rules()
    rules[1] = dataclasses.replace(rules[1], min_spend=Decimal("600"))

    update_tier_rules(rules=rules, growth_window_days=90, downgrade_grace_days=7, actor=admin_user)

    assert Tier.objects.get(code="silver").min_spend == Decimal("600.00")
    assert (settings_row().growth_window_days, settings_row().downgrade_grace_days) == (90, 7)


def test_bad_tier_rules_keep_the_settings_unchanged_too(
    admin_user: Any, tiers: dict[str, Tier]
) -> None:
    rules = current_tier_rules()
    rules[2] = dataclasses.replace(rules[2], min_spend=Decimal("1"))

    with pytest.raises(TierRulesError):
        update_tier_rules(
            rules=rules, growth_window_days=90, downgrade_grace_days=7, actor=admin_user
        )

    assert (settings_row().growth_window_days, settings_row().downgrade_grace_days) == (365, 30)


@pytest.fixture
def growing_members(
    tiers: dict[str, Tier],
    customer_factory: Any,
    order_factory: Any,
    membership_factory: Callable[..., Membership],
) -> list[Customer]:
    people = []
    for code, amount, days_ago in [
        ("normal", "1500.00", 20),
        ("normal", "1500.00", 100),
        ("silver", "1200.00", 100),
        ("gold", "100.00", 20),
        ("silver", "100.00", 5),
    ]:
        customer = customer_factory(registered_at=NOW - dt.timedelta(days=500))
        membership_factory(
            customer,
            tiers[code],
            tier_since=NOW - dt.timedelta(days=200),
            below_tier_since=NOW - dt.timedelta(days=40) if code == "gold" else None,
        )
        order_factory(
            customer=customer, amount=Decimal(amount), placed_at=NOW - dt.timedelta(days=days_ago)
        )
        people.append(customer)
    customer_factory(registered_at=NOW - dt.timedelta(days=1))
    return people


@pytest.mark.parametrize(("window", "grace"), [(365, 30), (60, 30), (60, 0), (10, 60)], ids=str)
def test_the_preview_with_other_settings_is_what_saving_them_and_recomputing_does(
    admin_user: Any, growing_members: list[Customer], window: int, grace: int
) -> None:
    rules = current_tier_rules()
    before = LoyaltySettings.objects.values().get(pk=1)

    impact = preview_tier_rules(
        rules=rules, growth_window_days=window, downgrade_grace_days=grace, now=NOW
    )

    assert LoyaltySettings.objects.values().get(pk=1) == before
    assert Membership.objects.count() == 5
    update_tier_rules(
        rules=rules, growth_window_days=window, downgrade_grace_days=grace, actor=admin_user
    )
    result = recompute_tiers(now=NOW)
    assert result == impact.totals
    after = dict(
        Membership.objects.values_list("tier__code").annotate(members=Count("*")).order_by()
    )
    assert {row.code: row.members_after for row in impact.tiers if row.members_after} == after


def test_the_preview_refuses_settings_out_of_range(tiers: dict[str, Tier]) -> None:
    with pytest.raises(ValidationError) as raised:
        preview_tier_rules(
            rules=current_tier_rules(), growth_window_days=0, downgrade_grace_days=366, now=NOW
        )

    assert raised.value.message_dict == {
        "growth_window_days": ["Ensure this value is greater than or equal to 1."],
        "downgrade_grace_days": ["Ensure this value is less than or equal to 365."],
    }


def test_the_preview_uses_the_time_it_is_given(
    tiers: dict[str, Tier], growing_members: list[Customer]
) -> None:
    later = preview_tier_rules(
        rules=current_tier_rules(),
        growth_window_days=365,
        downgrade_grace_days=0,
        now=timezone.now() + dt.timedelta(days=3650),
    )

    assert [row.members_after for row in later.tiers] == [6, 0, 0, 0]
