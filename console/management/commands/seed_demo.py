"""Load realistic demo data into an empty database and make sure the demo users exist."""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_rq
import redis
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from console.launcher import DEMO_LOGINS
from console.queues import DEFAULT
from console.roles import ADMINS
from customers.demo import DemoSummary, load_demo_data
from customers.jobs import recompute_metrics_job
from customers.models import Customer
from loyalty.jobs import catch_up_job, recompute_tiers_job
from segments.jobs import refresh_all_dynamic_segments_job

DEFAULT_CUSTOMERS = 20_000
DEFAULT_SEED = 1


class Command(BaseCommand):
    help = (
        "Create the demo users (admin, manager, operator) when missing and load realistic demo "
        "customers, tags, orders and events into an empty database. The same --seed and --as-of "
        "give the same rows."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--customers",
            type=int,
            default=DEFAULT_CUSTOMERS,
            help=f"how many customers to generate (default {DEFAULT_CUSTOMERS:,})",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=DEFAULT_SEED,
            help=f"random seed (default {DEFAULT_SEED})",
        )
        parser.add_argument(
            "--as-of",
            help="the moment the data ends at, ISO 8601, e.g. 2025-06-30T20:00:00+08:00 "
            "(default now; without an offset it is read in TIME_ZONE)",
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="do nothing (and succeed) when customers already exist, instead of refusing",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        customers: int = options["customers"]
        if customers < 0:
            raise CommandError("--customers cannot be negative")
        as_of = _parse_as_of(options["as_of"])
        self._ensure_demo_users()

        existing = Customer.objects.count()
        if existing:
            if options["if_empty"]:
                self.stdout.write(f"{existing:,} customers already present: demo data not loaded.")
                return
            raise CommandError(
                f"The database already holds {existing:,} customers; seed_demo only loads into an "
                "empty database. Use --if-empty to skip loading when data exists."
            )

        self.stdout.write(
            f"Loading demo data: {customers:,} customers, seed {options['seed']}, "
            f"as of {timezone.localtime(as_of):%Y-%m-%d %H:%M:%S %z}…"
        )
        summary = load_demo_data(
            customers=customers,
            seed=options["seed"],
            as_of=as_of,
            on_progress=self._progress if options["verbosity"] >= 2 else None,
        )
        self.stdout.write(_describe(summary))
        self._after_loading(as_of=as_of)

    def _after_loading(self, *, as_of: dt.datetime) -> None:
        """Queue the work derived from the loaded data, in layer order, for the RQ worker.

        On the worker, not here: metrics, points and tiers over 20,000 customers take longer than
        the load itself, and `make run` serves pages meanwhile. One worker takes the default
        queue in order, so each step sees the one before it.
        """
        as_of_iso = as_of.isoformat()
        queue = django_rq.get_queue(DEFAULT)
        steps = [
            (recompute_metrics_job, (as_of_iso,)),
            (catch_up_job, ()),
            (recompute_tiers_job, (as_of_iso,)),
            (refresh_all_dynamic_segments_job, ()),
        ]
        try:
            for function, args in steps:
                queue.enqueue(function, *args, job_timeout=3600)
        except redis.RedisError as error:
            self.stdout.write(
                f"Could not queue the follow-up jobs ({error}); run recompute_metrics, "
                "recompute_tiers and segment_refresh --all by hand."
            )
            return
        self.stdout.write(
            "Queued for the worker: customer metrics, memberships and points, tiers, segments."
        )

    def _ensure_demo_users(self) -> None:
        user_model = get_user_model()
        with transaction.atomic():
            for username, password, role in DEMO_LOGINS:
                group = Group.objects.filter(name=role).first()
                if group is None:
                    raise CommandError(f"The role group {role!r} is missing: run migrate first.")
                user, created = user_model.objects.get_or_create(
                    username=username, defaults={"is_staff": role == ADMINS}
                )
                if not created:
                    # Someone may have changed the password or the roles: never undo that.
                    self.stdout.write(f"Demo user {username} exists: left unchanged.")
                    continue
                user.set_password(password)
                user.save(update_fields=["password"])
                user.groups.add(group)
                self.stdout.write(f"Demo user {username} created ({role}).")

    def _progress(self, customers_done: int) -> None:
        self.stdout.write(f"  {customers_done:,} customers…")


def _parse_as_of(value: str | dt.datetime | None) -> dt.datetime:
    now = timezone.now()
    if value is None:
        return now
    try:
        as_of = value if isinstance(value, dt.datetime) else parse_datetime(value)
    except ValueError as error:  # well-formed but impossible, e.g. 2025-02-30
        raise CommandError(f"--as-of {value!r} is not a valid date and time: {error}") from None
    if as_of is None:
        raise CommandError(f"--as-of {value!r} is not an ISO 8601 date and time")
    if timezone.is_naive(as_of):
        as_of = timezone.make_aware(as_of)
    if as_of > now:
        raise CommandError("--as-of is in the future: demo data must not be")
    return as_of


def _describe(summary: DemoSummary) -> str:
    return (
        f"Loaded {summary.customers:,} customers, {summary.orders:,} orders, "
        f"{summary.events:,} events, {summary.tags} tags ({summary.customer_tags:,} tag links) "
        f"in {summary.seconds:.1f} s."
    )
