from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from customers.ingest.batch import BatchTooLarge, ItemError, ingest_batch
from customers.models import ApiKey, Customer, Event, Order
from customers.services import authenticate_api_key, create_api_key, revoke_api_key
from tests.factories import SHANGHAI, CustomerFactory, OrderFactory

UTC = dt.UTC
ORDERS_URL = "/api/v1/orders"
EVENTS_URL = "/api/v1/events"


@pytest.fixture(autouse=True)
def english(settings: Any) -> None:
    # The messages asserted here are the English source strings; zh-hans is the default language.
    settings.LANGUAGE_CODE = "en"


@pytest.fixture
def shop_key(admin_user: Any) -> tuple[ApiKey, str]:
    return create_api_key(name="shop", actor=admin_user)


@pytest.fixture
def api_client(shop_key: tuple[ApiKey, str]) -> Client:
    return Client(headers={"Authorization": f"Bearer {shop_key[1]}"})


@pytest.fixture
def customers(db: None) -> dict[str, Customer]:
    for external_id in ("C1", "C2", "C3"):
        CustomerFactory(external_id=external_id)
    return {customer.external_id: customer for customer in Customer.objects.all()}


def post_json(client: Client, url: str, body: Any) -> Any:
    return client.post(url, data=json.dumps(body), content_type="application/json")


def order_item(order_id: str, customer_id: str = "C1", **fields: Any) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "customer_id": customer_id,
        "placed_at": "2024-05-01T20:30:00+08:00",
        "amount": "199.90",
        **fields,
    }


def stored_orders() -> list[tuple[Any, ...]]:
    return list(
        Order.objects.order_by("external_id").values_list(
            "external_id",
            "customer__external_id",
            "placed_at",
            "amount",
            "status",
            "channel",
            "category",
        )
    )


# Authentication


def test_urls_are_the_documented_ones() -> None:
    assert reverse("api:orders") == ORDERS_URL
    assert reverse("api:events") == EVENTS_URL


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "an API key is required: send it as 'Authorization: Bearer <key>' or "),
        ({"Authorization": "Bearer "}, "an API key is required: send it as 'Authorization: "),
        ({"Authorization": "Basic c2hvcDpwdw=="}, "an API key is required: send it as "),
        ({"Authorization": "Bearer nonsense"}, "the API key is not valid or has been deactivated"),
        ({"X-Api-Key": "yy_00000000_secret"}, "the API key is not valid or has been deactivated"),
    ],
    ids=["no-header", "empty-bearer", "basic-auth", "malformed-key", "unknown-prefix"],
)
def test_request_without_a_valid_key_gets_401_and_writes_nothing(
    customers: dict[str, Customer], headers: dict[str, str], message: str
) -> None:
    client = Client(headers=headers)

    response = post_json(client, ORDERS_URL, [order_item("O1")])

    assert response.status_code == 401
    assert response.json()["error"].startswith(message)
    assert response["WWW-Authenticate"].startswith('Bearer realm="ingest"')
    assert Order.objects.count() == 0


def test_key_with_a_wrong_secret_gets_401(
    customers: dict[str, Customer], shop_key: tuple[ApiKey, str]
) -> None:
    api_key, key = shop_key
    client = Client(headers={"Authorization": f"Bearer yy_{api_key.prefix}_{'x' * 43}"})

    response = post_json(client, ORDERS_URL, [order_item("O1")])

    assert response.status_code == 401
    assert response.json() == {"error": "the API key is not valid or has been deactivated"}
    assert Order.objects.count() == 0


def test_revoked_key_gets_401(
    customers: dict[str, Customer], shop_key: tuple[ApiKey, str], admin_user: Any
) -> None:
    api_key, key = shop_key
    revoke_api_key(api_key_id=api_key.pk, actor=admin_user)
    client = Client(headers={"Authorization": f"Bearer {key}"})

    response = post_json(client, ORDERS_URL, [order_item("O1")])

    assert response.status_code == 401
    assert response.json() == {"error": "the API key is not valid or has been deactivated"}
    assert Order.objects.count() == 0


