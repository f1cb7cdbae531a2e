"""Contact masking, in one place: plain functions (admin, exports) and the template filters.

Phones and e-mails are shown whole only to users with the customers.view_customer_contact
permission (Admins); everyone else sees 138****1234 and w***@example.com.
"""

from __future__ import annotations

from typing import Any, Protocol

from django import template

CONTACT_PERMISSION = "customers.view_customer_contact"
CHINA_PREFIX = "+86"
HIDDEN = "****"

register = template.Library()


class HasPerm(Protocol):
    def has_perm(self, perm: str, obj: Any = None) -> bool: ...


def can_view_contact(user: HasPerm | None) -> bool:
    return user is not None and user.has_perm(CONTACT_PERMISSION)


def mask_phone(phone: str) -> str:
    """+8613812341234 -> 138****1234; other countries keep their code: +44****0123."""
    if not phone:
        return ""
    # Chinese operators read mainland numbers without the country code.
    shown = phone[len(CHINA_PREFIX) :] if phone.startswith(CHINA_PREFIX) else phone
    if len(shown) < 8:
        # Too short to reveal both ends without revealing most of the number.
        return HIDDEN
    return f"{shown[:3]}{HIDDEN}{shown[-4:]}"


def mask_email(email: str) -> str:
    """wang@example.com -> w***@example.com (the domain says little about the person)."""
    if not email:
        return ""
    local, at, domain = email.rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"


def display_phone(phone: str, *, user: HasPerm | None) -> str:
    return phone if can_view_contact(user) else mask_phone(phone)


def display_email(email: str, *, user: HasPerm | None) -> str:
    return email if can_view_contact(user) else mask_email(email)


@register.filter
def phone_for(phone: str, user: HasPerm | None) -> str:
    """{{ customer.phone|phone_for:user }}"""
    return display_phone(phone or "", user=user)


@register.filter
def email_for(email: str, user: HasPerm | None) -> str:
    """{{ customer.email|email_for:user }}"""
    return display_email(email or "", user=user)
