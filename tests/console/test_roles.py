from __future__ import annotations

import io
import re
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client

from console.launcher import DEMO_LOGINS
from console.roles import OUR_APPS, sync_roles

ROLE_BADGES = {"Admins": "Admin", "Managers": "Manager", "Operators": "Operator"}
CUSTOMER_MODELS = ("customer", "tag", "customertag", "order", "event", "importrun", "apikey")


def permissions_of(group_name: str) -> set[str]:
    group = Group.objects.get(name=group_name)
    return {
        f"{app_label}.{codename}"
        for app_label, codename in group.permissions.values_list(
            "content_type__app_label", "codename"
        )
    }


def test_the_three_role_groups_exist(db: None) -> None:
    assert sorted(Group.objects.values_list("name", flat=True)) == [
        "Admins",
        "Managers",
        "Operators",
    ]


def test_operators_edit_customers_and_tags_and_only_read_the_rest(db: None) -> None:
    permissions = permissions_of("Operators")

    assert {
        f"customers.{action}_{model}"
        for action in ("add", "change", "delete", "view")
        for model in ("customer", "tag", "customertag")
    } <= permissions
    assert {"customers.view_order", "customers.view_event", "customers.view_importrun"} <= (
        permissions
    )
    assert {
        "customers.add_order",
        "customers.change_order",
        "customers.delete_order",
        "customers.delete_event",
        "customers.change_importrun",
        "customers.view_customer_contact",
    }.isdisjoint(permissions)
    assert not any(permission.startswith("auth.") for permission in permissions)


def test_managers_only_view(db: None) -> None:
    permissions = permissions_of("Managers")

    assert {f"customers.view_{model}" for model in CUSTOMER_MODELS} <= permissions
    assert all(permission.split(".")[1].startswith("view_") for permission in permissions)
    assert "customers.view_customer_contact" not in permissions


def test_every_role_reads_every_model_of_our_apps(db: None) -> None:
    models = [
        f"{model._meta.app_label}.view_{model._meta.model_name}"
        for app_label in OUR_APPS
        for model in django_apps.get_app_config(app_label).get_models()
    ]
    assert "loyalty.view_tier" in models

    for role in ("Operators", "Managers", "Admins"):
        assert sorted(set(models) - permissions_of(role)) == [], role


def test_admins_see_contacts_manage_users_and_may_do_everything_with_the_customer_data(
    db: None,
) -> None:
    permissions = permissions_of("Admins")

    assert "customers.view_customer_contact" in permissions
    assert {
        f"auth.{action}_{model}"
        for action in ("add", "change", "delete", "view")
        for model in ("user", "group")
    } <= permissions
    assert {
        f"customers.{action}_{model}"
        for action in ("add", "change", "delete", "view")
        for model in CUSTOMER_MODELS
    } <= permissions


def test_syncing_the_roles_again_changes_nothing(db: None) -> None:
    before = {name: permissions_of(name) for name in ("Operators", "Managers", "Admins")}

    sync_roles(django_apps)

    assert {name: permissions_of(name) for name in ("Operators", "Managers", "Admins")} == before
    assert Group.objects.count() == 3


@pytest.mark.parametrize(
    ("role", "can_edit_tags", "can_see_contacts", "can_delete_orders"),
    [
        ("Operators", True, False, False),
        ("Managers", False, False, False),
        ("Admins", True, True, True),
    ],
)
def test_a_user_holds_the_permissions_of_their_group(
    make_user: Any, role: str, can_edit_tags: bool, can_see_contacts: bool, can_delete_orders: bool
) -> None:
    user = make_user(role)

    assert user.has_perm("customers.add_customertag") is can_edit_tags
    assert user.has_perm("customers.delete_customertag") is can_edit_tags
    assert user.has_perm("customers.view_customer_contact") is can_see_contacts
    assert user.has_perm("customers.delete_order") is can_delete_orders
    assert user.has_perm("customers.view_customer") is True


# --- the demo logins --------------------------------------------------------------------------


@pytest.fixture
def demo_users(db: None) -> None:
    call_command("seed_demo", customers=0, stdout=io.StringIO())


@pytest.mark.parametrize(
    ("username", "password", "role"), DEMO_LOGINS, ids=[login[0] for login in DEMO_LOGINS]
)
def test_each_demo_login_opens_the_console_in_its_role(
    settings: Any,
    demo_users: None,
    client: Client,
    username: str,
    password: str,
    role: str,
) -> None:
    settings.LANGUAGE_CODE = "en"

    response = client.post(
        "/accounts/login/", {"username": username, "password": password}, follow=True
    )

    assert response.redirect_chain == [("/", 302)]
    badge_html = re.search(r'data-testid="current-role">([^<]*)<', response.content.decode())
    assert badge_html is not None
    assert badge_html.group(1) == ROLE_BADGES[role]
    user = get_user_model().objects.get(username=username)
    assert list(user.groups.values_list("name", flat=True)) == [role]


@pytest.mark.parametrize(
    ("username", "admin_status"), [("admin", 200), ("manager", 302), ("operator", 302)]
)
def test_only_the_demo_admin_may_enter_the_django_admin(
    demo_users: None, client: Client, username: str, admin_status: int
) -> None:
    password = {login[0]: login[1] for login in DEMO_LOGINS}[username]
    assert client.login(username=username, password=password)

    response = client.get("/admin/")

    assert response.status_code == admin_status
    if admin_status == 302:
        assert response["Location"].startswith("/admin/login/")


def test_syncing_the_roles_leaves_the_app_registry_as_it_was(db: None) -> None:
    models_modules = {
        config.label: config.models_module for config in django_apps.get_app_configs()
    }

    sync_roles(django_apps)

    assert {
        config.label: config.models_module for config in django_apps.get_app_configs()
    } == models_modules
    assert django_apps.get_app_config("customers").models_module is not None
