from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from customers.models import CustomerTag, Tag
from tests.factories import SHANGHAI

LIST_URL = "/customers/"
HTMX_RESULTS = {"HX-Request": "true", "HX-Target": "customer-results"}
HTMX_TAGS = {"HX-Request": "true", "HX-Target": "customer-tags"}
_ROW_NAME = re.compile(r'<tr data-customer-id="\d+">\s*<td><a href="[^"]*">([^<]*)</a>')
_ERRORS = re.compile(
    r'<div class="form-errors" role="alert" data-testid="filter-errors">(.*?)</div>', re.S
)
_MESSAGES = re.compile(r'<p class="message message-(\w+)">([^<]*)</p>')


@pytest.fixture(autouse=True)
def english(settings: Any) -> None:
    # Django's own messages (form validation) are translated: read the page in English.
    settings.LANGUAGE_CODE = "en"


def shown_names(response: Any) -> list[str]:
    return [html.unescape(name) for name in _ROW_NAME.findall(response.content.decode())]


def shown_errors(response: Any) -> list[str]:
    found = _ERRORS.search(response.content.decode())
    if not found:
        return []
    text = re.sub(r"<[^>]+>", "", found.group(1))
    return [html.unescape(" ".join(line.split())) for line in text.splitlines() if line.strip()]


def shown_messages(response: Any) -> list[tuple[str, str]]:
    return [
        (level, html.unescape(text)) for level, text in _MESSAGES.findall(response.content.decode())
    ]


def at(year: int, month: int, day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=SHANGHAI)


@pytest.fixture
def four_customers(customer_factory: Any, tag_factory: Any, customer_tag_factory: Any) -> dict:
    vip, new = tag_factory(name="VIP"), tag_factory(name="新客")
    alice = customer_factory(
        name="Alice",
        external_id="C-0001",
        phone="+8613812341234",
        city="Shanghai",
        channel="app",
        registered_at=at(2024, 1, 10),
        last_seen_at=at(2024, 6, 1),
    )
    alan = customer_factory(
        name="Alan",
        external_id="C-0004",
        phone="+8613900001111",
        city="Beijing",
        channel="web",
        registered_at=at(2024, 3, 5),
        last_seen_at=at(2024, 6, 3),
    )
    bob = customer_factory(
        name="Bob",
        external_id="C-0002",
        phone="+8615000002222",
        city="Shanghai",
        channel="mini_program",
        registered_at=at(2024, 5, 20),
        last_seen_at=None,
    )
    carol = customer_factory(
        name="Carol",
        external_id="C-0003",
        phone="+8618600003333",
        city="Hangzhou",
        channel="app",
        registered_at=at(2024, 2, 14),
        last_seen_at=at(2024, 6, 2),
    )
    customer_tag_factory(customer=alice, tag=vip)
    customer_tag_factory(customer=carol, tag=vip)
    customer_tag_factory(customer=alan, tag=new)
    return {"alice": alice, "alan": alan, "bob": bob, "carol": carol, "vip": vip, "new": new}


# --- the list, as each role -------------------------------------------------------------------


@pytest.mark.parametrize("role_client", ["operator_client", "manager_client", "admin_client_role"])
def test_every_role_sees_the_customer_list_newest_registration_first(
    request: pytest.FixtureRequest, role_client: str, four_customers: dict
) -> None:
    client: Client = request.getfixturevalue(role_client)

    response = client.get(LIST_URL)

    assert response.status_code == 200
    assert shown_names(response) == ["Bob", "Alan", "Carol", "Alice"]
    assert "4 customers" in response.content.decode()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("city=Shanghai", ["Bob", "Alice"]),
        ("city=Hangzhou", ["Carol"]),
        ("channel=app", ["Carol", "Alice"]),
        ("channel=store", []),
        ("tag=VIP", ["Carol", "Alice"]),
        ("tag=新客", ["Alan"]),
        ("registered_from=2024-02-14", ["Bob", "Alan", "Carol"]),
        ("registered_to=2024-02-14", ["Carol", "Alice"]),
        ("registered_from=2024-02-15&registered_to=2024-05-19", ["Alan"]),
        ("city=Shanghai&tag=VIP", ["Alice"]),
        ("city=Shanghai&channel=app&tag=VIP", ["Alice"]),
    ],
    ids=[
        "city",
        "another-city",
        "channel",
        "channel-nobody-came-from",
        "tag",
        "chinese-tag",
        "registered-from-includes-the-day",
        "registered-to-includes-the-whole-day",
        "registered-between",
        "city-and-tag",
        "city-channel-and-tag",
    ],
)
def test_each_filter_narrows_the_list_to_exactly_the_matching_customers(
    operator_client: Client, four_customers: dict, query: str, expected: list[str]
) -> None:
    response = operator_client.get(f"{LIST_URL}?{query}")

    assert response.status_code == 200
    assert shown_names(response) == expected
    assert shown_errors(response) == []


