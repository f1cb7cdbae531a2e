from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.factories import SHANGHAI

NAMES = "#customer-results tbody tr td:first-child a"


@pytest.fixture
def shop(
    customer_factory: Any, tag_factory: Any, customer_tag_factory: Any, order_factory: Any
) -> dict[str, Any]:
    def registered(day: int) -> dt.datetime:
        return dt.datetime(2024, 5, day, 10, tzinfo=SHANGHAI)

    alice = customer_factory(name="Alice", city="Shanghai", registered_at=registered(1))
    bob = customer_factory(name="Bob", city="Shanghai", registered_at=registered(2))
    carol = customer_factory(name="Carol", city="Beijing", registered_at=registered(3))
    customer_factory(name="Dave", city="Hangzhou", registered_at=registered(4))
    vip = tag_factory(name="VIP")
    customer_tag_factory(customer=alice, tag=vip)
    customer_tag_factory(customer=carol, tag=vip)
    order_factory(
        customer=alice,
        external_id="O-ALICE-1",
        placed_at=dt.datetime(2024, 6, 1, 20, 30, tzinfo=SHANGHAI),
        amount=Decimal("1299.00"),
    )
    order_factory(
        customer=alice,
        external_id="O-ALICE-2",
        placed_at=dt.datetime(2024, 6, 9, 21, 5, tzinfo=SHANGHAI),
        amount=Decimal("35.50"),
    )
    order_factory(customer=bob, external_id="O-BOB-1")
    return {"alice": alice}


def switch_to_english(page: Any) -> None:
    # Through the top bar, as a person would; the assertions below read English text.
    with page.expect_navigation():
        page.click("button[name=language][value=en]")
    expect(page.locator("html")).to_have_attribute("lang", "en")


def mark_the_document(page: Any) -> None:
    # A full page load forgets this; an htmx swap keeps it.
    page.evaluate("window.__sameDocument = true")


def is_the_same_document(page: Any) -> bool:
    return bool(page.evaluate("window.__sameDocument === true"))


def test_an_operator_filters_the_list_opens_a_customer_and_tags_them(
    page: Any, log_in: Callable[..., Any], shop: dict[str, Any]
) -> None:
    log_in("Operators")
    switch_to_english(page)
    page.goto("/customers/")
    expect(page.locator(NAMES)).to_have_text(["Dave", "Carol", "Bob", "Alice"])
    mark_the_document(page)

    page.select_option("select[name=city]", "Shanghai")
    expect(page.locator(NAMES)).to_have_text(["Bob", "Alice"])
    page.select_option("select[name=tag]", "VIP")
    expect(page.locator(NAMES)).to_have_text(["Alice"])

    assert is_the_same_document(page)
    expect(page).to_have_url(re.compile(r"/customers/\?.*city=Shanghai.*&tag=VIP"))
    expect(page.get_by_test_id("result-count")).to_contain_text("1 customer")

    page.locator(NAMES).get_by_text("Alice").click()
    expect(page).to_have_url(re.compile(rf"/customers/{shop['alice'].pk}/$"))
    expect(page.get_by_test_id("customer-name")).to_have_text("Alice")
    orders = page.locator("#customer-orders tbody tr td.mono")
    expect(orders).to_have_text(["O-ALICE-2", "O-ALICE-1"])
    expect(page.locator("#customer-orders tbody tr td.num")).to_have_text(["¥35.50", "¥1,299.00"])
    expect(page.locator("#customer-tags [data-tag]")).to_have_count(1)

    mark_the_document(page)
    page.fill("#tag-name", "回购用户")
    page.click("form.tag-add button[type=submit]")

    expect(page.locator('#customer-tags [data-tag="回购用户"]')).to_be_visible()
    expect(page.locator("#customer-tags [data-tag]")).to_have_count(2)
    expect(page.locator("#tag-name")).to_have_value("")
    assert is_the_same_document(page)


def test_a_bad_tag_name_is_shown_next_to_the_form_without_a_reload(
    page: Any, log_in: Callable[..., Any], shop: dict[str, Any]
) -> None:
    log_in("Operators")
    switch_to_english(page)
    page.goto(f"/customers/{shop['alice'].pk}/")
    mark_the_document(page)

    page.fill("#tag-name", "x" * 65)
    page.click("form.tag-add button[type=submit]")

    expect(page.locator("#tag-name-error")).to_contain_text("at most 64 characters")
    expect(page.locator("#tag-name")).to_have_value("x" * 65)
    expect(page.locator("#customer-tags [data-tag]")).to_have_count(1)
    assert is_the_same_document(page)


def test_a_manager_sees_the_list_but_no_tag_form(
    page: Any, log_in: Callable[..., Any], shop: dict[str, Any]
) -> None:
    log_in("Managers")

    page.goto(f"/customers/{shop['alice'].pk}/")

    expect(page.get_by_test_id("customer-name")).to_have_text("Alice")
    expect(page.locator("form.tag-add")).to_have_count(0)
    expect(page.get_by_test_id("customer-phone")).to_have_text(re.compile(r"^138\*{4}\d{4}$"))
