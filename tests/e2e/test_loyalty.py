from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect
from rq import Queue, SimpleWorker

from loyalty.jobs import DEFAULT_QUEUE
from loyalty.models import Membership, Tier
from tests.e2e.test_customers import is_the_same_document, mark_the_document, switch_to_english

IMPACT_ROWS = "#tier-impact tbody tr"


@pytest.fixture
def members(customer_factory: Any, order_factory: Any) -> None:
    """Ann (600) and Ben (800) reach silver once its threshold drops to 500; Cai (100) does
    not; Dan (1,200) is silver already, Eve (6,000) gold."""
    now = timezone.now()
    tiers = {tier.code: tier for tier in Tier.objects.all()}
    for name, code, amount in [
        ("Ann", "normal", "600.00"),
        ("Ben", "normal", "800.00"),
        ("Cai", "normal", "100.00"),
        ("Dan", "silver", "1200.00"),
        ("Eve", "gold", "6000.00"),
    ]:
        customer = customer_factory(name=name, registered_at=now - dt.timedelta(days=400))
        Membership.objects.create(
            customer=customer,
            tier=tiers[code],
            tier_since=now - dt.timedelta(days=100),
            joined_at=customer.registered_at,
        )
        order_factory(
            customer=customer, amount=Decimal(amount), placed_at=now - dt.timedelta(days=10)
        )


def test_an_admin_previews_and_saves_a_lower_silver_threshold(
    page: Any, log_in: Callable[..., Any], members: None, rq_queues: dict[str, Queue]
) -> None:
    log_in("Admins")
    switch_to_english(page)
    page.goto("/loyalty/")
    page.get_by_test_id("edit-tier-rules").click()
    expect(page.locator("h1")).to_have_text("Tier rules")
    expect(page.locator("input[name=tiers-1-min_spend]")).to_have_value("1000.00")

    page.fill("input[name=tiers-1-min_spend]", "500")
    mark_the_document(page)
    page.get_by_test_id("preview-impact").click()

    silver = page.locator(f'{IMPACT_ROWS}[data-tier="silver"] td')
    normal = page.locator(f'{IMPACT_ROWS}[data-tier="normal"] td')
    # members now, joining, up into, down into, up out, down out, staying, grace starts,
    # still in grace, members after
    expect(silver).to_have_text(
        ["Silver silver", "1", "0", "2", "0", "0", "0", "1", "0", "0", "3"],
        use_inner_text=True,
    )
    expect(normal).to_have_text(
        ["Normal normal", "3", "0", "0", "0", "2", "0", "1", "0", "0", "1"],
        use_inner_text=True,
    )
    expect(page.get_by_test_id("impact-summary")).to_contain_text("2 members move up")
    assert is_the_same_document(page)
    assert Tier.objects.get(code="silver").min_spend == Decimal("1000.00")

    with page.expect_navigation():
        page.get_by_test_id("save-rules").click()

    expect(page).to_have_url(f"{page.url.split('/loyalty/')[0]}/loyalty/")
    expect(page.locator(".message-success")).to_contain_text("Tier rules saved.")
    expect(page.locator('#tiers tr[data-tier="silver"] td').nth(2)).to_have_text("¥500.00")
    expect(page.locator("#tier-chart .main-svg").first).to_be_attached()

    # the recompute the save enqueued moves Ann and Ben up
    queue = rq_queues[DEFAULT_QUEUE]
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    page.goto("/customers/?tier=silver&sort=name")
    expect(page.locator("#customer-results tbody tr td:first-child a")).to_have_text(
        ["Ann", "Ben", "Dan"]
    )


def test_a_bad_threshold_is_shown_on_its_field_and_nothing_is_saved(
    page: Any, log_in: Callable[..., Any], members: None
) -> None:
    log_in("Admins")
    switch_to_english(page)
    page.goto("/loyalty/tiers/rules/")

    page.fill("input[name=tiers-2-min_spend]", "900")
    with page.expect_navigation():
        page.get_by_test_id("save-rules").click()

    error = page.locator('[data-row="2"] [data-field="min_spend"] .field-error')
    expect(error).to_have_text(
        "The minimum spend must be higher than that of 'silver' (1000.00), the tier below."
    )
    expect(page.locator("input[name=tiers-2-min_spend]")).to_have_value("900")
    assert Tier.objects.get(code="gold").min_spend == Decimal("5000.00")


def test_an_operator_opening_the_rules_page_is_refused(
    page: Any, log_in: Callable[..., Any], members: None
) -> None:
    log_in("Operators")

    response = page.goto("/loyalty/tiers/rules/")

    assert response is not None
    assert response.status == 403
    page.goto("/loyalty/")
    expect(page.locator('#tiers tr[data-tier="silver"]')).to_be_visible()
    expect(page.get_by_test_id("edit-tier-rules")).to_have_count(0)


def test_an_admin_adjusts_and_redeems_points_on_the_360_page_without_a_reload(
    page: Any, log_in: Callable[..., Any], members: None
) -> None:
    ann = Membership.objects.select_related("customer").get(customer__name="Ann")
    Membership.objects.filter(pk=ann.pk).update(points_balance=300)
    log_in("Admins")
    switch_to_english(page)
    page.goto(f"/customers/{ann.customer_id}/")
    expect(page.get_by_test_id("membership-balance")).to_have_text("300 worth ¥3.00")
    mark_the_document(page)

    page.fill("form.points-redeem input[name=points]", "500")
    page.get_by_test_id("redeem-submit").click()
    expect(page.locator('form.points-redeem [data-field="points"] .field-error')).to_have_text(
        "Not enough points: the balance is 300 and 500 were requested."
    )

    page.fill("form.points-adjust input[name=delta]", "250")
    page.fill("form.points-adjust input[name=reason]", "客服补偿")
    page.get_by_test_id("adjust-submit").click()
    expect(page.get_by_test_id("points-done")).to_have_text("Added 250 points.")
    expect(page.get_by_test_id("membership-balance")).to_have_text("550 worth ¥5.50")
    expect(page.locator("#customer-points tbody tr").first).to_contain_text("+250")

    page.fill("form.points-redeem input[name=points]", "500")
    page.get_by_test_id("redeem-submit").click()
    expect(page.get_by_test_id("points-done")).to_have_text("Redeemed 500 points, worth ¥5.00.")
    expect(page.get_by_test_id("membership-balance")).to_have_text("50 worth ¥0.50")
    expect(page.locator("#customer-points tbody tr")).to_have_count(2)
    assert is_the_same_document(page)