def test_a_filter_that_matches_nobody_says_so(
    operator_client: Client, four_customers: dict
) -> None:
    response = operator_client.get(f"{LIST_URL}?channel=store")

    assert shown_names(response) == []
    assert "No customers match these filters." in response.content.decode()
    assert "0 customers" in response.content.decode()


def test_the_filters_offer_the_known_cities_and_tags(
    operator_client: Client, four_customers: dict
) -> None:
    content = operator_client.get(LIST_URL).content.decode()

    city_select = re.search(r'<select name="city"[^>]*>(.*?)</select>', content, re.S)
    tag_select = re.search(r'<select name="tag"[^>]*>(.*?)</select>', content, re.S)
    assert city_select is not None
    assert tag_select is not None
    assert re.findall(r'<option value="([^"]*)"', city_select.group(1)) == [
        "",
        "Beijing",
        "Hangzhou",
        "Shanghai",
    ]
    assert re.findall(r'<option value="([^"]*)"', tag_select.group(1)) == ["", "VIP", "新客"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Al", ["Alan", "Alice"]),
        ("Alice", ["Alice"]),
        ("lice", []),
        ("13812341234", ["Alice"]),
        ("+8613812341234", ["Alice"]),
        ("+86 138 1234 1234", ["Alice"]),
        ("C-0003", ["Carol"]),
        ("c-0003", []),
        ("  Bob  ", ["Bob"]),
    ],
    ids=[
        "name-prefix",
        "whole-name",
        "middle-of-a-name",
        "phone-without-country-code",
        "phone-e164",
        "phone-with-spaces",
        "external-id",
        "external-id-is-exact",
        "spaces-around",
    ],
)
def test_search_finds_by_name_prefix_phone_or_external_id(
    operator_client: Client, four_customers: dict, text: str, expected: list[str]
) -> None:
    response = operator_client.get(LIST_URL, {"q": text})

    assert response.status_code == 200
    assert shown_names(response) == expected


# --- sorting ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("name", ["Alan", "Alice", "Bob", "Carol"]),
        ("-name", ["Carol", "Bob", "Alice", "Alan"]),
        ("external_id", ["Alice", "Bob", "Carol", "Alan"]),
        ("-external_id", ["Alan", "Carol", "Bob", "Alice"]),
        ("city", ["Alan", "Carol", "Alice", "Bob"]),
        ("-city", ["Bob", "Alice", "Carol", "Alan"]),
        ("registered_at", ["Alice", "Carol", "Alan", "Bob"]),
        ("-registered_at", ["Bob", "Alan", "Carol", "Alice"]),
        ("last_seen_at", ["Alice", "Carol", "Alan", "Bob"]),
        ("-last_seen_at", ["Alan", "Carol", "Alice", "Bob"]),
    ],
)
def test_the_list_sorts_by_each_sortable_column(
    operator_client: Client, four_customers: dict, sort: str, expected: list[str]
) -> None:
    response = operator_client.get(LIST_URL, {"sort": sort})

    assert response.status_code == 200
    assert shown_names(response) == expected


