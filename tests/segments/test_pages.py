from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from rq import Queue

from customers.models import Customer
from segments.jobs import SEGMENTS_QUEUE
from segments.models import Segment, SegmentKind, SegmentMember, SegmentRefresh
from tests.factories import SHANGHAI

IN_SHANGHAI = {"all": [{"field": "city", "op": "eq", "value": "上海"}]}
NESTED = {
    "any": [
        {"field": "spend_90d", "op": "gte", "value": 500},
        {
            "all": [
                {"field": "channel", "op": "in", "value": ["app", "mini_program"]},
                {
                    "event": "view_product",
                    "within_days": 7,
                    "where": {"category": "美妆", "price": {"op": "gt", "value": 99.5}},
                    "count": {"op": "gt", "value": 3},
                    "not_followed_by": {"event": "order", "within_hours": 24},
                },
                {"not": {"tag": "黑名单"}},
                {"field": "registered_at", "op": "between", "value": ["2024-01-01", "2024-06-30"]},
            ]
        },
    ]
}
_HIDDEN = re.compile(
    r'<input type="hidden" name="definition" id="builder-definition" value="([^"]*)">'
)
_CONFIG = re.compile(r'<script id="builder-config" type="application/json">(.*?)</script>', re.S)
_ERRORS = re.compile(
    r'<div class="form-errors" role="alert" data-testid="save-errors">(.*?)</div>', re.S
)
_MESSAGES = re.compile(r'<p class="message message-(\w+)">([^<]*)</p>')
_ROWS = re.compile(r'<tr data-segment-id="(\d+)">\s*<td>\s*<a href="[^"]*">([^<]*)</a>')


