from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from customers.models import Customer, Event
from customers.services import create_api_key
from tests.factories import CustomerFactory
from tests.segments.test_compiler import AS_OF, make_people

URL = "/api/v1/segments/preview"
ENGLISH = {"Accept-Language": "en"}
IN_SHANGHAI = {"field": "city", "op": "eq", "value": "上海"}


@pytest.fixture
def people(db: None) -> dict[str, Customer]:
    return make_people()


def post(client: Client, body: Any, **headers: str) -> Any:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(
        URL, data=data, content_type="application/json", headers={**ENGLISH, **headers}
    )


def test_the_url_is_the_documented_one() -> None:
    assert reverse("segments_api:preview") == URL


def test_an_operator_previews_a_rule_and_sees_a_masked_sample(
    operator_client: Client, people: dict[str, Customer]
) -> None:
    # when
    response = post(operator_client, {"rules": {"all": [IN_SHANGHAI]}})

    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["count"], isinstance(body["sql_ms"], float)) == (1, True)
    assert body["sample"] == [
        {
            "id": people["A"].pk,
            "external_id": "A1",
            "name": "王芳",
            "city": "上海",
            "phone": "138****0001",
            "url": f"/customers/{people['A'].pk}/",
        }
    ]


def test_an_admin_with_the_contact_permission_sees_whole_phone_numbers(
    admin_client_role: Client, people: dict[str, Customer]
) -> None:
    # when
    response = post(admin_client_role, {"rules": IN_SHANGHAI})

    # then
    assert [row["phone"] for row in response.json()["sample"]] == ["+8613800000001"]


def test_as_of_is_honoured_and_read_in_shanghai_time_without_an_offset(
    operator_client: Client, people: dict[str, Customer]
) -> None:
    # given: 王芳 registered 2025-06-10 09:00 in Shanghai
    rules = {"field": "registered_at", "op": "within_last_days", "value": 1}

    # when
    before = post(operator_client, {"rules": rules, "as_of": "2025-06-10T08:59:59"})
    after = post(operator_client, {"rules": rules, "as_of": "2025-06-10T09:00:00+08:00"})

    # then
    assert (before.json()["count"], before.json()["as_of"]) == (0, "2025-06-10T08:59:59+08:00")
    assert (after.json()["count"], after.json()["as_of"]) == (1, "2025-06-10T09:00:00+08:00")


def test_the_sample_is_the_first_five_matches_by_id_and_the_count_is_all_of_them(
    operator_client: Client, db: None
) -> None:
    # given
    for _ in range(7):
        CustomerFactory(city="杭州")
    created = list(Customer.objects.filter(city="杭州").order_by("pk").values_list("pk", flat=True))

    # when
    body = post(operator_client, {"rules": {"field": "city", "op": "eq", "value": "杭州"}}).json()

    # then
    assert body["count"] == 7
    assert [row["id"] for row in body["sample"]] == created[:5]


def test_nobody_matching_answers_zero_and_an_empty_sample(
    operator_client: Client, people: dict[str, Customer]
) -> None:
    body = post(operator_client, {"rules": {"any": []}}).json()
    assert (body["count"], body["sample"]) == (0, [])


def test_the_preview_runs_a_fixed_number_of_queries(
    operator_client: Client,
    people: dict[str, Customer],
    django_assert_num_queries: Any,
    settings: Any,
) -> None:
    # given: session, user, the user's and groups' permissions, the count, the sample (the
    # time limit's savepoint and setting are counted by the test of the limit)
    settings.SEGMENT_PREVIEW_TIMEOUT_MS = 0
    rules = {
        "all": [
            {"field": "city", "op": "in", "value": ["上海", "北京"]},
            {"tag": "高价值用户"},
            {"event": "view_product", "within_days": 7, "count": {"op": "gt", "value": 1}},
        ]
    }

    # when
    with django_assert_num_queries(6):
        response = post(operator_client, {"rules": rules, "as_of": AS_OF.isoformat()})

    # then
    assert response.json()["count"] == 1


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"rules": {"all": [{"field": "city", "op": "gt", "value": "上海"}]}},
            [{"path": "all[0].op", "message": "'gt' is not an op of text field 'city'"}],
        ),
        (
            {"rules": {"any": [{"field": "tier", "op": "in", "value": ["gold", "platinum"]}]}},
            [
                {
                    "path": "any[0].value[1]",
                    "message": "'platinum' is not a choice of field 'tier'; choose from normal, "
                    "silver, gold, diamond.",
                }
            ],
        ),
        ({}, [{"path": "rules", "message": "The rules are missing."}]),
        (
            {"rules": {"all": []}, "limit": 3},
            [{"path": "limit", "message": "Unknown key 'limit': the body takes rules, as_of."}],
        ),
        (
            {"rules": {"all": []}, "as_of": "yesterday"},
            [
                {
                    "path": "as_of",
                    "message": "as_of 'yesterday' is not an ISO 8601 date and time, e.g. "
                    "2025-06-15T12:00:00+08:00.",
                }
            ],
        ),
        (
            {"rules": {"all": []}, "as_of": 20250615},
            [
                {
                    "path": "as_of",
                    "message": "as_of must be an ISO 8601 date and time, e.g. "
                    "2025-06-15T12:00:00+08:00.",
                }
            ],
        ),
        (
            {"rules": {"all": []}, "as_of": "0001-01-01T00:00:00+00:00"},
            [{"path": "as_of", "message": "as_of must be between the years 1900 and 2999."}],
        ),
        ([1, 2], [{"path": "", "message": 'The body must be a JSON object {"rules": ...}.'}]),
        ("{not json", [{"path": "", "message": "The body is not valid JSON."}]),
        ('{"rules": NaN}', [{"path": "", "message": "The body is not valid JSON."}]),
        (
            b'{"rules": {"field": "city", "op": "eq", "value": "\\u0000"}}',
            [{"path": "value", "message": "The text contains a NUL character."}],
        ),
        (b"\xff\xfe", [{"path": "", "message": "The body is not valid JSON."}]),
        ("[" * 100_000, [{"path": "", "message": "The body is not valid JSON."}]),
    ],
    ids=[
        "bad-op",
        "unknown-tier",
        "missing-rules",
        "unknown-key",
        "bad-as-of",
        "as-of-not-text",
        "as-of-out-of-range",
        "not-an-object",
        "not-json",
        "nan",
        "nul-character",
        "not-utf8",
        "too-deep-json",
    ],
)
def test_bad_input_gets_400_naming_each_problem_and_its_path(
    operator_client: Client, db: None, body: Any, errors: list[dict[str, str]]
) -> None:
    # when
    response = post(operator_client, body)

    # then
    assert response.status_code == 400
    assert response.json() == {"errors": errors}


