from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, cast

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.utils import timezone
from rq import Queue, SimpleWorker

from customers.jobs import METRICS_QUEUE
from customers.metrics import count_value_tiers, recompute_metrics
from customers.metrics_settings import (
    ValueTierThresholds,
    preview_value_tiers,
    update_metrics_settings,
)
from customers.models import Customer, CustomerMetrics, MetricsSettings
from tests.factories import SHANGHAI, CustomerFactory, OrderFactory

pytestmark = pytest.mark.django_db

PAGE_URL = "/customers/metrics/settings/"
PREVIEW_URL = "/customers/metrics/settings/preview/"
AS_OF = dt.datetime(2024, 6, 30, 12, 0, tzinfo=SHANGHAI)
DAY = dt.timedelta(days=1)
TIERS = ("high", "potential", "low", "unclassified")
DEFAULTS: dict[str, str] = {
    "high_max_days": "30",
    "high_min_orders": "3",
    "high_min_spend": "500.00",
    "potential_max_days": "30",
    "potential_min_orders": "1",
    "potential_max_orders": "2",
    "potential_min_spend": "200.00",
    "potential_max_spend": "500.00",
    "low_min_days": "90",
    "low_max_orders": "1",
    "low_max_spend": "200.00",
}
# D (3 orders, 450) becomes high value and F (40 days ago, 150) low value.
LOWER = {**DEFAULTS, "high_min_spend": "400", "potential_max_spend": "400", "low_min_days": "35"}


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"


def _orders(customer: Customer, *, count: int, total: str, last_at: dt.datetime) -> None:
    share = Decimal(total) / count
    for number in range(count):
        OrderFactory(
            customer=customer, amount=share, placed_at=last_at - number * dt.timedelta(hours=1)
        )


def _shoppers(now: dt.datetime) -> dict[str, Customer]:
    """With the default thresholds: A high, B potential, C low; D, E and F unclassified."""
    people = {
        name: cast(Customer, CustomerFactory(name=name, registered_at=now - 500 * DAY))
        for name in "ABCDEF"
    }
    _orders(people["A"], count=4, total="800", last_at=now - 5 * DAY)
    _orders(people["B"], count=2, total="300", last_at=now - 10 * DAY)
    _orders(people["C"], count=1, total="100", last_at=now - 120 * DAY)
    _orders(people["D"], count=3, total="450", last_at=now - 20 * DAY)
    _orders(people["F"], count=1, total="150", last_at=now - 40 * DAY)
    return people  # E has no order


@pytest.fixture
def shoppers() -> dict[str, Customer]:
    people = _shoppers(AS_OF)
    recompute_metrics(as_of=AS_OF)
    return people


def _thresholds(values: dict[str, str]) -> ValueTierThresholds:
    parsed: dict[str, Any] = {
        name: Decimal(value) if name.endswith("_spend") else int(value)
        for name, value in values.items()
    }
    return ValueTierThresholds(**parsed)


def _text(fragment: str) -> str:
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", fragment).split()))


