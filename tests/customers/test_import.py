from __future__ import annotations

import datetime as dt
import gc
import io
import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from customers.ingest import csv_import
from customers.ingest.csv_import import ImportReport, import_file, import_stream
from customers.ingest.runs import create_import_run, run_import
from customers.models import Customer, CustomerTag, Event, ImportRun, Order, Tag
from tests.factories import CustomerFactory, OrderFactory

UTC = dt.UTC
ORDERS_HEADER = "order_id,customer_id,placed_at,amount,status,channel,category"
EVENTS_HEADER = "event_id,customer_id,name,occurred_at,properties"
CUSTOMERS_HEADER = (
    "external_id,name,phone,email,city,gender,birth_date,channel,registered_at,"
    "sms_opt_in,email_opt_in,tags"
)
NOT_UTF8 = "the file is not UTF-8 text: save it as CSV (UTF-8) and upload it again"
ORDER_COLUMNS = "order_id, customer_id, placed_at, amount, status, channel, category"

pytestmark = pytest.mark.django_db


def not_iso(raw: str) -> str:
    return (
        f"not an ISO 8601 date or date-time: {raw!r} (e.g. 2024-05-01 or 2024-05-01T20:30:00+08:00)"
    )


def csv_file(
    tmp_path: Path, *lines: str, name: str = "import.csv", encoding: str = "utf-8"
) -> Path:
    path = tmp_path / name
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def expected_report(kind: str, **values: Any) -> dict[str, Any]:
    report = ImportReport(kind=kind).as_dict()
    report.update(values)
    return report


def orders_in_db() -> list[tuple[Any, ...]]:
    rows = list(
        Order.objects.order_by("external_id").values_list(
            "external_id",
            "customer__external_id",
            "placed_at",
            "amount",
            "status",
            "channel",
            "category",
        )
    )
    assert all(isinstance(row[3], Decimal) for row in rows)
    return [(*row[:3], str(row[3]), *row[4:]) for row in rows]


def customers_in_db() -> list[tuple[Any, ...]]:
    return list(
        Customer.objects.order_by("external_id").values_list(
            "external_id",
            "name",
            "phone",
            "email",
            "city",
            "gender",
            "birth_date",
            "channel",
            "registered_at",
            "sms_opt_in",
            "email_opt_in",
            "push_opt_in",
            "wechat_opt_in",
            "unsubscribed_at",
            "updated_at",
        )
    )


def tags_in_db() -> set[tuple[str, str, str]]:
    return set(CustomerTag.objects.values_list("customer__external_id", "tag__name", "source"))


@pytest.fixture
def two_customers(customer_factory: type[CustomerFactory]) -> None:
    customer_factory(external_id="C1")
    customer_factory(external_id="C2")


# Orders


@pytest.mark.usefixtures("two_customers")
def test_orders_are_imported_with_decimal_amounts_and_aware_times_from_naive_offset_and_dates(
    tmp_path: Path,
) -> None:
    path = csv_file(
        tmp_path,
        ORDERS_HEADER,
        "O1,C1,2024-05-01 20:30:00,199.00,,app,美妆",
        "O2,C1,2024-05-02T08:15:00+09:00,0.5,refunded,web,服饰",
        "O3,C2,2024-05-03,1200,PAID,,",
        "O4,C2,2024-05-04T01:00:00Z,88.8,paid,store,食品",
    )

    report = import_file("orders", path)

    assert report.as_dict() == expected_report("orders", rows_total=4, imported=4)
    assert orders_in_db() == [
        ("O1", "C1", dt.datetime(2024, 5, 1, 12, 30, tzinfo=UTC), "199.00", "paid", "app", "美妆"),
        (
            "O2",
            "C1",
            dt.datetime(2024, 5, 1, 23, 15, tzinfo=UTC),
            "0.50",
            "refunded",
            "web",
            "服饰",
        ),
        ("O3", "C2", dt.datetime(2024, 5, 2, 16, 0, tzinfo=UTC), "1200.00", "paid", "", ""),
        ("O4", "C2", dt.datetime(2024, 5, 4, 1, 0, tzinfo=UTC), "88.80", "paid", "store", "食品"),
    ]


@pytest.mark.usefixtures("two_customers")
def test_bad_order_rows_are_reported_by_row_number_and_reason_and_the_good_ones_imported(
    tmp_path: Path,
) -> None:
    path = csv_file(
        tmp_path,
        ORDERS_HEADER,
        "O1,C1,2024/05/01,10,,,",
        "O2,C1,2024-05-01,-5,,,",
        "O3,C9,2024-05-01,5,,,",
        "O4,C1,2024-05-01 10:00,5,,,",
        ",C1,,abc,shipped,,",
        "O5,C1,2024-05-01,1.234,,,",
    )

    report = import_file("orders", path)

    assert report.as_dict() == expected_report(
        "orders",
        rows_total=6,
        imported=1,
        rejected=5,
        errors=[
            {"row": 2, "column": "placed_at", "reason": not_iso("2024/05/01")},
            {"row": 3, "column": "amount", "reason": "negative amount"},
            {"row": 4, "column": "customer_id", "reason": "unknown customer 'C9'"},
            {"row": 6, "column": "order_id", "reason": "missing required value"},
            {"row": 6, "column": "placed_at", "reason": "missing required value"},
            {"row": 6, "column": "amount", "reason": "not a number: 'abc'"},
            {"row": 6, "column": "status", "reason": "must be one of: paid, refunded"},
            {"row": 7, "column": "amount", "reason": "more than 2 decimal places"},
        ],
        message="5 bad row(s) were skipped",
    )
    assert orders_in_db() == [
        ("O4", "C1", dt.datetime(2024, 5, 1, 2, 0, tzinfo=UTC), "5.00", "paid", "", ""),
    ]


