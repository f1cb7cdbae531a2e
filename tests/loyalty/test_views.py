from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from rq import Queue, SimpleWorker

from customers.models import Customer
from loyalty.forms import points_rule_initial, tier_initial
from loyalty.jobs import DEFAULT_QUEUE
from loyalty.models import (
    LoyaltySettings,
    Membership,
    PointsBucket,
    PointsEntry,
    PointsKind,
    PointsRule,
    Tier,
    TierChange,
)
from loyalty.services.tiers import TierRuleInput, current_tier_rules, preview_tier_impact

ROLE_CLIENTS = ["operator_client", "manager_client", "admin_client_role"]
READERS = ["operator_client", "manager_client"]
HTMX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def english(settings: Any) -> None:
    # Our strings will get a zh-hans catalogue: read the pages in English to assert their text.
    settings.LANGUAGE_CODE = "en"


# --- reading the pages ------------------------------------------------------------------------


def text(fragment: str) -> str:
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", fragment).split()))


def section(content: str, section_id: str) -> str:
    found = re.search(rf'<section id="{section_id}".*?</section>', content, re.S)
    assert found is not None, f"no section #{section_id} on the page"
    return found.group(0)


def table_rows(fragment: str, part: str = "tbody") -> list[list[str]]:
    body = re.search(rf"<{part}>(.*?)</{part}>", fragment, re.S)
    assert body is not None
    return [
        [text(cell) for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body.group(1), re.S)
    ]


def by_testid(content: str, testid: str) -> str:
    found = re.search(rf'<(\w+)[^>]*data-testid="{testid}"[^>]*>(.*?)</\1>', content, re.S)
    assert found is not None, f"nothing with data-testid={testid}"
    return text(found.group(2))


def field_errors(fragment: str) -> dict[str, list[str]]:
    """The error messages under each field (data-field="name") of a fragment."""
    errors: dict[str, list[str]] = {}
    for name, body in re.findall(r'data-field="(\w+)"[^>]*>(.*?)</(?:div|td)>', fragment, re.S):
        found = re.findall(r'<p class="field-error" role="alert">(.*?)</p>', body, re.S)
        if found:
            errors[name] = [html.unescape(message) for message in found]
    return errors


def tier_row(content: str, index: int) -> str:
    found = re.search(
        rf'<section class="card tier-row[^"]*" data-row="{index}".*?</section>', content, re.S
    )
    assert found is not None, f"no tier row {index}"
    return found.group(0)


def chart_figure(content: str, chart_id: str) -> dict[str, Any]:
    found = re.search(
        rf'<script type="application/json" data-chart="{chart_id}">(.*?)</script>', content, re.S
    )
    assert found is not None, f"no chart {chart_id}"
    assert f'<div class="chart" id="{chart_id}"' in content
    figure: dict[str, Any] = json.loads(found.group(1))
    return figure


# --- data -------------------------------------------------------------------------------------


@pytest.fixture
def members(
    tiers: dict[str, Tier],
    customer_factory: Any,
    order_factory: Any,
    membership_factory: Callable[..., Membership],
) -> dict[str, Customer]:
    """Six members whose moves under a silver threshold of 500 are known: Ann (600) and Ben
    (800) move up from normal to silver, Cai (100) stays normal, Dan (1,200) stays silver, Eve
    (6,000) stays gold, Fay (300) is below silver and starts a grace period."""
    now = timezone.now()
    people = {}
    for name, code, amount in [
        ("Ann", "normal", "600.00"),
        ("Ben", "normal", "800.00"),
        ("Cai", "normal", "100.00"),
        ("Dan", "silver", "1200.00"),
        ("Eve", "gold", "6000.00"),
        ("Fay", "silver", "300.00"),
    ]:
        customer = customer_factory(
            name=name, external_id=f"C-{name.upper()}", registered_at=now - dt.timedelta(days=400)
        )
        membership_factory(customer, tiers[code], tier_since=now - dt.timedelta(days=100))
        order_factory(
            customer=customer, amount=Decimal(amount), placed_at=now - dt.timedelta(days=10)
        )
        people[name] = customer
    return people


def tier_post(
    rows: list[dict[str, Any]],
    *,
    growth_window_days: int = 365,
    downgrade_grace_days: int = 30,
    action: str = "save",
) -> dict[str, str]:
    data = {
        "tiers-TOTAL_FORMS": str(len(rows)),
        "tiers-INITIAL_FORMS": str(len(rows)),
        "tiers-MIN_NUM_FORMS": "0",
        "tiers-MAX_NUM_FORMS": "1000",
        "growth_window_days": str(growth_window_days),
        "downgrade_grace_days": str(downgrade_grace_days),
        "action": action,
    }
    for index, row in enumerate(rows):
        for name, value in row.items():
            if value is True:
                data[f"tiers-{index}-{name}"] = "on"
            elif value is not False and value is not None:
                data[f"tiers-{index}-{name}"] = str(value)
    return data


def saved_tier_rows() -> list[dict[str, Any]]:
    return [tier_initial(tier) for tier in Tier.objects.order_by("rank")]


def rows_with(index: int, **changes: Any) -> list[dict[str, Any]]:
    rows = saved_tier_rows()
    rows[index] = {**rows[index], **changes}
    return rows


def tier_state() -> list[tuple[Any, ...]]:
    return list(
        Tier.objects.order_by("rank").values_list(
            "code", "name_zh", "name_en", "rank", "min_spend", "min_orders", "discount_percent",
            "free_shipping_coupons_per_month", "has_birthday_coupon", "has_priority_service",
            "benefits_text", "colour",
        )
    )  # fmt: skip


def settings_state() -> tuple[Any, ...]:
    row = LoyaltySettings.objects.get(pk=1)
    return (
        row.growth_window_days,
        row.downgrade_grace_days,
        row.return_window_days,
        row.points_per_yuan,
        row.points_expire,
        row.expiry_years_after,
    )


def membership_state() -> list[tuple[Any, ...]]:
    return list(
        Membership.objects.order_by("customer_id").values_list(
            "customer_id", "tier__code", "below_tier_since"
        )
    )


# --- who may see what -------------------------------------------------------------------------


