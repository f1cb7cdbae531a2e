"""Creating, changing and deleting segments, and asking for their refresh.

Every write checks the actor's permission (Operators and Admins edit segments; everyone who may
see a segment may ask for a refresh of a dynamic one) and validates the rule tree with the
compiler before anything is saved. The refresh itself runs on RQ, enqueued once the write commits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import partial
from typing import Any, Protocol, cast

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from segments.models import Segment, SegmentKind, TagRule
from segments.rules import RulesInvalid, compile_rules, validate_rules

logger = logging.getLogger(__name__)

ADD_PERMISSION = "segments.add_segment"
CHANGE_PERMISSION = "segments.change_segment"
DELETE_PERMISSION = "segments.delete_segment"
VIEW_PERMISSION = "segments.view_segment"

NAME_MAX_LENGTH = 100
DESCRIPTION_MAX_LENGTH = 2000
MIN_INTERVAL_MINUTES = 1
MAX_INTERVAL_MINUTES = 7 * 24 * 60


class Actor(Protocol):
    pk: Any

    def has_perm(self, perm: str, obj: Any = None) -> bool: ...


def require_permission(actor: Actor, permission: str, message: str) -> None:
    if not actor.has_perm(permission):
        raise PermissionDenied(message)


def enqueue_refresh(segment_id: int, *, resnapshot: bool = False) -> None:
    """Queue one refresh of the segment (call it in transaction.on_commit)."""
    # Imported here: the jobs module imports the services.
    from segments.jobs import enqueue_segment_refresh

    enqueue_segment_refresh(segment_id, resnapshot=resnapshot)


def walk_rules(tree: object) -> Iterator[dict[str, Any]]:
    """Every node of a rule tree (groups and leaves), depth first."""
    if isinstance(tree, dict):
        yield tree
        for value in tree.values():
            yield from walk_rules(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from walk_rules(item)


def referenced_segment_ids(tree: object) -> set[int]:
    return {
        node["segment"]
        for node in walk_rules(tree)
        if isinstance(node.get("segment"), int) and not isinstance(node.get("segment"), bool)
    }


def _field_errors(
    *,
    name: str,
    description: str,
    kind: str,
    refresh_interval_minutes: int,
    segment_id: int | None,
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if "\x00" in name:
        errors["name"] = [_("A name cannot contain a NUL character.")]
    elif not name:
        errors["name"] = [_("Enter a name.")]
    elif len(name) > NAME_MAX_LENGTH:
        errors["name"] = [
            _("A name has at most %(limit)d characters.") % {"limit": NAME_MAX_LENGTH}
        ]
    elif (
        Segment.objects.filter(name=name)
        .exclude(pk__in=[segment_id] if segment_id else [])
        .exists()
    ):
        errors["name"] = [_("A segment named %(name)s already exists.") % {"name": name}]
    if "\x00" in description:
        errors["description"] = [_("A description cannot contain a NUL character.")]
    elif len(description) > DESCRIPTION_MAX_LENGTH:
        errors["description"] = [
            _("A description has at most %(limit)d characters.") % {"limit": DESCRIPTION_MAX_LENGTH}
        ]
    if kind not in SegmentKind.values:
        errors["kind"] = [
            _("%(kind)s is not a kind of segment: choose dynamic or static.") % {"kind": kind}
        ]
    if (
        isinstance(refresh_interval_minutes, bool)
        or not isinstance(refresh_interval_minutes, int)
        or not MIN_INTERVAL_MINUTES <= refresh_interval_minutes <= MAX_INTERVAL_MINUTES
    ):
        errors["refresh_interval_minutes"] = [
            _("Refresh every %(low)d to %(high)d minutes.")
            % {"low": MIN_INTERVAL_MINUTES, "high": MAX_INTERVAL_MINUTES}
        ]
    return errors


def check_definition(definition: object, *, segment_id: int | None) -> None:
    """Raise RulesInvalid unless the tree is valid and compiles (references, cycles)."""
    errors = validate_rules(definition)
    if errors:
        raise RulesInvalid(errors)
    # Compiling builds the query without running it; it finds what the schema cannot see:
    # a referenced segment that does not exist, or one that refers back to this one.
    compile_rules(cast(dict[str, Any], definition), as_of=timezone.now(), segment_id=segment_id)


def _check(
    *,
    name: str,
    description: str,
    definition: object,
    kind: str,
    refresh_interval_minutes: int,
    segment_id: int | None,
) -> None:
    errors = _field_errors(
        name=name,
        description=description,
        kind=kind,
        refresh_interval_minutes=refresh_interval_minutes,
        segment_id=segment_id,
    )
    if errors:
        raise ValidationError(errors)
    check_definition(definition, segment_id=segment_id)


@transaction.atomic
def create_segment(
    *,
    name: str,
    definition: dict[str, Any],
    actor: Actor,
    kind: str = SegmentKind.DYNAMIC,
    description: str = "",
    refresh_interval_minutes: int = 60,
) -> Segment:
    """Save a new segment owned by actor and queue its first refresh (a static segment's
    snapshot) once this commits. Raises PermissionDenied, ValidationError (a field) or
    RulesInvalid (the definition); nothing is saved then."""
    require_permission(actor, ADD_PERMISSION, _("You may not create segments."))
    name = name.strip()
    description = description.strip()
    _check(
        name=name,
        description=description,
        definition=definition,
        kind=kind,
        refresh_interval_minutes=refresh_interval_minutes,
        segment_id=None,
    )
    segment = Segment.objects.create(
        name=name,
        description=description,
        definition=definition,
        kind=kind,
        refresh_interval_minutes=refresh_interval_minutes,
        owner_id=actor.pk,
    )
    logger.info("segment %s (%s) created by user %s", segment.pk, kind, actor.pk)
    transaction.on_commit(partial(enqueue_refresh, segment.pk))
    return segment


_UNSET: Any = object()


@transaction.atomic
def update_segment(
    *,
    segment_id: int,
    actor: Actor,
    name: str = _UNSET,
    description: str = _UNSET,
    definition: dict[str, Any] = _UNSET,
    kind: str = _UNSET,
    refresh_interval_minutes: int = _UNSET,
) -> Segment:
    """Change the given fields of a segment. A dynamic segment is refreshed once this commits;
    a static one takes a new snapshot only when its definition or kind changed."""
    require_permission(actor, CHANGE_PERMISSION, _("You may not change segments."))
    segment = Segment.objects.select_for_update().get(pk=segment_id)
    new_name = segment.name if name is _UNSET else name.strip()
    new_description = segment.description if description is _UNSET else description.strip()
    new_definition = segment.definition if definition is _UNSET else definition
    new_kind = segment.kind if kind is _UNSET else kind
    new_interval = (
        segment.refresh_interval_minutes
        if refresh_interval_minutes is _UNSET
        else refresh_interval_minutes
    )
    _check(
        name=new_name,
        description=new_description,
        definition=new_definition,
        kind=new_kind,
        refresh_interval_minutes=new_interval,
        segment_id=segment.pk,
    )
    rules_changed = new_definition != segment.definition or new_kind != segment.kind
    segment.name = new_name
    segment.description = new_description
    segment.definition = new_definition
    segment.kind = new_kind
    if new_interval != segment.refresh_interval_minutes:
        segment.refresh_interval_minutes = new_interval
        segment.next_refresh_at = None  # due now under the new interval
    if new_kind == SegmentKind.STATIC:
        segment.next_refresh_at = None
    segment.save()
    logger.info("segment %s changed by user %s", segment.pk, actor.pk)
    if new_kind == SegmentKind.DYNAMIC:
        transaction.on_commit(partial(enqueue_refresh, segment.pk))
    elif rules_changed:
        transaction.on_commit(partial(enqueue_refresh, segment.pk, resnapshot=True))
    return segment


def list_segments_using(segment_id: int) -> list[Segment]:
    """The other segments whose definition refers to this one ({"segment": id} anywhere)."""
    # Definitions are small JSON trees; one scan of them beats a JSON path query that would
    # differ between SQLite and PostgreSQL and miss references nested at any depth.
    others = Segment.objects.exclude(pk=segment_id).only("pk", "name", "definition")
    return [other for other in others if segment_id in referenced_segment_ids(other.definition)]


def _referencing(segment_id: int) -> list[str]:
    names = [other.name for other in list_segments_using(segment_id)]
    names += [
        str(rule.tag)
        for rule in TagRule.objects.select_related("tag").only("tag__name", "definition")
        if segment_id in referenced_segment_ids(rule.definition)
    ]
    return sorted(names)


@transaction.atomic
def delete_segment(*, segment_id: int, actor: Actor) -> None:
    """Delete a segment and its members; refused while another segment or a tag rule uses it."""
    require_permission(actor, DELETE_PERMISSION, _("You may not delete segments."))
    segment = Segment.objects.select_for_update().get(pk=segment_id)
    users = _referencing(segment.pk)
    if users:
        raise ValidationError(
            _("Segment %(name)s is used by %(users)s; change those first.")
            % {"name": segment.name, "users": ", ".join(users)},
            code="in_use",
        )
    segment.delete()
    logger.info("segment %s deleted by user %s", segment_id, actor.pk)


def request_segment_refresh(*, segment_id: int, actor: Actor) -> None:
    """Queue a refresh of a dynamic segment now (anyone who may see segments may ask)."""
    from segments.services.refresh import SegmentIsFrozen

    require_permission(actor, VIEW_PERMISSION, _("You may not see segments."))
    segment = Segment.objects.get(pk=segment_id)
    if segment.kind == SegmentKind.STATIC and segment.refreshed_at is not None:
        raise SegmentIsFrozen(segment)
    transaction.on_commit(partial(enqueue_refresh, segment.pk))


def resnapshot_segment(*, segment_id: int, actor: Actor) -> None:
    """Queue a new snapshot of a static segment, replacing its frozen members."""
    require_permission(actor, CHANGE_PERMISSION, _("You may not change segments."))
    segment = Segment.objects.get(pk=segment_id)
    if segment.kind != SegmentKind.STATIC:
        raise ValidationError(
            _("Segment %(name)s is dynamic: refresh it instead.") % {"name": segment.name},
            code="dynamic",
        )
    transaction.on_commit(partial(enqueue_refresh, segment.pk, resnapshot=True))
