"""Streaming CSV import of customers, orders and events.

The file is streamed CHUNK_ROWS rows at a time: each chunk is parsed and validated in Python
(rows.py) and written set-based (store.py), so memory stays flat however large the file is.
Row numbers are what a spreadsheet shows: the header is row 1, the first data row is row 2.

Every import first reads the whole file once as CSV (about 1 s per million rows), so that a file
that is not UTF-8, or not CSV, half-way down is rejected before anything is written: default mode
commits its chunks as it goes and could not take them back.

Default mode writes the good rows (each chunk in its own transaction) and reports the bad ones.
Strict mode runs the whole import in one transaction: it still reads to the end so that every bad
row is reported, stops writing at the first bad one, and rolls everything back if there was any.
"""

from __future__ import annotations

import csv
import operator
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.db import transaction

from customers.ingest import store
from customers.ingest.rows import SCHEMAS, FieldError, Schema, parse_values
from customers.models import ImportStatus

# Rows per chunk. Each chunk costs one staging load (COPY on PostgreSQL) and 4-6 set-based
# statements, and holds its parsed rows in memory (~1 KB each with Python's object overhead):
# 10,000 rows is ~10 MB, large enough that per-statement costs vanish at a million rows.
CHUNK_ROWS = 10_000
# At most this many errors are kept in a report (and stored on its ImportRun); the rest are only
# counted, so a file with a million bad rows still has a small report.
MAX_REPORTED_ERRORS = 1_000
# One CSV cell may be this long (Python's default is 128 KB); event properties can be large.
csv.field_size_limit(10 * 1024 * 1024)


@dataclass
class ImportReport:
    kind: str
    status: str = ImportStatus.DONE
    rows_total: int = 0
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    errors_not_shown: int = 0
    message: str = ""

    def add_error(self, row: int, column: str | None, reason: str) -> None:
        if len(self.errors) >= MAX_REPORTED_ERRORS:
            self.errors_not_shown += 1
            return
        error: dict[str, Any] = {"row": row}
        if column:
            error["column"] = column
        error["reason"] = reason
        self.errors.append(error)

    @property
    def has_errors(self) -> bool:
        return bool(self.errors)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "status": self.status,
            "rows_total": self.rows_total,
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "errors": self.errors,
            "errors_not_shown": self.errors_not_shown,
            "message": self.message,
        }


class FileRejected(Exception):
    """The file as a whole cannot be imported (no header, a required column missing, ...)."""


NOT_UTF8_MESSAGE = "the file is not UTF-8 text: save it as CSV (UTF-8) and upload it again"


def import_file(
    kind: str,
    path: str | Path,
    *,
    is_strict: bool = False,
    create_missing_customers: bool = False,
    on_chunk_written: Callable[[set[int]], None] | None = None,
) -> ImportReport:
    """Import one CSV file (UTF-8, with or without BOM); see import_stream."""
    with open(path, newline="", encoding="utf-8-sig") as stream:
        return import_stream(
            kind,
            stream,
            is_strict=is_strict,
            create_missing_customers=create_missing_customers,
            on_chunk_written=on_chunk_written,
        )


def import_stream(
    kind: str,
    stream: IO[str],
    *,
    is_strict: bool = False,
    create_missing_customers: bool = False,
    on_chunk_written: Callable[[set[int]], None] | None = None,
) -> ImportReport:
    """Import CSV text of one kind; writes rows (see the module doc) and returns the report.

    on_chunk_written receives the ids of the customers each committed chunk touched, so that a
    caller can enqueue follow-up work without this import holding every id in memory. A strict
    import commits only at its end and does not call it. A stream that cannot seek back is not
    checked ahead: a decoding or CSV error half-way down a default import then rejects the file
    after the chunks before it were written.
    """
    schema = SCHEMAS[kind]
    report = ImportReport(kind=kind)
    reader = csv.reader(stream)
    try:
        if stream.seekable():
            _check_readable(stream)
        try:
            header = next(reader)
        except StopIteration:
            raise FileRejected("the file is empty: the first row must name the columns") from None
        pick, columns = _read_header(schema, header, report)
        writer = store.writer_for(
            kind, columns=columns, create_missing_customers=create_missing_customers
        )
        # The writer's staging tables live outside the strict transaction, so that they can still
        # be dropped after a database error has aborted it.
        with writer, transaction.atomic() if is_strict else nullcontext():
            for chunk in _chunks(_numbered_rows(reader, schema, pick, len(header), report)):
                is_dry_run = is_strict and report.has_errors
                with nullcontext() if is_strict else transaction.atomic():
                    result = writer.write(chunk, is_dry_run=is_dry_run)
                _merge(report, result, schema.id_field)
                if on_chunk_written and result.customer_ids and not is_strict:
                    on_chunk_written(result.customer_ids)
            if is_strict and report.has_errors:
                transaction.set_rollback(True)
    except FileRejected as error:
        return _rejected(report, str(error), is_strict=is_strict)
    except UnicodeDecodeError:
        return _rejected(report, NOT_UTF8_MESSAGE, is_strict=is_strict)
    except csv.Error as error:
        message = f"the file is not valid CSV near line {reader.line_num}: {error}"
        return _rejected(report, message, is_strict=is_strict)
    report.errors.sort(key=operator.itemgetter("row"))
    unknown_columns = ", ".join(error["column"] for error in report.errors if error["row"] == 1)
    if is_strict and report.has_errors:
        report.status = ImportStatus.REJECTED
        problems = [f"{report.rejected} bad row(s)"] if report.rejected else []
        if unknown_columns:
            problems.append(f"unknown column(s) {unknown_columns}")
        report.message = f"strict import rejected: {' and '.join(problems)}; nothing was written"
        report.imported = report.updated = report.unchanged = 0
    else:
        notes = [f"{report.rejected} bad row(s) were skipped"] if report.rejected else []
        if unknown_columns:
            notes.append(f"unknown column(s) ignored: {unknown_columns}")
        report.message = "; ".join(notes)
    return report