@pytest.mark.usefixtures("two_customers")
def test_reimporting_the_same_orders_file_changes_nothing(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        ORDERS_HEADER,
        "O1,C1,2024-05-01 20:30:00,199.00,,app,美妆",
        "O2,C2,2024-05-02,10,refunded,,",
        "O3,C9,2024-05-02,10,,,",
    )
    import_file("orders", path)
    before = list(Order.objects.order_by("pk").values())

    report = import_file("orders", path)

    assert report.as_dict() == expected_report(
        "orders",
        rows_total=3,
        unchanged=2,
        rejected=1,
        errors=[{"row": 4, "column": "customer_id", "reason": "unknown customer 'C9'"}],
        message="1 bad row(s) were skipped",
    )
    assert list(Order.objects.order_by("pk").values()) == before


@pytest.mark.usefixtures("two_customers")
def test_a_refund_row_naming_another_or_an_unknown_customer_changes_nothing(
    tmp_path: Path,
) -> None:
    import_file(
        "orders",
        csv_file(
            tmp_path,
            ORDERS_HEADER,
            "O1,C1,2024-05-01,199.00,paid,,",
            "O2,C2,2024-05-01,99.00,paid,,",
        ),
    )
    refunds = csv_file(
        tmp_path,
        ORDERS_HEADER,
        "O1,C2,2024-05-01,199.00,refunded,,",
        "O2,NOPE,2024-05-01,99.00,refunded,,",
        name="refunds.csv",
    )

    report = import_file("orders", refunds)

    assert (report.imported, report.updated, report.unchanged, report.rejected) == (0, 0, 1, 1)
    assert report.errors == [
        {"row": 3, "column": "customer_id", "reason": "unknown customer 'NOPE'"}
    ]
    assert list(Order.objects.order_by("external_id").values_list("status", flat=True)) == [
        "paid",
        "paid",
    ]


@pytest.mark.usefixtures("two_customers")
def test_a_reimported_order_marked_refunded_changes_only_its_status(tmp_path: Path) -> None:
    import_file(
        "orders", csv_file(tmp_path, ORDERS_HEADER, "O1,C1,2024-05-01,199.00,paid,app,美妆")
    )
    refund = csv_file(
        tmp_path,
        ORDERS_HEADER,
        "O1,C1,2024-06-01,1.00,refunded,web,食品",
        name="refunds.csv",
    )

    report = import_file("orders", refund)
    again = import_file("orders", refund)

    assert (report.imported, report.updated, report.unchanged) == (0, 1, 0)
    assert (again.imported, again.updated, again.unchanged) == (0, 0, 1)
    assert orders_in_db() == [
        (
            "O1",
            "C1",
            dt.datetime(2024, 4, 30, 16, 0, tzinfo=dt.UTC),
            "199.00",
            "refunded",
            "app",
            "美妆",
        )
    ]


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 10_000])
@pytest.mark.usefixtures("two_customers")
def test_a_repeated_order_id_keeps_the_first_row_and_reports_the_others_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_rows: int
) -> None:
    monkeypatch.setattr(csv_import, "CHUNK_ROWS", chunk_rows)
    path = csv_file(
        tmp_path,
        ORDERS_HEADER,
        "O1,C1,2024-05-01,10,,,",
        "O1,C1,2024-05-02,20,,,",
        "O2,C1,2024-05-01,30,,,",
        "O1,C2,2024-05-03,40,,,",
        "O3,C2,2024-05-03,-1,,,",
        "O3,C2,2024-05-03,50,,,",
    )

    report = import_file("orders", path)

    assert report.as_dict() == expected_report(
        "orders",
        rows_total=6,
        imported=3,
        rejected=3,
        errors=[
            {"row": 3, "column": "order_id", "reason": "duplicate order_id: row 2 has it first"},
            {"row": 5, "column": "order_id", "reason": "duplicate order_id: row 2 has it first"},
            {"row": 6, "column": "amount", "reason": "negative amount"},
        ],
        message="3 bad row(s) were skipped",
    )
    assert [
        (order_id, customer, amount) for order_id, customer, _t, amount, *_ in orders_in_db()
    ] == [
        ("O1", "C1", "10.00"),
        ("O2", "C1", "30.00"),
        ("O3", "C2", "50.00"),
    ]


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 10_000])
def test_missing_customers_are_created_registered_at_their_first_order_even_in_a_later_chunk(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    customer_factory: type[CustomerFactory],
    chunk_rows: int,
) -> None:
    monkeypatch.setattr(csv_import, "CHUNK_ROWS", chunk_rows)
    existing = customer_factory(external_id="C1", registered_at=dt.datetime(2024, 1, 1, tzinfo=UTC))
    path = csv_file(
        tmp_path,
        ORDERS_HEADER,
        "O1,N1,2024-05-03 10:00:00,10,,,",
        "O2,C1,2024-05-01,5,,,",
        "O3,N1,2024-05-02 09:00:00,20,,,",
        "O4,N2,2024-05-05T00:00:00+00:00,30,,,",
        "O5,N1,2024-05-04,1,,,",
        "O6,N2,2024-05-01 12:00:00,1,,,",
    )

    report = import_file("orders", path, create_missing_customers=True)

    assert report.as_dict() == expected_report("orders", rows_total=6, imported=6)
    assert list(
        Customer.objects.order_by("external_id").values_list(
            "external_id", "registered_at", "name", "channel", "gender", "sms_opt_in"
        )
    ) == [
        ("C1", existing.registered_at, existing.name, "app", "u", True),
        ("N1", dt.datetime(2024, 5, 2, 1, 0, tzinfo=UTC), "", "other", "u", True),
        ("N2", dt.datetime(2024, 5, 1, 4, 0, tzinfo=UTC), "", "other", "u", True),
    ]
    assert [(order_id, customer) for order_id, customer, *_ in orders_in_db()] == [
        ("O1", "N1"),
        ("O2", "C1"),
        ("O3", "N1"),
        ("O4", "N2"),
        ("O5", "N1"),
        ("O6", "N2"),
    ]


