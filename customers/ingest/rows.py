"""Parse and validate one row of a CSV file or one item of an API batch.

The one copy of the rules for customers, orders and events: the CSV import and the ingest API both
call parse_values() with a kind's Schema and get back a typed row or the list of what is wrong
with it. Raw values are strings (CSV cells) or JSON values (API items); None means "absent".
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, NamedTuple, TypeVar

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone

from customers.models import AcquisitionChannel, Gender, OrderStatus

ID_MAX_LENGTH = 64
AMOUNT_LIMIT = Decimal("10000000000")  # max_digits=12, decimal_places=2 leaves 10 integer digits
CENT = Decimal("0.01")
EMAIL_MAX_LENGTH = 254  # Customer.email; validate_email alone lets longer addresses through
EARLIEST_YEAR = 1900
LATEST_YEAR = 2100

RowT = TypeVar("RowT")


class InvalidValue(ValueError):
    """A value that cannot be parsed; its message is the reason shown to the user."""


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    parse: Callable[[Any], Any]
    is_required: bool = False


class Schema(Generic[RowT]):
    """The fields of one kind, in the order of its row type's attributes."""

    def __init__(
        self, kind: str, id_field: str, row_type: Callable[..., RowT], fields: Sequence[Field]
    ) -> None:
        self.kind = kind
        self.id_field = id_field
        self.row_type = row_type
        self.fields = tuple(fields)
        self.names = tuple(field.name for field in self.fields)
        self.required_names = tuple(field.name for field in self.fields if field.is_required)


def parse_values(schema: Schema[RowT], values: Sequence[Any]) -> RowT | list[FieldError]:
    """Values in the schema's field order -> the typed row, or every field error it has."""
    parsed: list[Any] = []
    errors: list[FieldError] | None = None
    for field, raw in zip(schema.fields, values, strict=True):
        if field.is_required and (raw is None or (isinstance(raw, str) and not raw.strip())):
            errors = errors or []
            errors.append(FieldError(field.name, "missing required value"))
            continue
        try:
            parsed.append(field.parse(raw))
        except InvalidValue as error:
            errors = errors or []
            errors.append(FieldError(field.name, str(error)))
    if errors:
        return errors
    return schema.row_type(*parsed)


def parse_item(schema: Schema[RowT], item: object) -> RowT | list[FieldError]:
    """One JSON object of an API batch -> the typed row, or its errors (unknown keys included)."""
    if not isinstance(item, Mapping):
        return [FieldError(None, "must be a JSON object")]
    unknown = [FieldError(str(key), "unknown field") for key in item if key not in schema.names]
    result = parse_values(schema, [item.get(name) for name in schema.names])
    if unknown:
        return unknown + (result if isinstance(result, list) else [])
    return result


# Value parsers. Each takes a raw value (str from a CSV, any JSON value from the API, None when
# absent) and returns the typed value or raises InvalidValue.


# PostgreSQL text cannot hold NUL, and a lone surrogate (possible in JSON, never in UTF-8) cannot
# be encoded for it: either would fail the whole chunk's write instead of one row.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_storable(value: str) -> str:
    if "\x00" in value:
        raise InvalidValue("contains a NUL character")
    if not value.isascii() and _SURROGATE.search(value):
        raise InvalidValue("contains an invalid character (a lone surrogate)")
    return value


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _check_storable(value.strip())
    raise InvalidValue("must be text")


def text(max_length: int) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        result = _as_text(value)
        if len(result) > max_length:
            raise InvalidValue(f"longer than {max_length} characters")
        return result

    return parse


def parse_id(value: Any) -> str:
    """An external id: text, or a whole number from a JSON API."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    result = _as_text(value)
    if len(result) > ID_MAX_LENGTH:
        raise InvalidValue(f"longer than {ID_MAX_LENGTH} characters")
    return result


def _check_year(year: int) -> None:
    if not EARLIEST_YEAR <= year <= LATEST_YEAR:
        raise InvalidValue(f"year {year} is out of range ({EARLIEST_YEAR}-{LATEST_YEAR})")


def parse_datetime(value: Any) -> dt.datetime | None:
    """ISO 8601 date or date-time, with or without offset; naive means settings.TIME_ZONE."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidValue("must be an ISO 8601 date or date-time string")
    raw = value.strip()
    if not raw:
        return None
    try:
        # Python 3.11 reads every ISO 8601 form here: date only, "T" or space, Z, ±hh:mm.
        result = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidValue(
            f"not an ISO 8601 date or date-time: {raw!r}"
            " (e.g. 2024-05-01 or 2024-05-01T20:30:00+08:00)"
        ) from None
    _check_year(result.year)
    if result.tzinfo is None:
        result = result.replace(tzinfo=timezone.get_default_timezone())
    return result