@pytest.fixture(autouse=True)
def english(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"


def at(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, tzinfo=SHANGHAI)


def text_of(fragment: str) -> list[str]:
    text = re.sub(r"<[^>]+>", "\n", fragment)
    return [html.unescape(" ".join(line.split())) for line in text.splitlines() if line.strip()]


def save_errors(response: Any) -> list[str]:
    found = _ERRORS.search(response.content.decode())
    return text_of(found.group(1)) if found else []


def hidden_definition(response: Any) -> str:
    found = _HIDDEN.search(response.content.decode())
    assert found, "no definition field on the page"
    return html.unescape(found.group(1))


def builder_config(response: Any) -> dict[str, Any]:
    found = _CONFIG.search(response.content.decode())
    assert found, "no builder-config on the page"
    config: dict[str, Any] = json.loads(found.group(1))
    return config


def shown_messages(response: Any) -> list[tuple[str, str]]:
    return [
        (level, html.unescape(text)) for level, text in _MESSAGES.findall(response.content.decode())
    ]


def own_segments() -> Any:
    # The shipped templates are segments too (a data migration makes them).
    return Segment.objects.filter(is_template=False)


def make_segment(name: str, definition: dict[str, Any] | None = None, **fields: Any) -> Segment:
    return Segment.objects.create(name=name, definition=definition or IN_SHANGHAI, **fields)


def add_refresh(segment: Segment, day: int, size: int, **fields: Any) -> SegmentRefresh:
    return SegmentRefresh.objects.create(
        segment=segment,
        started_at=at(day),
        as_of=at(day),
        finished_at=at(day),
        size=size,
        **fields,
    )


def form(definition: Any, **fields: Any) -> dict[str, Any]:
    data = {
        "name": "上海高消费",
        "description": "住在上海，花得多",
        "kind": "dynamic",
        "refresh_interval_minutes": "30",
        "definition": definition if isinstance(definition, str) else json.dumps(definition),
    }
    data.update(fields)
    return data


# Who may see what


@pytest.mark.parametrize(
    "url", ["/segments/", "/segments/new/", "/segments/{id}/", "/segments/{id}/edit/"]
)
def test_anonymous_visitors_are_sent_to_the_login_page(client: Client, db: None, url: str) -> None:
    segment = make_segment("上海")

    response = client.get(url.format(id=segment.pk))

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize(
    ("client_fixture", "can_create"),
    [("operator_client", True), ("manager_client", False), ("admin_client_role", True)],
    ids=["operator", "manager", "admin"],
)
def test_every_role_sees_the_list_and_only_editors_get_the_new_segment_button(
    request: pytest.FixtureRequest, db: None, client_fixture: str, can_create: bool
) -> None:
    client: Client = request.getfixturevalue(client_fixture)
    segment = make_segment("上海", size=1234)

    response = client.get("/segments/")

    assert response.status_code == 200
    assert str(segment.pk) in [pk for pk, _name in _ROWS.findall(response.content.decode())]
    assert ('data-testid="new-segment"' in response.content.decode()) is can_create
    assert (
        '<a href="/segments/" aria-current="page" data-nav="segments">Segments</a>'
        in response.content.decode()
    )


@pytest.mark.parametrize(
    ("client_fixture", "status"),
    [("operator_client", 200), ("manager_client", 403), ("admin_client_role", 200)],
    ids=["operator", "manager", "admin"],
)
def test_only_operators_and_admins_open_the_builder(
    request: pytest.FixtureRequest, db: None, client_fixture: str, status: int
) -> None:
    client: Client = request.getfixturevalue(client_fixture)
    segment = make_segment("上海")

    assert client.get("/segments/new/").status_code == status
    assert client.get(f"/segments/{segment.pk}/edit/").status_code == status


def test_a_manager_cannot_save_a_segment(manager_client: Client) -> None:
    segment = make_segment("上海")

    created = manager_client.post("/segments/new/", form(IN_SHANGHAI))
    changed = manager_client.post(f"/segments/{segment.pk}/edit/", form(NESTED, name="改名"))

    assert (created.status_code, changed.status_code) == (403, 403)
    assert list(own_segments().values_list("name", "definition")) == [("上海", IN_SHANGHAI)]


# The list


def test_the_list_shows_kind_size_last_refresh_and_owner(
    operator_client: Client, make_user: Callable[..., Any]
) -> None:
    owner = make_user("Operators", username="wang", first_name="芳", last_name="王")
    segment = make_segment("上海", size=1234, owner=owner)
    add_refresh(segment, 1, 1200, duration_ms=420)
    add_refresh(segment, 2, 1234, duration_ms=3400)

    response = operator_client.get("/segments/")

    row = re.search(
        rf'<tr data-segment-id="{segment.pk}">(.*?)</tr>', response.content.decode(), re.S
    )
    assert row
    assert text_of(row.group(1)) == [
        "上海",
        "Dynamic",
        "1,234",
        "2026-03-02 12:00",
        "· 3.4 s",
        "芳 王",
    ]


def test_the_trend_line_draws_the_last_20_refreshes(operator_client: Client) -> None:
    segment = make_segment("上海")
    for day in range(1, 26):
        add_refresh(segment, day, size=100 + day)

    response = operator_client.get("/segments/")

    sizes = re.search(r'data-sizes="([^"]*)"', response.content.decode())
    assert sizes
    assert sizes.group(1) == ",".join(str(100 + day) for day in range(6, 26))
    assert "Size over the last 20 refreshes: 106 to 125" in response.content.decode()


def test_a_failed_last_refresh_shows_an_error_badge_with_its_message(
    operator_client: Client,
) -> None:
    segment = make_segment("上海")
    add_refresh(segment, 1, 10)
    add_refresh(segment, 2, 0, error="segment 3 refers back to itself")

    response = operator_client.get("/segments/")

    badge = re.search(
        r'<span class="status status-failed" title="([^"]*)"', response.content.decode()
    )
    assert badge
    assert html.unescape(badge.group(1)) == "segment 3 refers back to itself"


@pytest.mark.parametrize("segments", [1, 6])
def test_the_list_costs_the_same_queries_for_1_or_6_segments(
    operator_client: Client, django_assert_num_queries: Any, segments: int
) -> None:
    for number in range(segments):
        segment = make_segment(f"分群{number}")
        for day in range(1, 4):
            add_refresh(segment, day, size=day)
    operator_client.get("/segments/")  # the session and the permissions are cached after this

    # session, user, segments with their owners, the last refreshes, groups (role badge),
    # the user's and the groups' permissions (the new segment button)
    with django_assert_num_queries(7):
        response = operator_client.get("/segments/")

    assert (
        len(_ROWS.findall(response.content.decode()))
        == segments + Segment.objects.filter(is_template=True).count()
    )


# The detail page


@pytest.fixture
def shanghai_segment(customer_factory: Any) -> Segment:
    segment = make_segment("上海", size=2, refreshed_at=at(2))
    for name in ("王芳", "李雷"):
        customer = customer_factory(name=name, city="上海", phone="+8613812345678")
        SegmentMember.objects.create(segment=segment, customer=customer, joined_at=at(1))
    add_refresh(segment, 1, 1, joined=1, duration_ms=80)
    add_refresh(segment, 2, 2, joined=1, duration_ms=90)
    add_refresh(segment, 3, 0, error="database is locked")
    return segment


def test_the_segment_page_shows_rules_members_masked_and_refreshes(
    operator_client: Client, shanghai_segment: Segment
) -> None:
    response = operator_client.get(f"/segments/{shanghai_segment.pk}/")

    page = response.content.decode()
    assert response.status_code == 200
    summary = re.search(r'<ul class="rule-summary">(.*?)</ul>\s*<details>', page, re.S)
    assert summary
    assert text_of(summary.group(1)) == ["All of these hold:", "City equals 上海"]
    assert re.findall(r'data-testid="member-phone">([^<]*)<', page) == ["138****5678"] * 2
    refreshes = re.search(r'<section id="segment-refreshes".*?<tbody>(.*?)</tbody>', page, re.S)
    assert refreshes
    assert text_of(refreshes.group(1)) == [
        "2026-03-03 12:00:00", "full", "0 ms", "—", "—", "—", "failed", "database is locked",
        "2026-03-02 12:00:00", "full", "90 ms", "2", "+1", "−0", "done",
        "2026-03-01 12:00:00", "full", "80 ms", "1", "+1", "−0", "done",
    ]  # fmt: skip
    chart = re.search(
        r'<script type="application/json" data-chart="segment-size-chart">(.*?)</script>',
        page,
        re.S,
    )
    assert chart
    figure = json.loads(chart.group(1))
    assert figure["data"][0]["y"] == [1, 2]
    assert figure["data"][1]["text"] == ["database is locked"]
    assert 'data-testid="export-csv"' in page
    assert 'data-testid="refresh-now"' in page


def test_admins_see_the_members_contacts_whole(
    admin_client_role: Client, shanghai_segment: Segment
) -> None:
    response = admin_client_role.get(f"/segments/{shanghai_segment.pk}/")

    phones = re.findall(r'data-testid="member-phone">([^<]*)<', response.content.decode())
    assert phones == ["+8613812345678"] * 2


def test_the_segment_page_names_the_segments_that_use_it(
    manager_client: Client, shanghai_segment: Segment
) -> None:
    make_segment("上海VIP", {"all": [{"segment": shanghai_segment.pk}, {"tag": "VIP"}]})
    make_segment("深层", {"any": [{"not": {"all": [{"segment": shanghai_segment.pk}]}}]})
    make_segment("无关", {"all": []})

    response = manager_client.get(f"/segments/{shanghai_segment.pk}/")

    used = re.search(
        r'<section id="segment-used-by".*?<ul class="plain-list">(.*?)</ul>',
        response.content.decode(),
        re.S,
    )
    assert used
    assert text_of(used.group(1)) == ["上海VIP", "(segment rules)", "深层", "(segment rules)"]
    assert 'data-testid="edit-segment"' not in response.content.decode()


@pytest.mark.parametrize("members", [2, 30])
def test_the_segment_page_costs_the_same_queries_for_2_or_30_members(
    operator_client: Client,
    customer_factory: Any,
    django_assert_num_queries: Any,
    members: int,
) -> None:
    segment = make_segment("上海", {"all": [{"segment": make_segment("北京").pk}]})
    for _ in range(members):
        SegmentMember.objects.create(segment=segment, customer=customer_factory(), joined_at=at(1))
    for day in range(1, 6):
        add_refresh(segment, day, size=members)
    operator_client.get(f"/segments/{segment.pk}/")

    # session, user, segment with its owner, member count, member page with customers,
    # refreshes, names of the segments referred to, segments referring to it, groups (role
    # badge), the user's and the groups' permissions
    with django_assert_num_queries(11):
        response = operator_client.get(f"/segments/{segment.pk}/")

    assert len(re.findall(r'data-testid="member-phone"', response.content.decode())) == min(
        members, 25
    )


# Explain


def test_explain_says_why_a_customer_is_not_in_the_segment(
    operator_client: Client, customer_factory: Any
) -> None:
    segment = make_segment(
        "上海VIP",
        {"all": [{"field": "city", "op": "eq", "value": "上海"}, {"tag": "VIP", "op": "absent"}]},
    )
    customer_factory(name="王芳", external_id="WF-1", city="北京")

    response = operator_client.get(
        f"/segments/{segment.pk}/explain/", {"customer": "王芳"}, headers={"HX-Request": "true"}
    )

    page = response.content.decode()
    verdict = re.search(r'data-testid="explain-verdict">(.*?)</p>', page, re.S)
    assert verdict
    assert text_of(verdict.group(1))[0] == "王芳 does not match these rules now."
    nodes = re.findall(r'<li class="explain-node explain-(pass|fail)" data-path="([^"]*)"', page)
    assert nodes == [("fail", ""), ("fail", "all[0]"), ("pass", "all[1]")]
    assert "City is 北京." in html.unescape(page)


@pytest.mark.parametrize("typed", ["²", "12\x003"], ids=["superscript-digit", "nul"])
def test_explain_for_text_that_names_nobody_says_so(
    operator_client: Client, shanghai_segment: Segment, typed: str
) -> None:
    response = operator_client.get(
        f"/segments/{shanghai_segment.pk}/explain/",
        {"customer": typed},
        headers={"HX-Request": "true"},
    )

    # 422: what htmx swaps in; the refusal of input that names nobody
    assert response.status_code == 422
    assert "No customer has the id, external id or name" in response.content.decode()
    assert "王芳" not in response.content.decode()


def test_explain_finds_a_customer_by_external_id_on_the_whole_page(
    operator_client: Client, shanghai_segment: Segment
) -> None:
    member = Customer.objects.get(name="王芳")

    response = operator_client.get(
        f"/segments/{shanghai_segment.pk}/", {"customer": member.external_id}
    )

    page = response.content.decode()
    verdict = re.search(r'data-testid="explain-verdict">(.*?)</p>', page, re.S)
    assert verdict
    assert text_of(verdict.group(1))[:2] == [
        "王芳 matches these rules now.",
        "A member as of the last refresh.",
    ]


def test_explain_names_an_unknown_customer(
    operator_client: Client, shanghai_segment: Segment
) -> None:
    response = operator_client.get(
        f"/segments/{shanghai_segment.pk}/explain/",
        {"customer": "nobody"},
        headers={"HX-Request": "true"},
    )

    assert response.status_code == 422
    assert text_of(response.content.decode()) == [
        "No customer has the id, external id or name nobody."
    ]


def test_explain_of_an_unknown_customer_without_htmx_is_the_page_with_a_400(
    operator_client: Client, shanghai_segment: Segment
) -> None:
    response = operator_client.get(f"/segments/{shanghai_segment.pk}/", {"customer": "nobody"})

    assert response.status_code == 400
    assert "No customer has the id, external id or name nobody." in response.content.decode()


# Saving from the builder


def test_an_operator_saves_a_new_segment_and_its_definition_is_the_posted_json(
    operator_client: Client, operator: Any
) -> None:
    response = operator_client.post("/segments/new/", form(NESTED))

    segment = own_segments().get()
    assert response.status_code == 302
    assert response["Location"] == f"/segments/{segment.pk}/"
    assert json.dumps(segment.definition, sort_keys=True) == json.dumps(NESTED, sort_keys=True)
    assert (segment.name, segment.description, segment.kind, segment.refresh_interval_minutes) == (
        "上海高消费",
        "住在上海，花得多",
        "dynamic",
        30,
    )
    assert segment.owner == operator
    assert shown_messages(operator_client.get(response["Location"])) == [
        ("success", "Segment 上海高消费 is saved; its members are being refreshed.")
    ]


def test_reopening_a_segment_gives_the_builder_the_stored_tree(operator_client: Client) -> None:
    operator_client.post("/segments/new/", form(NESTED))
    segment = own_segments().get()

    response = operator_client.get(f"/segments/{segment.pk}/edit/")

    assert json.loads(hidden_definition(response)) == NESTED
    assert json.dumps(json.loads(hidden_definition(response)), sort_keys=True) == json.dumps(
        NESTED, sort_keys=True
    )


def test_an_operator_changes_a_segment_from_the_builder(operator_client: Client) -> None:
    segment = make_segment("上海")
    changed = {"all": [{"field": "city", "op": "in", "value": ["上海", "杭州"]}]}

    response = operator_client.post(
        f"/segments/{segment.pk}/edit/", form(changed, name="长三角", kind="static")
    )

    segment.refresh_from_db()
    assert response.status_code == 302
    assert (segment.name, segment.kind, segment.definition) == ("长三角", "static", changed)


def test_a_bad_tree_is_refused_with_400_and_the_path_of_the_bad_node(
    operator_client: Client,
) -> None:
    bad = {
        "all": [
            {"field": "city", "op": "eq", "value": "上海"},
            {"field": "city", "op": "gt", "value": 3},
        ]
    }

    response = operator_client.post("/segments/new/", form(bad))

    assert response.status_code == 400
    assert save_errors(response) == [
        "The segment was not saved:",
        "all[1].op",
        ": 'gt' is not an op of text field 'city'",
    ]
    assert builder_config(response)["errors"] == [
        {"path": "all[1].op", "message": "'gt' is not an op of text field 'city'"}
    ]
    assert json.loads(hidden_definition(response)) == bad
    assert not own_segments().exists()


def test_a_definition_that_is_not_json_is_refused_with_400(operator_client: Client) -> None:
    response = operator_client.post("/segments/new/", form('{"all": [', name=""))

    assert response.status_code == 400
    assert save_errors(response) == [
        "The segment was not saved:",
        "The rules are not valid JSON: Expecting value: line 1 column 10 (char 9)",
    ]
    assert hidden_definition(response) == '{"all": ['
    assert not own_segments().exists()


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"name": " "}, "Enter a name."),
        (
            {"refresh_interval_minutes": "soon"},
            "Enter the refresh interval as a whole number of minutes.",
        ),
        ({"refresh_interval_minutes": "0"}, "Refresh every 1 to 10080 minutes."),
        ({"kind": "weekly"}, "weekly is not a kind of segment: choose dynamic or static."),
        ({"name": "上海\x00VIP"}, "A name cannot contain a NUL character."),
    ],
    ids=["name", "interval-text", "interval-range", "kind", "nul-name"],
)
def test_a_bad_form_field_is_refused_with_400_and_its_message(
    operator_client: Client, fields: dict[str, str], error: str
) -> None:
    response = operator_client.post("/segments/new/", form(IN_SHANGHAI, **fields))

    assert response.status_code == 400
    assert save_errors(response) == ["The segment was not saved:", error]
    assert not own_segments().exists()


