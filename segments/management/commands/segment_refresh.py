import datetime as dt
import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from segments.models import Segment
from segments.queries import list_dynamic_segment_ids
from segments.services.refresh import SegmentIsFrozen, refresh_segment_members


def _as_of(value: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--as-of: {value!r} is not an ISO date-time") from None
    # A bare date-time is read in the project's time zone, as the console shows times.
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


class Command(BaseCommand):
    help = (
        "Refresh segment members now, in this process: one segment by id, or every dynamic "
        "segment with --all. A static segment takes a new snapshot only with --resnapshot."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("segment_id", nargs="?", type=int, help="the segment to refresh")
        parser.add_argument("--all", action="store_true", help="every dynamic segment")
        parser.add_argument(
            "--resnapshot", action="store_true", help="replace a static segment's snapshot"
        )
        parser.add_argument("--as-of", help="an ISO date-time to refresh as of (default: now)")
        parser.add_argument("--json", action="store_true", help="print the results as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        segment_id = options["segment_id"]
        if (segment_id is None) == (not options["all"]):
            raise CommandError("give one segment id or --all")
        if segment_id is not None and not Segment.objects.filter(pk=segment_id).exists():
            raise CommandError(f"segment {segment_id} does not exist")
        as_of = _as_of(options["as_of"]) if options["as_of"] else timezone.now()
        ids = [segment_id] if segment_id is not None else list_dynamic_segment_ids()
        results = []
        for one_id in ids:
            try:
                refresh = refresh_segment_members(
                    segment_id=one_id, as_of=as_of, resnapshot=options["resnapshot"]
                )
            except SegmentIsFrozen as exc:
                raise CommandError(
                    f"segment {one_id} is static; pass --resnapshot to take a new snapshot"
                ) from exc
            results.append(
                {
                    "segment_id": one_id,
                    "name": refresh.segment.name,
                    "size": refresh.size,
                    "joined": refresh.joined,
                    "left": refresh.left,
                    "duration_ms": refresh.duration_ms,
                    "error": refresh.error,
                }
            )
        failed = [result for result in results if result["error"]]
        if options["json"]:
            self.stdout.write(
                json.dumps({"as_of": as_of.isoformat(), "segments": results}, ensure_ascii=False)
            )
        else:
            for result in results:
                line = (
                    f"{result['segment_id']} {result['name']}: {result['size']} members "
                    f"(+{result['joined']} -{result['left']}) in {result['duration_ms']} ms"
                )
                if result["error"]:
                    line = f"{result['segment_id']} {result['name']}: FAILED: {result['error']}"
                self.stdout.write(line)
        if failed:
            raise CommandError(f"{len(failed)} of {len(results)} segment refreshes failed")