def test_the_sorted_column_is_marked_and_its_link_reverses_the_order(
    operator_client: Client, four_customers: dict
) -> None:
    content = operator_client.get(LIST_URL, {"sort": "name", "city": "Shanghai"}).content.decode()

    link = re.search(r'<th scope="col" aria-sort="ascending">\s*<a href="([^"]+)"', content)
    assert link is not None
    assert html.unescape(link.group(1)) == "/customers/?city=Shanghai&sort=-name"


def test_an_unknown_sort_is_an_error_shown_on_the_page(
    operator_client: Client, four_customers: dict
) -> None:
    response = operator_client.get(LIST_URL, {"sort": "phone"})

    assert response.status_code == 200
    assert shown_names(response) == []
    assert shown_errors(response) == [
        "Sort: Select a valid choice. phone is not one of the available choices."
    ]


# --- paging and bad input ---------------------------------------------------------------------


@pytest.fixture
def thirty_customers(customer_factory: Any) -> list[Any]:
    return [
        customer_factory(
            name=f"N{number:02d}", registered_at=at(2024, 1, 1) + dt.timedelta(days=number)
        )
        for number in range(30)
    ]


def test_the_first_page_shows_25_customers_and_links_the_next(
    operator_client: Client, thirty_customers: list[Any]
) -> None:
    response = operator_client.get(LIST_URL, {"city": "上海"})
    content = response.content.decode()

    assert shown_names(response) == [f"N{number:02d}" for number in range(29, 4, -1)]
    assert '<a href="/customers/?city=%E4%B8%8A%E6%B5%B7&amp;page=2"' in content
    assert 'rel="next"' in content
    assert 'rel="prev"' not in content
    assert "Page 1 of 2" in content
    assert "showing 1–25" in content


def test_the_second_page_shows_the_rest_and_links_back(
    operator_client: Client, thirty_customers: list[Any]
) -> None:
    response = operator_client.get(LIST_URL, {"page": "2"})
    content = response.content.decode()

    assert shown_names(response) == ["N04", "N03", "N02", "N01", "N00"]
    assert 'rel="next"' not in content
    assert '<a href="/customers/?page=1" hx-get="/customers/?page=1"' in content
    assert "Page 2 of 2" in content
    assert "showing 26–30" in content


def test_a_page_past_the_last_says_so_and_links_the_last_page(
    operator_client: Client, thirty_customers: list[Any]
) -> None:
    response = operator_client.get(LIST_URL, {"page": "7"})
    content = response.content.decode()

    assert response.status_code == 200
    assert shown_names(response) == []
    assert shown_errors(response) == ["Page: There is no page 7: the list has 2 pages."]
    assert '<a href="/customers/?page=2" hx-get="/customers/?page=2"' in content
    assert 'rel="last"' in content
    assert 'rel="next"' not in content
    assert 'rel="prev"' not in content
    assert "Page 7" not in content


def test_a_page_past_a_one_page_list_links_back_to_the_first(
    operator_client: Client, four_customers: dict
) -> None:
    response = operator_client.get(LIST_URL, {"page": "3", "city": "Shanghai"})
    content = response.content.decode()

    assert shown_errors(response) == ["Page: There is no page 3: the list has 1 page."]
    assert '<a href="/customers/?city=Shanghai" hx-get="/customers/?city=Shanghai"' in content
    assert 'rel="first"' in content
    assert 'rel="last"' not in content


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"page": "abc"}, "Page: The page must be a whole number."),
        ({"page": "0"}, "Page: Pages start at 1."),
        (
            {"page": "401"},
            "Page: Pages past 400 are not shown: narrow the list with the filters.",
        ),
    ],
    ids=["not-a-number", "zero", "too-far"],
)
def test_a_bad_page_shows_the_first_page_with_the_error(
    operator_client: Client, thirty_customers: list[Any], query: dict, error: str
) -> None:
    response = operator_client.get(LIST_URL, query)

    assert response.status_code == 200
    assert shown_names(response)[:2] == ["N29", "N28"]
    assert shown_errors(response) == [error]


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"registered_from": "notadate"}, "Registered from: Enter a valid date."),
        ({"registered_to": "2024-13-45"}, "Registered to: Enter a valid date."),
        (
            {"registered_from": "2024-05-01", "registered_to": "2024-04-01"},
            "Registered to: The end date 2024-04-01 is before the start date 2024-05-01.",
        ),
        (
            {"city": "Atlantis"},
            "City: Select a valid choice. Atlantis is not one of the available choices.",
        ),
        (
            {"tag": "nope"},
            "Tag: Select a valid choice. nope is not one of the available choices.",
        ),
        (
            {"channel": "fax"},
            "Channel: Select a valid choice. fax is not one of the available choices.",
        ),
    ],
    ids=["garbage-date", "impossible-date", "end-before-start", "city", "tag", "channel"],
)
def test_a_bad_filter_is_shown_as_an_error_not_a_crash(
    operator_client: Client, four_customers: dict, query: dict, error: str
) -> None:
    response = operator_client.get(LIST_URL, query)
    content = response.content.decode()

    assert response.status_code == 200
    assert shown_names(response) == []
    assert shown_errors(response) == [error]
    assert "Correct the filters to see the customers." in content
    assert "No customers are listed while a filter is wrong." in content
    assert "0 customers" not in content


