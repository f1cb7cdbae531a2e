"""loyalty_verify: prove that every member's points equal the ledger's sums."""

from __future__ import annotations

import dataclasses
import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from loyalty.queries import check_points_ledger


class Command(BaseCommand):
    help = (
        "Compare every membership's points balance and pending points with the sums of the "
        "points ledger; prints OK or each customer that differs, and exits 1 if any does."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--json", action="store_true", help="print the result as one JSON object"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        check = check_points_ledger()
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "ok": check.is_consistent,
                        "members_checked": check.members_checked,
                        "mismatches": [dataclasses.asdict(row) for row in check.mismatches],
                    }
                )
            )
        elif check.is_consistent:
            self.stdout.write(
                f"OK: the points of {check.members_checked} members match the ledger."
            )
        else:
            for row in check.mismatches:
                stored = (
                    "no membership"
                    if row.stored_balance is None
                    else f"balance {row.stored_balance}, pending {row.stored_pending}"
                )
                self.stdout.write(
                    f"customer {row.customer_id}: stored {stored}; "
                    f"ledger balance {row.ledger_balance}, pending {row.ledger_pending}"
                )
            self.stdout.write(
                f"{len(check.mismatches)} of {check.members_checked} members differ "
                f"from the ledger."
            )
        if not check.is_consistent:
            raise SystemExit(1)
