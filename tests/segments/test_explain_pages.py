from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from segments.models import Segment, SegmentKind, SegmentMember
from tests.factories import SHANGHAI

IN_SHANGHAI = {"all": [{"field": "city", "op": "eq", "value": "上海"}]}
IN_BEIJING = {"all": [{"field": "city", "op": "eq", "value": "北京"}]}
HTMX = {"HX-Request": "true", "HX-Target": "customer-segment-explain"}
_NODES = re.compile(r'<li class="explain-node explain-(pass|fail)" data-path="([^"]*)"')


@pytest.fixture(autouse=True)
def english(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"


def at(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, tzinfo=SHANGHAI)


def text_of(fragment: str) -> list[str]:
    text = re.sub(r"<[^>]+>", "\n", fragment)
    return [html.unescape(" ".join(line.split())) for line in text.splitlines() if line.strip()]


def section(page: str, section_id: str) -> str:
    found = re.search(rf'<section id="{section_id}".*?</section>', page, re.S)
    assert found is not None, f"no section #{section_id} on the page"
    return found.group(0)


def table_rows(fragment: str) -> list[list[str]]:
    body = re.search(r"<tbody>(.*?)</tbody>", fragment, re.S)
    assert body is not None, "no table body"
    return [
        [" ".join(text_of(cell)) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body.group(1), re.S)
    ]


def verdict(page: str, testid: str = "explain-verdict") -> list[str]:
    found = re.search(rf'data-testid="{testid}">(.*?)</p>', page, re.S)
    assert found is not None, "no verdict"
    return text_of(found.group(1))


def nodes(page: str) -> list[tuple[str, str]]:
    return _NODES.findall(page)


def options(page: str) -> list[tuple[str, str, bool]]:
    select = re.search(r'<select id="explain-segment".*?</select>', page, re.S)
    assert select is not None, "no segment select"
    return [
        (value, html.unescape(label), bool(selected))
        for value, selected, label in re.findall(
            r'<option value="([^"]*)"( selected)?>([^<]*)</option>', select.group(0)
        )
    ]


def builder_errors(page: str) -> list[tuple[str, str, str]]:
    return [
        (field, path, html.unescape(" ".join(re.sub(r"<[^>]+>", "", message).split())))
        for field, path, message in re.findall(
            r'<li data-field="(\w+)"(?: data-path="([^"]*)")?>(.*?)</li>', page, re.S
        )
    ]


def make_segment(name: str, definition: dict[str, Any] | None = None, **fields: Any) -> Segment:
    return Segment.objects.create(name=name, definition=definition or IN_SHANGHAI, **fields)


@pytest.fixture
def wang(customer_factory: Any) -> Any:
    return customer_factory(name="王芳", external_id="WF-1", city="上海")


@pytest.fixture
def li(customer_factory: Any) -> Any:
    return customer_factory(name="李雷", external_id="LL-1", city="北京")


@pytest.fixture
def shanghai(wang: Any) -> Segment:
    segment = make_segment("上海客户", refreshed_at=at(2))
    SegmentMember.objects.create(segment=segment, customer=wang, joined_at=at(1, 9))
    return segment


def customer_only_client(make_user: Callable[..., Any]) -> Client:
    user = make_user(None, username="viewer")
    user.user_permissions.add(Permission.objects.get(codename="view_customer"))
    client = Client()
    client.force_login(user)
    return client


# The segments card on the customer 360 page


def test_the_360_page_lists_the_segments_the_customer_is_in_with_kind_and_joined_at(
    operator_client: Client, wang: Any, li: Any, shanghai: Segment
) -> None:
    frozen = make_segment("三月快照", kind=SegmentKind.STATIC)
    SegmentMember.objects.create(segment=frozen, customer=wang, joined_at=at(3, 20))
    others = make_segment("北京客户", IN_BEIJING)
    SegmentMember.objects.create(segment=others, customer=li, joined_at=at(1))

    response = operator_client.get(f"/customers/{wang.pk}/")

    card = section(response.content.decode(), "customer-segments")
    assert table_rows(card) == [
        ["三月快照", "Static", "2026-03-03 20:00"],
        ["上海客户", "Dynamic", "2026-03-01 09:00"],
    ]
    assert f'href="/segments/{shanghai.pk}/"' in card
    assert f'href="/segments/{frozen.pk}/"' in card
    assert "北京客户</a>" not in card


def test_the_360_page_of_a_customer_in_no_segment_says_so(
    manager_client: Client, li: Any, shanghai: Segment
) -> None:
    response = manager_client.get(f"/customers/{li.pk}/")

    card = section(response.content.decode(), "customer-segments")
    assert "<table" not in card
    assert "In no segment." in text_of(card)


def test_the_segments_card_offers_every_segment_by_name_to_explain(
    admin_client_role: Client, wang: Any, shanghai: Segment
) -> None:
    make_segment("北京客户", IN_BEIJING)

    response = admin_client_role.get(f"/customers/{wang.pk}/")

    offered = options(response.content.decode())
    assert offered[0] == ("", "Choose a segment…", False)
    names = [label for _value, label, _selected in offered[1:]]
    assert names == sorted(Segment.objects.values_list("name", flat=True))
    assert ("北京客户", False) in [(label, selected) for _value, label, selected in offered]
    assert (str(shanghai.pk), "上海客户", False) in offered


@pytest.mark.parametrize(
    ("who", "expected_verdict", "expected_nodes", "reason"),
    [
        (
            "wang",
            ["王芳 matches these rules now.", "A member as of the last refresh.", "WF-1"],
            [("pass", ""), ("pass", "all[0]")],
            "City is 上海.",
        ),
        (
            "li",
            [
                "李雷 does not match these rules now.",
                "Not a member as of the last refresh.",
                "LL-1",
            ],
            [("fail", ""), ("fail", "all[0]")],
            "City is 北京.",
        ),
    ],
    ids=["holds", "does-not-hold"],
)
def test_the_360_explains_why_the_customer_is_in_a_segment_or_not(
    operator_client: Client,
    request: pytest.FixtureRequest,
    shanghai: Segment,
    li: Any,
    who: str,
    expected_verdict: list[str],
    expected_nodes: list[tuple[str, str]],
    reason: str,
) -> None:
    customer = request.getfixturevalue(who)

    response = operator_client.get(
        f"/customers/{customer.pk}/", {"segment": shanghai.pk}, headers=HTMX
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in page
    named = re.search(r'data-testid="explain-segment">(.*?)</p>', page, re.S)
    assert named is not None
    assert text_of(named.group(1)) == ["Segment", "上海客户"]
    assert verdict(page) == expected_verdict
    assert nodes(page) == expected_nodes
    assert reason in text_of(page)


def test_without_htmx_the_360_page_comes_whole_with_the_explanation_in_the_card(
    operator_client: Client, li: Any, shanghai: Segment
) -> None:
    response = operator_client.get(f"/customers/{li.pk}/", {"segment": str(shanghai.pk)})

    page = response.content.decode()
    assert response.status_code == 200
    card = section(page, "customer-segments")
    assert verdict(card) == [
        "李雷 does not match these rules now.",
        "Not a member as of the last refresh.",
        "LL-1",
    ]
    assert nodes(card) == [("fail", ""), ("fail", "all[0]")]
    assert (str(shanghai.pk), "上海客户", True) in options(page)
    assert 'id="customer-orders"' in page


@pytest.mark.parametrize(
    ("segment", "message"),
    [
        ("", "Choose a segment to explain."),
        ("abc", "Choose a segment from the list."),
        ("99999999999", "Choose a segment from the list."),
        ("987654", "There is no segment 987654."),
    ],
    ids=["empty", "not-a-number", "too-large", "unknown"],
)
@pytest.mark.parametrize(("headers", "status"), [({}, 400), (HTMX, 422)], ids=["page", "htmx"])
def test_a_segment_that_is_not_one_is_refused_with_the_reason(
    operator_client: Client,
    wang: Any,
    shanghai: Segment,
    segment: str,
    message: str,
    headers: dict[str, str],
    status: int,
) -> None:
    response = operator_client.get(f"/customers/{wang.pk}/", {"segment": segment}, headers=headers)

    page = response.content.decode()
    assert response.status_code == status
    error = re.search(r'data-testid="explain-error">(.*?)</p>', page, re.S)
    assert error is not None
    assert text_of(error.group(1)) == [message]
    assert "explain-verdict" not in page


def test_a_segment_whose_stored_rules_broke_says_why(
    operator_client: Client, wang: Any, shanghai: Segment
) -> None:
    broken = make_segment("坏的", {"all": [{"segment": shanghai.pk}]})
    Segment.objects.filter(pk=broken.pk).update(definition={"all": [{"segment": 987654}]})

    response = operator_client.get(f"/customers/{wang.pk}/", {"segment": broken.pk}, headers=HTMX)

    assert response.status_code == 200
    error = re.search(r'data-testid="explain-error">(.*?)</p>', response.content.decode(), re.S)
    assert error is not None
    assert text_of(error.group(1)) == ["all[0].segment: Segment 987654 does not exist."]


def test_without_the_segment_permission_there_is_no_card_and_explain_is_forbidden(
    make_user: Callable[..., Any], wang: Any, shanghai: Segment
) -> None:
    client = customer_only_client(make_user)

    page = client.get(f"/customers/{wang.pk}/")
    explained = client.get(f"/customers/{wang.pk}/", {"segment": shanghai.pk}, headers=HTMX)
    whole = client.get(f"/customers/{wang.pk}/", {"segment": shanghai.pk})

    assert page.status_code == 200
    assert 'id="customer-segments"' not in page.content.decode()
    assert "上海客户" not in page.content.decode()
    assert explained.status_code == 403
    assert whole.status_code == 403
    assert "上海客户" not in explained.content.decode()


def test_explaining_for_an_unknown_customer_is_a_404(
    operator_client: Client, shanghai: Segment
) -> None:
    response = operator_client.get("/customers/987654/", {"segment": shanghai.pk}, headers=HTMX)

    assert response.status_code == 404


@pytest.mark.parametrize("segments", [1, 12], ids=["1-segment", "12-segments"])
def test_the_360_page_and_its_explain_cost_the_same_queries_however_many_segments(
    operator_client: Client,
    wang: Any,
    shanghai: Segment,
    django_assert_num_queries: Any,
    segments: int,
) -> None:
    for number in range(segments):
        extra = make_segment(f"段{number:02d}", IN_BEIJING)
        SegmentMember.objects.create(segment=extra, customer=wang, joined_at=at(1))
    operator_client.get("/")

    # the 360 page's 16 (tests/console/test_views.py), one of them the segments card's
    with django_assert_num_queries(16):
        page = operator_client.get(f"/customers/{wang.pk}/")
    # session, user, the user's and the groups' permissions, customer, segment, the rule's
    # snapshot of the customer (row, metrics, membership, tags, static segments), the one leaf,
    # the stored membership
    with django_assert_num_queries(13):
        explained = operator_client.get(
            f"/customers/{wang.pk}/", {"segment": shanghai.pk}, headers=HTMX
        )

    assert len(table_rows(section(page.content.decode(), "customer-segments"))) == segments + 1
    assert nodes(explained.content.decode()) == [("pass", ""), ("pass", "all[0]")]


# The builder: explain the unsaved tree


def explain_in_builder(client: Client, rules: Any, customer: str, **fields: str) -> Any:
    data = {"rules": rules if isinstance(rules, str) else json.dumps(rules), "customer": customer}
    data.update(fields)
    return client.post("/segments/builder/explain/", data)


def test_the_builder_has_a_box_that_explains_the_rules_being_edited(
    operator_client: Client, shanghai: Segment
) -> None:
    new = operator_client.get("/segments/new/").content.decode()
    edit = operator_client.get(f"/segments/{shanghai.pk}/edit/").content.decode()

    assert 'data-url="/segments/builder/explain/" data-segment=""' in new
    assert f'data-url="/segments/builder/explain/" data-segment="{shanghai.pk}"' in edit
    assert 'id="builder-explain-customer"' in new


@pytest.mark.parametrize(
    ("rules", "expected_verdict", "expected_nodes"),
    [
        (IN_SHANGHAI, "李雷 does not match these rules now.", [("fail", ""), ("fail", "all[0]")]),
        (IN_BEIJING, "李雷 matches these rules now.", [("pass", ""), ("pass", "all[0]")]),
        (
            {"any": [IN_SHANGHAI, {"not": {"tag": "黑名单"}}]},
            "李雷 matches these rules now.",
            [
                ("pass", ""),
                ("fail", "any[0]"),
                ("fail", "any[0].all[0]"),
                ("pass", "any[1]"),
                ("fail", "any[1].not"),
            ],
        ),
    ],
    ids=["fails", "holds", "nested"],
)
def test_the_builder_explains_the_posted_tree_for_a_customer(
    operator_client: Client,
    li: Any,
    rules: dict[str, Any],
    expected_verdict: str,
    expected_nodes: list[tuple[str, str]],
) -> None:
    response = explain_in_builder(operator_client, rules, "李雷")

    page = response.content.decode()
    assert response.status_code == 200
    assert verdict(page, "builder-explain-verdict") == [expected_verdict, "LL-1"]
    assert nodes(page) == expected_nodes
    assert "City is 北京." in text_of(page)


@pytest.mark.parametrize("typed", ["WF-1", "{pk}", "王芳"], ids=["external-id", "id", "name"])
def test_the_builder_finds_the_customer_by_external_id_id_or_name(
    manager_client: Client, wang: Any, typed: str
) -> None:
    response = explain_in_builder(manager_client, IN_SHANGHAI, typed.format(pk=wang.pk))

    assert response.status_code == 200
    assert verdict(response.content.decode(), "builder-explain-verdict") == [
        "王芳 matches these rules now.",
        "WF-1",
    ]


def test_a_bad_tree_is_a_400_with_each_error_at_its_path(
    operator_client: Client, wang: Any
) -> None:
    rules = {"all": [{"field": "city", "op": "gt", "value": 3}, {"field": "nope", "op": "eq"}]}

    response = explain_in_builder(operator_client, rules, "王芳")

    assert response.status_code == 400
    errors = builder_errors(response.content.decode())
    assert [(field, path) for field, path, _message in errors] == [
        ("rules", "all[0].op"),
        ("rules", "all[1].field"),
    ]
    assert errors[0][2] == "all[0].op: 'gt' is not an op of text field 'city'"
    assert "explain-tree" not in response.content.decode()


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("nobody", "No customer has the id, external id or name nobody."),
        ("", "Type a customer's id, external id or name."),
        ("   ", "Type a customer's id, external id or name."),
        ("12\x003", "No customer has the id, external id or name 12\x003."),
        ("²", "No customer has the id, external id or name ²."),
    ],
    ids=["unknown", "empty", "blank", "nul", "superscript-digit"],
)
def test_a_customer_nobody_is_is_a_400_that_says_so(
    operator_client: Client, wang: Any, typed: str, message: str
) -> None:
    response = explain_in_builder(operator_client, IN_SHANGHAI, typed)

    assert response.status_code == 400
    assert builder_errors(response.content.decode()) == [("customer", "", message)]