def test_a_taken_name_is_refused_and_the_first_segment_is_unchanged(
    operator_client: Client,
) -> None:
    make_segment("上海高消费")

    response = operator_client.post("/segments/new/", form(NESTED))

    assert response.status_code == 400
    assert save_errors(response) == [
        "The segment was not saved:",
        "A segment named 上海高消费 already exists.",
    ]
    assert list(own_segments().values_list("definition", flat=True)) == [IN_SHANGHAI]


# The builder page


def test_the_builder_offers_fields_templates_and_other_segments(operator_client: Client) -> None:
    segment = make_segment("上海")
    other = make_segment("北京")

    response = operator_client.get(f"/segments/{segment.pk}/edit/")

    config = builder_config(response)
    fields = {field["key"]: field for field in config["fields"]}
    assert fields["city"]["type"] == "text"
    assert [op["op"] for op in fields["spend_90d"]["ops"]] == [
        "eq", "ne", "gt", "gte", "lt", "lte", "between",
    ]  # fmt: skip
    assert [choice["value"] for choice in fields["lifecycle_stage"]["choices"]] == [
        "new", "active", "silent", "lapsed", "prospect",
    ]  # fmt: skip
    templates = {template["name"]: template["definition"] for template in config["templates"]}
    assert templates["高价值客户"] == {
        "all": [{"field": "value_tier", "op": "in", "value": ["high"]}]
    }
    assert {"id": other.pk, "name": "北京", "kind": "dynamic"} in config["segments"]
    assert segment.pk not in [s["id"] for s in config["segments"]]
    assert config["urls"] == {
        "preview": "/api/v1/segments/preview",
        "values": "/segments/builder/values/",
    }


