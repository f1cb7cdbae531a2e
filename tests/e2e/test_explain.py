from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from customers.models import Customer
from segments.models import Segment, SegmentMember
from tests.factories import SHANGHAI

IN_SHANGHAI = {"all": [{"field": "city", "op": "eq", "value": "上海"}]}
CITY_VALUE = '.rule-node[data-path="all[0]"] [data-path="all[0].value"]'


@pytest.fixture
def shanghai(customer_factory: Any) -> Segment:
    segment = Segment.objects.create(name="上海客户", definition=IN_SHANGHAI)
    wang = customer_factory(name="王芳", external_id="WF-1", city="上海")
    SegmentMember.objects.create(
        segment=segment, customer=wang, joined_at=dt.datetime(2026, 3, 1, 9, tzinfo=SHANGHAI)
    )
    customer_factory(name="李雷", external_id="LL-1", city="北京")
    return segment


def customer_id(external_id: str) -> int:
    return int(Customer.objects.get(external_id=external_id).pk)


def switch_to_english(page: Any) -> None:
    with page.expect_navigation():
        page.click("button[name=language][value=en]")
    expect(page.locator("html")).to_have_attribute("lang", "en")


def test_an_operator_asks_on_the_360_page_why_a_customer_is_or_is_not_in_a_segment(
    page: Any, log_in: Callable[..., Any], shanghai: Segment
) -> None:
    log_in("Operators")
    switch_to_english(page)
    page.goto(f"/customers/{customer_id('LL-1')}/")
    page.evaluate("window.__sameDocument = true")
    card = page.locator("#customer-segments")
    expect(card.get_by_test_id("customer-segments")).to_have_text("In no segment.")

    page.select_option("#explain-segment", label="上海客户")
    card.locator("button[type=submit]").click()

    expect(card.get_by_test_id("explain-verdict")).to_contain_text(
        "李雷 does not match these rules now."
    )
    expect(card.get_by_test_id("explain-verdict")).to_contain_text(
        "Not a member as of the last refresh."
    )
    expect(card.locator(".explain-node .explain-label")).to_have_text(
        ["All of these hold", "City equals 上海"]
    )
    expect(card.locator(".explain-node .explain-mark")).to_have_text(["✗", "✗"])
    expect(card.locator('.explain-node[data-path="all[0]"] .explain-reason')).to_have_text(
        "City is 北京."
    )
    assert page.evaluate("window.__sameDocument === true")

    page.goto(f"/customers/{customer_id('WF-1')}/")
    expect(card.locator("tbody tr td").first).to_have_text("上海客户")
    page.select_option("#explain-segment", label="上海客户")
    card.locator("button[type=submit]").click()

    expect(card.get_by_test_id("explain-verdict")).to_contain_text("王芳 matches these rules now.")
    expect(card.get_by_test_id("explain-verdict")).to_contain_text(
        "A member as of the last refresh."
    )
    expect(card.locator(".explain-node .explain-mark")).to_have_text(["✓", "✓"])
    expect(card.locator('.explain-node[data-path="all[0]"] .explain-reason')).to_have_text(
        "City is 上海."
    )


def test_the_builder_explains_the_unsaved_rules_and_follows_their_changes(
    page: Any, log_in: Callable[..., Any], shanghai: Segment
) -> None:
    log_in("Operators")
    switch_to_english(page)
    page.goto(f"/segments/{shanghai.pk}/edit/")
    expect(page.locator(CITY_VALUE)).to_have_value("上海")
    result = page.get_by_test_id("builder-explain-result")

    # Enter asks (it does not save the segment)
    page.get_by_test_id("builder-explain-customer").fill("李雷")
    page.get_by_test_id("builder-explain-customer").press("Enter")

    expect(result.get_by_test_id("builder-explain-verdict")).to_contain_text(
        "李雷 does not match these rules now."
    )
    expect(result.locator(".explain-node .explain-mark")).to_have_text(["✗", "✗"])
    expect(result.locator('.explain-node[data-path="all[0]"] .explain-reason')).to_have_text(
        "City is 北京."
    )
    assert page.url.endswith(f"/segments/{shanghai.pk}/edit/")

    # a change of the condition explains again, unsaved
    page.fill(CITY_VALUE, "北京")

    expect(result.get_by_test_id("builder-explain-verdict")).to_contain_text(
        "李雷 matches these rules now."
    )
    expect(result.locator(".explain-node .explain-label")).to_have_text(
        ["All of these hold", "City equals 北京"]
    )
    expect(result.locator(".explain-node .explain-mark")).to_have_text(["✓", "✓"])
    assert Segment.objects.get(pk=shanghai.pk).definition == IN_SHANGHAI

    # a customer nobody is: the refusal shows in the box
    page.get_by_test_id("builder-explain-customer").fill("nobody")
    page.get_by_test_id("builder-explain-run").click()
    expect(result.get_by_test_id("builder-explain-errors")).to_have_text(
        "No customer has the id, external id or name nobody."
    )
