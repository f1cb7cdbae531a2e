from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext_lazy as _


def navigation(request: HttpRequest) -> dict[str, Any]:
    """The main navigation; sections whose issue has not landed yet are shown but not linked."""
    path = request.path
    items = [
        ("customers", _("Customers"), reverse("customers:list")),
        ("segments", _("Segments"), None),
        ("campaigns", _("Campaigns"), None),
        ("reports", _("Reports"), None),
        ("loyalty", _("Loyalty"), None),
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
    return {"nav_items": nav}