def test_a_bad_filter_keeps_what_was_typed_in_the_form(
    operator_client: Client, four_customers: dict
) -> None:
    content = operator_client.get(LIST_URL, {"registered_from": "notadate"}).content.decode()

    assert 'name="registered_from" value="notadate"' in content


# --- htmx -------------------------------------------------------------------------------------


def test_an_htmx_request_for_the_results_gets_only_the_results_fragment(
    operator_client: Client, four_customers: dict
) -> None:
    response = operator_client.get(LIST_URL, {"city": "Shanghai"}, headers=HTMX_RESULTS)
    content = response.content.decode()

    assert response.status_code == 200
    assert shown_names(response) == ["Bob", "Alice"]
    assert "<html" not in content
    assert 'id="customer-filter"' not in content
    assert 'id="customer-results"' not in content
    assert '<table class="data-table"' in content
    assert 'hx-swap-oob="true"' in content
    assert "HX-Request" in response["Vary"]


def test_an_htmx_request_aimed_elsewhere_gets_the_whole_page(
    operator_client: Client, four_customers: dict
) -> None:
    response = operator_client.get(LIST_URL, headers={"HX-Request": "true", "HX-Target": "main"})

    assert "<html" in response.content.decode()
    assert 'id="customer-filter"' in response.content.decode()


def test_an_htmx_history_restore_gets_the_whole_page(
    operator_client: Client, four_customers: dict
) -> None:
    response = operator_client.get(
        LIST_URL, headers={**HTMX_RESULTS, "HX-History-Restore-Request": "true"}
    )

    assert "<html" in response.content.decode()


def test_an_htmx_request_with_a_bad_filter_shows_the_error_in_the_fragment(
    operator_client: Client, four_customers: dict
) -> None:
    response = operator_client.get(LIST_URL, {"registered_from": "notadate"}, headers=HTMX_RESULTS)

    assert response.status_code == 200
    assert shown_errors(response) == ["Registered from: Enter a valid date."]


# --- masking ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role_client", "shown"),
    [
        ("operator_client", "138****1234"),
        ("manager_client", "138****1234"),
        ("admin_client_role", "+8613812341234"),
    ],
    ids=["operator", "manager", "admin"],
)
def test_phones_are_masked_unless_the_user_may_see_contacts(
    request: pytest.FixtureRequest, four_customers: dict, role_client: str, shown: str
) -> None:
    client: Client = request.getfixturevalue(role_client)

    content = client.get(LIST_URL, {"q": "Alice"}).content.decode()

    assert f'<td class="mono">{shown}</td>' in content
    if shown.startswith("138"):
        assert "13812341234" not in content


# --- queries ----------------------------------------------------------------------------------


