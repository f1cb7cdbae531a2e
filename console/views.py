"""The shell's pages, composed from the apps: the home dashboard, the customer list (customers
with the loyalty tier) and the customer 360 page (profile, tags, orders, membership, points,
segments and why the customer is or is not in one)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_POST

from customers import views as customer_views
from customers.models import Customer
from customers.queries import (
    customer_exists,
    get_customer,
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
from segments.explain_queries import explain_segment_for_customer, list_customer_segments
from segments.page_queries import get_segment
from segments.rules import RulesInvalid

MEMBERSHIP_TARGET = "customer-membership"  # the id of the membership card on the 360 page
SEGMENT_EXPLAIN_TARGET = "customer-segment-explain"  # the segments card's explain result
SEGMENT_PERMISSION = "segments.view_segment"
MAX_SEGMENT_ID = 2**31 - 1  # a larger "id" names no row and overflows PostgreSQL's integer
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


def _segment_explain_context(
    request: HttpRequest, customer: Customer
) -> tuple[dict[str, Any], int]:
    """The explain result for ?segment=<id> and its status: 400 when the id names no segment."""
    text = request.GET.get("segment", "").strip()
    context: dict[str, Any] = {
        "explain_segment_value": text,
        "segment_explain_target": SEGMENT_EXPLAIN_TARGET,
    }
    if not text:
        context["explain_error"] = _("Choose a segment to explain.")
        context["explain_segment_invalid"] = True
        return context, 400
    if not (text.isascii() and text.isdigit() and int(text) <= MAX_SEGMENT_ID):
        context["explain_error"] = _("Choose a segment from the list.")
        context["explain_segment_invalid"] = True
        return context, 400
    segment = get_segment(int(text))
    if segment is None:
        context["explain_error"] = _("There is no segment %(id)d.") % {"id": int(text)}
        context["explain_segment_invalid"] = True
        return context, 400
    context["explain_segment"] = segment
    try:
        explanation = explain_segment_for_customer(
            segment=segment, customer_id=customer.pk, as_of=timezone.now()
        )
    except RulesInvalid as invalid:
        # The stored rules broke (a segment they refer to was deleted): say so, as the segment
        # page does; the request itself was fine.
        context["explain_error"] = "; ".join(str(error) for error in invalid.errors)
        return context, 200
    context.update(
        {
            "explain_customer": customer,
            "explain_tree": explanation.tree,
            "explain_as_of": explanation.as_of,
            "explain_is_member": explanation.is_member,
        }
    )
    return context, 200


def _segments_context(request: HttpRequest, customer_id: int) -> dict[str, Any]:
    if not request.user.has_perm(SEGMENT_PERMISSION):
        return {"may_view_segments": False}
    segments = list_customer_segments(customer_id)
    return {
        "may_view_segments": True,
        "customer_segments": segments,
        "customer_member_segments": [row for row in segments if row.is_member],
        "segment_explain_target": SEGMENT_EXPLAIN_TARGET,
    }


def _customer_360_response(
    request: HttpRequest,
    customer_id: int,
    *,
    status: int = 200,
    with_explain: bool = False,
    **loyalty: Any,
) -> HttpResponse:
    profile = get_customer_profile(customer_id=customer_id)
    if profile is None:
        raise Http404(_("No customer has the id %(id)s.") % {"id": customer_id})
    explain: dict[str, Any] = {}
    if with_explain:
        explain, status = _segment_explain_context(request, profile.customer)
    context = {
        "customer": profile.customer,
        "profile": profile,
        # The names customers/customer_tags.html expects (customers.views renders it too).
        "customer_id": customer_id,
        "customer_tags": profile.tags,
        "tag_suggestions": list_tag_names(),
        **_loyalty_context(request, customer_id, **loyalty),
        **_segments_context(request, customer_id),
        **explain,
        # Later issues add their parts here: messages (campaigns), from its app's queries.
    }
    return render(request, "console/customer_360.html", context, status=status)


@require_GET
@permission_required("customers.view_customer", raise_exception=True)
def customer_360(request: HttpRequest, customer_id: int) -> HttpResponse:
    """The 360 page; with ?segment=<id>, why the customer is or is not in that segment (the
    segments card's result alone for htmx, the whole page with it otherwise)."""
    if "segment" not in request.GET:
        return _customer_360_response(request, customer_id)
    if not request.user.has_perm(SEGMENT_PERMISSION):
        raise PermissionDenied
    is_partial = (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-Target") == SEGMENT_EXPLAIN_TARGET
    )
    if not is_partial:
        return _customer_360_response(request, customer_id, with_explain=True)
    customer = get_customer(customer_id=customer_id)
    if customer is None:
        raise Http404(_("No customer has the id %(id)s.") % {"id": customer_id})
    context, status = _segment_explain_context(request, customer)
    # htmx swaps a 422 in (base.html's htmx-config) but not a 400: the same refusal, shown.
    return render(
        request, "console/_segment_explain.html", context, status=422 if status == 400 else status
    )


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
