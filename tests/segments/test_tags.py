from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import translation
from rq import Queue

from customers.models import Customer, CustomerTag, Tag
from segments.jobs import SEGMENTS_QUEUE
from segments.models import TagRule
from segments.services.tags import (
    TagRuleResult,
    apply_tag_rules,
    create_tag_rule,
    delete_tag_rule,
    update_tag_rule,
)
from tests.factories import SHANGHAI, CustomerFactory, CustomerTagFactory, TagFactory

AS_OF = dt.datetime(2026, 11, 20, 12, 0, tzinfo=SHANGHAI)
IN_SHANGHAI = {"all": [{"field": "city", "op": "eq", "value": "上海"}]}


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    # Messages are asserted in their English source strings.
    with translation.override("en"):
        yield


def tagged(tag_name: str) -> list[tuple[str, str]]:
    return sorted(
        CustomerTag.objects.filter(tag__name=tag_name).values_list(
            "customer__external_id", "source"
        )
    )


def move(external_id: str, city: str) -> None:
    Customer.objects.filter(external_id=external_id).update(city=city)


@pytest.fixture
def shanghai_rule(db: None) -> TagRule:
    tag: Any = TagFactory(name="上海人")
    return TagRule.objects.create(tag=tag, definition=IN_SHANGHAI)


def test_a_tag_rule_tags_the_matching_customers_and_leaves_manual_tags_alone(
    shanghai_rule: TagRule,
) -> None:
    # given
    c1 = CustomerFactory(external_id="C1", city="上海")
    CustomerFactory(external_id="C2", city="上海")
    c3 = CustomerFactory(external_id="C3", city="北京")
    CustomerTagFactory(customer=c1, tag=shanghai_rule.tag, source="manual")
    CustomerTagFactory(customer=c3, tag=shanghai_rule.tag, source="import")

    # when
    results = apply_tag_rules(as_of=AS_OF)

    # then
    assert results == [TagRuleResult(tag="上海人", added=1, removed=0, error="")]
    assert tagged("上海人") == [("C1", "manual"), ("C2", "rule"), ("C3", "import")]
    shanghai_rule.refresh_from_db()
    assert (shanghai_rule.last_applied_at, shanghai_rule.last_error) == (AS_OF, "")


def test_a_tag_rule_removes_only_its_own_rows_from_customers_no_longer_matching(
    shanghai_rule: TagRule,
) -> None:
    # given
    c1 = CustomerFactory(external_id="C1", city="上海")
    CustomerFactory(external_id="C2", city="上海")
    CustomerFactory(external_id="C3", city="上海")
    CustomerTagFactory(customer=c1, tag=shanghai_rule.tag, source="manual")
    apply_tag_rules(as_of=AS_OF)
    for external_id in ("C1", "C2"):
        move(external_id, "北京")

    # when
    results = apply_tag_rules(as_of=AS_OF)

    # then
    assert results == [TagRuleResult(tag="上海人", added=0, removed=1, error="")]
    assert tagged("上海人") == [("C1", "manual"), ("C3", "rule")]


def test_applying_tag_rules_twice_changes_nothing_the_second_time(shanghai_rule: TagRule) -> None:
    # given
    CustomerFactory(external_id="C1", city="上海")
    apply_tag_rules(as_of=AS_OF)
    before = list(CustomerTag.objects.order_by("pk").values_list("pk", "customer_id", "source"))

    # when
    results = apply_tag_rules(as_of=AS_OF)

    # then
    assert results == [TagRuleResult(tag="上海人", added=0, removed=0, error="")]
    assert list(CustomerTag.objects.order_by("pk").values_list("pk", "customer_id", "source")) == (
        before
    )


def test_a_failing_tag_rule_keeps_its_tags_and_records_the_error(shanghai_rule: TagRule) -> None:
    # given
    CustomerFactory(external_id="C1", city="上海")
    CustomerFactory(external_id="C2", city="北京")
    apply_tag_rules(as_of=AS_OF)
    move("C1", "北京")
    TagRule.objects.filter(pk=shanghai_rule.pk).update(
        definition={"all": [{"field": "city", "op": "gt", "value": "上海"}]}
    )

    # when
    results = apply_tag_rules(as_of=AS_OF + dt.timedelta(hours=1))

    # then
    error = "all[0].op: 'gt' is not an op of text field 'city'"
    assert results == [TagRuleResult(tag="上海人", added=0, removed=0, error=error)]
    assert tagged("上海人") == [("C1", "rule")]
    shanghai_rule.refresh_from_db()
    assert (shanghai_rule.last_applied_at, shanghai_rule.last_error) == (AS_OF, error)


