"""The three roles and their permissions, declared once and applied by data migrations."""

from __future__ import annotations

from typing import Any

OPERATORS = "Operators"
MANAGERS = "Managers"
ADMINS = "Admins"
ROLE_NAMES = (OPERATORS, MANAGERS, ADMINS)

OUR_APPS = ("customers", "loyalty", "segments", "campaigns", "reports", "console")

# Models operators edit (add, change, delete, view); they read every other model of our apps.
OPERATOR_EDITS = {
    ("customers", "customer"),
    ("customers", "tag"),
    ("customers", "customertag"),
    ("segments", "segment"),
    ("segments", "tagrule"),
}
# Beyond reading everything, managers may do these (approving campaigns lands with campaigns).
MANAGER_EXTRA: set[tuple[str, str]] = set()
ADMIN_EXTRA_APPS = ("auth",)


def sync_roles(apps: Any) -> None:
    """Create the groups and set their permissions; safe to run again after new models land."""
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        # A migration's app configs have no models module, which create_permissions skips; the
        # real registry's must be left as they are (post_migrate skips apps without one).
        models_module = getattr(app_config, "models_module", None)
        app_config.models_module = models_module or True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = models_module

    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    ours = permission_model.objects.filter(content_type__app_label__in=OUR_APPS)
    views = [p for p in ours.select_related("content_type") if p.codename.startswith("view_")]
    operator_edits = [
        p
        for p in ours.select_related("content_type")
        if (p.content_type.app_label, p.content_type.model) in OPERATOR_EDITS
        and p.codename.split("_", 1)[0] in {"add", "change", "delete", "view"}
        and p.codename != "view_customer_contact"
    ]
    contact = [p for p in views if p.codename == "view_customer_contact"]
    plain_views = [p for p in views if p.codename != "view_customer_contact"]
    manager_extra = [
        p
        for p in ours.select_related("content_type")
        if (p.content_type.app_label, p.codename) in MANAGER_EXTRA
    ]
    admin_all = list(ours) + list(
        permission_model.objects.filter(content_type__app_label__in=ADMIN_EXTRA_APPS)
    )
    wanted = {
        OPERATORS: set(plain_views) | set(operator_edits),
        MANAGERS: set(plain_views) | set(manager_extra),
        ADMINS: set(admin_all) | set(contact),
    }
    for name, permissions in wanted.items():
        group, _created = group_model.objects.get_or_create(name=name)
        group.permissions.set(permissions)