def test_key_in_x_api_key_header_is_accepted(
    customers: dict[str, Customer], shop_key: tuple[ApiKey, str]
) -> None:
    client = Client(headers={"X-Api-Key": shop_key[1]})

    response = post_json(client, ORDERS_URL, [order_item("O1")])

    assert response.status_code == 200
    assert response.json() == {"received": 1, "created": 1, "updated": 0, "already_present": 0}


def test_logged_in_user_without_a_key_gets_401(
    customers: dict[str, Customer], admin_client_role: Client
) -> None:
    response = post_json(admin_client_role, ORDERS_URL, [order_item("O1")])

    assert response.status_code == 401
    assert Order.objects.count() == 0


# Good batches


def test_order_batch_is_stored_with_exact_values(
    customers: dict[str, Customer], api_client: Client
) -> None:
    items = [
        order_item("O1", "C1", amount="199.90", channel="app", category="美妆"),
        order_item(
            "O2",
            "C2",
            placed_at="2024-05-01 20:30:00",
            amount=88,
            status="refunded",
            channel="mini_program",
        ),
        order_item("O3", "C1", placed_at="2024-05-02T01:00:00Z", amount=12.5),
    ]

    response = post_json(api_client, ORDERS_URL, items)

    assert response.status_code == 200
    assert response.json() == {"received": 3, "created": 3, "updated": 0, "already_present": 0}
    assert stored_orders() == [
        (
            "O1",
            "C1",
            dt.datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
            Decimal("199.90"),
            "paid",
            "app",
            "美妆",
        ),
        (
            "O2",
            "C2",
            dt.datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
            Decimal("88.00"),
            "refunded",
            "mini_program",
            "",
        ),
        ("O3", "C1", dt.datetime(2024, 5, 2, 1, 0, tzinfo=UTC), Decimal("12.50"), "paid", "", ""),
    ]


def test_naive_time_is_read_as_shanghai_time(
    customers: dict[str, Customer], api_client: Client
) -> None:
    response = post_json(api_client, ORDERS_URL, [order_item("O1", placed_at="2024-05-01 08:00")])

    assert response.status_code == 200
    placed_at = Order.objects.get().placed_at
    assert placed_at == dt.datetime(2024, 5, 1, 8, 0, tzinfo=SHANGHAI)
    assert placed_at.utcoffset() == dt.timedelta(0)


def test_event_batch_in_an_items_object_is_stored_with_exact_values(
    customers: dict[str, Customer], api_client: Client
) -> None:
    body = {
        "items": [
            {
                "event_id": "E1",
                "customer_id": "C1",
                "name": "view_product",
                "occurred_at": "2024-05-01T20:30:00+08:00",
                "properties": {"category": "beauty", "price": 99.5, "tags": ["新品"]},
            },
            {
                "event_id": 1002,
                "customer_id": "C3",
                "name": "add_to_cart",
                "occurred_at": "2024-05-01 21:00:00",
            },
        ]
    }

    response = post_json(api_client, EVENTS_URL, body)

    assert response.status_code == 200
    assert response.json() == {"received": 2, "created": 2, "updated": 0, "already_present": 0}
    assert list(
        Event.objects.order_by("event_id").values_list(
            "event_id", "customer__external_id", "name", "occurred_at", "properties"
        )
    ) == [
        ("1002", "C3", "add_to_cart", dt.datetime(2024, 5, 1, 13, 0, tzinfo=UTC), {}),
        (
            "E1",
            "C1",
            "view_product",
            dt.datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
            {"category": "beauty", "price": 99.5, "tags": ["新品"]},
        ),
    ]


def test_empty_batch_is_accepted_and_writes_nothing(
    customers: dict[str, Customer], api_client: Client
) -> None:
    response = post_json(api_client, EVENTS_URL, {"items": []})

    assert response.status_code == 200
    assert response.json() == {"received": 0, "created": 0, "updated": 0, "already_present": 0}


def test_trailing_slash_reaches_the_same_endpoint(
    customers: dict[str, Customer], api_client: Client
) -> None:
    response = post_json(api_client, ORDERS_URL + "/", [order_item("O1")])

    assert response.status_code == 200
    assert Order.objects.count() == 1


# Idempotence


