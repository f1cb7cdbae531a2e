"""The customer-data core: customers, tags, orders, behaviour events, import runs and API keys."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Gender(models.TextChoices):
    FEMALE = "f", _("Female")
    MALE = "m", _("Male")
    UNKNOWN = "u", _("Unknown")


class AcquisitionChannel(models.TextChoices):
    APP = "app", _("App")
    MINI_PROGRAM = "mini_program", _("Mini program")
    WEB = "web", _("Web")
    STORE = "store", _("Store")
    OTHER = "other", _("Other")


class Customer(models.Model):
    external_id = models.CharField(_("external id"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=100, blank=True)
    phone = models.CharField(_("phone"), max_length=20, blank=True, help_text=_("E.164"))
    email = models.EmailField(_("e-mail"), max_length=254, blank=True)
    wechat_openid = models.CharField(_("WeChat openid"), max_length=64, blank=True)
    gender = models.CharField(
        _("gender"), max_length=1, choices=Gender.choices, default=Gender.UNKNOWN
    )
    birth_date = models.DateField(_("birth date"), null=True, blank=True)
    city = models.CharField(_("city"), max_length=50, blank=True)
    channel = models.CharField(
        _("channel"),
        max_length=20,
        choices=AcquisitionChannel.choices,
        default=AcquisitionChannel.OTHER,
    )
    registered_at = models.DateTimeField(_("registered at"))
    last_seen_at = models.DateTimeField(_("last seen at"), null=True, blank=True)
    sms_opt_in = models.BooleanField(_("SMS opt-in"), default=True)
    email_opt_in = models.BooleanField(_("e-mail opt-in"), default=True)
    push_opt_in = models.BooleanField(_("push opt-in"), default=True)
    wechat_opt_in = models.BooleanField(_("WeChat opt-in"), default=True)
    unsubscribed_at = models.DateTimeField(_("unsubscribed at"), null=True, blank=True)
    attributes = models.JSONField(_("attributes"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        permissions = [("view_customer_contact", _("Can view customer phone and e-mail"))]
        indexes = [
            models.Index(fields=["registered_at"], name="customer_registered_idx"),
            models.Index(fields=["city", "registered_at"], name="customer_city_idx"),
            models.Index(fields=["channel", "registered_at"], name="customer_channel_idx"),
            models.Index(fields=["phone"], name="customer_phone_idx"),
            models.Index(fields=["name"], name="customer_name_idx"),
        ]

    def __str__(self) -> str:
        return self.name or self.external_id


class TagSource(models.TextChoices):
    MANUAL = "manual", _("Manual")
    IMPORT = "import", _("Import")
    RULE = "rule", _("Rule")


class Tag(models.Model):
    name = models.CharField(_("name"), max_length=64, unique=True)
    description = models.CharField(_("description"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CustomerTag(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="customer_tags")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="customer_tags")
    source = models.CharField(
        _("source"), max_length=10, choices=TagSource.choices, default=TagSource.MANUAL
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("customer tag")
        verbose_name_plural = _("customer tags")
        constraints = [
            models.UniqueConstraint(fields=["customer", "tag"], name="customertag_unique"),
        ]
        indexes = [models.Index(fields=["tag", "customer"], name="customertag_tag_idx")]

    def __str__(self) -> str:
        return f"{self.customer_id}:{self.tag_id}"


class OrderStatus(models.TextChoices):
    PAID = "paid", _("Paid")
    REFUNDED = "refunded", _("Refunded")


class Order(models.Model):
    external_id = models.CharField(_("order id"), max_length=64)
    # No index of its own: (customer, placed_at) serves every lookup by customer, and each index
    # less is one less write per imported row (see bench/import_orders).
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="orders", db_index=False
    )
    placed_at = models.DateTimeField(_("placed at"))
    amount = models.DecimalField(_("amount (yuan)"), max_digits=12, decimal_places=2)
    status = models.CharField(
        _("status"), max_length=10, choices=OrderStatus.choices, default=OrderStatus.PAID
    )
    channel = models.CharField(_("channel"), max_length=20, blank=True)
    category = models.CharField(_("category"), max_length=32, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        constraints = [
            # A constraint, not unique=True: on PostgreSQL unique=True adds a second
            # varchar_pattern_ops index for LIKE that no query here uses.
            models.UniqueConstraint(fields=["external_id"], name="order_external_id_unique"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="order_amount_not_negative"),
        ]
        indexes = [
            models.Index(fields=["customer", "placed_at"], name="order_customer_placed_idx"),
            models.Index(fields=["placed_at"], name="order_placed_idx"),
        ]

    def __str__(self) -> str:
        return self.external_id


class Event(models.Model):
    event_id = models.CharField(_("event id"), max_length=64)
    # Indexed by (customer, occurred_at) below; see Order.customer.
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    name = models.CharField(_("name"), max_length=64)
    occurred_at = models.DateTimeField(_("occurred at"))
    properties = models.JSONField(_("properties"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        constraints = [
            models.UniqueConstraint(fields=["event_id"], name="event_event_id_unique"),
        ]
        indexes = [
            models.Index(fields=["customer", "occurred_at"], name="event_customer_occurred_idx"),
            models.Index(fields=["name", "occurred_at"], name="event_name_occurred_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name}@{self.occurred_at:%Y-%m-%d %H:%M}"


class ImportKind(models.TextChoices):
    CUSTOMERS = "customers", _("Customers")
    ORDERS = "orders", _("Orders")
    EVENTS = "events", _("Events")


class ImportStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    REJECTED = "rejected", _("Rejected")
    FAILED = "failed", _("Failed")


class ImportRun(models.Model):
    """One CSV import (from the upload page or the CLI) and its report."""

    kind = models.CharField(_("kind"), max_length=10, choices=ImportKind.choices)
    file_name = models.CharField(_("file name"), max_length=255)
    stored_path = models.CharField(_("stored path"), max_length=500, blank=True)
    is_strict = models.BooleanField(_("strict"), default=False)
    create_missing_customers = models.BooleanField(_("create missing customers"), default=False)
    status = models.CharField(
        _("status"), max_length=10, choices=ImportStatus.choices, default=ImportStatus.QUEUED
    )
    rows_total = models.PositiveIntegerField(_("rows read"), default=0)
    rows_imported = models.PositiveIntegerField(_("rows imported"), default=0)
    rows_updated = models.PositiveIntegerField(_("rows updated"), default=0)
    rows_unchanged = models.PositiveIntegerField(_("rows already present"), default=0)
    rows_rejected = models.PositiveIntegerField(_("rows rejected"), default=0)
    # The first errors of the report ({row, column?, reason}); the rest are only counted.
    errors = models.JSONField(_("errors"), default=list, blank=True)
    errors_not_shown = models.PositiveIntegerField(_("errors not shown"), default=0)
    message = models.TextField(_("message"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("import run")
        verbose_name_plural = _("import runs")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.file_name}"

    @property
    def is_finished(self) -> bool:
        return self.status not in {ImportStatus.QUEUED, ImportStatus.RUNNING}


class ApiKey(models.Model):
    """A per-source key for the ingest API; only a SHA-256 digest of the secret is stored."""

    name = models.CharField(_("source name"), max_length=100, unique=True)
    prefix = models.CharField(_("prefix"), max_length=12, unique=True)
    digest = models.CharField(_("digest"), max_length=64, unique=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class ValueTier(models.TextChoices):
    HIGH = "high", _("High value")
    POTENTIAL = "potential", _("Potential")
    LOW = "low", _("Low value")
    UNCLASSIFIED = "unclassified", _("Unclassified")


class LifecycleStage(models.TextChoices):
    NEW = "new", _("New")
    ACTIVE = "active", _("Active")
    SILENT = "silent", _("Silent")
    LAPSED = "lapsed", _("Lapsed")
    PROSPECT = "prospect", _("Prospect")


class SilentLevel(models.TextChoices):
    LIGHT = "light", _("Lightly silent")
    MEDIUM = "medium", _("Medium silent")
    HEAVY = "heavy", _("Heavily silent")


class CustomerMetrics(models.Model):
    """One row per customer, written only by customers.metrics.recompute_metrics (set-based SQL).

    Definitions live in that module's docstring. silent_level is "" unless lifecycle_stage is
    "silent"; the RFM scores are null for customers without a paid order.
    """

    customer = models.OneToOneField(
        Customer, on_delete=models.CASCADE, primary_key=True, related_name="metrics"
    )
    orders_count = models.IntegerField(_("paid orders"), default=0)
    spend_total = models.DecimalField(
        _("total spend (yuan)"), max_digits=14, decimal_places=2, default=0
    )
    first_order_at = models.DateTimeField(_("first order at"), null=True, blank=True)
    last_order_at = models.DateTimeField(_("last order at"), null=True, blank=True)
    days_since_last_order = models.IntegerField(_("days since last order"), null=True, blank=True)
    orders_30d = models.IntegerField(_("orders in 30 days"), default=0)
    spend_30d = models.DecimalField(
        _("spend in 30 days (yuan)"), max_digits=14, decimal_places=2, default=0
    )
    orders_90d = models.IntegerField(_("orders in 90 days"), default=0)
    spend_90d = models.DecimalField(
        _("spend in 90 days (yuan)"), max_digits=14, decimal_places=2, default=0
    )
    orders_180d = models.IntegerField(_("orders in 180 days"), default=0)
    spend_180d = models.DecimalField(
        _("spend in 180 days (yuan)"), max_digits=14, decimal_places=2, default=0
    )
    orders_365d = models.IntegerField(_("orders in 365 days"), default=0)
    spend_365d = models.DecimalField(
        _("spend in 365 days (yuan)"), max_digits=14, decimal_places=2, default=0
    )
    avg_order_value = models.DecimalField(
        _("average order value (yuan)"), max_digits=12, decimal_places=2, null=True, blank=True
    )
    rfm_r = models.PositiveSmallIntegerField(_("RFM recency score"), null=True, blank=True)
    rfm_f = models.PositiveSmallIntegerField(_("RFM frequency score"), null=True, blank=True)
    rfm_m = models.PositiveSmallIntegerField(_("RFM monetary score"), null=True, blank=True)
    value_tier = models.CharField(
        _("value tier"), max_length=12, choices=ValueTier.choices, default=ValueTier.UNCLASSIFIED
    )
    lifecycle_stage = models.CharField(
        _("lifecycle stage"),
        max_length=10,
        choices=LifecycleStage.choices,
        default=LifecycleStage.PROSPECT,
    )
    silent_level = models.CharField(
        _("silent level"), max_length=6, choices=SilentLevel.choices, blank=True, default=""
    )
    last_active_at = models.DateTimeField(_("last active at"), null=True, blank=True)
    computed_as_of = models.DateTimeField(_("computed as of"))

    class Meta:
        verbose_name = _("customer metrics")
        verbose_name_plural = _("customer metrics")
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(rfm_r__isnull=True, rfm_f__isnull=True, rfm_m__isnull=True)
                    | Q(rfm_r__range=(1, 5), rfm_f__range=(1, 5), rfm_m__range=(1, 5))
                ),
                name="metrics_rfm_scores_1_to_5",
            ),
        ]
        # Only what segment filters use: each index is one more write per customer per
        # recompute, and the recompute rewrites every row nightly.
        indexes = [
            models.Index(fields=["lifecycle_stage"], name="metrics_lifecycle_idx"),
            models.Index(fields=["value_tier"], name="metrics_value_tier_idx"),
            models.Index(fields=["last_order_at"], name="metrics_last_order_idx"),
            models.Index(fields=["spend_total"], name="metrics_spend_total_idx"),
            models.Index(fields=["spend_90d"], name="metrics_spend_90d_idx"),
        ]

    def __str__(self) -> str:
        return f"metrics of {self.customer_id}"


class MetricsSettings(models.Model):
    """The value-tier thresholds operators may edit (one row, pk 1), and the RFM breakpoints of
    the last full recompute, which incremental recomputes score touched customers against."""

    high_max_days = models.PositiveIntegerField(
        _("high value: last order within (days)"), default=30
    )
    high_min_orders = models.PositiveIntegerField(_("high value: at least (orders)"), default=3)
    high_min_spend = models.DecimalField(
        _("high value: at least (yuan)"), max_digits=14, decimal_places=2, default=500
    )
    potential_max_days = models.PositiveIntegerField(
        _("potential: last order within (days)"), default=30
    )
    potential_min_orders = models.PositiveIntegerField(_("potential: at least (orders)"), default=1)
    potential_max_orders = models.PositiveIntegerField(_("potential: at most (orders)"), default=2)
    potential_min_spend = models.DecimalField(
        _("potential: at least (yuan)"), max_digits=14, decimal_places=2, default=200
    )
    potential_max_spend = models.DecimalField(
        _("potential: less than (yuan)"), max_digits=14, decimal_places=2, default=500
    )
    low_min_days = models.PositiveIntegerField(
        _("low value: last order at least (days ago)"), default=90
    )
    low_max_orders = models.PositiveIntegerField(_("low value: at most (orders)"), default=1)
    low_max_spend = models.DecimalField(
        _("low value: less than (yuan)"), max_digits=14, decimal_places=2, default=200
    )
    # Written by full recomputes only: {"r": [4 day counts], "f": [...], "m": [...]}.
    rfm_breakpoints = models.JSONField(
        _("RFM breakpoints"), default=dict, blank=True, editable=False
    )
    last_full_run_as_of = models.DateTimeField(
        _("last full recompute as of"), null=True, blank=True, editable=False
    )
    last_full_run_at = models.DateTimeField(
        _("last full recompute finished at"), null=True, blank=True, editable=False
    )
    last_full_run_ms = models.PositiveIntegerField(
        _("last full recompute took (ms)"), null=True, blank=True, editable=False
    )
    last_full_run_customers = models.PositiveIntegerField(
        _("customers in the last full recompute"), default=0, editable=False
    )

    class Meta:
        verbose_name = _("metrics settings")
        verbose_name_plural = _("metrics settings")
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="metrics_settings_singleton"),
        ]

    def __str__(self) -> str:
        return str(_("metrics settings"))
