from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from customers.ingest.rows import (
    CUSTOMERS,
    ORDERS,
    FieldError,
    InvalidValue,
    OrderRow,
    normalize_phone,
    parse_amount,
    parse_date,
    parse_datetime,
    parse_email,
    parse_flag,
    parse_properties,
    parse_tags,
    parse_values,
)

# The shared checkout must not collect a .hypothesis example database.
hypothesis_settings = settings(database=None, max_examples=200, deadline=None)

UTC = dt.UTC
cents = st.decimals(min_value=0, max_value=Decimal("9999999999.99"), places=2)
storable_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20
)


@hypothesis_settings
@given(amount=cents)
def test_an_amount_with_two_places_reads_back_as_the_same_number_of_cents(amount: Decimal) -> None:
    parsed = parse_amount(f"{amount:.2f}")

    assert parsed == amount
    assert str(parsed) == f"{amount:.2f}"


@hypothesis_settings
@given(amount=cents, zeros=st.integers(min_value=1, max_value=5))
def test_an_amount_with_trailing_zeros_past_the_cents_is_the_same_amount(
    amount: Decimal, zeros: int
) -> None:
    assert parse_amount(f" {amount:.2f}{'0' * zeros} ") == amount


@hypothesis_settings
@given(
    amount=st.decimals(max_value=Decimal("-0.01"), places=2, allow_nan=False, allow_infinity=False)
)
def test_a_negative_amount_is_rejected(amount: Decimal) -> None:
    with pytest.raises(InvalidValue, match="^negative amount$"):
        parse_amount(str(amount))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("199", "199.00"),
        ("0.5", "0.50"),
        ("+12.3", "12.30"),
        ("1E+2", "100.00"),
        ("9999999999.99", "9999999999.99"),
        (0.1, "0.10"),
        (199, "199.00"),
    ],
    ids=["whole", "one-place", "plus-sign", "exponent", "largest", "json-float", "json-int"],
)
def test_an_amount_is_read_as_decimal_cents(raw: Any, expected: str) -> None:
    assert str(parse_amount(raw)) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("abc", "not a number: 'abc'"),
        ("1,299.00", "not a number: '1,299.00'"),
        ("¥199", "not a number: '¥199'"),
        ("NaN", "not a number: 'NaN'"),
        ("Infinity", "not a number: 'Infinity'"),
        ("1.234", "more than 2 decimal places"),
        ("1E-9", "more than 2 decimal places"),
        ("10000000000", "too large"),
        ("-0.01", "negative amount"),
        (True, "not a number"),
        (None, "not a number"),
    ],
    ids=[
        "word",
        "thousands-separator",
        "currency-sign",
        "nan",
        "infinity",
        "three-places",
        "tiny-exponent",
        "eleven-digits",
        "negative",
        "json-bool",
        "absent",
    ],
)
def test_a_bad_amount_is_rejected_with_its_reason(raw: Any, reason: str) -> None:
    with pytest.raises(InvalidValue) as error:
        parse_amount(raw)

    assert str(error.value) == reason


offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)


@hypothesis_settings
@given(
    # Hypothesis takes naive bounds and adds the time zone itself.
    moment=st.datetimes(
        min_value=dt.datetime(1900, 1, 1),  # noqa: DTZ001
        max_value=dt.datetime(2100, 12, 31, 23, 59, 59),  # noqa: DTZ001
        timezones=offsets,
    ),
    separator=st.sampled_from(["T", " "]),
)
def test_a_datetime_with_an_offset_reads_back_as_the_same_instant(
    moment: dt.datetime, separator: str
) -> None:
    parsed = parse_datetime(moment.isoformat(sep=separator))

    assert parsed == moment
    assert parsed is not None
    assert parsed.utcoffset() == moment.utcoffset()