@pytest.mark.parametrize("role_client", ROLE_CLIENTS)
@pytest.mark.parametrize(
    "url",
    ["/loyalty/", "/loyalty/points/", "/loyalty/points/rules/"],
    ids=["tiers", "points", "rules"],
)
def test_every_role_reads_the_loyalty_pages(
    request: pytest.FixtureRequest, tiers: dict[str, Tier], role_client: str, url: str
) -> None:
    client: Client = request.getfixturevalue(role_client)

    response = client.get(url)

    assert response.status_code == 200
    assert '<a href="/loyalty/" aria-current="page" data-nav="loyalty">Loyalty</a>' in (
        response.content.decode()
    )


@pytest.mark.parametrize("role_client", READERS)
@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/loyalty/tiers/rules/"),
        ("post", "/loyalty/tiers/rules/"),
        ("post", "/loyalty/tiers/rules/preview/"),
        ("post", "/loyalty/points/rules/"),
        ("post", "/loyalty/points/settings/"),
    ],
    ids=["tier-rules-page", "tier-rules-save", "tier-preview", "points-rules-save", "settings"],
)
def test_operators_and_managers_may_not_change_the_rules(
    request: pytest.FixtureRequest,
    tiers: dict[str, Tier],
    role_client: str,
    method: str,
    url: str,
) -> None:
    client: Client = request.getfixturevalue(role_client)
    before = (tier_state(), settings_state(), list(PointsRule.objects.values_list()))
    data = tier_post(rows_with(1, min_spend="1.00"), growth_window_days=10)
    data.update({"return_window_days": "1", "points_per_yuan": "1", "expiry_years_after": "0"})

    response = getattr(client, method)(url, data if method == "post" else None)

    assert response.status_code == 403
    assert (tier_state(), settings_state(), list(PointsRule.objects.values_list())) == before


@pytest.mark.parametrize(
    "url",
    [
        "/loyalty/",
        "/loyalty/points/",
        "/loyalty/points/rules/",
        "/loyalty/tiers/rules/",
    ],
)
def test_an_anonymous_visitor_is_sent_to_log_in(client: Client, db: None, url: str) -> None:
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize(
    ("role_client", "tabs", "edit_link"),
    [
        ("operator_client", ["tiers", "points", "points_rules"], False),
        ("manager_client", ["tiers", "points", "points_rules"], False),
        ("admin_client_role", ["tiers", "points", "points_rules", "tier_rules"], True),
    ],
    ids=["operator", "manager", "admin"],
)
def test_only_admins_are_offered_the_tier_rules(
    request: pytest.FixtureRequest,
    tiers: dict[str, Tier],
    role_client: str,
    tabs: list[str],
    edit_link: bool,
) -> None:
    client: Client = request.getfixturevalue(role_client)

    content = client.get("/loyalty/").content.decode()

    assert re.findall(r'data-tab="(\w+)"', content) == tabs
    assert ('data-testid="edit-tier-rules"' in content) is edit_link


# --- the tiers overview -----------------------------------------------------------------------


@pytest.mark.parametrize("role_client", ROLE_CLIENTS)
def test_the_tiers_page_shows_each_tier_with_thresholds_benefits_and_members(
    request: pytest.FixtureRequest, members: dict[str, Customer], role_client: str
) -> None:
    client: Client = request.getfixturevalue(role_client)

    content = client.get("/loyalty/").content.decode()

    tiers_section = section(content, "tiers")
    assert table_rows(tiers_section) == [
        ["Normal normal", "0", "¥0.00", "0", "—", "3"],
        [
            "Silver silver",
            "1",
            "¥1,000.00",
            "0",
            "2% off 1 free-shipping coupon a month Birthday coupon",
            "2",
        ],
        [
            "Gold gold",
            "2",
            "¥5,000.00",
            "0",
            "5% off 3 free-shipping coupons a month Birthday coupon Priority service",
            "1",
        ],
        [
            "Diamond diamond",
            "3",
            "¥20,000.00",
            "0",
            "10% off 5 free-shipping coupons a month Birthday coupon Priority service",
            "0",
        ],
    ]
    assert by_testid(content, "members-total") == "6"
    assert by_testid(content, "tier-window") == (
        "A member's tier follows their paid spend and paid orders over the last 365 days. "
        "Below their tier, they keep it for 30 days before moving down."
    )
    assert '<rect width="12" height="12" rx="3" fill="#d4a017"/>' in tiers_section


def test_the_tiers_page_draws_the_distribution_in_the_tier_colours(
    operator_client: Client, members: dict[str, Customer]
) -> None:
    content = operator_client.get("/loyalty/").content.decode()

    figure = chart_figure(content, "tier-chart")
    assert figure["data"][0]["x"] == ["Normal", "Silver", "Gold", "Diamond"]
    assert figure["data"][0]["y"] == [3, 2, 1, 0]
    assert figure["data"][0]["marker"]["color"] == ["#8d99a6", "#a7b4c2", "#d4a017", "#4f7cff"]
    assert '<script src="/static/vendor/plotly.min.js" defer></script>' in content
    assert '<script src="/static/js/charts.js" defer></script>' in content
    assert "cdn" not in content.lower()


def test_the_tiers_page_shows_names_in_chinese_for_chinese_readers(
    operator_client: Client, members: dict[str, Customer]
) -> None:
    operator_client.post("/i18n/setlang/", {"language": "zh-hans"})

    content = operator_client.get("/loyalty/").content.decode()

    assert chart_figure(content, "tier-chart")["data"][0]["x"] == [
        "普通会员",
        "银卡",
        "金卡",
        "钻石",
    ]


@pytest.mark.parametrize("extra_members", [0, 30])
def test_the_tiers_page_costs_the_same_queries_however_many_members(
    operator_client: Client,
    tiers: dict[str, Tier],
    customer_factory: Any,
    membership_factory: Callable[..., Membership],
    django_assert_num_queries: Any,
    extra_members: int,
) -> None:
    for number in range(extra_members):
        membership_factory(
            customer_factory(),
            tiers["silver" if number % 2 else "gold"],
            tier_since=timezone.now(),
        )
    operator_client.get("/loyalty/")

    # session, user, tiers with their member counts, settings, groups (role badge), the user's
    # and the groups' permissions.
    with django_assert_num_queries(7):
        response = operator_client.get("/loyalty/")

    assert by_testid(response.content.decode(), "members-total") == str(extra_members)


# --- the points overview ----------------------------------------------------------------------


def _month_start(local: dt.datetime, back: int) -> dt.datetime:
    index = local.year * 12 + local.month - 1 - back
    return local.replace(
        year=index // 12, month=index % 12 + 1, day=1, hour=0, minute=0, second=0, microsecond=0
    )


