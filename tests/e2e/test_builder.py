from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect
from rq import Queue

from segments.models import Segment

NESTED_GROUP = '.rule-node[data-path="all[0]"]'
CITY = '.rule-node[data-path="all[0].any[0]"]'
EVENT = '.rule-node[data-path="all[0].any[1]"]'
SAVED = {
    "all": [
        {
            "any": [
                {"field": "city", "op": "eq", "value": "上海"},
                {"event": "view_product", "within_days": 7, "count": {"op": "gte", "value": 3}},
            ]
        }
    ]
}


@pytest.fixture(autouse=True)
def empty_queues(rq_queues: dict[str, Queue]) -> None:
    # Saving queues the segment's first refresh on the test Redis; rq_queues empties it after.
    return None


@pytest.fixture
def shoppers(customer_factory: Any, event_factory: Any) -> None:
    now = timezone.now()

    def viewed(customer: Any, times: int, days_ago: float) -> None:
        for _ in range(times):
            event_factory(
                customer=customer,
                name="view_product",
                occurred_at=now - dt.timedelta(days=days_ago),
            )

    customer_factory(name="王芳", city="上海")  # the city only
    viewed(customer_factory(name="李雷", city="北京"), 4, 2)  # the events only
    viewed(customer_factory(name="韩梅", city="北京"), 2, 1)  # too few events
    viewed(customer_factory(name="张伟", city="北京"), 5, 10)  # events too long ago
    viewed(customer_factory(name="赵敏", city="上海"), 3, 3)  # both


def switch_to_english(page: Any) -> None:
    with page.expect_navigation():
        page.click("button[name=language][value=en]")
    expect(page.locator("html")).to_have_attribute("lang", "en")


def expect_count(page: Any, customers: int) -> None:
    words = "customer" if customers == 1 else "customers"
    expect(page.get_by_test_id("preview-count")).to_have_text(
        re.compile(rf"^{customers} {words} · \d+ ms$")
    )


def test_an_operator_builds_a_nested_segment_with_an_event_saves_and_reopens_it(
    page: Any, log_in: Callable[..., Any], shoppers: None
) -> None:
    log_in("Operators")
    switch_to_english(page)
    page.goto("/segments/new/")
    expect_count(page, 5)

    # an "any" group inside the root "all"
    page.click('.rule-node[data-path=""] > .rule-add [data-action="add-group"]')
    expect(page.locator(NESTED_GROUP)).to_be_visible()
    page.select_option(f"{NESTED_GROUP} > .rule-head .group-op", "any")
    expect_count(page, 0)

    # a field condition: city equals 上海; until a field is chosen, the error is at the node
    page.click(f'{NESTED_GROUP} > .rule-add [data-action="add-condition"]')
    expect(page.locator(f"{CITY} .rule-errors")).to_have_text("Unknown field ''.")
    expect(page.get_by_test_id("preview-status")).to_have_text(
        "Fix the marked conditions to see the count."
    )
    page.select_option(f'{CITY} [data-path="all[0].any[0].field"]', "city")
    expect(page.locator(f'{CITY} [data-path="all[0].any[0].op"]')).to_have_value("eq")
    page.fill(f'{CITY} [data-path="all[0].any[0].value"]', "上海")
    expect_count(page, 2)
    expect(page.locator(f"{CITY} .rule-errors")).to_have_text("")

    # an event condition: viewed a product at least 3 times within 7 days
    page.click(f'{NESTED_GROUP} > .rule-add [data-action="add-condition"]')
    page.select_option(f"{EVENT} .kind-select", "event")
    page.fill(f'{EVENT} [data-path="all[0].any[1].event"]', "view_product")
    expect(page.locator(f'{EVENT} [data-path="all[0].any[1].within_days"]')).to_have_value("7")
    expect_count(page, 4)
    page.select_option(f'{EVENT} [data-path="all[0].any[1].count.op"]', "gte")
    page.fill(f'{EVENT} [data-path="all[0].any[1].count.value"]', "3")
    expect_count(page, 3)
    expect(page.get_by_test_id("preview-sample").locator("li a")).to_have_text(
        ["王芳", "李雷", "赵敏"]
    )
    built = page.locator("#builder-definition").input_value()
    assert json.loads(built) == SAVED

    # save, then reopen
    page.fill("#segment-name", "上海或爱逛")
    with page.expect_navigation():
        page.get_by_test_id("save-segment").click()
    expect(page.get_by_test_id("segment-name")).to_have_text("上海或爱逛")
    segment = Segment.objects.get(name="上海或爱逛")
    assert json.dumps(segment.definition, sort_keys=True) == json.dumps(SAVED, sort_keys=True)

    page.goto(f"/segments/{segment.pk}/edit/")
    expect_count(page, 3)
    assert page.locator("#builder-definition").input_value() == built
    expect(page.locator(f"{NESTED_GROUP} > .rule-head .group-op")).to_have_value("any")
    expect(page.locator(f'{CITY} [data-path="all[0].any[0].field"]')).to_have_value("city")
    expect(page.locator(f'{CITY} [data-path="all[0].any[0].op"]')).to_have_value("eq")
    expect(page.locator(f'{CITY} [data-path="all[0].any[0].value"]')).to_have_value("上海")
    expect(page.locator(f"{EVENT} .kind-select")).to_have_value("event")
    expect(page.locator(f'{EVENT} [data-path="all[0].any[1].event"]')).to_have_value("view_product")
    expect(page.locator(f'{EVENT} [data-path="all[0].any[1].within_days"]')).to_have_value("7")
    expect(page.locator(f"{EVENT} .window-unit")).to_have_value("days")
    expect(page.locator(f'{EVENT} [data-path="all[0].any[1].count.op"]')).to_have_value("gte")
    expect(page.locator(f'{EVENT} [data-path="all[0].any[1].count.value"]')).to_have_value("3")


