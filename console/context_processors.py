from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext_lazy as _

from console.roles import ADMINS, MANAGERS, OPERATORS, ROLE_NAMES

ROLE_LABELS = {OPERATORS: _("Operator"), MANAGERS: _("Manager"), ADMINS: _("Admin")}


def navigation(request: HttpRequest) -> dict[str, Any]:
    """The main navigation; sections whose issue has not landed yet are shown but not linked."""
    path = request.path
    items = [
        ("customers", _("Customers"), reverse("customers:list")),
        ("segments", _("Segments"), reverse("segments:list")),
        ("campaigns", _("Campaigns"), None),
        ("reports", _("Reports"), None),
        ("loyalty", _("Loyalty"), reverse("loyalty:tiers")),
    ]
    nav = [
        {"key": key, "label": label, "url": url, "active": bool(url and path.startswith(url))}
        for key, label, url in items
    ]
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        nav.append(
            {
                "key": "admin",
                "label": _("Admin"),
                "url": reverse("admin:index"),
                "active": path.startswith(reverse("admin:index")),
            }
        )
    # Lazy: partial (htmx) responses that do not show the role cost no query for it.
    return {"nav_items": nav, "user_role": SimpleLazyObject(lambda: role_label(request))}


def role_label(request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return ""
    names = set(user.groups.values_list("name", flat=True))
    # A user in several groups shows the widest role.
    for name in reversed(ROLE_NAMES):
        if name in names:
            return str(ROLE_LABELS[name])
    return str(_("Superuser")) if user.is_superuser else ""
