from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from customers.jobs import IMPORT_RETRIES, IMPORTS_QUEUE, import_job_id
from customers.models import ImportRun, ImportStatus, Order
from tests.customers.test_import_views import _csv_file, _read, _report_url, _upload

# Big enough that an import takes a few seconds (four chunks of 10,000 rows), so a worker can be
# killed half-way through it.
ORDER_ROWS = 40_000
CUSTOMERS = 50
WAIT_SECONDS = 120
TRIES = IMPORT_RETRIES + 1
STOPPED_MESSAGE = (
    f"The worker stopped during this import; it was tried {TRIES} times. Upload the file again: "
    "rows already imported are not imported twice."
)

# serialized_rollback like every transactional test here: a plain flush re-creates content types
# under new ids, which the next serialized test then fails to restore. Transactional because the
# worker is another process: it only sees committed rows.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture(autouse=True)
def _english_and_private_media(settings: Any, tmp_path: Path) -> None:
    settings.LANGUAGE_CODE = "en"
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def imports_queue(rq_queues: dict[str, Queue]) -> Iterator[Queue]:
    queue = rq_queues[IMPORTS_QUEUE]
    _forget_import_jobs(queue)
    yield queue
    _forget_import_jobs(queue)


def _forget_import_jobs(queue: Queue) -> None:
    # Job ids are import-<run id>, and run ids repeat from test to test: drop what a killed worker
    # left behind (registries, job hashes) so that no later test inherits it.
    redis = queue.connection
    registries = ["rq:wip", "rq:failed", "rq:finished", "rq:deferred", "rq:scheduled"]
    redis.delete(*(f"{registry}:{queue.name}" for registry in registries))
    for key in redis.scan_iter("rq:job:import-*"):
        redis.delete(key)


@pytest.fixture
def orders_csv(customer_factory: Any) -> str:
    customers = [customer_factory().external_id for _ in range(CUSTOMERS)]
    rows = [
        f"O-{n:06d},{customers[n % CUSTOMERS]},2024-05-01 10:00,{n % 500 + 1}.00,paid"
        for n in range(ORDER_ROWS)
    ]
    return "order_id,customer_id,placed_at,amount,status\n" + "\n".join(rows) + "\n"


def _database_url() -> str:
    database = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{database['NAME']}"
    user, password = (
        quote(database["USER"] or "", safe=""),
        quote(database["PASSWORD"] or "", safe=""),
    )
    return f"postgres://{user}:{password}@{database['HOST']}:{database['PORT']}/{database['NAME']}"


def _start_worker(log: Path) -> subprocess.Popen[bytes]:
    # The test database, not the one DATABASE_URL names for the developer; a session of its own
    # so that killing its process group cannot reach pytest.
    with log.open("ab") as output:
        return subprocess.Popen(
            [
                sys.executable,
                str(Path(settings.BASE_DIR) / "manage.py"),
                "rqworker",
                IMPORTS_QUEUE,
                "--burst",
            ],
            env={
                **os.environ,
                "DATABASE_URL": _database_url(),
                "REDIS_URL": str(settings.REDIS_URL),
                "LANGUAGE_CODE": "en",
            },
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_until(condition: Callable[[], Any], what: str, log: Path) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"gave up waiting for {what}; worker log:\n{log.read_text()}")


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its closing bracket.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            children.append(int(entry.name))
    return children


def _is_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _work_horse_of(worker: subprocess.Popen[bytes], queue: Queue, log: Path) -> int:
    """The pid of the worker's work horse once it has started the import job."""
    job_id = import_job_id(ImportRun.objects.get().pk)

    def started_horse() -> int | None:
        if Job.fetch(job_id, connection=queue.connection).get_status() != JobStatus.STARTED:
            return None
        horses = _children(worker.pid)
        return horses[0] if horses else None

    return int(_wait_until(started_horse, "the work horse to start the import", log))


def _kill_worker_and_its_horse(worker: subprocess.Popen[bytes], horse: int, log: Path) -> None:
    # Like a host going down: the worker gets no chance to notice that its horse died. The horse
    # runs in a process group of its own, so it is killed by its pid.
    os.killpg(worker.pid, signal.SIGKILL)
    os.kill(horse, signal.SIGKILL)
    worker.wait(timeout=WAIT_SECONDS)
    _wait_until(lambda: _is_gone(horse), "the killed work horse to go", log)


def _maintain(queue: Queue) -> None:
    # What a live worker's maintenance does once the dead worker's heartbeat expired (after
    # job_monitoring_interval + 60 s); the timestamp stands in for the wait.
    StartedJobRegistry(queue=queue).cleanup(timestamp=time.time() + 600)