def test_replaying_a_batch_changes_nothing(
    customers: dict[str, Customer], api_client: Client
) -> None:
    items = [order_item("O1", "C1"), order_item("O2", "C2", amount="5.00")]
    post_json(api_client, ORDERS_URL, items)
    before = stored_orders()

    response = post_json(api_client, ORDERS_URL, items)

    assert response.status_code == 200
    assert response.json() == {"received": 2, "created": 0, "updated": 0, "already_present": 2}
    assert stored_orders() == before


def test_a_refund_posted_for_a_stored_order_changes_its_status(
    customers: dict[str, Customer], api_client: Client
) -> None:
    post_json(api_client, ORDERS_URL, [order_item("O1", "C1")])

    response = post_json(api_client, ORDERS_URL, [order_item("O1", "C1", status="refunded")])

    assert response.status_code == 200
    assert response.json() == {"received": 1, "created": 0, "updated": 1, "already_present": 0}
    assert list(Order.objects.values_list("external_id", "status", "amount")) == [
        ("O1", "refunded", Decimal("199.90"))
    ]


def test_ids_already_stored_are_skipped_and_new_ones_created(
    customers: dict[str, Customer], api_client: Client
) -> None:
    OrderFactory(external_id="O1", customer=customers["C2"], amount=Decimal("1.00"))

    response = post_json(
        api_client, ORDERS_URL, [order_item("O1", "C1", amount="500"), order_item("O2", "C1")]
    )

    assert response.status_code == 200
    assert response.json() == {"received": 2, "created": 1, "updated": 0, "already_present": 1}
    assert list(Order.objects.order_by("external_id").values_list("external_id", "amount")) == [
        ("O1", Decimal("1.00")),
        ("O2", Decimal("199.90")),
    ]


# Bad batches: 400 with every error, nothing written


def test_bad_items_reject_the_whole_batch_with_each_error(
    customers: dict[str, Customer], api_client: Client
) -> None:
    items = [
        order_item("O1"),
        order_item("O2", amount="12.345"),
        order_item("O3", customer_id="NOBODY"),
        {"order_id": "O4", "customer_id": "C1", "amount": "-1", "colour": "red"},
        "not an object",
    ]

    response = post_json(api_client, ORDERS_URL, items)

    assert response.status_code == 400
    assert response.json() == {
        "error": "4 bad item(s); nothing was written",
        "errors": [
            {"index": 1, "field": "amount", "reason": "more than 2 decimal places"},
            {"index": 2, "field": "customer_id", "reason": "unknown customer 'NOBODY'"},
            {"index": 3, "field": "colour", "reason": "unknown field"},
            {"index": 3, "field": "placed_at", "reason": "missing required value"},
            {"index": 3, "field": "amount", "reason": "negative amount"},
            {"index": 4, "field": None, "reason": "must be a JSON object"},
        ],
    }
    assert Order.objects.count() == 0


def test_unknown_customer_alone_rolls_back_the_good_items(
    customers: dict[str, Customer], api_client: Client
) -> None:
    items = [order_item("O1"), order_item("O2", "C2"), order_item("O3", customer_id="GHOST")]

    response = post_json(api_client, ORDERS_URL, items)

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"index": 2, "field": "customer_id", "reason": "unknown customer 'GHOST'"}
    ]
    assert Order.objects.count() == 0


def test_id_repeated_within_a_batch_rejects_it(
    customers: dict[str, Customer], api_client: Client
) -> None:
    items = [
        {"event_id": "E1", "customer_id": "C1", "name": "a", "occurred_at": "2024-05-01"},
        {"event_id": "E2", "customer_id": "C1", "name": "b", "occurred_at": "2024-05-01"},
        {"event_id": "E1", "customer_id": "C2", "name": "c", "occurred_at": "2024-05-02"},
    ]

    response = post_json(api_client, EVENTS_URL, items)

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"index": 2, "field": "event_id", "reason": "duplicate event_id: item 0 has it first"}
    ]
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    ("properties", "reason"),
    [
        ({"note": "a\u0000b"}, "contains a NUL character"),
        ({"note\u0000": "x"}, "contains a NUL character"),
        ({"note": "\ud800"}, "contains an invalid character (a lone surrogate)"),
        ({"deep": [{"price": float("inf")}]}, "not valid JSON: inf is not a JSON number"),
    ],
    ids=["nul-in-value", "nul-in-key", "lone-surrogate", "overflowed-number"],
)
def test_values_the_database_cannot_store_are_item_errors(
    customers: dict[str, Customer], api_client: Client, properties: Any, reason: str
) -> None:
    item = {"event_id": "E1", "customer_id": "C1", "name": "a", "occurred_at": "2024-05-01"}
    body = json.dumps([{**item, "properties": properties}]).replace("Infinity", "1e400")

    response = api_client.post(EVENTS_URL, data=body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["errors"] == [{"index": 0, "field": "properties", "reason": reason}]
    assert Event.objects.count() == 0


def test_nul_in_an_id_is_an_item_error(customers: dict[str, Customer], api_client: Client) -> None:
    response = post_json(api_client, ORDERS_URL, [order_item("O\u00001")])

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"index": 0, "field": "order_id", "reason": "contains a NUL character"}
    ]


