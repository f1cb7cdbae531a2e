"""A preview of a rule tree: how many customers it matches now (or as of a time) and a few of
them, with the time the database took. Shared by the API and the segment_preview command."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import OperationalError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from customers.models import Customer
from segments.rules.compiler import check_as_of, compile_rules

SAMPLE_SIZE = 5
MIN_AS_OF_YEAR = 1900
MAX_AS_OF_YEAR = 2999
EXAMPLE = {"example": "2025-06-15T12:00:00+08:00"}


# SQLite calls the progress handler every this many virtual-machine instructions.
SQLITE_PROGRESS_STEPS = 10_000
POSTGRES_QUERY_CANCELED = "57014"


class PreviewTimedOut(Exception):
    """The preview's query ran past its time limit and was stopped; nothing was counted."""

    def __init__(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        super().__init__(
            _(
                "Counting took longer than %(seconds)s s and was stopped. Narrow the rules: a "
                "shorter event window, fewer event conditions, or a condition on metrics first."
            )
            % {"seconds": f"{timeout_ms / 1000:g}"}
        )


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
    tree: Any,
    *,
    as_of: dt.datetime | None = None,
    sample_size: int = SAMPLE_SIZE,
    timeout_ms: int | None = None,
) -> Preview:
    """Count the customers the tree matches and fetch the first few (by id).

    Raises RulesInvalid for a bad tree, PreviewTimedOut when timeout_ms (None or 0: no limit)
    passed before the database answered.
    """
    as_of = check_as_of(as_of or timezone.now())
    queryset = compile_rules(tree, as_of=as_of)
    started = time.perf_counter()
    with _time_limit(timeout_ms):
        count = queryset.count()
        sample = (
            list(
                queryset.order_by("pk").only("pk", "external_id", "name", "city", "phone")[
                    :sample_size
                ]
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


@contextmanager
def _time_limit(timeout_ms: int | None) -> Iterator[None]:
    """Stop the queries inside after timeout_ms: PostgreSQL's statement_timeout for this
    transaction only, SQLite's progress handler, which interrupts the running statement."""
    if not timeout_ms:
        yield
        return
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT set_config('statement_timeout', %s, true)", [str(timeout_ms)]
                    )
                yield
            elif connection.vendor == "sqlite":
                deadline = time.monotonic() + timeout_ms / 1000
                raw = connection.connection
                raw.set_progress_handler(lambda: time.monotonic() > deadline, SQLITE_PROGRESS_STEPS)
                try:
                    yield
                finally:
                    raw.set_progress_handler(None, 0)
            else:
                yield
    except OperationalError as error:
        cause = error.__cause__
        if getattr(cause, "sqlstate", None) == POSTGRES_QUERY_CANCELED or "interrupted" in str(
            error
        ):
            raise PreviewTimedOut(timeout_ms) from error
        raise
