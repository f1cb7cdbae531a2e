"""CSV imports started from the upload page: check and store the upload, then queue its run.

The file is stored under MEDIA_ROOT/imports and imported by an RQ worker on the imports queue, so
a worker on another host needs MEDIA_ROOT on shared storage.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import django_rq
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from rq import Callback, Retry
from rq.job import Dependency

from customers.ingest.rows import SCHEMAS
from customers.ingest.runs import create_import_run, uploads_root
from customers.jobs import (
    IMPORT_RETRIES,
    IMPORT_RETRIES_META,
    IMPORTS_QUEUE,
    fail_import_run_on_failure,
    finish_import_run_job,
    import_job_id,
    run_import_job,
)
from customers.models import ImportKind, ImportRun

logger = logging.getLogger(__name__)

IMPORT_PERMISSION = "customers.add_importrun"
# Larger exports are split by the shop's tooling anyway; 200 MB is ~1.5 million order rows and
# imports in a few minutes. settings.IMPORT_MAX_UPLOAD_BYTES overrides it.
DEFAULT_MAX_UPLOAD_BYTES = 200 * 1024 * 1024
RECENT_RUNS = 50
FILE_NAME_MAX_LENGTH: int = ImportRun._meta.get_field("file_name").max_length or 255


def max_upload_bytes() -> int:
    return int(getattr(settings, "IMPORT_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES))


def too_large_error() -> ValidationError:
    megabytes = max_upload_bytes() / (1024 * 1024)
    return ValidationError(
        _("The file is larger than %(limit)s MB: split it into smaller files.")
        % {"limit": f"{megabytes:g}"},
        code="too_large",
    )


def check_upload(uploaded_file: UploadedFile | None) -> UploadedFile:
    """The upload if it can be imported; raises ValidationError naming what is wrong with it."""
    if uploaded_file is None:
        raise ValidationError(_("Choose a CSV file to upload."), code="required")
    name = uploaded_file.name or ""
    if not name.lower().endswith(".csv"):
        raise ValidationError(
            _("“%(name)s” is not a .csv file: save the sheet as CSV (UTF-8) and upload that.")
            % {"name": name},
            code="extension",
        )
    if not uploaded_file.size:
        raise ValidationError(_("“%(name)s” is empty.") % {"name": name}, code="empty")
    if uploaded_file.size > max_upload_bytes():
        raise too_large_error()
    return uploaded_file


def _storage() -> FileSystemStorage:
    return FileSystemStorage(location=uploads_root())


def _store_upload(uploaded_file: UploadedFile) -> Path:
    # A name of our own: the user's file name is only shown, never used as a path.
    name = f"{timezone.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex}.csv"
    storage = _storage()
    # FileSystemStorage moves the upload's temporary file or copies it chunk by chunk.
    saved = storage.save(name, uploaded_file)
    return Path(storage.path(saved))


def _enqueue_import(import_run_id: int) -> None:
    # Called from on_commit already: "auto" enqueues now rather than deferring a second time.
    queue = django_rq.get_queue(IMPORTS_QUEUE, commit_mode="auto")
    # One job id per run, so a run's job can be found from the run. A live worker's maintenance
    # finds the job of a dead worker, calls on_failure and re-queues it while retries are left.
    job = queue.enqueue(
        run_import_job,
        import_run_id=import_run_id,
        job_id=import_job_id(import_run_id),
        retry=Retry(max=IMPORT_RETRIES),
        on_failure=Callback(fail_import_run_on_failure),
        meta={IMPORT_RETRIES_META: IMPORT_RETRIES},
    )
    # Runs when the import job has ended for good, failed included, for the death the callback
    # does not see (a work horse killed on the last try while its worker lived on).
    queue.enqueue(
        finish_import_run_job,
        import_run_id=import_run_id,
        tries=IMPORT_RETRIES + 1,
        job_id=f"{job.id}-finish",
        depends_on=Dependency(jobs=[job], allow_failure=True),
    )


@transaction.atomic
def start_import(
    *,
    kind: str,
    uploaded_file: UploadedFile,
    is_strict: bool,
    create_missing_customers: bool,
    actor: User,
) -> ImportRun:
    """Store the upload and create its queued ImportRun; its job is enqueued once this commits.

    Raises PermissionDenied (needs customers.add_importrun) or ValidationError (a bad upload or
    kind). create_missing_customers only applies to orders.
    """
    if not actor.has_perm(IMPORT_PERMISSION):
        raise PermissionDenied(_("You may not import files."))
    if kind not in ImportKind.values:
        raise ValidationError(_("Unknown import kind “%(kind)s”.") % {"kind": kind}, code="kind")
    check_upload(uploaded_file)
    path = _store_upload(uploaded_file)
    try:
        run = create_import_run(
            kind=kind,
            file_name=(uploaded_file.name or path.name)[:FILE_NAME_MAX_LENGTH],
            stored_path=path,
            is_strict=is_strict,
            create_missing_customers=create_missing_customers,
            created_by=actor,
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    transaction.on_commit(partial(_enqueue_import, run.pk))
    logger.info("import run %s (%s, %s) queued by user %s", run.pk, kind, path.name, actor.pk)
    return run


# Reads of the upload page.


@dataclass(frozen=True)
class KindColumns:
    kind: str
    label: str
    required: tuple[str, ...]
    optional: tuple[str, ...]


def list_kind_columns() -> list[KindColumns]:
    """The columns each kind of file may have, from the importer's own schemas."""
    result = []
    for kind, label in ImportKind.choices:
        schema = SCHEMAS[kind]
        result.append(
            KindColumns(
                kind=kind,
                label=str(label),
                required=schema.required_names,
                optional=tuple(n for n in schema.names if n not in schema.required_names),
            )
        )
    return result


def get_import_run(*, import_run_id: int) -> ImportRun | None:
    return ImportRun.objects.select_related("created_by").filter(pk=import_run_id).first()
