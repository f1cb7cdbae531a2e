"""RQ entry points of the customers app: thin, taking ids, safe to run twice."""

from __future__ import annotations

from customers.ingest.runs import run_import

# The name console.queues.IMPORTS gives the queue; spelled out because customers, the bottom
# layer, cannot import console (tests/customers/test_import_views.py checks they agree).
IMPORTS_QUEUE = "imports"


def run_import_job(import_run_id: int) -> None:
    """Run one queued CSV import; a run that already finished is left alone, so a retry is safe."""
    run_import(import_run_id=import_run_id)