def test_reimporting_with_missing_customers_created_changes_nothing(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path, ORDERS_HEADER, "O1,N1,2024-05-03 10:00:00,10,,,", "O2,N1,2024-05-02,20,,,"
    )
    import_file("orders", path, create_missing_customers=True)
    before = (list(Customer.objects.values()), list(Order.objects.values()))

    report = import_file("orders", path, create_missing_customers=True)

    assert report.as_dict() == expected_report("orders", rows_total=2, unchanged=2)
    assert (list(Customer.objects.values()), list(Order.objects.values())) == before


@pytest.mark.parametrize(
    ("header", "lines", "create_missing_customers", "errors", "message"),
    [
        (
            ORDERS_HEADER,
            ["O1,N1,2024-05-01,10,,,", "O2,C1,2024-05-01,-5,,,", "O3,C1,2024-05-01,5,,,"],
            True,
            [{"row": 3, "column": "amount", "reason": "negative amount"}],
            "strict import rejected: 1 bad row(s); nothing was written",
        ),
        (
            ORDERS_HEADER,
            ["O1,N1,2024-05-01,10,,,", "O2,C1,2024-05-01,5,,,", "O1,C1,2024-05-01,5,,,"],
            True,
            [{"row": 4, "column": "order_id", "reason": "duplicate order_id: row 2 has it first"}],
            "strict import rejected: 1 bad row(s); nothing was written",
        ),
        (
            ORDERS_HEADER,
            ["O1,C1,2024-05-01,10,,,", "O2,C9,2024-05-01,5,,,", "O3,C1,2024-05-01,5,,,"],
            False,
            [{"row": 3, "column": "customer_id", "reason": "unknown customer 'C9'"}],
            "strict import rejected: 1 bad row(s); nothing was written",
        ),
        (
            ORDERS_HEADER + ",coupon",
            ["O1,N1,2024-05-01,10,,,,X1", "O2,C1,2024-05-01,5,,,,X2"],
            True,
            [
                {
                    "row": 1,
                    "column": "coupon",
                    "reason": f"unknown column (expected some of: {ORDER_COLUMNS})",
                }
            ],
            "strict import rejected: unknown column(s) coupon; nothing was written",
        ),
        (
            ORDERS_HEADER + ",coupon",
            ["O1,N1,2024-05-01,10,,,,X1", "O2,C1,2024-05-01,-5,,,,X2"],
            True,
            [
                {
                    "row": 1,
                    "column": "coupon",
                    "reason": f"unknown column (expected some of: {ORDER_COLUMNS})",
                },
                {"row": 3, "column": "amount", "reason": "negative amount"},
            ],
            "strict import rejected: 1 bad row(s) and unknown column(s) coupon;"
            " nothing was written",
        ),
    ],
    ids=[
        "bad-value-after-a-written-chunk",
        "repeated-id",
        "unknown-customer",
        "unknown-column",
        "unknown-column-and-bad-row",
    ],
)
def test_a_strict_import_with_any_bad_row_writes_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    order_factory: type[OrderFactory],
    header: str,
    lines: list[str],
    create_missing_customers: bool,
    errors: list[dict[str, Any]],
    message: str,
) -> None:
    monkeypatch.setattr(csv_import, "CHUNK_ROWS", 1)
    order_factory(external_id="O0", customer__external_id="C1")
    customers_before, orders_before = customers_in_db(), orders_in_db()
    path = csv_file(tmp_path, header, *lines)

    report = import_file(
        "orders", path, is_strict=True, create_missing_customers=create_missing_customers
    )

    assert report.as_dict() == expected_report(
        "orders",
        status="rejected",
        rows_total=len(lines),
        rejected=len([error for error in errors if error["row"] > 1]),
        errors=errors,
        message=message,
    )
    assert (customers_in_db(), orders_in_db()) == (customers_before, orders_before)


def test_a_strict_import_of_good_rows_writes_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_import, "CHUNK_ROWS", 1)
    path = csv_file(tmp_path, ORDERS_HEADER, "O1,N1,2024-05-02,10,,,", "O2,N1,2024-05-01,20,,,")

    report = import_file("orders", path, is_strict=True, create_missing_customers=True)

    assert report.as_dict() == expected_report("orders", rows_total=2, imported=2)
    assert [(order_id, customer) for order_id, customer, *_ in orders_in_db()] == [
        ("O1", "N1"),
        ("O2", "N1"),
    ]
    assert Customer.objects.get().registered_at == dt.datetime(2024, 4, 30, 16, tzinfo=UTC)


@pytest.mark.usefixtures("two_customers")
def test_blank_lines_and_rows_of_empty_cells_are_skipped_but_keep_their_row_numbers(
    tmp_path: Path,
) -> None:
    path = csv_file(
        tmp_path,
        ORDERS_HEADER,
        "O1,C1,2024-05-01,10,,,",
        "",
        ",,,,,,",
        "   ",
        "O2,C1,2024-05-01,-1,,,",
        "",
        "",
    )

    report = import_file("orders", path)

    assert report.as_dict() == expected_report(
        "orders",
        rows_total=2,
        imported=1,
        rejected=1,
        errors=[{"row": 6, "column": "amount", "reason": "negative amount"}],
        message="1 bad row(s) were skipped",
    )


@pytest.mark.usefixtures("two_customers")
def test_a_row_with_more_values_than_columns_is_rejected_and_a_short_row_is_padded(
    tmp_path: Path,
) -> None:
    path = csv_file(
        tmp_path,
        ORDERS_HEADER,
        "O1,C1,2024-05-01,10,,,,surplus",
        "O2,C1,2024-05-01,10",
        "O3,C2,2024-05-01,10,,,,",
    )

    report = import_file("orders", path)

    assert report.as_dict() == expected_report(
        "orders",
        rows_total=3,
        imported=2,
        rejected=1,
        errors=[{"row": 2, "reason": "8 values but the header has 7 columns"}],
        message="1 bad row(s) were skipped",
    )
    assert [(order_id, status) for order_id, _c, _t, _a, status, *_ in orders_in_db()] == [
        ("O2", "paid"),
        ("O3", "paid"),
    ]


