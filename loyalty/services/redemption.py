"""Spending points and adjusting them by hand: one entry at a time, never below zero.

Both lock the customer's Membership row (SELECT ... FOR UPDATE) before reading the balance, so
two redemptions at the same moment take turns and the second sees what the first left. On
SQLite the IMMEDIATE transactions (settings) hold the database's write lock from BEGIN instead.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils.translation import gettext as _

from loyalty.models import Membership, PointsBucket, PointsEntry, PointsKind
from loyalty.services.ledger import (
    Actor,
    InsufficientPoints,
    current_settings,
    expiry_instant,
    local_zone,
    points_to_yuan,
)
from loyalty.services.memberships import resolve_now

logger = logging.getLogger(__name__)

ADJUST_PERMISSION = "loyalty.add_pointsentry"
REASON_MAX_LENGTH: int = PointsEntry._meta.get_field("reason").max_length or 255
KEY_MAX_LENGTH: int = PointsEntry._meta.get_field("idempotency_key").max_length or 100
# A guard against a slip of the keyboard (an extra zero or two), not a business limit.
MAX_POINTS_AT_ONCE = 100_000_000


@dataclass(frozen=True, slots=True)
class Redemption:
    entry: PointsEntry
    points: int
    yuan: Decimal


def _clean_points(value: object, *, field: str, allow_negative: bool) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError({field: _("Enter a whole number of points.")}, code="invalid")
    if value == 0 or (value < 0 and not allow_negative):
        message = (
            _("Enter a number of points other than 0.")
            if allow_negative
            else _("Enter a number of points greater than 0.")
        )
        raise ValidationError({field: message}, code="invalid")
    if abs(value) > MAX_POINTS_AT_ONCE:
        raise ValidationError(
            {field: _("At most %(limit)d points at once.") % {"limit": MAX_POINTS_AT_ONCE}},
            code="max_value",
        )
    return value


def _clean_reason(reason: str, *, is_required: bool) -> str:
    cleaned = " ".join((reason or "").split())
    if is_required and not cleaned:
        raise ValidationError({"reason": _("Enter a reason.")}, code="required")
    if len(cleaned) > REASON_MAX_LENGTH:
        raise ValidationError(
            {
                "reason": _("A reason has at most %(limit)d characters; this one has %(length)d.")
                % {"limit": REASON_MAX_LENGTH, "length": len(cleaned)}
            },
            code="max_length",
        )
    return cleaned


def _clean_key(key: str | None, prefix: str) -> str:
    if key is None:
        return f"{prefix}:{uuid.uuid4().hex}"
    cleaned = key.strip()
    if not cleaned or len(cleaned) > KEY_MAX_LENGTH:
        raise ValidationError(
            {
                "idempotency_key": _("An idempotency key has 1 to %(limit)d characters.")
                % {"limit": KEY_MAX_LENGTH}
            },
            code="invalid",
        )
    return cleaned


def _lock_membership(customer_id: int) -> Membership:
    membership = (
        Membership.objects.select_for_update()
        .only("customer_id", "points_balance", "pending_points")
        .filter(customer_id=customer_id)
        .first()
    )
    if membership is None:
        raise ValidationError(
            {"customer_id": _("Customer %(id)s is not a member yet.") % {"id": customer_id}},
            code="not_a_member",
        )
    return membership


def _existing_entry(key: str, *, customer_id: int, kind: str, delta: int) -> PointsEntry | None:
    """The entry a retry with the same key already wrote, or None; a clash is an error."""
    entry = PointsEntry.objects.filter(idempotency_key=key).first()
    if entry is None:
        return None
    if (entry.customer_id, entry.kind, entry.delta) != (customer_id, kind, delta):
        raise ValidationError(
            {"idempotency_key": _("This idempotency key was already used for another entry.")},
            code="key_reused",
        )
    return entry


def _insert_entry(entry: PointsEntry) -> PointsEntry:
    try:
        with transaction.atomic():
            entry.save(force_insert=True)
    except IntegrityError as error:
        # Only a key used at the same moment for another customer gets here (same customer:
        # the row lock made the retry wait and _existing_entry found the first one).
        raise ValidationError(
            {"idempotency_key": _("This idempotency key was already used for another entry.")},
            code="key_reused",
        ) from error
    return entry


@transaction.atomic
def redeem_points(
    *,
    customer_id: int,
    points: int,
    actor: Actor | None = None,
    reason: str = "",
    idempotency_key: str | None = None,
    now: dt.datetime | None = None,
) -> Redemption:
    """Spend points from the available balance; returns the entry and what it is worth in yuan.

    Raises InsufficientPoints (with balance and requested) when the balance is smaller, also
    when two redemptions race: the Membership row is locked while the balance is checked and
    moved. A retry with the same idempotency_key returns the first redemption unchanged.
    """
    points = _clean_points(points, field="points", allow_negative=False)
    reason = _clean_reason(reason, is_required=False)
    key = _clean_key(idempotency_key, "redeem")
    now = resolve_now(now)
    membership = _lock_membership(customer_id)
    loyalty_settings = current_settings()
    existing = _existing_entry(key, customer_id=customer_id, kind=PointsKind.REDEEM, delta=-points)
    if existing is not None:
        return Redemption(
            entry=existing, points=points, yuan=points_to_yuan(points, loyalty_settings)
        )
    if membership.points_balance < points:
        raise InsufficientPoints(balance=membership.points_balance, requested=points)
    entry = _insert_entry(
        PointsEntry(
            customer_id=customer_id,
            kind=PointsKind.REDEEM,
            bucket=PointsBucket.AVAILABLE,
            delta=-points,
            idempotency_key=key,
            reason=reason,
            effective_at=now,
            created_by_id=actor.pk if actor is not None else None,
        )
    )
    Membership.objects.filter(customer_id=customer_id).update(
        points_balance=F("points_balance") - points
    )
    logger.info("customer %s redeemed %s points (%s)", customer_id, points, key)
    return Redemption(entry=entry, points=points, yuan=points_to_yuan(points, loyalty_settings))


@transaction.atomic
def adjust_points(
    *,
    customer_id: int,
    delta: int,
    reason: str,
    actor: Actor,
    idempotency_key: str | None = None,
    now: dt.datetime | None = None,
) -> PointsEntry:
    """Add (delta > 0) or take away (delta < 0) points by hand, with a reason; admins only.

    Raises PermissionDenied without loyalty.add_pointsentry, ValidationError without a reason,
    InsufficientPoints when a deduction is larger than the available balance. Added points
    expire like points earned now.
    """
    if not actor.has_perm(ADJUST_PERMISSION):
        raise PermissionDenied(_("Only admins may adjust points."))
    delta = _clean_points(delta, field="delta", allow_negative=True)
    reason = _clean_reason(reason, is_required=True)
    key = _clean_key(idempotency_key, "adjust")
    now = resolve_now(now)
    membership = _lock_membership(customer_id)
    existing = _existing_entry(key, customer_id=customer_id, kind=PointsKind.ADJUST, delta=delta)
    if existing is not None:
        return existing
    if delta < 0 and membership.points_balance + delta < 0:
        raise InsufficientPoints(balance=membership.points_balance, requested=-delta)
    local_now = now.astimezone(local_zone())
    is_credit = delta > 0
    entry = _insert_entry(
        PointsEntry(
            customer_id=customer_id,
            kind=PointsKind.ADJUST,
            bucket=PointsBucket.AVAILABLE,
            delta=delta,
            idempotency_key=key,
            reason=reason,
            earned_on=local_now.date() if is_credit else None,
            effective_at=now,
            expires_at=expiry_instant(local_now.year, current_settings()) if is_credit else None,
            created_by_id=actor.pk,
        )
    )
    Membership.objects.filter(customer_id=customer_id).update(
        points_balance=F("points_balance") + delta
    )
    logger.info("customer %s points adjusted by %+d by user %s", customer_id, delta, actor.pk)
    return entry
