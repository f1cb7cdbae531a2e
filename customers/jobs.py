"""RQ entry points of the customers app: thin, taking ids, safe to run twice."""

from __future__ import annotations

import datetime as dt
import logging
from types import TracebackType
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.translation import ngettext
from rq.exceptions import AbandonedJobError
from rq.job import Job

from customers.ingest.runs import fail_unfinished_import_run, prune_import_uploads, run_import
from customers.metrics import recompute_metrics

logger = logging.getLogger(__name__)

# The name console.queues.IMPORTS gives the queue; spelled out because customers, the bottom
# layer, cannot import console (tests/customers/test_import_views.py checks they agree).
IMPORTS_QUEUE = "imports"


# An import whose worker died (SIGKILL, OOM, host restart) is run again from the start this many
# times: the import is idempotent, so a re-run only writes the rows the dead one had not.
IMPORT_RETRIES = 2
# job.meta key holding the retries the job was enqueued with, to count its tries in the message.
IMPORT_RETRIES_META = "import_retries"


def import_job_id(import_run_id: int) -> str:
    return f"import-{import_run_id}"


def run_import_job(import_run_id: int) -> None:
    """Run one queued CSV import; a run that already finished is left alone, so a retry is safe."""
    run_import(import_run_id=import_run_id)


def worker_stopped_message(tries: int) -> str:
    return ngettext(
        "The worker stopped during this import; it was tried %(tries)d time. Upload the file "
        "again: rows already imported are not imported twice.",
        "The worker stopped during this import; it was tried %(tries)d times. Upload the file "
        "again: rows already imported are not imported twice.",
        tries,
    ) % {"tries": tries}


def _tries(job: Job) -> int:
    retries = int(job.meta.get(IMPORT_RETRIES_META, 0))
    return retries - (job.retries_left or 0) + 1


def fail_import_run_on_failure(
    job: Job,
    connection: object,
    exc_type: type[BaseException] | None,
    exc_value: BaseException | None,
    traceback: TracebackType | object | None,
) -> None:
    """on_failure callback of run_import_job: a run whose last try failed is marked FAILED.

    RQ calls it in the work horse when the job raised, and in StartedJobRegistry.cleanup when the
    job was abandoned (its worker died), before it decides on a retry: while retries are left the
    run stays as it is. run_import records its own errors, so this only fills in a run left queued
    or running. It never raises: in cleanup that would abort the handling of every other
    abandoned job.
    """
    try:
        if job.retries_left:
            return
        import_run_id = int(job.kwargs["import_run_id"])
        if exc_type is not None and issubclass(exc_type, AbandonedJobError):
            message = worker_stopped_message(_tries(job))
        else:
            message = f"{getattr(exc_type, '__name__', 'Error')}: {exc_value}"
        if fail_unfinished_import_run(import_run_id=import_run_id, message=message):
            logger.warning("import run %s failed for good: %s", import_run_id, message)
    except Exception:
        logger.exception("could not mark the import run of job %s failed", job.id)


def finish_import_run_job(import_run_id: int, tries: int) -> None:
    """Runs once the import job ended for good, even failed: a run it left unfinished is FAILED.

    It covers the case the on_failure callback does not see: the worker survived but its work
    horse was killed (the OOM killer picks the horse) on the last try, so RQ moved the job to the
    failed registry without a callback. After a finished import it does nothing.
    """
    if fail_unfinished_import_run(
        import_run_id=import_run_id, message=worker_stopped_message(tries)
    ):
        logger.warning("import run %s was left unfinished by its worker", import_run_id)


def prune_import_uploads_job(keep_days: int | None = None) -> int:
    """Delete uploaded CSVs of imports finished more than IMPORT_UPLOAD_KEEP_DAYS days ago."""
    days = settings.IMPORT_UPLOAD_KEEP_DAYS if keep_days is None else keep_days
    return prune_import_uploads(before=timezone.now() - dt.timedelta(days=days))


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
