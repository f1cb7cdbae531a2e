"""Reads of the tag rule pages: the rules with how many customers each has tagged."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count

from customers.models import CustomerTag, TagSource
from segments.models import Segment, TagRule
from segments.services.segments import referenced_segment_ids


@dataclass(frozen=True)
class TagRuleRow:
    rule: TagRule
    tagged: int  # customers holding the tag from this rule (source "rule")


@dataclass(frozen=True)
class TagRuleList:
    rows: list[TagRuleRow]
    segment_names: dict[int, str]  # of the segments the rules refer to, for their summaries


def list_tag_rules() -> TagRuleList:
    """Every tag rule by tag name, in at most three queries whatever their number: the rules,
    one GROUP BY of their rule-made tags, and the names of the segments they refer to."""
    rules = list(TagRule.objects.select_related("tag").order_by("tag__name"))
    tagged = dict(
        CustomerTag.objects.filter(source=TagSource.RULE, tag__rule__isnull=False)
        .order_by()
        .values_list("tag_id")
        .annotate(customers=Count("pk"))
        .values_list("tag_id", "customers")
    )
    referenced = set().union(*(referenced_segment_ids(rule.definition) for rule in rules))
    names = (
        dict(Segment.objects.filter(pk__in=referenced).values_list("pk", "name"))
        if referenced
        else {}
    )
    return TagRuleList(
        rows=[TagRuleRow(rule=rule, tagged=tagged.get(rule.tag_id, 0)) for rule in rules],
        segment_names=names,
    )


def get_tag_rule(tag_rule_id: int) -> TagRule | None:
    return TagRule.objects.select_related("tag").filter(pk=tag_rule_id).first()


def count_rule_tagged(tag_rule: TagRule) -> int:
    """Customers holding the rule's tag from the rule (what deleting it takes away)."""
    return CustomerTag.objects.filter(tag_id=tag_rule.tag_id, source=TagSource.RULE).count()
