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
from tests.factories import SHANGHAI


@pytest.fixture(autouse=True)
def english_and_fast_passwords(settings: Any) -> None:
    # Our strings will get a zh-hans catalogue: read the pages in English to assert their text.
    settings.LANGUAGE_CODE = "en"
    # The default hasher spends about a second per test user; these tests are not about hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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


def test_the_navigation_links_customers_and_shows_the_sections_still_to_come(
    operator_client: Client,
) -> None:
    content = operator_client.get("/customers/").content.decode()

    assert '<a href="/customers/" aria-current="page" data-nav="customers">Customers</a>' in content
    for key in ("segments", "campaigns", "reports", "loyalty"):
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

    # session, user, customer, tags, order totals, orders, events, tag suggestions, groups (role
    # badge), the user's and the groups' permissions (masking, tag forms).
    with django_assert_num_queries(11):
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
