"""The builder's "why is a customer in or not in these rules?": one customer explained against the
tree being edited, before it is saved.

POST (form-encoded, with the page's CSRF token) rules: the tree as JSON, customer: an id, an
external id or a name, and on an existing segment's page segment: its id (a reference back to it
is an error, as when saving). Answers the explain tree as an HTML fragment, or 400 with every
problem under its field: the rules' errors each at its path, an unknown or ambiguous customer.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from customers.models import Customer
from segments.explain_queries import explain_tree_for_customer
from segments.page_queries import find_customer
from segments.rules import RuleError, RulesInvalid, validate_rules

VIEW_PERMISSION = "segments.view_segment"
WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")
MAX_CUSTOMER_TEXT = 200  # longer than any external id or name; a longer text names nobody
RESULT_TEMPLATE = "segments/_builder_explain_result.html"


class _NotJson(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON, though Python's parser reads them by default.
    raise _NotJson(_("%(name)s is not a JSON value.") % {"name": name})


def _parse_rules(text: str | None, errors: dict[str, list[str]]) -> tuple[bool, Any]:
    """(True, tree) for JSON text; (False, None) with the problem put in errors otherwise."""
    if text is None or not text.strip():
        errors["rules"] = [_("The rules are missing.")]
        return False, None
    try:
        return True, json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        errors["rules"] = [_("The rules are not valid JSON: %(error)s") % {"error": error}]
        return False, None


def _find_customer(text: str, errors: dict[str, list[str]]) -> Customer | None:
    if not text:
        errors["customer"] = [_("Type a customer's id, external id or name.")]
        return None
    customer, namesakes = find_customer(text) if len(text) <= MAX_CUSTOMER_TEXT else (None, 0)
    if customer is not None:
        return customer
    if namesakes:
        message = _("%(count)d customers are named %(name)s: type an external id instead.") % {
            "count": namesakes,
            "name": text,
        }
    else:
        message = _("No customer has the id, external id or name %(text)s.") % {
            "text": text[:MAX_CUSTOMER_TEXT]
        }
    errors["customer"] = [message]
    return None


@require_POST
@permission_required(VIEW_PERMISSION, raise_exception=True)
def builder_explain(request: HttpRequest) -> HttpResponse:
    field_errors: dict[str, list[str]] = {}
    rule_errors: list[RuleError] = []
    segment_text = request.POST.get("segment", "").strip()
    segment_id = None
    if WHOLE_NUMBER.fullmatch(segment_text):
        segment_id = int(segment_text)
    elif segment_text:
        field_errors["segment"] = [_("segment must be the id of the segment being edited.")]
    has_tree, tree = _parse_rules(request.POST.get("rules"), field_errors)
    customer = _find_customer(request.POST.get("customer", "").strip(), field_errors)
    context: dict[str, Any] = {"explain_customer": customer}
    if has_tree and customer is not None and not field_errors:
        try:
            explanation = explain_tree_for_customer(
                tree, customer_id=customer.pk, as_of=timezone.now(), segment_id=segment_id
            )
        except RulesInvalid as invalid:
            rule_errors = list(invalid.errors)
        except Customer.DoesNotExist:  # deleted since it was found
            field_errors["customer"] = [
                _("No customer has the id, external id or name %(text)s.")
                % {"text": customer.external_id}
            ]
        else:
            context.update({"explain_tree": explanation.tree, "explain_as_of": explanation.as_of})
    elif has_tree:
        # Say what is wrong with the rules too, so that one answer names every problem.
        rule_errors = validate_rules(tree, segment_id=segment_id)
    context.update({"explain_field_errors": field_errors, "explain_rule_errors": rule_errors})
    status = 400 if field_errors or rule_errors else 200
    return render(request, RESULT_TEMPLATE, context, status=status)