@pytest.mark.parametrize("is_strict", [False, True], ids=["default", "strict"])
@pytest.mark.usefixtures("two_customers")
def test_an_excel_csv_with_a_bom_crlf_and_spaced_capitalised_headers_is_imported(
    tmp_path: Path, is_strict: bool
) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(
        "\ufeffOrder_ID, Customer_ID ,Placed_At,Amount\r\n"
        "O1,C1,2024-05-01 20:30,1.5\r\n"
        'O2,C2,"2024-05-02",2\r\n'.encode()
    )

    report = import_file("orders", path, is_strict=is_strict)

    assert report.as_dict() == expected_report("orders", rows_total=2, imported=2)
    assert orders_in_db() == [
        ("O1", "C1", dt.datetime(2024, 5, 1, 12, 30, tzinfo=UTC), "1.50", "paid", "", ""),
        ("O2", "C2", dt.datetime(2024, 5, 1, 16, 0, tzinfo=UTC), "2.00", "paid", "", ""),
    ]


@pytest.mark.parametrize("is_strict", [False, True], ids=["default", "strict"])
@pytest.mark.usefixtures("two_customers")
def test_a_file_that_is_not_utf8_is_rejected_with_a_message(
    tmp_path: Path, is_strict: bool
) -> None:
    path = csv_file(tmp_path, ORDERS_HEADER, "O1,C1,2024-05-01,10,,,美妆", encoding="gbk")

    report = import_file("orders", path, is_strict=is_strict)

    assert report.as_dict() == expected_report("orders", status="rejected", message=NOT_UTF8)
    assert Order.objects.count() == 0


@pytest.mark.parametrize("is_strict", [False, True], ids=["default", "strict"])
@pytest.mark.usefixtures("two_customers")
def test_a_file_that_stops_being_utf8_after_many_chunks_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, is_strict: bool
) -> None:
    monkeypatch.setattr(csv_import, "CHUNK_ROWS", 50)
    good = [f"O{n:05d},C1,2024-05-01,10,,,books" for n in range(1_000)]
    path = tmp_path / "mixed.csv"
    path.write_bytes(
        "\n".join([ORDERS_HEADER, *good]).encode()
        + "\nO99999,C1,2024-05-01,10,,,美妆\n".encode("gbk")
    )

    report = import_file("orders", path, is_strict=is_strict)

    assert report.as_dict() == expected_report("orders", status="rejected", message=NOT_UTF8)
    assert Order.objects.count() == 0


class _PipeLikeBytes(io.BytesIO):
    def seekable(self) -> bool:
        return False


@pytest.mark.usefixtures("two_customers")
def test_a_stream_that_cannot_seek_back_and_stops_being_utf8_reports_what_it_wrote(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(csv_import, "CHUNK_ROWS", 50)
    good = [f"O{n:05d},C1,2024-05-01,10,,,books" for n in range(1_000)]
    data = "\n".join([ORDERS_HEADER, *good]).encode() + "\nO99999,C1,2024-05-01,10,,,美妆\n".encode(
        "gbk"
    )
    stream = io.TextIOWrapper(_PipeLikeBytes(data), encoding="utf-8", newline="")

    report = import_stream("orders", stream)

    assert (report.status, report.message) == (
        "rejected",
        f"{NOT_UTF8}; the rows before it were written",
    )
    assert 0 < report.imported == Order.objects.count() < 1_000


@pytest.mark.usefixtures("two_customers")
def test_a_cell_too_large_for_csv_half_way_down_rejects_the_file_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_import, "CHUNK_ROWS", 1)
    huge = "x" * (10 * 1024 * 1024 + 1)
    path = csv_file(
        tmp_path, ORDERS_HEADER, "O1,C1,2024-05-01,10,,,", f"O2,C1,2024-05-01,10,,,{huge}"
    )

    report = import_file("orders", path)

    assert report.as_dict() == expected_report(
        "orders",
        status="rejected",
        message="the file is not valid CSV near line 3: field larger than field limit (10485760)",
    )
    assert Order.objects.count() == 0