def test_the_builder_suggests_known_cities_tags_events_and_property_keys(
    operator_client: Client,
    customer_factory: Any,
    tag_factory: Any,
    event_factory: Any,
) -> None:
    shanghai = customer_factory(city="上海")
    customer_factory(city="北京")
    customer_factory(city="")
    for name in ("高价值", "VIP", "高潜"):
        tag_factory(name=name)
    event_factory(
        customer=shanghai, name="view_product", properties={"category": "美妆", "sku": "A1"}
    )
    event_factory(customer=shanghai, name="view_product", properties={"price": 99})
    event_factory(customer=shanghai, name="add_to_cart", properties={})

    def values(**params: str) -> Any:
        return operator_client.get("/segments/builder/values/", params).json()["values"]

    assert values(kind="city") == ["上海", "北京"]  # in code point order
    assert values(kind="tag", q="高") == ["高价值", "高潜"]
    assert values(kind="event") == ["add_to_cart", "view_product"]
    assert values(kind="event_property", event="view_product") == ["category", "price", "sku"]


def test_an_unknown_kind_of_values_is_a_400(operator_client: Client) -> None:
    response = operator_client.get("/segments/builder/values/", {"kind": "secrets"})

    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {"path": "kind", "message": "kind must be one of city, tag, event, event_property."}
        ]
    }