def _entry(
    customer: Customer, kind: str, bucket: str, delta: int, when: dt.datetime, key: str
) -> None:
    PointsEntry.objects.create(
        customer=customer,
        kind=kind,
        bucket=bucket,
        delta=delta,
        idempotency_key=key,
        effective_at=when,
    )


@pytest.fixture
def two_months_of_points(customer_factory: Any) -> tuple[str, str]:
    """This month: 1,000 issued, 200 redeemed, 50 expired (20% used); last month: 500 issued,
    250 redeemed (50% used). Returns the two months as YYYY-MM."""
    customer = customer_factory()
    local_now = timezone.localtime()
    this_month = max(_month_start(local_now, 0), local_now - dt.timedelta(minutes=1))
    last_month = _month_start(local_now, 1) + dt.timedelta(days=1)
    available, pending = PointsBucket.AVAILABLE, PointsBucket.PENDING
    _entry(customer, PointsKind.EVENT_EARN, available, 600, this_month, "a")
    _entry(customer, PointsKind.ORDER_EARN, pending, 400, this_month, "b")
    _entry(customer, PointsKind.ORDER_RELEASE, pending, -400, this_month, "c")
    _entry(customer, PointsKind.ORDER_RELEASE, available, 400, this_month, "d")
    _entry(customer, PointsKind.REDEEM, available, -200, this_month, "e")
    _entry(customer, PointsKind.EXPIRE, available, -50, this_month, "f")
    _entry(customer, PointsKind.ADJUST, available, 1000, this_month, "g")
    _entry(customer, PointsKind.EVENT_EARN, available, 500, last_month, "h")
    _entry(customer, PointsKind.REDEEM, available, -250, last_month, "i")
    _entry(customer, PointsKind.EVENT_EARN, available, 999, _month_start(local_now, 12), "j")
    return this_month.strftime("%Y-%m"), last_month.strftime("%Y-%m")


@pytest.mark.parametrize("role_client", ROLE_CLIENTS)
def test_the_points_page_shows_issued_redeemed_expired_and_usage_per_month(
    request: pytest.FixtureRequest, two_months_of_points: tuple[str, str], role_client: str
) -> None:
    client: Client = request.getfixturevalue(role_client)
    this_month, last_month = two_months_of_points

    content = client.get("/loyalty/points/").content.decode()

    months = section(content, "points-months")
    rows = table_rows(months)
    assert len(rows) == 12
    assert rows[0] == [this_month, "1,000", "200", "50", "20.0% below target"]
    assert rows[1] == [last_month, "500", "250", "0", "50.0%"]
    assert all(row[1:] == ["0", "0", "0", "—"] for row in rows[2:])
    assert table_rows(months, "tfoot") == [["12 months", "1,500", "450", "50", "30.0%"]]
    assert re.search(rf'<tr data-month="{this_month}" class="below-target">', months)
    assert f'<tr data-month="{last_month}">' in months
    assert by_testid(content, "figure-issued") == "Issued, last 12 months 1,500"
    assert by_testid(content, "figure-usage") == "Usage rate 30.0% target 30%"
    assert "figure-below-target" not in content


def test_an_overall_usage_below_the_target_is_highlighted(
    operator_client: Client, customer_factory: Any
) -> None:
    customer = customer_factory()
    when = timezone.now() - dt.timedelta(minutes=1)
    _entry(customer, PointsKind.EVENT_EARN, PointsBucket.AVAILABLE, 1000, when, "a")
    _entry(customer, PointsKind.REDEEM, PointsBucket.AVAILABLE, -299, when, "b")

    content = operator_client.get("/loyalty/points/").content.decode()

    assert by_testid(content, "figure-usage") == "Usage rate 29.9% target 30% · below target"
    assert 'class="figure figure-below-target"' in content
    assert table_rows(section(content, "points-months"), "tfoot") == [
        ["12 months", "1,000", "299", "0", "29.9% below target"]
    ]


def test_the_points_page_draws_the_months_and_the_usage_against_the_target(
    operator_client: Client, two_months_of_points: tuple[str, str]
) -> None:
    this_month, last_month = two_months_of_points

    figure = chart_figure(operator_client.get("/loyalty/points/").content.decode(), "points-chart")

    names = [trace["name"] for trace in figure["data"]]
    assert names == ["Issued", "Redeemed", "Expired", "Usage rate", "Target 30%"]
    issued, redeemed, expired, usage, target = figure["data"]
    assert issued["x"][-2:] == [last_month, this_month]
    assert len(issued["x"]) == 12
    assert issued["y"][-2:] == [500, 1000]
    assert redeemed["y"][-2:] == [250, 200]
    assert expired["y"][-2:] == [0, 50]
    assert usage["y"][-2:] == [50.0, 20.0]
    assert usage["y"][:10] == [None] * 10
    assert usage["marker"]["color"][-2:] == ["#8a5a00", "#b3261e"]
    assert target["y"] == [30.0] * 12


def test_the_points_page_of_an_empty_ledger_shows_zeros_and_no_rate(
    operator_client: Client, db: None
) -> None:
    content = operator_client.get("/loyalty/points/").content.decode()

    assert table_rows(section(content, "points-months"), "tfoot") == [
        ["12 months", "0", "0", "0", "—"]
    ]


@pytest.mark.parametrize("entries", [1, 40])
def test_the_points_page_costs_the_same_queries_however_long_the_ledger(
    operator_client: Client, customer_factory: Any, django_assert_num_queries: Any, entries: int
) -> None:
    customer = customer_factory()
    for number in range(entries):
        when = timezone.now() - dt.timedelta(days=number * 7)
        _entry(customer, PointsKind.EVENT_EARN, PointsBucket.AVAILABLE, 10, when, f"k{number}")
    operator_client.get("/loyalty/points/")

    # session, user, the ledger's months (one GROUP BY), groups (role badge), the user's and the
    # groups' permissions.
    with django_assert_num_queries(6):
        operator_client.get("/loyalty/points/")


# --- the tier rules page ----------------------------------------------------------------------


