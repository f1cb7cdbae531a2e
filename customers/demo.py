"""Realistic, deterministic zh-CN demo data: customers, tags, orders and behaviour events.

The same (seed, as_of) always yields the same rows: one random.Random(seed) stream drives every
choice and every id comes from the seed and a counter, so a demo or a bug report can be replayed.
Each customer follows a lifecycle profile (new, active, silent, lapsed, prospect) that fixes when
their last activity was, so the lifecycle mix shows in metrics and segments computed later.
Nothing here is later than as_of.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import accumulate
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from customers.models import (
    AcquisitionChannel,
    Customer,
    CustomerTag,
    Event,
    Gender,
    Order,
    OrderStatus,
    Tag,
    TagSource,
)

DEMO_CHUNK = 1000  # customers per generate-and-insert round: ~4k orders, ~25k events, ~40 MB
INSERT_BATCH = 2000  # rows per INSERT on PostgreSQL; Django caps it lower on SQLite (999 params)
HISTORY_DAYS = 730  # registrations spread over the last two years
# China has kept UTC+8 all year since 1991, so a fixed offset is exact and cheaper than zoneinfo.
CHINA = dt.timezone(dt.timedelta(hours=8), "CST")
# Every session starts at least this long after registration, so no event precedes it.
SESSION_ROOM = dt.timedelta(hours=1)


@dataclass(frozen=True)
class LifecycleProfile:
    name: str
    weight: float
    last_seen_days_ago: tuple[float, float]  # when the last activity was (new: see _timeline)
    last_order_within_days: float  # the last paid order falls in this window too
    extra_orders_mean: float  # orders before the last one
    sessions_mean: float  # browsing visits besides the last one


NEW = LifecycleProfile("new", 0.05, (0.0, 6.5), 7, 0.2, 0.8)
ACTIVE = LifecycleProfile("active", 0.35, (0.004, 28), 29, 5.5, 2.0)
SILENT = LifecycleProfile("silent", 0.20, (32, 88), 89, 3.0, 0.8)
LAPSED = LifecycleProfile("lapsed", 0.30, (92, 640), HISTORY_DAYS, 1.8, 0.5)
PROSPECT = LifecycleProfile("prospect", 0.10, (0, 0), 0, 0.0, 0.8)
PROFILES = (NEW, ACTIVE, SILENT, LAPSED, PROSPECT)
_PROFILE_CUM = list(accumulate(profile.weight for profile in PROFILES))

TAGS: dict[str, str] = {
    "高价值用户": "累计消费 3000 元以上且多次复购",
    "新客": "近 7 天注册并完成首单",
    "沉睡用户": "超过 90 天没有活动",
    "母婴人群": "家中有婴幼儿",
    "美妆爱好者": "多次购买美妆",
    "价格敏感": "客单价低，偏好促销",
    "数码发烧友": "多次购买数码产品",
    "门店会员": "在门店登记的会员",
}

# Surnames by rough frequency (weights fall with rank); a few compound ones at the tail.
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚"
    "邵万钱严覃武戴莫孔向汤"
)
SURNAMES: tuple[str, ...] = (*_SURNAMES, "欧阳", "上官", "司马", "诸葛")
_SURNAME_CUM = list(accumulate(1 / (rank + 4) for rank in range(len(SURNAMES))))
FEMALE_GIVEN = (
    "静丽娜敏婷芳燕艳玲霞慧颖晶琳雪倩洁欣悦怡诗涵梓萱雨思佳可"
    "馨瑶梦嘉璐彤妍琪蕾菲薇露月晨宁文子若依语心紫安"
)
MALE_GIVEN = (
    "伟强磊军勇杰涛明超斌鹏辉刚浩宇轩博文俊凯峰建华志国晨昊"
    "然睿泽子一铭航天翔宏健亮毅飞阳成荣振家佳嘉宁"
)

CITIES: tuple[tuple[str, float], ...] = (
    ("上海", 14), ("北京", 12), ("广州", 9), ("深圳", 9), ("杭州", 8), ("成都", 7), ("重庆", 5),
    ("南京", 5), ("武汉", 5), ("西安", 4), ("苏州", 4), ("天津", 4), ("长沙", 3), ("郑州", 3),
    ("青岛", 2), ("宁波", 2), ("厦门", 2), ("合肥", 2), ("沈阳", 2), ("昆明", 2), ("东莞", 2),
    ("佛山", 2), ("大连", 1), ("福州", 1), ("济南", 1), ("", 1),
)  # fmt: skip
_CITY_CUM = list(accumulate(weight for _city, weight in CITIES))
CHANNELS: tuple[tuple[str, float], ...] = (
    (AcquisitionChannel.APP.value, 40),
    (AcquisitionChannel.MINI_PROGRAM.value, 35),
    (AcquisitionChannel.WEB.value, 15),
    (AcquisitionChannel.STORE.value, 8),
    (AcquisitionChannel.OTHER.value, 2),
)
_CHANNEL_CUM = list(accumulate(weight for _channel, weight in CHANNELS))
# Mainland mobile prefixes in use (China Mobile, Unicom, Telecom, Broadnet).
PHONE_PREFIXES = tuple(
    [*range(130, 140), 145, 147, *range(150, 154), *range(155, 160), 166, 173, *range(175, 179)]
    + [*range(180, 190), 191, 193, 195, 196, 197, 198, 199]
)
# Reserved by RFC 2606: a misconfigured SMTP server can never mail a real person from demo data.
EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "example.cn.com")
EMAIL_HANDLES = ("xiao", "mei", "lucky", "sunny", "jun", "amy", "leo", "coco", "momo", "kiki")
SKIN_TYPES = ("干性", "油性", "混合性", "敏感性", "中性")

# Category -> (product id prefix, median amount in yuan, spread, lowest, highest).
CATEGORIES: dict[str, tuple[str, float, float, int, int]] = {
    "美妆": ("MZ", 230, 0.6, 39, 2600),
    "母婴": ("MY", 170, 0.7, 19, 3000),
    "服饰": ("FS", 260, 0.65, 49, 3500),
    "食品": ("SP", 79, 0.6, 9, 800),
    "数码": ("SM", 899, 0.9, 59, 15000),
}
CATEGORY_NAMES = tuple(CATEGORIES)
_CATEGORY_WEIGHTS = {
    Gender.FEMALE: (35, 15, 25, 15, 10),
    Gender.MALE: (6, 8, 20, 26, 40),
    Gender.UNKNOWN: (20, 20, 20, 20, 20),
}
PRODUCTS_PER_CATEGORY = 300
_CENTS = (0, 0, 0, 90, 99, 50)

# Shoppers' hours in China: a lunch bump and the evening peak around 21:00 (local time).
_HOUR_WEIGHTS = (
    1,
    0.5,
    0.3,
    0.2,
    0.2,
    0.3,
    0.8,
    2,
    3,
    3,
    3,
    3.5,
    5,
    4,
    3,
    3,
    3,
    3.5,
    4,
    5,
    8,
    9,
    7,
    4,
)
_HOUR_CUM = list(accumulate(_HOUR_WEIGHTS))
_RATING_CUM = list(accumulate((2, 2, 6, 25, 65)))


@dataclass
class DemoChunk:
    """Unsaved rows for a run of customers; orders and events point at the customers' objects."""

    customers: list[Customer] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    customer_tags: list[tuple[Customer, str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class DemoSummary:
    customers: int
    orders: int
    events: int
    tags: int
    customer_tags: int
    seconds: float


class _Counters:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.customers = 0
        self.orders = 0
        self.events = 0
        self.phones: set[str] = set()

    def customer_id(self) -> str:
        self.customers += 1
        return f"D{self.seed}-C{self.customers:07d}"

    def order_id(self) -> str:
        self.orders += 1
        return f"D{self.seed}-O{self.orders:08d}"

    def event_id(self) -> str:
        self.events += 1
        return f"D{self.seed}-E{self.events:09d}"


@dataclass
class _Person:
    """What the generator knows about one customer while building their history."""

    customer: Customer
    platform: str  # where their sessions happen: ios, android, mini_program, web
    category_weights: tuple[float, ...]
    has_baby: bool
    order_channels: tuple[str, ...]


def iter_demo_chunks(
    *, customers: int, seed: int, as_of: dt.datetime, chunk_size: int = DEMO_CHUNK
) -> Iterator[DemoChunk]:
    """Generate the demo rows in chunks of customers, without touching the database."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    # Whole seconds keep the rows identical whatever the database's datetime precision.
    as_of = as_of.replace(microsecond=0)
    rng = random.Random(seed)
    counters = _Counters(seed)
    chunk = DemoChunk()
    for _index in range(customers):
        _generate_customer(rng=rng, counters=counters, as_of=as_of, into=chunk)
        if len(chunk.customers) >= chunk_size:
            yield chunk
            chunk = DemoChunk()
    if chunk.customers:
        yield chunk


@transaction.atomic
def load_demo_data(
    *,
    customers: int,
    seed: int,
    as_of: dt.datetime,
    on_progress: Callable[[int], None] | None = None,
) -> DemoSummary:
    """Insert demo tags, customers, orders, events and tag links in bulk, in one transaction."""
    started = time.monotonic()
    Tag.objects.bulk_create(
        [Tag(name=name, description=description) for name, description in TAGS.items()],
        ignore_conflicts=True,
    )
    tags = {tag.name: tag for tag in Tag.objects.filter(name__in=TAGS)}
    totals: Counter[str] = Counter()
    now = timezone.now()
    with _cyclic_gc_paused():
        for chunk in iter_demo_chunks(customers=customers, seed=seed, as_of=as_of):
            # Both backends return the new ids (RETURNING), which the orders and events then use.
            Customer.objects.bulk_create(chunk.customers, batch_size=INSERT_BATCH)
            _insert_facts(chunk.orders, ORDER_COLUMNS, now=now)
            _insert_facts(chunk.events, EVENT_COLUMNS, now=now)
            CustomerTag.objects.bulk_create(
                [
                    CustomerTag(customer=customer, tag=tags[name], source=source)
                    for customer, name, source in chunk.customer_tags
                ],
                batch_size=INSERT_BATCH,
            )
            totals.update(
                customers=len(chunk.customers),
                orders=len(chunk.orders),
                events=len(chunk.events),
                customer_tags=len(chunk.customer_tags),
            )
            if on_progress:
                on_progress(totals["customers"])
    return DemoSummary(
        customers=totals["customers"],
        orders=totals["orders"],
        events=totals["events"],
        tags=len(tags),
        customer_tags=totals["customer_tags"],
        seconds=time.monotonic() - started,
    )


ORDER_COLUMNS = (
    "external_id",
    "customer_id",
    "placed_at",
    "amount",
    "status",
    "channel",
    "category",
)
EVENT_COLUMNS = ("event_id", "customer_id", "name", "occurred_at", "properties")


def _insert_facts(
    rows: list[Order] | list[Event], columns: tuple[str, ...], *, now: dt.datetime
) -> None:
    """Insert orders or events without building the ORM's per-value SQL (most of the load time
    went there): COPY on PostgreSQL, one executemany on SQLite. The rows are fresh and valid."""
    if not rows:
        return
    model = type(rows[0])
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(column) for column in (*columns, "created_at"))
    is_postgresql = connection.vendor == "postgresql"

    def adapt(value: Any) -> Any:
        if isinstance(value, dict):
            return json.dumps(value, ensure_ascii=False)
        if isinstance(value, dt.datetime) and not is_postgresql:
            return connection.ops.adapt_datetimefield_value(value)
        if isinstance(value, Decimal) and not is_postgresql:
            return str(value)
        return value

    for row in rows:
        row.customer_id = row.customer.pk  # type: ignore[union-attr]
    created_at = adapt(now)
    values = [[*(adapt(getattr(row, column)) for column in columns), created_at] for row in rows]
    with connection.cursor() as cursor:
        if is_postgresql:
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for value_row in values:
                    copy.write_row(value_row)
        else:
            placeholders = ", ".join(["%s"] * (len(columns) + 1))
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({placeholders})", values)


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cycle collector: it would rescan the live chunk every few hundred allocations
    (measured: a third of the load time), and the rows made here hold no reference cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _generate_customer(
    *, rng: random.Random, counters: _Counters, as_of: dt.datetime, into: DemoChunk
) -> None:
    profile = rng.choices(PROFILES, cum_weights=_PROFILE_CUM)[0]
    person = _person(rng=rng, counters=counters, as_of=as_of)
    customer = person.customer
    registered_at, active_until, last_order_from = _timeline(rng=rng, profile=profile, as_of=as_of)
    customer.registered_at = registered_at
    _consent(rng=rng, customer=customer, as_of=as_of)

    orders: list[Order] = []
    events: list[Event] = []
    if profile is not PROSPECT:
        # The last order is paid and inside the profile's window, so the lifecycle computed from
        # orders agrees with the one computed from activity.
        last_order_at = _moment(rng, last_order_from, active_until - dt.timedelta(minutes=1))
        earlier = min(_count(rng, profile.extra_orders_mean), 60)
        times = [
            _moment(rng, registered_at + SESSION_ROOM, last_order_at - dt.timedelta(minutes=1))
            for _ in range(earlier)
        ]
        for placed_at in [*sorted(times), last_order_at]:
            order = _order(rng=rng, counters=counters, person=person, placed_at=placed_at)
            if placed_at is not last_order_at and rng.random() < 0.05:
                order.status = OrderStatus.REFUNDED
            orders.append(order)
            events += _order_session(
                rng=rng, counters=counters, person=person, order=order, active_until=active_until
            )
    if profile is not PROSPECT or rng.random() < 0.6:
        # The last visit is the last activity: last_seen_at lands in the profile's window.
        events += _browse_session(rng=rng, counters=counters, person=person, at=active_until)
        recent_from = max(registered_at, as_of - dt.timedelta(days=14))
        for _ in range(_count(rng, profile.sessions_mean)):
            # Active customers browse mostly in the last two weeks: behaviour segments need that.
            start = recent_from if profile is ACTIVE and rng.random() < 0.6 else registered_at
            at = _moment(rng, start + SESSION_ROOM, active_until)
            events += _browse_session(rng=rng, counters=counters, person=person, at=at)
    if person.platform != "web" and profile is not PROSPECT and rng.random() < 0.25:
        events += _sign_ins(
            rng=rng, counters=counters, person=person, until=active_until, since=registered_at
        )
    customer.last_seen_at = max([e.occurred_at for e in events], default=registered_at)
    into.customers.append(customer)
    into.orders += orders
    into.events += events
    into.customer_tags += _tags(rng=rng, person=person, profile=profile, orders=orders)


def _person(*, rng: random.Random, counters: _Counters, as_of: dt.datetime) -> _Person:
    gender = rng.choices((Gender.FEMALE, Gender.MALE, Gender.UNKNOWN), cum_weights=(58, 95, 100))[0]
    given_pool = {Gender.FEMALE: FEMALE_GIVEN, Gender.MALE: MALE_GIVEN}.get(
        gender, FEMALE_GIVEN + MALE_GIVEN
    )
    given = "".join(rng.choice(given_pool) for _ in range(1 if rng.random() < 0.25 else 2))
    name = rng.choices(SURNAMES, cum_weights=_SURNAME_CUM)[0] + given
    age = rng.choices((18, 26, 36, 46), cum_weights=(20, 62, 87, 100))[0]
    age += rng.randrange({18: 8, 26: 10, 36: 10, 46: 15}[age])
    today = as_of.astimezone(CHINA).date()
    birth_date = dt.date(today.year - age - 1, 1, 1) + dt.timedelta(days=rng.randrange(365))
    channel = rng.choices(CHANNELS, cum_weights=_CHANNEL_CUM)[0][0]
    platforms: dict[str, str] = {
        AcquisitionChannel.MINI_PROGRAM.value: "mini_program",
        AcquisitionChannel.WEB.value: "web",
    }
    platform = platforms.get(channel) or rng.choices(("ios", "android"), cum_weights=(45, 100))[0]
    has_baby = 24 <= age <= 42 and rng.random() < (0.35 if gender == Gender.FEMALE else 0.2)
    weights = list(_CATEGORY_WEIGHTS[gender])
    if has_baby:
        weights[CATEGORY_NAMES.index("母婴")] *= 5
    favourite = rng.choices(range(len(weights)), weights=weights)[0]
    weights[favourite] += sum(weights)  # about half of their buying is their favourite category

    attributes: dict[str, object] = {}
    if gender == Gender.FEMALE and CATEGORY_NAMES[favourite] == "美妆" and rng.random() < 0.7:
        attributes["skin_type"] = rng.choice(SKIN_TYPES)
    if has_baby:
        attributes["has_baby"] = True
        attributes["baby_age_months"] = rng.randrange(37)
    elif 24 <= age <= 42 and rng.random() < 0.3:
        attributes["has_baby"] = False

    external_id = counters.customer_id()
    phone = _phone(rng, counters.phones)
    has_email = rng.random() < (0.8 if channel == AcquisitionChannel.WEB else 0.35)
    email = ""
    if has_email:
        handle = rng.choice(EMAIL_HANDLES) + str(counters.customers)
        email = f"{handle}@{rng.choice(EMAIL_DOMAINS)}"
    has_openid = channel == AcquisitionChannel.MINI_PROGRAM or rng.random() < 0.35
    openid_chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
    openid = "o" + "".join(rng.choices(openid_chars, k=27)) if has_openid else ""
    if channel == AcquisitionChannel.STORE:
        order_channels: tuple[str, ...] = ("store", "store", "app", "mini_program")
    elif channel == AcquisitionChannel.OTHER:
        order_channels = ("app", "mini_program", "web")
    else:
        # Sorted: a set of strings iterates in a per-process order (hash randomisation).
        others = sorted({"app", "mini_program", "web"} - {channel})
        order_channels = (channel,) * 4 + tuple(others)
    customer = Customer(
        external_id=external_id,
        name=name,
        phone=phone,
        email=email,
        wechat_openid=openid,
        gender=gender,
        birth_date=birth_date if rng.random() < 0.85 else None,
        city=rng.choices([c for c, _w in CITIES], cum_weights=_CITY_CUM)[0],
        channel=channel,
        attributes=attributes,
    )
    return _Person(
        customer=customer,
        platform=platform,
        category_weights=tuple(weights),
        has_baby=has_baby,
        order_channels=order_channels,
    )


def _phone(rng: random.Random, seen: set[str]) -> str:
    while True:
        phone = f"+86{rng.choice(PHONE_PREFIXES)}{rng.randrange(10**8):08d}"
        if phone not in seen:
            seen.add(phone)
            return phone


def _timeline(
    *, rng: random.Random, profile: LifecycleProfile, as_of: dt.datetime
) -> tuple[dt.datetime, dt.datetime, dt.datetime]:
    """When the customer registered, their last activity, and the earliest their last order."""

    def ago(days: float) -> dt.datetime:
        return as_of - dt.timedelta(seconds=round(days * 86400))

    if profile is NEW:
        registered_at = ago(rng.uniform(0.1, 6.5))
        active_until = _moment(rng, registered_at + 2 * SESSION_ROOM, as_of)
        return registered_at, active_until, registered_at + SESSION_ROOM
    if profile is PROSPECT:
        # A quarter registered in the last two weeks: "registered 24 h ago, no order" needs them.
        recent = rng.random() < 0.25
        registered_at = ago(rng.uniform(0.1, 14) if recent else rng.uniform(14, HISTORY_DAYS))
        browsed_for = dt.timedelta(seconds=round(rng.uniform(0, 45) * 86400))
        browsed_until = min(as_of, registered_at + SESSION_ROOM + browsed_for)
        return registered_at, browsed_until, registered_at
    last_seen_days = rng.uniform(*profile.last_seen_days_ago)
    # Everyone but the new registered at least nine days ago, so no one looks new by mistake.
    registered_at = ago(rng.uniform(max(last_seen_days + 1, 9), HISTORY_DAYS))
    active_until = _moment(rng, ago(last_seen_days + 0.5), ago(last_seen_days))
    last_order_from = max(registered_at + SESSION_ROOM, ago(profile.last_order_within_days))
    return registered_at, active_until, last_order_from


def _consent(*, rng: random.Random, customer: Customer, as_of: dt.datetime) -> None:
    if rng.random() < 0.03:
        span = int((as_of - customer.registered_at).total_seconds())
        customer.unsubscribed_at = customer.registered_at + dt.timedelta(
            seconds=rng.randint(0, span)
        )
        customer.sms_opt_in = customer.email_opt_in = False
        customer.push_opt_in = customer.wechat_opt_in = False
        return
    customer.sms_opt_in = rng.random() < 0.92
    customer.email_opt_in = bool(customer.email) and rng.random() < 0.85
    customer.push_opt_in = customer.channel != AcquisitionChannel.WEB and rng.random() < 0.78
    customer.wechat_opt_in = bool(customer.wechat_openid) and rng.random() < 0.85


def _order(
    *, rng: random.Random, counters: _Counters, person: _Person, placed_at: dt.datetime
) -> Order:
    category = rng.choices(CATEGORY_NAMES, weights=person.category_weights)[0]
    _prefix, median, spread, lowest, highest = CATEGORIES[category]
    value = min(max(rng.lognormvariate(math.log(median), spread), lowest), highest)
    amount = Decimal(f"{int(value)}.{rng.choice(_CENTS):02d}")
    return Order(
        external_id=counters.order_id(),
        customer=person.customer,
        placed_at=placed_at,
        amount=amount,
        status=OrderStatus.PAID,
        channel=rng.choice(person.order_channels),
        category=category,
    )


def _product(rng: random.Random, category: str) -> str:
    # Popularity is skewed: a few products get most of the views.
    index = int(PRODUCTS_PER_CATEGORY * rng.random() ** 2)
    return f"{CATEGORIES[category][0]}{index + 1:04d}"


def _session(
    *,
    rng: random.Random,
    counters: _Counters,
    person: _Person,
    steps: list[tuple[str, dict[str, object]]],
    end: dt.datetime,
) -> list[Event]:
    """Events for one visit, the last one at `end` and the others a few minutes apart before."""
    events = []
    at = end
    for name, properties in reversed(steps):
        events.append(
            Event(
                event_id=counters.event_id(),
                customer=person.customer,
                name=name,
                occurred_at=at,
                properties=properties,
            )
        )
        at -= dt.timedelta(seconds=rng.randint(20, 240))
    events.reverse()
    return events


def _order_session(
    *,
    rng: random.Random,
    counters: _Counters,
    person: _Person,
    order: Order,
    active_until: dt.datetime,
) -> list[Event]:
    category = order.category
    product = _product(rng, category)
    steps: list[tuple[str, dict[str, object]]] = [("app_open", {"platform": person.platform})]
    for _ in range(rng.randint(0, 2)):
        steps.append(
            ("view_product", {"category": category, "product_id": _product(rng, category)})
        )
    steps.append(("view_product", {"category": category, "product_id": product}))
    steps.append(("add_to_cart", {"category": category, "product_id": product, "quantity": 1}))
    steps.append(
        (
            "order",
            {"order_id": order.external_id, "category": category, "amount": float(order.amount)},
        )
    )
    events = _session(rng=rng, counters=counters, person=person, steps=steps, end=order.placed_at)
    share_at = order.placed_at + dt.timedelta(minutes=rng.randint(1, 30))
    if rng.random() < 0.1 and share_at <= active_until:
        share: dict[str, object] = {
            "category": category,
            "product_id": product,
            "to": rng.choice(("friend", "moments")),
        }
        events += _session(
            rng=rng, counters=counters, person=person, steps=[("share", share)], end=share_at
        )
    review_at = order.placed_at + dt.timedelta(days=rng.uniform(2, 10))
    review_at = review_at.replace(microsecond=0)
    if rng.random() < 0.3 and review_at <= active_until:
        rating = rng.choices(range(1, 6), cum_weights=_RATING_CUM)[0]
        review = {"order_id": order.external_id, "product_id": product, "rating": rating}
        events += _session(
            rng=rng, counters=counters, person=person, steps=[("review", review)], end=review_at
        )
    return events


def _browse_session(
    *, rng: random.Random, counters: _Counters, person: _Person, at: dt.datetime
) -> list[Event]:
    category = rng.choices(CATEGORY_NAMES, weights=person.category_weights)[0]
    steps: list[tuple[str, dict[str, object]]] = [("app_open", {"platform": person.platform})]
    product = ""
    for _ in range(rng.randint(1, 4)):
        product = _product(rng, category)
        steps.append(("view_product", {"category": category, "product_id": product}))
    roll = rng.random()
    if roll < 0.2:
        # Abandoned carts: the "second touch 24 h later" trigger needs some.
        steps.append(("add_to_cart", {"category": category, "product_id": product, "quantity": 1}))
    elif roll < 0.26:
        share: dict[str, object] = {
            "category": category,
            "product_id": product,
            "to": rng.choice(("friend", "moments")),
        }
        steps.append(("share", share))
    return _session(rng=rng, counters=counters, person=person, steps=steps, end=at)


def _sign_ins(
    *,
    rng: random.Random,
    counters: _Counters,
    person: _Person,
    until: dt.datetime,
    since: dt.datetime,
) -> list[Event]:
    streak = rng.randint(2, 14)
    events: list[Event] = []
    for day in range(streak):
        at = until - dt.timedelta(days=day, seconds=rng.randint(0, 3 * 3600))
        if at < since:
            break
        steps: list[tuple[str, dict[str, object]]] = [
            ("sign_in", {"consecutive_days": streak - day})
        ]
        events += _session(rng=rng, counters=counters, person=person, steps=steps, end=at)
    return events


def _tags(
    *, rng: random.Random, person: _Person, profile: LifecycleProfile, orders: list[Order]
) -> list[tuple[Customer, str, str]]:
    """Tags an operator or an import would plausibly have put on this customer (not all of them)."""
    paid = [order for order in orders if order.status == OrderStatus.PAID]
    spend = sum((order.amount for order in paid), Decimal(0))
    by_category = Counter(order.category for order in paid)
    candidates = (
        ("高价值用户", TagSource.IMPORT, spend >= 3000 and len(paid) >= 3, 0.9),
        ("新客", TagSource.MANUAL, profile is NEW, 0.9),
        ("沉睡用户", TagSource.IMPORT, profile is LAPSED, 0.7),
        ("母婴人群", TagSource.IMPORT, person.has_baby, 0.8),
        ("美妆爱好者", TagSource.MANUAL, by_category["美妆"] >= 2, 0.85),
        ("价格敏感", TagSource.MANUAL, len(paid) >= 2 and spend / len(paid) < 150, 0.5),
        ("数码发烧友", TagSource.MANUAL, by_category["数码"] >= 2, 0.7),
        ("门店会员", TagSource.IMPORT, person.customer.channel == AcquisitionChannel.STORE, 0.95),
    )
    return [
        (person.customer, name, str(source))
        for name, source, applies, share in candidates
        if applies and rng.random() < share
    ]


def _moment(rng: random.Random, start: dt.datetime, end: dt.datetime) -> dt.datetime:
    """A whole-second time in [start, end] (end when the range is empty), at a likely shopping
    hour when that day allows it."""
    span = int((end - start).total_seconds())
    if span <= 0:
        return end
    moment = start + dt.timedelta(seconds=rng.randint(0, span))
    snapped = moment.astimezone(CHINA).replace(
        hour=rng.choices(range(24), cum_weights=_HOUR_CUM)[0],
        minute=rng.randrange(60),
        second=rng.randrange(60),
    )
    return snapped if start <= snapped <= end else moment


def _count(rng: random.Random, mean: float) -> int:
    """A count around `mean` with a long tail, as order and visit counts have."""
    return int(rng.expovariate(1 / mean) + 0.5) if mean > 0 else 0
