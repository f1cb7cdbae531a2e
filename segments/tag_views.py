"""The tag rule pages: the list, a rule's new and edit pages (the segment rule builder), delete
after a confirmation, and "apply now".

Saving goes through the tag services, which validate the tree and queue the rule's application
once the save commits: a bad tree comes back with status 400 and each error at its node.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from segments.builder_views import NEW_DEFINITION, builder_config
from segments.models import TagRule
from segments.rules import RuleError, RulesInvalid
from segments.services.tags import (
    ADD_PERMISSION,
    CHANGE_PERMISSION,
    DELETE_PERMISSION,
    create_tag_rule,
    delete_tag_rule,
    request_tag_rule_apply,
    update_tag_rule,
)
from segments.summary import summarise_rules
from segments.tag_queries import count_rule_tagged, get_tag_rule, list_tag_rules

VIEW_PERMISSION = "segments.view_tagrule"
FORM_FIELDS = ("tag", "is_active", "definition")


@dataclass
class TagRuleInput:
    """The form as posted: the values to show again and what is wrong with them."""

    tag: str = ""
    is_active: bool = True
    definition_json: str = json.dumps(NEW_DEFINITION)
    definition: Any = None
    field_errors: dict[str, list[str]] = field(default_factory=dict)
    rule_errors: list[RuleError] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return bool(self.field_errors or self.rule_errors or self.errors)


def _input_from(rule: TagRule) -> TagRuleInput:
    return TagRuleInput(
        tag=rule.tag.name,
        is_active=rule.is_active,
        definition_json=json.dumps(rule.definition, ensure_ascii=False),
        definition=rule.definition,
    )


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON, though Python's parser reads them by default.
    raise ValueError(_("%(name)s is not a JSON value.") % {"name": name})


def _parse(request: HttpRequest, rule: TagRule | None) -> TagRuleInput:
    posted = TagRuleInput(
        tag=rule.tag.name if rule else request.POST.get("tag", ""),
        is_active=request.POST.get("is_active") == "on",
        definition_json=request.POST.get("definition", ""),
    )
    try:
        posted.definition = json.loads(posted.definition_json, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        posted.field_errors["definition"] = [
            _("The rules are not valid JSON: %(error)s") % {"error": error}
        ]
    return posted


def _save(request: HttpRequest, posted: TagRuleInput, rule: TagRule | None) -> TagRule | None:
    """Create or update through the services; on failure the errors land on posted."""
    try:
        if rule is None:
            return create_tag_rule(
                tag_name=posted.tag,
                definition=posted.definition,
                is_active=posted.is_active,
                actor=request.user,
            )
        return update_tag_rule(
            tag_rule_id=rule.pk,
            definition=posted.definition,
            is_active=posted.is_active,
            actor=request.user,
        )
    except TagRule.DoesNotExist as missing:
        raise Http404(
            _("There is no tag rule %(id)d.") % {"id": rule.pk if rule else 0}
        ) from missing
    except IntegrityError:
        # Another save made a rule for the same tag between the service's check and its insert.
        posted.field_errors["tag"] = [
            _("Tag %(tag)s already has a rule.") % {"tag": posted.tag.strip()}
        ]
    except RulesInvalid as invalid:
        posted.rule_errors = list(invalid.errors)
    except ValidationError as error:
        if hasattr(error, "error_dict"):
            for name, problems in error.message_dict.items():
                key = name if name in FORM_FIELDS else "__all__"
                posted.field_errors.setdefault(key, []).extend(problems)
        else:
            posted.errors.extend(error.messages)
    return None


def _render_form(
    request: HttpRequest, rule: TagRule | None, posted: TagRuleInput, *, status: int = 200
) -> HttpResponse:
    context = {
        "rule": rule,
        "posted": posted,
        "builder_config": builder_config(exclude_segment_id=None, rule_errors=posted.rule_errors),
        "rule_errors": posted.rule_errors,
    }
    return render(request, "segments/tag_rule_form.html", context, status=status)


def _form(request: HttpRequest, rule: TagRule | None) -> HttpResponse:
    if request.method != "POST":
        return _render_form(request, rule, _input_from(rule) if rule else TagRuleInput())
    posted = _parse(request, rule)
    saved = None if posted.has_errors else _save(request, posted, rule)
    if saved is None:
        return _render_form(request, rule, posted, status=400)
    if saved.is_active:
        text = _("The rule of tag %(tag)s is saved; it is being applied to every customer.")
    else:
        text = _("The rule of tag %(tag)s is saved and paused: it changes no tags.")
    messages.success(request, text % {"tag": saved.tag.name})
    return redirect("segments:tag_rules")


def _rule_or_404(tag_rule_id: int) -> TagRule:
    rule = get_tag_rule(tag_rule_id)
    if rule is None:
        raise Http404(_("There is no tag rule %(id)d.") % {"id": tag_rule_id})
    return rule


def _list_page(request: HttpRequest, *, status: int = 200) -> HttpResponse:
    found = list_tag_rules()
    rows = [
        {
            "row": row,
            "summary": summarise_rules(row.rule.definition, segment_names=found.segment_names),
        }
        for row in found.rows
    ]
    return render(request, "segments/tag_rule_list.html", {"rows": rows}, status=status)


@require_GET
@permission_required(VIEW_PERMISSION, raise_exception=True)
def tag_rule_list(request: HttpRequest) -> HttpResponse:
    return _list_page(request)


@require_http_methods(["GET", "POST"])
@permission_required(ADD_PERMISSION, raise_exception=True)
def tag_rule_new(request: HttpRequest) -> HttpResponse:
    return _form(request, None)


@require_http_methods(["GET", "POST"])
@permission_required(CHANGE_PERMISSION, raise_exception=True)
def tag_rule_edit(request: HttpRequest, tag_rule_id: int) -> HttpResponse:
    return _form(request, _rule_or_404(tag_rule_id))


@require_http_methods(["GET", "POST"])
@permission_required(DELETE_PERMISSION, raise_exception=True)
def tag_rule_delete(request: HttpRequest, tag_rule_id: int) -> HttpResponse:
    """GET asks for a confirmation; the POST of its button deletes."""
    rule = _rule_or_404(tag_rule_id)
    if request.method != "POST":
        context = {"rule": rule, "tagged": count_rule_tagged(rule)}
        return render(request, "segments/tag_rule_delete.html", context)
    try:
        removed = delete_tag_rule(tag_rule_id=rule.pk, actor=request.user)
    except TagRule.DoesNotExist as missing:
        raise Http404(_("There is no tag rule %(id)d.") % {"id": tag_rule_id}) from missing
    messages.success(
        request,
        ngettext(
            "The rule of tag %(tag)s is deleted; %(count)d customer lost the tag it gave.",
            "The rule of tag %(tag)s is deleted; %(count)d customers lost the tag it gave.",
            removed,
        )
        % {"tag": rule.tag.name, "count": removed},
    )
    return redirect("segments:tag_rules")


@require_POST
@permission_required(CHANGE_PERMISSION, raise_exception=True)
def tag_rule_apply(request: HttpRequest, tag_rule_id: int) -> HttpResponse:
    rule = _rule_or_404(tag_rule_id)
    try:
        request_tag_rule_apply(tag_rule_id=rule.pk, actor=request.user)
    except TagRule.DoesNotExist as missing:
        raise Http404(_("There is no tag rule %(id)d.") % {"id": tag_rule_id}) from missing
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return _list_page(request, status=400)
    messages.success(
        request,
        _("The rule of tag %(tag)s is being applied to every customer.") % {"tag": rule.tag.name},
    )
    return redirect("segments:tag_rules")
