"""Checks of the values in a rule tree, shared by every kind of node: numbers, texts, dates,
day counts, choices, lists and [from, to] pairs. Each check returns the normalised value, or
INVALID after recording an error with its path."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext as _

from segments.rules.errors import RuleError
from segments.rules.fields import ATTRIBUTE, BOOL, CHOICE, DATE, NUMBER, TEXT, FieldSpec
from segments.rules.nodes import BOOL_VALUE, NUMBER_VALUE, TEXT_VALUE
from segments.rules.schema import (
    DATE_RE,
    DAY_OPS,
    LIST_OPS,
    MAX_DATE,
    MAX_DAYS,
    MAX_LIST_VALUES,
    MAX_NAME_LENGTH,
    MAX_NUMBER,
    MAX_TEXT_LENGTH,
    MIN_DATE,
    NUMBER_ONLY_ATTRIBUTE_OPS,
    TEXT_ONLY_ATTRIBUTE_OPS,
)


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def index(path: str, position: int) -> str:
    return f"{path}[{position}]"


def kind_of(value: object) -> str:
    """How a JSON value is named in messages."""
    if value is None:
        return _("null")
    if isinstance(value, bool):
        return _("true/false")
    if isinstance(value, int | float):
        return _("a number")
    if isinstance(value, str):
        return _("text")
    if isinstance(value, list):
        return _("a list")
    return _("an object")


def type_name(spec: FieldSpec) -> str:
    names = {
        NUMBER: _("number field"),
        TEXT: _("text field"),
        DATE: _("date field"),
        BOOL: _("bool field"),
        CHOICE: _("choice field"),
        ATTRIBUTE: _("custom attribute"),
    }
    return names[spec.type]


class Invalid:
    def __repr__(self) -> str:
        return "<invalid>"


INVALID: Any = Invalid()


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def whole_number(value: object) -> int | None:
    """A JSON whole number (3 or 3.0) as int, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def quote(value: object) -> str:
    text = str(value)
    if len(text) > 40:
        text = text[:40] + "…"
    return f"'{text}'"


def kind_args(value: object) -> dict[str, str]:
    return {"kind": kind_of(value)}


def limit_args(limit: int) -> dict[str, int]:
    return {"limit": limit}


