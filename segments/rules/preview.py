"""A preview of a rule tree: how many customers it matches now (or as of a time) and a few of
them, with the time the database took. Shared by the API and the segment_preview command."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from customers.models import Customer
from segments.rules.compiler import check_as_of, compile_rules

SAMPLE_SIZE = 5
MIN_AS_OF_YEAR = 1900
MAX_AS_OF_YEAR = 2999
EXAMPLE = {"example": "2025-06-15T12:00:00+08:00"}


@dataclass(frozen=True)
class Preview:
    count: int
    sample: list[Customer]
    sql_ms: float
    as_of: dt.datetime
    sql: str
    params: tuple[Any, ...]


def parse_as_of(text: object) -> dt.datetime:
    """An ISO 8601 date or datetime; without an offset it is read in settings.TIME_ZONE.

    Raises ValueError with a message fit to show.
    """
    if not isinstance(text, str):
        raise ValueError(_("as_of must be an ISO 8601 date and time, e.g. %(example)s.") % EXAMPLE)
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            _("as_of %(value)s is not an ISO 8601 date and time, e.g. %(example)s.")
            % {"value": repr(text[:40]), **EXAMPLE}
        ) from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_default_timezone())
    if not MIN_AS_OF_YEAR <= moment.year <= MAX_AS_OF_YEAR:
        raise ValueError(
            _("as_of must be between the years %(min)d and %(max)d.")
            % {"min": MIN_AS_OF_YEAR, "max": MAX_AS_OF_YEAR}
        )
    return moment


def preview_rules(
    tree: Any, *, as_of: dt.datetime | None = None, sample_size: int = SAMPLE_SIZE
) -> Preview:
    """Count the customers the tree matches and fetch the first few (by id).

    Raises RulesInvalid for a bad tree.
    """
    as_of = check_as_of(as_of or timezone.now())
    queryset = compile_rules(tree, as_of=as_of)
    started = time.perf_counter()
    count = queryset.count()
    sample = (
        list(
            queryset.order_by("pk").only("pk", "external_id", "name", "city", "phone")[:sample_size]
        )
        if count
        else []
    )
    sql_ms = round((time.perf_counter() - started) * 1000, 1)
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    return Preview(
        count=count,
        sample=sample,
        sql_ms=sql_ms,
        as_of=timezone.localtime(as_of, timezone.get_default_timezone()),
        sql=sql,
        params=tuple(params),
    )
