"""Membership tiers: the rules admins edit, the preview of their impact, the set-based recompute.

A member's growth is their paid spend and paid orders over the trailing growth window
(now - growth_window_days, now]. The tier they qualify for is the highest-rank tier whose minimum
spend and minimum orders they both reach. Moving up happens at once; moving down waits out the
downgrade grace period, counted from the first recompute that found them below their tier.

The preview and the recompute run the same SQL (_plan_sql), so what an admin is shown before
saving is what the recompute then does at the same time with the same rules.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Count
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from customers.models import Customer, Order, OrderStatus
from loyalty.models import (
    MAX_TIER_RANK,
    Membership,
    Tier,
    TierChange,
)
from loyalty.services.ledger import current_settings
from loyalty.services.memberships import (
    db_datetime,
    lock_loyalty_settings,
    quote_table,
    resolve_now,
    sync_memberships,
)

logger = logging.getLogger(__name__)

CHANGE_TIER_PERMISSION = "loyalty.change_tier"
# Kept tiers are parked at rank PARKED_RANK + n while the new ranks are written: rank is unique
# and checked row by row, so swapping two ranks in place would collide. Above MAX_TIER_RANK,
# far below the smallint limit.
PARKED_RANK = 1000
PLAN_TABLE = "loyalty_tier_plan"  # a TEMP table, private to the connection

CODE_MAX_LENGTH = 32
NAME_MAX_LENGTH = 50
MAX_MIN_SPEND = Decimal("9999999999.99")  # the column holds 12 digits, 2 after the point
MAX_MIN_ORDERS = 1_000_000
MAX_DISCOUNT = Decimal("50")
MAX_COUPONS = 100
_CODE = re.compile(r"^[-a-zA-Z0-9_]+\Z")
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}\Z")
# The order errors are listed in within one tier: the order of the fields on the page.
_FIELD_ORDER = (
    "rules",
    "id",
    "code",
    "name_zh",
    "name_en",
    "rank",
    "min_spend",
    "min_orders",
    "discount_percent",
    "free_shipping_coupons_per_month",
    "colour",
)

# What the recompute does with one member (the values of the plan's action column).
UPGRADE = "upgrade"
DOWNGRADE = "downgrade"
GRACE_START = "grace_start"
IN_GRACE = "in_grace"
GRACE_CLEAR = "grace_clear"
STAY = "stay"


class Actor(Protocol):
    pk: Any

    def has_perm(self, perm: str, obj: Any = None) -> bool: ...


@dataclass(frozen=True)
class TierRuleInput:
    """One tier as an admin submits it; id is None for a tier to create."""

    id: int | None
    code: str
    name_zh: str
    name_en: str
    rank: int
    min_spend: Decimal
    min_orders: int
    discount_percent: Decimal = Decimal("0")
    free_shipping_coupons_per_month: int = 0
    has_birthday_coupon: bool = False
    has_priority_service: bool = False
    benefits_text: str = ""
    colour: str = "#9e9e9e"

    @classmethod
    def from_tier(cls, tier: Tier) -> TierRuleInput:
        return cls(
            id=tier.pk,
            code=tier.code,
            name_zh=tier.name_zh,
            name_en=tier.name_en,
            rank=tier.rank,
            min_spend=tier.min_spend,
            min_orders=tier.min_orders,
            discount_percent=tier.discount_percent,
            free_shipping_coupons_per_month=tier.free_shipping_coupons_per_month,
            has_birthday_coupon=tier.has_birthday_coupon,
            has_priority_service=tier.has_priority_service,
            benefits_text=tier.benefits_text,
            colour=tier.colour,
        )


@dataclass(frozen=True)
class RuleError:
    """One problem with submitted rules: the tier (its position and code), the field, why."""

    index: int | None  # position in the submitted list; None: the list as a whole
    code: str
    field: str
    message: str


class TierRulesError(ValidationError):
    """The rules were refused; rule_errors says which tier, which field and why."""

    def __init__(self, rule_errors: Sequence[RuleError]) -> None:
        super().__init__([error.message for error in rule_errors])
        self.rule_errors = list(rule_errors)


@dataclass(frozen=True)
class RecomputeResult:
    """Members by what a recompute does (or would do) to them; every member counts once,
    except that a joining member also counts by what happens to them next."""

    joined: int = 0
    upgraded: int = 0
    downgraded: int = 0
    grace_started: int = 0
    grace_cleared: int = 0
    still_in_grace: int = 0
    unchanged: int = 0


@dataclass(frozen=True)
class TierImpactRow:
    """One proposed tier: its members now, who would come and go, and its members after."""

    index: int  # position in the proposed rules
    code: str
    rank: int
    members_now: int
    joining: int  # customers without a membership yet; they join the lowest tier
    moving_up_into: int
    moving_down_into: int  # their grace period has run out
    moving_up_out: int
    moving_down_out: int
    starting_grace: int  # qualify lower but keep this tier for now
    in_grace: int  # were already below and still keep this tier
    staying: int  # members now (and joiners) who keep this tier, grace or not
    members_after: int


@dataclass(frozen=True)
class TierImpact:
    tiers: list[TierImpactRow]  # by rank
    totals: RecomputeResult = field(default_factory=RecomputeResult)


def current_tier_rules() -> list[TierRuleInput]:
    """The saved tiers as rules, by rank: the starting point of an edit."""
    return [TierRuleInput.from_tier(tier) for tier in Tier.objects.order_by("rank")]


# --- validation --------------------------------------------------------------------------------


def _is_amount(value: Any, *, places: int, maximum: Decimal) -> bool:
    if not isinstance(value, Decimal) or not value.is_finite():
        return False
    exponent = value.as_tuple().exponent
    return isinstance(exponent, int) and -exponent <= places and Decimal(0) <= value <= maximum


def _is_whole(value: Any, *, maximum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= maximum


def _field_errors(index: int, rule: TierRuleInput) -> list[RuleError]:
    errors: list[RuleError] = []

    def add(field_name: str, message: str) -> None:
        errors.append(RuleError(index, rule.code, field_name, message))

    code = rule.code.strip() if isinstance(rule.code, str) else ""
    if not code:
        add("code", _("Enter a code."))
    elif len(code) > CODE_MAX_LENGTH:
        add("code", _("A code has at most %(limit)d characters.") % {"limit": CODE_MAX_LENGTH})
    elif not _CODE.match(code):
        add("code", _("A code uses only letters, digits, hyphens and underscores."))
    for name_field, missing in (
        ("name_zh", _("Enter a Chinese name.")),
        ("name_en", _("Enter an English name.")),
    ):
        name = getattr(rule, name_field)
        if not isinstance(name, str) or not name.strip():
            add(name_field, missing)
        elif len(name.strip()) > NAME_MAX_LENGTH:
            add(
                name_field,
                _("A name has at most %(limit)d characters.") % {"limit": NAME_MAX_LENGTH},
            )
    if not _is_whole(rule.rank, maximum=MAX_TIER_RANK):
        add("rank", _("A rank is a whole number from 0 to %(max)d.") % {"max": MAX_TIER_RANK})
    if not _is_amount(rule.min_spend, places=2, maximum=MAX_MIN_SPEND):
        add(
            "min_spend",
            _("A minimum spend is an amount from 0 to %(max)s with at most 2 decimals.")
            % {"max": MAX_MIN_SPEND},
        )
    if not _is_whole(rule.min_orders, maximum=MAX_MIN_ORDERS):
        add(
            "min_orders",
            _("A minimum order count is a whole number from 0 to %(max)d.")
            % {"max": MAX_MIN_ORDERS},
        )
    if not _is_amount(rule.discount_percent, places=1, maximum=MAX_DISCOUNT):
        add("discount_percent", _("A discount is from 0 to 50 percent, with at most 1 decimal."))
    if not _is_whole(rule.free_shipping_coupons_per_month, maximum=MAX_COUPONS):
        add(
            "free_shipping_coupons_per_month",
            _("Free-shipping coupons per month are a whole number from 0 to %(max)d.")
            % {"max": MAX_COUPONS},
        )
    if not isinstance(rule.colour, str) or not _COLOUR.match(rule.colour):
        add("colour", _("Enter a colour as #RRGGBB."))
    return errors


def _list_errors(rules: Sequence[TierRuleInput]) -> list[RuleError]:
    errors: list[RuleError] = []
    seen_ids: set[int] = set()
    seen_codes: set[str] = set()
    seen_ranks: set[int] = set()
    for index, rule in enumerate(rules):
        if rule.id is not None:
            if rule.id in seen_ids:
                errors.append(RuleError(index, rule.code, "id", _("This tier is listed twice.")))
            seen_ids.add(rule.id)
        code = rule.code.strip() if isinstance(rule.code, str) else ""
        if code:
            if code in seen_codes:
                errors.append(
                    RuleError(
                        index,
                        rule.code,
                        "code",
                        _("Code '%(code)s' is used by more than one tier.") % {"code": code},
                    )
                )
            seen_codes.add(code)
        if _is_whole(rule.rank, maximum=MAX_TIER_RANK):
            if rule.rank in seen_ranks:
                errors.append(
                    RuleError(
                        index,
                        rule.code,
                        "rank",
                        _("Rank %(rank)d is used by more than one tier.") % {"rank": rule.rank},
                    )
                )
            seen_ranks.add(rule.rank)

    ranked = sorted(
        (
            (rule.rank, index, rule)
            for index, rule in enumerate(rules)
            if _is_whole(rule.rank, maximum=MAX_TIER_RANK)
        ),
        key=lambda item: (item[0], item[1]),
    )
    missing = sorted(set(range(max(seen_ranks, default=-1) + 1)) - seen_ranks)
    for gap in missing:
        rank, index, rule = next(item for item in ranked if item[0] > gap)
        errors.append(
            RuleError(
                index,
                rule.code,
                "rank",
                _("Ranks run from 0 without gaps: rank %(rank)d is missing.") % {"rank": gap},
            )
        )

    for rank, index, rule in ranked:
        if rank != 0:
            continue
        if _is_amount(rule.min_spend, places=2, maximum=MAX_MIN_SPEND) and rule.min_spend != 0:
            errors.append(
                RuleError(
                    index,
                    rule.code,
                    "min_spend",
                    _("The rank-0 tier takes everyone: its minimum spend must be 0."),
                )
            )
        if _is_whole(rule.min_orders, maximum=MAX_MIN_ORDERS) and rule.min_orders != 0:
            errors.append(
                RuleError(
                    index,
                    rule.code,
                    "min_orders",
                    _("The rank-0 tier takes everyone: its minimum orders must be 0."),
                )
            )

    for (low_rank, _low_index, low), (high_rank, index, high) in zip(
        ranked, ranked[1:], strict=False
    ):
        if low_rank == high_rank:
            continue  # already reported as a repeated rank
        if (
            _is_amount(low.min_spend, places=2, maximum=MAX_MIN_SPEND)
            and _is_amount(high.min_spend, places=2, maximum=MAX_MIN_SPEND)
            and high.min_spend <= low.min_spend
        ):
            errors.append(
                RuleError(
                    index,
                    high.code,
                    "min_spend",
                    _(
                        "The minimum spend must be higher than that of '%(below)s' "
                        "(%(amount)s), the tier below."
                    )
                    % {"below": low.code, "amount": f"{low.min_spend:.2f}"},
                )
            )
        if (
            _is_whole(low.min_orders, maximum=MAX_MIN_ORDERS)
            and _is_whole(high.min_orders, maximum=MAX_MIN_ORDERS)
            and high.min_orders < low.min_orders
        ):
            errors.append(
                RuleError(
                    index,
                    high.code,
                    "min_orders",
                    _(
                        "The minimum orders must be at least those of '%(below)s' "
                        "(%(count)d), the tier below."
                    )
                    % {"below": low.code, "count": low.min_orders},
                )
            )
    return errors


def validate_tier_rules(rules: Sequence[TierRuleInput]) -> list[RuleError]:
    """Every problem with a proposed set of tiers, by tier and field; [] when they can be saved.

    Checks the rules alone; save_tier_rules also checks them against the database.
    """
    if not rules:
        return [RuleError(None, "", "rules", _("Add at least one tier."))]
    errors = [error for index, rule in enumerate(rules) for error in _field_errors(index, rule)]
    errors += _list_errors(rules)
    return sorted(
        errors,
        key=lambda error: (
            -1 if error.index is None else error.index,
            _FIELD_ORDER.index(error.field) if error.field in _FIELD_ORDER else len(_FIELD_ORDER),
        ),
    )


def _database_errors(rules: Sequence[TierRuleInput]) -> list[RuleError]:
    """Tiers that no longer exist, and tiers left out that members still hold."""
    errors: list[RuleError] = []
    existing = dict(Tier.objects.values_list("pk", "code"))
    for index, rule in enumerate(rules):
        if rule.id is not None and rule.id not in existing:
            errors.append(
                RuleError(
                    index,
                    rule.code,
                    "id",
                    _("This tier no longer exists; reload the page and edit again."),
                )
            )
    removed = set(existing) - {rule.id for rule in rules}
    held = (
        Membership.objects.filter(tier_id__in=removed)
        .values_list("tier_id")
        .annotate(members=Count("*"))
        .order_by("tier_id")
    )
    for tier_id, members in held:
        errors.append(
            RuleError(
                None,
                existing[tier_id],
                "rules",
                ngettext(
                    "Tier '%(code)s' cannot be removed: %(count)d member holds it.",
                    "Tier '%(code)s' cannot be removed: %(count)d members hold it.",
                    members,
                )
                % {"code": existing[tier_id], "count": members},
            )
        )
    return errors


def _require_valid(rules: Sequence[TierRuleInput]) -> None:
    errors = validate_tier_rules(rules) + _database_errors(rules)
    if errors:
        raise TierRulesError(errors)


# --- saving ------------------------------------------------------------------------------------


def _enqueue_recompute() -> None:
    import django_rq

    # Imported here: the jobs module imports this one.
    from loyalty.jobs import DEFAULT_QUEUE, recompute_tiers_job

    django_rq.get_queue(DEFAULT_QUEUE).enqueue(recompute_tiers_job)


@transaction.atomic
def save_tier_rules(*, rules: Sequence[TierRuleInput], actor: Actor) -> list[Tier]:
    """Replace the tiers with the submitted ones (all or nothing); returns them by rank.

    Tiers left out are deleted, which is refused while members hold them. Raises
    PermissionDenied or TierRulesError (nothing saved). Members move only when the recompute,
    enqueued once this commits, runs.
    """
    if not actor.has_perm(CHANGE_TIER_PERMISSION):
        raise PermissionDenied(_("You may not change the tier rules."))
    lock_loyalty_settings()
    _require_valid(rules)

    tiers = {tier.pk: tier for tier in Tier.objects.select_for_update().order_by("pk")}
    kept = [rule.id for rule in rules if rule.id is not None]
    Tier.objects.filter(pk__in=set(tiers) - set(kept)).delete()
    for offset, tier_id in enumerate(kept):
        # Out of the way of every new rank and code; "~" is never in a real code.
        Tier.objects.filter(pk=tier_id).update(rank=PARKED_RANK + offset, code=f"~{tier_id}")
    for rule in rules:
        tier = tiers[rule.id] if rule.id is not None else Tier()
        tier.code = rule.code.strip()
        tier.name_zh = rule.name_zh.strip()
        tier.name_en = rule.name_en.strip()
        tier.rank = rule.rank
        tier.min_spend = rule.min_spend
        tier.min_orders = rule.min_orders
        tier.discount_percent = rule.discount_percent
        tier.free_shipping_coupons_per_month = rule.free_shipping_coupons_per_month
        tier.has_birthday_coupon = rule.has_birthday_coupon
        tier.has_priority_service = rule.has_priority_service
        tier.benefits_text = rule.benefits_text.strip()
        tier.colour = rule.colour
        tier.save()
    logger.info("tier rules saved by user %s: %s", actor.pk, [rule.code for rule in rules])
    transaction.on_commit(_enqueue_recompute)
    return list(Tier.objects.order_by("rank"))


# --- the plan: one SQL statement shared by the preview and the recompute -----------------------


@dataclass(frozen=True)
class _Threshold:
    key: int  # the position of the tier in the rules the plan is made for
    tier_id: int | None
    rank: int
    min_spend_cents: int
    min_orders: int


def _plan_sql(
    thresholds: Sequence[_Threshold], *, now: dt.datetime, window_days: int, grace_days: int
) -> tuple[str, list[Any]]:
    """WITH ... plan AS (one row per customer: what the recompute does to them); the caller
    appends the final SELECT over plan.

    Money is compared in whole cents: SQLite keeps decimals as floating point, and a sum of
    floats can fall a hair short of a threshold that the exact sum meets.
    """
    values = ", ".join(
        ["(CAST(%s AS INTEGER), CAST(%s AS BIGINT), CAST(%s AS INTEGER), "
         "CAST(%s AS BIGINT), CAST(%s AS BIGINT))"] * len(thresholds)
    )  # fmt: skip
    params: list[Any] = []
    for threshold in thresholds:
        params += [
            threshold.key,
            threshold.tier_id,
            threshold.rank,
            threshold.min_spend_cents,
            threshold.min_orders,
        ]
    window_start = now - dt.timedelta(days=window_days)
    grace_cutoff = now - dt.timedelta(days=grace_days)
    params += [OrderStatus.PAID.value, db_datetime(window_start), db_datetime(now)]
    params += [db_datetime(now), db_datetime(grace_cutoff)]
    # MATERIALIZED (PostgreSQL 12+, SQLite 3.35+): computed once per customer, not inlined into
    # every expression below that reads qualified_rank.
    sql = f"""
        WITH rules (k, tier_id, rnk, min_cents, min_orders) AS (VALUES {values}),
        bounds AS (SELECT MIN(rnk) AS base_rank FROM rules),
        growth AS (
            SELECT o.customer_id AS customer_id,
                   CAST(SUM(CAST(ROUND(o.amount * 100) AS BIGINT)) AS BIGINT) AS spend_cents,
                   COUNT(*) AS orders_count
            FROM {quote_table(Order)} o
            WHERE o.status = %s AND o.placed_at > %s AND o.placed_at <= %s
            GROUP BY o.customer_id
        ),
        members AS MATERIALIZED (
            SELECT c.id AS customer_id,
                   CASE WHEN m.customer_id IS NULL THEN 1 ELSE 0 END AS is_joining,
                   COALESCE(cr.rnk, b.base_rank) AS current_rank,
                   m.below_tier_since AS below_since,
                   COALESCE(g.spend_cents, 0) AS spend_cents,
                   COALESCE(g.orders_count, 0) AS orders_count,
                   COALESCE(
                       (SELECT MAX(r.rnk) FROM rules r
                        WHERE r.min_cents <= COALESCE(g.spend_cents, 0)
                          AND r.min_orders <= COALESCE(g.orders_count, 0)),
                       b.base_rank
                   ) AS qualified_rank
            FROM {quote_table(Customer)} c
            CROSS JOIN bounds b
            LEFT JOIN {quote_table(Membership)} m ON m.customer_id = c.id
            LEFT JOIN rules cr ON cr.tier_id = m.tier_id
            LEFT JOIN growth g ON g.customer_id = c.id
        ),
        decided AS (
            SELECT s.*,
                   CASE
                       WHEN qualified_rank > current_rank THEN '{UPGRADE}'
                       WHEN qualified_rank < current_rank
                            AND COALESCE(below_since, %s) <= %s THEN '{DOWNGRADE}'
                       WHEN qualified_rank < current_rank AND below_since IS NULL
                            THEN '{GRACE_START}'
                       WHEN qualified_rank < current_rank THEN '{IN_GRACE}'
                       WHEN below_since IS NOT NULL THEN '{GRACE_CLEAR}'
                       ELSE '{STAY}'
                   END AS action
            FROM members s
        ),
        plan AS (
            SELECT d.customer_id, d.is_joining, d.action, d.spend_cents, d.orders_count,
                   fr.k AS from_key, fr.tier_id AS from_tier_id,
                   tr.k AS to_key, tr.tier_id AS to_tier_id
            FROM decided d
            JOIN rules fr ON fr.rnk = d.current_rank
            JOIN rules tr ON tr.rnk = CASE WHEN d.action IN ('{UPGRADE}', '{DOWNGRADE}')
                                      THEN d.qualified_rank ELSE d.current_rank END
        )
    """  # noqa: S608 - table names come from the models, every value is a parameter
    return sql, params


def _thresholds(rules: Sequence[TierRuleInput]) -> list[_Threshold]:
    return [
        _Threshold(
            key=index,
            tier_id=rule.id,
            rank=rule.rank,
            min_spend_cents=int(rule.min_spend * 100),
            min_orders=rule.min_orders,
        )
        for index, rule in enumerate(rules)
    ]


def _totals(counts: Counter[str], *, joined: int) -> RecomputeResult:
    return RecomputeResult(
        joined=joined,
        upgraded=counts[UPGRADE],
        downgraded=counts[DOWNGRADE],
        grace_started=counts[GRACE_START],
        grace_cleared=counts[GRACE_CLEAR],
        still_in_grace=counts[IN_GRACE],
        unchanged=counts[STAY],
    )


def preview_tier_impact(
    *, rules: Sequence[TierRuleInput], now: dt.datetime | None = None
) -> TierImpact:
    """What saving these rules and recomputing at `now` would do, per tier; writes nothing.

    Raises TierRulesError for rules that could not be saved.
    """
    now = resolve_now(now)
    _require_valid(rules)
    loyalty_settings = current_settings()  # a preview never creates the settings row
    plan_sql, params = _plan_sql(
        _thresholds(rules),
        now=now,
        window_days=loyalty_settings.growth_window_days,
        grace_days=loyalty_settings.downgrade_grace_days,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"{plan_sql} SELECT is_joining, action, from_key, to_key, COUNT(*) FROM plan "
            f"GROUP BY is_joining, action, from_key, to_key",
            params,
        )
        groups = cursor.fetchall()

    keys = range(len(rules))
    tally: dict[str, Counter[int]] = {
        name: Counter()
        for name in ("now", "joining", "up_in", "down_in", "up_out", "down_out", "after")
    }
    by_action_and_tier: Counter[tuple[str, int]] = Counter()
    actions: Counter[str] = Counter()
    joined = 0
    for is_joining, action, from_key, to_key, members in groups:
        tally["joining" if is_joining else "now"][from_key] += members
        tally["after"][to_key] += members
        by_action_and_tier[(action, from_key)] += members
        actions[action] += members
        joined += members if is_joining else 0
        if action == UPGRADE:
            tally["up_in"][to_key] += members
            tally["up_out"][from_key] += members
        elif action == DOWNGRADE:
            tally["down_in"][to_key] += members
            tally["down_out"][from_key] += members
    rows = [
        TierImpactRow(
            index=key,
            code=rules[key].code.strip(),
            rank=rules[key].rank,
            members_now=tally["now"][key],
            joining=tally["joining"][key],
            moving_up_into=tally["up_in"][key],
            moving_down_into=tally["down_in"][key],
            moving_up_out=tally["up_out"][key],
            moving_down_out=tally["down_out"][key],
            starting_grace=by_action_and_tier[(GRACE_START, key)],
            in_grace=by_action_and_tier[(IN_GRACE, key)],
            staying=(
                tally["now"][key]
                + tally["joining"][key]
                - tally["up_out"][key]
                - tally["down_out"][key]
            ),
            members_after=tally["after"][key],
        )
        for key in keys
    ]
    rows.sort(key=lambda row: row.rank)
    return TierImpact(tiers=rows, totals=_totals(actions, joined=joined))


# --- the recompute -----------------------------------------------------------------------------


@transaction.atomic
def recompute_tiers(*, now: dt.datetime | None = None) -> RecomputeResult:
    """Move every member to the tier their growth earns, as of `now`, set-based.

    Up at once; down only after the grace period (which starts now for members newly found
    below their tier); back at their tier's level clears the grace period. Writes a TierChange
    for every move. Adds memberships for new customers first. Running it twice at the same
    `now` changes nothing the second time; concurrent runs take turns on the settings row.
    """
    now = resolve_now(now)
    loyalty_settings = lock_loyalty_settings()
    joined = sync_memberships(now=now)
    tiers = list(Tier.objects.order_by("rank"))
    thresholds = [
        _Threshold(
            key=index,
            tier_id=tier.pk,
            rank=tier.rank,
            min_spend_cents=int(tier.min_spend * 100),
            min_orders=tier.min_orders,
        )
        for index, tier in enumerate(tiers)
    ]
    plan_sql, params = _plan_sql(
        thresholds,
        now=now,
        window_days=loyalty_settings.growth_window_days,
        grace_days=loyalty_settings.downgrade_grace_days,
    )
    membership = quote_table(Membership)
    when = db_datetime(now)
    moves = f"('{UPGRADE}', '{DOWNGRADE}')"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {PLAN_TABLE}")
        # Materialised once: the updates below change what the plan reads.
        cursor.execute(
            f"CREATE TEMP TABLE {PLAN_TABLE} AS {plan_sql} "
            f"SELECT customer_id, action, from_tier_id, to_tier_id, spend_cents, orders_count "
            f"FROM plan WHERE action <> '{STAY}'",
            params,
        )
        cursor.execute(
            f"INSERT INTO {quote_table(TierChange)} (customer_id, from_tier_id, to_tier_id, "
            f"reason, spend, orders_count, window_days, changed_at) "
            f"SELECT customer_id, from_tier_id, to_tier_id, action, spend_cents / 100.0, "
            f"orders_count, %s, %s FROM {PLAN_TABLE} WHERE action IN {moves}",
            [loyalty_settings.growth_window_days, when],
        )
        cursor.execute(
            f"UPDATE {membership} AS m SET tier_id = p.to_tier_id, tier_since = %s, "
            f"below_tier_since = NULL FROM {PLAN_TABLE} p "
            f"WHERE m.customer_id = p.customer_id AND p.action IN {moves}",
            [when],
        )
        cursor.execute(
            f"UPDATE {membership} SET below_tier_since = %s WHERE customer_id IN "
            f"(SELECT customer_id FROM {PLAN_TABLE} WHERE action = '{GRACE_START}')",
            [when],
        )
        cursor.execute(
            f"UPDATE {membership} SET below_tier_since = NULL WHERE customer_id IN "
            f"(SELECT customer_id FROM {PLAN_TABLE} WHERE action = '{GRACE_CLEAR}')"
        )
        cursor.execute(f"SELECT action, COUNT(*) FROM {PLAN_TABLE} GROUP BY action")
        actions: Counter[str] = Counter(dict(cursor.fetchall()))
        cursor.execute(f"DROP TABLE {PLAN_TABLE}")
    actions[STAY] = Membership.objects.count() - sum(actions.values())
    result = _totals(actions, joined=joined)
    logger.info("tiers recomputed as of %s: %s", now.isoformat(), result)
    return result
