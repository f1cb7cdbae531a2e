"""Tell the apps above customers that orders, events or customers arrived.

customers is the bottom layer and may not import loyalty or segments, so the follow-up work
(memberships and points, segment freshness) is named in settings.INGEST_LISTENERS as dotted paths
of callables `listener(kind: str, customer_ids: frozenset[int] | None) -> None`. None means
"some customers, not listed" (a strict import, which commits everything at the end). Listeners
run after the writing transaction commits and should only enqueue jobs: they must be quick.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import cache, partial

from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

Listener = Callable[[str, frozenset[int] | None], None]


@cache
def _listeners(paths: tuple[str, ...]) -> tuple[Listener, ...]:
    return tuple(import_string(path) for path in paths)


def notify_ingested(*, kind: str, customer_ids: Iterable[int] | None) -> None:
    """Call every listener once the current transaction commits (at once outside one)."""
    ids = frozenset(customer_ids) if customer_ids is not None else None
    if ids is not None and not ids:
        return
    for listener in _listeners(tuple(getattr(settings, "INGEST_LISTENERS", ()))):
        transaction.on_commit(partial(_call, listener, kind, ids))


def _call(listener: Listener, kind: str, ids: frozenset[int] | None) -> None:
    # The rows are committed; a listener that fails (Redis down) must not turn a good import
    # into a failed one. The nightly schedules catch up with whatever it missed.
    try:
        listener(kind, ids)
    except Exception:
        logger.exception("ingest listener %r failed for %s", listener, kind)
