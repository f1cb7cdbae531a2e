from __future__ import annotations

import datetime as dt
import hashlib
import io
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command
from django.db.models import Count, Max, Q

from console.launcher import DEMO_LOGINS
from customers.models import Customer, CustomerTag, Event, Order, Tag

AS_OF_TEXT = "2026-06-30T20:00:00+08:00"
AS_OF = dt.datetime.fromisoformat(AS_OF_TEXT)


def seed_demo(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def seed_200(seed: int = 7) -> str:
    return seed_demo("--customers", "200", "--seed", str(seed), "--as-of", AS_OF_TEXT)


def digest_of_the_data() -> str:
    rows: list[str] = []
    customers = Customer.objects.order_by("external_id").values_list(
        "external_id", "name", "phone", "city", "channel", "registered_at", "last_seen_at"
    )
    rows += [repr(row) for row in customers]
    orders = Order.objects.order_by("external_id").values_list(
        "external_id", "customer__external_id", "placed_at", "amount", "status", "category"
    )
    rows += [repr(row) for row in orders]
    events = Event.objects.order_by("event_id").values_list(
        "event_id", "customer__external_id", "name", "occurred_at"
    )
    rows += [repr(row) for row in events]
    tags = CustomerTag.objects.order_by("customer__external_id", "tag__name").values_list(
        "customer__external_id", "tag__name", "source"
    )
    rows += [repr(row) for row in tags]
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def empty_the_customer_data() -> None:
    Customer.objects.all().delete()  # orders, events and tag links go with them
    Tag.objects.all().delete()


def test_seed_demo_loads_200_customers_with_their_orders_events_and_tags(db: None) -> None:
    output = seed_200()

    assert Customer.objects.count() == 200
    assert Order.objects.count() > 200
    assert Event.objects.count() > Order.objects.count() * 3
    assert Tag.objects.count() == 8
    assert CustomerTag.objects.exists()
    assert (
        f"Loaded 200 customers, {Order.objects.count():,} orders, "
        f"{Event.objects.count():,} events, 8 tags" in output
    )


def test_the_demo_customers_cover_every_lifecycle(db: None) -> None:
    seed_200()
    customers = Customer.objects.annotate(
        orders_count=Count("orders"),
        last_paid_at=Max("orders__placed_at", filter=Q(orders__status="paid")),
    )

    without_orders = customers.filter(orders_count=0).count()
    ordered_within_30_days = customers.filter(
        last_paid_at__gt=AS_OF - dt.timedelta(days=30)
    ).count()
    silent = customers.filter(
        last_seen_at__lte=AS_OF - dt.timedelta(days=30),
        last_seen_at__gt=AS_OF - dt.timedelta(days=90),
    ).count()
    lapsed = customers.filter(last_seen_at__lte=AS_OF - dt.timedelta(days=90)).count()
    registered_within_7_days = customers.filter(
        registered_at__gt=AS_OF - dt.timedelta(days=7)
    ).count()

    # The profiles' weights: prospect 10 %, new 5 %, active 35 %, silent 20 %, lapsed 30 %.
    assert 8 <= without_orders <= 40
    assert 60 <= ordered_within_30_days <= 110
    assert 20 <= silent <= 60
    assert 35 <= lapsed <= 85
    assert 4 <= registered_within_7_days <= 30


def test_the_demo_data_is_never_later_than_as_of_and_is_well_formed(db: None) -> None:
    seed_200()

    assert not Customer.objects.filter(registered_at__gt=AS_OF).exists()
    assert not Customer.objects.filter(last_seen_at__gt=AS_OF).exists()
    assert not Order.objects.filter(placed_at__gt=AS_OF).exists()
    assert not Event.objects.filter(occurred_at__gt=AS_OF).exists()
    assert not Order.objects.filter(amount__lte=Decimal("0")).exists()
    assert not Customer.objects.exclude(phone__regex=r"^\+861[3-9]\d{9}$").exists()
    assert set(Customer.objects.values_list("channel", flat=True)) == {
        "app",
        "mini_program",
        "web",
        "store",
        "other",
    }
    assert set(Order.objects.values_list("status", flat=True)) == {"paid", "refunded"}
    assert Customer.objects.values("city").distinct().count() >= 10
    assert Event.objects.filter(name="order").count() == Order.objects.count()


def test_the_same_seed_gives_the_same_data_and_another_seed_other_data(db: None) -> None:
    seed_200()
    first = digest_of_the_data()
    first_ids = list(Customer.objects.order_by("external_id").values_list("external_id", flat=True))
    empty_the_customer_data()

    seed_200()
    second = digest_of_the_data()
    empty_the_customer_data()
    seed_200(seed=8)
    other_seed = digest_of_the_data()

    assert second == first
    assert first_ids[:2] == ["D7-C0000001", "D7-C0000002"]
    assert other_seed != first


def test_if_empty_leaves_a_database_with_customers_alone(db: None, customer_factory: Any) -> None:
    customer_factory(external_id="C-MINE")

    output = seed_demo("--customers", "50", "--seed", "7", "--as-of", AS_OF_TEXT, "--if-empty")

    assert list(Customer.objects.values_list("external_id", flat=True)) == ["C-MINE"]
    assert Order.objects.count() == 0
    assert "1 customers already present: demo data not loaded." in output


def test_without_if_empty_a_database_with_customers_is_refused(
    db: None, customer_factory: Any
) -> None:
    customer_factory()

    with pytest.raises(CommandError, match="already holds 1 customers"):
        seed_200()

    assert Customer.objects.count() == 1


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (["--customers", "-1"], "--customers cannot be negative"),
        (["--as-of", "yesterday"], "--as-of 'yesterday' is not an ISO 8601 date and time"),
        (["--as-of", "2999-01-01T00:00:00+08:00"], "--as-of is in the future"),
        (["--as-of", "2025-02-30T10:00:00"], "--as-of '2025-02-30T10:00:00' is not a valid date"),
    ],
    ids=["negative", "not-a-date", "future", "impossible-day"],
)
def test_bad_arguments_are_refused_with_the_reason(
    db: None, arguments: list[str], error: str
) -> None:
    with pytest.raises(CommandError, match=error):
        seed_demo(*arguments)

    assert Customer.objects.count() == 0


@pytest.mark.parametrize(
    ("username", "password", "role"), DEMO_LOGINS, ids=[u for u, *_ in DEMO_LOGINS]
)
def test_the_demo_users_exist_in_their_groups_and_their_passwords_work(
    db: None, username: str, password: str, role: str
) -> None:
    seed_200()

    user = authenticate(username=username, password=password)

    assert user is not None
    assert list(user.groups.values_list("name", flat=True)) == [role]
    assert user.is_staff is (role == "Admins")
    assert user.is_superuser is False


def test_seeding_again_keeps_a_demo_users_changed_password(db: None) -> None:
    seed_demo("--customers", "0")
    operator = get_user_model().objects.get(username="operator")
    operator.set_password("changed-by-hand-1")
    operator.save()

    output = seed_demo("--customers", "0", "--if-empty")

    assert "Demo user operator exists: left unchanged." in output
    assert authenticate(username="operator", password="changed-by-hand-1") is not None
    assert (
        get_user_model().objects.filter(username__in=["admin", "manager", "operator"]).count() == 3
    )