def test_batch_over_the_limit_gets_413(
    customers: dict[str, Customer], api_client: Client, settings: Any
) -> None:
    settings.INGEST_MAX_BATCH = 3

    response = post_json(api_client, ORDERS_URL, [order_item(f"O{n}") for n in range(4)])

    assert response.status_code == 413
    assert response.json() == {
        "error": "too many items: a batch holds at most 3 items; this one has 4; "
        "split it into batches of at most 3",
        "max_items": 3,
    }
    assert Order.objects.count() == 0


def test_batch_at_the_limit_is_accepted(
    customers: dict[str, Customer], api_client: Client, settings: Any
) -> None:
    settings.INGEST_MAX_BATCH = 3

    response = post_json(api_client, ORDERS_URL, [order_item(f"O{n}") for n in range(3)])

    assert response.status_code == 200
    assert Order.objects.count() == 3


def test_body_over_the_upload_limit_gets_413(
    customers: dict[str, Customer], api_client: Client, settings: Any
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100

    response = post_json(api_client, ORDERS_URL, [order_item(f"O{n}") for n in range(3)])

    assert response.status_code == 413
    assert response.json() == {"error": "the request body is too large: send smaller batches"}
    assert Order.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[{", "the body is not valid JSON: "),
        (b"", "the body is not valid JSON: "),
        (b"\xff\xfe\x00", "the body is not valid JSON: "),
        (b'[{"order_id": NaN}]', "the body is not valid JSON: NaN is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "the body is not valid JSON: "),
        (b'"orders"', 'the body must be a JSON array of items or an object {"items": [...]}'),
        (b'{"orders": []}', 'the body must be a JSON array of items or an object {"items": [...]}'),
        (b'{"items": {"order_id": "O1"}}', "'items' must be a JSON array"),
        (b'{"items": [], "source": "x"}', "unknown key(s) next to 'items': source"),
    ],
    ids=[
        "truncated",
        "empty",
        "not-utf8",
        "nan",
        "nested-too-deep",
        "string",
        "object-without-items",
        "items-not-a-list",
        "extra-key",
    ],
)
def test_body_that_is_not_a_batch_gets_400(
    customers: dict[str, Customer], api_client: Client, body: bytes, message: str
) -> None:
    response = api_client.post(ORDERS_URL, data=body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"].startswith(message)
    assert Order.objects.count() == 0


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_other_methods_get_405(api_client: Client, method: str) -> None:
    response = getattr(api_client, method)(ORDERS_URL)

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json() == {"error": "use POST to send a batch of orders"}


# Cost: a fixed number of statements whatever the batch size


def test_query_count_does_not_grow_with_batch_size(
    customers: dict[str, Customer],
    api_client: Client,
    django_assert_num_queries: Any,
    django_assert_max_num_queries: Any,
) -> None:
    CustomerFactory.create_batch(50)
    external_ids = list(Customer.objects.values_list("external_id", flat=True))
    # The first request notes the key's use (one UPDATE): make both measured requests alike.
    post_json(api_client, ORDERS_URL, [])

    def batch(prefix: str, size: int) -> list[dict[str, Any]]:
        return [order_item(f"{prefix}{n}", external_ids[n]) for n in range(size)]

    # The key lookup, then the writer's fixed statements (COPY on PostgreSQL is not counted).
    with django_assert_max_num_queries(17) as small:
        response = post_json(api_client, ORDERS_URL, batch("S", 2))
    assert response.json()["created"] == 2

    with django_assert_num_queries(len(small.captured_queries)):
        response = post_json(api_client, ORDERS_URL, batch("L", 50))
    assert response.json()["created"] == 50


# The batch function


def test_ingest_batch_returns_the_customers_it_wrote_for(customers: dict[str, Customer]) -> None:
    OrderFactory(external_id="OLD", customer=customers["C3"])
    items = [order_item("O1", "C1"), order_item("O2", "C1"), order_item("OLD", "C3")]

    result = ingest_batch(kind="orders", items=items)

    assert result.is_accepted
    assert (result.received, result.created, result.already_present) == (3, 2, 1)
    assert result.customer_ids == {customers["C1"].pk}


def test_ingest_batch_reports_errors_without_writing(customers: dict[str, Customer]) -> None:
    result = ingest_batch(kind="orders", items=[order_item("O1"), order_item("O2", amount="x")])

    assert result.errors == (ItemError(1, "amount", "not a number: 'x'"),)
    assert (result.created, result.customer_ids) == (0, frozenset())
    assert Order.objects.count() == 0


def test_ingest_batch_refuses_too_many_items(db: None, settings: Any) -> None:
    settings.INGEST_MAX_BATCH = 1

    with pytest.raises(BatchTooLarge, match="at most 1 items; this one has 2"):
        ingest_batch(kind="events", items=[{}, {}])


# API key services


def test_created_key_authenticates_and_only_its_digest_is_stored(admin_user: Any) -> None:
    api_key, key = create_api_key(name="  mini   program ", actor=admin_user)

    scheme, prefix, secret = key.split("_", 2)
    assert (scheme, prefix) == ("yy", api_key.prefix)
    assert len(prefix) == 8
    assert len(secret) >= 43
    assert api_key.name == "mini program"
    assert api_key.digest == hashlib.sha256(secret.encode()).hexdigest()
    assert api_key.is_active
    assert api_key.created_by == admin_user
    assert authenticate_api_key(key) == api_key
    assert not ApiKey.objects.filter(digest__contains=secret).exists()


@pytest.mark.parametrize("role", ["Operators", "Managers"])
def test_only_admins_create_and_revoke_keys(
    make_user: Any, shop_key: tuple[ApiKey, str], role: str
) -> None:
    user = make_user(role)

    with pytest.raises(PermissionDenied):
        create_api_key(name="other", actor=user)
    with pytest.raises(PermissionDenied):
        revoke_api_key(api_key_id=shop_key[0].pk, actor=user)
    assert list(ApiKey.objects.values_list("name", "is_active")) == [("shop", True)]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("shop", "An API key named “shop” already exists."),
        ("   ", "Enter the name of the source that will use the key."),
        ("x" * 101, "A key name has at most 100 characters; this one has 101."),
    ],
    ids=["taken", "blank", "too-long"],
)
def test_key_names_are_checked(
    shop_key: tuple[ApiKey, str], admin_user: Any, name: str, message: str
) -> None:
    with pytest.raises(ValidationError) as error:
        create_api_key(name=name, actor=admin_user)

    assert error.value.messages == [message]
    assert ApiKey.objects.count() == 1


def test_revoked_key_no_longer_authenticates(shop_key: tuple[ApiKey, str], admin_user: Any) -> None:
    api_key, key = shop_key

    revoke_api_key(api_key_id=api_key.pk, actor=admin_user)
    revoke_api_key(api_key_id=api_key.pk, actor=admin_user)

    assert authenticate_api_key(key) is None
    assert ApiKey.objects.get().is_active is False


@pytest.mark.parametrize(
    "raw",
    ["", "yy", "yy__", "yy_abc", "xx_{prefix}_{secret}", "yy_{prefix}_{secret}x", "yy_{prefix}_"],
    ids=["empty", "scheme-only", "blank-parts", "no-secret", "other-scheme", "wrong", "blank"],
)
def test_malformed_or_wrong_keys_do_not_authenticate(
    shop_key: tuple[ApiKey, str], raw: str
) -> None:
    api_key, key = shop_key
    secret = key.split("_", 2)[2]

    assert authenticate_api_key(raw.format(prefix=api_key.prefix, secret=secret)) is None


def test_last_used_at_is_written_at_most_once_a_minute(
    shop_key: tuple[ApiKey, str], django_assert_num_queries: Any
) -> None:
    api_key, key = shop_key
    long_ago = timezone.now() - dt.timedelta(minutes=5)
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=long_ago)

    with django_assert_num_queries(2):
        authenticate_api_key(key)
    first_use = ApiKey.objects.get().last_used_at
    with django_assert_num_queries(1):
        authenticate_api_key(key)

    assert first_use is not None
    assert first_use > long_ago
    assert ApiKey.objects.get().last_used_at == first_use