def _list_queries(client: Client, query: dict) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(LIST_URL, query)
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize("customers", [3, 30])
@pytest.mark.parametrize("query", [{}, {"tag": "VIP", "city": "上海"}], ids=["all", "filtered"])
def test_the_list_costs_the_same_queries_for_3_or_30_tagged_customers(
    operator_client: Client,
    customer_factory: Any,
    customer_tag_factory: Any,
    tag_factory: Any,
    django_assert_num_queries: Any,
    customers: int,
    query: dict,
) -> None:
    vip, other = tag_factory(name="VIP"), tag_factory(name="其他")
    for _ in range(customers):
        customer = customer_factory()
        customer_tag_factory(customer=customer, tag=vip)
        customer_tag_factory(customer=customer, tag=other)
    operator_client.get(LIST_URL)  # the session and the user's permissions are cached after this
    # session, user, cities, tags, tiers (the tier filter), page (with each row's membership and
    # tier), tags of the page, count, groups (role badge), the user's and the groups' permissions
    # (masking); PostgreSQL first asks the planner for its estimate of an unfiltered list.
    expected = 11 + (1 if connection.vendor == "postgresql" and not query else 0)

    with django_assert_num_queries(expected):
        response = operator_client.get(LIST_URL, query)

    assert len(shown_names(response)) == min(customers, 25)


# --- tags -------------------------------------------------------------------------------------


def tag_names_of(customer: Any) -> list[str]:
    return sorted(CustomerTag.objects.filter(customer=customer).values_list("tag__name", flat=True))


def test_an_operator_adds_a_new_tag_and_sees_the_updated_tags_fragment(
    operator_client: Client, four_customers: dict
) -> None:
    bob = four_customers["bob"]

    response = operator_client.post(
        reverse("customers:tag_add", args=[bob.pk]), {"name": "  回购  用户 "}, headers=HTMX_TAGS
    )
    content = response.content.decode()

    assert response.status_code == 200
    assert tag_names_of(bob) == ["回购 用户"]
    assert content.lstrip().startswith('<section id="customer-tags"')
    assert 'data-tag="回购 用户"' in content
    assert "<html" not in content
    assert CustomerTag.objects.get(customer=bob).source == "manual"


def test_an_operator_adds_an_existing_tag_without_htmx_and_is_sent_back_with_a_message(
    operator_client: Client, four_customers: dict
) -> None:
    bob = four_customers["bob"]

    response = operator_client.post(
        reverse("customers:tag_add", args=[bob.pk]), {"name": "VIP"}, follow=True
    )

    assert response.redirect_chain == [(f"/customers/{bob.pk}/", 302)]
    assert tag_names_of(bob) == ["VIP"]
    assert Tag.objects.filter(name="VIP").count() == 1
    assert shown_messages(response) == [("success", "Tag “VIP” added.")]


def test_adding_a_tag_the_customer_has_changes_nothing(
    operator_client: Client, four_customers: dict
) -> None:
    alice = four_customers["alice"]

    response = operator_client.post(
        reverse("customers:tag_add", args=[alice.pk]), {"name": "VIP"}, headers=HTMX_TAGS
    )

    assert response.status_code == 200
    assert tag_names_of(alice) == ["VIP"]


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("", "Enter a tag name."),
        ("   ", "Enter a tag name."),
        ("长" * 65, "A tag name has at most 64 characters; this one has 65."),
    ],
    ids=["empty", "blank", "too-long"],
)
def test_a_bad_tag_name_over_htmx_is_a_422_with_the_error_in_the_form(
    operator_client: Client, four_customers: dict, name: str, error: str
) -> None:
    bob = four_customers["bob"]

    response = operator_client.post(
        reverse("customers:tag_add", args=[bob.pk]), {"name": name}, headers=HTMX_TAGS
    )
    content = response.content.decode()

    assert response.status_code == 422
    assert f'<p class="field-error" id="tag-name-error" role="alert">{error} </p>' in content
    assert 'aria-invalid="true"' in content
    assert tag_names_of(bob) == []
    assert Tag.objects.count() == 2


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("", "Enter a tag name."),
        ("x" * 65, "A tag name has at most 64 characters; this one has 65."),
    ],
    ids=["empty", "too-long"],
)
def test_a_bad_tag_name_without_htmx_comes_back_as_an_error_message(
    operator_client: Client, four_customers: dict, name: str, error: str
) -> None:
    bob = four_customers["bob"]

    response = operator_client.post(
        reverse("customers:tag_add", args=[bob.pk]), {"name": name}, follow=True
    )

    assert response.status_code == 200
    assert shown_messages(response) == [("error", error)]
    assert tag_names_of(bob) == []


