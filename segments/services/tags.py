"""Rule-made tags: a TagRule gives its tag (source "rule") to every customer its tree matches.

Applying a rule is the same set-based pair of statements as a segment refresh, on CustomerTag:
add the tag to matched customers who lack it, remove the rule's own rows from customers no longer
matched. A customer who has the tag by hand or from an import keeps that row untouched.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from customers.models import CustomerTag, Tag, TagSource
from segments.models import TagRule
from segments.rules import compile_rules
from segments.services.materialise import (
    db_datetime,
    delete_unmatched,
    describe_error,
    insert_matched,
    matched_sql,
    resolve_as_of,
    sync_matched,
)
from segments.services.refresh import CUSTOMER_CHUNK
from segments.services.segments import Actor, check_definition, require_permission, walk_rules

logger = logging.getLogger(__name__)

ADD_PERMISSION = "segments.add_tagrule"
CHANGE_PERMISSION = "segments.change_tagrule"
DELETE_PERMISSION = "segments.delete_tagrule"
TAG_NAME_MAX_LENGTH = 64


@dataclass(frozen=True)
class TagRuleResult:
    tag: str
    added: int
    removed: int
    error: str


def _enqueue_apply(tag_rule_id: int) -> None:
    from segments.jobs import enqueue_apply_tag_rule

    enqueue_apply_tag_rule(tag_rule_id)


def _check(*, tag_name: str, definition: object) -> None:
    if not tag_name:
        raise ValidationError({"tag": [_("Enter a tag.")]})
    if "\x00" in tag_name:  # PostgreSQL stores no NUL in text
        raise ValidationError({"tag": [_("A tag cannot contain a NUL character.")]})
    if len(tag_name) > TAG_NAME_MAX_LENGTH:
        raise ValidationError(
            {"tag": [_("A tag has at most %(limit)d characters.") % {"limit": TAG_NAME_MAX_LENGTH}]}
        )
    check_definition(definition, segment_id=None)
    # The rule would feed on its own output: a customer once tagged would stay tagged.
    if any(node.get("tag") == tag_name for node in walk_rules(definition)):
        raise ValidationError(
            {"definition": [_("A tag rule cannot test its own tag %(tag)s.") % {"tag": tag_name}]}
        )


@transaction.atomic
def create_tag_rule(
    *, tag_name: str, definition: dict[str, Any], actor: Actor, is_active: bool = True
) -> TagRule:
    """A rule for the tag (created when new); applied once this commits. One rule per tag."""
    require_permission(actor, ADD_PERMISSION, _("You may not create tag rules."))
    tag_name = tag_name.strip()
    _check(tag_name=tag_name, definition=definition)
    tag, _created = Tag.objects.get_or_create(name=tag_name)
    if TagRule.objects.filter(tag=tag).exists():
        raise ValidationError({"tag": [_("Tag %(tag)s already has a rule.") % {"tag": tag_name}]})
    rule = TagRule.objects.create(tag=tag, definition=definition, is_active=is_active)
    logger.info("tag rule %s (%s) created by user %s", rule.pk, tag_name, actor.pk)
    if is_active:
        transaction.on_commit(partial(_enqueue_apply, rule.pk))
    return rule


@transaction.atomic
def update_tag_rule(
    *,
    tag_rule_id: int,
    actor: Actor,
    definition: dict[str, Any] | None = None,
    is_active: bool | None = None,
) -> TagRule:
    """Change a rule's tree or pause it (a paused rule leaves its tags as they are)."""
    require_permission(actor, CHANGE_PERMISSION, _("You may not change tag rules."))
    rule = TagRule.objects.select_for_update().select_related("tag").get(pk=tag_rule_id)
    if definition is not None:
        _check(tag_name=rule.tag.name, definition=definition)
        rule.definition = definition
    if is_active is not None:
        rule.is_active = is_active
    rule.save()
    if rule.is_active:
        transaction.on_commit(partial(_enqueue_apply, rule.pk))
    return rule


