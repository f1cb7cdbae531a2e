from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import django_rq
import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.test import Client
from rq import Queue

from console.queues import QUEUE_NAMES
from tests.factories import (
    CustomerFactory,
    CustomerTagFactory,
    EventFactory,
    OrderFactory,
    TagFactory,
    UserFactory,
)


def pytest_configure() -> None:
    # The default hasher spends about a second per test user; no test here is about hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def customer_factory(db: None) -> type[CustomerFactory]:
    return CustomerFactory


@pytest.fixture
def tag_factory(db: None) -> type[TagFactory]:
    return TagFactory


@pytest.fixture
def customer_tag_factory(db: None) -> type[CustomerTagFactory]:
    return CustomerTagFactory


@pytest.fixture
def order_factory(db: None) -> type[OrderFactory]:
    return OrderFactory


@pytest.fixture
def event_factory(db: None) -> type[EventFactory]:
    return EventFactory


@pytest.fixture
def make_user(db: None) -> Callable[..., object]:
    def make(role: str | None = None, **fields: object) -> object:
        """A user in one of the three role groups; admins are staff, as the demo admin is."""
        user: Any = UserFactory(is_staff=role == "Admins", **fields)
        if role:
            user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def operator(make_user: Callable[..., object]) -> object:
    return make_user("Operators", username="op")


@pytest.fixture
def manager(make_user: Callable[..., object]) -> object:
    return make_user("Managers", username="mgr")


@pytest.fixture
def admin_user(make_user: Callable[..., object]) -> object:
    return make_user("Admins", username="adm")


def _client_for(user: object) -> Client:
    client = Client()
    client.force_login(user)  # type: ignore[arg-type]
    return client


@pytest.fixture
def operator_client(operator: object) -> Client:
    return _client_for(operator)


@pytest.fixture
def manager_client(manager: object) -> Client:
    return _client_for(manager)


@pytest.fixture
def admin_client_role(admin_user: object) -> Client:
    return _client_for(admin_user)


@pytest.fixture
def rq_queues() -> Iterator[dict[str, Queue]]:
    """The real RQ queues on the test Redis (settings.REDIS_URL), emptied before and after."""
    queues = {name: django_rq.get_queue(name) for name in QUEUE_NAMES}
    assert settings.REDIS_URL
    for queue in queues.values():
        queue.empty()
    yield queues
    for queue in queues.values():
        queue.empty()
