"""The shell's pages, composed from the apps: the home dashboard, the customer list (customers
with the loyalty tier) and the customer 360 page (profile, tags, orders, membership, points)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_POST

from customers import views as customer_views
from customers.queries import (
    customer_exists,
    get_customer_profile,
    get_dashboard_figures,
    list_tag_names,
)
from loyalty.filters import MemberFilterSet
from loyalty.forms import PointsAdjustForm, PointsRedeemForm, new_idempotency_key
from loyalty.queries import (
    POINTS_ENTRIES_SHOWN,
    get_membership,
    list_points_entries,
    list_tier_changes,
)
from loyalty.services.ledger import current_settings, points_to_yuan
from loyalty.services.points import (
    ADJUST_PERMISSION,
    InsufficientPoints,
    adjust_points,
    redeem_points,
)

MEMBERSHIP_TARGET = "customer-membership"  # the id of the membership card on the 360 page
_KEY = re.compile(r"^[0-9a-f]{32}\Z")


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    figures = get_dashboard_figures(now=timezone.now())
    return render(request, "console/home.html", {"figures": figures})


# --- the customer list -------------------------------------------------------------------------

# The columns loyalty adds to the list; loyalty/customer_list_cells.html renders their cells.
LIST_EXTRA_COLUMNS = [("tier", gettext_lazy("Tier"))]


def customer_list(request: HttpRequest) -> HttpResponse:
    """The customers app's list with the member's tier: a column and a filter."""
    return customer_views.customer_list(
        request,
        filterset_class=MemberFilterSet,
        extra_columns=LIST_EXTRA_COLUMNS,
        extra_cells_template="loyalty/customer_list_cells.html",
    )


# --- the customer 360 page ---------------------------------------------------------------------


def _loyalty_context(
    request: HttpRequest,
    customer_id: int,
    *,
    adjust_form: PointsAdjustForm | None = None,
    redeem_form: PointsRedeemForm | None = None,
    done: str = "",
) -> dict[str, Any]:
    membership = get_membership(customer_id)
    loyalty_settings = current_settings()
    grace_ends_at: dt.datetime | None = None
    if membership is not None and membership.below_tier_since is not None:
        grace_ends_at = membership.below_tier_since + dt.timedelta(
            days=loyalty_settings.downgrade_grace_days
        )
    may_change_points = membership is not None and request.user.has_perm(ADJUST_PERMISSION)
    if may_change_points:
        adjust_form = adjust_form or PointsAdjustForm(initial={"key": new_idempotency_key()})
        redeem_form = redeem_form or PointsRedeemForm(initial={"key": new_idempotency_key()})
    return {
        "customer_id": customer_id,
        "membership": membership,
        "grace_ends_at": grace_ends_at,
        "balance_yuan": (
            points_to_yuan(membership.points_balance, loyalty_settings)
            if membership is not None
            else None
        ),
        "points_per_yuan": loyalty_settings.points_per_yuan,
        "may_change_points": may_change_points,
        "adjust_form": adjust_form,
        "redeem_form": redeem_form,
        "points_done": done,
        "membership_target": MEMBERSHIP_TARGET,
        "points_entries": list_points_entries(customer_id),
        "points_entries_limit": POINTS_ENTRIES_SHOWN,
        "tier_changes": list_tier_changes(customer_id),
    }


def _customer_360_response(
    request: HttpRequest, customer_id: int, *, status: int = 200, **loyalty: Any
) -> HttpResponse:
    profile = get_customer_profile(customer_id=customer_id)
    if profile is None:
        raise Http404(_("No customer has the id %(id)s.") % {"id": customer_id})
    context = {
        "customer": profile.customer,
        "profile": profile,
        # The names customers/customer_tags.html expects (customers.views renders it too).
        "customer_id": customer_id,
        "customer_tags": profile.tags,
        "tag_suggestions": list_tag_names(),
        **_loyalty_context(request, customer_id, **loyalty),
        # Later issues add their parts here: segments and messages (campaigns), each from its
        # app's queries.
    }
    return render(request, "console/customer_360.html", context, status=status)


@require_GET
@permission_required("customers.view_customer", raise_exception=True)
def customer_360(request: HttpRequest, customer_id: int) -> HttpResponse:
    return _customer_360_response(request, customer_id)


def _is_membership_partial(request: HttpRequest) -> bool:
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-Target") == MEMBERSHIP_TARGET
    )


def _key(form: PointsAdjustForm | PointsRedeemForm, prefix: str) -> str | None:
    # The key the form was rendered with: a double submit writes one entry, not two.
    key = form.cleaned_data.get("key") or ""
    return f"{prefix}:{key}" if _KEY.match(key) else None


def _add_service_error(
    form: PointsAdjustForm | PointsRedeemForm, error: ValidationError, points_field: str
) -> None:
    if isinstance(error, InsufficientPoints) or not hasattr(error, "error_dict"):
        for problem in error.messages:
            form.add_error(points_field if isinstance(error, InsufficientPoints) else None, problem)
        return
    for field, problems in error.message_dict.items():
        target = field if field in form.fields and field != "key" else None
        for problem in problems:
            form.add_error(target, problem)


def _points_response(
    request: HttpRequest,
    customer_id: int,
    *,
    done: str,
    adjust_form: PointsAdjustForm | None = None,
    redeem_form: PointsRedeemForm | None = None,
) -> HttpResponse:
    """After an adjustment or a redemption: the membership card (htmx) or the page.

    done: the success message; empty when the form (with its errors) goes back to the user.
    """
    if done:
        adjust_form = redeem_form = None  # fresh, empty forms for the next one
    if _is_membership_partial(request):
        context = _loyalty_context(
            request, customer_id, done=done, adjust_form=adjust_form, redeem_form=redeem_form
        )
        # On success the ledger changed too; it comes along out of band.
        return render(
            request,
            "loyalty/membership_card.html",
            {**context, "with_ledger": bool(done)},
            status=200 if done else 422,
        )
    if done:
        messages.success(request, done)
        return redirect("customer_360", customer_id=customer_id)
    return _customer_360_response(
        request, customer_id, status=422, adjust_form=adjust_form, redeem_form=redeem_form
    )


def _require_customer(customer_id: int) -> None:
    if not customer_exists(customer_id=customer_id):
        raise Http404(_("No customer has the id %(id)s.") % {"id": customer_id})


@require_POST
@permission_required(ADJUST_PERMISSION, raise_exception=True)
def customer_points_adjust(request: HttpRequest, customer_id: int) -> HttpResponse:
    _require_customer(customer_id)
    form = PointsAdjustForm(data=request.POST)
    done = ""
    if form.is_valid():
        delta = form.cleaned_data["delta"]
        try:
            adjust_points(
                customer_id=customer_id,
                delta=delta,
                reason=form.cleaned_data["reason"],
                actor=request.user,
                idempotency_key=_key(form, "adjust"),
            )
        except ValidationError as error:
            _add_service_error(form, error, "delta")
        else:
            done = (
                ngettext("Added %(count)d point.", "Added %(count)d points.", delta)
                if delta > 0
                else ngettext("Took away %(count)d point.", "Took away %(count)d points.", -delta)
            ) % {"count": abs(delta)}
    return _points_response(request, customer_id, done=done, adjust_form=form)


@require_POST
@permission_required(ADJUST_PERMISSION, raise_exception=True)
def customer_points_redeem(request: HttpRequest, customer_id: int) -> HttpResponse:
    _require_customer(customer_id)
    form = PointsRedeemForm(data=request.POST)
    done = ""
    if form.is_valid():
        try:
            redemption = redeem_points(
                customer_id=customer_id,
                points=form.cleaned_data["points"],
                reason=form.cleaned_data["reason"],
                actor=request.user,
                idempotency_key=_key(form, "redeem"),
            )
        except ValidationError as error:
            _add_service_error(form, error, "points")
        else:
            done = ngettext(
                "Redeemed %(count)d point, worth ¥%(yuan)s.",
                "Redeemed %(count)d points, worth ¥%(yuan)s.",
                redemption.points,
            ) % {
                "count": redemption.points,
                "yuan": number_format(redemption.yuan, decimal_pos=2, force_grouping=True),
            }
    return _points_response(request, customer_id, done=done, redeem_form=form)
