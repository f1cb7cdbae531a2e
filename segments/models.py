"""Saved segments, their materialised membership and refresh history, and rule-made tags."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from customers.models import Customer, Tag


class SegmentKind(models.TextChoices):
    DYNAMIC = "dynamic", _("Dynamic")
    STATIC = "static", _("Static")


class Segment(models.Model):
    """A saved rule tree; its members are materialised in SegmentMember by a refresh."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)
    definition = models.JSONField(_("definition"), default=dict)
    kind = models.CharField(
        _("kind"), max_length=10, choices=SegmentKind.choices, default=SegmentKind.DYNAMIC
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="segments",
        verbose_name=_("owner"),
    )
    size = models.PositiveIntegerField(_("size"), default=0)
    # The as-of time of the last successful refresh: the members are right as of this instant.
    refreshed_at = models.DateTimeField(_("refreshed at"), null=True, blank=True)
    # When the schedule refreshes a dynamic segment next. Moved on by every attempt, failed ones
    # too, so that a broken segment is retried once per interval, not once a minute.
    next_refresh_at = models.DateTimeField(_("next refresh at"), null=True, blank=True)
    refresh_interval_minutes = models.PositiveIntegerField(
        _("refresh every (minutes)"),
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(7 * 24 * 60)],
    )
    is_template = models.BooleanField(_("template"), default=False)
    # Stable key of a shipped template, so re-syncing updates it rather than adding a copy.
    template_key = models.CharField(_("template key"), max_length=64, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["template_key"],
                condition=~Q(template_key=""),
                name="segment_template_key_unique",
            ),
        ]
        indexes = [models.Index(fields=["kind", "next_refresh_at"], name="segment_due_idx")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_dynamic(self) -> bool:
        return self.kind == SegmentKind.DYNAMIC


class SegmentMember(models.Model):
    # No index of its own: the unique (segment, customer) index serves every lookup by segment.
    segment = models.ForeignKey(
        Segment, on_delete=models.CASCADE, related_name="members", db_index=False
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="segment_memberships", db_index=False
    )
    joined_at = models.DateTimeField(_("joined at"))

    class Meta:
        verbose_name = _("segment member")
        verbose_name_plural = _("segment members")
        constraints = [
            models.UniqueConstraint(fields=["segment", "customer"], name="segmentmember_unique"),
        ]
        indexes = [models.Index(fields=["customer"], name="segmentmember_customer_idx")]

    def __str__(self) -> str:
        return f"{self.segment_id}:{self.customer_id}"


class SegmentRefresh(models.Model):
    """One refresh of a segment: when, how long, the size after it, who joined and left, or why
    it failed. The rows of one segment are its size history."""

    # Indexed by (segment, started_at) below.
    segment = models.ForeignKey(
        Segment, on_delete=models.CASCADE, related_name="refreshes", db_index=False
    )
    started_at = models.DateTimeField(_("started at"))
    as_of = models.DateTimeField(_("as of"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)
    size = models.PositiveIntegerField(_("size"), default=0)
    joined = models.PositiveIntegerField(_("joined"), default=0)
    left = models.PositiveIntegerField(_("left"), default=0)
    # "full", "customers" (touched customers only) or "snapshot" (static segment frozen).
    scope = models.CharField(_("scope"), max_length=10, default="full")
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("segment refresh")
        verbose_name_plural = _("segment refreshes")
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["segment", "started_at"], name="segmentrefresh_segment_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.segment_id}@{self.started_at:%Y-%m-%d %H:%M}"

    @property
    def is_failed(self) -> bool:
        return bool(self.error)


class TagRule(models.Model):
    """A rule tree that gives its tag (source "rule") to every customer who matches it."""

    tag = models.OneToOneField(
        Tag, on_delete=models.CASCADE, related_name="rule", verbose_name=_("tag")
    )
    definition = models.JSONField(_("definition"), default=dict)
    is_active = models.BooleanField(_("active"), default=True)
    last_applied_at = models.DateTimeField(_("last applied at"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("tag rule")
        verbose_name_plural = _("tag rules")

    def __str__(self) -> str:
        return str(self.tag)
