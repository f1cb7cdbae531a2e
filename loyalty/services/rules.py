"""The rules admins edit on the loyalty pages: points rules and the loyalty settings.

Tier rules themselves are saved by tiers.save_tier_rules; update_tier_rules here saves them
together with the two tier settings of LoyaltySettings (growth window, grace period), all or
nothing, and preview_tier_rules previews them with those settings.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from loyalty.models import LoyaltySettings, PointsRule, Tier
from loyalty.services.ledger import FIRST_EARNING_YEAR, Actor, current_settings
from loyalty.services.memberships import lock_loyalty_settings
from loyalty.services.tiers import (
    TierImpact,
    TierRuleInput,
    preview_tier_impact,
    save_tier_rules,
)

logger = logging.getLogger(__name__)

CHANGE_POINTS_RULE_PERMISSION = "loyalty.change_pointsrule"
ADD_POINTS_RULE_PERMISSION = "loyalty.add_pointsrule"
CHANGE_SETTINGS_PERMISSION = "loyalty.change_loyaltysettings"

EVENT_NAME_MAX_LENGTH: int = PointsRule._meta.get_field("event_name").max_length or 64
MAX_RULE_POINTS = 100_000
MAX_DAILY_CAP = 10_000_000
_EVENT_NAME = re.compile(r"^[-a-zA-Z0-9_]+\Z")
_RULE_FIELD_ORDER = ("rules", "id", "event_name", "points", "daily_cap", "active_since")

TIER_SETTINGS_FIELDS = ("growth_window_days", "downgrade_grace_days")
POINTS_SETTINGS_FIELDS = (
    "return_window_days",
    "points_per_yuan",
    "points_expire",
    "expiry_years_after",
)


# --- points rules ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PointsRuleInput:
    """One points rule as an admin submits it; id is None for a rule to add."""

    id: int | None
    event_name: str
    points: int
    daily_cap: int | None = None
    is_active: bool = True
    active_since: dt.datetime | None = None

    @classmethod
    def from_rule(cls, rule: PointsRule) -> PointsRuleInput:
        return cls(
            id=rule.pk,
            event_name=rule.event_name,
            points=rule.points,
            daily_cap=rule.daily_cap,
            is_active=rule.is_active,
            active_since=rule.active_since,
        )


@dataclass(frozen=True)
class PointsRuleError:
    """One problem with submitted points rules: the rule (position, event), the field, why."""

    index: int | None  # position in the submitted list; None: the list as a whole
    event_name: str
    field: str
    message: str


class PointsRulesError(ValidationError):
    """The points rules were refused; rule_errors says which rule, which field and why."""

    def __init__(self, rule_errors: Sequence[PointsRuleError]) -> None:
        super().__init__([error.message for error in rule_errors])
        self.rule_errors = list(rule_errors)


def _is_whole(value: Any, *, minimum: int, maximum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= maximum


def _points_rule_errors(
    index: int, rule: PointsRuleInput, existing: dict[int, PointsRule]
) -> list[PointsRuleError]:
    errors: list[PointsRuleError] = []

    def add(field_name: str, message: str) -> None:
        errors.append(PointsRuleError(index, rule.event_name, field_name, message))

    if rule.id is not None and rule.id not in existing:
        add("id", _("This rule no longer exists; reload the page and edit again."))
    event_name = rule.event_name.strip() if isinstance(rule.event_name, str) else ""
    saved = existing.get(rule.id) if rule.id is not None else None
    if not event_name:
        add("event_name", _("Enter an event name."))
    elif len(event_name) > EVENT_NAME_MAX_LENGTH:
        add(
            "event_name",
            _("An event name has at most %(limit)d characters.") % {"limit": EVENT_NAME_MAX_LENGTH},
        )
    elif not _EVENT_NAME.match(event_name):
        add("event_name", _("An event name uses only letters, digits, hyphens and underscores."))
    elif (
        saved is not None
        and saved.event_name == PointsRule.ORDER
        and event_name != saved.event_name
    ):
        # Earning finds the order rule by this name; renamed, orders would stop earning.
        add("event_name", _("The order rule keeps the event name 'order'."))
    if not _is_whole(rule.points, minimum=0, maximum=MAX_RULE_POINTS):
        add(
            "points",
            _("Points are a whole number from 0 to %(max)d.") % {"max": MAX_RULE_POINTS},
        )
    if rule.daily_cap is not None:
        if event_name == PointsRule.ORDER:
            add("daily_cap", _("The order rule earns per yuan paid and has no daily cap."))
        elif not _is_whole(rule.daily_cap, minimum=1, maximum=MAX_DAILY_CAP):
            add(
                "daily_cap",
                _("A daily cap is a whole number from 1 to %(max)d; leave it empty for no cap.")
                % {"max": MAX_DAILY_CAP},
            )
    if rule.active_since is not None and timezone.is_naive(rule.active_since):
        add("active_since", _("Enter a date and time with a time zone."))
    elif rule.active_since is not None and rule.active_since.year < FIRST_EARNING_YEAR:
        # Nothing earlier can be imported; and year 1 in Shanghai is before year 1 in UTC.
        add(
            "active_since",
            _("Enter a time in %(year)d or later.") % {"year": FIRST_EARNING_YEAR},
        )
    return errors


def validate_points_rules(rules: Sequence[PointsRuleInput]) -> list[PointsRuleError]:
    """Every problem with submitted points rules, by rule and field; [] when they can be saved.

    Rules left out of the list stay as they are (rules are switched off, never deleted: the
    ledger names them), so their event names count as taken too.
    """
    existing = {rule.pk: rule for rule in PointsRule.objects.all()}
    errors: list[PointsRuleError] = []
    seen_ids: set[int] = set()
    listed = {rule.id for rule in rules if rule.id is not None}
    taken = {rule.event_name: pk for pk, rule in existing.items() if pk not in listed}
    seen_names: set[str] = set()
    for index, rule in enumerate(rules):
        errors += _points_rule_errors(index, rule, existing)
        if rule.id is not None:
            if rule.id in seen_ids:
                errors.append(
                    PointsRuleError(index, rule.event_name, "id", _("This rule is listed twice."))
                )
            seen_ids.add(rule.id)
        name = rule.event_name.strip() if isinstance(rule.event_name, str) else ""
        if not name:
            continue
        if name in seen_names or name in taken:
            errors.append(
                PointsRuleError(
                    index,
                    rule.event_name,
                    "event_name",
                    _("Event '%(event)s' already has a rule.") % {"event": name},
                )
            )
        seen_names.add(name)
    return sorted(
        errors,
        key=lambda error: (
            -1 if error.index is None else error.index,
            _RULE_FIELD_ORDER.index(error.field)
            if error.field in _RULE_FIELD_ORDER
            else len(_RULE_FIELD_ORDER),
        ),
    )


@transaction.atomic
def update_points_rules(*, rules: Sequence[PointsRuleInput], actor: Actor) -> list[PointsRule]:
    """Save the submitted points rules (edit those with an id, add the others), all or nothing.

    Rules not listed are left as they are. Raises PermissionDenied, or PointsRulesError with
    every problem (nothing saved). Changes count from the next earning run on: what has earned
    already keeps its entries.
    """
    if not actor.has_perm(CHANGE_POINTS_RULE_PERMISSION):
        raise PermissionDenied(_("You may not change the points rules."))
    if any(rule.id is None for rule in rules) and not actor.has_perm(ADD_POINTS_RULE_PERMISSION):
        raise PermissionDenied(_("You may not add points rules."))
    # Earning runs take turns on this row; a rule never changes half-way through a run.
    lock_loyalty_settings()
    errors = validate_points_rules(rules)
    if errors:
        raise PointsRulesError(errors)
    saved = {rule.pk: rule for rule in PointsRule.objects.select_for_update().order_by("pk")}
    renamed = [
        rule.id
        for rule in rules
        if rule.id is not None and saved[rule.id].event_name != rule.event_name.strip()
    ]
    # Out of the way first, so that two rules can swap their event names ("~" is no slug).
    for rule_id in renamed:
        PointsRule.objects.filter(pk=rule_id).update(event_name=f"~{rule_id}")
    for rule in rules:
        row = saved[rule.id] if rule.id is not None else PointsRule()
        row.event_name = rule.event_name.strip()
        row.points = rule.points
        row.daily_cap = rule.daily_cap
        row.is_active = rule.is_active
        row.active_since = rule.active_since
        row.save()
    logger.info("points rules saved by user %s: %s", actor.pk, [rule.event_name for rule in rules])
    return list(PointsRule.objects.order_by("pk"))


# --- settings ----------------------------------------------------------------------------------


def _update_settings(values: dict[str, Any], *, actor: Actor, permission: str) -> LoyaltySettings:
    if not actor.has_perm(permission):
        raise PermissionDenied(_("You may not change the loyalty settings."))
    row = lock_loyalty_settings()
    for name, value in values.items():
        setattr(row, name, value)
    # The fields' own validators (ranges); the other fields were valid already.
    exclude = [field.name for field in LoyaltySettings._meta.fields if field.name not in values]
    row.clean_fields(exclude=exclude)
    row.updated_by_id = actor.pk
    row.save()
    return row


@transaction.atomic
def update_points_settings(
    *,
    return_window_days: int,
    points_per_yuan: int,
    points_expire: bool,
    expiry_years_after: int,
    actor: Actor,
) -> LoyaltySettings:
    """Save the points settings (return window, redemption rate, expiry); admins only.

    Raises PermissionDenied, or ValidationError naming the bad fields (nothing saved). They
    count from the next run on: entries written already keep their dates.
    """
    row = _update_settings(
        {
            "return_window_days": return_window_days,
            "points_per_yuan": points_per_yuan,
            "points_expire": points_expire,
            "expiry_years_after": expiry_years_after,
        },
        actor=actor,
        permission=CHANGE_SETTINGS_PERMISSION,
    )
    logger.info("points settings saved by user %s", actor.pk)
    return row


@transaction.atomic
def update_tier_rules(
    *,
    rules: Sequence[TierRuleInput],
    growth_window_days: int,
    downgrade_grace_days: int,
    actor: Actor,
) -> list[Tier]:
    """Save the tiers and the growth window and grace period together, all or nothing.

    Raises PermissionDenied, ValidationError for bad settings (by field), or TierRulesError
    (see save_tier_rules); nothing is saved then. The recompute is enqueued on commit.
    """
    _update_settings(
        {"growth_window_days": growth_window_days, "downgrade_grace_days": downgrade_grace_days},
        actor=actor,
        permission=CHANGE_SETTINGS_PERMISSION,
    )
    return save_tier_rules(rules=rules, actor=actor)


class _PreviewDone(Exception):
    """Raised to roll back the settings a preview tried."""


def preview_tier_rules(
    *,
    rules: Sequence[TierRuleInput],
    growth_window_days: int,
    downgrade_grace_days: int,
    now: dt.datetime | None = None,
) -> TierImpact:
    """What update_tier_rules and a recompute at `now` would do; writes nothing.

    preview_tier_impact reads the window and grace period from the settings row. When the page
    proposes other ones, they are written inside a transaction that is always rolled back, so
    that the preview runs the very SQL of the recompute with the proposed settings. Raises
    TierRulesError, or ValidationError for bad settings.
    """
    current = current_settings()  # a preview never creates the settings row
    if (current.growth_window_days, current.downgrade_grace_days) == (
        growth_window_days,
        downgrade_grace_days,
    ):
        return preview_tier_impact(rules=rules, now=now)
    proposed = LoyaltySettings(
        pk=1, growth_window_days=growth_window_days, downgrade_grace_days=downgrade_grace_days
    )
    proposed.clean_fields(
        exclude=[f.name for f in LoyaltySettings._meta.fields if f.name not in TIER_SETTINGS_FIELDS]
    )
    impact: TierImpact | None = None
    try:
        with transaction.atomic():
            LoyaltySettings.objects.filter(pk=1).update(
                growth_window_days=growth_window_days, downgrade_grace_days=downgrade_grace_days
            )
            impact = preview_tier_impact(rules=rules, now=now)
            raise _PreviewDone
    except _PreviewDone:
        pass
    assert impact is not None
    return impact
