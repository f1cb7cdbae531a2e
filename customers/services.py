"""Writes to the customer data that people make in the console."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from customers.models import Customer, CustomerTag, Tag, TagSource

logger = logging.getLogger(__name__)

TAG_NAME_MAX_LENGTH: int = Tag._meta.get_field("name").max_length or 64


class Actor(Protocol):
    pk: Any

    def has_perm(self, perm: str, obj: Any = None) -> bool: ...


def _require(actor: Actor, permission: str) -> None:
    # Checked here as well as in the views so that every caller (API, commands) is held to it.
    if not actor.has_perm(permission):
        raise PermissionDenied(_("You may not change customer tags."))


def clean_tag_name(name: str) -> str:
    """The stored form of a typed tag name (inner runs of spaces collapse), or a clear error."""
    cleaned = " ".join(name.split())
    if not cleaned:
        raise ValidationError(_("Enter a tag name."), code="required")
    if len(cleaned) > TAG_NAME_MAX_LENGTH:
        raise ValidationError(
            _("A tag name has at most %(limit)d characters; this one has %(length)d.")
            % {"limit": TAG_NAME_MAX_LENGTH, "length": len(cleaned)},
            code="max_length",
        )
    return cleaned


@transaction.atomic
def add_tag(*, customer_id: int, tag_name: str, actor: Actor) -> CustomerTag:
    """Tag a customer by hand, creating the tag on first use; tagging twice changes nothing.

    Raises PermissionDenied, ValidationError (bad name) or Customer.DoesNotExist.
    """
    _require(actor, "customers.add_customertag")
    name = clean_tag_name(tag_name)
    customer = Customer.objects.only("pk").get(pk=customer_id)
    tag = Tag.objects.filter(name=name).first()
    if tag is None:
        _require(actor, "customers.add_tag")
        tag, _created = Tag.objects.get_or_create(name=name)
    customer_tag, created = CustomerTag.objects.get_or_create(
        customer=customer, tag=tag, defaults={"source": TagSource.MANUAL}
    )
    if created:
        logger.info("customer %s tagged %r by user %s", customer_id, name, actor.pk)
    return customer_tag


@transaction.atomic
def remove_tag(*, customer_id: int, tag_id: int, actor: Actor) -> bool:
    """Take a tag off a customer, whatever its source; False when the customer did not have it."""
    _require(actor, "customers.delete_customertag")
    deleted, _by_model = CustomerTag.objects.filter(customer_id=customer_id, tag_id=tag_id).delete()
    if deleted:
        logger.info("customer %s untagged %s by user %s", customer_id, tag_id, actor.pk)
    return bool(deleted)
