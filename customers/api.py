"""The ingest API: a shop posts batches of orders and events with its source's API key.

Every answer is JSON, errors included: 401 without a valid key, 405 for a method other than
POST, 413 for a batch over settings.INGEST_MAX_BATCH items (or a body over the upload limit),
400 for a body that is not JSON or not a batch, and 400 with every item error when any item is
bad, in which case nothing was written. Bad input never gets a 500.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from customers.ingest.batch import BatchTooLarge, ingest_batch
from customers.services import authenticate_api_key

# The messages are for the developer wiring a shop to the API, so they stay in English.
KEY_HELP = "send it as 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'"


def _error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def _presented_key(request: HttpRequest) -> str | None:
    scheme, _space, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.headers.get("X-Api-Key", "").strip() or None


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON, though Python's parser reads them by default.
    raise ValueError(f"{name} is not valid JSON")


def _items_of(body: Any) -> list[Any] | str:
    """The batch's items, or why the body is not a batch."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        if "items" not in body:
            return 'the body must be a JSON array of items or an object {"items": [...]}'
        unknown = sorted(str(key) for key in body if key != "items")
        if unknown:
            return f"unknown key(s) next to 'items': {', '.join(unknown)}"
        if not isinstance(body["items"], list):
            return "'items' must be a JSON array"
        return list(body["items"])
    return 'the body must be a JSON array of items or an object {"items": [...]}'


def _ingest(request: HttpRequest, *, kind: str) -> JsonResponse:
    if request.method != "POST":
        response = _error(405, f"use POST to send a batch of {kind}")
        response["Allow"] = "POST"
        return response
    raw_key = _presented_key(request)
    if raw_key is None:
        response = _error(401, f"an API key is required: {KEY_HELP}")
        response["WWW-Authenticate"] = 'Bearer realm="ingest"'
        return response
    if authenticate_api_key(raw_key) is None:
        response = _error(401, "the API key is not valid or has been deactivated")
        response["WWW-Authenticate"] = 'Bearer realm="ingest", error="invalid_token"'
        return response
    try:
        body = json.loads(request.body, parse_constant=_reject_constant)
    except RequestDataTooBig:
        return _error(413, "the request body is too large: send smaller batches")
    except (ValueError, RecursionError) as error:
        # ValueError covers JSONDecodeError and bytes that are not UTF-8 text.
        return _error(400, f"the body is not valid JSON: {error}")
    items = _items_of(body)
    if isinstance(items, str):
        return _error(400, items)
    try:
        result = ingest_batch(kind=kind, items=items)
    except BatchTooLarge as error:
        return _error(
            413,
            f"too many items: {error}; split it into batches of at most {error.limit}",
            max_items=error.limit,
        )
    if not result.is_accepted:
        return _error(
            400,
            f"{len({error.index for error in result.errors})} bad item(s); nothing was written",
            errors=[error.as_dict() for error in result.errors],
        )
    return JsonResponse(result.counts())


@csrf_exempt
@login_not_required
def ingest_orders(request: HttpRequest) -> JsonResponse:
    return _ingest(request, kind="orders")


@csrf_exempt
@login_not_required
def ingest_events(request: HttpRequest) -> JsonResponse:
    return _ingest(request, kind="events")