def test_the_rules_page_shows_the_saved_tiers_and_settings_in_the_form(
    admin_client_role: Client, tiers: dict[str, Tier]
) -> None:
    content = admin_client_role.get("/loyalty/tiers/rules/").content.decode()

    assert 'name="tiers-TOTAL_FORMS" value="4"' in content
    silver = tier_row(content, 1)
    assert f'name="tiers-1-id" value="{tiers["silver"].pk}"' in silver
    assert 'name="tiers-1-code" value="silver"' in silver
    assert 'name="tiers-1-name_zh" value="银卡"' in silver
    assert 'name="tiers-1-min_spend" value="1000.00"' in silver
    assert 'name="tiers-1-discount_percent" value="2.0"' in silver
    assert 'name="tiers-1-has_birthday_coupon" id="id_tiers-1-has_birthday_coupon" checked' in (
        silver
    )
    assert 'type="color" name="tiers-1-colour" value="#a7b4c2"' in silver
    assert 'name="growth_window_days" value="365"' in content
    assert 'name="downgrade_grace_days" value="30"' in content
    assert 'hx-post="/loyalty/tiers/rules/preview/" hx-include="#tier-rules-form"' in content


def test_an_admin_saves_new_thresholds_and_settings_and_the_recompute_runs(
    admin_client_role: Client,
    members: dict[str, Customer],
    rq_queues: dict[str, Queue],
    django_capture_on_commit_callbacks: Any,
) -> None:
    queue = rq_queues[DEFAULT_QUEUE]
    rows = rows_with(1, min_spend="500.00", min_orders="1", benefits_text="  专属客服  ")
    rows[2]["min_orders"] = rows[3]["min_orders"] = 1

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_role.post(
            "/loyalty/tiers/rules/",
            tier_post(rows, growth_window_days=180, downgrade_grace_days=15),
        )

    assert response.status_code == 302
    assert response["Location"] == "/loyalty/"
    silver = Tier.objects.get(code="silver")
    assert (silver.min_spend, silver.min_orders, silver.benefits_text) == (
        Decimal("500.00"),
        1,
        "专属客服",
    )
    assert settings_state()[:2] == (180, 15)
    assert LoyaltySettings.objects.get(pk=1).updated_by is not None
    assert [job.func_name for job in queue.jobs] == ["loyalty.jobs.recompute_tiers_job"]

    SimpleWorker([queue], connection=queue.connection).work(burst=True)

    tiers_now = dict(
        Membership.objects.values_list("customer__name", "tier__code").order_by("customer__name")
    )
    assert tiers_now == {
        "Ann": "silver",
        "Ben": "silver",
        "Cai": "normal",
        "Dan": "silver",
        "Eve": "gold",
        "Fay": "silver",
    }


def test_after_saving_the_tiers_page_says_the_recompute_follows(
    admin_client_role: Client, tiers: dict[str, Tier], rq_queues: dict[str, Queue]
) -> None:
    response = admin_client_role.post(
        "/loyalty/tiers/rules/", tier_post(rows_with(1, min_spend="800.00")), follow=True
    )

    content = response.content.decode()
    assert response.redirect_chain == [("/loyalty/", 302)]
    assert (
        "Tier rules saved. Members move to their new tiers as soon as the recompute has run."
        in content
    )
    assert table_rows(section(content, "tiers"))[1][2] == "¥800.00"


@pytest.mark.parametrize(
    ("index", "changes", "settings_changes", "errors"),
    [
        (
            2,
            {"min_spend": "800.00"},
            {},
            {
                (2, "min_spend"): [
                    "The minimum spend must be higher than that of 'silver' (1000.00), "
                    "the tier below."
                ]
            },
        ),
        (
            2,
            {"rank": "1"},
            {},
            {
                (2, "rank"): ["Rank 1 is used by more than one tier."],
                (3, "rank"): ["Ranks run from 0 without gaps: rank 2 is missing."],
            },
        ),
        (
            3,
            {"rank": "5"},
            {},
            {
                (3, "rank"): [
                    "Ranks run from 0 without gaps: rank 3 is missing.",
                    "Ranks run from 0 without gaps: rank 4 is missing.",
                ]
            },
        ),
        (
            0,
            {"min_spend": "10.00"},
            {},
            {(0, "min_spend"): ["The rank-0 tier takes everyone: its minimum spend must be 0."]},
        ),
        (1, {"code": "gold"}, {}, {(2, "code"): ["Code 'gold' is used by more than one tier."]}),
        (
            1,
            {"code": "银 卡"},
            {},
            {(1, "code"): ["A code uses only letters, digits, hyphens and underscores."]},
        ),
        (1, {"colour": "silver"}, {}, {(1, "colour"): ["Enter a colour as #RRGGBB."]}),
        (
            1,
            {"discount_percent": "60"},
            {},
            {
                (1, "discount_percent"): [
                    "A discount is from 0 to 50 percent, with at most 1 decimal."
                ]
            },
        ),
        (
            1,
            {"min_spend": "1000.005"},
            {},
            {
                (1, "min_spend"): [
                    "A minimum spend is an amount from 0 to 9999999999.99 with at most 2 decimals."
                ]
            },
        ),
        (1, {"min_spend": "a lot"}, {}, {(1, "min_spend"): ["Enter a number."]}),
        (1, {"name_en": ""}, {}, {(1, "name_en"): ["This field is required."]}),
        (
            1,
            {},
            {"growth_window_days": 0},
            {
                ("settings", "growth_window_days"): [
                    "Ensure this value is greater than or equal to 1."
                ]
            },
        ),
        (
            1,
            {},
            {"downgrade_grace_days": 400},
            {
                ("settings", "downgrade_grace_days"): [
                    "Ensure this value is less than or equal to 365."
                ]
            },
        ),
    ],
    ids=[
        "spend-not-rising",
        "same-rank-twice",
        "gap-in-ranks",
        "base-tier-with-a-threshold",
        "same-code-twice",
        "bad-code",
        "bad-colour",
        "discount-too-high",
        "too-many-decimals",
        "not-a-number",
        "missing-name",
        "window-too-short",
        "grace-too-long",
    ],
)
def test_bad_rules_are_refused_with_400_a_message_per_field_and_nothing_saved(
    admin_client_role: Client,
    members: dict[str, Customer],
    rq_queues: dict[str, Queue],
    django_capture_on_commit_callbacks: Any,
    index: int,
    changes: dict[str, Any],
    settings_changes: dict[str, Any],
    errors: dict[tuple[Any, str], list[str]],
) -> None:
    before = (tier_state(), settings_state(), membership_state())

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_role.post(
            "/loyalty/tiers/rules/", tier_post(rows_with(index, **changes), **settings_changes)
        )

    content = response.content.decode()
    assert response.status_code == 400
    shown: dict[tuple[Any, str], list[str]] = {
        (row, field): messages
        for row in range(4)
        for field, messages in field_errors(tier_row(content, row)).items()
    }
    shown |= {
        ("settings", field): messages
        for field, messages in field_errors(section(content, "tier-settings")).items()
    }
    assert shown == errors
    assert 'aria-invalid="true"' in content
    assert (tier_state(), settings_state(), membership_state()) == before
    assert rq_queues[DEFAULT_QUEUE].count == 0


