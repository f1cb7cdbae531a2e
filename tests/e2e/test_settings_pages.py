from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect
from rq import Queue, SimpleWorker

from customers.jobs import METRICS_QUEUE
from customers.metrics import recompute_metrics
from customers.models import CustomerMetrics, MetricsSettings
from segments.jobs import SEGMENTS_QUEUE
from segments.models import TagRule
from tests.e2e.test_customers import is_the_same_document, mark_the_document, switch_to_english

DAY = dt.timedelta(days=1)
CONDITION = '.rule-node[data-path="all[0]"]'


@pytest.fixture
def shoppers(customer_factory: Any, order_factory: Any) -> None:
    """Under the default thresholds Ann is high value, Ben potential and Dan unclassified (three
    orders, 450 yuan); Dan turns high value once high value asks for 400 yuan."""
    now = timezone.now()
    for name, city, orders, amount, days_ago in [
        ("Ann", "上海", 4, "200.00", 5),
        ("Ben", "北京", 2, "150.00", 10),
        ("Dan", "上海", 3, "150.00", 20),
    ]:
        customer = customer_factory(name=name, city=city, registered_at=now - 400 * DAY)
        for number in range(orders):
            order_factory(
                customer=customer,
                amount=Decimal(amount),
                placed_at=now - days_ago * DAY - number * dt.timedelta(hours=1),
            )
    recompute_metrics()


def tier_counts(page: Any, table: str, column: int) -> dict[str, str]:
    counts = {}
    for tier in ("high", "potential", "low", "unclassified"):
        counts[tier] = (
            page.locator(f'[data-testid="{table}"] tr[data-tier="{tier}"] td')
            .nth(column)
            .inner_text()
        )
    return counts


def test_an_admin_previews_and_saves_a_lower_high_value_threshold(
    page: Any, log_in: Callable[..., Any], shoppers: None, rq_queues: dict[str, Queue]
) -> None:
    log_in("Admins")
    switch_to_english(page)
    page.goto("/customers/")
    with page.expect_navigation():
        page.get_by_test_id("value-tiers-link").click()
    expect(page.locator("h1")).to_have_text("Value-tier thresholds")
    assert tier_counts(page, "tier-counts", 1) == {
        "high": "1",
        "potential": "1",
        "low": "0",
        "unclassified": "1",
    }
    expect(page.locator("input[name=high_min_spend]")).to_have_value("500.00")

    # lowering high value alone would put it inside potential's spend band: refused in place
    page.fill("input[name=high_min_spend]", "400")
    mark_the_document(page)
    page.get_by_test_id("preview-tiers").click()
    expect(page.get_by_test_id("preview-errors")).to_contain_text(
        "High value · Spend at least (yuan): Must be at least the potential tier's spend limit "
        "(500.00 yuan)."
    )

    page.fill("input[name=potential_max_spend]", "400")
    page.get_by_test_id("preview-tiers").click()
    expect(page.locator('[data-testid="preview-table"] tr[data-tier="high"] td')).to_have_text(
        ["High value", "1", "2", "+1"]
    )
    expect(
        page.locator('[data-testid="preview-table"] tr[data-tier="unclassified"] td')
    ).to_have_text(["Unclassified", "1", "0", "-1"])
    assert is_the_same_document(page)
    assert MetricsSettings.objects.get(pk=1).high_min_spend == Decimal("500.00")

    with page.expect_navigation():
        page.get_by_test_id("save-thresholds").click()
    expect(page.locator(".message-success")).to_have_text(
        "Saved; customers are re-scored in the background."
    )
    expect(page.locator("input[name=high_min_spend]")).to_have_value("400.00")

    # the recompute the save queued moves Dan up
    queue = rq_queues[METRICS_QUEUE]
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    assert CustomerMetrics.objects.filter(value_tier="high").count() == 2
    page.reload()
    assert tier_counts(page, "tier-counts", 1)["high"] == "2"


def test_a_bad_threshold_is_shown_on_its_field_and_nothing_is_saved(
    page: Any, log_in: Callable[..., Any], shoppers: None
) -> None:
    log_in("Admins")
    switch_to_english(page)
    page.goto("/customers/metrics/settings/")

    page.fill("input[name=potential_max_orders]", "0")
    with page.expect_navigation():
        page.get_by_test_id("save-thresholds").click()

    expect(page.locator('[data-field="potential_max_orders"] .field-error')).to_have_text(
        "Enter 1 to 10000 orders: customers without orders are never in a tier."
    )
    expect(page.locator("input[name=potential_max_orders]")).to_have_value("0")
    assert MetricsSettings.objects.get(pk=1).potential_max_orders == 2


def test_an_operator_builds_a_tag_rule_and_sees_it_listed(
    page: Any, log_in: Callable[..., Any], shoppers: None, rq_queues: dict[str, Queue]
) -> None:
    log_in("Operators")
    switch_to_english(page)
    page.goto("/segments/")
    with page.expect_navigation():
        page.get_by_test_id("tag-rules-link").click()
    expect(page.locator("h1")).to_have_text("Tag rules")
    with page.expect_navigation():
        page.get_by_test_id("new-tag-rule").click()

    page.fill("#tag-rule-tag", "上海客")
    page.click('.rule-node[data-path=""] > .rule-add [data-action="add-condition"]')
    page.select_option(f'{CONDITION} [data-path="all[0].field"]', "city")
    page.fill(f'{CONDITION} [data-path="all[0].value"]', "上海")
    expect(page.get_by_test_id("preview-count")).to_have_text(re.compile(r"^2 customers · \d+ ms$"))
    with page.expect_navigation():
        page.get_by_test_id("save-tag-rule").click()

    expect(page.locator(".message-success")).to_have_text(
        "The rule of tag 上海客 is saved; it is being applied to every customer."
    )
    rule = TagRule.objects.get(tag__name="上海客")
    assert rule.definition == {"all": [{"field": "city", "op": "eq", "value": "上海"}]}
    row = page.locator(f'tr[data-tag-rule-id="{rule.pk}"]')
    expect(row.get_by_test_id("tag-name")).to_have_text("上海客")
    expect(row.locator(".rule-summary")).to_contain_text("City equals 上海")
    expect(row.get_by_test_id("tag-rule-tagged")).to_have_text("0")

    # the application the save queued tags Ann and Dan
    queue = rq_queues[SEGMENTS_QUEUE]
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    page.reload()
    expect(row.get_by_test_id("tag-rule-tagged")).to_have_text("2")
    expect(row.get_by_test_id("tag-rule-applied")).not_to_have_text("never")
