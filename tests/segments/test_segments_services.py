from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone, translation
from rq import Queue

from customers.models import Customer
from segments.jobs import SEGMENTS_QUEUE
from segments.models import Segment, SegmentMember, TagRule
from segments.rules import RulesInvalid, validate_rules
from segments.services.refresh import SegmentIsFrozen, refresh_segment_members
from segments.services.segments import (
    create_segment,
    delete_segment,
    request_segment_refresh,
    resnapshot_segment,
    update_segment,
)
from segments.services.templates import TEMPLATES
from tests.factories import SHANGHAI, CustomerFactory, EventFactory, OrderFactory, TagFactory

AS_OF = dt.datetime(2026, 11, 20, 12, 0, tzinfo=SHANGHAI)
IN_SHANGHAI = {"all": [{"field": "city", "op": "eq", "value": "上海"}]}
IN_BEIJING = {"all": [{"field": "city", "op": "eq", "value": "北京"}]}
BAD_OP = {"all": [{"field": "city", "op": "gt", "value": "上海"}]}


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    # Messages are asserted in their English source strings.
    with translation.override("en"):
        yield


@pytest.fixture
def segments_queue(rq_queues: dict[str, Queue]) -> Queue:
    return rq_queues[SEGMENTS_QUEUE]


def queued(queue: Queue) -> list[Any]:
    return [job.args for job in queue.jobs]


def members(segment: Segment) -> list[str]:
    return sorted(
        SegmentMember.objects.filter(segment=segment).values_list(
            "customer__external_id", flat=True
        )
    )


# Creating


def test_an_operator_creates_a_segment_and_its_first_refresh_is_queued_on_commit(
    operator: Any, segments_queue: Queue, django_capture_on_commit_callbacks: Any
) -> None:
    # when
    with django_capture_on_commit_callbacks(execute=True):
        segment = create_segment(
            name=" 上海客户 ",
            description="住在上海",
            definition=IN_SHANGHAI,
            actor=operator,
        )

    # then
    segment.refresh_from_db()
    assert (segment.name, segment.description, segment.kind, segment.owner) == (
        "上海客户",
        "住在上海",
        "dynamic",
        operator,
    )
    assert (segment.size, segment.refreshed_at, segment.refresh_interval_minutes) == (0, None, 60)
    assert queued(segments_queue) == [(segment.pk, None, False)]