# Refresh now


@pytest.mark.parametrize("client_fixture", ["operator_client", "manager_client"])
def test_refresh_now_queues_a_refresh_of_a_dynamic_segment(
    request: pytest.FixtureRequest,
    db: None,
    client_fixture: str,
    rq_queues: dict[str, Queue],
    django_capture_on_commit_callbacks: Any,
) -> None:
    client: Client = request.getfixturevalue(client_fixture)
    segment = make_segment("上海")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/segments/{segment.pk}/refresh/")

    assert response.status_code == 302
    assert [job.func_name for job in rq_queues[SEGMENTS_QUEUE].jobs] == [
        "segments.jobs.refresh_segment_job"
    ]
    assert shown_messages(client.get(response["Location"])) == [
        ("success", "A refresh is queued; the size updates when it is done.")
    ]


def test_a_manager_cannot_take_a_new_snapshot_of_a_static_segment(
    manager_client: Client, rq_queues: dict[str, Queue], django_capture_on_commit_callbacks: Any
) -> None:
    segment = make_segment("快照", kind=SegmentKind.STATIC, refreshed_at=at(1))

    with django_capture_on_commit_callbacks(execute=True):
        response = manager_client.post(f"/segments/{segment.pk}/refresh/")

    assert response.status_code == 403
    assert rq_queues[SEGMENTS_QUEUE].jobs == []
