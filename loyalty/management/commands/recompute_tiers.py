import dataclasses
import datetime as dt
import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from loyalty.services.tiers import recompute_tiers


def _as_of(value: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--as-of: {value!r} is not an ISO date-time") from None
    # A bare date-time is read in the project's time zone, as the console shows times.
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


class Command(BaseCommand):
    help = "Move every member to the tier their growth earns (up now, down after the grace period)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--as-of", help="an ISO date-time to recompute as of (default: now)")
        parser.add_argument("--json", action="store_true", help="print the counts as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = _as_of(options["as_of"]) if options["as_of"] else timezone.now()
        counts = dataclasses.asdict(recompute_tiers(now=as_of))
        if options["json"]:
            self.stdout.write(json.dumps({"as_of": as_of.isoformat(), **counts}))
            return
        self.stdout.write(f"Tiers recomputed as of {timezone.localtime(as_of).isoformat()}")
        for name, value in counts.items():
            self.stdout.write(f"  {name.replace('_', ' ')}: {value}")
