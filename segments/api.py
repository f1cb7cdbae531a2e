"""POST /api/v1/segments/preview: the builder's live count of a rule tree.

For logged-in users who may view customers, through the session, with Django's CSRF check as
any browser POST (the builder sends the X-CSRFToken header). Ingest API keys do not open it.
Body: {"rules": <tree>, "as_of": optional ISO datetime}. Answers {"count", "sample", "sql_ms",
"as_of"}, or 400 {"errors": [{"path", "message"}]} naming each problem; never a 500 for bad
input.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.utils.translation import gettext as _

from customers.templatetags.customer_contact import display_phone
from segments.rules.errors import RuleError, RulesInvalid
from segments.rules.preview import PreviewTimedOut, parse_as_of, preview_rules

PREVIEW_PERMISSION = "customers.view_customer"
BODY_KEYS = ("rules", "as_of")


def _errors(errors: list[RuleError], status: int = 400) -> JsonResponse:
    return JsonResponse({"errors": [error.as_dict() for error in errors]}, status=status)


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON, though Python's parser reads them by default.
    raise ValueError(f"{name} is not valid JSON")


def preview(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        response = _errors([RuleError("", _("Use POST to preview rules."))], status=405)
        response["Allow"] = "POST"
        return response
    if not request.user.has_perm(PREVIEW_PERMISSION):
        return _errors([RuleError("", _("You may not view customers."))], status=403)
    try:
        body = json.loads(request.body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return _errors([RuleError("", _("The body is not valid JSON."))])
    if not isinstance(body, dict):
        return _errors([RuleError("", _('The body must be a JSON object {"rules": ...}.'))])
    problems = [
        RuleError(
            str(key), _("Unknown key %(key)s: the body takes rules, as_of.") % {"key": f"'{key}'"}
        )
        for key in body
        if key not in BODY_KEYS
    ]
    if "rules" not in body:
        problems.append(RuleError("rules", _("The rules are missing.")))
    as_of = None
    if body.get("as_of") is not None:
        try:
            as_of = parse_as_of(body["as_of"])
        except ValueError as error:
            problems.append(RuleError("as_of", str(error)))
    if problems:
        return _errors(problems)
    try:
        result = preview_rules(
            body["rules"], as_of=as_of, timeout_ms=settings.SEGMENT_PREVIEW_TIMEOUT_MS
        )
    except RulesInvalid as invalid:
        return _errors(invalid.errors)
    except PreviewTimedOut as timed_out:
        return _errors([RuleError("", str(timed_out))])
    sample = [
        {
            "id": customer.pk,
            "external_id": customer.external_id,
            "name": customer.name,
            "city": customer.city,
            "phone": display_phone(customer.phone, user=request.user),
            "url": reverse("customer_360", args=[customer.pk]),
        }
        for customer in result.sample
    ]
    return JsonResponse(
        {
            "count": result.count,
            "sample": sample,
            "sql_ms": result.sql_ms,
            "as_of": result.as_of.isoformat(),
        },
        json_dumps_params={"ensure_ascii": False},
    )