def test_an_anonymous_visitor_is_sent_to_log_in(client: Client, db: None) -> None:
    # when
    response = post(client, {"rules": {"all": []}})

    # then
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={URL}"


def test_a_user_without_permission_to_view_customers_gets_403(make_user: Any, db: None) -> None:
    # given
    client = Client()
    client.force_login(make_user(None, username="nobody"))  # type: ignore[arg-type]

    # when
    response = post(client, {"rules": {"all": []}})

    # then
    assert response.status_code == 403
    assert response.json() == {"errors": [{"path": "", "message": "You may not view customers."}]}


def test_get_is_not_allowed(operator_client: Client, db: None) -> None:
    # when
    response = operator_client.get(URL, headers=ENGLISH)

    # then
    assert (response.status_code, response["Allow"]) == (405, "POST")


def test_a_browser_post_needs_the_csrf_token(operator: Any, db: None) -> None:
    # given
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    client.get("/")
    token = client.cookies["csrftoken"].value

    # when
    refused = post(client, {"rules": {"all": []}})
    accepted = post(client, {"rules": {"all": []}}, **{"X-CSRFToken": token})

    # then
    assert refused.status_code == 403
    assert accepted.status_code == 200


def test_an_ingest_api_key_neither_logs_in_nor_skips_the_csrf_check(
    admin_user: Any, operator: Any, db: None
) -> None:
    # given
    _key, secret = create_api_key(name="shop", actor=admin_user)
    anonymous = Client()
    logged_in = Client(enforce_csrf_checks=True)
    logged_in.force_login(operator)

    # when
    without_session = post(anonymous, {"rules": {"all": []}}, Authorization=f"Bearer {secret}")
    without_token = post(logged_in, {"rules": {"all": []}}, **{"X-Api-Key": secret})

    # then
    assert without_session.status_code == 302
    assert without_token.status_code == 403


def heavy_data() -> dict[str, Any]:
    """Enough customers and events that the tree below takes far longer than a millisecond."""
    customers = Customer.objects.bulk_create(
        CustomerFactory.build(external_id=f"H{number}") for number in range(2000)
    )
    Event.objects.bulk_create(
        Event(
            event_id=f"E{number}",
            customer=customers[number % len(customers)],
            name=f"e{number % 20}",
            occurred_at=AS_OF,
            properties={"n": number % 7},
        )
        for number in range(20_000)
    )
    return {
        "any": [
            {
                "event": f"e{n}",
                "where": {"n": {"op": "gt", "value": 3}},
                "count": {"op": "gt", "value": 9},
            }
            for n in range(20)
        ]
    }


def test_a_preview_past_the_time_limit_is_stopped_with_a_400_that_says_so(
    operator_client: Client, db: None, settings: Any
) -> None:
    # given
    rules = heavy_data()
    settings.SEGMENT_PREVIEW_TIMEOUT_MS = 1

    # when
    response = post(operator_client, {"rules": rules, "as_of": AS_OF.isoformat()})

    # then
    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {
                "path": "",
                "message": "Counting took longer than 0.001 s and was stopped. Narrow the rules: "
                "a shorter event window, fewer event conditions, or a condition on metrics first.",
            }
        ]
    }
    # and the connection is fine afterwards: the same tree counts without the limit
    settings.SEGMENT_PREVIEW_TIMEOUT_MS = 0
    again = post(operator_client, {"rules": rules, "as_of": AS_OF.isoformat()})
    assert again.status_code == 200
    assert again.json()["count"] == 0