def test_an_import_whose_worker_is_killed_half_way_is_run_again_and_imports_every_row_once(
    admin_client_role: Client, imports_queue: Queue, orders_csv: str, tmp_path: Path
) -> None:
    # given: a worker importing 40,000 orders, killed once some chunks are written
    log = tmp_path / "worker.log"
    response = _upload(admin_client_role, _csv_file(orders_csv))
    run = ImportRun.objects.get()
    worker = _start_worker(log)
    horse = _work_horse_of(worker, imports_queue, log)
    _wait_until(
        lambda: ImportRun.objects.get().status == ImportStatus.RUNNING and Order.objects.exists(),
        "the first orders",
        log,
    )

    # when
    _kill_worker_and_its_horse(worker, horse, log)

    # then: the run is stuck half-way until a live worker's maintenance finds the dead job
    written_before_the_crash = Order.objects.count()
    assert 0 < written_before_the_crash < ORDER_ROWS
    assert ImportRun.objects.get().status == ImportStatus.RUNNING
    assert _read(admin_client_role.get(response["Location"])).texts["import-status"] == "Running"

    # when
    _maintain(imports_queue)

    # then: re-queued, not failed
    assert imports_queue.job_ids == [import_job_id(run.pk)]
    assert ImportRun.objects.get().status == ImportStatus.RUNNING

    # when
    second = _start_worker(log)
    assert second.wait(timeout=WAIT_SECONDS) == 0, log.read_text()

    # then
    run.refresh_from_db()
    assert (run.status, run.message) == (ImportStatus.DONE, "")
    assert Order.objects.count() == ORDER_ROWS
    assert Order.objects.values("external_id").distinct().count() == ORDER_ROWS
    assert (run.rows_total, run.rows_imported, run.rows_unchanged, run.rows_rejected) == (
        ORDER_ROWS,
        ORDER_ROWS - written_before_the_crash,
        written_before_the_crash,
        0,
    )
    page = _read(admin_client_role.get(_report_url(run)))
    assert page.texts["import-status"] == "Done"
    assert page.counts == {
        "rows_total": "40,000",
        "imported": f"{ORDER_ROWS - written_before_the_crash:,}",
        "updated": "0",
        "unchanged": f"{written_before_the_crash:,}",
        "rejected": "0",
    }
    assert "import-message" not in page.texts


def test_an_import_whose_worker_dies_on_every_try_ends_failed_and_its_report_says_so(
    admin_client_role: Client, imports_queue: Queue, orders_csv: str, tmp_path: Path
) -> None:
    # given
    log = tmp_path / "worker.log"
    _upload(admin_client_role, _csv_file(orders_csv))
    run = ImportRun.objects.get()

    # when: the worker dies on each of the tries, and a live worker's maintenance finds each
    statuses = []
    for _try in range(TRIES):
        worker = _start_worker(log)
        _kill_worker_and_its_horse(worker, _work_horse_of(worker, imports_queue, log), log)
        _maintain(imports_queue)
        statuses.append(ImportRun.objects.get().get_status_display())

    # then: queued or running (a try may die before it marks the run running) until the last
    assert [status in {"Queued", "Running"} for status in statuses[:-1]] == [True] * IMPORT_RETRIES
    assert statuses[-1] == "Failed"
    run.refresh_from_db()
    assert (run.status, run.message) == (ImportStatus.FAILED, STOPPED_MESSAGE)
    assert run.finished_at is not None
    assert imports_queue.failed_job_registry.get_job_ids() == [import_job_id(run.pk)]
    response = admin_client_role.get(_report_url(run))
    page = _read(response)
    assert response.status_code == 200
    assert page.texts["import-status"] == "Failed"
    assert page.texts["import-message"] == STOPPED_MESSAGE
    assert page.counts == {}
    assert "hx-trigger" not in response.content.decode()


def test_an_import_whose_work_horse_is_killed_on_every_try_ends_failed(
    admin_client_role: Client, imports_queue: Queue, orders_csv: str, tmp_path: Path
) -> None:
    # given: one worker that lives on while its work horse is killed (as the OOM killer does)
    log = tmp_path / "worker.log"
    _upload(admin_client_role, _csv_file(orders_csv))
    run = ImportRun.objects.get()
    worker = _start_worker(log)

    # when
    horses = []
    for _try in range(TRIES):
        horse = _wait_until(
            lambda: [pid for pid in _children(worker.pid) if pid not in horses],
            "a new work horse",
            log,
        )[0]
        _work_horse_of(worker, imports_queue, log)
        os.kill(horse, signal.SIGKILL)
        horses.append(horse)

    # then: the worker re-ran the job after each death, then ran out of tries
    assert worker.wait(timeout=WAIT_SECONDS) == 0, log.read_text()
    run.refresh_from_db()
    assert (run.status, run.message) == (ImportStatus.FAILED, STOPPED_MESSAGE)
    assert Order.objects.count() < ORDER_ROWS
    assert log.read_text().count("Work-horse terminated unexpectedly") == TRIES
    page = _read(admin_client_role.get(_report_url(run)))
    assert (page.texts["import-status"], page.texts["import-message"]) == (
        "Failed",
        STOPPED_MESSAGE,
    )