@pytest.mark.parametrize(
    ("kind", "header", "message"),
    [
        ("orders", "order_id,customer_id,placed_at,status", "amount"),
        ("orders", "", "order_id, customer_id, placed_at, amount"),
        ("events", "event_id,customer_id,properties", "name, occurred_at"),
        ("customers", "external_id,name,city", "registered_at"),
    ],
    ids=["orders-amount", "orders-blank-header", "events", "customers"],
)
@pytest.mark.usefixtures("two_customers")
def test_a_missing_required_column_rejects_the_file(
    tmp_path: Path, kind: str, header: str, message: str
) -> None:
    path = csv_file(tmp_path, header, "O1,C1,2024-05-01,paid")

    report = import_file(kind, path)

    assert report.as_dict() == expected_report(
        kind,
        status="rejected",
        message=f"required column(s) missing from the header: {message}",
    )
    assert (Order.objects.count(), Event.objects.count(), Customer.objects.count()) == (0, 0, 2)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty: the first row must name the columns"),
        (
            f"{ORDERS_HEADER},Amount\nO1,C1,2024-05-01,10,,,,10\n".encode(),
            "the column 'amount' appears twice in the header",
        ),
        (
            b"order_id;customer_id;placed_at;amount\nO1;C1;2024-05-01;10\n",
            "the header row has no commas: columns must be separated by commas,"
            " not by semicolons or tabs",
        ),
    ],
    ids=["empty", "repeated-column", "semicolons"],
)
@pytest.mark.usefixtures("two_customers")
def test_a_file_without_a_usable_header_is_rejected(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes(content)

    report = import_file("orders", path)

    assert report.as_dict() == expected_report("orders", status="rejected", message=message)
    assert Order.objects.count() == 0


@pytest.mark.usefixtures("two_customers")
def test_an_unknown_column_is_reported_on_row_1_and_ignored_by_a_default_import(
    tmp_path: Path,
) -> None:
    path = csv_file(tmp_path, ORDERS_HEADER + ",coupon", "O1,C1,2024-05-01,10,,,,X1")

    report = import_file("orders", path)

    assert report.as_dict() == expected_report(
        "orders",
        rows_total=1,
        imported=1,
        errors=[
            {
                "row": 1,
                "column": "coupon",
                "reason": f"unknown column (expected some of: {ORDER_COLUMNS})",
            }
        ],
        message="unknown column(s) ignored: coupon",
    )
    assert [order_id for order_id, *_ in orders_in_db()] == ["O1"]


@pytest.mark.usefixtures("two_customers")
def test_a_nul_character_in_a_cell_is_a_bad_row_not_a_failed_import(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path, ORDERS_HEADER, "O1,C1,2024-05-01,10,,,be\x00auty", "O2,C1,2024-05-01,10,,,"
    )

    report = import_file("orders", path)

    assert report.as_dict() == expected_report(
        "orders",
        rows_total=2,
        imported=1,
        rejected=1,
        errors=[{"row": 2, "column": "category", "reason": "contains a NUL character"}],
        message="1 bad row(s) were skipped",
    )


@pytest.mark.usefixtures("two_customers")
def test_each_written_chunk_reports_the_customers_it_touched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_import, "CHUNK_ROWS", 2)
    path = csv_file(
        tmp_path,
        ORDERS_HEADER,
        "O1,C1,2024-05-01,10,,,",
        "O2,C2,2024-05-01,10,,,",
        "O3,C1,2024-05-01,10,,,",
    )
    touched: list[set[int]] = []

    import_file("orders", path, on_chunk_written=touched.append)

    ids = dict(Customer.objects.values_list("external_id", "pk"))
    assert touched == [{ids["C1"], ids["C2"]}, {ids["C1"]}]


@pytest.mark.usefixtures("two_customers")
def test_a_report_keeps_the_first_errors_and_counts_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_import, "MAX_REPORTED_ERRORS", 2)
    path = csv_file(tmp_path, ORDERS_HEADER, *[f"O{n},C1,2024-05-01,-{n},,," for n in range(1, 5)])

    report = import_file("orders", path)

    assert report.as_dict() == expected_report(
        "orders",
        rows_total=4,
        rejected=4,
        errors=[
            {"row": 2, "column": "amount", "reason": "negative amount"},
            {"row": 3, "column": "amount", "reason": "negative amount"},
        ],
        errors_not_shown=2,
        message="4 bad row(s) were skipped",
    )


def _orders_file(path: Path, *, rows: int, first: int) -> Path:
    with path.open("w", encoding="utf-8") as stream:
        stream.write(ORDERS_HEADER + "\n")
        for number in range(first, first + rows):
            stream.write(f"O{number:08d},C1,2024-05-01 20:30:00,199.00,paid,app,美妆\n")
    return path


def _peak_memory(action: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.usefixtures("two_customers")
def test_memory_stays_flat_as_the_file_grows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_import, "CHUNK_ROWS", 250)
    warm_up = _orders_file(tmp_path / "warm.csv", rows=500, first=0)
    small = _orders_file(tmp_path / "small.csv", rows=1_000, first=1_000)
    large = _orders_file(tmp_path / "large.csv", rows=8_000, first=10_000)
    import_file("orders", warm_up)

    small_peak = _peak_memory(lambda: import_file("orders", small))
    large_peak = _peak_memory(lambda: import_file("orders", large))

    assert Order.objects.count() == 9_500
    assert large_peak < small_peak * 1.3


# Events


@pytest.mark.usefixtures("two_customers")
def test_events_are_imported_with_json_properties_and_bad_rows_reported(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        EVENTS_HEADER,
        'E1,C1,view_product,2024-05-01 20:00:00,"{""category"": ""美妆"",',
        '""price"": 99.5}"',
        "E2,C2,add_to_cart,2024-05-01T12:00:00Z,",
        "E3,C9,view_product,2024-05-01,{}",
        "E4,C1,view_product,2024-05-01,not json",
        "E5,C1,view_product,2024-05-01,[1]",
        "E6,C1,,2024-05-01,",
        'E7,C1,view_product,2024-05-01,"{""price"": NaN}"',
    )

    report = import_file("events", path)

    assert report.as_dict() == expected_report(
        "events",
        rows_total=7,
        imported=2,
        rejected=5,
        errors=[
            {"row": 4, "column": "customer_id", "reason": "unknown customer 'C9'"},
            {
                "row": 5,
                "column": "properties",
                "reason": "not valid JSON: Expecting value: line 1 column 1 (char 0)",
            },
            {"row": 6, "column": "properties", "reason": "must be a JSON object"},
            {"row": 7, "column": "name", "reason": "missing required value"},
            {
                "row": 8,
                "column": "properties",
                "reason": "not valid JSON: NaN is not a JSON number",
            },
        ],
        message="5 bad row(s) were skipped",
    )
    assert list(
        Event.objects.order_by("event_id").values_list(
            "event_id", "customer__external_id", "name", "occurred_at", "properties"
        )
    ) == [
        (
            "E1",
            "C1",
            "view_product",
            dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
            {"category": "美妆", "price": 99.5},
        ),
        ("E2", "C2", "add_to_cart", dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC), {}),
    ]


