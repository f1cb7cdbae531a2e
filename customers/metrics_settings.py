"""The value-tier thresholds (MetricsSettings) as people edit them: the checks, the save, and
the reads of the settings page.

The tiers form a ladder, as the defaults do (see the definitions in customers/metrics.py):
high value asks for more orders and spend than potential, potential for at least what low value
allows, and low value starts after both "within N days" windows have ended. Thresholds that
break it would let an earlier tier swallow a later one's customers, so they are refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import django_rq
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count
from django.utils.translation import gettext as _

from customers.jobs import METRICS_QUEUE, recompute_metrics_job
from customers.metrics import count_value_tiers, current_metrics_settings
from customers.models import CustomerMetrics, MetricsSettings, ValueTier

logger = logging.getLogger(__name__)

CHANGE_PERMISSION = "customers.change_metricssettings"
VIEW_PERMISSION = "customers.view_metricssettings"
# Past these a threshold is a typo, not a policy: ten years, ten thousand orders, a hundred
# million yuan (the columns would hold far more).
MAX_DAYS = 3650
MAX_ORDERS = 10_000
MAX_SPEND = Decimal("100000000.00")
FEN = Decimal("0.01")
RECOMPUTE_TIMEOUT = 3600  # seconds, as the nightly schedule gives the same job

DAY_FIELDS = ("high_max_days", "potential_max_days", "low_min_days")
ORDER_FIELDS = ("high_min_orders", "potential_min_orders", "potential_max_orders", "low_max_orders")
SPEND_FIELDS = ("high_min_spend", "potential_min_spend", "potential_max_spend", "low_max_spend")


class Actor(Protocol):
    pk: Any

    def has_perm(self, perm: str, obj: Any = None) -> bool: ...


@dataclasses.dataclass(frozen=True)
class ValueTierThresholds:
    """The editable fields of MetricsSettings: days, whole orders, and spend in yuan."""

    high_max_days: int
    high_min_orders: int
    high_min_spend: Decimal
    potential_max_days: int
    potential_min_orders: int
    potential_max_orders: int
    potential_min_spend: Decimal
    potential_max_spend: Decimal
    low_min_days: int
    low_max_orders: int
    low_max_spend: Decimal

    def __post_init__(self) -> None:
        # To the fen, as stored: 500 and 500.00 are one threshold, and shown as 500.00.
        for name in SPEND_FIELDS:
            value = Decimal(getattr(self, name))
            with contextlib.suppress(InvalidOperation):  # past the precision: out of range anyway
                object.__setattr__(self, name, value.quantize(FEN))

    @classmethod
    def of(cls, metrics_settings: MetricsSettings) -> ValueTierThresholds:
        return cls(**{name: getattr(metrics_settings, name) for name in THRESHOLD_FIELDS})

    def as_settings(self) -> MetricsSettings:
        """An unsaved settings row holding these thresholds (for the preview's count)."""
        return MetricsSettings(pk=1, **dataclasses.asdict(self))


THRESHOLD_FIELDS: tuple[str, ...] = tuple(
    field.name for field in dataclasses.fields(ValueTierThresholds)
)


def _range_errors(thresholds: ValueTierThresholds) -> dict[str, str]:
    errors: dict[str, str] = {}
    for name in DAY_FIELDS:
        if not 0 <= getattr(thresholds, name) <= MAX_DAYS:
            errors[name] = _("Enter 0 to %(limit)d days.") % {"limit": MAX_DAYS}
    for name in ORDER_FIELDS:
        if not 1 <= getattr(thresholds, name) <= MAX_ORDERS:
            errors[name] = _(
                "Enter 1 to %(limit)d orders: customers without orders are never in a tier."
            ) % {"limit": MAX_ORDERS}
    for name in SPEND_FIELDS:
        if not Decimal(0) <= getattr(thresholds, name) <= MAX_SPEND:
            errors[name] = _("Enter 0 to %(limit)s yuan.") % {"limit": f"{MAX_SPEND:,.2f}"}
    if "low_max_spend" not in errors and thresholds.low_max_spend == 0:
        errors["low_max_spend"] = _("Enter more than 0 yuan: no spend is less than 0.")
    return errors


def _ladder_errors(t: ValueTierThresholds) -> dict[str, str]:
    """Each error on the field that would have to move, naming the one it is compared with."""
    errors: dict[str, str] = {}
    if t.potential_max_orders < t.potential_min_orders:
        errors["potential_max_orders"] = _(
            "Must be at least the potential tier's minimum orders (%(value)d)."
        ) % {"value": t.potential_min_orders}
    if t.high_min_orders <= t.potential_max_orders:
        errors["high_min_orders"] = _(
            "Must be more than the potential tier's maximum orders (%(value)d)."
        ) % {"value": t.potential_max_orders}
    if t.low_max_orders > t.potential_min_orders:
        errors["low_max_orders"] = _(
            "Must be at most the potential tier's minimum orders (%(value)d)."
        ) % {"value": t.potential_min_orders}
    if t.potential_max_spend <= t.potential_min_spend:
        errors["potential_max_spend"] = _(
            "Must be more than the potential tier's minimum spend (%(value)s yuan)."
        ) % {"value": t.potential_min_spend}
    if t.high_min_spend < t.potential_max_spend:
        errors["high_min_spend"] = _(
            "Must be at least the potential tier's spend limit (%(value)s yuan)."
        ) % {"value": t.potential_max_spend}
    if t.low_max_spend > t.potential_min_spend:
        errors["low_max_spend"] = _(
            "Must be at most the potential tier's minimum spend (%(value)s yuan)."
        ) % {"value": t.potential_min_spend}
    latest_recent = max(t.high_max_days, t.potential_max_days)
    if t.low_min_days <= latest_recent:
        errors["low_min_days"] = _(
            "Must be more than %(days)d days, the longer of the high value and potential "
            "windows: a recent customer is never low value."
        ) % {"days": latest_recent}
    return errors


def list_threshold_errors(thresholds: ValueTierThresholds) -> dict[str, list[str]]:
    """What is wrong with the thresholds, by field; empty when they may be saved."""
    errors = _range_errors(thresholds)
    if not errors:
        # Comparing a value that is out of range anyway would only add noise.
        errors = _ladder_errors(thresholds)
    return {name: [message] for name, message in errors.items()}


def _check(thresholds: ValueTierThresholds) -> None:
    errors = list_threshold_errors(thresholds)
    if errors:
        raise ValidationError(errors)


def _enqueue_recompute() -> None:
    # Called from on_commit already: "auto" enqueues now rather than deferring a second time.
    queue = django_rq.get_queue(METRICS_QUEUE, commit_mode="auto")
    queue.enqueue(recompute_metrics_job, job_timeout=RECOMPUTE_TIMEOUT)


@transaction.atomic
def update_metrics_settings(*, thresholds: ValueTierThresholds, actor: Actor) -> MetricsSettings:
    """Save the value-tier thresholds, all or nothing, and queue a full metrics recompute once
    this commits (customers keep their tiers until it has run).

    Raises PermissionDenied, or ValidationError by field (nothing saved).
    """
    if not actor.has_perm(CHANGE_PERMISSION):
        raise PermissionDenied(_("You may not change the value-tier thresholds."))
    _check(thresholds)
    MetricsSettings.objects.get_or_create(pk=1)
    # Waits for a running recompute, which holds the row, so it finishes on the old thresholds.
    row = MetricsSettings.objects.select_for_update().get(pk=1)
    for name, value in dataclasses.asdict(thresholds).items():
        setattr(row, name, value)
    row.save(update_fields=THRESHOLD_FIELDS)
    logger.info("value-tier thresholds saved by user %s", actor.pk)
    transaction.on_commit(_enqueue_recompute)
    return row


def preview_value_tiers(thresholds: ValueTierThresholds) -> dict[str, int]:
    """Customers per value tier with these thresholds, from the stored metrics (nothing saved).

    Raises ValidationError by field, as saving them would.
    """
    _check(thresholds)
    return count_value_tiers(metrics_settings=thresholds.as_settings())


# Reads of the settings page.


@dataclasses.dataclass(frozen=True)
class LastFullRun:
    as_of: dt.datetime
    finished_at: dt.datetime | None
    duration_ms: int | None
    customers: int


@dataclasses.dataclass(frozen=True)
class MetricsSettingsOverview:
    thresholds: ValueTierThresholds
    tier_counts: dict[str, int]  # every ValueTier, in its order
    last_full_run: LastFullRun | None

    @property
    def customers(self) -> int:
        return sum(self.tier_counts.values())


def count_customers_by_value_tier() -> dict[str, int]:
    """The tiers as stored by the last recompute: one GROUP BY over CustomerMetrics."""
    found = dict(
        CustomerMetrics.objects.order_by()
        .values_list("value_tier")
        .annotate(customers=Count("pk"))
        .values_list("value_tier", "customers")
    )
    return {tier.value: found.get(tier.value, 0) for tier in ValueTier}


def get_metrics_settings_overview() -> MetricsSettingsOverview:
    metrics_settings = current_metrics_settings()
    last_run = None
    if metrics_settings.last_full_run_as_of is not None:
        last_run = LastFullRun(
            as_of=metrics_settings.last_full_run_as_of,
            finished_at=metrics_settings.last_full_run_at,
            duration_ms=metrics_settings.last_full_run_ms,
            customers=metrics_settings.last_full_run_customers,
        )
    return MetricsSettingsOverview(
        thresholds=ValueTierThresholds.of(metrics_settings),
        tier_counts=count_customers_by_value_tier(),
        last_full_run=last_run,
    )
