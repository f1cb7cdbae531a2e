"""Preview a rule tree from a JSON file: how many customers it matches, in one JSON object."""

from __future__ import annotations

import json
import sys
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from segments.rules.errors import RulesInvalid
from segments.rules.preview import parse_as_of, preview_rules


class Command(BaseCommand):
    help = (
        "Count the customers a rule tree (a JSON file, or - for stdin) matches; prints one JSON "
        'object {"count", "sql_ms", "as_of", "sample_ids", "sql", "params"}, or {"errors"} '
        "and exits 1."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", help="a JSON file holding the rule tree; - reads stdin")
        parser.add_argument(
            "--as-of",
            help="evaluate as of this ISO 8601 datetime (default: now); no offset: TIME_ZONE",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tree = self._read(options["file"])
        as_of = None
        if options["as_of"]:
            try:
                as_of = parse_as_of(options["as_of"])
            except ValueError as error:
                raise CommandError(str(error)) from None
        try:
            result = preview_rules(tree, as_of=as_of)
        except RulesInvalid as invalid:
            self.stdout.write(
                json.dumps(
                    {"errors": [error.as_dict() for error in invalid.errors]}, ensure_ascii=False
                )
            )
            raise CommandError(
                f"the rules are invalid ({len(invalid.errors)} error(s))", returncode=1
            ) from None
        output = {
            "count": result.count,
            "sql_ms": result.sql_ms,
            "as_of": result.as_of.isoformat(),
            "sample_ids": [customer.pk for customer in result.sample],
            "sql": result.sql,
            "params": [str(param) for param in result.params],
        }
        self.stdout.write(json.dumps(output, ensure_ascii=False))

    def _read(self, name: str) -> Any:
        if name == "-":
            text = sys.stdin.read()
        else:
            path = Path(name)
            if not path.is_file():
                raise CommandError(f"no such file: {path}")
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise CommandError(f"{path} is not UTF-8 text") from None
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as error:
            raise CommandError(f"{name} is not valid JSON: {error}") from None
