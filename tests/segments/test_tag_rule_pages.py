from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Callable
from typing import Any, cast

import pytest
from django.test import Client
from rq import Queue, SimpleWorker

from customers.models import Customer, CustomerTag, Tag
from segments.jobs import SEGMENTS_QUEUE
from segments.models import Segment, TagRule
from tests.factories import SHANGHAI, CustomerFactory, CustomerTagFactory, TagFactory

LIST_URL = "/segments/tags/"
NEW_URL = "/segments/tags/new/"
IN_SHANGHAI = {"all": [{"field": "city", "op": "eq", "value": "上海"}]}
IN_BEIJING = {"all": [{"field": "city", "op": "eq", "value": "北京"}]}
APPLIED_AT = dt.datetime(2026, 3, 2, 9, 30, tzinfo=SHANGHAI)

_HIDDEN = re.compile(
    r'<input type="hidden" name="definition" id="builder-definition" value="([^"]*)">'
)
_CONFIG = re.compile(r'<script id="builder-config" type="application/json">(.*?)</script>', re.S)
_ERRORS = re.compile(
    r'<div class="form-errors" role="alert" data-testid="save-errors">(.*?)</div>', re.S
)
_MESSAGES = re.compile(r'<p class="message message-(\w+)">([^<]*)</p>')
_ROW = re.compile(r'<tr data-tag-rule-id="(\d+)">(.*?)</tr>', re.S)
_CELL = re.compile(r"<td[^>]*>(.*?)</td>", re.S)