def test_what_was_typed_stays_in_the_form_after_an_error(
    admin_client_role: Client, tiers: dict[str, Tier]
) -> None:
    response = admin_client_role.post(
        "/loyalty/tiers/rules/", tier_post(rows_with(1, min_spend="a lot", name_en="Silver+"))
    )

    silver = tier_row(response.content.decode(), 1)
    assert 'name="tiers-1-min_spend" value="a lot"' in silver
    assert 'name="tiers-1-name_en" value="Silver+"' in silver


def test_a_tier_that_members_hold_cannot_be_removed(
    admin_client_role: Client, members: dict[str, Customer]
) -> None:
    before = tier_state()
    rows = rows_with(1, DELETE=True)
    rows[2]["rank"], rows[3]["rank"] = 1, 2

    response = admin_client_role.post("/loyalty/tiers/rules/", tier_post(rows))

    assert response.status_code == 400
    assert by_testid(response.content.decode(), "rules-errors") == (
        "Tier 'silver' cannot be removed: 2 members hold it."
    )
    assert tier_state() == before


def test_an_empty_tier_is_removed_and_a_new_one_added(
    admin_client_role: Client, members: dict[str, Customer], rq_queues: dict[str, Queue]
) -> None:
    rows = rows_with(3, DELETE=True)
    rows.append(
        {
            "code": "platinum",
            "name_zh": "白金",
            "name_en": "Platinum",
            "rank": 3,
            "min_spend": "10000",
            "min_orders": "",
            "discount_percent": "",
            "free_shipping_coupons_per_month": "",
            "has_priority_service": True,
            "colour": "#e5e4e2",
        }
    )

    response = admin_client_role.post("/loyalty/tiers/rules/", tier_post(rows))

    assert response.status_code == 302
    assert [row[0] for row in tier_state()] == ["normal", "silver", "gold", "platinum"]
    platinum = Tier.objects.get(code="platinum")
    assert (
        platinum.min_spend,
        platinum.min_orders,
        platinum.discount_percent,
        platinum.has_priority_service,
        platinum.has_birthday_coupon,
    ) == (Decimal("10000.00"), 0, Decimal("0.0"), True, False)


def test_add_a_tier_gives_an_empty_row_and_saves_nothing(
    admin_client_role: Client, tiers: dict[str, Tier]
) -> None:
    before = tier_state()
    rows = rows_with(1, min_spend="700.00")

    response = admin_client_role.post("/loyalty/tiers/rules/", tier_post(rows, action="add"))
    content = response.content.decode()

    assert response.status_code == 200
    assert 'name="tiers-TOTAL_FORMS" value="5"' in content
    assert 'name="tiers-1-min_spend" value="700.00"' in tier_row(content, 1)
    new_row = tier_row(content, 4)
    assert 'name="tiers-4-rank" value="4"' in new_row
    assert 'name="tiers-4-colour" value="#9e9e9e"' in new_row
    assert 'name="tiers-4-code"' in new_row
    assert 'name="tiers-4-code" value=' not in new_row
    assert field_errors(content) == {}
    assert tier_state() == before


# --- the impact preview -----------------------------------------------------------------------


def impact_table(content: str) -> dict[str, list[str]]:
    rows = table_rows(content)
    return {row[0].split()[-1]: row[1:] for row in rows}


def test_the_preview_shows_the_moves_per_tier_that_preview_tier_impact_computes(
    admin_client_role: Client, members: dict[str, Customer]
) -> None:
    before = (tier_state(), membership_state(), TierChange.objects.count())
    rows = rows_with(1, min_spend="500.00")

    response = admin_client_role.post(
        "/loyalty/tiers/rules/preview/", tier_post(rows), headers=HTMX
    )
    content = response.content.decode()

    assert response.status_code == 200
    assert "<html" not in content
    # members now, joining, up into, down into, up out, down out, staying, grace starts,
    # still in grace, members after
    assert impact_table(content) == {
        "normal": ["3", "0", "0", "0", "2", "0", "1", "0", "0", "1"],
        "silver": ["2", "0", "2", "0", "0", "0", "2", "1", "0", "4"],
        "gold": ["1", "0", "0", "0", "0", "0", "1", "0", "0", "1"],
        "diamond": ["0", "0", "0", "0", "0", "0", "0", "0", "0", "0"],
    }
    assert by_testid(content, "impact-summary") == (
        "2 members move up · 0 members move down · 1 member starts a grace period · "
        "0 customers join"
    )
    rules = [
        TierRuleInput(**{**rule.__dict__, "min_spend": Decimal("500.00")})
        if rule.code == "silver"
        else rule
        for rule in current_tier_rules()
    ]
    impact = preview_tier_impact(rules=rules, now=timezone.now())
    assert impact_table(content) == {
        row.code: [
            str(value)
            for value in (
                row.members_now,
                row.joining,
                row.moving_up_into,
                row.moving_down_into,
                row.moving_up_out,
                row.moving_down_out,
                row.staying,
                row.starting_grace,
                row.in_grace,
                row.members_after,
            )
        ]
        for row in impact.tiers
    }
    assert (tier_state(), membership_state(), TierChange.objects.count()) == before


def test_the_preview_uses_the_window_and_grace_period_on_the_page_and_saves_neither(
    admin_client_role: Client, members: dict[str, Customer]
) -> None:
    before = (tier_state(), settings_state(), membership_state())

    response = admin_client_role.post(
        "/loyalty/tiers/rules/preview/",
        tier_post(saved_tier_rows(), growth_window_days=5, downgrade_grace_days=0),
        headers=HTMX,
    )

    # the orders are 10 days old: nobody has growth in a 5-day window, and without a grace
    # period everyone above normal moves down at once
    assert response.status_code == 200
    assert impact_table(response.content.decode()) == {
        "normal": ["3", "0", "0", "3", "0", "0", "3", "0", "0", "6"],
        "silver": ["2", "0", "0", "0", "0", "2", "0", "0", "0", "0"],
        "gold": ["1", "0", "0", "0", "0", "1", "0", "0", "0", "0"],
        "diamond": ["0", "0", "0", "0", "0", "0", "0", "0", "0", "0"],
    }
    assert (tier_state(), settings_state(), membership_state()) == before


