"""Writes to the customer data that people make in the console."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from typing import Any, Protocol

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from customers.models import ApiKey, Customer, CustomerTag, Tag, TagSource

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


# API keys for the ingest API. A key reads "yy_<prefix>_<secret>": the prefix (hex, so never an
# underscore) finds the row, and only a SHA-256 digest of the secret is stored, so a database
# leak gives away no key. The full key is shown once, when it is created.
API_KEY_SCHEME = "yy"
API_KEY_NAME_MAX_LENGTH: int = ApiKey._meta.get_field("name").max_length or 100
API_KEY_PREFIX_BYTES = 4  # 8 hex characters
API_KEY_SECRET_BYTES = 32  # 256 bits, 43 URL-safe characters
# last_used_at is written at most this often per key: a busy source must not turn every request
# into a write on the same row.
API_KEY_LAST_USED_PRECISION = dt.timedelta(minutes=1)


class CommandLineActor:
    """The operator at a shell: whoever can run manage.py already holds every right."""

    pk = None

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return True


COMMAND_LINE = CommandLineActor()


def _secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def clean_api_key_name(name: str) -> str:
    """The stored form of a key's source name, or a clear error."""
    cleaned = " ".join(name.split())
    if not cleaned:
        raise ValidationError(
            _("Enter the name of the source that will use the key."), code="required"
        )
    if len(cleaned) > API_KEY_NAME_MAX_LENGTH:
        raise ValidationError(
            _("A key name has at most %(limit)d characters; this one has %(length)d.")
            % {"limit": API_KEY_NAME_MAX_LENGTH, "length": len(cleaned)},
            code="max_length",
        )
    return cleaned


@transaction.atomic
def create_api_key(*, name: str, actor: Actor) -> tuple[ApiKey, str]:
    """A new active ingest API key for a source; returns it with the full key, shown only now.

    Raises PermissionDenied (needs customers.add_apikey) or ValidationError (bad or taken name).
    """
    if not actor.has_perm("customers.add_apikey"):
        raise PermissionDenied(_("You may not create API keys."))
    name = clean_api_key_name(name)
    if ApiKey.objects.filter(name=name).exists():
        raise ValidationError(
            _("An API key named “%(name)s” already exists.") % {"name": name}, code="unique"
        )
    prefix = secrets.token_hex(API_KEY_PREFIX_BYTES)
    while ApiKey.objects.filter(prefix=prefix).exists():
        prefix = secrets.token_hex(API_KEY_PREFIX_BYTES)
    secret = secrets.token_urlsafe(API_KEY_SECRET_BYTES)
    api_key = ApiKey.objects.create(
        name=name,
        prefix=prefix,
        digest=_secret_digest(secret),
        created_by=actor if isinstance(actor, get_user_model()) else None,
    )
    logger.info("API key %s (%s) created by user %s", api_key.pk, name, actor.pk)
    return api_key, f"{API_KEY_SCHEME}_{prefix}_{secret}"


@transaction.atomic
def revoke_api_key(*, api_key_id: int, actor: Actor) -> ApiKey:
    """Deactivate a key for good: requests with it get 401 from now on. Revoking twice is harmless.

    Raises PermissionDenied (needs customers.change_apikey) or ApiKey.DoesNotExist.
    """
    if not actor.has_perm("customers.change_apikey"):
        raise PermissionDenied(_("You may not revoke API keys."))
    api_key = ApiKey.objects.select_for_update().get(pk=api_key_id)
    if api_key.is_active:
        api_key.is_active = False
        api_key.save(update_fields=["is_active"])
        logger.info("API key %s (%s) revoked by user %s", api_key.pk, api_key.name, actor.pk)
    return api_key


def authenticate_api_key(raw: str) -> ApiKey | None:
    """The active key a request presents, or None; notes its use at most once a minute."""
    scheme, _separator, rest = raw.strip().partition("_")
    prefix, _separator, secret = rest.partition("_")
    if scheme != API_KEY_SCHEME or not prefix or not secret:
        return None
    api_key = ApiKey.objects.filter(prefix=prefix).first()
    if api_key is None or not api_key.is_active:
        return None
    if not hmac.compare_digest(api_key.digest, _secret_digest(secret)):
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at >= API_KEY_LAST_USED_PRECISION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
