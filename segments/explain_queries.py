"""Reads behind "why is this customer (not) in this segment?" away from the segment page: a
customer's segments for the 360 page, and one customer explained against a stored segment or
against a rule tree the builder has not saved yet."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import OuterRef, Subquery

from segments.models import Segment, SegmentMember
from segments.rules import ExplainNode, explain_rules


@dataclass(frozen=True)
class CustomerSegment:
    """A segment as the 360 page lists it, with when the customer joined it."""

    segment: Segment  # id, name and kind loaded
    joined_at: dt.datetime | None  # None: not a member as of the segment's last refresh

    @property
    def is_member(self) -> bool:
        return self.joined_at is not None


@dataclass(frozen=True)
class Explanation:
    tree: ExplainNode
    as_of: dt.datetime
    # Whether the stored membership (the last refresh) holds the customer; None for a tree that
    # is not a saved segment's.
    is_member: bool | None


def list_customer_segments(customer_id: int) -> list[CustomerSegment]:
    """Every segment by name with the customer's joined_at where they are a member, in one query
    (the (segment, customer) unique index answers each segment's lookup)."""
    joined = SegmentMember.objects.filter(segment=OuterRef("pk"), customer_id=customer_id).values(
        "joined_at"
    )[:1]
    segments = (
        Segment.objects.only("pk", "name", "kind")
        .annotate(customer_joined_at=Subquery(joined))
        .order_by("name", "pk")
    )
    return [CustomerSegment(segment, segment.customer_joined_at) for segment in segments]


def explain_segment_for_customer(
    *, segment: Segment, customer_id: int, as_of: dt.datetime
) -> Explanation:
    """Why the customer matches the segment's stored rules or not, and whether the last refresh
    made them a member. Raises RulesInvalid when the stored rules no longer compile."""
    tree = explain_rules(
        segment.definition, customer_id=customer_id, as_of=as_of, segment_id=segment.pk
    )
    is_member = SegmentMember.objects.filter(
        segment_id=segment.pk, customer_id=customer_id
    ).exists()
    return Explanation(tree=tree, as_of=as_of, is_member=is_member)


def explain_tree_for_customer(
    tree: object, *, customer_id: int, as_of: dt.datetime, segment_id: int | None = None
) -> Explanation:
    """Why the customer matches an unsaved rule tree or not. segment_id is the segment the tree
    is about to define (a reference back to it is an error). Raises RulesInvalid."""
    node = explain_rules(tree, customer_id=customer_id, as_of=as_of, segment_id=segment_id)
    return Explanation(tree=node, as_of=as_of, is_member=None)
