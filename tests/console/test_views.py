from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from customers.models import ImportRun
from loyalty.models import LoyaltySettings, Membership, PointsEntry, Tier, TierChange
from tests.factories import SHANGHAI


@pytest.fixture(autouse=True)
def english(settings: Any) -> None:
    # Our strings will get a zh-hans catalogue: read the pages in English to assert their text.
    settings.LANGUAGE_CODE = "en"


def text(fragment: str) -> str:
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", fragment).split()))


def section(content: str, section_id: str) -> str:
    found = re.search(rf'<section id="{section_id}".*?</section>', content, re.S)
    assert found is not None, f"no section #{section_id} on the page"
    return found.group(0)


def table_rows(fragment: str) -> list[list[str]]:
    body = re.search(r"<tbody>(.*?)</tbody>", fragment, re.S)
    assert body is not None
    return [
        [text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body.group(1), re.S)
    ]


def by_testid(content: str, testid: str) -> str:
    found = re.search(rf'<(\w+)[^>]*data-testid="{testid}"[^>]*>(.*?)</\1>', content, re.S)
    assert found is not None, f"nothing with data-testid={testid}"
    return text(found.group(2))


# --- home -------------------------------------------------------------------------------------


@pytest.fixture
def shop_activity(
    customer_factory: Any, order_factory: Any, event_factory: Any, make_user: Any
) -> None:
    now = timezone.now()
    first, second = customer_factory(), customer_factory()
    order_factory(customer=first, placed_at=now - dt.timedelta(days=2), amount=Decimal("1234.50"))
    order_factory(customer=second, placed_at=now - dt.timedelta(days=29), amount=Decimal("65.50"))
    order_factory(
        customer=first,
        placed_at=now - dt.timedelta(days=3),
        amount=Decimal("999.00"),
        status="refunded",
    )
    order_factory(customer=second, placed_at=now - dt.timedelta(days=31), amount=Decimal("7.00"))
    event_factory(customer=first, occurred_at=now - dt.timedelta(days=1))
    event_factory(customer=second, occurred_at=now - dt.timedelta(days=6))
    event_factory(customer=second, occurred_at=now - dt.timedelta(days=8))
    importer = make_user("Operators", username="importer")
    ImportRun.objects.create(
        kind="orders",
        file_name="orders-june.csv",
        status="done",
        rows_imported=1200,
        rows_rejected=3,
        created_by=importer,
    )


@pytest.mark.parametrize(
    ("role_client", "role", "has_admin_link"),
    [
        ("operator_client", "Operator", False),
        ("manager_client", "Manager", False),
        ("admin_client_role", "Admin", True),
    ],
    ids=["operator", "manager", "admin"],
)
def test_the_home_page_shows_each_role_the_figures_of_the_shop(
    request: pytest.FixtureRequest,
    shop_activity: None,
    role_client: str,
    role: str,
    has_admin_link: bool,
) -> None:
    client: Client = request.getfixturevalue(role_client)

    response = client.get("/")
    content = response.content.decode()

    assert response.status_code == 200
    assert by_testid(content, "figure-customers") == "Customers 2 Browse customers"
    assert by_testid(content, "figure-orders") == "Orders, last 30 days 3"
    assert by_testid(content, "figure-revenue") == "Revenue, last 30 days ¥1,300.00 paid orders"
    assert by_testid(content, "figure-events") == "Events, last 7 days 2"
    assert by_testid(content, "current-role") == role
    assert ('data-nav="admin"' in content) is has_admin_link
    imports = table_rows(content)
    assert len(imports) == 1
    assert imports[0][1:] == ["Orders", "orders-june.csv", "Done", "1,200", "3", "importer"]


def test_the_home_page_of_an_empty_shop_says_there_are_no_imports(
    operator_client: Client,
) -> None:
    content = operator_client.get("/").content.decode()

    assert by_testid(content, "figure-customers") == "Customers 0 Browse customers"
    assert by_testid(content, "figure-revenue") == "Revenue, last 30 days ¥0.00 paid orders"
    assert "No imports yet." in content