@pytest.mark.parametrize("chunk_rows", [1, 10_000])
@pytest.mark.usefixtures("two_customers")
def test_reimporting_events_changes_nothing_and_repeats_in_the_file_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_rows: int
) -> None:
    monkeypatch.setattr(csv_import, "CHUNK_ROWS", chunk_rows)
    path = csv_file(
        tmp_path,
        EVENTS_HEADER,
        'E1,C1,view_product,2024-05-01,"{""sku"": 1}"',
        'E1,C2,view_product,2024-05-02,"{""sku"": 2}"',
        "E2,C2,sign_in,2024-05-02,",
    )
    import_file("events", path)
    before = list(Event.objects.order_by("pk").values())

    report = import_file("events", path)

    assert report.as_dict() == expected_report(
        "events",
        rows_total=3,
        unchanged=2,
        rejected=1,
        errors=[
            {"row": 3, "column": "event_id", "reason": "duplicate event_id: row 2 has it first"}
        ],
        message="1 bad row(s) were skipped",
    )
    assert list(Event.objects.order_by("pk").values()) == before
    assert Event.objects.get(event_id="E1").properties == {"sku": 1}


# Customers


def customers_file(tmp_path: Path, *rows: str, header: str = CUSTOMERS_HEADER) -> Path:
    return csv_file(tmp_path, header, *rows, name="customers.csv")


FIRST_CUSTOMERS = (
    "C1,张伟,138 1234 5678,zw@example.com,上海,男,1990-05-01,app,2024-01-02 10:00:00,"
    "0,,高价值;美妆",
    "C2,李娜,+447700900123,,北京,female,,mini_program,2024-01-03,yes,no,",
)


def test_customers_are_imported_with_normalised_fields_consent_and_import_tags(
    tmp_path: Path,
) -> None:
    report = import_file("customers", customers_file(tmp_path, *FIRST_CUSTOMERS))

    assert report.as_dict() == expected_report("customers", rows_total=2, imported=2)
    assert [row[:-1] for row in customers_in_db()] == [
        (
            "C1",
            "张伟",
            "+8613812345678",
            "zw@example.com",
            "上海",
            "m",
            dt.date(1990, 5, 1),
            "app",
            dt.datetime(2024, 1, 2, 2, 0, tzinfo=UTC),
            False,
            True,
            True,
            True,
            None,
        ),
        (
            "C2",
            "李娜",
            "+447700900123",
            "",
            "北京",
            "f",
            None,
            "mini_program",
            dt.datetime(2024, 1, 2, 16, 0, tzinfo=UTC),
            True,
            False,
            True,
            True,
            None,
        ),
    ]
    assert tags_in_db() == {("C1", "高价值", "import"), ("C1", "美妆", "import")}


def test_reimporting_the_same_customers_file_changes_nothing(tmp_path: Path) -> None:
    path = customers_file(tmp_path, *FIRST_CUSTOMERS)
    import_file("customers", path)
    before = (customers_in_db(), tags_in_db())

    report = import_file("customers", path)

    assert report.as_dict() == expected_report("customers", rows_total=2, unchanged=2)
    assert (customers_in_db(), tags_in_db()) == before


@pytest.mark.parametrize("chunk_rows", [1, 10_000])
def test_a_customers_reimport_updates_changed_fields_and_import_tags_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_rows: int
) -> None:
    monkeypatch.setattr(csv_import, "CHUNK_ROWS", chunk_rows)
    import_file("customers", customers_file(tmp_path, *FIRST_CUSTOMERS))
    c1, c2 = Customer.objects.order_by("external_id")
    CustomerTag.objects.create(customer=c1, tag=Tag.objects.create(name="VIP"), source="manual")
    CustomerTag.objects.create(customer=c2, tag=Tag.objects.get(name="美妆"), source="manual")
    c2_before = customers_in_db()[1]
    changed = customers_file(
        tmp_path,
        "C1,张伟伟,138 1234 5678,zw@example.com,杭州,男,1990-05-01,app,2024-01-02 10:00:00,"
        ",0,美妆;新客",
        "C2,李娜,+447700900123,,北京,female,,mini_program,2024-01-03,,,美妆",
        "C3,王芳,,,,,,,2024-02-01T00:00:00+08:00,,,新客",
    )

    report = import_file("customers", changed)

    assert report.as_dict() == expected_report(
        "customers", rows_total=3, imported=1, updated=1, unchanged=1
    )
    after = customers_in_db()
    assert after[0][:-1] == (
        "C1",
        "张伟伟",
        "+8613812345678",
        "zw@example.com",
        "杭州",
        "m",
        dt.date(1990, 5, 1),
        "app",
        dt.datetime(2024, 1, 2, 2, 0, tzinfo=UTC),
        False,
        False,
        True,
        True,
        None,
    )
    assert after[1] == c2_before
    assert after[2][:-1] == (
        "C3",
        "王芳",
        "",
        "",
        "",
        "u",
        None,
        "other",
        dt.datetime(2024, 1, 31, 16, 0, tzinfo=UTC),
        True,
        True,
        True,
        True,
        None,
    )
    assert tags_in_db() == {
        ("C1", "VIP", "manual"),
        ("C1", "美妆", "import"),
        ("C1", "新客", "import"),
        ("C2", "美妆", "manual"),
        ("C3", "新客", "import"),
    }


def test_a_customers_file_leaves_the_columns_it_lacks_alone(tmp_path: Path) -> None:
    import_file("customers", customers_file(tmp_path, *FIRST_CUSTOMERS))
    before = customers_in_db()[0]
    tags_before = tags_in_db()

    report = import_file(
        "customers",
        customers_file(
            tmp_path, "C1,2024-01-02 10:00:00,苏州", header="external_id,registered_at,city"
        ),
    )

    assert report.as_dict() == expected_report("customers", rows_total=1, updated=1)
    after = customers_in_db()[0]
    assert after[:4] == before[:4]
    assert after[4] == "苏州"
    assert after[5:-1] == before[5:-1]
    assert tags_in_db() == tags_before


def test_a_consent_cell_can_withdraw_and_restore_consent_and_set_the_unsubscribe_time(
    tmp_path: Path,
) -> None:
    header = "external_id,registered_at,sms_opt_in,push_opt_in,wechat_opt_in,unsubscribed_at"
    import_file(
        "customers",
        customers_file(tmp_path, "C1,2024-01-01,0,no,否,2024-03-01 12:00", header=header),
    )

    import_file("customers", customers_file(tmp_path, "C1,2024-01-01,1,,,", header=header))

    assert Customer.objects.values_list(
        "sms_opt_in", "push_opt_in", "wechat_opt_in", "unsubscribed_at"
    ).get() == (True, False, False, dt.datetime(2024, 3, 1, 4, 0, tzinfo=UTC))


