"""Membership rows: one per customer, created set-based for every customer who lacks one."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from customers.models import Customer
from loyalty.models import LoyaltySettings, Membership, Tier, TierChange, TierChangeReason

NEW_MEMBERS = "loyalty_new_members"  # a TEMP table, private to the connection


def quote_table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def db_datetime(value: dt.datetime) -> Any:
    """A bound-parameter form of an aware datetime that compares right on both databases.

    SQLite keeps datetimes as naive UTC text; a raw parameter must be in the same form.
    """
    if timezone.is_naive(value):
        raise ValueError(f"an aware datetime is needed, not {value!r}")
    return connection.ops.adapt_datetimefield_value(value)


def resolve_now(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return timezone.now()
    if timezone.is_naive(now):
        raise ValueError(f"an aware datetime is needed, not {now!r}")
    return now


def lock_loyalty_settings() -> LoyaltySettings:
    """The settings row, locked until the transaction ends: tier writes take turns on it.

    On PostgreSQL this is SELECT ... FOR UPDATE; SQLite's IMMEDIATE transactions (settings)
    already hold the database's one write lock from BEGIN, and Django skips FOR UPDATE there.
    Call it before touching Membership rows, so that no two writers wait on each other.
    """
    LoyaltySettings.objects.get_or_create(pk=1)
    return LoyaltySettings.objects.select_for_update().get(pk=1)


@transaction.atomic
def sync_memberships(*, now: dt.datetime | None = None) -> int:
    """Give every customer without a Membership one at the lowest-rank tier; returns how many.

    Each new member also gets a "joined" TierChange. Safe to run at any time and twice. In a
    longer transaction, call it before touching Membership rows (see lock_loyalty_settings).
    """
    now = resolve_now(now)
    customers = quote_table(Customer)
    memberships = quote_table(Membership)
    lacking = (
        f"FROM {customers} c WHERE NOT EXISTS "
        f"(SELECT 1 FROM {memberships} m WHERE m.customer_id = c.id)"
    )
    with connection.cursor() as cursor:
        # Most calls find nobody new; they return without waiting for the lock.
        cursor.execute(f"SELECT EXISTS (SELECT 1 {lacking})")
        row = cursor.fetchone()
    if not row or not row[0]:
        return 0
    loyalty_settings = lock_loyalty_settings()
    base_tier_id = Tier.objects.order_by("rank").values_list("pk", flat=True).first()
    if base_tier_id is None:
        raise Tier.DoesNotExist("there is no tier to join; add one on the tier rules page")
    when = db_datetime(now)
    with connection.cursor() as cursor:
        # The new members are listed first: an INSERT INTO memberships that reads memberships
        # to find who lacks one can end up rescanning its own new rows, row after row.
        cursor.execute(f"DROP TABLE IF EXISTS {NEW_MEMBERS}")
        cursor.execute(
            f"CREATE TEMP TABLE {NEW_MEMBERS} AS SELECT c.id AS customer_id, "
            f"c.registered_at AS joined_at {lacking}"
        )
        cursor.execute(
            f"INSERT INTO {quote_table(TierChange)} (customer_id, from_tier_id, to_tier_id, "
            f"reason, spend, orders_count, window_days, changed_at) "
            f"SELECT customer_id, NULL, %s, %s, 0, 0, %s, %s FROM {NEW_MEMBERS}",
            [
                base_tier_id,
                TierChangeReason.JOINED.value,
                loyalty_settings.growth_window_days,
                when,
            ],
        )
        cursor.execute(
            f"INSERT INTO {memberships} (customer_id, tier_id, tier_since, below_tier_since, "
            f"points_balance, pending_points, joined_at) "
            f"SELECT customer_id, %s, %s, NULL, 0, 0, joined_at FROM {NEW_MEMBERS}",
            [base_tier_id, when],
        )
        created = max(cursor.rowcount, 0)
        cursor.execute(f"DROP TABLE {NEW_MEMBERS}")
    return created