def test_the_navigation_links_customers_segments_and_loyalty_and_shows_the_sections_to_come(
    operator_client: Client,
) -> None:
    content = operator_client.get("/customers/").content.decode()

    assert '<a href="/customers/" aria-current="page" data-nav="customers">Customers</a>' in content
    assert '<a href="/segments/" data-nav="segments">Segments</a>' in content
    assert '<a href="/loyalty/" data-nav="loyalty">Loyalty</a>' in content
    for key in ("campaigns", "reports"):
        assert f'aria-disabled="true" title="coming soon" data-nav="{key}"' in content


# --- customer 360 -----------------------------------------------------------------------------


def at(year: int, month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest.fixture
def wang(
    customer_factory: Any,
    tag_factory: Any,
    customer_tag_factory: Any,
    order_factory: Any,
    event_factory: Any,
) -> Any:
    customer = customer_factory(
        external_id="C-WANG",
        name="王芳",
        phone="+8613812341234",
        email="wangfang@example.com",
        wechat_openid="oWANG",
        gender="f",
        birth_date=dt.date(1990, 4, 2),
        city="杭州",
        channel="mini_program",
        registered_at=at(2024, 1, 10, 9, 30),
        last_seen_at=at(2024, 6, 14, 21, 5),
        email_opt_in=False,
        attributes={"skin_type": "油性", "has_baby": True},
    )
    customer_tag_factory(customer=customer, tag=tag_factory(name="美妆爱好者"), source="manual")
    customer_tag_factory(customer=customer, tag=tag_factory(name="高价值用户"), source="import")
    order_factory(
        customer=customer,
        external_id="O-1",
        placed_at=at(2024, 3, 1, 20, 15),
        amount=Decimal("1299.00"),
        channel="mini_program",
        category="美妆",
    )
    order_factory(
        customer=customer,
        external_id="O-2",
        placed_at=at(2024, 6, 14, 21, 0),
        amount=Decimal("35.50"),
        status="refunded",
        channel="app",
        category="食品",
    )
    event_factory(
        customer=customer,
        name="view_product",
        occurred_at=at(2024, 6, 14, 20, 58),
        properties={"category": "食品", "product_id": "SP0007"},
    )
    event_factory(
        customer=customer,
        name="order",
        occurred_at=at(2024, 6, 14, 21, 0),
        properties={"order_id": "O-2", "amount": 35.5},
    )
    return customer


def test_the_360_page_shows_the_profile(admin_client_role: Client, wang: Any) -> None:
    content = admin_client_role.get(f"/customers/{wang.pk}/").content.decode()

    assert by_testid(content, "customer-name") == "王芳"
    assert "C-WANG" in content
    assert text(section(content, "customer-profile")) == (
        "Profile Phone +8613812341234 E-mail wangfang@example.com WeChat linked Gender Female "
        "Birth date 1990-04-02 City 杭州 Channel Mini program Registered 2024-01-10 09:30 "
        "Last seen 2024-06-14 21:05"
    )
    assert text(section(content, "customer-consent")) == (
        "Consent SMS: opted in E-mail: opted out App push: opted in WeChat: opted in"
    )
    assert text(section(content, "customer-attributes")) == (
        "Attributes has_baby true skin_type 油性"
    )


def test_the_360_page_shows_the_tags_with_their_source(operator_client: Client, wang: Any) -> None:
    tags = section(operator_client.get(f"/customers/{wang.pk}/").content.decode(), "customer-tags")

    assert re.findall(r'data-tag="([^"]+)"', tags) == ["美妆爱好者", "高价值用户"]
    assert '<small class="tag-source">Import</small>' in tags
    assert tags.count('class="tag-remove"') == 2
    assert 'class="tag-add"' in tags


def test_the_360_page_shows_the_orders_newest_first_with_totals(
    operator_client: Client, wang: Any
) -> None:
    orders = section(
        operator_client.get(f"/customers/{wang.pk}/").content.decode(), "customer-orders"
    )

    assert by_testid(orders, "order-totals") == "2 orders ¥1,299.00 paid"
    assert table_rows(orders) == [
        ["2024-06-14 21:00", "O-2", "¥35.50", "Refunded", "app", "食品"],
        ["2024-03-01 20:15", "O-1", "¥1,299.00", "Paid", "mini_program", "美妆"],
    ]


def test_the_360_page_shows_the_events_newest_first_with_their_properties(
    operator_client: Client, wang: Any
) -> None:
    events = section(
        operator_client.get(f"/customers/{wang.pk}/").content.decode(), "customer-events"
    )

    items = [text(item) for item in re.findall(r"<li>(.*?)</li>", events, re.S)]
    assert items == [
        "2024-06-14 21:00 order amount 35.5 order_id O-2",
        "2024-06-14 20:58 view_product category 食品 product_id SP0007",
    ]
    assert '<time datetime="2024-06-14T21:00:00+08:00">' in events


def test_the_360_page_of_a_customer_without_history_says_so(
    operator_client: Client, customer_factory: Any
) -> None:
    customer = customer_factory(name="", external_id="C-EMPTY", phone="", email="")

    content = operator_client.get(f"/customers/{customer.pk}/").content.decode()

    assert by_testid(content, "customer-name") == "C-EMPTY"
    assert by_testid(content, "customer-phone") == "—"
    assert "No tags yet." in content
    assert "No orders yet." in content
    assert "No events yet." in content
    assert 'id="customer-attributes"' not in content


@pytest.mark.parametrize(
    ("role_client", "phone", "email"),
    [
        ("operator_client", "138****1234", "w***@example.com"),
        ("manager_client", "138****1234", "w***@example.com"),
        ("admin_client_role", "+8613812341234", "wangfang@example.com"),
    ],
    ids=["operator", "manager", "admin"],
)
def test_the_360_page_masks_contacts_unless_the_user_may_see_them(
    request: pytest.FixtureRequest, wang: Any, role_client: str, phone: str, email: str
) -> None:
    client: Client = request.getfixturevalue(role_client)

    content = client.get(f"/customers/{wang.pk}/").content.decode()

    assert by_testid(content, "customer-phone") == phone
    assert by_testid(content, "customer-email") == email
    if phone.startswith("138"):
        assert "13812341234" not in content
        assert "wangfang" not in content


def test_an_unknown_customer_is_a_404(operator_client: Client, db: None) -> None:
    response = operator_client.get("/customers/987654/")

    assert response.status_code == 404


@pytest.mark.parametrize("history", [1, 6])
def test_the_360_page_costs_the_same_queries_however_long_the_history(
    operator_client: Client,
    customer_factory: Any,
    tag_factory: Any,
    customer_tag_factory: Any,
    order_factory: Any,
    event_factory: Any,
    django_assert_num_queries: Any,
    history: int,
) -> None:
    customer = customer_factory()
    for number in range(history):
        customer_tag_factory(customer=customer, tag=tag_factory(name=f"t{number}"))
        order_factory(customer=customer)
        event_factory(customer=customer)
    operator_client.get("/")

    # session, user, customer, tags, order totals, orders, events, tag suggestions, membership,
    # loyalty settings, points entries, tier changes, segments with the customer's memberships,
    # groups (role badge), the user's and the groups' permissions (masking, tag forms, points
    # forms).
    with django_assert_num_queries(16):
        response = operator_client.get(f"/customers/{customer.pk}/")

    assert len(table_rows(section(response.content.decode(), "customer-orders"))) == history


def test_the_home_page_costs_a_fixed_number_of_queries(
    operator_client: Client, shop_activity: None, django_assert_num_queries: Any
) -> None:
    operator_client.get("/")
    # session, user, customers (PostgreSQL asks the planner first), orders, events, imports,
    # groups (role badge).
    expected = 7 + (1 if connection.vendor == "postgresql" else 0)

    with django_assert_num_queries(expected):
        operator_client.get("/")


# --- who may see what -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/"),
        ("get", "/customers/"),
        ("get", "/customers/?city=上海"),
        ("get", "/customers/{id}/"),
        ("post", "/customers/{id}/tags/"),
        ("post", "/customers/{id}/tags/1/remove/"),
    ],
    ids=["home", "list", "filtered-list", "360", "tag-add", "tag-remove"],
)
def test_an_anonymous_visitor_is_sent_to_log_in(
    client: Client, customer_factory: Any, method: str, path: str
) -> None:
    customer = customer_factory()
    url = path.format(id=customer.pk)

    response = getattr(client, method)(url, {"name": "VIP"} if method == "post" else None)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_the_login_page_is_open_to_anonymous_visitors(client: Client, db: None) -> None:
    response = client.get("/accounts/login/")

    assert response.status_code == 200
    assert 'name="username"' in response.content.decode()
    assert 'data-nav="customers"' not in response.content.decode()