# The admin


def test_admin_add_form_asks_only_for_the_name(admin_client_role: Client) -> None:
    response = admin_client_role.get("/admin/customers/apikey/add/")

    assert response.status_code == 200
    assert list(response.context["adminform"].form.fields) == ["name"]


def test_admin_adds_a_key_and_sees_it_once(admin_client_role: Client) -> None:
    response = admin_client_role.post("/admin/customers/apikey/add/", {"name": "shop"}, follow=True)

    api_key = ApiKey.objects.get()
    shown = [str(message) for message in get_messages(response.wsgi_request)]
    keys = [word for message in shown for word in message.split() if word.startswith("yy_")]
    assert response.status_code == 200
    assert len(keys) == 1
    assert authenticate_api_key(keys[0]) == api_key
    assert keys[0] in response.content.decode()
    assert keys[0] not in admin_client_role.get("/admin/customers/apikey/").content.decode()
    detail = admin_client_role.get(f"/admin/customers/apikey/{api_key.pk}/change/")
    assert detail.status_code == 200
    assert keys[0] not in detail.content.decode()
    assert api_key.digest not in detail.content.decode()


def test_admin_add_form_refuses_a_taken_name(
    admin_client_role: Client, shop_key: tuple[ApiKey, str]
) -> None:
    response = admin_client_role.post("/admin/customers/apikey/add/", {"name": " shop "})

    assert response.status_code == 200
    assert "An API key named “shop” already exists." in response.content.decode()
    assert ApiKey.objects.count() == 1