def test_the_preview_counts_customers_who_would_join(
    admin_client_role: Client, members: dict[str, Customer], customer_factory: Any
) -> None:
    customer_factory(name="New")

    response = admin_client_role.post(
        "/loyalty/tiers/rules/preview/", tier_post(saved_tier_rows()), headers=HTMX
    )

    assert impact_table(response.content.decode())["normal"] == [
        "3", "1", "0", "0", "0", "0", "4", "0", "0", "4"
    ]  # fmt: skip
    assert not Membership.objects.filter(customer__name="New").exists()


@pytest.mark.parametrize(
    ("index", "changes", "settings_changes", "expected"),
    [
        (
            2,
            {"min_spend": "800.00"},
            {},
            [
                "These rules cannot be saved:",
                "Row 3 (gold) · Minimum spend (yuan): The minimum spend must be higher than "
                "that of 'silver' (1000.00), the tier below.",
            ],
        ),
        (
            1,
            {"min_spend": "lots"},
            {"growth_window_days": 0},
            [
                "These rules cannot be saved:",
                "Growth window (days): Ensure this value is greater than or equal to 1.",
                "Row 2 (silver) · Minimum spend (yuan): Enter a number.",
            ],
        ),
    ],
    ids=["rule", "typing"],
)
def test_a_preview_of_bad_rules_lists_the_problems_with_422(
    admin_client_role: Client,
    members: dict[str, Customer],
    index: int,
    changes: dict[str, Any],
    settings_changes: dict[str, Any],
    expected: list[str],
) -> None:
    response = admin_client_role.post(
        "/loyalty/tiers/rules/preview/",
        tier_post(rows_with(index, **changes), **settings_changes),
        headers=HTMX,
    )
    content = response.content.decode()

    assert response.status_code == 422
    errors = re.search(r'data-testid="impact-errors">(.*?)</div>', content, re.S)
    assert errors is not None
    assert [text(line) for line in re.findall(r"<p>(.*?)</p>", errors.group(1), re.S)] == expected
    assert 'data-testid="impact-table"' not in content


def _add_tiers(up_to: int) -> None:
    for rank in range(4, up_to):
        Tier.objects.create(
            code=f"t{rank}", name_zh=f"t{rank}", name_en=f"T{rank}", rank=rank,
            min_spend=Decimal(rank * 10_000),
        )  # fmt: skip


@pytest.mark.parametrize("tier_count", [4, 8])
def test_the_rules_page_costs_the_same_queries_however_many_tiers(
    admin_client_role: Client,
    tiers: dict[str, Tier],
    django_assert_num_queries: Any,
    tier_count: int,
) -> None:
    _add_tiers(tier_count)
    admin_client_role.get("/loyalty/tiers/rules/")

    # session, user, the user's and the groups' permissions, tiers, settings, groups (badge).
    with django_assert_num_queries(7):
        response = admin_client_role.get("/loyalty/tiers/rules/")

    assert f'name="tiers-TOTAL_FORMS" value="{tier_count}"' in response.content.decode()


@pytest.mark.parametrize("tier_count", [4, 8])
def test_the_preview_costs_the_same_queries_however_many_tiers_and_members(
    admin_client_role: Client,
    members: dict[str, Customer],
    django_assert_num_queries: Any,
    tier_count: int,
) -> None:
    _add_tiers(tier_count)
    admin_client_role.get("/loyalty/tiers/rules/")
    data = tier_post(saved_tier_rows())

    # session, user, the user's and the groups' permissions, settings (the form, the preview's
    # comparison, preview_tier_impact), existing tiers, the plan (one statement).
    with django_assert_num_queries(9):
        response = admin_client_role.post("/loyalty/tiers/rules/preview/", data, headers=HTMX)

    assert len(table_rows(response.content.decode())) == tier_count


# --- points rules -----------------------------------------------------------------------------


def rule_post(rows: list[dict[str, Any]], *, action: str = "save") -> dict[str, str]:
    data = {
        "rules-TOTAL_FORMS": str(len(rows)),
        "rules-INITIAL_FORMS": str(len(rows)),
        "rules-MIN_NUM_FORMS": "0",
        "rules-MAX_NUM_FORMS": "1000",
        "action": action,
    }
    for index, row in enumerate(rows):
        for name, value in row.items():
            if value is True:
                data[f"rules-{index}-{name}"] = "on"
            elif value is not False and value is not None:
                data[f"rules-{index}-{name}"] = (
                    value.strftime("%Y-%m-%dT%H:%M")
                    if isinstance(value, dt.datetime)
                    else str(value)
                )
    return data


def saved_rule_rows() -> list[dict[str, Any]]:
    return [points_rule_initial(rule) for rule in PointsRule.objects.order_by("pk")]


def rule_rows_with(index: int, **changes: Any) -> list[dict[str, Any]]:
    rows = saved_rule_rows()
    rows[index] = {**rows[index], **changes}
    return rows


def rule_state() -> list[tuple[Any, ...]]:
    return list(
        PointsRule.objects.order_by("pk").values_list(
            "event_name", "points", "daily_cap", "is_active", "active_since"
        )
    )


def rule_row(content: str, index: int) -> str:
    found = re.search(rf'<tr data-row="{index}">(.*?)</tr>', content, re.S)
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize("role_client", READERS)
def test_operators_and_managers_read_the_points_rules_and_settings(
    request: pytest.FixtureRequest, db: None, role_client: str
) -> None:
    client: Client = request.getfixturevalue(role_client)
    PointsRule.objects.filter(event_name="share").update(
        is_active=False, active_since=dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.UTC)
    )

    content = client.get("/loyalty/points/rules/").content.decode()

    assert table_rows(section(content, "points-rules")) == [
        ["order", "1 per yuan", "—", "on", "—"],
        ["review", "5", "—", "on", "—"],
        ["share", "10", "—", "off", "2025-03-01 17:30"],
        ["sign_in", "1", "1", "on", "—"],
    ]
    assert by_testid(content, "points-settings") == (
        "Return window 7 days Redemption 100 points = ¥1 "
        "Expiry At the end of the year 1 year after earning"
    )
    assert "<form" not in section(content, "points-rules")
    assert "<form" not in section(content, "points-settings")