def test_a_person_logs_in_with_the_form_and_lands_on_the_home_page(
    client: Client, make_user: Any
) -> None:
    make_user("Operators", username="li.lei", password="pw-for-tests-1")

    response = client.post(
        "/accounts/login/", {"username": "li.lei", "password": "pw-for-tests-1"}, follow=True
    )

    assert response.redirect_chain == [("/", 302)]
    assert by_testid(response.content.decode(), "current-user") == "li.lei"


def test_a_wrong_password_is_refused_with_a_message(client: Client, make_user: Any) -> None:
    make_user("Operators", username="li.lei")

    response = client.post("/accounts/login/", {"username": "li.lei", "password": "wrong"})

    assert response.status_code == 200
    assert "Please enter a correct username and password." in response.content.decode()


def test_logging_out_returns_to_the_login_page(operator_client: Client) -> None:
    response = operator_client.post("/accounts/logout/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert operator_client.get("/").status_code == 302


# --- language ---------------------------------------------------------------------------------


def test_pages_are_in_simplified_chinese_by_default(settings: Any, operator_client: Client) -> None:
    settings.LANGUAGE_CODE = "zh-hans"

    content = operator_client.get("/").content.decode()

    assert '<html lang="zh-hans">' in content
    assert 'value="zh-hans" lang="zh-hans" aria-pressed="true"' in content


def test_switching_to_english_renders_the_next_pages_in_english(
    settings: Any, operator_client: Client, customer_factory: Any
) -> None:
    settings.LANGUAGE_CODE = "zh-hans"
    customer = customer_factory()

    switched = operator_client.post("/i18n/setlang/", {"language": "en", "next": "/customers/"})

    assert switched.status_code == 302
    assert switched["Location"] == "/customers/"
    for path in ("/", "/customers/", f"/customers/{customer.pk}/"):
        content = operator_client.get(path).content.decode()
        assert '<html lang="en">' in content, path
        assert 'value="en" lang="en" aria-pressed="true"' in content, path


def test_an_anonymous_visitor_can_switch_the_language_of_the_login_page(
    settings: Any, client: Client, db: None
) -> None:
    settings.LANGUAGE_CODE = "zh-hans"

    client.post("/i18n/setlang/", {"language": "en", "next": "/accounts/login/"})

    assert '<html lang="en">' in client.get("/accounts/login/").content.decode()


def test_an_unknown_language_leaves_the_pages_as_they_were(
    settings: Any, operator_client: Client
) -> None:
    settings.LANGUAGE_CODE = "zh-hans"

    response = operator_client.post("/i18n/setlang/", {"language": "xx", "next": "/"})

    assert response.status_code == 302
    assert '<html lang="zh-hans">' in operator_client.get("/").content.decode()


@pytest.mark.parametrize("path", ["/customers/", "/customers/{id}/"], ids=["list", "360"])
def test_a_user_without_a_role_may_not_see_customers(
    make_user: Any, customer_factory: Any, path: str
) -> None:
    client = Client()
    client.force_login(make_user(None, username="nobody"))
    customer = customer_factory()

    response = client.get(path.format(id=customer.pk))

    assert response.status_code == 403
    assert customer.name not in response.content.decode()


def test_a_user_without_a_role_still_sees_the_home_page(make_user: Any) -> None:
    client = Client()
    client.force_login(make_user(None, username="nobody"))

    response = client.get("/")

    assert response.status_code == 200
    assert 'data-testid="current-role"' not in response.content.decode()


# --- customer 360: membership, points and tier history (loyalty) ------------------------------


MEMBERSHIP_HTMX = {"HX-Request": "true", "HX-Target": "customer-membership"}
KEY = "0123456789abcdef0123456789abcdef"


def _ledger_entry(
    customer: Any, key: str, kind: str, delta: int, when: dt.datetime, **fields: Any
) -> Any:
    return PointsEntry.objects.create(
        customer=customer,
        kind=kind,
        bucket=fields.pop("bucket", "available"),
        delta=delta,
        idempotency_key=key,
        effective_at=when,
        **fields,
    )


@pytest.fixture
def member_wang(wang: Any) -> Any:
    normal, silver = Tier.objects.get(code="normal"), Tier.objects.get(code="silver")
    Membership.objects.create(
        customer=wang,
        tier=silver,
        tier_since=at(2024, 3, 2, 3, 0),
        below_tier_since=at(2024, 6, 1, 9, 0),
        points_balance=1250,
        pending_points=35,
        joined_at=wang.registered_at,
    )
    TierChange.objects.create(
        customer=wang,
        from_tier=None,
        to_tier=normal,
        reason="joined",
        spend=Decimal("0"),
        orders_count=0,
        window_days=365,
        changed_at=at(2024, 1, 10, 9, 30),
    )
    TierChange.objects.create(
        customer=wang,
        from_tier=normal,
        to_tier=silver,
        reason="upgrade",
        spend=Decimal("1299.00"),
        orders_count=1,
        window_days=365,
        changed_at=at(2024, 3, 2, 3, 0),
    )
    _ledger_entry(
        wang,
        "order:1:earn",
        "order_earn",
        1299,
        at(2024, 3, 1, 20, 15),
        bucket="pending",
        expires_at=at(2026, 1, 1, 0, 0),
    )
    _ledger_entry(wang, "order:1:release:pending", "order_release", -1299, at(2024, 3, 8, 20, 15),
                  bucket="pending")  # fmt: skip
    _ledger_entry(wang, "order:1:release:available", "order_release", 1299, at(2024, 3, 8, 20, 15),
                  expires_at=at(2026, 1, 1, 0, 0))  # fmt: skip
    _ledger_entry(wang, "redeem:1", "redeem", -100, at(2024, 5, 20, 10, 0), reason="兑换优惠券")
    _ledger_entry(wang, "adjust:1", "adjust", 51, at(2024, 6, 14, 21, 5), reason="客服补偿",
                  expires_at=at(2026, 1, 1, 0, 0))  # fmt: skip
    _ledger_entry(wang, "order:2:earn", "order_earn", 35, at(2024, 6, 14, 21, 0),
                  bucket="pending", expires_at=at(2026, 1, 1, 0, 0))  # fmt: skip
    return wang


@pytest.mark.parametrize("role_client", ["operator_client", "manager_client", "admin_client_role"])
def test_the_360_page_shows_the_membership_card_to_every_role(
    request: pytest.FixtureRequest, member_wang: Any, role_client: str
) -> None:
    client: Client = request.getfixturevalue(role_client)

    content = client.get(f"/customers/{member_wang.pk}/").content.decode()

    assert by_testid(content, "membership-facts").startswith(
        "Tier Silver Tier since 2024-03-02 03:00 Grace period Below this tier since 2024-06-01; "
        "moves down after 2024-07-01 09:00 unless back at the tier's level. "
        "Points balance 1,250 worth ¥12.50 Pending points 35 Member since 2024-01-10"
    )
    assert '<rect width="12" height="12" rx="3" fill="#a7b4c2"/>' in section(
        content, "customer-membership"
    )


def test_the_membership_card_of_a_member_without_grace_has_no_grace_line(
    operator_client: Client, member_wang: Any
) -> None:
    Membership.objects.filter(customer=member_wang).update(below_tier_since=None)

    content = operator_client.get(f"/customers/{member_wang.pk}/").content.decode()

    assert 'data-testid="membership-grace"' not in content
    assert by_testid(content, "membership-balance") == "1,250 worth ¥12.50"


def test_the_grace_period_ends_by_the_settings(operator_client: Client, member_wang: Any) -> None:
    LoyaltySettings.objects.filter(pk=1).update(downgrade_grace_days=10)

    content = operator_client.get(f"/customers/{member_wang.pk}/").content.decode()

    assert by_testid(content, "membership-grace") == (
        "Below this tier since 2024-06-01; moves down after 2024-06-11 09:00 unless back at the "
        "tier's level."
    )


def test_the_360_page_shows_the_points_ledger_newest_first(
    operator_client: Client, member_wang: Any
) -> None:
    ledger = section(
        operator_client.get(f"/customers/{member_wang.pk}/").content.decode(), "customer-points"
    )

    assert table_rows(ledger) == [
        [
            "2024-06-14 21:05",
            "Manual adjustment",
            "+51",
            "Available",
            "客服补偿",
            "2026-01-01 00:00",
        ],
        ["2024-06-14 21:00", "Order", "+35", "Pending", "—", "2026-01-01 00:00"],
        ["2024-05-20 10:00", "Redeemed", "-100", "Available", "兑换优惠券", "—"],
        [
            "2024-03-08 20:15",
            "Return window passed",
            "+1,299",
            "Available",
            "—",
            "2026-01-01 00:00",
        ],
        ["2024-03-08 20:15", "Return window passed", "-1,299", "Pending", "—", "—"],
        ["2024-03-01 20:15", "Order", "+1,299", "Pending", "—", "2026-01-01 00:00"],
    ]
    assert "The latest 50 entries are shown." not in ledger


def test_the_ledger_shows_the_latest_50_entries(operator_client: Client, member_wang: Any) -> None:
    for number in range(50):
        _ledger_entry(member_wang, f"sign:{number}", "event_earn", 1, at(2024, 7, 1, 8, number))

    ledger = section(
        operator_client.get(f"/customers/{member_wang.pk}/").content.decode(), "customer-points"
    )

    rows = table_rows(ledger)
    assert len(rows) == 50
    assert rows[0][:3] == ["2024-07-01 08:49", "Activity", "+1"]
    assert rows[-1][:3] == ["2024-07-01 08:00", "Activity", "+1"]
    assert "The latest 50 entries are shown." in ledger


def test_the_360_page_shows_the_tier_history_newest_first(
    operator_client: Client, member_wang: Any
) -> None:
    history = section(
        operator_client.get(f"/customers/{member_wang.pk}/").content.decode(),
        "customer-tier-history",
    )

    assert table_rows(history) == [
        ["2024-03-02 03:00", "Normal", "Silver", "Upgrade", "¥1,299.00", "1"],
        ["2024-01-10 09:30", "—", "Normal", "Joined", "¥0.00", "0"],
    ]


def test_the_360_page_of_a_customer_who_is_not_a_member_yet_says_so(
    admin_client_role: Client, wang: Any
) -> None:
    content = admin_client_role.get(f"/customers/{wang.pk}/").content.decode()

    assert "Not a member yet" in section(content, "customer-membership")
    assert 'class="points-adjust' not in content
    assert "No points yet." in content
    assert "No tier changes yet." in content


@pytest.mark.parametrize(
    ("role_client", "has_forms"),
    [("operator_client", False), ("manager_client", False), ("admin_client_role", True)],
    ids=["operator", "manager", "admin"],
)
def test_only_admins_get_the_adjust_and_redeem_forms(
    request: pytest.FixtureRequest, member_wang: Any, role_client: str, has_forms: bool
) -> None:
    client: Client = request.getfixturevalue(role_client)

    content = client.get(f"/customers/{member_wang.pk}/").content.decode()

    assert ('class="points-adjust stacked"' in content) is has_forms
    assert ('class="points-redeem stacked"' in content) is has_forms


def _points_state(customer: Any) -> tuple[int, int, int]:
    membership = Membership.objects.get(customer=customer)
    return membership.points_balance, membership.pending_points, PointsEntry.objects.count()


@pytest.mark.parametrize("role_client", ["operator_client", "manager_client"])
@pytest.mark.parametrize("action", ["adjust", "redeem"])
def test_operators_and_managers_may_not_adjust_or_redeem_points(
    request: pytest.FixtureRequest, member_wang: Any, role_client: str, action: str
) -> None:
    client: Client = request.getfixturevalue(role_client)
    before = _points_state(member_wang)

    response = client.post(
        f"/customers/{member_wang.pk}/points/{action}/",
        {"delta": "100", "points": "100", "reason": "test"},
        headers=MEMBERSHIP_HTMX,
    )

    assert response.status_code == 403
    assert _points_state(member_wang) == before


def test_an_admin_adds_points_and_sees_the_card_and_the_ledger_updated(
    admin_client_role: Client, admin_user: Any, member_wang: Any
) -> None:
    response = admin_client_role.post(
        f"/customers/{member_wang.pk}/points/adjust/",
        {"delta": "100", "reason": " 活动 补偿 ", "key": KEY},
        headers=MEMBERSHIP_HTMX,
    )
    content = response.content.decode()

    assert response.status_code == 200
    assert content.lstrip().startswith('<section id="customer-membership"')
    assert by_testid(content, "points-done") == "Added 100 points."
    assert by_testid(content, "membership-balance") == "1,350 worth ¥13.50"
    ledger = re.search(
        r'<section id="customer-points"[^>]*hx-swap-oob="true".*?</section>', content, re.S
    )
    assert ledger is not None
    assert table_rows(ledger.group(0))[0][1:5] == [
        "Manual adjustment",
        "+100",
        "Available",
        "活动 补偿",
    ]
    entry = PointsEntry.objects.get(idempotency_key=f"adjust:{KEY}")
    assert (entry.delta, entry.reason, entry.created_by) == (100, "活动 补偿", admin_user)
    assert _points_state(member_wang)[:2] == (1350, 35)
    assert f'name="key" value="{KEY}"' not in content


def test_an_adjustment_sent_twice_with_its_key_counts_once(
    admin_client_role: Client, member_wang: Any
) -> None:
    data = {"delta": "-50", "reason": "纠错", "key": KEY}

    first = admin_client_role.post(
        f"/customers/{member_wang.pk}/points/adjust/", data, headers=MEMBERSHIP_HTMX
    )
    second = admin_client_role.post(
        f"/customers/{member_wang.pk}/points/adjust/", data, headers=MEMBERSHIP_HTMX
    )

    assert (first.status_code, second.status_code) == (200, 200)
    assert by_testid(second.content.decode(), "points-done") == "Took away 50 points."
    assert PointsEntry.objects.filter(kind="adjust", reason="纠错").count() == 1
    assert _points_state(member_wang)[0] == 1200


@pytest.mark.parametrize(
    ("data", "field", "error"),
    [
        ({"delta": "100", "reason": "  "}, "reason", "Enter a reason."),
        ({"delta": "", "reason": "x"}, "delta", "Enter a number of points."),
        ({"delta": "1.5", "reason": "x"}, "delta", "Enter a whole number of points."),
        ({"delta": "0", "reason": "x"}, "delta", "Enter a number of points other than 0."),
        (
            {"delta": "-5000", "reason": "x"},
            "delta",
            "Not enough points: the balance is 1250 and 5000 were requested.",
        ),
        (
            {"delta": "100", "reason": "长" * 256},
            "reason",
            "A reason has at most 255 characters; this one has 256.",
        ),
        (
            {"delta": "200000000", "reason": "x"},
            "delta",
            "At most 100000000 points at once.",
        ),
    ],
    ids=[
        "no-reason",
        "no-points",
        "not-whole",
        "zero",
        "more-than-the-balance",
        "long-reason",
        "huge",
    ],
)
def test_a_bad_adjustment_is_a_422_with_the_error_on_the_form_and_nothing_written(
    admin_client_role: Client, member_wang: Any, data: dict[str, str], field: str, error: str
) -> None:
    before = _points_state(member_wang)

    response = admin_client_role.post(
        f"/customers/{member_wang.pk}/points/adjust/", {**data, "key": KEY}, headers=MEMBERSHIP_HTMX
    )
    content = response.content.decode()

    assert response.status_code == 422
    form = re.search(r'<form class="points-adjust.*?</form>', content, re.S)
    assert form is not None
    assert re.findall(
        rf'data-field="{field}">.*?<p class="field-error" role="alert">(.*?)</p>',
        form.group(0),
        re.S,
    ) == [error]
    assert 'aria-invalid="true"' in form.group(0)
    assert _points_state(member_wang) == before
    assert "hx-swap-oob" not in content


def test_an_admin_redeems_points_and_sees_what_they_are_worth(
    admin_client_role: Client, member_wang: Any
) -> None:
    response = admin_client_role.post(
        f"/customers/{member_wang.pk}/points/redeem/",
        {"points": "555", "reason": "兑换 5 元券", "key": KEY},
        headers=MEMBERSHIP_HTMX,
    )
    content = response.content.decode()

    assert response.status_code == 200
    assert by_testid(content, "points-done") == "Redeemed 555 points, worth ¥5.55."
    assert by_testid(content, "membership-balance") == "695 worth ¥6.95"
    entry = PointsEntry.objects.get(idempotency_key=f"redeem:{KEY}")
    assert (entry.kind, entry.delta, entry.reason) == ("redeem", -555, "兑换 5 元券")


@pytest.mark.parametrize(
    ("points", "error"),
    [
        ("1251", "Not enough points: the balance is 1250 and 1251 were requested."),
        ("-5", "Enter a number of points greater than 0."),
        ("abc", "Enter a whole number of points."),
    ],
    ids=["more-than-the-balance", "negative", "not-a-number"],
)
def test_a_bad_redemption_is_a_422_with_the_error_on_the_form_and_nothing_written(
    admin_client_role: Client, member_wang: Any, points: str, error: str
) -> None:
    before = _points_state(member_wang)

    response = admin_client_role.post(
        f"/customers/{member_wang.pk}/points/redeem/",
        {"points": points, "key": KEY},
        headers=MEMBERSHIP_HTMX,
    )
    content = response.content.decode()

    assert response.status_code == 422
    form = re.search(r'<form class="points-redeem.*?</form>', content, re.S)
    assert form is not None
    assert re.findall(
        r'data-field="points">.*?<p class="field-error" role="alert">(.*?)</p>', form.group(0), re.S
    ) == [error]
    assert _points_state(member_wang) == before


def test_without_htmx_an_adjustment_redirects_back_with_a_message(
    admin_client_role: Client, member_wang: Any
) -> None:
    response = admin_client_role.post(
        f"/customers/{member_wang.pk}/points/adjust/",
        {"delta": "1", "reason": "补签"},
        follow=True,
    )

    assert response.redirect_chain == [(f"/customers/{member_wang.pk}/", 302)]
    assert '<p class="message message-success">Added 1 point.</p>' in response.content.decode()
    assert _points_state(member_wang)[0] == 1251


def test_without_htmx_a_bad_redemption_shows_the_whole_page_with_the_error(
    admin_client_role: Client, member_wang: Any
) -> None:
    response = admin_client_role.post(
        f"/customers/{member_wang.pk}/points/redeem/", {"points": "99999"}
    )
    content = response.content.decode()

    assert response.status_code == 422
    assert by_testid(content, "customer-name") == "王芳"
    assert "Not enough points: the balance is 1250 and 99999 were requested." in content
    assert 'name="points" value="99999"' in content


def test_adjusting_a_customer_who_is_not_a_member_says_so(
    admin_client_role: Client, wang: Any
) -> None:
    response = admin_client_role.post(
        f"/customers/{wang.pk}/points/adjust/",
        {"delta": "5", "reason": "x"},
        headers=MEMBERSHIP_HTMX,
    )

    assert response.status_code == 422
    assert f"Customer {wang.pk} is not a member yet." in response.content.decode()
    assert PointsEntry.objects.count() == 0


@pytest.mark.parametrize("action", ["adjust", "redeem"])
def test_points_of_an_unknown_customer_are_a_404(
    admin_client_role: Client, db: None, action: str
) -> None:
    response = admin_client_role.post(
        f"/customers/987654/points/{action}/", {"delta": "5", "points": "5", "reason": "x"}
    )

    assert response.status_code == 404


@pytest.mark.parametrize("action", ["adjust", "redeem"])
def test_the_points_actions_refuse_get(
    admin_client_role: Client, member_wang: Any, action: str
) -> None:
    assert admin_client_role.get(f"/customers/{member_wang.pk}/points/{action}/").status_code == 405


@pytest.mark.parametrize("history", [1, 30])
def test_the_360_page_of_a_member_costs_the_same_queries_however_long_the_ledger(
    admin_client_role: Client, member_wang: Any, django_assert_num_queries: Any, history: int
) -> None:
    for number in range(history):
        _ledger_entry(member_wang, f"e:{number}", "event_earn", 5, at(2024, 7, 2, 8, number))
        TierChange.objects.create(
            customer=member_wang, from_tier=None, to_tier=Tier.objects.get(code="silver"),
            reason="upgrade", spend=Decimal("1"), orders_count=1, window_days=365,
            changed_at=at(2024, 7, 2, 8, number),
        )  # fmt: skip
    admin_client_role.get(f"/customers/{member_wang.pk}/")

    # the 16 of a customer's page (see above); an admin's permissions are read the same way.
    with django_assert_num_queries(16):
        admin_client_role.get(f"/customers/{member_wang.pk}/")