@pytest.mark.parametrize(
    ("raw", "expected_utc"),
    [
        ("2024-05-01 20:30:00", dt.datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),
        ("2024-05-01T20:30", dt.datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),
        ("2024-05-01", dt.datetime(2024, 4, 30, 16, 0, tzinfo=UTC)),
        ("2024-05-01T20:30:00+08:00", dt.datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),
        ("2024-05-01T20:30:00Z", dt.datetime(2024, 5, 1, 20, 30, tzinfo=UTC)),
        ("2024-05-01 20:30:00.250-05:00", dt.datetime(2024, 5, 2, 1, 30, 0, 250000, tzinfo=UTC)),
        # Shanghai kept summer time from 1986 to 1991: a naive time then was UTC+9.
        ("1988-07-01 12:00:00", dt.datetime(1988, 7, 1, 3, 0, tzinfo=UTC)),
        ("  2024-05-01  ", dt.datetime(2024, 4, 30, 16, 0, tzinfo=UTC)),
    ],
    ids=[
        "naive-space",
        "naive-minutes",
        "date-only",
        "shanghai-offset",
        "zulu",
        "other-offset-fraction",
        "naive-in-summer-time-1988",
        "padded",
    ],
)
def test_a_datetime_is_read_as_an_aware_instant_naive_meaning_shanghai(
    raw: str, expected_utc: dt.datetime
) -> None:
    parsed = parse_datetime(raw)

    assert parsed == expected_utc
    assert parsed is not None
    assert parsed.tzinfo is not None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (
            "2024/05/01",
            "not an ISO 8601 date or date-time: '2024/05/01'"
            " (e.g. 2024-05-01 or 2024-05-01T20:30:00+08:00)",
        ),
        (
            "yesterday",
            "not an ISO 8601 date or date-time: 'yesterday'"
            " (e.g. 2024-05-01 or 2024-05-01T20:30:00+08:00)",
        ),
        (
            "2024-02-30",
            "not an ISO 8601 date or date-time: '2024-02-30'"
            " (e.g. 2024-05-01 or 2024-05-01T20:30:00+08:00)",
        ),
        ("1899-12-31", "year 1899 is out of range (1900-2100)"),
        ("2101-01-01T00:00:00Z", "year 2101 is out of range (1900-2100)"),
        (20240501, "must be an ISO 8601 date or date-time string"),
    ],
    ids=["slashes", "word", "no-such-day", "too-early", "too-late", "json-number"],
)
def test_a_bad_datetime_is_rejected_with_its_reason(raw: Any, reason: str) -> None:
    with pytest.raises(InvalidValue) as error:
        parse_datetime(raw)

    assert str(error.value) == reason


def test_a_birth_date_in_the_future_is_rejected() -> None:
    with pytest.raises(InvalidValue, match="^is in the future$"):
        parse_date("2099-01-01")


def test_a_blank_birth_date_is_none() -> None:
    assert parse_date("  ") is None


tag_names = st.text(
    alphabet=st.characters(exclude_categories=("Cs", "Cc", "Z"), exclude_characters=";\x00"),
    min_size=1,
    max_size=64,
)


@hypothesis_settings
@given(names=st.lists(tag_names, max_size=8))
def test_tags_separated_by_semicolons_read_back_in_order_without_repeats(
    names: list[str],
) -> None:
    cell = " ; ".join(names) + ";"

    assert parse_tags(cell) == tuple(dict.fromkeys(names))


def test_inner_runs_of_spaces_in_a_tag_collapse_as_in_a_typed_tag() -> None:
    assert parse_tags("VIP  gold; VIP gold ;新\u3000客") == ("VIP gold", "新 客")


def test_a_tag_longer_than_64_characters_is_rejected() -> None:
    with pytest.raises(InvalidValue) as error:
        parse_tags("ok;" + "长" * 65)

    assert str(error.value) == f"tag {'长' * 20!r}… is longer than 64 characters"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | storable_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(storable_text, children, max_size=3)
    ),
    max_leaves=10,
)


@hypothesis_settings
@given(properties=st.dictionaries(storable_text, json_values, max_size=5))
def test_event_properties_read_back_as_the_same_json_object(properties: dict[str, Any]) -> None:
    assert parse_properties(json.dumps(properties, ensure_ascii=False)) == properties
    assert parse_properties(properties) == properties


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not json", "not valid JSON: Expecting value: line 1 column 1 (char 0)"),
        ("[1, 2]", "must be a JSON object"),
        ('"text"', "must be a JSON object"),
        ('{"price": NaN}', "not valid JSON: NaN is not a JSON number"),
        ('{"price": -Infinity}', "not valid JSON: -Infinity is not a JSON number"),
        ('{"note": "a\\u0000b"}', "contains a NUL character"),
        ('{"a\\u0000": 1}', "contains a NUL character"),
        ('{"note": "\\ud800"}', "contains an invalid character (a lone surrogate)"),
        ({"price": float("inf")}, "not valid JSON: inf is not a JSON number"),
        ('{"a": ' * 5000 + "1" + "}" * 5000, "not valid JSON: nested too deeply"),
    ],
    ids=[
        "not-json",
        "array",
        "string",
        "nan",
        "infinity",
        "nul-in-value",
        "nul-in-key",
        "lone-surrogate",
        "api-infinity",
        "too-deep",
    ],
)
def test_bad_event_properties_are_rejected_with_their_reason(raw: Any, reason: str) -> None:
    with pytest.raises(InvalidValue) as error:
        parse_properties(raw)

    assert str(error.value) == reason


