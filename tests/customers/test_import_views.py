from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rq import Queue, SimpleWorker

from console import queues
from customers.ingest.runs import create_import_run
from customers.jobs import IMPORTS_QUEUE
from customers.models import Customer, ImportRun, ImportStatus, Order

UPLOAD_URL = reverse("imports:upload")

# Rows 2 and 3 are good; 4-7 are bad in four different ways.
ORDERS_CSV = (
    "order_id,customer_id,placed_at,amount,status\n"
    "O-1,C-A,2024-05-01 10:00,199.00,paid\n"
    "O-2,C-B,2024-05-02 11:30,88.50,refunded\n"
    "O-3,C-NOBODY,2024-05-03 09:00,10.00,paid\n"
    "O-4,C-A,yesterday,20.00,paid\n"
    "O-5,C-B,2024-05-04 12:00,-5,paid\n"
    "O-1,C-A,2024-05-01 10:00,199.00,paid\n"
)
ORDERS_CSV_BAD_ROWS = [
    ["4", "customer_id", "unknown customer 'C-NOBODY'"],
    [
        "5",
        "placed_at",
        "not an ISO 8601 date or date-time: 'yesterday' "
        "(e.g. 2024-05-01 or 2024-05-01T20:30:00+08:00)",
    ],
    ["6", "amount", "negative amount"],
    ["7", "order_id", "duplicate order_id: row 2 has it first"],
]


@pytest.fixture(autouse=True)
def _english_and_private_media(settings: Any, tmp_path: Path) -> None:
    # The pages are asserted in their English source strings; uploads land in this test's folder.
    settings.LANGUAGE_CODE = "en"
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def imports_queue(rq_queues: dict[str, Queue]) -> Queue:
    return rq_queues[IMPORTS_QUEUE]