@transaction.atomic
def request_tag_rule_apply(*, tag_rule_id: int, actor: Actor) -> TagRule:
    """Queue one application of an active rule to every customer, once this commits."""
    require_permission(actor, CHANGE_PERMISSION, _("You may not apply tag rules."))
    rule = TagRule.objects.select_related("tag").get(pk=tag_rule_id)
    if not rule.is_active:
        raise ValidationError(
            {
                "is_active": [
                    _("The rule of %(tag)s is paused: activate it first.") % {"tag": rule.tag}
                ]
            }
        )
    transaction.on_commit(partial(_enqueue_apply, rule.pk))
    return rule


@transaction.atomic
def delete_tag_rule(*, tag_rule_id: int, actor: Actor) -> int:
    """Delete the rule and the tags it made (manual and imported ones stay); returns how many."""
    require_permission(actor, DELETE_PERMISSION, _("You may not delete tag rules."))
    rule = TagRule.objects.select_for_update().get(pk=tag_rule_id)
    removed, _by_model = CustomerTag.objects.filter(
        tag_id=rule.tag_id, source=TagSource.RULE
    ).delete()
    rule.delete()
    return removed


def _chunks(ids: Sequence[int]) -> list[Sequence[int]]:
    return [ids[start : start + CUSTOMER_CHUNK] for start in range(0, len(ids), CUSTOMER_CHUNK)]


def _apply_one(
    tag_rule_id: int, *, as_of: dt.datetime, customer_ids: Sequence[int] | None
) -> TagRuleResult | None:
    with transaction.atomic():
        rule = (
            TagRule.objects.select_for_update()
            .select_related("tag")
            .filter(pk=tag_rule_id, is_active=True)
            .first()
        )
        if rule is None:
            return None
        added = removed = 0
        error = ""
        common: dict[str, Any] = {
            "table": CustomerTag,
            "owner_column": "tag_id",
            "owner_id": rule.tag_id,
        }
        try:
            with transaction.atomic():
                compiled = compile_rules(rule.definition, as_of=as_of)
                values = {
                    "source": TagSource.RULE.value,
                    "created_at": db_datetime(timezone.now()),
                }
                only = {"source": TagSource.RULE.value}
                if customer_ids is None:
                    added, removed = sync_matched(
                        **common, matched=matched_sql(compiled), values=values, only=only
                    )
                for chunk in [] if customer_ids is None else _chunks(customer_ids):
                    matched = matched_sql(compiled.filter(pk__in=chunk))
                    removed += delete_unmatched(
                        **common, matched=matched, customer_ids=chunk, only=only
                    )
                    added += insert_matched(**common, matched=matched, values=values)
        except (ValidationError, DatabaseError) as exc:
            error = describe_error(exc)
            added = removed = 0
            logger.warning("tag rule %s failed: %s", rule.pk, error)
        changes: dict[str, Any] = {}
        if customer_ids is None:
            changes["last_error"] = error
            if not error:
                changes["last_applied_at"] = as_of
        elif error:
            changes["last_error"] = error
        if changes:
            TagRule.objects.filter(pk=rule.pk).update(**changes)
        return TagRuleResult(tag=rule.tag.name, added=added, removed=removed, error=error)


def apply_tag_rules(
    *,
    as_of: dt.datetime | None = None,
    customer_ids: Iterable[int] | None = None,
    tag_rule_ids: Iterable[int] | None = None,
) -> list[TagRuleResult]:
    """Apply every active tag rule (or those given) as of as_of, to everyone or to the given
    customers only; each rule in its own transaction. A failing rule keeps its tags and records
    its error (last_error); the others still apply."""
    as_of = resolve_as_of(as_of)
    ids = sorted(set(customer_ids)) if customer_ids is not None else None
    if ids is not None and not ids:
        return []
    rules = TagRule.objects.filter(is_active=True).order_by("pk")
    if tag_rule_ids is not None:
        rules = rules.filter(pk__in=list(tag_rule_ids))
    results = []
    for rule_id in rules.values_list("pk", flat=True):
        result = _apply_one(rule_id, as_of=as_of, customer_ids=ids)
        if result is not None:
            results.append(result)
    return results
