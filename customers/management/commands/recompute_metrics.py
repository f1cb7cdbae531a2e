import datetime as dt
import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from customers.metrics import recompute_metrics


def _as_of(value: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--as-of: {value!r} is not an ISO date-time") from None
    # A bare date-time is read in the project's time zone, as the console shows times.
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def _customer_ids(value: str) -> list[int]:
    parts = [part.strip() for part in value.split(",") if part.strip()]
    bad = [part for part in parts if not part.isdigit()]
    if bad or not parts:
        shown = ", ".join(repr(part) for part in bad) or "nothing"
        raise CommandError(f"--customer-ids: {shown} is not a list of customer ids")
    return [int(part) for part in parts]


class Command(BaseCommand):
    help = (
        "Recompute every customer's metrics (orders, spend, RFM, value tier, lifecycle stage) "
        "in SQL, or only some customers' with --customer-ids."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--as-of", help="an ISO date-time to recompute as of (default: now)")
        parser.add_argument(
            "--customer-ids",
            help="comma-separated customer ids: recompute only these, against the last full "
            "recompute's RFM breakpoints",
        )
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = _as_of(options["as_of"]) if options["as_of"] else timezone.now()
        ids = _customer_ids(options["customer_ids"]) if options["customer_ids"] else None
        result = recompute_metrics(as_of=as_of, customer_ids=ids)
        if options["json"]:
            self.stdout.write(json.dumps(result.as_json(), ensure_ascii=False))
            return
        kind = "all customers" if result.is_full else "some customers"
        self.stdout.write(
            f"Metrics of {kind} recomputed as of {timezone.localtime(as_of).isoformat()}: "
            f"{result.customers} rows in {result.duration_ms} ms"
        )
        for title, counts in (
            ("lifecycle stages", result.lifecycle_stages),
            ("value tiers", result.value_tiers),
        ):
            if counts:
                listed = ", ".join(f"{name} {count}" for name, count in counts.items())
                self.stdout.write(f"  {title}: {listed}")