def test_bad_customer_rows_are_reported_and_a_repeated_id_keeps_the_first(tmp_path: Path) -> None:
    path = customers_file(
        tmp_path,
        "C4,,12345,,,,,,2024-01-01,,,",
        "C5,,,bad@,,x,,,2024-01-01,,,",
        "C6,,,,,,2099-01-01,,2024-01-01,,,",
        "C7,,,,,,,,,maybe,,",
        "C8,,,,,,,tv,2024-01-01,,,",
        "C9,第一,,,,,,,2024-01-01,,,",
        "C9,第二,,,,,,,2024-01-01,,,",
    )

    report = import_file("customers", path)

    assert report.as_dict() == expected_report(
        "customers",
        rows_total=7,
        imported=1,
        rejected=6,
        errors=[
            {
                "row": 2,
                "column": "phone",
                "reason": "not a phone number: '12345'"
                " (use +<country code><number> or an 11-digit mainland number)",
            },
            {"row": 3, "column": "email", "reason": "not an e-mail address: 'bad@'"},
            {"row": 3, "column": "gender", "reason": "must be one of: f, m, u"},
            {"row": 4, "column": "birth_date", "reason": "is in the future"},
            {"row": 5, "column": "registered_at", "reason": "missing required value"},
            {"row": 5, "column": "sms_opt_in", "reason": "must be true or false (1/0, yes/no)"},
            {
                "row": 6,
                "column": "channel",
                "reason": "must be one of: app, mini_program, web, store, other",
            },
            {
                "row": 8,
                "column": "external_id",
                "reason": "duplicate external_id: row 7 has it first",
            },
        ],
        message="6 bad row(s) were skipped",
    )
    assert list(Customer.objects.values_list("external_id", "name")) == [("C9", "第一")]


def test_a_strict_customers_import_with_a_bad_row_leaves_customers_and_tags_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_import, "CHUNK_ROWS", 1)
    import_file("customers", customers_file(tmp_path, *FIRST_CUSTOMERS))
    before = (customers_in_db(), tags_in_db(), list(Tag.objects.values_list("name", flat=True)))
    path = customers_file(
        tmp_path,
        "C1,张三,,,,,,,2024-01-02,1,1,新标签",
        "C3,王芳,,,,,,,2024-02-01,,,新客",
        "C4,,12345,,,,,,2024-01-01,,,",
    )

    report = import_file("customers", path, is_strict=True)

    assert report.as_dict() == expected_report(
        "customers",
        status="rejected",
        rows_total=3,
        rejected=1,
        errors=[
            {
                "row": 4,
                "column": "phone",
                "reason": "not a phone number: '12345'"
                " (use +<country code><number> or an 11-digit mainland number)",
            }
        ],
        message="strict import rejected: 1 bad row(s); nothing was written",
    )
    assert (
        customers_in_db(),
        tags_in_db(),
        list(Tag.objects.values_list("name", flat=True)),
    ) == before


# Import runs and the commands


def test_an_import_run_records_the_report(tmp_path: Path, two_customers: None) -> None:
    path = csv_file(tmp_path, ORDERS_HEADER, "O1,C1,2024-05-01,10,,,", "O2,C1,2024-05-01,-1,,,")
    run = create_import_run(kind="orders", file_name="orders.csv", stored_path=path)

    run_import(import_run_id=run.pk)

    run.refresh_from_db()
    assert run.finished_at is not None
    assert (
        run.kind,
        run.status,
        run.rows_total,
        run.rows_imported,
        run.rows_updated,
        run.rows_unchanged,
        run.rows_rejected,
        run.errors,
        run.errors_not_shown,
        run.message,
    ) == (
        "orders",
        "done",
        2,
        1,
        0,
        0,
        1,
        [{"row": 3, "column": "amount", "reason": "negative amount"}],
        0,
        "1 bad row(s) were skipped",
    )


def test_a_finished_import_run_is_not_run_again(tmp_path: Path, two_customers: None) -> None:
    path = csv_file(tmp_path, ORDERS_HEADER, "O1,C1,2024-05-01,10,,,")
    run = create_import_run(kind="orders", file_name="orders.csv", stored_path=path)
    run_import(import_run_id=run.pk)
    finished = ImportRun.objects.values().get(pk=run.pk)
    csv_file(tmp_path, ORDERS_HEADER, "O1,C1,2024-05-01,10,,,", "O2,C1,2024-05-01,10,,,")

    run_import(import_run_id=run.pk)

    assert ImportRun.objects.values().get(pk=run.pk) == finished
    assert Order.objects.count() == 1


def test_an_import_run_whose_file_is_gone_is_recorded_as_failed(tmp_path: Path, db: None) -> None:
    missing = tmp_path / "gone.csv"
    run = create_import_run(kind="orders", file_name="gone.csv", stored_path=missing)

    with pytest.raises(FileNotFoundError):
        run_import(import_run_id=run.pk)

    run.refresh_from_db()
    assert (run.status, run.message) == (
        "failed",
        f"FileNotFoundError: [Errno 2] No such file or directory: '{missing}'",
    )
    assert run.finished_at is not None


def test_only_an_orders_import_run_creates_missing_customers(tmp_path: Path, db: None) -> None:
    run = create_import_run(
        kind="customers",
        file_name="c.csv",
        stored_path=tmp_path / "c.csv",
        create_missing_customers=True,
    )

    assert run.create_missing_customers is False


