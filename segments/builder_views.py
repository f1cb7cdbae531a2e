"""The rule builder: a new segment, an existing one's edit page, and the values it suggests.

The page holds the rule tree in the browser (static/js/builder.js) and posts it as JSON in the
hidden "definition" field; what is posted is stored as it is, so the builder, the API, the CLI
and the compiler all read the same tree. Saving goes through the segment services, which
validate everything: a bad tree comes back with status 400 and each error at its node.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from segments.models import Segment, SegmentKind
from segments.page_queries import (
    VALUE_KINDS,
    get_segment,
    list_known_values,
    list_segment_choices,
    list_template_segments,
)
from segments.rules import RuleError, RulesInvalid, list_fields
from segments.rules.fields import ATTRIBUTE, ATTRIBUTE_FIELD_HELP, NUMBER, OP_LABELS, OPS_BY_TYPE
from segments.rules.schema import DAY_OPS, LIST_OPS, NO_VALUE_OPS
from segments.services.segments import create_segment, update_segment

ADD_PERMISSION = "segments.add_segment"
CHANGE_PERMISSION = "segments.change_segment"
VIEW_PERMISSION = "segments.view_segment"
NEW_DEFINITION: dict[str, Any] = {"all": []}
DEFAULT_INTERVAL = 60
# Text fields whose "is one of" picks from values known from the data (page_queries kinds).
KNOWN_VALUE_FIELDS = {"city": "city"}
WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")
FORM_FIELDS = ("name", "description", "kind", "refresh_interval_minutes")


@dataclass
class SegmentInput:
    """The save form as posted: the values to show again and what is wrong with them."""

    name: str = ""
    description: str = ""
    kind: str = SegmentKind.DYNAMIC
    refresh_interval_minutes: str = str(DEFAULT_INTERVAL)
    definition_json: str = json.dumps(NEW_DEFINITION)
    definition: Any = None
    field_errors: dict[str, list[str]] = field(default_factory=dict)
    rule_errors: list[RuleError] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return bool(self.field_errors or self.rule_errors or self.errors)


def _input_from(segment: Segment) -> SegmentInput:
    return SegmentInput(
        name=segment.name,
        description=segment.description,
        kind=segment.kind,
        refresh_interval_minutes=str(segment.refresh_interval_minutes),
        definition_json=json.dumps(segment.definition, ensure_ascii=False),
        definition=segment.definition,
    )


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON, though Python's parser reads them by default.
    raise ValueError(_("%(name)s is not a JSON value.") % {"name": name})


def _parse(request: HttpRequest) -> SegmentInput:
    posted = SegmentInput(
        name=request.POST.get("name", ""),
        description=request.POST.get("description", ""),
        kind=request.POST.get("kind", SegmentKind.DYNAMIC),
        refresh_interval_minutes=request.POST.get("refresh_interval_minutes", "").strip(),
        definition_json=request.POST.get("definition", ""),
    )
    try:
        posted.definition = json.loads(posted.definition_json, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        posted.field_errors["definition"] = [
            _("The rules are not valid JSON: %(error)s") % {"error": error}
        ]
    if not WHOLE_NUMBER.fullmatch(posted.refresh_interval_minutes):
        posted.field_errors["refresh_interval_minutes"] = [
            _("Enter the refresh interval as a whole number of minutes.")
        ]
    return posted


def _save(request: HttpRequest, posted: SegmentInput, segment: Segment | None) -> Segment | None:
    """Create or update through the services; on failure the errors land on posted."""
    values: dict[str, Any] = {
        "name": posted.name,
        "description": posted.description,
        "kind": posted.kind,
        "refresh_interval_minutes": int(posted.refresh_interval_minutes),
        "definition": posted.definition,
    }
    try:
        if segment is None:
            return create_segment(actor=request.user, **values)
        return update_segment(segment_id=segment.pk, actor=request.user, **values)
    except RulesInvalid as invalid:
        posted.rule_errors = list(invalid.errors)
    except ValidationError as error:
        if hasattr(error, "error_dict"):
            for name, messages_ in error.message_dict.items():
                key = name if name in FORM_FIELDS else "__all__"
                posted.field_errors.setdefault(key, []).extend(messages_)
        else:
            posted.errors.extend(error.messages)
    return None


def _ops(ops: tuple[str, ...]) -> list[dict[str, str]]:
    return [{"op": op, "label": str(OP_LABELS[op])} for op in ops]


def _builder_config(segment: Segment | None, posted: SegmentInput) -> dict[str, Any]:
    return builder_config(
        exclude_segment_id=segment.pk if segment else None, rule_errors=posted.rule_errors
    )


def builder_config(
    *, exclude_segment_id: int | None, rule_errors: Sequence[RuleError]
) -> dict[str, Any]:
    """Everything builder.js needs besides the tree, as one JSON data island.

    exclude_segment_id: the segment being edited, which its own rules may not name;
    rule_errors: the errors of a refused save, which the builder marks at their nodes.
    """
    return {
        "fields": [spec.as_dict() for spec in list_fields()],
        "known_value_fields": KNOWN_VALUE_FIELDS,
        "attribute": {
            "group_label": _("Custom attributes"),
            "ops": _ops(OPS_BY_TYPE[ATTRIBUTE]),
            "help": str(ATTRIBUTE_FIELD_HELP),
        },
        "count_ops": _ops(OPS_BY_TYPE[NUMBER]),
        "property_ops": _ops(OPS_BY_TYPE[ATTRIBUTE]),
        "no_value_ops": sorted(NO_VALUE_OPS),
        "list_ops": sorted(LIST_OPS),
        "day_ops": sorted(DAY_OPS),
        "segments": list_segment_choices(exclude_id=exclude_segment_id),
        "templates": [
            {"id": t.pk, "name": t.name, "description": t.description, "definition": t.definition}
            for t in list_template_segments()
        ],
        "urls": {
            "preview": reverse("segments_api:preview"),
            "values": reverse("segments:builder_values"),
        },
        "errors": [error.as_dict() for error in rule_errors],
        "i18n": builder_strings(),
    }


def _render(
    request: HttpRequest, segment: Segment | None, posted: SegmentInput, *, status: int = 200
) -> HttpResponse:
    context = {
        "segment": segment,
        "posted": posted,
        "kinds": SegmentKind.choices,
        "builder_config": _builder_config(segment, posted),
        "rule_errors": posted.rule_errors,
    }
    return render(request, "segments/builder.html", context, status=status)


def _builder(request: HttpRequest, segment: Segment | None) -> HttpResponse:
    if request.method != "POST":
        posted = _input_from(segment) if segment else SegmentInput()
        return _render(request, segment, posted)
    posted = _parse(request)
    saved = None if posted.has_errors else _save(request, posted, segment)
    if saved is None:
        return _render(request, segment, posted, status=400)
    messages.success(
        request,
        _("Segment %(name)s is saved; its members are being refreshed.") % {"name": saved.name},
    )
    return redirect("segments:detail", segment_id=saved.pk)


@require_http_methods(["GET", "POST"])
@permission_required(ADD_PERMISSION, raise_exception=True)
def segment_new(request: HttpRequest) -> HttpResponse:
    return _builder(request, None)


@require_http_methods(["GET", "POST"])
@permission_required(CHANGE_PERMISSION, raise_exception=True)
def segment_edit(request: HttpRequest, segment_id: int) -> HttpResponse:
    segment = get_segment(segment_id)
    if segment is None:
        raise Http404(_("There is no segment %(id)d.") % {"id": segment_id})
    return _builder(request, segment)


@require_GET
@permission_required(VIEW_PERMISSION, raise_exception=True)
def builder_values(request: HttpRequest) -> JsonResponse:
    """Values known from the data: ?kind=city|tag|event|event_property (&q=, &event=)."""
    kind = request.GET.get("kind", "")
    if kind not in VALUE_KINDS:
        return JsonResponse(
            {
                "errors": [
                    {
                        "path": "kind",
                        "message": _("kind must be one of %(kinds)s.")
                        % {"kinds": ", ".join(VALUE_KINDS)},
                    }
                ]
            },
            status=400,
        )
    values = list_known_values(
        kind, text=request.GET.get("q", "").strip()[:64], event=request.GET.get("event", "")[:64]
    )
    return JsonResponse({"kind": kind, "values": values}, json_dumps_params={"ensure_ascii": False})


def builder_strings() -> dict[str, str]:
    """The words builder.js shows, translated on the server (it has no catalogue of its own)."""
    return {
        "match": _("Match"),
        "all": _("all"),
        "any": _("any"),
        "of_these": _("of these conditions"),
        "group": _("Group"),
        "add_condition": _("Add condition"),
        "add_group": _("Add group"),
        "negate": _("Negate"),
        "remove_not": _("Remove NOT"),
        "remove": _("Remove"),
        "wrap_group": _("Put in a group"),
        "not_label": _("NOT — this must not hold:"),
        "empty_all": _("No conditions yet: everyone matches. Add a condition."),
        "empty_any": _("No conditions yet: nobody matches. Add a condition."),
        "condition_type": _("Condition type"),
        "kind_field": _("Field"),
        "kind_tag": _("Tag"),
        "kind_event": _("Event"),
        "kind_segment": _("In segment"),
        "field": _("Field"),
        "choose_field": _("Choose a field…"),
        "search_fields": _("Search fields"),
        "custom_attribute": _("Custom attribute…"),
        "attribute_key": _("Attribute key"),
        "unknown_field": _("Unknown field %(key)s"),
        "op": _("Condition"),
        "value": _("Value"),
        "from": _("From"),
        "to": _("To"),
        "and": _("and"),
        "days": _("days"),
        "hours": _("hours"),
        "any_time": _("any time"),
        "values_one_per_line": _("Values, one per line"),
        "filter_values": _("Filter values"),
        "no_values": _("No known values."),
        "loading": _("Loading…"),
        "value_type": _("Value type"),
        "type_text": _("text"),
        "type_number": _("number"),
        "type_bool": _("yes/no"),
        "yes": _("yes"),
        "no": _("no"),
        "tag_op": _("Tag condition"),
        "has_tag": _("has the tag"),
        "lacks_tag": _("does not have the tag"),
        "tag": _("Tag"),
        "event": _("Event"),
        "event_name": _("Event name"),
        "within": _("within the last"),
        "window": _("Time window"),
        "window_amount": _("Window length"),
        "count": _("How often"),
        "at_least_once": _("at least once"),
        "count_value": _("Count"),
        "count_prefix": _("count"),
        "where": _("with property"),
        "property_key": _("Property"),
        "property_op": _("Property condition"),
        "add_property": _("Add property filter"),
        "remove_property": _("Remove property filter"),
        "followed_by": _("then followed by"),
        "not_followed_by": _("then NOT followed by"),
        "add_followed_by": _("Add “followed by”"),
        "add_not_followed_by": _("Add “not followed by”"),
        "remove_follow_up": _("Remove follow-up"),
        "follow_up_within": _("within"),
        "segment": _("Segment"),
        "choose_segment": _("Choose a segment…"),
        "missing_segment": _("segment %(id)s (missing)"),
        "raw": _("This rule as JSON (the builder has no form for it)"),
        "count_one": _("%(count)s customer"),
        "count_other": _("%(count)s customers"),
        "took": _("%(ms)s ms"),
        "counting": _("Counting…"),
        "invalid": _("Fix the marked conditions to see the count."),
        "preview_failed": _("The count could not be computed (%(status)s)."),
        "sample": _("Sample customers"),
        "no_sample": _("Nobody matches."),
        "template_loaded": _("Template %(name)s loaded."),
        "bad_json": _("The stored rules are not valid JSON; they are shown as text."),
    }
