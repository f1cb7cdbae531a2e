"""The value-tier thresholds form: parsing only; customers.metrics_settings decides what holds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.utils.translation import gettext_lazy as _

from customers.metrics_settings import ValueTierThresholds
from customers.models import MetricsSettings, ValueTier

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

WHOLE_NUMBER = {"step": "1", "inputmode": "numeric"}
YUAN = {"step": "0.01", "inputmode": "decimal"}
SPEND_DIGITS: int = MetricsSettings._meta.get_field("high_min_spend").max_digits or 14  # type: ignore[union-attr]


def _days(label: StrOrPromise) -> forms.IntegerField:
    return forms.IntegerField(label=label, widget=forms.NumberInput(attrs=WHOLE_NUMBER))


def _orders(label: StrOrPromise) -> forms.IntegerField:
    return forms.IntegerField(label=label, widget=forms.NumberInput(attrs=WHOLE_NUMBER))


def _yuan(label: StrOrPromise) -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        max_digits=SPEND_DIGITS,
        decimal_places=2,
        widget=forms.NumberInput(attrs=YUAN),
    )


class MetricsSettingsForm(forms.Form):
    high_max_days = _days(_("Last order within (days)"))
    high_min_orders = _orders(_("At least (orders)"))
    high_min_spend = _yuan(_("Spend at least (yuan)"))
    potential_max_days = _days(_("Last order within (days)"))
    potential_min_orders = _orders(_("At least (orders)"))
    potential_max_orders = _orders(_("At most (orders)"))
    potential_min_spend = _yuan(_("Spend at least (yuan)"))
    potential_max_spend = _yuan(_("Spend less than (yuan)"))
    low_min_days = _days(_("Last order at least (days ago)"))
    low_max_orders = _orders(_("At most (orders)"))
    low_max_spend = _yuan(_("Spend less than (yuan)"))

    # The page shows one fieldset per tier, in the order the tiers are tried.
    TIER_FIELDS: tuple[tuple[ValueTier, tuple[str, ...]], ...] = (
        (ValueTier.HIGH, ("high_max_days", "high_min_orders", "high_min_spend")),
        (
            ValueTier.POTENTIAL,
            (
                "potential_max_days",
                "potential_min_orders",
                "potential_max_orders",
                "potential_min_spend",
                "potential_max_spend",
            ),
        ),
        (ValueTier.LOW, ("low_min_days", "low_max_orders", "low_max_spend")),
    )

    def __init__(self, *args: Any, is_read_only: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.is_read_only = is_read_only
        for field in self.fields.values():
            field.disabled = is_read_only

    def tier_groups(self) -> list[dict[str, Any]]:
        """The fieldsets: each tier's label and its bound fields."""
        return [
            {
                "tier": tier.value,
                "label": tier.label,
                "fields": [self[name] for name in names],
            }
            for tier, names in self.TIER_FIELDS
        ]

    def labelled_errors(self) -> list[str]:
        """Every field error on one line, naming the tier and the field."""
        tier_of = {name: tier.label for tier, names in self.TIER_FIELDS for name in names}
        lines = [str(error) for error in self.non_field_errors()]
        for name, problems in self.errors.items():
            if name == NON_FIELD_ERRORS:
                continue
            for problem in problems:
                lines.append(f"{tier_of[name]} · {self.fields[name].label}: {problem}")
        return lines

    def thresholds(self) -> ValueTierThresholds:
        """The parsed values of a valid form."""
        return ValueTierThresholds(**self.cleaned_data)

    def add_errors(self, errors: dict[str, list[str]]) -> None:
        for name, problems in errors.items():
            for problem in problems:
                self.add_error(name if name in self.fields else None, problem)


def initial_from(thresholds: ValueTierThresholds) -> dict[str, Any]:
    return {name: getattr(thresholds, name) for name in MetricsSettingsForm.base_fields}
