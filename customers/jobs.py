"""RQ entry points of the customers app: thin, taking ids, safe to run twice."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from customers.ingest.runs import run_import
from customers.metrics import recompute_metrics

# The name console.queues.IMPORTS gives the queue; spelled out because customers, the bottom
# layer, cannot import console (tests/customers/test_import_views.py checks they agree).
IMPORTS_QUEUE = "imports"


def run_import_job(import_run_id: int) -> None:
    """Run one queued CSV import; a run that already finished is left alone, so a retry is safe."""
    run_import(import_run_id=import_run_id)


# Metrics
# The name console.queues.DEFAULT gives the queue (see IMPORTS_QUEUE above). The lead's schedule
# runs it nightly; the after-ingest trigger passes the touched customers.
METRICS_QUEUE = "default"


def recompute_metrics_job(
    as_of_iso: str | None = None, customer_ids: list[int] | None = None
) -> dict[str, Any]:
    """Recompute customer metrics as of as_of_iso (an aware ISO date-time; empty: now).

    Every customer's, or only customer_ids' (scored against the last full run's RFM
    breakpoints). Upserts: a second run writes the same rows.
    """
    as_of = dt.datetime.fromisoformat(as_of_iso) if as_of_iso else timezone.now()
    return recompute_metrics(as_of=as_of, customer_ids=customer_ids).as_json()
