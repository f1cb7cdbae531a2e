"""Membership tiers and their rules, each customer's Membership, points rules, points ledger."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from customers.models import Customer

MAX_TIER_RANK = 99
colour_validator = RegexValidator(r"^#[0-9a-fA-F]{6}$", _("Enter a colour as #RRGGBB."))


class LoyaltySettings(models.Model):
    """The one row of loyalty settings admins edit (always pk 1)."""

    growth_window_days = models.PositiveSmallIntegerField(
        _("growth window (days)"),
        default=365,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text=_("Tier thresholds count paid spend and orders over this many trailing days."),
    )
    downgrade_grace_days = models.PositiveSmallIntegerField(
        _("downgrade grace period (days)"),
        default=30,
        validators=[MaxValueValidator(365)],
        help_text=_("A member below their tier keeps it this long before moving down."),
    )
    return_window_days = models.PositiveSmallIntegerField(
        _("return window (days)"),
        default=7,
        validators=[MaxValueValidator(90)],
        help_text=_("Points from an order stay pending this long; a refund inside cancels them."),
    )
    points_per_yuan = models.PositiveIntegerField(
        _("points per yuan when redeeming"),
        default=100,
        validators=[MinValueValidator(1), MaxValueValidator(100_000)],
    )
    points_expire = models.BooleanField(_("points expire"), default=True)
    expiry_years_after = models.PositiveSmallIntegerField(
        _("expire at the end of the year this many years after earning"),
        default=1,
        validators=[MaxValueValidator(10)],
        help_text=_("1: points earned in 2025 expire at the end of 2026; 0: at the end of 2025."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("loyalty settings")
        verbose_name_plural = _("loyalty settings")
        constraints = [models.CheckConstraint(condition=Q(id=1), name="loyaltysettings_singleton")]

    def __str__(self) -> str:
        return str(_("Loyalty settings"))


class Tier(models.Model):
    code = models.SlugField(_("code"), max_length=32, unique=True)
    name_zh = models.CharField(_("name (Chinese)"), max_length=50)
    name_en = models.CharField(_("name (English)"), max_length=50)
    rank = models.PositiveSmallIntegerField(
        _("rank"), unique=True, validators=[MaxValueValidator(MAX_TIER_RANK)]
    )
    min_spend = models.DecimalField(
        _("minimum spend (yuan)"),
        max_digits=12,
        decimal_places=2,
        default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0"))],
    )
    min_orders = models.PositiveIntegerField(_("minimum orders"), default=0)
    discount_percent = models.DecimalField(
        # xgettext:no-python-format
        _("discount (% off)"),
        max_digits=4,
        decimal_places=1,
        default=Decimal("0.0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("50"))],
    )
    free_shipping_coupons_per_month = models.PositiveSmallIntegerField(
        _("free-shipping coupons per month"), default=0, validators=[MaxValueValidator(100)]
    )
    has_birthday_coupon = models.BooleanField(_("birthday coupon"), default=False)
    has_priority_service = models.BooleanField(_("priority service"), default=False)
    benefits_text = models.TextField(_("other benefits"), blank=True)
    colour = models.CharField(
        _("colour"), max_length=7, default="#9e9e9e", validators=[colour_validator]
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("tier")
        verbose_name_plural = _("tiers")
        ordering = ["rank"]
        constraints = [
            models.CheckConstraint(
                condition=Q(min_spend__gte=0), name="tier_min_spend_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(discount_percent__gte=0, discount_percent__lte=50),
                name="tier_discount_in_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return self.name_zh if (get_language() or "").startswith("zh") else self.name_en


class Membership(models.Model):
    """One row per customer; points_balance and pending_points always equal the ledger's sums."""

    customer = models.OneToOneField(
        Customer, primary_key=True, on_delete=models.CASCADE, related_name="membership"
    )
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="memberships")
    tier_since = models.DateTimeField(_("tier since"))
    below_tier_since = models.DateTimeField(
        _("below tier since"),
        null=True,
        blank=True,
        help_text=_("Set while the member's growth is below their tier; the grace period runs."),
    )
    points_balance = models.BigIntegerField(_("points balance"), default=0)
    pending_points = models.BigIntegerField(_("pending points"), default=0)
    joined_at = models.DateTimeField(_("joined at"))

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        indexes = [models.Index(fields=["tier", "customer"], name="membership_tier_idx")]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.tier_id}"


class TierChangeReason(models.TextChoices):
    JOINED = "joined", _("Joined")
    UPGRADE = "upgrade", _("Upgrade")
    DOWNGRADE = "downgrade", _("Downgrade after the grace period")
    TIER_REMOVED = "tier_removed", _("Tier removed")