def test_an_operator_starts_from_a_template_and_saves_it_under_a_new_name(
    page: Any, log_in: Callable[..., Any], shoppers: None
) -> None:
    template = Segment.objects.get(template_key="beauty_viewers_7d")
    log_in("Operators")
    switch_to_english(page)
    page.goto("/segments/new/")
    expect_count(page, 5)

    page.select_option("#template-select", str(template.pk))
    page.click("#template-use")

    expect_count(page, 2)  # 李雷 and 赵敏 viewed 美妆 products 3 or more times this week
    assert json.loads(page.locator("#builder-definition").input_value()) == template.definition
    expect(page.locator("#segment-description")).to_have_value(template.description)
    page.fill("#segment-name", "本周美妆常客")
    with page.expect_navigation():
        page.get_by_test_id("save-segment").click()
    expect(page.get_by_test_id("segment-name")).to_have_text("本周美妆常客")
    assert Segment.objects.get(name="本周美妆常客").definition == template.definition


def test_a_manager_asks_why_a_customer_is_not_in_a_segment(
    page: Any, log_in: Callable[..., Any], shoppers: None
) -> None:
    segment = Segment.objects.create(
        name="上海", definition={"all": [{"field": "city", "op": "eq", "value": "上海"}]}
    )
    log_in("Managers")
    switch_to_english(page)
    page.goto(f"/segments/{segment.pk}/")
    page.evaluate("window.__sameDocument = true")

    page.fill("#explain-customer", "李雷")
    page.click("#segment-explain button[type=submit]")

    expect(page.get_by_test_id("explain-verdict")).to_contain_text(
        "李雷 does not match these rules now."
    )
    expect(page.locator(".explain-node .explain-label")).to_have_text(
        ["All of these hold", "City equals 上海"]
    )
    expect(page.locator('.explain-node[data-path="all[0]"] .explain-reason')).to_have_text(
        "City is 北京."
    )
    expect(page.locator(".explain-node .explain-mark")).to_have_text(["✗", "✗"])
    assert page.evaluate("window.__sameDocument === true")