def test_an_admin_sees_the_points_rules_and_settings_as_forms(
    admin_client_role: Client, db: None
) -> None:
    content = admin_client_role.get("/loyalty/points/rules/").content.decode()

    assert 'name="rules-TOTAL_FORMS" value="4"' in content
    assert 'name="rules-3-event_name" value="sign_in"' in rule_row(content, 3)
    assert 'name="rules-3-daily_cap" value="1"' in rule_row(content, 3)
    assert 'name="return_window_days" value="7"' in content
    assert 'name="points_per_yuan" value="100"' in content


def test_an_admin_edits_and_adds_points_rules(admin_client_role: Client, db: None) -> None:
    rows = rule_rows_with(1, points=8)
    rows[3] = {**rows[3], "daily_cap": 3, "is_active": False}
    rows.append(
        {
            "event_name": "invite",
            "points": 20,
            "daily_cap": "",
            "is_active": True,
            "active_since": "2025-07-01T00:00",  # as typed, in the console's time zone
        }
    )

    response = admin_client_role.post("/loyalty/points/rules/", rule_post(rows), follow=True)

    assert response.redirect_chain == [("/loyalty/points/rules/", 302)]
    assert "Points rules saved. They apply from the next earning run on." in (
        response.content.decode()
    )
    assert rule_state() == [
        ("order", 1, None, True, None),
        ("review", 8, None, True, None),
        ("share", 10, None, True, None),
        ("sign_in", 1, 3, False, None),
        ("invite", 20, None, True, dt.datetime(2025, 6, 30, 16, 0, tzinfo=dt.UTC)),
    ]


def test_add_a_rule_gives_an_empty_row_and_saves_nothing(
    admin_client_role: Client, db: None
) -> None:
    before = rule_state()

    response = admin_client_role.post(
        "/loyalty/points/rules/", rule_post(rule_rows_with(1, points=9), action="add")
    )
    content = response.content.decode()

    assert response.status_code == 200
    assert 'name="rules-TOTAL_FORMS" value="5"' in content
    assert 'name="rules-1-points" value="9"' in rule_row(content, 1)
    assert 'name="rules-4-is_active" id="id_rules-4-is_active" checked' in rule_row(content, 4)
    assert rule_state() == before


@pytest.mark.parametrize(
    ("index", "changes", "errors"),
    [
        (2, {"event_name": "review"}, {(2, "event_name"): ["Event 'review' already has a rule."]}),
        (
            0,
            {"event_name": "purchase"},
            {(0, "event_name"): ["The order rule keeps the event name 'order'."]},
        ),
        (
            1,
            {"event_name": "写 评论"},
            {
                (1, "event_name"): [
                    "An event name uses only letters, digits, hyphens and underscores."
                ]
            },
        ),
        (1, {"points": -5}, {(1, "points"): ["Points are a whole number from 0 to 100000."]}),
        (1, {"points": "five"}, {(1, "points"): ["Enter a whole number."]}),
        (
            3,
            {"daily_cap": 0},
            {
                (3, "daily_cap"): [
                    "A daily cap is a whole number from 1 to 10000000; leave it empty for no cap."
                ]
            },
        ),
        (
            0,
            {"daily_cap": 100},
            {(0, "daily_cap"): ["The order rule earns per yuan paid and has no daily cap."]},
        ),
        (1, {"active_since": "yesterday"}, {(1, "active_since"): ["Enter a valid date/time."]}),
    ],
    ids=[
        "event-twice",
        "order-renamed",
        "bad-event-name",
        "negative-points",
        "points-not-a-number",
        "cap-zero",
        "cap-on-orders",
        "bad-date",
    ],
)
def test_bad_points_rules_are_refused_with_400_a_message_per_field_and_nothing_saved(
    admin_client_role: Client,
    db: None,
    index: int,
    changes: dict[str, Any],
    errors: dict[tuple[int, str], list[str]],
) -> None:
    before = rule_state()

    response = admin_client_role.post(
        "/loyalty/points/rules/", rule_post(rule_rows_with(index, **changes))
    )
    content = response.content.decode()

    assert response.status_code == 400
    shown = {
        (row, field): messages
        for row in range(4)
        for field, messages in field_errors(rule_row(content, row)).items()
    }
    assert shown == errors
    assert rule_state() == before


def test_two_rules_may_swap_their_event_names(admin_client_role: Client, db: None) -> None:
    rows = saved_rule_rows()
    rows[1]["event_name"], rows[2]["event_name"] = "share", "review"

    response = admin_client_role.post("/loyalty/points/rules/", rule_post(rows))

    assert response.status_code == 302
    assert [row[:2] for row in rule_state()] == [
        ("order", 1),
        ("share", 5),
        ("review", 10),
        ("sign_in", 1),
    ]


def test_an_admin_saves_the_points_settings(admin_client_role: Client, db: None) -> None:
    response = admin_client_role.post(
        "/loyalty/points/settings/",
        {"return_window_days": "14", "points_per_yuan": "50", "expiry_years_after": "2"},
        follow=True,
    )

    assert response.redirect_chain == [("/loyalty/points/rules/", 302)]
    assert "Points settings saved." in response.content.decode()
    assert settings_state() == (365, 30, 14, 50, False, 2)


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        (
            {"return_window_days": "91", "points_per_yuan": "100", "expiry_years_after": "1"},
            {"return_window_days": ["Ensure this value is less than or equal to 90."]},
        ),
        (
            {"return_window_days": "7", "points_per_yuan": "0", "expiry_years_after": "11"},
            {
                "points_per_yuan": ["Ensure this value is greater than or equal to 1."],
                "expiry_years_after": ["Ensure this value is less than or equal to 10."],
            },
        ),
        (
            {"return_window_days": "", "points_per_yuan": "x", "expiry_years_after": "1"},
            {
                "return_window_days": ["This field is required."],
                "points_per_yuan": ["Enter a whole number."],
            },
        ),
    ],
    ids=["window-too-long", "rate-and-years-out-of-range", "missing-and-garbage"],
)
def test_bad_points_settings_are_refused_with_400_and_nothing_saved(
    admin_client_role: Client, db: None, data: dict[str, str], errors: dict[str, list[str]]
) -> None:
    before = settings_state()

    response = admin_client_role.post("/loyalty/points/settings/", data)
    content = response.content.decode()

    assert response.status_code == 400
    assert field_errors(section(content, "points-settings")) == errors
    assert settings_state() == before


