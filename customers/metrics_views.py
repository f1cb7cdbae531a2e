"""The value-tier thresholds page: admins edit and preview them; whoever may view reads them."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from customers.metrics_forms import MetricsSettingsForm, initial_from
from customers.metrics_settings import (
    CHANGE_PERMISSION,
    VIEW_PERMISSION,
    MetricsSettingsOverview,
    get_metrics_settings_overview,
    preview_value_tiers,
    update_metrics_settings,
)
from customers.models import ValueTier

PREVIEW_TARGET = "tier-preview"  # the id of the section the preview fills


def _tier_rows(counts: dict[str, int], preview: dict[str, int] | None = None) -> list[Any]:
    return [
        {
            "tier": tier.value,
            "label": tier.label,
            "now": counts.get(tier.value, 0),
            "after": None if preview is None else preview.get(tier.value, 0),
            "change": None
            if preview is None
            else preview.get(tier.value, 0) - counts.get(tier.value, 0),
        }
        for tier in ValueTier
    ]


def _page(
    request: HttpRequest,
    form: MetricsSettingsForm,
    *,
    overview: MetricsSettingsOverview | None = None,
    status: int = 200,
) -> HttpResponse:
    overview = overview or get_metrics_settings_overview()
    context = {
        "overview": overview,
        "tier_rows": _tier_rows(overview.tier_counts),
        "form": form,
        "preview_target": PREVIEW_TARGET,
    }
    return render(request, "customers/metrics_settings.html", context, status=status)


@require_http_methods(["GET", "POST"])
@permission_required(VIEW_PERMISSION, raise_exception=True)
def metrics_settings(request: HttpRequest) -> HttpResponse:
    may_change = request.user.has_perm(CHANGE_PERMISSION)
    if request.method == "POST" and not may_change:
        raise PermissionDenied
    if request.method == "GET":
        overview = get_metrics_settings_overview()
        form = MetricsSettingsForm(
            initial=initial_from(overview.thresholds), is_read_only=not may_change
        )
        return _page(request, form, overview=overview)

    form = MetricsSettingsForm(data=request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        update_metrics_settings(thresholds=form.thresholds(), actor=request.user)
    except ValidationError as error:
        form.add_errors(error.message_dict)
        return _page(request, form, status=400)
    messages.success(request, _("Saved; customers are re-scored in the background."))
    return redirect("customer_metrics:settings")


@require_POST
@permission_required(CHANGE_PERMISSION, raise_exception=True)
def metrics_settings_preview(request: HttpRequest) -> HttpResponse:
    """The tier counts the thresholds typed would give, for htmx; saves nothing."""
    form = MetricsSettingsForm(data=request.POST)
    preview = None
    if form.is_valid():
        try:
            preview = preview_value_tiers(form.thresholds())
        except ValidationError as error:
            form.add_errors(error.message_dict)
    overview = get_metrics_settings_overview()
    context = {
        "errors": form.labelled_errors(),
        "tier_rows": _tier_rows(overview.tier_counts, preview) if preview is not None else [],
        "overview": overview,
        "preview_total": sum(preview.values()) if preview is not None else 0,
        "preview_target": PREVIEW_TARGET,
    }
    # 422: htmx swaps the errors in where the counts would be (see the htmx-config in base.html).
    return render(
        request,
        "customers/metrics_settings_preview.html",
        context,
        status=200 if preview is not None else 422,
    )