@pytest.mark.parametrize("role", ["Managers", None], ids=["manager", "no-role"])
def test_only_operators_and_admins_may_create_segments(make_user: Any, role: str | None) -> None:
    # given
    user = make_user(role)

    # when / then
    with pytest.raises(PermissionDenied):
        create_segment(name="上海客户", definition=IN_SHANGHAI, actor=user)
    assert not Segment.objects.filter(is_template=False).exists()


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"name": "  "}, {"name": ["Enter a name."]}),
        ({"name": "x" * 101}, {"name": ["A name has at most 100 characters."]}),
        ({"name": "已有"}, {"name": ["A segment named 已有 already exists."]}),
        (
            {"kind": "frozen"},
            {"kind": ["frozen is not a kind of segment: choose dynamic or static."]},
        ),
        (
            {"refresh_interval_minutes": 0},
            {"refresh_interval_minutes": ["Refresh every 1 to 10080 minutes."]},
        ),
    ],
    ids=["blank-name", "long-name", "taken-name", "kind", "interval"],
)
def test_a_segment_with_a_bad_field_is_refused_naming_the_field(
    operator: Any, fields: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    # given
    Segment.objects.create(name="已有", definition=IN_SHANGHAI)
    arguments = {"name": "上海客户", "definition": IN_SHANGHAI, **fields}

    # when
    with pytest.raises(ValidationError) as raised:
        create_segment(actor=operator, **arguments)

    # then
    assert raised.value.message_dict == errors
    assert Segment.objects.filter(is_template=False).count() == 1


def test_a_segment_with_bad_rules_is_refused_with_the_path_of_the_bad_node(
    operator: Any,
) -> None:
    # when
    with pytest.raises(RulesInvalid) as raised:
        create_segment(name="上海客户", definition=BAD_OP, actor=operator)

    # then
    assert [(error.path, error.message) for error in raised.value.errors] == [
        ("all[0].op", "'gt' is not an op of text field 'city'")
    ]
    assert not Segment.objects.filter(name="上海客户").exists()


# Changing


def test_changing_a_dynamic_segment_queues_a_refresh(
    operator: Any, segments_queue: Queue, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    segment = Segment.objects.create(name="上海客户", definition=IN_SHANGHAI)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        update_segment(segment_id=segment.pk, actor=operator, definition=IN_BEIJING)

    # then
    segment.refresh_from_db()
    assert segment.definition == IN_BEIJING
    assert queued(segments_queue) == [(segment.pk, None, False)]


def test_renaming_a_static_segment_keeps_its_snapshot(
    operator: Any, segments_queue: Queue, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    segment = Segment.objects.create(name="上海客户", definition=IN_SHANGHAI, kind="static")

    # when
    with django_capture_on_commit_callbacks(execute=True):
        update_segment(segment_id=segment.pk, actor=operator, name="上海老客户")

    # then
    assert queued(segments_queue) == []


def test_new_rules_for_a_static_segment_queue_a_new_snapshot(
    operator: Any, segments_queue: Queue, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    segment = Segment.objects.create(name="上海客户", definition=IN_SHANGHAI, kind="static")

    # when
    with django_capture_on_commit_callbacks(execute=True):
        update_segment(segment_id=segment.pk, actor=operator, definition=IN_BEIJING)

    # then
    assert queued(segments_queue) == [(segment.pk, None, True)]


def test_a_segment_may_not_refer_to_itself(operator: Any) -> None:
    # given
    first = Segment.objects.create(name="A", definition=IN_SHANGHAI)
    second = Segment.objects.create(name="B", definition={"all": [{"segment": first.pk}]})

    # when
    with pytest.raises(RulesInvalid) as raised:
        update_segment(
            segment_id=first.pk, actor=operator, definition={"all": [{"segment": second.pk}]}
        )

    # then
    assert raised.value.errors[0].path == "all[0].segment"
    first.refresh_from_db()
    assert first.definition == IN_SHANGHAI


def test_a_manager_may_not_change_a_segment(manager: Any) -> None:
    # given
    segment = Segment.objects.create(name="上海客户", definition=IN_SHANGHAI)

    # when / then
    with pytest.raises(PermissionDenied):
        update_segment(segment_id=segment.pk, actor=manager, name="改名")


# Deleting


def test_an_operator_deletes_a_segment_and_its_members(operator: Any) -> None:
    # given
    CustomerFactory(city="上海")
    segment = Segment.objects.create(name="上海客户", definition=IN_SHANGHAI)
    refresh_segment_members(segment_id=segment.pk, as_of=AS_OF)

    # when
    delete_segment(segment_id=segment.pk, actor=operator)

    # then
    assert not Segment.objects.filter(pk=segment.pk).exists()
    assert not SegmentMember.objects.filter(segment_id=segment.pk).exists()


def test_a_segment_used_by_another_or_by_a_tag_rule_is_not_deleted(operator: Any) -> None:
    # given
    used = Segment.objects.create(name="上海客户", definition=IN_SHANGHAI)
    Segment.objects.create(name="上海老客户", definition={"all": [{"segment": used.pk}]})
    tag: Any = TagFactory(name="上海人")
    TagRule.objects.create(tag=tag, definition={"any": [{"segment": used.pk}]})

    # when
    with pytest.raises(ValidationError) as raised:
        delete_segment(segment_id=used.pk, actor=operator)

    # then
    assert raised.value.messages == [
        "Segment 上海客户 is used by 上海人, 上海老客户; change those first."
    ]
    assert Segment.objects.filter(pk=used.pk).exists()


def test_a_manager_may_not_delete_a_segment(manager: Any) -> None:
    # given
    segment = Segment.objects.create(name="上海客户", definition=IN_SHANGHAI)

    # when / then
    with pytest.raises(PermissionDenied):
        delete_segment(segment_id=segment.pk, actor=manager)


# Refresh on demand


def test_a_manager_may_ask_for_a_refresh_of_a_dynamic_segment(
    manager: Any, segments_queue: Queue, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    segment = Segment.objects.create(name="上海客户", definition=IN_SHANGHAI)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        request_segment_refresh(segment_id=segment.pk, actor=manager)

    # then
    assert queued(segments_queue) == [(segment.pk, None, False)]


def test_a_static_segment_is_resnapshotted_only_on_purpose(
    operator: Any, segments_queue: Queue, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    segment = Segment.objects.create(name="上海客户", definition=IN_SHANGHAI, kind="static")
    refresh_segment_members(segment_id=segment.pk, as_of=AS_OF)

    # when / then
    with pytest.raises(SegmentIsFrozen):
        request_segment_refresh(segment_id=segment.pk, actor=operator)
    with django_capture_on_commit_callbacks(execute=True):
        resnapshot_segment(segment_id=segment.pk, actor=operator)
    assert queued(segments_queue) == [(segment.pk, None, True)]


def test_a_manager_may_not_resnapshot_a_static_segment(manager: Any) -> None:
    # given
    segment = Segment.objects.create(name="上海客户", definition=IN_SHANGHAI, kind="static")

    # when / then
    with pytest.raises(PermissionDenied):
        resnapshot_segment(segment_id=segment.pk, actor=manager)


# Roles


@pytest.mark.parametrize(
    ("role", "codenames"),
    [
        (
            "Operators",
            {
                "add_segment",
                "change_segment",
                "delete_segment",
                "view_segment",
                "add_tagrule",
                "change_tagrule",
                "delete_tagrule",
                "view_tagrule",
                "view_segmentmember",
                "view_segmentrefresh",
            },
        ),
        ("Managers", {"view_segment", "view_tagrule", "view_segmentmember", "view_segmentrefresh"}),
    ],
    ids=["operators", "managers"],
)
def test_the_roles_hold_the_segment_permissions(db: None, role: str, codenames: set[str]) -> None:
    held = set(
        Group.objects.get(name=role)
        .permissions.filter(content_type__app_label="segments")
        .values_list("codename", flat=True)
    )
    assert held == codenames


# Templates


def test_the_templates_are_shipped_as_dynamic_segments(db: None) -> None:
    templates = Segment.objects.filter(is_template=True).order_by("template_key")
    assert [(s.template_key, s.kind) for s in templates] == sorted(
        (template.key, "dynamic") for template in TEMPLATES
    )
    assert len(TEMPLATES) == 13


@pytest.mark.parametrize("template", TEMPLATES, ids=[template.key for template in TEMPLATES])
def test_each_template_is_valid_and_refreshes_without_error(db: None, template: Any) -> None:
    # given
    segment = Segment.objects.get(template_key=template.key)

    # when
    errors = validate_rules(segment.definition)
    refresh = refresh_segment_members(segment_id=segment.pk, as_of=AS_OF)

    # then
    assert (errors, refresh.error) == ([], "")


def test_the_behaviour_templates_find_the_customers_they_describe(db: None) -> None:
    # given
    now = timezone.now()
    registered_yesterday = CustomerFactory(
        external_id="R1", registered_at=now - dt.timedelta(hours=30)
    )
    CustomerFactory(external_id="R2", registered_at=now - dt.timedelta(hours=10))
    ordered = CustomerFactory(external_id="R3", registered_at=now - dt.timedelta(hours=30))
    OrderFactory(customer=ordered, placed_at=now - dt.timedelta(hours=2))
    carted = CustomerFactory(external_id="K1")
    EventFactory(customer=carted, name="add_to_cart", occurred_at=now - dt.timedelta(hours=3))
    carted_and_ordered = CustomerFactory(external_id="K2")
    EventFactory(
        customer=carted_and_ordered, name="add_to_cart", occurred_at=now - dt.timedelta(hours=3)
    )
    EventFactory(customer=carted_and_ordered, name="order", occurred_at=now - dt.timedelta(hours=2))
    viewer = CustomerFactory(external_id="V1")
    for hours in (5, 30, 100):
        EventFactory(customer=viewer, occurred_at=now - dt.timedelta(hours=hours))
    twice = CustomerFactory(external_id="V2")
    for hours in (5, 30):
        EventFactory(customer=twice, occurred_at=now - dt.timedelta(hours=hours))
    from customers.metrics import recompute_metrics

    recompute_metrics(as_of=now)

    # when
    found = {}
    for key in ("registered_24h_no_order", "cart_24h_no_order", "beauty_viewers_7d"):
        segment = Segment.objects.get(template_key=key)
        refresh_segment_members(segment_id=segment.pk, as_of=now)
        found[key] = members(segment)

    # then
    assert registered_yesterday.external_id in found["registered_24h_no_order"]
    assert found == {
        "registered_24h_no_order": ["R1"],
        "cart_24h_no_order": ["K1"],
        "beauty_viewers_7d": ["V1"],
    }


# The command


def test_the_refresh_command_refreshes_every_dynamic_segment_and_prints_json(db: None) -> None:
    # given
    Segment.objects.filter(is_template=True).delete()
    CustomerFactory(external_id="C1", city="上海")
    shanghai = Segment.objects.create(name="上海客户", definition=IN_SHANGHAI)
    Segment.objects.create(name="快照", definition=IN_SHANGHAI, kind="static")
    out = StringIO()

    # when
    call_command("segment_refresh", "--all", "--json", "--as-of", "2026-11-20T12:00", stdout=out)

    # then
    result = json.loads(out.getvalue())
    assert result["as_of"] == "2026-11-20T12:00:00+08:00"
    assert [
        (s["segment_id"], s["name"], s["size"], s["joined"], s["left"], s["error"])
        for s in result["segments"]
    ] == [(shanghai.pk, "上海客户", 1, 1, 0, "")]


def test_the_refresh_command_fails_loudly_for_a_broken_segment(db: None) -> None:
    # given
    segment = Segment.objects.create(name="坏的", definition=BAD_OP)
    out = StringIO()

    # when
    with pytest.raises(CommandError) as raised:
        call_command("segment_refresh", str(segment.pk), stdout=out)

    # then
    assert str(raised.value) == "1 of 1 segment refreshes failed"
    assert out.getvalue() == (
        f"{segment.pk} 坏的: FAILED: all[0].op: 'gt' is not an op of text field 'city'\n"
    )


def test_the_refresh_command_refuses_a_static_segment_without_resnapshot(db: None) -> None:
    # given
    CustomerFactory(city="上海")
    segment = Segment.objects.create(name="快照", definition=IN_SHANGHAI, kind="static")
    refresh_segment_members(segment_id=segment.pk, as_of=AS_OF)
    Customer.objects.update(city="北京")

    # when
    with pytest.raises(CommandError) as raised:
        call_command("segment_refresh", str(segment.pk), stdout=StringIO())
    call_command("segment_refresh", str(segment.pk), "--resnapshot", stdout=StringIO())

    # then
    assert str(raised.value) == (
        f"segment {segment.pk} is static; pass --resnapshot to take a new snapshot"
    )
    assert members(segment) == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "give one segment id or --all"),
        (["1", "--all"], "give one segment id or --all"),
        (["999999"], "segment 999999 does not exist"),
        (["--all", "--as-of", "yesterday"], "--as-of: 'yesterday' is not an ISO date-time"),
    ],
    ids=["nothing", "both", "unknown", "bad-as-of"],
)
def test_the_refresh_command_explains_bad_arguments(
    db: None, arguments: list[str], message: str
) -> None:
    with pytest.raises(CommandError) as raised:
        call_command("segment_refresh", *arguments, stdout=StringIO())
    assert str(raised.value) == message