class TierChange(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="tier_changes")
    from_tier = models.ForeignKey(
        Tier, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    to_tier = models.ForeignKey(
        Tier, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(_("reason"), max_length=16, choices=TierChangeReason.choices)
    spend = models.DecimalField(_("spend in the window (yuan)"), max_digits=14, decimal_places=2)
    orders_count = models.PositiveIntegerField(_("orders in the window"))
    window_days = models.PositiveSmallIntegerField(_("window (days)"))
    changed_at = models.DateTimeField(_("changed at"))

    class Meta:
        verbose_name = _("tier change")
        verbose_name_plural = _("tier changes")
        ordering = ["-changed_at", "-id"]
        indexes = [
            models.Index(fields=["customer", "changed_at"], name="tierchange_customer_idx"),
            models.Index(fields=["changed_at"], name="tierchange_changed_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.from_tier_id} -> {self.to_tier_id}"


class PointsRule(models.Model):
    ORDER = "order"

    event_name = models.SlugField(
        _("event"),
        max_length=64,
        unique=True,
        help_text=_("'order' earns per yuan paid; any other name matches behaviour events."),
    )
    points = models.PositiveIntegerField(
        _("points"),
        validators=[MaxValueValidator(100_000)],
        help_text=_("Per yuan paid for 'order'; per event otherwise."),
    )
    daily_cap = models.PositiveIntegerField(
        _("daily cap (points)"),
        null=True,
        blank=True,
        help_text=_("Most points one customer earns from this rule in one day; empty: no cap."),
    )
    is_active = models.BooleanField(_("on"), default=True)
    active_since = models.DateTimeField(
        _("on since"),
        null=True,
        blank=True,
        help_text=_("Only what happens from this time on earns (empty: everything)."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("points rule")
        verbose_name_plural = _("points rules")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.event_name


class PointsBucket(models.TextChoices):
    PENDING = "pending", _("Pending")
    AVAILABLE = "available", _("Available")


class PointsKind(models.TextChoices):
    ORDER_EARN = "order_earn", _("Order")
    ORDER_RELEASE = "order_release", _("Return window passed")
    ORDER_REFUND = "order_refund", _("Order refunded")
    EVENT_EARN = "event_earn", _("Activity")
    REDEEM = "redeem", _("Redeemed")
    ADJUST = "adjust", _("Manual adjustment")
    EXPIRE = "expire", _("Expired")


class BatchKind(models.TextChoices):
    AWARD = "award", _("Earning")
    REFUND = "refund", _("Refund reversal")
    RELEASE = "release", _("Release of pending points")
    EXPIRE = "expire", _("Expiry")


class PointsBatch(models.Model):
    """One set-based run that wrote ledger entries (earning, refunds, release, expiry)."""

    kind = models.CharField(_("kind"), max_length=10, choices=BatchKind.choices)
    as_of = models.DateTimeField(_("as of"))
    entries_count = models.PositiveIntegerField(_("entries"), default=0)
    points_total = models.BigIntegerField(_("points"), default=0)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("points batch")
        verbose_name_plural = _("points batches")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"


class PointsEntry(models.Model):
    """One line of the append-only points ledger; never updated, never deleted."""

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="points_entries", db_index=False
    )
    kind = models.CharField(_("kind"), max_length=16, choices=PointsKind.choices)
    bucket = models.CharField(_("bucket"), max_length=10, choices=PointsBucket.choices)
    delta = models.BigIntegerField(_("points"))
    rule = models.ForeignKey(
        PointsRule,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    source_id = models.BigIntegerField(
        _("source"), null=True, blank=True, help_text=_("The order or event this entry is for.")
    )
    idempotency_key = models.CharField(_("idempotency key"), max_length=100, unique=True)
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    earned_on = models.DateField(_("earned on"), null=True, blank=True)
    effective_at = models.DateTimeField(_("effective at"))
    available_at = models.DateTimeField(_("available at"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    batch = models.ForeignKey(
        PointsBatch, null=True, blank=True, on_delete=models.PROTECT, related_name="entries"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("points entry")
        verbose_name_plural = _("points entries")
        ordering = ["-effective_at", "-id"]
        indexes = [
            models.Index(fields=["customer", "effective_at"], name="pointsentry_customer_idx"),
            models.Index(fields=["kind", "source_id"], name="pointsentry_source_idx"),
            models.Index(fields=["effective_at"], name="pointsentry_effective_idx"),
            models.Index(
                fields=["available_at"],
                name="pointsentry_pending_idx",
                condition=Q(kind="order_earn", bucket="pending"),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(bucket__in=["pending", "available"]), name="pointsentry_bucket_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.delta:+d} {self.kind}"
