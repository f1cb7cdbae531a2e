"""The field registry: every field a rule can test, its type, its ops and where its value lives.

Each field declares its type (number, text, date, bool, choice), which fixes its ops (OPS_BY_TYPE),
and how it compiles: a column reached from Customer (through the one-to-one metrics or membership
row where it lives there) or a value derived from one (age from birth_date, days since the last
order from last_order_at, "has a phone" from phone). `attr.<key>` reads a key of
Customer.attributes (JSON); its comparisons follow the type of the value given (see compiler.py).

A customer without a metrics row reads as a fresh row: the model's defaults (0 orders, 0 spend,
value tier "unclassified", lifecycle "prospect", silent level ""), null dates and scores. A customer
without a membership reads as tier null (in no tier) and 0 points.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import NOT_PROVIDED
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from customers.models import (
    AcquisitionChannel,
    CustomerMetrics,
    Gender,
    LifecycleStage,
    SilentLevel,
    ValueTier,
)
from loyalty.models import Tier

StrOrPromise = str | Promise

NUMBER = "number"
TEXT = "text"
DATE = "date"
BOOL = "bool"
CHOICE = "choice"
# A key of Customer.attributes: the value given decides text, number or yes/no comparison.
ATTRIBUTE = "attribute"

OPS_BY_TYPE: dict[str, tuple[str, ...]] = {
    NUMBER: ("eq", "ne", "gt", "gte", "lt", "lte", "between"),
    TEXT: ("eq", "ne", "in", "not_in", "contains", "starts_with", "is_set", "is_empty"),
    DATE: ("before", "after", "between", "within_last_days", "more_than_days_ago"),
    BOOL: ("is_true", "is_false"),
    CHOICE: ("in", "not_in"),
    ATTRIBUTE: (
        "eq",
        "ne",
        "in",
        "not_in",
        "gt",
        "gte",
        "lt",
        "lte",
        "between",
        "contains",
        "starts_with",
        "is_set",
        "is_empty",
        "is_true",
        "is_false",
    ),
}

OP_LABELS: dict[str, StrOrPromise] = {
    "eq": _("equals"),
    "ne": _("does not equal"),
    "gt": _("is more than"),
    "gte": _("is at least"),
    "lt": _("is less than"),
    "lte": _("is at most"),
    "between": _("is between"),
    "in": _("is one of"),
    "not_in": _("is none of"),
    "contains": _("contains"),
    "starts_with": _("starts with"),
    "is_set": _("is filled in"),
    "is_empty": _("is empty"),
    "before": _("is before"),
    "after": _("is after"),
    "within_last_days": _("is within the last N days"),
    "more_than_days_ago": _("is more than N days ago"),
    "is_true": _("is yes"),
    "is_false": _("is no"),
}

GROUP_LABELS: dict[str, StrOrPromise] = {
    "profile": _("Profile"),
    "consent": _("Consent"),
    "metrics": _("Purchases and value"),
    "loyalty": _("Membership"),
    "attributes": _("Custom attributes"),
}

# How a field's value is obtained from its column.
COLUMN = "column"  # the column itself
AGE = "age"  # whole years from a birth date to as_of's date
DAYS_SINCE = "days_since"  # whole days from a datetime's local date to as_of's local date
NOT_BLANK = "not_blank"  # a text column is not ""
NOT_NULL = "not_null"  # a column is not null
JSON_KEY = "json_key"  # a key of a JSON column

ATTRIBUTE_PREFIX = "attr."
# A letter or "_" first: a key of digits only would read as an array index in a JSON path.
ATTRIBUTE_KEY_RE = re.compile(r"^[^\W\d][\w-]{0,63}\Z")


@dataclass(frozen=True)
class FieldSpec:
    key: str
    label: StrOrPromise
    group: str
    type: str
    column: str  # ORM path from Customer
    derivation: str = COLUMN
    # The one-to-one relation ("metrics", "membership") whose row may be missing, and the value
    # the field reads as then.
    relation: str | None = None
    default: Any = None
    is_nullable: bool = False
    is_integer: bool = False
    is_date_only: bool = False
    # Bounds of a derived whole-number field's values (its compiler does date arithmetic).
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[tuple[str, StrOrPromise], ...] = ()
    choices_provider: Callable[[], list[tuple[str, str]]] | None = field(
        default=None, compare=False
    )
    help_text: StrOrPromise = ""

    @property
    def ops(self) -> tuple[str, ...]:
        return OPS_BY_TYPE[self.type]

    @property
    def json_key(self) -> str:
        return self.key[len(ATTRIBUTE_PREFIX) :] if self.derivation == JSON_KEY else ""

    @property
    def has_dynamic_choices(self) -> bool:
        return self.choices_provider is not None

    def choice_options(self) -> list[tuple[str, str]]:
        """(value, label) of a choice field; tier codes are read from the database."""
        if self.choices_provider is not None:
            return self.choices_provider()
        return [(value, str(label)) for value, label in self.choices]

    def as_dict(self) -> dict[str, Any]:
        """The field for the builder UI and the API docs."""
        data: dict[str, Any] = {
            "key": self.key,
            "label": str(self.label),
            "group": self.group,
            "group_label": str(GROUP_LABELS[self.group]),
            "type": self.type,
            "ops": [{"op": op, "label": str(OP_LABELS[op])} for op in self.ops],
        }
        if self.type == CHOICE:
            data["choices"] = [
                {"value": value, "label": label} for value, label in self.choice_options()
            ]
        if self.is_integer:
            data["is_integer"] = True
        if self.help_text:
            data["help_text"] = str(self.help_text)
        return data


def _tier_choices() -> list[tuple[str, str]]:
    return [(tier.code, tier.name) for tier in Tier.objects.order_by("rank")]


def _metrics_default(name: str) -> Any:
    model_field = CustomerMetrics._meta.get_field(name)
    default = getattr(model_field, "default", NOT_PROVIDED)
    if default is NOT_PROVIDED or callable(default):
        return None
    if isinstance(default, int | float) and model_field.get_internal_type() == "DecimalField":
        return Decimal(default)
    return default


def _metric_number(key: str, label: StrOrPromise, *, is_integer: bool) -> FieldSpec:
    default = _metrics_default(key)
    return FieldSpec(
        key=key,
        label=label,
        group="metrics",
        type=NUMBER,
        column=f"metrics__{key}",
        relation="metrics",
        default=default,
        is_nullable=default is None,
        is_integer=is_integer,
    )


def _metric_date(key: str, label: StrOrPromise) -> FieldSpec:
    return FieldSpec(
        key=key,
        label=label,
        group="metrics",
        type=DATE,
        column=f"metrics__{key}",
        relation="metrics",
        is_nullable=True,
    )


def _metric_choice(key: str, label: StrOrPromise, choices: Any) -> FieldSpec:
    return FieldSpec(
        key=key,
        label=label,
        group="metrics",
        type=CHOICE,
        column=f"metrics__{key}",
        relation="metrics",
        default=_metrics_default(key),
        choices=tuple(choices),
    )


def _bool(key: str, label: StrOrPromise, *, group: str = "consent") -> FieldSpec:
    return FieldSpec(key=key, label=label, group=group, type=BOOL, column=key)


FIELDS: tuple[FieldSpec, ...] = (
    # Profile
    FieldSpec(key="name", label=_("Name"), group="profile", type=TEXT, column="name"),
    FieldSpec(
        key="external_id", label=_("External id"), group="profile", type=TEXT, column="external_id"
    ),
    FieldSpec(key="city", label=_("City"), group="profile", type=TEXT, column="city"),
    FieldSpec(
        key="channel",
        label=_("Acquisition channel"),
        group="profile",
        type=CHOICE,
        column="channel",
        choices=tuple(AcquisitionChannel.choices),
    ),
    FieldSpec(
        key="gender",
        label=_("Gender"),
        group="profile",
        type=CHOICE,
        column="gender",
        choices=tuple(Gender.choices),
    ),
    FieldSpec(
        key="birth_date",
        label=_("Birth date"),
        group="profile",
        type=DATE,
        column="birth_date",
        is_nullable=True,
        is_date_only=True,
    ),
    FieldSpec(
        key="age",
        label=_("Age"),
        group="profile",
        type=NUMBER,
        column="birth_date",
        derivation=AGE,
        is_nullable=True,
        is_integer=True,
        minimum=0,
        maximum=200,
        help_text=_("Whole years on the as-of date; empty without a birth date."),
    ),
    FieldSpec(
        key="registered_at",
        label=_("Registered"),
        group="profile",
        type=DATE,
        column="registered_at",
    ),
    FieldSpec(
        key="last_seen_at",
        label=_("Last seen"),
        group="profile",
        type=DATE,
        column="last_seen_at",
        is_nullable=True,
    ),
    FieldSpec(
        key="has_phone",
        label=_("Has a phone number"),
        group="profile",
        type=BOOL,
        column="phone",
        derivation=NOT_BLANK,
    ),
    FieldSpec(
        key="has_email",
        label=_("Has an e-mail address"),
        group="profile",
        type=BOOL,
        column="email",
        derivation=NOT_BLANK,
    ),
    FieldSpec(
        key="has_wechat",
        label=_("Has a WeChat openid"),
        group="profile",
        type=BOOL,
        column="wechat_openid",
        derivation=NOT_BLANK,
    ),
    # Consent
    _bool("sms_opt_in", _("SMS opt-in")),
    _bool("email_opt_in", _("E-mail opt-in")),
    _bool("push_opt_in", _("Push opt-in")),
    _bool("wechat_opt_in", _("WeChat opt-in")),
    FieldSpec(
        key="unsubscribed",
        label=_("Unsubscribed from everything"),
        group="consent",
        type=BOOL,
        column="unsubscribed_at",
        derivation=NOT_NULL,
    ),
    FieldSpec(
        key="unsubscribed_at",
        label=_("Unsubscribed at"),
        group="consent",
        type=DATE,
        column="unsubscribed_at",
        is_nullable=True,
    ),
    # Purchases and value (CustomerMetrics)
    _metric_number("orders_count", _("Paid orders"), is_integer=True),
    _metric_number("spend_total", _("Total spend (yuan)"), is_integer=False),
    _metric_number("orders_30d", _("Orders in 30 days"), is_integer=True),
    _metric_number("spend_30d", _("Spend in 30 days (yuan)"), is_integer=False),
    _metric_number("orders_90d", _("Orders in 90 days"), is_integer=True),
    _metric_number("spend_90d", _("Spend in 90 days (yuan)"), is_integer=False),
    _metric_number("orders_180d", _("Orders in 180 days"), is_integer=True),
    _metric_number("spend_180d", _("Spend in 180 days (yuan)"), is_integer=False),
    _metric_number("orders_365d", _("Orders in 365 days"), is_integer=True),
    _metric_number("spend_365d", _("Spend in 365 days (yuan)"), is_integer=False),
    _metric_number("avg_order_value", _("Average order value (yuan)"), is_integer=False),
    _metric_date("first_order_at", _("First order")),
    _metric_date("last_order_at", _("Last order")),
    FieldSpec(
        key="days_since_last_order",
        label=_("Days since the last order"),
        group="metrics",
        type=NUMBER,
        column="metrics__last_order_at",
        derivation=DAYS_SINCE,
        relation="metrics",
        is_nullable=True,
        is_integer=True,
        minimum=-36_500,
        maximum=36_500,
        help_text=_("Whole days from the last paid order's date to the as-of date."),
    ),
    _metric_number("rfm_r", _("RFM recency score (1-5)"), is_integer=True),
    _metric_number("rfm_f", _("RFM frequency score (1-5)"), is_integer=True),
    _metric_number("rfm_m", _("RFM monetary score (1-5)"), is_integer=True),
    _metric_choice("value_tier", _("Value tier"), ValueTier.choices),
    _metric_choice("lifecycle_stage", _("Lifecycle stage"), LifecycleStage.choices),
    _metric_choice("silent_level", _("Silent level"), SilentLevel.choices),
    _metric_date("last_active_at", _("Last active")),
    # Membership (loyalty)
    FieldSpec(
        key="tier",
        label=_("Membership tier"),
        group="loyalty",
        type=CHOICE,
        column="membership__tier__code",
        relation="membership",
        choices_provider=_tier_choices,
    ),
    FieldSpec(
        key="points_balance",
        label=_("Points balance"),
        group="loyalty",
        type=NUMBER,
        column="membership__points_balance",
        relation="membership",
        default=0,
        is_integer=True,
    ),
    FieldSpec(
        key="tier_since",
        label=_("In the tier since"),
        group="loyalty",
        type=DATE,
        column="membership__tier_since",
        relation="membership",
        is_nullable=True,
    ),
)

FIELDS_BY_KEY: dict[str, FieldSpec] = {spec.key: spec for spec in FIELDS}

ATTRIBUTE_FIELD_HELP = _(
    "attr.<key> reads a key of the customer's custom attributes: a text value compares with "
    "text, a number with numbers, and is_true / is_false test yes/no values."
)


def attribute_field(key: str) -> FieldSpec:
    """The spec of `attr.<key>` (the key already checked against ATTRIBUTE_KEY_RE)."""
    return FieldSpec(
        key=f"{ATTRIBUTE_PREFIX}{key}",
        label=key,
        group="attributes",
        type=ATTRIBUTE,
        column="attributes",
        derivation=JSON_KEY,
        is_nullable=True,
    )


def get_field(key: str) -> FieldSpec | None:
    """The field a rule names, or None when there is no such field."""
    if key.startswith(ATTRIBUTE_PREFIX):
        name = key[len(ATTRIBUTE_PREFIX) :]
        return attribute_field(name) if ATTRIBUTE_KEY_RE.match(name) else None
    return FIELDS_BY_KEY.get(key)


def list_fields() -> list[FieldSpec]:
    """Every field of the registry in the builder's order; custom attributes are `attr.<key>`."""
    return list(FIELDS)