def test_blank_event_properties_are_an_empty_object() -> None:
    assert parse_properties("  ") == {}


@hypothesis_settings
@given(number=st.integers(min_value=10**10, max_value=2 * 10**10 - 1))
def test_an_eleven_digit_mainland_mobile_number_gets_the_86_prefix(number: int) -> None:
    assert normalize_phone(str(number)) == f"+86{number}"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("138 1234 5678", "+8613812345678"),
        ("(138) 1234-5678", "+8613812345678"),
        ("008613812345678", "+8613812345678"),
        ("8613812345678", "+8613812345678"),
        ("+447700900123", "+447700900123"),
        ("", ""),
    ],
    ids=["spaces", "punctuation", "international-prefix", "code-without-plus", "other", "blank"],
)
def test_a_phone_number_is_stored_as_e164(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize("raw", ["12345", "+0123456789", "电话", "2345678901"])
def test_a_bad_phone_number_is_rejected(raw: str) -> None:
    with pytest.raises(InvalidValue) as error:
        normalize_phone(raw)

    assert str(error.value) == (
        f"not a phone number: {raw!r} (use +<country code><number> or an 11-digit mainland number)"
    )


def test_an_email_longer_than_the_column_is_rejected() -> None:
    address = "a" * 64 + "@" + ".".join(["b" * 63] * 3) + ".com"

    with pytest.raises(InvalidValue, match="^longer than 254 characters$"):
        parse_email(address)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("Yes", True), ("是", True), ("0", False), ("no", False), ("否", False)],
)
def test_a_consent_flag_reads_yes_and_no(raw: str, expected: bool) -> None:
    assert parse_flag(raw) is expected


def test_a_blank_consent_flag_is_none_so_it_changes_nothing() -> None:
    assert parse_flag(" ") is None


def test_a_bad_consent_flag_is_rejected() -> None:
    with pytest.raises(InvalidValue, match=r"^must be true or false \(1/0, yes/no\)$"):
        parse_flag("maybe")


def test_an_order_row_is_typed_with_defaults_for_blank_optional_cells() -> None:
    row = parse_values(ORDERS, ["O1", "C1", "2024-05-01", "199.9", "", "", ""])

    assert row == OrderRow(
        order_id="O1",
        customer_id="C1",
        placed_at=dt.datetime(2024, 4, 30, 16, 0, tzinfo=UTC),
        amount=Decimal("199.90"),
        status="paid",
        channel="",
        category="",
    )


def test_every_bad_cell_of_a_row_is_reported_in_column_order() -> None:
    errors = parse_values(ORDERS, [" ", "C1", "soon", "-1", "shipped", "x" * 21, "a\x00b"])

    assert errors == [
        FieldError("order_id", "missing required value"),
        FieldError(
            "placed_at",
            "not an ISO 8601 date or date-time: 'soon'"
            " (e.g. 2024-05-01 or 2024-05-01T20:30:00+08:00)",
        ),
        FieldError("amount", "negative amount"),
        FieldError("status", "must be one of: paid, refunded"),
        FieldError("channel", "longer than 20 characters"),
        FieldError("category", "contains a NUL character"),
    ]


def test_a_customer_row_maps_chinese_gender_and_keeps_blank_consent_as_none() -> None:
    values = dict.fromkeys(CUSTOMERS.names, "")
    values.update(external_id="C1", gender="女", registered_at="2024-01-02", sms_opt_in="0")

    row = parse_values(CUSTOMERS, list(values.values()))

    assert not isinstance(row, list)
    assert (row.gender, row.channel, row.sms_opt_in, row.email_opt_in) == (
        "f",
        "other",
        False,
        None,
    )