def _tier_cells(content: str, testid: str) -> dict[str, list[str]]:
    table = re.search(rf'<table[^>]*data-testid="{testid}".*?</table>', content, re.S)
    assert table is not None, f"no table {testid}"
    rows = re.findall(r'<tr data-tier="(\w+)">(.*?)</tr>', table.group(0), re.S)
    return {
        tier: [_text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", cells, re.S)]
        for tier, cells in rows
    }


def _field_errors(content: str, name: str) -> list[str]:
    block = re.search(rf'<div class="field[^"]*" data-field="{name}">(.*?)</div>', content, re.S)
    assert block is not None, f"no field {name}"
    return [
        _text(error) for error in re.findall(r'class="field-error"[^>]*>(.*?)</p>', block.group(1))
    ]


def _stored_thresholds() -> ValueTierThresholds:
    return ValueTierThresholds.of(MetricsSettings.objects.filter(pk=1).first() or MetricsSettings())


# --- reading the page ---------------------------------------------------------------------------


def test_an_admin_sees_the_thresholds_by_tier_the_tier_counts_and_the_last_full_run(
    admin_client_role: Client, shoppers: dict[str, Customer]
) -> None:
    # when
    response = admin_client_role.get(PAGE_URL)

    # then
    content = response.content.decode()
    assert response.status_code == 200
    assert _tier_cells(content, "tier-counts") == {
        "high": ["High value", "1"],
        "potential": ["Potential", "1"],
        "low": ["Low value", "1"],
        "unclassified": ["Unclassified", "3"],
    }
    run = MetricsSettings.objects.get(pk=1)
    assert run.last_full_run_at is not None
    finished = run.last_full_run_at.astimezone(SHANGHAI)
    last_run = re.search(r'data-testid="last-full-run">(.*?)</p>', content, re.S)
    assert last_run is not None
    assert _text(last_run.group(1)) == (
        f"Last full recompute: as of 2024-06-30 12:00, 6 customers · "
        f"finished {finished:%Y-%m-%d %H:%M} · took {run.last_full_run_ms:,} ms"
    )
    legends = re.findall(
        r'<fieldset class="card rules-grid" data-tier="(\w+)">\s*<legend><h2>(.*?)</h2>', content
    )
    assert legends == [("high", "High value"), ("potential", "Potential"), ("low", "Low value")]
    assert 'name="high_min_spend" value="500.00"' in content
    assert 'name="low_min_days" value="90"' in content
    assert 'data-testid="save-thresholds"' in content
    assert f'hx-post="{PREVIEW_URL}" hx-include="#metrics-settings-form"' in content


def test_before_any_recompute_the_page_shows_the_default_thresholds_and_no_run(
    admin_client_role: Client,
) -> None:
    # when
    response = admin_client_role.get(PAGE_URL)

    # then
    content = response.content.decode()
    assert response.status_code == 200
    assert 'name="potential_max_orders" value="2"' in content
    assert "The metrics have not been fully recomputed yet" in content
    assert _tier_cells(content, "tier-counts")["unclassified"] == ["Unclassified", "0"]
    assert not MetricsSettings.objects.exists()


def test_the_page_reads_the_thresholds_and_counts_in_a_fixed_number_of_queries(
    admin_client_role: Client, shoppers: dict[str, Customer], django_assert_num_queries: Any
) -> None:
    # given: the session and the permissions are cached after a first view
    admin_client_role.get(PAGE_URL)

    # when / then: session, user, the user's and the groups' permissions, the settings row, one
    # GROUP BY of the tiers, the role badge
    with django_assert_num_queries(7):
        response = admin_client_role.get(PAGE_URL)
    assert response.status_code == 200


@pytest.mark.parametrize("role", ["Managers", "Operators"], ids=["manager", "operator"])
def test_a_role_that_may_only_view_sees_the_thresholds_read_only_and_may_not_post(
    make_user: Callable[..., Any], shoppers: dict[str, Customer], role: str
) -> None:
    # given
    client = Client()
    client.force_login(make_user(role, username="viewer"))

    # when
    page = client.get(PAGE_URL)
    saved = client.post(PAGE_URL, LOWER)
    previewed = client.post(PREVIEW_URL, LOWER)

    # then
    content = page.content.decode()
    assert page.status_code == 200
    assert re.search(
        r'<input type="number" name="high_min_spend" value="500.00"[^>]* disabled', content
    )
    assert "Only admins change these thresholds; you see them read-only." in content
    assert 'data-testid="save-thresholds"' not in content
    assert 'data-testid="preview-tiers"' not in content
    assert (saved.status_code, previewed.status_code) == (403, 403)
    assert _stored_thresholds() == _thresholds(DEFAULTS)


def test_a_user_without_a_role_may_not_open_the_page(make_user: Callable[..., Any]) -> None:
    # given
    client = Client()
    client.force_login(make_user(None, username="nobody"))

    # when / then
    assert client.get(PAGE_URL).status_code == 403
    assert client.post(PAGE_URL, DEFAULTS).status_code == 403


def test_the_customer_list_links_to_the_page(admin_client_role: Client) -> None:
    content = admin_client_role.get("/customers/").content.decode()

    assert f'<a href="{PAGE_URL}" class="button" data-testid="value-tiers-link">' in content


# --- refusing bad thresholds ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"high_max_days": "thirty"}, "high_max_days", "Enter a whole number."),
        ({"high_min_spend": ""}, "high_min_spend", "This field is required."),
        (
            {"low_max_spend": "12.345"},
            "low_max_spend",
            "Ensure that there are no more than 2 decimal places.",
        ),
        ({"potential_max_days": "-1"}, "potential_max_days", "Enter 0 to 3650 days."),
        ({"low_min_days": "99999"}, "low_min_days", "Enter 0 to 3650 days."),
        (
            {"high_min_orders": "0"},
            "high_min_orders",
            "Enter 1 to 10000 orders: customers without orders are never in a tier.",
        ),
        ({"high_min_spend": "-5"}, "high_min_spend", "Enter 0 to 100,000,000.00 yuan."),
        (
            {"high_min_spend": "100000000.01"},
            "high_min_spend",
            "Enter 0 to 100,000,000.00 yuan.",
        ),
        (
            {"low_max_spend": "0", "potential_min_spend": "0"},
            "low_max_spend",
            "Enter more than 0 yuan: no spend is less than 0.",
        ),
        (
            {"potential_min_orders": "2", "potential_max_orders": "1", "low_max_orders": "1"},
            "potential_max_orders",
            "Must be at least the potential tier's minimum orders (2).",
        ),
        (
            {"potential_min_spend": "300", "potential_max_spend": "300"},
            "potential_max_spend",
            "Must be more than the potential tier's minimum spend (300.00 yuan).",
        ),
        (
            {"high_min_orders": "2"},
            "high_min_orders",
            "Must be more than the potential tier's maximum orders (2).",
        ),
        (
            {"high_min_spend": "450", "potential_max_spend": "500"},
            "high_min_spend",
            "Must be at least the potential tier's spend limit (500.00 yuan).",
        ),
        (
            {"low_max_orders": "2"},
            "low_max_orders",
            "Must be at most the potential tier's minimum orders (1).",
        ),
        (
            {"low_max_spend": "250"},
            "low_max_spend",
            "Must be at most the potential tier's minimum spend (200.00 yuan).",
        ),
        (
            {"potential_max_days": "60", "low_min_days": "60"},
            "low_min_days",
            "Must be more than 60 days, the longer of the high value and potential windows: "
            "a recent customer is never low value.",
        ),
    ],
    ids=[
        "not-a-number",
        "missing",
        "past-the-fen",
        "negative-days",
        "too-many-days",
        "no-orders",
        "negative-spend",
        "too-much-spend",
        "low-below-nothing",
        "potential-orders-reversed",
        "potential-spend-empty",
        "high-orders-inside-potential",
        "high-spend-inside-potential",
        "low-orders-above-potential",
        "low-spend-above-potential",
        "low-inside-the-windows",
    ],
)
def test_a_bad_threshold_gets_a_400_naming_the_field_and_nothing_is_saved_or_queued(
    admin_client_role: Client,
    shoppers: dict[str, Customer],
    rq_queues: dict[str, Queue],
    django_capture_on_commit_callbacks: Any,
    changes: dict[str, str],
    field: str,
    message: str,
) -> None:
    # given
    data = {**LOWER, **changes}

    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin_client_role.post(PAGE_URL, data)

    # then
    content = response.content.decode()
    assert response.status_code == 400
    assert _field_errors(content, field) == [message]
    summary = re.search(r'data-testid="settings-errors">(.*?)</div>', content, re.S)
    assert summary is not None
    assert message in html.unescape(summary.group(1))
    assert _stored_thresholds() == _thresholds(DEFAULTS)
    assert callbacks == []
    assert rq_queues[METRICS_QUEUE].count == 0
    # what was typed is shown again
    shown = data[field]
    assert f'name="{field}" value="{shown}"' in content or (
        shown == "" and f'name="{field}" ' in content
    )


