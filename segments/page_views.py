"""The segment pages: the list, a segment's page (definition, members, size history, refreshes,
where it is used, "why is this customer (not) in it?") and its refresh button."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from segments.charts import figure_data, size_history_figure, sparkline
from segments.models import Segment, SegmentKind, SegmentMember
from segments.page_queries import find_customer, get_segment, list_segment_rows
from segments.queries import list_segment_members, list_segment_refreshes
from segments.rules import RulesInvalid, explain_rules
from segments.services.segments import (
    list_segments_using,
    referenced_segment_ids,
    request_segment_refresh,
    resnapshot_segment,
)
from segments.summary import summarise_rules

VIEW_PERMISSION = "segments.view_segment"
MEMBERS_PAGE_SIZE = 25
REFRESH_ROWS_SHOWN = 20
EXPLAIN_TARGET = "segment-explain-result"


@require_GET
@permission_required(VIEW_PERMISSION, raise_exception=True)
def segment_list(request: HttpRequest) -> HttpResponse:
    rows = [
        {"row": row, "sparkline": sparkline(row.sizes), "last": row.last_refresh}
        for row in list_segment_rows()
    ]
    return render(request, "segments/segment_list.html", {"rows": rows})


def _segment_or_404(segment_id: int) -> Segment:
    segment = get_segment(segment_id)
    if segment is None:
        raise Http404(_("There is no segment %(id)d.") % {"id": segment_id})
    return segment


def _explain(segment: Segment, text: str) -> dict[str, Any]:
    """The explain panel's context for what the operator typed."""
    result: dict[str, Any] = {"explain_query": text}
    if not text.strip():
        return result
    customer, namesakes = find_customer(text)
    if customer is None:
        result["explain_bad_input"] = True
        if namesakes:
            result["explain_error"] = _(
                "%(count)d customers are named %(name)s: type an external id instead."
            ) % {"count": namesakes, "name": text.strip()}
        else:
            result["explain_error"] = _("No customer has the id, external id or name %(text)s.") % {
                "text": text.strip()
            }
        return result
    as_of = timezone.now()
    try:
        tree = explain_rules(
            segment.definition, customer_id=customer.pk, as_of=as_of, segment_id=segment.pk
        )
    except RulesInvalid as invalid:
        result["explain_error"] = "; ".join(str(error) for error in invalid.errors)
        return result
    result.update(
        {
            "explain_customer": customer,
            "explain_tree": tree,
            "explain_as_of": as_of,
            "explain_is_member": SegmentMember.objects.filter(
                segment_id=segment.pk, customer_id=customer.pk
            ).exists(),
        }
    )
    return result


@require_GET
@permission_required(VIEW_PERMISSION, raise_exception=True)
def segment_detail(request: HttpRequest, segment_id: int) -> HttpResponse:
    segment = _segment_or_404(segment_id)
    members = Paginator(list_segment_members(segment.pk), MEMBERS_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    history = list_segment_refreshes(segment.pk)
    referenced = referenced_segment_ids(segment.definition)
    names = dict(Segment.objects.filter(pk__in=referenced).values_list("pk", "name"))
    context: dict[str, Any] = {
        "segment": segment,
        "summary": summarise_rules(segment.definition, segment_names=names),
        "members": members,
        "refreshes": list(reversed(history))[:REFRESH_ROWS_SHOWN],
        "chart": figure_data(size_history_figure(history)) if history else None,
        "used_by": list_segments_using(segment.pk),
        "can_edit": request.user.has_perm("segments.change_segment"),
        "explain_target": EXPLAIN_TARGET,
    }
    context.update(_explain(segment, request.GET.get("customer", "")))
    status = 400 if context.get("explain_bad_input") else 200
    return render(request, "segments/segment_detail.html", context, status=status)


@require_GET
@permission_required(VIEW_PERMISSION, raise_exception=True)
def segment_explain(request: HttpRequest, segment_id: int) -> HttpResponse:
    """The explain panel's result alone, for htmx; a plain request gets the whole page."""
    if request.headers.get("HX-Request") != "true":
        return segment_detail(request, segment_id)
    segment = _segment_or_404(segment_id)
    context: dict[str, Any] = {"segment": segment, "explain_target": EXPLAIN_TARGET}
    context.update(_explain(segment, request.GET.get("customer", "")))
    # htmx swaps a 422 in (base.html's htmx-config) but not a 400: the same refusal, shown.
    status = 422 if context.get("explain_bad_input") else 200
    return render(request, "segments/_explain_result.html", context, status=status)


@require_POST
@permission_required(VIEW_PERMISSION, raise_exception=True)
def segment_refresh(request: HttpRequest, segment_id: int) -> HttpResponse:
    """Queue a refresh of a dynamic segment, or a new snapshot of a static one."""
    segment = _segment_or_404(segment_id)
    try:
        if segment.kind == SegmentKind.STATIC and segment.refreshed_at is not None:
            resnapshot_segment(segment_id=segment.pk, actor=request.user)
            messages.success(request, _("A new snapshot is queued."))
        else:
            request_segment_refresh(segment_id=segment.pk, actor=request.user)
            messages.success(request, _("A refresh is queued; the size updates when it is done."))
    except ValidationError as error:  # SegmentIsFrozen among them
        messages.error(request, " ".join(error.messages))
    return redirect("segments:detail", segment_id=segment.pk)
