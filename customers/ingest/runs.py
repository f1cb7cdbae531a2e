"""Import runs: every CSV import, from the command line or the upload page, is recorded."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone

from customers.ingest.csv_import import ImportReport, import_file
from customers.ingest.hooks import notify_ingested
from customers.models import ImportKind, ImportRun, ImportStatus

# Where the upload page stores files, under MEDIA_ROOT (customers/imports.py saves them there).
UPLOAD_DIRECTORY = "imports"


def create_import_run(
    *,
    kind: str,
    file_name: str,
    stored_path: str | Path,
    is_strict: bool = False,
    create_missing_customers: bool = False,
    created_by: User | None = None,
) -> ImportRun:
    """A queued ImportRun for a file already on disk."""
    if kind not in ImportKind.values:
        raise ValueError(f"unknown import kind {kind!r}")
    return ImportRun.objects.create(
        kind=kind,
        file_name=file_name,
        stored_path=str(stored_path),
        is_strict=is_strict,
        create_missing_customers=create_missing_customers and kind == ImportKind.ORDERS,
        created_by=created_by,
        status=ImportStatus.QUEUED,
    )


def run_import(*, import_run_id: int) -> ImportRun:
    """Import the run's file and store its report; a run that already finished is left alone.

    Safe to run again after a worker died half-way: the import itself is idempotent.
    """
    run = ImportRun.objects.get(pk=import_run_id)
    if run.is_finished:
        return run
    run.status = ImportStatus.RUNNING
    run.save(update_fields=["status"])
    try:
        report = import_file(
            run.kind,
            run.stored_path,
            is_strict=run.is_strict,
            create_missing_customers=run.create_missing_customers,
            on_chunk_written=lambda ids: notify_ingested(kind=run.kind, customer_ids=ids),
        )
    except Exception as error:
        run.status = ImportStatus.FAILED
        run.message = f"{type(error).__name__}: {error}"[:2000]
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "message", "finished_at"])
        raise
    _store_report(run, report)
    if run.is_strict and report.status == ImportStatus.DONE and report.imported + report.updated:
        # A strict import commits at its end, so its chunks were never announced one by one.
        notify_ingested(kind=run.kind, customer_ids=None)
    return run


def fail_unfinished_import_run(*, import_run_id: int, message: str) -> bool:
    """Mark the run FAILED with message if it is still queued or running; True if it was.

    One conditional UPDATE, so a run that a live worker finishes meanwhile keeps its report.
    """
    updated = ImportRun.objects.filter(
        pk=import_run_id, status__in=[ImportStatus.QUEUED, ImportStatus.RUNNING]
    ).update(status=ImportStatus.FAILED, message=message[:2000], finished_at=timezone.now())
    return updated > 0


def _store_report(run: ImportRun, report: ImportReport) -> None:
    run.status = report.status
    run.rows_total = report.rows_total
    run.rows_imported = report.imported
    run.rows_updated = report.updated
    run.rows_unchanged = report.unchanged
    run.rows_rejected = report.rejected
    run.errors = report.errors
    run.errors_not_shown = report.errors_not_shown
    run.message = report.message
    run.finished_at = timezone.now()
    run.save()


def report_of(run: ImportRun) -> dict[str, Any]:
    """The run's report in the shape the commands print with --json."""
    return {
        "import_run": run.pk,
        "kind": run.kind,
        "status": run.status,
        "rows_total": run.rows_total,
        "imported": run.rows_imported,
        "updated": run.rows_updated,
        "unchanged": run.rows_unchanged,
        "rejected": run.rows_rejected,
        "errors": run.errors,
        "errors_not_shown": run.errors_not_shown,
        "message": run.message,
    }


def uploads_root() -> Path:
    return Path(settings.MEDIA_ROOT) / UPLOAD_DIRECTORY


def prune_import_uploads(*, before: dt.datetime) -> int:
    """Delete the stored files of finished imports created before `before`; returns how many.

    Only files the upload page stored (under uploads_root()) are deleted: a command-line
    import's stored_path is the user's own file. The run and its report stay; stored_path is
    cleared, so a pruned file is never looked for again.
    """
    root = uploads_root().resolve()
    pruned: list[int] = []
    runs = (
        ImportRun.objects.filter(created_at__lt=before)
        .exclude(stored_path="")
        .exclude(status__in=[ImportStatus.QUEUED, ImportStatus.RUNNING])
        .values_list("pk", "stored_path")
    )
    for run_id, stored_path in runs.iterator():
        path = Path(stored_path).resolve()
        if not path.is_relative_to(root):
            continue
        path.unlink(missing_ok=True)
        pruned.append(run_id)
    ImportRun.objects.filter(pk__in=pruned).update(stored_path="")
    return len(pruned)