def test_the_summary_names_the_tier_and_the_field_of_each_error(
    admin_client_role: Client,
) -> None:
    # when
    response = admin_client_role.post(
        PAGE_URL, {**DEFAULTS, "high_min_orders": "x", "low_min_days": "-3"}
    )

    # then
    content = response.content.decode()
    summary = re.search(r'data-testid="settings-errors">(.*?)</div>', content, re.S)
    assert summary is not None
    assert [_text(item) for item in re.findall(r"<li>(.*?)</li>", summary.group(1))] == [
        "High value · At least (orders): Enter a whole number.",
    ]
    # the range checks of the other fields wait until every field parses
    assert response.status_code == 400


def test_the_service_refuses_someone_without_the_permission(operator: Any) -> None:
    with pytest.raises(PermissionDenied):
        update_metrics_settings(thresholds=_thresholds(LOWER), actor=operator)

    assert not MetricsSettings.objects.exists()


def test_the_service_raises_the_errors_by_field(admin_user: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        update_metrics_settings(
            thresholds=_thresholds({**DEFAULTS, "high_min_orders": "2", "low_max_orders": "2"}),
            actor=admin_user,
        )

    assert raised.value.message_dict == {
        "high_min_orders": ["Must be more than the potential tier's maximum orders (2)."],
        "low_max_orders": ["Must be at most the potential tier's minimum orders (1)."],
    }


# --- previewing --------------------------------------------------------------------------------


def test_the_preview_shows_each_tier_now_and_with_the_typed_thresholds(
    admin_client_role: Client, shoppers: dict[str, Customer]
) -> None:
    # when
    response = admin_client_role.post(PREVIEW_URL, LOWER, headers={"HX-Request": "true"})

    # then
    content = response.content.decode()
    assert response.status_code == 200
    assert _tier_cells(content, "preview-table") == {
        "high": ["High value", "1", "2", "+1"],
        "potential": ["Potential", "1", "1", "0"],
        "low": ["Low value", "1", "2", "+1"],
        "unclassified": ["Unclassified", "3", "1", "-2"],
    }
    assert _stored_thresholds() == _thresholds(DEFAULTS)
    assert list(
        CustomerMetrics.objects.values_list("value_tier", flat=True).order_by("customer__name")
    ) == [
        "high",
        "potential",
        "low",
        "unclassified",
        "unclassified",
        "unclassified",
    ]


def test_the_preview_of_bad_thresholds_lists_the_errors_for_htmx_to_swap_in(
    admin_client_role: Client, shoppers: dict[str, Customer]
) -> None:
    # when
    response = admin_client_role.post(
        PREVIEW_URL, {**DEFAULTS, "high_min_spend": "100"}, headers={"HX-Request": "true"}
    )

    # then
    content = response.content.decode()
    assert response.status_code == 422
    errors = re.search(r'data-testid="preview-errors">(.*?)</div>', content, re.S)
    assert errors is not None
    assert [_text(item) for item in re.findall(r"<li>(.*?)</li>", errors.group(1))] == [
        "High value · Spend at least (yuan): Must be at least the potential tier's spend limit "
        "(500.00 yuan)."
    ]


@pytest.mark.parametrize(
    "values",
    [
        DEFAULTS,
        LOWER,
        {**DEFAULTS, "high_max_days": "7", "potential_max_days": "25", "low_min_days": "30"},
        {
            **DEFAULTS,
            "high_min_orders": "5",
            "potential_max_orders": "4",
            "potential_min_spend": "100",
            "low_max_spend": "100",
            "potential_max_spend": "300",
            "high_min_spend": "300",
        },
        {
            **DEFAULTS,
            "potential_min_spend": "449.99",
            "potential_max_spend": "450",
            "high_min_spend": "450",
        },
    ],
    ids=["defaults", "lower", "shorter-windows", "more-orders", "spend-at-the-fen"],
)
def test_the_preview_counts_what_the_recompute_then_writes(
    admin_user: Any, shoppers: dict[str, Customer], values: dict[str, str]
) -> None:
    # given
    thresholds = _thresholds(values)

    # when
    previewed = preview_value_tiers(thresholds)
    update_metrics_settings(thresholds=thresholds, actor=admin_user)
    written = recompute_metrics(as_of=AS_OF).value_tiers

    # then
    assert previewed == written
    assert count_value_tiers(metrics_settings=MetricsSettings.objects.get(pk=1)) == written


# --- saving ------------------------------------------------------------------------------------


def test_saving_stores_the_thresholds_and_queues_the_recompute_which_re_scores_everyone(
    admin_client_role: Client,
    rq_queues: dict[str, Queue],
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given: metrics computed now, under the defaults, and no settings row saved yet
    people = _shoppers(timezone.now())
    recompute_metrics()
    MetricsSettings.objects.all().delete()
    queue = rq_queues[METRICS_QUEUE]
    preview = admin_client_role.post(PREVIEW_URL, LOWER, headers={"HX-Request": "true"})

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_role.post(PAGE_URL, LOWER)

    # then
    assert response.status_code == 302
    assert response["Location"] == PAGE_URL
    row = MetricsSettings.objects.get(pk=1)
    assert (row.high_min_spend, row.potential_max_spend, row.low_min_days) == (
        Decimal("400.00"),
        Decimal("400.00"),
        35,
    )
    assert [job.func_name for job in queue.jobs] == ["customers.jobs.recompute_metrics_job"]
    assert CustomerMetrics.objects.get(pk=people["D"].pk).value_tier == "unclassified"

    SimpleWorker([queue], connection=queue.connection).work(burst=True)

    tiers = dict(CustomerMetrics.objects.values_list("customer__name", "value_tier"))
    assert tiers == {
        "A": "high",
        "B": "potential",
        "C": "low",
        "D": "high",
        "E": "unclassified",
        "F": "low",
    }
    assert {
        tier: cells[2]
        for tier, cells in _tier_cells(preview.content.decode(), "preview-table").items()
    } == {tier: str(list(tiers.values()).count(tier)) for tier in TIERS}
    page = admin_client_role.get(PAGE_URL).content.decode()
    assert "Saved; customers are re-scored in the background." in page
    assert 'name="high_min_spend" value="400.00"' in page
    assert _tier_cells(page, "tier-counts")["high"] == ["High value", "2"]