@pytest.mark.parametrize("role_client", ["operator_client", "admin_client_role"])
def test_the_points_rules_page_costs_a_fixed_number_of_queries(
    request: pytest.FixtureRequest, db: None, role_client: str, django_assert_num_queries: Any
) -> None:
    client: Client = request.getfixturevalue(role_client)
    client.get("/loyalty/points/rules/")

    # session, user, rules, settings, the user's and the groups' permissions, groups (badge).
    with django_assert_num_queries(7):
        client.get("/loyalty/points/rules/")


# --- the customer list's tier column and filter -----------------------------------------------


LIST_ROW = re.compile(
    r'<tr data-customer-id="\d+">\s*<td><a href="[^"]*">([^<]*)</a>.*?'
    r'<td data-column="tier">(.*?)</td>',
    re.S,
)


def list_tiers(content: str) -> list[tuple[str, str]]:
    return [(html.unescape(name), text(tier)) for name, tier in LIST_ROW.findall(content)]


@pytest.fixture
def listed_members(members: dict[str, Customer], customer_factory: Any) -> dict[str, Customer]:
    customer_factory(
        name="Zed", external_id="C-ZED", registered_at=timezone.now() - dt.timedelta(days=1)
    )
    return members


@pytest.mark.parametrize("role_client", ROLE_CLIENTS)
def test_the_customer_list_shows_each_customers_tier(
    request: pytest.FixtureRequest, listed_members: dict[str, Customer], role_client: str
) -> None:
    client: Client = request.getfixturevalue(role_client)

    content = client.get("/customers/", {"sort": "name"}).content.decode()

    assert list_tiers(content) == [
        ("Ann", "Normal"),
        ("Ben", "Normal"),
        ("Cai", "Normal"),
        ("Dan", "Silver"),
        ("Eve", "Gold"),
        ("Fay", "Silver"),
        ("Zed", "—"),
    ]
    assert re.findall(r'<th scope="col"[^>]*>\s*([^<\s][^<]*?)\s*<', content)[-1] == "Tier"


@pytest.mark.parametrize(
    ("tier", "names"),
    [("silver", ["Dan", "Fay"]), ("gold", ["Eve"]), ("diamond", []), ("", None)],
    ids=["silver", "gold", "nobody", "all"],
)
def test_the_tier_filter_narrows_the_list_to_that_tiers_members(
    operator_client: Client,
    listed_members: dict[str, Customer],
    tier: str,
    names: list[str] | None,
) -> None:
    content = operator_client.get("/customers/", {"tier": tier, "sort": "name"}).content.decode()

    shown = [name for name, _tier in list_tiers(content)]
    assert shown == (
        names if names is not None else ["Ann", "Ben", "Cai", "Dan", "Eve", "Fay", "Zed"]
    )


def test_the_tier_filter_offers_the_tiers_by_rank(
    operator_client: Client, tiers: dict[str, Tier]
) -> None:
    content = operator_client.get("/customers/").content.decode()

    select = re.search(r'<select name="tier"[^>]*>(.*?)</select>', content, re.S)
    assert select is not None
    assert re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select.group(1)) == [
        ("", "All tiers"),
        ("normal", "Normal"),
        ("silver", "Silver"),
        ("gold", "Gold"),
        ("diamond", "Diamond"),
    ]


def test_an_unknown_tier_is_an_error_on_the_list(
    operator_client: Client, listed_members: dict[str, Customer]
) -> None:
    response = operator_client.get("/customers/", {"tier": "platinum"})
    content = response.content.decode()

    assert response.status_code == 200
    assert list_tiers(content) == []
    assert "Tier: Select a valid choice. platinum is not one of the available choices." in text(
        content
    )


def test_the_tier_filter_works_with_the_htmx_results_fragment(
    operator_client: Client, listed_members: dict[str, Customer]
) -> None:
    response = operator_client.get(
        "/customers/",
        {"tier": "gold"},
        headers={"HX-Request": "true", "HX-Target": "customer-results"},
    )

    assert "<html" not in response.content.decode()
    assert list_tiers(response.content.decode()) == [("Eve", "Gold")]


@pytest.mark.parametrize("customers", [3, 30])
@pytest.mark.parametrize("query", [{}, {"tier": "silver"}], ids=["all", "by-tier"])
def test_the_tier_column_costs_no_query_per_row(
    operator_client: Client,
    tiers: dict[str, Tier],
    customer_factory: Any,
    membership_factory: Callable[..., Membership],
    django_assert_num_queries: Any,
    customers: int,
    query: dict[str, str],
) -> None:
    for _number in range(customers):
        membership_factory(customer_factory(), tiers["silver"], tier_since=timezone.now())
    operator_client.get("/customers/")
    # session, user, cities, tags, tiers (filter), page with memberships and tiers, tags of the
    # page, count, groups (role badge), the user's and the groups' permissions (masking);
    # PostgreSQL first asks the planner for its estimate of an unfiltered list.
    expected = 11 + (1 if connection.vendor == "postgresql" and not query else 0)

    with django_assert_num_queries(expected):
        response = operator_client.get("/customers/", query)

    assert len(list_tiers(response.content.decode())) == min(customers, 25)


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/loyalty/tiers/rules/", 400),
        ("/loyalty/tiers/rules/preview/", 422),
        ("/loyalty/points/rules/", 400),
        ("/loyalty/points/settings/", 400),
    ],
    ids=["tier-rules", "preview", "points-rules", "settings"],
)
def test_a_post_without_the_form_is_an_error_page_not_a_crash(
    admin_client_role: Client, tiers: dict[str, Tier], url: str, status: int
) -> None:
    before = (tier_state(), settings_state(), rule_state())

    response = admin_client_role.post(url, {"action": "save"})

    assert response.status_code == status
    assert (tier_state(), settings_state(), rule_state()) == before


def test_removing_every_tier_is_refused_with_a_message(
    admin_client_role: Client, tiers: dict[str, Tier]
) -> None:
    rows = [{**row, "DELETE": True} for row in saved_tier_rows()]

    response = admin_client_role.post("/loyalty/tiers/rules/", tier_post(rows))

    assert response.status_code == 400
    assert by_testid(response.content.decode(), "rules-errors") == "Add at least one tier."
    assert len(tier_state()) == 4