def test_a_paused_tag_rule_is_not_applied(shanghai_rule: TagRule) -> None:
    # given
    CustomerFactory(external_id="C1", city="上海")
    TagRule.objects.filter(pk=shanghai_rule.pk).update(is_active=False)

    # when
    results = apply_tag_rules(as_of=AS_OF)

    # then
    assert (results, tagged("上海人")) == ([], [])


def test_applying_tag_rules_to_touched_customers_changes_only_theirs(
    shanghai_rule: TagRule,
) -> None:
    # given
    CustomerFactory(external_id="C1", city="上海")
    CustomerFactory(external_id="C2", city="上海")
    apply_tag_rules(as_of=AS_OF)
    move("C1", "北京")
    move("C2", "北京")
    c3: Any = CustomerFactory(external_id="C3", city="上海")
    c2 = Customer.objects.get(external_id="C2")

    # when
    results = apply_tag_rules(as_of=AS_OF, customer_ids=[c2.pk, c3.pk])

    # then
    assert results == [TagRuleResult(tag="上海人", added=1, removed=1, error="")]
    assert tagged("上海人") == [("C1", "rule"), ("C3", "rule")]


def test_an_operator_creates_a_tag_rule_and_its_application_is_queued(
    operator: Any,
    rq_queues: dict[str, Queue],
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given
    CustomerFactory(external_id="C1", city="上海")

    # when
    with django_capture_on_commit_callbacks(execute=True):
        rule = create_tag_rule(tag_name=" 上海人 ", definition=IN_SHANGHAI, actor=operator)

    # then
    assert (rule.tag.name, rule.is_active) == ("上海人", True)
    assert [job.func_name for job in rq_queues[SEGMENTS_QUEUE].jobs] == [
        "segments.jobs.apply_tag_rule_job"
    ]


@pytest.mark.parametrize("role", ["Managers", None], ids=["manager", "no-role"])
def test_only_operators_and_admins_may_create_tag_rules(make_user: Any, role: str | None) -> None:
    # given
    user = make_user(role)

    # when / then
    with pytest.raises(PermissionDenied):
        create_tag_rule(tag_name="上海人", definition=IN_SHANGHAI, actor=user)
    assert not Tag.objects.filter(name="上海人").exists()


def test_a_tag_rule_may_not_test_its_own_tag(operator: Any) -> None:
    # when
    with pytest.raises(ValidationError) as raised:
        create_tag_rule(
            tag_name="老客",
            definition={"all": [{"tag": "老客"}, IN_SHANGHAI]},
            actor=operator,
        )

    # then
    assert raised.value.message_dict == {"definition": ["A tag rule cannot test its own tag 老客."]}
    assert not TagRule.objects.exists()


def test_a_tag_rule_with_bad_rules_is_refused_with_the_path(operator: Any) -> None:
    # when
    with pytest.raises(ValidationError) as raised:
        create_tag_rule(
            tag_name="上海人",
            definition={"all": [{"field": "city", "op": "gt", "value": "上海"}]},
            actor=operator,
        )

    # then
    assert raised.value.messages == ["all[0].op: 'gt' is not an op of text field 'city'"]
    assert not TagRule.objects.exists()


def test_a_second_rule_for_the_same_tag_is_refused(operator: Any, shanghai_rule: TagRule) -> None:
    # when
    with pytest.raises(ValidationError) as raised:
        create_tag_rule(tag_name="上海人", definition=IN_SHANGHAI, actor=operator)

    # then
    assert raised.value.message_dict == {"tag": ["Tag 上海人 already has a rule."]}


def test_deleting_a_tag_rule_removes_the_tags_it_made_only(
    operator: Any, shanghai_rule: TagRule
) -> None:
    # given
    c1 = CustomerFactory(external_id="C1", city="上海")
    CustomerFactory(external_id="C2", city="上海")
    CustomerTagFactory(customer=c1, tag=shanghai_rule.tag, source="manual")
    apply_tag_rules(as_of=AS_OF)

    # when
    removed = delete_tag_rule(tag_rule_id=shanghai_rule.pk, actor=operator)

    # then
    assert removed == 1
    assert tagged("上海人") == [("C1", "manual")]
    assert not TagRule.objects.exists()


def test_pausing_a_tag_rule_keeps_the_tags_it_made(operator: Any, shanghai_rule: TagRule) -> None:
    # given
    CustomerFactory(external_id="C1", city="上海")
    apply_tag_rules(as_of=AS_OF)

    # when
    rule = update_tag_rule(tag_rule_id=shanghai_rule.pk, actor=operator, is_active=False)
    move("C1", "北京")
    apply_tag_rules(as_of=AS_OF)

    # then
    assert rule.is_active is False
    assert tagged("上海人") == [("C1", "rule")]