def _rejected(report: ImportReport, message: str, *, is_strict: bool) -> ImportReport:
    report.status = ImportStatus.REJECTED
    report.message = message
    if is_strict:
        report.imported = report.updated = report.unchanged = 0
    elif report.imported or report.updated or report.unchanged:
        # Only a stream that could not be checked ahead gets here with committed chunks.
        report.message += "; the rows before it were written"
    return report


def _check_readable(stream: IO[str]) -> None:
    """Read the stream to its end as CSV and go back to where it was; FileRejected if it fails."""
    start = stream.tell()
    reader = csv.reader(stream)
    try:
        for _cells in reader:
            pass
    except UnicodeDecodeError:
        raise FileRejected(NOT_UTF8_MESSAGE) from None
    except csv.Error as error:
        raise FileRejected(
            f"the file is not valid CSV near line {reader.line_num}: {error}"
        ) from None
    stream.seek(start)


def _read_header(
    schema: Schema[Any], header: list[str], report: ImportReport
) -> tuple[Callable[[list[str]], tuple[str, ...]], list[str]]:
    """Check the header row; returns a function picking a row's cells in the schema's order."""
    if len(header) == 1 and any(separator in header[0] for separator in ";\t"):
        # Excel in many locales saves "CSV" with semicolons; say so instead of listing every
        # required column as missing.
        raise FileRejected(
            "the header row has no commas: columns must be separated by commas, not by"
            " semicolons or tabs"
        )
    names = [name.strip().lower() for name in header]
    positions: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in positions:
            raise FileRejected(f"the column {name!r} appears twice in the header")
        if name and name not in schema.names:
            report.add_error(
                1, name, f"unknown column (expected some of: {', '.join(schema.names)})"
            )
            continue
        if name:
            positions[name] = index
    missing = [name for name in schema.required_names if name not in positions]
    if missing:
        raise FileRejected(f"required column(s) missing from the header: {', '.join(missing)}")
    # Columns the file lacks read the blank cell appended at the end of every row.
    indices = [positions.get(name, -1) for name in schema.names]
    getter = operator.itemgetter(*indices)
    return getter, list(positions)


def _numbered_rows(
    reader: Iterable[list[str]],
    schema: Schema[Any],
    pick: Callable[[list[str]], tuple[str, ...]],
    width: int,
    report: ImportReport,
) -> Iterator[tuple[int, Any]]:
    """(row number, typed row) for each good row; bad rows go into the report."""
    for row_no, cells in enumerate(reader, start=2):
        if len(cells) != width:
            if not "".join(cells).strip():
                continue  # a blank line
            if len(cells) > width and "".join(cells[width:]).strip():
                report.rows_total += 1
                report.rejected += 1
                report.add_error(
                    row_no, None, f"{len(cells)} values but the header has {width} columns"
                )
                continue
            cells = cells[:width] + [""] * (width - len(cells))
        cells.append("")
        parsed = parse_values(schema, pick(cells))
        if isinstance(parsed, list):
            # A row of empty cells (",,,,", common at the end of spreadsheet exports) is a blank
            # line, not a bad row; checked only on failure, so good rows pay nothing for it.
            if not "".join(cells).strip():
                continue
            report.rows_total += 1
            _reject(report, row_no, parsed)
            continue
        report.rows_total += 1
        yield row_no, parsed


def _reject(report: ImportReport, row_no: int, errors: list[FieldError]) -> None:
    report.rejected += 1
    for error in errors:
        report.add_error(row_no, error.field, error.reason)


def _chunks(rows: Iterator[tuple[int, Any]]) -> Iterator[list[tuple[int, Any]]]:
    chunk: list[tuple[int, Any]] = []
    for item in rows:
        chunk.append(item)
        if len(chunk) >= CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _merge(report: ImportReport, result: store.ChunkResult, id_field: str) -> None:
    report.imported += result.inserted
    report.updated += result.updated
    report.unchanged += result.unchanged
    for row_no, first_row in result.repeated:
        report.rejected += 1
        report.add_error(row_no, id_field, f"duplicate {id_field}: row {first_row} has it first")
    for problem in result.problems:
        report.rejected += 1
        report.add_error(problem.row, problem.field, problem.reason)