@pytest.fixture(autouse=True)
def english(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"


@pytest.fixture
def segments_queue(rq_queues: dict[str, Queue]) -> Queue:
    return rq_queues[SEGMENTS_QUEUE]


def drain(queue: Queue) -> None:
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def text(fragment: str) -> str:
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", fragment).split()))


def lines(fragment: str) -> list[str]:
    found = re.sub(r"<[^>]+>", "\n", fragment)
    return [html.unescape(" ".join(line.split())) for line in found.splitlines() if line.strip()]


def save_errors(response: Any) -> list[str]:
    found = _ERRORS.search(response.content.decode())
    return lines(found.group(1)) if found else []


def messages_of(response: Any) -> list[tuple[str, str]]:
    return [
        (kind, html.unescape(words)) for kind, words in _MESSAGES.findall(response.content.decode())
    ]


def builder_config(response: Any) -> dict[str, Any]:
    found = _CONFIG.search(response.content.decode())
    assert found is not None
    return cast(dict[str, Any], json.loads(found.group(1)))


def hidden_definition(response: Any) -> str:
    found = _HIDDEN.search(response.content.decode())
    assert found is not None
    return html.unescape(found.group(1))


def list_rows(response: Any) -> dict[str, list[str]]:
    """Each rule's row by tag: tag, rules, active, customers tagged, last applied, last error."""
    rows = {}
    for _rule_id, row in _ROW.findall(response.content.decode()):
        cells = [text(cell) for cell in _CELL.findall(row)]
        rows[cells[0]] = cells[1:6]
    return rows


def form(definition: Any, *, tag: str = "上海人", is_active: bool = True) -> dict[str, str]:
    data = {
        "tag": tag,
        "definition": definition if isinstance(definition, str) else json.dumps(definition),
    }
    if is_active:
        data["is_active"] = "on"
    return data


def make_rule(tag_name: str, definition: dict[str, Any], **fields: Any) -> TagRule:
    tag = cast(Tag, TagFactory(name=tag_name))
    return TagRule.objects.create(tag=tag, definition=definition, **fields)


def customer(external_id: str, city: str) -> Customer:
    return cast(Customer, CustomerFactory(external_id=external_id, city=city))


def tagged(tag_name: str) -> list[tuple[str, str]]:
    return sorted(
        CustomerTag.objects.filter(tag__name=tag_name).values_list(
            "customer__external_id", "source"
        )
    )


def client_of(make_user: Callable[..., Any], role: str | None) -> Client:
    client = Client()
    client.force_login(make_user(role, username=f"user-{role}"))
    return client


# --- the list ----------------------------------------------------------------------------------


def test_the_list_shows_each_rule_its_summary_state_customers_tagged_and_errors(
    operator_client: Client,
) -> None:
    # given
    shanghai = make_rule("上海人", IN_SHANGHAI, last_applied_at=APPLIED_AT)
    make_rule(
        "北京人",
        IN_BEIJING,
        is_active=False,
        last_error="segment 7 does not exist",
    )
    for number in range(3):
        CustomerTagFactory(customer=customer(f"S{number}", "上海"), tag=shanghai.tag, source="rule")
    # a tag given by hand is not the rule's
    CustomerTagFactory(customer=customer("M1", "北京"), tag=shanghai.tag, source="manual")

    # when
    response = operator_client.get(LIST_URL)

    # then
    assert response.status_code == 200
    assert list_rows(response) == {
        "上海人": ["All of these hold: City equals 上海", "active", "3", "2026-03-02 09:30", "—"],
        "北京人": [
            "All of these hold: City equals 北京",
            "paused",
            "0",
            "never",
            "failed segment 7 does not exist",
        ],
    }
    content = response.content.decode()
    assert f'href="/segments/tags/{shanghai.pk}/edit/"' in content
    assert f'action="/segments/tags/{shanghai.pk}/apply/"' in content
    assert 'data-testid="new-tag-rule"' in content


def test_the_list_names_the_segments_the_rules_refer_to(operator_client: Client) -> None:
    # given
    segment = Segment.objects.create(name="上海", definition=IN_SHANGHAI)
    make_rule("老顾客", {"all": [{"segment": segment.pk}]})

    # when
    response = operator_client.get(LIST_URL)

    # then
    assert list_rows(response)["老顾客"][0] == f"All of these hold: In segment 上海 (#{segment.pk})"


@pytest.mark.parametrize("rules", [1, 6])
def test_the_list_costs_the_same_queries_for_1_or_6_rules(
    operator_client: Client, django_assert_num_queries: Any, rules: int
) -> None:
    # given
    segment = Segment.objects.create(name="上海", definition=IN_SHANGHAI)
    for number in range(rules):
        rule = make_rule(f"标签{number}", {"all": [{"segment": segment.pk}]})
        CustomerTagFactory(customer=customer(f"C{number}", "上海"), tag=rule.tag, source="rule")
    operator_client.get(LIST_URL)  # the session and the permissions are cached after this

    # when / then: session, user, the user's and the groups' permissions, the rules with their
    # tags, one GROUP BY of the rule-made tags, the segment names, groups (role badge)
    with django_assert_num_queries(8):
        response = operator_client.get(LIST_URL)
    assert len(list_rows(response)) == rules


def test_the_segment_list_links_to_the_tag_rules(operator_client: Client) -> None:
    response = operator_client.get("/segments/")

    assert (
        f'<a href="{LIST_URL}" class="button" data-testid="tag-rules-link">Tag rules</a>'
        in response.content.decode()
    )


# --- new and edit pages --------------------------------------------------------------------------


def test_the_new_page_mounts_the_rule_builder_with_its_config(operator_client: Client) -> None:
    # when
    response = operator_client.get(NEW_URL)

    # then
    content = response.content.decode()
    assert response.status_code == 200
    assert json.loads(hidden_definition(response)) == {"all": []}
    assert '<div id="rule-builder" class="rule-builder" data-testid="rule-builder">' in content
    assert '<form method="post" id="segment-form"' in content
    assert re.search(r'<script src="/static/js/builder\.js[^"]*" defer></script>', content)
    config = builder_config(response)
    assert config["urls"] == {
        "preview": "/api/v1/segments/preview",
        "values": "/segments/builder/values/",
    }
    assert "city" in {field["key"] for field in config["fields"]}
    assert config["errors"] == []
    assert 'name="is_active" checked' in content


def test_an_operator_creates_a_rule_and_the_queued_job_tags_the_matching_customers(
    operator_client: Client,
    segments_queue: Queue,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given
    customer("C1", "上海")
    customer("C2", "北京")

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(NEW_URL, form(IN_SHANGHAI, tag="  上海人 "))

    # then
    assert response.status_code == 302
    assert response["Location"] == LIST_URL
    rule = TagRule.objects.get(tag__name="上海人")
    assert (rule.definition, rule.is_active) == (IN_SHANGHAI, True)
    assert [job.func_name for job in segments_queue.jobs] == ["segments.jobs.apply_tag_rule_job"]
    assert tagged("上海人") == []

    drain(segments_queue)

    assert tagged("上海人") == [("C1", "rule")]
    page = operator_client.get(LIST_URL)
    assert messages_of(page) == [
        ("success", "The rule of tag 上海人 is saved; it is being applied to every customer.")
    ]
    assert list_rows(page)["上海人"][1:3] == ["active", "1"]


def test_a_rule_may_take_an_existing_tag_without_a_rule(
    operator_client: Client, rq_queues: dict[str, Queue]
) -> None:
    # given
    TagFactory(name="上海人")

    # when
    response = operator_client.post(NEW_URL, form(IN_SHANGHAI, is_active=False))

    # then
    assert response.status_code == 302
    assert TagRule.objects.get(tag__name="上海人").is_active is False
    assert Tag.objects.filter(name="上海人").count() == 1


def test_a_bad_tree_is_refused_with_400_and_the_path_of_the_bad_node(
    operator_client: Client,
    rq_queues: dict[str, Queue],
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given
    bad = {
        "all": [
            {"field": "city", "op": "eq", "value": "上海"},
            {"field": "city", "op": "gt", "value": 3},
        ]
    }

    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = operator_client.post(NEW_URL, form(bad))

    # then
    assert response.status_code == 400
    assert save_errors(response) == [
        "The tag rule was not saved:",
        "all[1].op",
        ": 'gt' is not an op of text field 'city'",
    ]
    assert builder_config(response)["errors"] == [
        {"path": "all[1].op", "message": "'gt' is not an op of text field 'city'"}
    ]
    assert json.loads(hidden_definition(response)) == bad
    assert 'name="tag" value="上海人"' in response.content.decode()
    assert not TagRule.objects.exists()
    assert not Tag.objects.filter(name="上海人").exists()
    assert callbacks == []


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        (
            form('{"all": ['),
            ["Rules: The rules are not valid JSON: Expecting value: line 1 column 10 (char 9)"],
        ),
        (form('{"all": [{"field": "spend_90d", "op": "gt", "value": NaN}]}'), None),
        (form(IN_SHANGHAI, tag="   "), ["Tag: Enter a tag."]),
        (form(IN_SHANGHAI, tag="标" * 65), ["Tag: A tag has at most 64 characters."]),
        (form(IN_SHANGHAI, tag="上海\x00人"), ["Tag: A tag cannot contain a NUL character."]),
        (
            form({"all": [{"field": "city", "op": "eq", "value": "上\x00海"}]}),
            ["all[0].value", ": The text contains a NUL character."],
        ),
        (
            form({"all": [{"tag": "上海人"}]}),
            ["Rules: A tag rule cannot test its own tag 上海人."],
        ),
        (form([1, 2]), ["A rule must be a JSON object, not a list."]),
    ],
    ids=[
        "not-json",
        "nan",
        "no-tag",
        "long-tag",
        "nul-in-tag",
        "nul-in-rules",
        "own-tag",
        "not-an-object",
    ],
)
def test_bad_input_is_refused_with_400_naming_the_field_and_nothing_is_saved(
    operator_client: Client, data: dict[str, str], errors: list[str] | None
) -> None:
    # when
    response = operator_client.post(NEW_URL, data)

    # then
    assert response.status_code == 400
    found = save_errors(response)
    assert found[0] == "The tag rule was not saved:"
    if errors is not None:
        assert found[1:] == errors
    else:
        assert found[1] == "Rules: The rules are not valid JSON: NaN is not a JSON value."
    assert not TagRule.objects.exists()


def test_a_second_rule_for_a_tag_is_refused_with_400_on_the_tag_field(
    operator_client: Client, rq_queues: dict[str, Queue]
) -> None:
    # given
    make_rule("上海人", IN_SHANGHAI)

    # when
    response = operator_client.post(NEW_URL, form(IN_BEIJING, tag="上海人"))

    # then
    assert response.status_code == 400
    assert save_errors(response) == [
        "The tag rule was not saved:",
        "Tag: Tag 上海人 already has a rule.",
    ]
    assert re.search(
        r'<p class="field-error" id="tag-rule-tag-error">Tag 上海人 already has a rule\.</p>',
        response.content.decode(),
    )
    assert TagRule.objects.get().definition == IN_SHANGHAI


def test_the_edit_page_shows_the_saved_tree_and_the_tag_read_only(operator_client: Client) -> None:
    # given
    rule = make_rule("上海人", IN_SHANGHAI)

    # when
    response = operator_client.get(f"/segments/tags/{rule.pk}/edit/")

    # then
    content = response.content.decode()
    assert response.status_code == 200
    assert json.loads(hidden_definition(response)) == IN_SHANGHAI
    assert '<input type="text" id="tag-rule-tag" value="上海人" readonly' in content
    assert 'name="tag"' not in content


def test_an_operator_edits_the_rule_and_the_job_re_applies_it(
    operator_client: Client,
    segments_queue: Queue,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given
    customer("C1", "上海")
    customer("C2", "北京")
    rule = make_rule("本地人", IN_SHANGHAI)
    with django_capture_on_commit_callbacks(execute=True):
        operator_client.post(f"/segments/tags/{rule.pk}/apply/")
    drain(segments_queue)
    assert tagged("本地人") == [("C1", "rule")]

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(
            f"/segments/tags/{rule.pk}/edit/", form(IN_BEIJING, tag="ignored")
        )
    drain(segments_queue)

    # then
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.tag.name, rule.definition) == ("本地人", IN_BEIJING)
    assert tagged("本地人") == [("C2", "rule")]


def test_pausing_a_rule_queues_nothing_and_keeps_its_tags(
    operator_client: Client,
    segments_queue: Queue,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given
    shanghai = customer("C1", "上海")
    rule = make_rule("上海人", IN_SHANGHAI)
    CustomerTagFactory(customer=shanghai, tag=rule.tag, source="rule")

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(
            f"/segments/tags/{rule.pk}/edit/", form(IN_BEIJING, is_active=False), follow=True
        )

    # then
    assert messages_of(response) == [
        ("success", "The rule of tag 上海人 is saved and paused: it changes no tags.")
    ]
    assert segments_queue.count == 0
    rule.refresh_from_db()
    assert (rule.is_active, rule.definition) == (False, IN_BEIJING)
    assert tagged("上海人") == [("C1", "rule")]


def test_a_bad_tree_on_the_edit_page_leaves_the_rule_as_it_was(operator_client: Client) -> None:
    # given
    rule = make_rule("上海人", IN_SHANGHAI)

    # when
    response = operator_client.post(
        f"/segments/tags/{rule.pk}/edit/",
        form({"all": [{"field": "nope", "op": "eq", "value": 1}]}),
    )

    # then
    assert response.status_code == 400
    assert save_errors(response)[1:] == ["all[0].field", ": Unknown field 'nope'."]
    rule.refresh_from_db()
    assert rule.definition == IN_SHANGHAI


# --- apply now and delete ------------------------------------------------------------------------


def test_apply_now_queues_the_rule_and_a_worker_applies_it(
    operator_client: Client,
    segments_queue: Queue,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given
    customer("C1", "上海")
    rule = make_rule("上海人", IN_SHANGHAI)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(f"/segments/tags/{rule.pk}/apply/", follow=True)

    # then
    assert messages_of(response) == [
        ("success", "The rule of tag 上海人 is being applied to every customer.")
    ]
    assert [job.args for job in segments_queue.jobs] == [(rule.pk,)]
    drain(segments_queue)
    assert tagged("上海人") == [("C1", "rule")]
    rule.refresh_from_db()
    assert rule.last_applied_at is not None
    assert list_rows(operator_client.get(LIST_URL))["上海人"][2] == "1"


def test_apply_now_on_a_paused_rule_is_refused_with_400(
    operator_client: Client, segments_queue: Queue, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    rule = make_rule("上海人", IN_SHANGHAI, is_active=False)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(f"/segments/tags/{rule.pk}/apply/")

    # then
    assert response.status_code == 400
    assert messages_of(response) == [("error", "The rule of 上海人 is paused: activate it first.")]
    assert segments_queue.count == 0


def test_delete_asks_first_then_removes_the_rule_and_only_its_own_tags(
    operator_client: Client,
) -> None:
    # given
    rule = make_rule("上海人", IN_SHANGHAI)
    CustomerTagFactory(customer=customer("C1", "上海"), tag=rule.tag, source="rule")
    CustomerTagFactory(customer=customer("C2", "上海"), tag=rule.tag, source="rule")
    CustomerTagFactory(customer=customer("C3", "北京"), tag=rule.tag, source="manual")

    # when
    confirm = operator_client.get(f"/segments/tags/{rule.pk}/delete/")

    # then
    assert confirm.status_code == 200
    consequence = re.search(r'data-testid="delete-consequence">(.*?)</p>', confirm.content.decode())
    assert consequence is not None
    assert text(consequence.group(1)) == (
        "2 customers have the tag 上海人 from this rule and lose it. "
        "Tags given by hand or by an import stay."
    )
    assert TagRule.objects.exists()

    # when
    response = operator_client.post(f"/segments/tags/{rule.pk}/delete/", follow=True)

    # then
    assert response.redirect_chain == [(LIST_URL, 302)]
    assert messages_of(response) == [
        ("success", "The rule of tag 上海人 is deleted; 2 customers lost the tag it gave.")
    ]
    assert not TagRule.objects.exists()
    assert tagged("上海人") == [("C3", "manual")]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/segments/tags/999/edit/"),
        ("post", "/segments/tags/999/edit/"),
        ("get", "/segments/tags/999/delete/"),
        ("post", "/segments/tags/999/delete/"),
        ("post", "/segments/tags/999/apply/"),
    ],
    ids=["edit", "save", "confirm", "delete", "apply"],
)
def test_an_unknown_rule_is_a_404(operator_client: Client, method: str, path: str) -> None:
    response = getattr(operator_client, method)(path, form(IN_SHANGHAI) if method == "post" else {})

    assert response.status_code == 404


# --- permissions -------------------------------------------------------------------------------


def test_a_manager_reads_the_list_but_may_not_change_anything(
    manager_client: Client, rq_queues: dict[str, Queue]
) -> None:
    # given
    rule = make_rule("上海人", IN_SHANGHAI)

    # when
    listed = manager_client.get(LIST_URL)
    refused = [
        manager_client.get(NEW_URL).status_code,
        manager_client.post(NEW_URL, form(IN_BEIJING, tag="北京人")).status_code,
        manager_client.get(f"/segments/tags/{rule.pk}/edit/").status_code,
        manager_client.post(f"/segments/tags/{rule.pk}/edit/", form(IN_BEIJING)).status_code,
        manager_client.post(f"/segments/tags/{rule.pk}/apply/").status_code,
        manager_client.post(f"/segments/tags/{rule.pk}/delete/").status_code,
    ]

    # then
    content = listed.content.decode()
    assert listed.status_code == 200
    assert list(list_rows(listed)) == ["上海人"]
    for action in ("new-tag-rule", "edit-tag-rule", "apply-tag-rule", "delete-tag-rule"):
        assert f'data-testid="{action}"' not in content
    assert refused == [403] * 6
    assert TagRule.objects.get().definition == IN_SHANGHAI
    assert rq_queues[SEGMENTS_QUEUE].count == 0


def test_a_user_without_a_role_may_not_see_the_tag_rules(make_user: Callable[..., Any]) -> None:
    client = client_of(make_user, None)

    assert client.get(LIST_URL).status_code == 403
    assert client.post(NEW_URL, form(IN_SHANGHAI)).status_code == 403