def test_a_missing_name_field_is_an_error_not_a_crash(
    operator_client: Client, four_customers: dict
) -> None:
    bob = four_customers["bob"]

    response = operator_client.post(
        reverse("customers:tag_add", args=[bob.pk]), {}, headers=HTMX_TAGS
    )

    assert response.status_code == 422
    assert "Enter a tag name." in response.content.decode()


def test_an_operator_removes_a_tag_over_htmx(operator_client: Client, four_customers: dict) -> None:
    alice, vip = four_customers["alice"], four_customers["vip"]

    response = operator_client.post(
        reverse("customers:tag_remove", args=[alice.pk, vip.pk]), headers=HTMX_TAGS
    )

    assert response.status_code == 200
    assert tag_names_of(alice) == []
    assert "No tags yet." in response.content.decode()
    assert tag_names_of(four_customers["carol"]) == ["VIP"]


def test_an_operator_removes_a_tag_without_htmx_and_sees_a_message(
    operator_client: Client, four_customers: dict
) -> None:
    alice, vip = four_customers["alice"], four_customers["vip"]

    response = operator_client.post(
        reverse("customers:tag_remove", args=[alice.pk, vip.pk]), follow=True
    )

    assert response.redirect_chain == [(f"/customers/{alice.pk}/", 302)]
    assert shown_messages(response) == [("success", "Tag removed.")]


def test_removing_a_tag_the_customer_lacks_says_so(
    operator_client: Client, four_customers: dict
) -> None:
    bob, vip = four_customers["bob"], four_customers["vip"]

    response = operator_client.post(
        reverse("customers:tag_remove", args=[bob.pk, vip.pk]), follow=True
    )

    assert shown_messages(response) == [("info", "The customer did not have that tag.")]


@pytest.mark.parametrize("action", ["add", "remove"])
def test_a_manager_may_not_change_tags(
    manager_client: Client, four_customers: dict, action: str
) -> None:
    alice, vip = four_customers["alice"], four_customers["vip"]
    url = (
        reverse("customers:tag_add", args=[alice.pk])
        if action == "add"
        else reverse("customers:tag_remove", args=[alice.pk, vip.pk])
    )

    response = manager_client.post(url, {"name": "新标签"}, headers=HTMX_TAGS)

    assert response.status_code == 403
    assert tag_names_of(alice) == ["VIP"]
    assert not Tag.objects.filter(name="新标签").exists()


def test_a_manager_sees_tags_but_no_tag_forms_on_the_360_page(
    manager_client: Client, four_customers: dict
) -> None:
    content = manager_client.get(f"/customers/{four_customers['alice'].pk}/").content.decode()

    assert 'data-tag="VIP"' in content
    assert 'class="tag-add"' not in content
    assert 'class="tag-remove"' not in content


@pytest.mark.parametrize("action", ["add", "remove"])
def test_tags_of_an_unknown_customer_are_a_404(
    operator_client: Client, four_customers: dict, action: str
) -> None:
    url = (
        reverse("customers:tag_add", args=[999999])
        if action == "add"
        else reverse("customers:tag_remove", args=[999999, four_customers["vip"].pk])
    )

    response = operator_client.post(url, {"name": "VIP"})

    assert response.status_code == 404


@pytest.mark.parametrize(
    "url_name", ["customers:tag_add", "customers:tag_remove"], ids=["add", "remove"]
)
def test_the_tag_actions_refuse_get(
    operator_client: Client, four_customers: dict, url_name: str
) -> None:
    args = [four_customers["alice"].pk]
    if url_name == "customers:tag_remove":
        args.append(four_customers["vip"].pk)

    response = operator_client.get(reverse(url_name, args=args))

    assert response.status_code == 405