def test_admin_deactivates_keys_with_the_action(
    admin_client_role: Client, shop_key: tuple[ApiKey, str]
) -> None:
    api_key, key = shop_key

    response = admin_client_role.post(
        "/admin/customers/apikey/",
        {"action": "deactivate_keys", "_selected_action": [api_key.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert [str(message) for message in get_messages(response.wsgi_request)] == [
        "1 API key was deactivated; requests with it are now refused."
    ]
    assert authenticate_api_key(key) is None


def test_operator_cannot_add_keys_in_the_admin(make_user: Any) -> None:
    operator = make_user("Operators")
    operator.is_staff = True
    operator.save()
    client = Client()
    client.force_login(operator)

    response = client.post("/admin/customers/apikey/add/", {"name": "shop"})

    assert response.status_code == 403
    assert ApiKey.objects.count() == 0


# The command


def test_command_prints_a_working_key(db: None) -> None:
    out, err = StringIO(), StringIO()

    call_command("create_api_key", "warehouse", stdout=out, stderr=err)

    key = out.getvalue().strip()
    api_key = ApiKey.objects.get()
    assert authenticate_api_key(key) == api_key
    assert api_key.name == "warehouse"
    assert api_key.created_by is None
    assert "Copy it now" in err.getvalue()


def test_command_json_output(db: None) -> None:
    out = StringIO()

    call_command("create_api_key", "warehouse", "--json", stdout=out)

    printed = json.loads(out.getvalue())
    api_key = ApiKey.objects.get()
    assert printed == {
        "id": api_key.pk,
        "name": "warehouse",
        "prefix": api_key.prefix,
        "key": printed["key"],
    }
    assert authenticate_api_key(printed["key"]) == api_key


def test_command_refuses_a_taken_name(shop_key: tuple[ApiKey, str]) -> None:
    with pytest.raises(CommandError, match="An API key named “shop” already exists."):
        call_command("create_api_key", "shop", stdout=StringIO())
