"""The segments pages: for now the members' CSV export (the builder and the list come later)."""

from __future__ import annotations

import logging

from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.decorators.http import require_GET

from customers.templatetags.customer_contact import can_view_contact
from segments.export import iter_csv_lines, iter_segment_export_rows
from segments.models import Segment

logger = logging.getLogger(__name__)


@require_GET
@permission_required(["segments.view_segment", "customers.view_customer"], raise_exception=True)
def segment_export_csv(request: HttpRequest, segment_id: int) -> StreamingHttpResponse:
    segment = get_object_or_404(Segment, pk=segment_id)
    with_contact = can_view_contact(request.user)
    # Who took a copy of which customers, and whether with their contact details.
    logger.info(
        "segment %s exported by user %s (contact %s)",
        segment.pk,
        request.user.pk,
        "shown" if with_contact else "masked",
    )
    rows = iter_segment_export_rows(segment.pk, can_view_contact=with_contact)
    response = StreamingHttpResponse(iter_csv_lines(rows), content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="segment-{segment.pk}-{stamp}.csv"'
    return response