def _drain(queue: Queue) -> None:
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def _csv_file(text: str, name: str = "orders.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def _upload(client: Client, upload: SimpleUploadedFile | None, **fields: Any) -> Any:
    data: dict[str, Any] = {"kind": "orders", **fields}
    if upload is not None:
        data["file"] = upload
    return client.post(UPLOAD_URL, data)


def _report_url(run: ImportRun) -> str:
    return reverse("imports:report", kwargs={"import_run_id": run.pk})


VOID_TAGS = {"br", "hr", "img", "input", "link", "meta", "source", "wbr"}


class _PageReader(HTMLParser):
    """The text of what a test looks at: data-count values, data-testid elements, table rows."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, list[str]] = {}
        self.texts: dict[str, list[str]] = {}
        self.tables: dict[str, list[list[list[str]]]] = {}
        self._open: list[tuple[str, list[str] | None]] = []  # open tags, with their text if read

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VOID_TAGS:
            return
        attributes = dict(attrs)
        text: list[str] | None = None
        if tag == "table" and attributes.get("data-testid"):
            self.tables[attributes["data-testid"] or ""] = []
            self._table = self.tables[attributes["data-testid"] or ""]
        elif tag == "tr" and self._open_table():
            self._table.append([])
        elif tag == "td" and self._open_table():
            text = []
            self._table[-1].append(text)
        elif attributes.get("data-count"):
            text = self.counts[attributes["data-count"] or ""] = []
        elif attributes.get("data-testid"):
            text = self.texts[attributes["data-testid"] or ""] = []
        self._open.append((tag, text))

    def _open_table(self) -> bool:
        return any(tag == "table" for tag, _text in self._open) and hasattr(self, "_table")

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            open_tag, _text = self._open.pop()
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for _tag, text in self._open:
            if text is not None:
                text.append(data)


class _Page:
    def __init__(self, reader: _PageReader) -> None:
        self.counts = {key: _squeeze(text) for key, text in reader.counts.items()}
        self.texts = {key: _squeeze(text) for key, text in reader.texts.items()}
        self.tables = {
            key: [[_squeeze(cell) for cell in row] for row in rows if row]
            for key, rows in reader.tables.items()
        }


def _squeeze(text: list[str]) -> str:
    return " ".join("".join(text).split())


def _read(response: Any) -> _Page:
    reader = _PageReader()
    reader.feed(response.content.decode())
    return _Page(reader)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_orders_upload_runs_on_a_worker_and_the_report_shows_counts_and_bad_rows(
    admin_client_role: Client, customer_factory: Any, imports_queue: Queue
) -> None:
    # given
    customer_factory(external_id="C-A")
    customer_factory(external_id="C-B")

    # when
    response = _upload(admin_client_role, _csv_file(ORDERS_CSV))

    # then
    run = ImportRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == _report_url(run)
    assert imports_queue.count == 1
    assert imports_queue.jobs[0].func_name == "customers.jobs.run_import_job"
    assert imports_queue.jobs[0].kwargs == {"import_run_id": run.pk}
    waiting = admin_client_role.get(_report_url(run))
    assert _read(waiting).texts["import-status"] == "Queued"
    assert 'hx-trigger="every 2s"' in waiting.content.decode()

    # when
    _drain(imports_queue)

    # then
    report = admin_client_role.get(_report_url(run))
    page = _read(report)
    assert report.status_code == 200
    assert page.texts["import-status"] == "Done"
    assert page.counts == {
        "rows_total": "6",
        "imported": "2",
        "updated": "0",
        "unchanged": "0",
        "rejected": "4",
    }
    assert page.tables["import-errors"] == ORDERS_CSV_BAD_ROWS
    assert page.texts["import-message"] == "4 bad row(s) were skipped"
    assert "hx-trigger" not in report.content.decode()
    assert sorted(Order.objects.values_list("external_id", "customer__external_id", "amount")) == [
        ("O-1", "C-A", Decimal("199.00")),
        ("O-2", "C-B", Decimal("88.50")),
    ]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_strict_upload_with_a_bad_row_is_rejected_and_writes_nothing(
    admin_client_role: Client, customer_factory: Any, imports_queue: Queue
) -> None:
    # given
    customer_factory(external_id="C-A")
    customer_factory(external_id="C-B")

    # when
    response = _upload(admin_client_role, _csv_file(ORDERS_CSV), is_strict="on")
    _drain(imports_queue)

    # then
    report = admin_client_role.get(response["Location"])
    page = _read(report)
    assert page.texts["import-status"] == "Rejected"
    assert page.texts["import-message"] == (
        "strict import rejected: 4 bad row(s); nothing was written"
    )
    assert page.counts == {
        "rows_total": "6",
        "imported": "0",
        "updated": "0",
        "unchanged": "0",
        "rejected": "4",
    }
    assert page.tables["import-errors"] == ORDERS_CSV_BAD_ROWS
    assert Order.objects.count() == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_orders_upload_creates_missing_customers_when_asked(
    admin_client_role: Client, customer_factory: Any, imports_queue: Queue
) -> None:
    # given
    customer_factory(external_id="C-A")
    csv_text = (
        "order_id,customer_id,placed_at,amount\n"
        "O-1,C-A,2024-05-01 10:00,199.00\n"
        "O-2,C-NEW,2024-05-02 11:30,88.50\n"
    )

    # when
    response = _upload(admin_client_role, _csv_file(csv_text), create_missing_customers="on")
    _drain(imports_queue)

    # then
    page = _read(admin_client_role.get(response["Location"]))
    assert page.texts["import-status"] == "Done"
    assert page.counts["imported"] == "2"
    assert page.counts["rejected"] == "0"
    assert sorted(Customer.objects.values_list("external_id", flat=True)) == ["C-A", "C-NEW"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_job_run_again_leaves_a_finished_report_alone(
    admin_client_role: Client, customer_factory: Any, imports_queue: Queue
) -> None:
    # given
    customer_factory(external_id="C-A")
    customer_factory(external_id="C-B")
    _upload(admin_client_role, _csv_file(ORDERS_CSV))
    _drain(imports_queue)
    run = ImportRun.objects.get()

    # when
    imports_queue.enqueue("customers.jobs.run_import_job", import_run_id=run.pk)
    _drain(imports_queue)

    # then
    again = ImportRun.objects.get()
    assert (again.status, again.rows_imported, again.rows_rejected) == ("done", 2, 4)
    assert again.finished_at == run.finished_at
    assert Order.objects.count() == 2


def test_the_upload_is_stored_under_media_imports_and_its_job_queued_on_commit(
    admin_client_role: Client,
    imports_queue: Queue,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        _upload(admin_client_role, _csv_file(ORDERS_CSV, name="五月订单.csv"))

    # then
    run = ImportRun.objects.get()
    stored = Path(run.stored_path)
    assert len(callbacks) == 1
    assert imports_queue.count == 1
    assert (run.kind, run.file_name, run.status) == ("orders", "五月订单.csv", "queued")
    assert stored.parent == Path(settings.MEDIA_ROOT) / "imports"
    assert stored.suffix == ".csv"
    assert stored.read_text() == ORDERS_CSV
    assert run.created_by is not None
    assert run.created_by.get_username() == "adm"


def test_create_missing_customers_is_not_kept_for_events(admin_client_role: Client) -> None:
    # given
    csv_text = "event_id,customer_id,name,occurred_at\nE-1,C-A,view_product,2024-05-01\n"

    # when
    _upload(
        admin_client_role,
        _csv_file(csv_text, name="events.csv"),
        kind="events",
        create_missing_customers="on",
    )

    # then
    run = ImportRun.objects.get()
    assert (run.kind, run.create_missing_customers) == ("events", False)


@pytest.mark.parametrize(
    ("upload", "fields", "field", "error"),
    [
        (None, {}, "CSV file", "Choose a CSV file to upload."),
        (_csv_file("", name="orders.csv"), {}, "CSV file", "“orders.csv” is empty."),
        (
            _csv_file(ORDERS_CSV, name="orders.xlsx"),
            {},
            "CSV file",
            "“orders.xlsx” is not a .csv file: save the sheet as CSV (UTF-8) and upload that.",
        ),
        (
            _csv_file(ORDERS_CSV),
            {"kind": "coupons"},
            "Kind of data",
            "Select a valid choice. coupons is not one of the available choices.",
        ),
    ],
    ids=["no-file", "empty-file", "not-csv", "unknown-kind"],
)
def test_a_bad_upload_gets_the_form_back_with_a_400_and_the_field_error(
    admin_client_role: Client,
    upload: SimpleUploadedFile | None,
    fields: dict[str, str],
    field: str,
    error: str,
) -> None:
    # when
    response = _upload(admin_client_role, upload, **fields)

    # then
    assert response.status_code == 400
    assert _read(response).texts["upload-errors"] == f"{field}: {error}"
    assert ImportRun.objects.count() == 0
    assert not (Path(settings.MEDIA_ROOT) / "imports").exists()


def test_an_upload_over_the_size_limit_gets_a_400_and_is_not_stored(
    admin_client_role: Client, settings: Any
) -> None:
    # given
    settings.IMPORT_MAX_UPLOAD_BYTES = 1024 * 1024
    big = "order_id,customer_id,placed_at,amount\n" + "O-1,C-A,2024-05-01,1.00\n" * 50_000

    # when
    response = _upload(admin_client_role, _csv_file(big))

    # then
    assert len(big) > 1024 * 1024
    assert response.status_code == 400
    assert _read(response).texts["upload-errors"] == (
        "CSV file: The file is larger than 1 MB: split it into smaller files."
    )
    assert ImportRun.objects.count() == 0
    assert not (Path(settings.MEDIA_ROOT) / "imports").exists()


def test_an_upload_without_the_csrf_token_is_refused(admin_user: User) -> None:
    # given
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    # when
    response = _upload(client, _csv_file(ORDERS_CSV))

    # then
    assert response.status_code == 403
    assert ImportRun.objects.count() == 0


def test_an_upload_with_the_csrf_token_is_accepted(
    admin_user: User, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    # given
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    client.get(UPLOAD_URL)
    token = client.cookies[settings.CSRF_COOKIE_NAME].value

    # when
    with django_capture_on_commit_callbacks(execute=False):
        response = _upload(client, _csv_file(ORDERS_CSV), csrfmiddlewaretoken=token)

    # then
    assert response.status_code == 302
    assert ImportRun.objects.count() == 1


@pytest.mark.parametrize("role_client", ["operator_client", "manager_client"])
def test_operators_and_managers_may_not_import(
    db: None, request: pytest.FixtureRequest, role_client: str
) -> None:
    # given
    client: Client = request.getfixturevalue(role_client)
    run = create_import_run(kind="orders", file_name="orders.csv", stored_path="/nowhere.csv")

    # when
    responses = [
        client.get(UPLOAD_URL),
        _upload(client, _csv_file(ORDERS_CSV)),
        client.get(_report_url(run)),
    ]

    # then
    assert [response.status_code for response in responses] == [403, 403, 403]
    assert ImportRun.objects.count() == 1


@pytest.mark.parametrize(
    ("role_client", "has_link"),
    [("admin_client_role", True), ("operator_client", False), ("manager_client", False)],
)
def test_the_customer_list_links_to_the_import_page_for_admins_only(
    db: None, request: pytest.FixtureRequest, role_client: str, has_link: bool
) -> None:
    # given
    client: Client = request.getfixturevalue(role_client)

    # when
    response = client.get(reverse("customers:list"))

    # then
    assert (f'href="{UPLOAD_URL}"' in response.content.decode()) is has_link


def test_the_upload_page_shows_the_columns_of_each_kind(admin_client_role: Client) -> None:
    # when
    response = admin_client_role.get(UPLOAD_URL)

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert (
        "Required: <code>order_id</code>, <code>customer_id</code>, <code>placed_at</code>, "
        "<code>amount</code>"
    ) in html
    assert "Optional: <code>status</code>, <code>channel</code>, <code>category</code>" in html


def test_a_report_being_polled_returns_only_its_section(admin_client_role: Client) -> None:
    # given
    run = create_import_run(kind="orders", file_name="orders.csv", stored_path="/nowhere.csv")
    ImportRun.objects.filter(pk=run.pk).update(status=ImportStatus.RUNNING)

    # when
    response = admin_client_role.get(
        _report_url(run), headers={"HX-Request": "true", "HX-Target": "import-report"}
    )

    # then
    html = response.content.decode()
    assert html.lstrip().startswith("<section")
    assert "<html" not in html
    assert _read(response).texts["import-status"] == "Running"
    assert 'hx-trigger="every 2s"' in html


def test_an_unknown_import_run_is_a_404(admin_client_role: Client) -> None:
    # when
    response = admin_client_role.get(reverse("imports:report", kwargs={"import_run_id": 999}))

    # then
    assert response.status_code == 404


def _runs(count: int, make_user: Callable[..., Any]) -> list[ImportRun]:
    # Two users take turns: enough to show who started each run costs no query per row.
    users = [make_user(username="importer-1"), make_user(username="importer-2")]
    return [
        create_import_run(
            kind="orders",
            file_name=f"orders-{number}.csv",
            stored_path=f"/nowhere-{number}.csv",
            created_by=users[number % 2],
        )
        for number in range(count)
    ]


@pytest.mark.parametrize("runs", [1, 6], ids=["one-run", "six-runs"])
def test_the_upload_page_costs_the_same_queries_however_many_runs(
    admin_client_role: Client,
    make_user: Callable[..., Any],
    django_assert_num_queries: Callable[..., Any],
    runs: int,
) -> None:
    # given
    _runs(runs, make_user)

    # when: session, user, its permissions (2), its groups (role badge), the runs
    with django_assert_num_queries(6):
        response = admin_client_role.get(UPLOAD_URL)

    # then
    assert len(_read(response).tables["import-runs"]) == runs


@pytest.mark.parametrize("errors", [1, 500], ids=["one-error", "500-errors"])
def test_the_report_page_costs_the_same_queries_however_many_errors(
    admin_client_role: Client,
    make_user: Callable[..., Any],
    django_assert_num_queries: Callable[..., Any],
    errors: int,
) -> None:
    # given
    (run,) = _runs(1, make_user)
    ImportRun.objects.filter(pk=run.pk).update(
        status=ImportStatus.DONE,
        rows_total=errors,
        rows_rejected=errors,
        errors=[{"row": row, "reason": "bad"} for row in range(2, errors + 2)],
    )

    # when: session, user, its permissions (2), its groups (role badge), the run
    with django_assert_num_queries(6):
        response = admin_client_role.get(_report_url(run))

    # then
    assert len(_read(response).tables["import-errors"]) == errors


def test_the_imports_queue_is_the_console_queue_of_that_name() -> None:
    assert IMPORTS_QUEUE == queues.IMPORTS