def parse_date(value: Any) -> dt.date | None:
    raw = _as_text(value)
    if not raw:
        return None
    try:
        result = dt.date.fromisoformat(raw)
    except ValueError:
        raise InvalidValue(f"not an ISO 8601 date: {raw!r} (e.g. 1990-05-01)") from None
    _check_year(result.year)
    if result > timezone.localdate():
        raise InvalidValue("is in the future")
    return result


def parse_amount(value: Any) -> Decimal:
    """Yuan, at most 2 decimal places, not negative; a JSON number or a string."""
    if isinstance(value, bool) or value is None:
        raise InvalidValue("not a number")
    if isinstance(value, float):
        value = repr(value)
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, TypeError, ValueError):
        raise InvalidValue(f"not a number: {value!r}") from None
    if not amount.is_finite():
        raise InvalidValue(f"not a number: {value!r}")
    if amount < 0:
        raise InvalidValue("negative amount")
    if amount >= AMOUNT_LIMIT:
        raise InvalidValue("too large")
    # Checked by value, not by digits written: "12.500" is 12.50 and is accepted.
    cents = amount.quantize(CENT)
    if cents != amount:
        raise InvalidValue("more than 2 decimal places")
    return cents


def choice(
    choices: Mapping[str, str], default: str, allowed: Sequence[str]
) -> Callable[[Any], str]:
    message = "must be one of: " + ", ".join(allowed)

    def parse(value: Any) -> str:
        raw = _as_text(value).lower()
        if not raw:
            return default
        try:
            return choices[raw]
        except KeyError:
            raise InvalidValue(message) from None

    return parse


_TRUE = {"1", "true", "yes", "y", "t", "是"}
_FALSE = {"0", "false", "no", "n", "f", "否"}


def parse_flag(value: Any) -> bool | None:
    """A yes/no cell; blank is None (keep the current value: consent is never set by a blank)."""
    if isinstance(value, bool):
        return value
    raw = _as_text(value).lower()
    if not raw:
        return None
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise InvalidValue("must be true or false (1/0, yes/no)")


_PHONE_PUNCTUATION = re.compile(r"[\s\-().]")


def normalize_phone(value: Any) -> str:
    """A phone number in E.164; an 11-digit mainland number (1xxxxxxxxxx) gets +86."""
    raw = _as_text(value)
    if not raw:
        return ""
    number = _PHONE_PUNCTUATION.sub("", raw)
    if number.startswith("00"):
        number = "+" + number[2:]
    digits = number[1:] if number.startswith("+") else number
    if digits.isascii() and digits.isdigit():
        if number.startswith("+"):
            if 8 <= len(digits) <= 15 and digits[0] != "0":
                return number
        elif len(digits) == 11 and digits[0] == "1":
            return "+86" + digits
        elif len(digits) == 13 and digits.startswith("861"):
            return "+" + digits
    raise InvalidValue(
        f"not a phone number: {raw!r} (use +<country code><number> or an 11-digit mainland number)"
    )


def parse_email(value: Any) -> str:
    raw = _as_text(value)
    if not raw:
        return ""
    if len(raw) > EMAIL_MAX_LENGTH:
        raise InvalidValue(f"longer than {EMAIL_MAX_LENGTH} characters")
    try:
        validate_email(raw)
    except ValidationError:
        raise InvalidValue(f"not an e-mail address: {raw!r}") from None
    return raw


def _reject_constant(name: str) -> Any:
    raise InvalidValue(f"not valid JSON: {name} is not a JSON number")