@pytest.mark.usefixtures("two_customers")
def test_the_import_orders_command_prints_the_report_and_records_the_run(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path, ORDERS_HEADER, "O1,C1,2024-05-01,10,,,", "O2,C1,2024-05-01,-1,,,", name="o.csv"
    )
    out = StringIO()

    call_command("import_orders", str(path), stdout=out)

    run = ImportRun.objects.get()
    assert out.getvalue() == (
        f"orders: done (import run {run.pk}): 2 rows, 1 imported, 0 updated, 0 unchanged,"
        " 1 rejected\n"
        "  row 3 [amount]: negative amount\n"
    )
    assert (run.file_name, run.stored_path, run.is_strict, run.create_missing_customers) == (
        "o.csv",
        str(path.resolve()),
        False,
        False,
    )


def test_the_import_orders_command_prints_json_and_creates_missing_customers(
    tmp_path: Path, db: None
) -> None:
    path = csv_file(tmp_path, ORDERS_HEADER, "O1,N1,2024-05-01,10,,,")
    out = StringIO()

    call_command("import_orders", str(path), "--json", "--create-missing-customers", stdout=out)

    run = ImportRun.objects.get()
    assert json.loads(out.getvalue()) == {
        "import_run": run.pk,
        "kind": "orders",
        "status": "done",
        "rows_total": 1,
        "imported": 1,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
        "errors": [],
        "errors_not_shown": 0,
        "message": "",
    }
    assert run.create_missing_customers is True
    assert list(Customer.objects.values_list("external_id", flat=True)) == ["N1"]


@pytest.mark.parametrize(
    ("command", "header", "row", "errors"),
    [
        (
            "import_orders",
            ORDERS_HEADER,
            "O1,C1,2024-05-01,-1,,,",
            [{"row": 2, "column": "amount", "reason": "negative amount"}],
        ),
        (
            "import_events",
            EVENTS_HEADER,
            "E1,C9,sign_in,2024-05-01,",
            [{"row": 2, "column": "customer_id", "reason": "unknown customer 'C9'"}],
        ),
        (
            "import_customers",
            "external_id,registered_at",
            "C5,someday",
            [{"row": 2, "column": "registered_at", "reason": not_iso("someday")}],
        ),
    ],
    ids=["orders", "events", "customers"],
)
@pytest.mark.usefixtures("two_customers")
def test_a_strict_import_command_with_a_bad_row_exits_1_and_records_a_rejected_run(
    tmp_path: Path, command: str, header: str, row: str, errors: list[dict[str, Any]]
) -> None:
    path = csv_file(tmp_path, header, row)
    out = StringIO()

    with pytest.raises(CommandError) as error:
        call_command(command, str(path), "--strict", "--json", stdout=out)

    message = "strict import rejected: 1 bad row(s); nothing was written"
    assert (str(error.value), error.value.returncode) == (message, 1)
    run = ImportRun.objects.get()
    assert json.loads(out.getvalue()) == {
        "import_run": run.pk,
        "kind": command.removeprefix("import_"),
        "status": "rejected",
        "rows_total": 1,
        "imported": 0,
        "updated": 0,
        "unchanged": 0,
        "rejected": 1,
        "errors": errors,
        "errors_not_shown": 0,
        "message": message,
    }
    assert (run.status, run.is_strict, run.rows_rejected) == ("rejected", True, 1)
    assert (Order.objects.count(), Event.objects.count(), Customer.objects.count()) == (0, 0, 2)


def test_an_import_command_for_a_file_that_is_not_utf8_exits_1(tmp_path: Path, db: None) -> None:
    path = csv_file(tmp_path, EVENTS_HEADER, "E1,C1,浏览,2024-05-01,", encoding="gbk")

    with pytest.raises(CommandError) as error:
        call_command("import_events", str(path), stdout=StringIO())

    assert (str(error.value), error.value.returncode) == (NOT_UTF8, 1)
    assert ImportRun.objects.values_list("status", "message").get() == ("rejected", NOT_UTF8)


def test_an_import_command_for_a_missing_file_exits_1_without_a_run(
    tmp_path: Path, db: None
) -> None:
    with pytest.raises(CommandError) as error:
        call_command("import_customers", str(tmp_path / "nope.csv"))

    assert (str(error.value), error.value.returncode) == (f"no such file: {tmp_path}/nope.csv", 1)
    assert ImportRun.objects.count() == 0


def _manage(*args: str) -> subprocess.CompletedProcess[str]:
    database = connection.settings_dict
    if connection.vendor == "sqlite":
        url = f"sqlite:///{database['NAME']}"
    else:
        user, password = (
            quote(database["USER"] or "", safe=""),
            quote(database["PASSWORD"] or "", safe=""),
        )
        url = (
            f"postgres://{user}:{password}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
        )
    return subprocess.run(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args],
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# serialized_rollback like every transactional test here: a plain flush re-creates content types
# under new ids, which the next serialized test then fails to restore.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_import_command_process_exits_0_after_a_default_import_and_1_when_strict_rejects(
    tmp_path: Path,
) -> None:
    CustomerFactory(external_id="C1")
    path = csv_file(tmp_path, ORDERS_HEADER, "O1,C1,2024-05-01,10,,,", "O2,C1,2024-05-01,-1,,,")

    default = _manage("import_orders", str(path), "--json")
    strict = _manage("import_orders", str(path), "--strict", "--json")

    assert (default.returncode, json.loads(default.stdout)["imported"]) == (0, 1)
    assert (strict.returncode, json.loads(strict.stdout)["status"]) == (1, "rejected")
    assert strict.stderr == (
        "CommandError: strict import rejected: 1 bad row(s); nothing was written\n"
    )
    assert list(ImportRun.objects.order_by("pk").values_list("status", "is_strict")) == [
        ("done", False),
        ("rejected", True),
    ]


def test_the_import_customers_command_has_no_create_missing_customers_option() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(Path(settings.BASE_DIR) / "manage.py"),
            "import_customers",
            "x.csv",
            "--create-missing-customers",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 2
    assert "unrecognized arguments: --create-missing-customers" in result.stderr
