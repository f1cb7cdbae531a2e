from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from customers.models import Customer, CustomerTag, Event, Order, Tag

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    external_id = factory.Sequence(lambda n: f"C{n:06d}")
    name = factory.Sequence(lambda n: f"顾客{n}")
    phone = factory.Sequence(lambda n: f"+86138{n:08d}")
    email = factory.Sequence(lambda n: f"c{n}@example.com")
    city = "上海"
    channel = "app"
    registered_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=100))


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"标签{n}")


class CustomerTagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomerTag

    customer = factory.SubFactory(CustomerFactory)
    tag = factory.SubFactory(TagFactory)


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    external_id = factory.Sequence(lambda n: f"O{n:08d}")
    customer = factory.SubFactory(CustomerFactory)
    placed_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=3))
    amount = Decimal("199.00")
    status = "paid"
    channel = "app"
    category = "美妆"


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    event_id = factory.Sequence(lambda n: f"E{n:08d}")
    customer = factory.SubFactory(CustomerFactory)
    name = "view_product"
    occurred_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(hours=5))
    properties = factory.LazyFunction(lambda: {"category": "美妆"})


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests-1")
