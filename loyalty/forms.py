"""Forms of the loyalty pages. They parse what was typed; the services decide what is allowed."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django import forms
from django.forms import formset_factory
from django.utils.translation import gettext_lazy as _

from loyalty.models import LoyaltySettings, PointsRule, Tier
from loyalty.services.rules import PointsRuleInput
from loyalty.services.tiers import TierRuleInput

COLOUR_INPUT = {"type": "color"}
DATETIME_INPUT = {"type": "datetime-local"}
NEW_TIER_COLOUR = "#9e9e9e"
# Formsets refuse more rows than this (a guard against a forged TOTAL_FORMS, not a rule).
MAX_TIERS = 20
MAX_POINTS_RULES = 100


class TierForm(forms.Form):
    """One tier row of the rules page (the service checks ranges, order and gaps)."""

    id = forms.IntegerField(required=False, widget=forms.HiddenInput)
    code = forms.CharField(label=_("Code"), help_text=_("Letters, digits, - and _."))
    name_zh = forms.CharField(label=_("Name (Chinese)"))
    name_en = forms.CharField(label=_("Name (English)"))
    rank = forms.IntegerField(label=_("Rank"), help_text=_("0 is the tier everyone starts in."))
    min_spend = forms.DecimalField(label=_("Minimum spend (yuan)"))
    min_orders = forms.IntegerField(label=_("Minimum orders"), required=False)
    # xgettext:no-python-format
    discount_percent = forms.DecimalField(label=_("Discount (% off)"), required=False)
    free_shipping_coupons_per_month = forms.IntegerField(
        label=_("Free-shipping coupons per month"), required=False
    )
    has_birthday_coupon = forms.BooleanField(label=_("Birthday coupon"), required=False)
    has_priority_service = forms.BooleanField(label=_("Priority service"), required=False)
    benefits_text = forms.CharField(
        label=_("Other benefits"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    colour = forms.CharField(label=_("Colour"), widget=forms.TextInput(attrs=COLOUR_INPUT))

    def to_rule(self) -> TierRuleInput:
        data = self.cleaned_data
        return TierRuleInput(
            id=data.get("id"),
            code=data["code"],
            name_zh=data["name_zh"],
            name_en=data["name_en"],
            rank=data["rank"],
            min_spend=data["min_spend"],
            min_orders=data.get("min_orders") or 0,
            discount_percent=data.get("discount_percent") or Decimal("0"),
            free_shipping_coupons_per_month=data.get("free_shipping_coupons_per_month") or 0,
            has_birthday_coupon=bool(data.get("has_birthday_coupon")),
            has_priority_service=bool(data.get("has_priority_service")),
            benefits_text=data.get("benefits_text") or "",
            colour=data["colour"],
        )


TierFormSet = formset_factory(
    TierForm, extra=0, can_delete=True, max_num=MAX_TIERS, validate_max=True
)


def tier_initial(tier: Tier) -> dict[str, Any]:
    return {
        "id": tier.pk,
        "code": tier.code,
        "name_zh": tier.name_zh,
        "name_en": tier.name_en,
        "rank": tier.rank,
        "min_spend": tier.min_spend,
        "min_orders": tier.min_orders,
        "discount_percent": tier.discount_percent,
        "free_shipping_coupons_per_month": tier.free_shipping_coupons_per_month,
        "has_birthday_coupon": tier.has_birthday_coupon,
        "has_priority_service": tier.has_priority_service,
        "benefits_text": tier.benefits_text,
        "colour": tier.colour,
    }


def new_tier_initial(rank: int) -> dict[str, Any]:
    return {
        "rank": rank,
        "min_orders": 0,
        "discount_percent": Decimal("0"),
        "free_shipping_coupons_per_month": 0,
        "colour": NEW_TIER_COLOUR,
    }


def typed_rows(formset: forms.BaseFormSet) -> list[dict[str, Any]]:
    """What was typed in each row of a bound formset, as initial data for a new one."""
    rows = []
    for form in formset.forms:
        row = {name: form[name].value() for name in form.fields}
        rows.append(row)
    return rows


def next_rank(rows: list[dict[str, Any]]) -> int:
    ranks = []
    for row in rows:
        try:
            ranks.append(int(row.get("rank")))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
    return max(ranks, default=-1) + 1


class TierSettingsForm(forms.ModelForm):
    class Meta:
        model = LoyaltySettings
        fields = ["growth_window_days", "downgrade_grace_days"]


class PointsSettingsForm(forms.ModelForm):
    class Meta:
        model = LoyaltySettings
        fields = ["return_window_days", "points_per_yuan", "points_expire", "expiry_years_after"]


class PointsRuleForm(forms.Form):
    id = forms.IntegerField(required=False, widget=forms.HiddenInput)
    event_name = forms.CharField(
        label=_("Event"), help_text=PointsRule._meta.get_field("event_name").help_text
    )
    points = forms.IntegerField(
        label=_("Points"), help_text=PointsRule._meta.get_field("points").help_text
    )
    daily_cap = forms.IntegerField(
        label=_("Daily cap (points)"),
        required=False,
        help_text=PointsRule._meta.get_field("daily_cap").help_text,
    )
    is_active = forms.BooleanField(label=_("On"), required=False)
    active_since = forms.DateTimeField(
        label=_("On since"),
        required=False,
        widget=forms.DateTimeInput(attrs=DATETIME_INPUT, format="%Y-%m-%dT%H:%M"),
        help_text=PointsRule._meta.get_field("active_since").help_text,
    )

    def to_rule(self) -> PointsRuleInput:
        data = self.cleaned_data
        return PointsRuleInput(
            id=data.get("id"),
            event_name=data["event_name"],
            points=data["points"],
            daily_cap=data.get("daily_cap"),
            is_active=bool(data.get("is_active")),
            active_since=data.get("active_since"),
        )


PointsRuleFormSet = formset_factory(
    PointsRuleForm, extra=0, max_num=MAX_POINTS_RULES, validate_max=True
)


def points_rule_initial(rule: PointsRule) -> dict[str, Any]:
    return {
        "id": rule.pk,
        "event_name": rule.event_name,
        "points": rule.points,
        "daily_cap": rule.daily_cap,
        "is_active": rule.is_active,
        "active_since": rule.active_since,
    }


def new_points_rule_initial() -> dict[str, Any]:
    return {"is_active": True}


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


class PointsAdjustForm(forms.Form):
    """A manual adjustment on the 360 page: points added (positive) or taken away (negative)."""

    delta = forms.IntegerField(
        label=_("Points"),
        help_text=_("Positive adds points, negative takes them away."),
        error_messages={
            "required": _("Enter a number of points."),
            "invalid": _("Enter a whole number of points."),
        },
    )
    # Required and limited by adjust_points, whose messages say so.
    reason = forms.CharField(label=_("Reason"), required=False)
    key = forms.CharField(required=False, widget=forms.HiddenInput, max_length=64)


class PointsRedeemForm(forms.Form):
    points = forms.IntegerField(
        label=_("Points to redeem"),
        error_messages={
            "required": _("Enter a number of points."),
            "invalid": _("Enter a whole number of points."),
        },
    )
    reason = forms.CharField(label=_("Note"), required=False)
    key = forms.CharField(required=False, widget=forms.HiddenInput, max_length=64)