def _check_json(value: Any) -> None:
    """Reject what JSON allows but a PostgreSQL jsonb column does not store."""
    if isinstance(value, str):
        _check_storable(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidValue(f"not valid JSON: {value} is not a JSON number")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json(key)
            _check_json(item)
    elif isinstance(value, list):
        for item in value:
            _check_json(item)


def parse_properties(value: Any) -> dict[str, Any]:
    """A JSON object: text in a CSV cell, an object in an API item; blank is {}."""
    if value is None:
        return {}
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            value = json.loads(value, parse_constant=_reject_constant)
        except RecursionError:
            raise InvalidValue("not valid JSON: nested too deeply") from None
        except InvalidValue:
            raise
        except ValueError as error:
            raise InvalidValue(f"not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise InvalidValue("must be a JSON object")
    try:
        _check_json(value)
    except RecursionError:
        raise InvalidValue("not valid JSON: nested too deeply") from None
    return value


TAG_SEPARATOR = ";"
TAG_MAX_LENGTH = 64


def parse_tags(value: Any) -> tuple[str, ...]:
    """Tag names separated by ';' (or a JSON list), blanks and repeats dropped, order kept."""
    if isinstance(value, list):
        names = [_as_text(name) for name in value]
    else:
        names = [name.strip() for name in _as_text(value).split(TAG_SEPARATOR)]
    # Inner runs of spaces collapse, as services.clean_tag_name does for a typed tag.
    result = tuple(dict.fromkeys(" ".join(name.split()) for name in names if name))
    for name in result:
        if len(name) > TAG_MAX_LENGTH:
            raise InvalidValue(f"tag {name[:20]!r}… is longer than {TAG_MAX_LENGTH} characters")
    return result


# The three kinds.


class OrderRow(NamedTuple):
    order_id: str
    customer_id: str
    placed_at: dt.datetime
    amount: Decimal
    status: str
    channel: str
    category: str


class EventRow(NamedTuple):
    event_id: str
    customer_id: str
    name: str
    occurred_at: dt.datetime
    properties: dict[str, Any]


class CustomerRow(NamedTuple):
    external_id: str
    name: str
    phone: str
    email: str
    wechat_openid: str
    city: str
    gender: str
    birth_date: dt.date | None
    channel: str
    registered_at: dt.datetime
    sms_opt_in: bool | None
    email_opt_in: bool | None
    push_opt_in: bool | None
    wechat_opt_in: bool | None
    unsubscribed_at: dt.datetime | None
    tags: tuple[str, ...]


_STATUSES = {status.value: status.value for status in OrderStatus}
_GENDERS = {
    **{gender.value: gender.value for gender in Gender},
    "female": Gender.FEMALE.value,
    "male": Gender.MALE.value,
    "unknown": Gender.UNKNOWN.value,
    "女": Gender.FEMALE.value,
    "男": Gender.MALE.value,
    "未知": Gender.UNKNOWN.value,
}
_CHANNELS = {channel.value: channel.value for channel in AcquisitionChannel}

ORDERS: Schema[OrderRow] = Schema(
    "orders",
    "order_id",
    OrderRow,
    [
        Field("order_id", parse_id, is_required=True),
        Field("customer_id", parse_id, is_required=True),
        Field("placed_at", parse_datetime, is_required=True),
        Field("amount", parse_amount, is_required=True),
        Field("status", choice(_STATUSES, OrderStatus.PAID.value, list(_STATUSES))),
        Field("channel", text(20)),
        Field("category", text(32)),
    ],
)

EVENTS: Schema[EventRow] = Schema(
    "events",
    "event_id",
    EventRow,
    [
        Field("event_id", parse_id, is_required=True),
        Field("customer_id", parse_id, is_required=True),
        Field("name", text(64), is_required=True),
        Field("occurred_at", parse_datetime, is_required=True),
        Field("properties", parse_properties),
    ],
)

CUSTOMERS: Schema[CustomerRow] = Schema(
    "customers",
    "external_id",
    CustomerRow,
    [
        Field("external_id", parse_id, is_required=True),
        Field("name", text(100)),
        Field("phone", normalize_phone),
        Field("email", parse_email),
        Field("wechat_openid", text(64)),
        Field("city", text(50)),
        Field("gender", choice(_GENDERS, Gender.UNKNOWN.value, ["f", "m", "u"])),
        Field("birth_date", parse_date),
        Field("channel", choice(_CHANNELS, AcquisitionChannel.OTHER.value, list(_CHANNELS))),
        Field("registered_at", parse_datetime, is_required=True),
        Field("sms_opt_in", parse_flag),
        Field("email_opt_in", parse_flag),
        Field("push_opt_in", parse_flag),
        Field("wechat_opt_in", parse_flag),
        Field("unsubscribed_at", parse_datetime),
        Field("tags", parse_tags),
    ],
)

SCHEMAS: dict[str, Schema[Any]] = {schema.kind: schema for schema in (CUSTOMERS, ORDERS, EVENTS)}
