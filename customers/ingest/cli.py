"""The shared body of the import_customers, import_orders and import_events commands."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from customers.ingest.runs import create_import_run, report_of, run_import
from customers.models import ImportStatus

ERRORS_PRINTED = 20


class ImportCommand(BaseCommand):
    kind: str
    has_create_missing_customers = False

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", help="a UTF-8 CSV file whose first row names the columns")
        parser.add_argument(
            "--strict",
            action="store_true",
            help="reject the whole file, writing nothing, if any row is bad",
        )
        parser.add_argument(
            "--json", action="store_true", help="print the report as one JSON object"
        )
        if self.has_create_missing_customers:
            parser.add_argument(
                "--create-missing-customers",
                action="store_true",
                help=(
                    "create a customer for an unknown customer_id (registered at their first order)"
                ),
            )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        run = create_import_run(
            kind=self.kind,
            file_name=path.name,
            stored_path=path.resolve(),
            is_strict=options["strict"],
            create_missing_customers=options.get("create_missing_customers", False),
        )
        try:
            run = run_import(import_run_id=run.pk)
        except Exception:
            if options.get("traceback"):
                raise
            # run_import has recorded the run as failed, with the error as its message.
            run.refresh_from_db()
        report = report_of(run)
        if options["json"]:
            self.stdout.write(json.dumps(report, ensure_ascii=False))
        else:
            self._print(report)
        if run.status != ImportStatus.DONE:
            raise CommandError(report["message"] or f"import {run.status}", returncode=1)

    def _print(self, report: dict[str, Any]) -> None:
        self.stdout.write(
            f"{report['kind']}: {report['status']} (import run {report['import_run']}): "
            f"{report['rows_total']} rows, {report['imported']} imported, "
            f"{report['updated']} updated, {report['unchanged']} unchanged, "
            f"{report['rejected']} rejected"
        )
        for error in report["errors"][:ERRORS_PRINTED]:
            column = f" [{error['column']}]" if error.get("column") else ""
            self.stdout.write(f"  row {error['row']}{column}: {error['reason']}")
        more = len(report["errors"]) - ERRORS_PRINTED + report["errors_not_shown"]
        if more > 0:
            self.stdout.write(f"  … and {more} more error(s) (--json prints the first 1,000)")