def test_namesakes_are_a_400_asking_for_an_external_id(
    operator_client: Client, customer_factory: Any
) -> None:
    customer_factory(name="张伟", external_id="ZW-1")
    customer_factory(name="张伟", external_id="ZW-2")

    response = explain_in_builder(operator_client, IN_SHANGHAI, "张伟")

    assert response.status_code == 400
    assert builder_errors(response.content.decode()) == [
        ("customer", "", "2 customers are named 张伟: type an external id instead.")
    ]


def test_an_unknown_customer_and_a_bad_tree_are_named_together(operator_client: Client) -> None:
    response = explain_in_builder(operator_client, {"all": [{"tag": ""}]}, "nobody")

    assert response.status_code == 400
    assert [
        (field, path) for field, path, _message in builder_errors(response.content.decode())
    ] == [
        ("customer", ""),
        ("rules", "all[0].tag"),
    ]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("{not json", "The rules are not valid JSON: "),
        ('{"all": [NaN]}', "The rules are not valid JSON: NaN is not a JSON value."),
        ("", "The rules are missing."),
    ],
    ids=["broken", "nan", "missing"],
)
def test_rules_that_are_not_json_are_a_400(
    operator_client: Client, wang: Any, rules: str, message: str
) -> None:
    response = explain_in_builder(operator_client, rules, "王芳")

    assert response.status_code == 400
    [(field, _path, shown)] = builder_errors(response.content.decode())
    assert field == "rules"
    assert shown.startswith(message)


