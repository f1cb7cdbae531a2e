from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from customers.ingest.runs import create_import_run, uploads_root
from customers.jobs import prune_import_uploads_job
from customers.models import ImportRun, ImportStatus

DAY = dt.timedelta(days=1)


@pytest.fixture(autouse=True)
def _private_media(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


def stored(name: str, *, status: str, age_days: int, directory: Path | None = None) -> ImportRun:
    folder = directory or uploads_root()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("order_id,customer_id,placed_at,amount\n", encoding="utf-8")
    run = create_import_run(kind="orders", file_name=name, stored_path=path)
    ImportRun.objects.filter(pk=run.pk).update(
        status=status, created_at=timezone.now() - age_days * DAY
    )
    return run


def test_uploads_of_imports_finished_before_the_keep_days_are_deleted_and_reports_stay(
    db: None, settings: Any, tmp_path: Path
) -> None:
    # given
    settings.IMPORT_UPLOAD_KEEP_DAYS = 7
    old_done = stored("old-done.csv", status=ImportStatus.DONE, age_days=8)
    old_failed = stored("old-failed.csv", status=ImportStatus.FAILED, age_days=30)
    recent = stored("recent.csv", status=ImportStatus.DONE, age_days=2)
    running = stored("running.csv", status=ImportStatus.RUNNING, age_days=9)
    # a command-line import records the user's own file: never ours to delete
    own = stored("own.csv", status=ImportStatus.DONE, age_days=9, directory=tmp_path / "home")

    # when
    pruned = prune_import_uploads_job()

    # then
    assert pruned == 2
    for run, kept in (
        (old_done, False),
        (old_failed, False),
        (recent, True),
        (running, True),
        (own, True),
    ):
        path = Path(run.stored_path)
        run.refresh_from_db()
        assert path.exists() is kept, path.name
        assert (run.stored_path != "") is kept, path.name
    assert ImportRun.objects.count() == 5  # every report stays


def test_pruning_twice_deletes_nothing_more_and_a_missing_file_is_no_error(db: None) -> None:
    # given
    run = stored("gone.csv", status=ImportStatus.DONE, age_days=10)
    Path(run.stored_path).unlink()

    # when
    first = prune_import_uploads_job(keep_days=7)
    second = prune_import_uploads_job(keep_days=7)

    # then
    assert (first, second) == (1, 0)