class ValueChecker:
    """The value checks; the validator of nodes builds on it."""

    def __init__(self) -> None:
        self.errors: list[RuleError] = []
        self._choices: dict[str, set[str]] = {}

    def error(self, path: str, message: str) -> None:
        self.errors.append(RuleError(path, message))

    def choices_of(self, spec: FieldSpec) -> set[str]:
        if spec.key not in self._choices:
            self._choices[spec.key] = {value for value, _label in spec.choice_options()}
        return self._choices[spec.key]

    def _typed_value(self, spec: FieldSpec, op: str, value: object, path: str) -> Any:
        if spec.type == NUMBER:
            if op == "between":
                return self._pair(value, path, lambda v, p: self._bounded(spec, v, p))
            return self._bounded(spec, value, path)
        if spec.type == TEXT:
            if op in LIST_OPS:
                return self._list(value, path, self._text)
            return self._text(value, path)
        if spec.type == DATE:
            if op in DAY_OPS:
                return self._days(value, path, minimum=1 if op == "within_last_days" else 0)
            if op == "between":
                return self._pair(value, path, self._date)
            return self._date(value, path)
        # CHOICE: in / not_in
        return self._list(value, path, lambda v, p: self._choice(spec, v, p))

    def _attribute_value(self, op: str, value: object, path: str) -> tuple[Any, str] | None:
        """A custom attribute's (or event property's) value and whether it compares as text,
        number or yes/no."""
        if op in NUMBER_ONLY_ATTRIBUTE_OPS:
            if op == "between":
                pair = self._pair(
                    value, path, lambda v, p: self._number(v, p, False, as_float=True)
                )
                return None if pair is INVALID else (pair, NUMBER_VALUE)
            number = self._number(value, path, False, as_float=True)
            return None if number is INVALID else (number, NUMBER_VALUE)
        if op in TEXT_ONLY_ATTRIBUTE_OPS:
            text = self._text(value, path)
            return None if text is INVALID else (text, TEXT_VALUE)
        if op in LIST_OPS:
            if isinstance(value, list) and value and all(is_number(item) for item in value):
                numbers = self._list(
                    value, path, lambda v, p: self._number(v, p, False, as_float=True)
                )
                return None if numbers is INVALID else (numbers, NUMBER_VALUE)
            if isinstance(value, list) and value and not all(isinstance(i, str) for i in value):
                self.error(
                    path,
                    _("%(op)s needs a list of texts or a list of numbers.") % {"op": quote(op)},
                )
                return None
            texts = self._list(value, path, self._text)
            return None if texts is INVALID else (texts, TEXT_VALUE)
        # eq / ne
        if isinstance(value, bool):
            return value, BOOL_VALUE
        if is_number(value):
            number = self._number(value, path, False, as_float=True)
            return None if number is INVALID else (number, NUMBER_VALUE)
        if isinstance(value, str):
            text = self._text(value, path)
            return None if text is INVALID else (text, TEXT_VALUE)
        self.error(
            path,
            _("The value must be text, a number or true/false, not %(kind)s.") % kind_args(value),
        )
        return None

    # -- values
    def _number(self, value: object, path: str, is_integer: bool, *, as_float: bool = False) -> Any:
        if not is_number(value):
            self.error(path, _("The value must be a number, not %(kind)s.") % kind_args(value))
            return INVALID
        assert isinstance(value, int | float)
        if isinstance(value, float) and not math.isfinite(value):
            self.error(path, _("The value must be a finite number."))
            return INVALID
        if abs(value) > MAX_NUMBER:
            self.error(
                path,
                _("The value must be between -%(limit)s and %(limit)s.")
                % {"limit": f"{MAX_NUMBER}"},
            )
            return INVALID
        if is_integer:
            if isinstance(value, float) and not value.is_integer():
                self.error(
                    path, _("The value must be a whole number, not %(value)s.") % {"value": value}
                )
                return INVALID
            return int(value)
        if as_float:
            return float(value)
        return Decimal(str(value))

    def _bounded(self, spec: FieldSpec, value: object, path: str) -> Any:
        number = self._number(value, path, spec.is_integer)
        if number is INVALID or spec.minimum is None or spec.maximum is None:
            return number
        if not spec.minimum <= number <= spec.maximum:
            self.error(
                path,
                _("%(key)s takes values from %(min)d to %(max)d.")
                % {"key": quote(spec.key), "min": spec.minimum, "max": spec.maximum},
            )
            return INVALID
        return number

    def _text(self, value: object, path: str) -> Any:
        if not isinstance(value, str):
            self.error(path, _("The value must be text, not %(kind)s.") % kind_args(value))
            return INVALID
        return self._checked_text(value, path, MAX_TEXT_LENGTH)

    def _checked_text(self, value: str, path: str, limit: int) -> Any:
        if len(value) > limit:
            self.error(path, _("The text is longer than %(limit)d characters.") % limit_args(limit))
            return INVALID
        if "\x00" in value:
            self.error(path, _("The text contains a NUL character."))
            return INVALID
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            self.error(path, _("The text is not valid Unicode."))
            return INVALID
        return value

    def _date(self, value: object, path: str) -> Any:
        parsed = None
        if isinstance(value, str) and DATE_RE.match(value):
            try:
                parsed = dt.date.fromisoformat(value)
            except ValueError:
                parsed = None
        if parsed is None or not MIN_DATE <= parsed <= MAX_DATE:
            shown = quote(value) if isinstance(value, str) else kind_of(value)
            self.error(
                path,
                _(
                    "The value must be a date written YYYY-MM-DD from %(min)s to %(max)s, "
                    "not %(value)s."
                )
                % {"min": MIN_DATE.isoformat(), "max": MAX_DATE.isoformat(), "value": shown},
            )
            return INVALID
        return parsed

    def _days(self, value: object, path: str, *, minimum: int) -> Any:
        days = whole_number(value)
        if days is None or not minimum <= days <= MAX_DAYS:
            self.error(
                path,
                _("The value must be a whole number of days from %(min)d to %(max)d.")
                % {"min": minimum, "max": MAX_DAYS},
            )
            return INVALID
        return days

    def _choice(self, spec: FieldSpec, value: object, path: str) -> Any:
        choices = self.choices_of(spec)
        if not isinstance(value, str) or value not in choices:
            shown = quote(value) if isinstance(value, str) else kind_of(value)
            self.error(
                path,
                _("%(value)s is not a choice of field %(key)s; choose from %(choices)s.")
                % {
                    "value": shown,
                    "key": quote(spec.key),
                    "choices": ", ".join(value for value, _label in spec.choice_options()),
                },
            )
            return INVALID
        return value

    def _list(self, value: object, path: str, item: Any) -> Any:
        if not isinstance(value, list):
            self.error(path, _("The value must be a list, not %(kind)s.") % kind_args(value))
            return INVALID
        if not value:
            self.error(path, _("The list needs at least one value."))
            return INVALID
        if len(value) > MAX_LIST_VALUES:
            self.error(
                path, _("The list has more than %(limit)d values.") % limit_args(MAX_LIST_VALUES)
            )
            return INVALID
        items = [item(entry, index(path, i)) for i, entry in enumerate(value)]
        if any(entry is INVALID for entry in items):
            return INVALID
        return tuple(items)

    def _pair(self, value: object, path: str, item: Any) -> Any:
        if not isinstance(value, list) or len(value) != 2:
            self.error(path, _("'between' needs a list of two values [from, to]."))
            return INVALID
        low = item(value[0], index(path, 0))
        high = item(value[1], index(path, 1))
        if low is INVALID or high is INVALID:
            return INVALID
        if low > high:
            self.error(
                path,
                _("'between' needs [from, to] with from <= to, not [%(low)s, %(high)s].")
                % {"low": value[0], "high": value[1]},
            )
            return INVALID
        return (low, high)

    def _name(self, value: object, path: str, what: str) -> Any:
        if not isinstance(value, str):
            self.error(
                path,
                _("%(what)s must be a name (text), not %(kind)s.")
                % {"what": quote(what), "kind": kind_of(value)},
            )
            return INVALID
        if not value.strip():
            self.error(path, _("%(what)s needs a name, not blank text.") % {"what": quote(what)})
            return INVALID
        return self._checked_text(value, path, MAX_NAME_LENGTH)