def test_a_tree_that_refers_back_to_the_segment_being_edited_is_a_400(
    operator_client: Client, wang: Any, shanghai: Segment
) -> None:
    rules = {"all": [{"segment": shanghai.pk}]}

    edited = explain_in_builder(operator_client, rules, "王芳", segment=str(shanghai.pk))
    new = explain_in_builder(operator_client, rules, "王芳")
    bad = explain_in_builder(operator_client, rules, "王芳", segment="x")

    assert edited.status_code == 400
    assert builder_errors(edited.content.decode()) == [
        (
            "rules",
            "all[0].segment",
            f"all[0].segment: Segment {shanghai.pk} refers to itself.",
        )
    ]
    assert new.status_code == 200
    assert bad.status_code == 400
    assert builder_errors(bad.content.decode()) == [
        ("segment", "", "segment must be the id of the segment being edited.")
    ]


def test_the_builder_explain_needs_the_segment_permission_and_post(
    make_user: Callable[..., Any], operator_client: Client, wang: Any
) -> None:
    client = customer_only_client(make_user)

    forbidden = explain_in_builder(client, IN_SHANGHAI, "王芳")
    got = operator_client.get("/segments/builder/explain/", {"customer": "王芳"})

    assert forbidden.status_code == 403
    assert "王芳" not in forbidden.content.decode()
    assert got.status_code == 405


def test_the_builder_explain_checks_csrf(operator: Any, wang: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)

    response = explain_in_builder(client, IN_SHANGHAI, "王芳")

    assert response.status_code == 403
