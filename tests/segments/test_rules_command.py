from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import translation

from customers.models import Customer
from tests.segments.test_compiler import make_people


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    with translation.override("en"):
        yield


@pytest.fixture
def people(db: None) -> dict[str, Customer]:
    return make_people()


def rules_file(tmp_path: Path, tree: Any) -> str:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(tree, ensure_ascii=False), encoding="utf-8")
    return str(path)


def run(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("segment_preview", *args, stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    result: dict[str, Any] = json.loads(lines[0])
    return result


def test_the_command_prints_one_json_object_with_the_count_and_the_time(
    people: dict[str, Customer], tmp_path: Path
) -> None:
    # given
    path = rules_file(
        tmp_path,
        {
            "event": "add_to_cart",
            "within_hours": 48,
            "not_followed_by": {"event": "order", "within_hours": 24},
        },
    )

    # when
    result = run(path, "--as-of", "2025-06-15T12:00:00+08:00")

    # then
    assert result["count"] == 2
    assert result["sample_ids"] == [people["B"].pk, people["C"].pk]
    assert result["as_of"] == "2025-06-15T12:00:00+08:00"
    assert isinstance(result["sql_ms"], float)
    assert result["sql"].startswith("SELECT")
    assert "add_to_cart" in result["params"]


def test_without_as_of_the_command_counts_as_of_now(
    people: dict[str, Customer], tmp_path: Path
) -> None:
    # given: 张伟 registered 2025-06-15, long before the test runs
    path = rules_file(tmp_path, {"field": "registered_at", "op": "within_last_days", "value": 1})

    # when
    result = run(path)

    # then
    assert result["count"] == 0


def test_invalid_rules_print_the_errors_as_json_and_fail(db: None, tmp_path: Path) -> None:
    # given
    path = rules_file(tmp_path, {"all": [{"field": "city", "op": "gt", "value": "上海"}]})
    out = StringIO()

    # when
    with pytest.raises(CommandError, match=r"the rules are invalid \(1 error\(s\)\)"):
        call_command("segment_preview", path, stdout=out)

    # then
    assert json.loads(out.getvalue()) == {
        "errors": [{"path": "all[0].op", "message": "'gt' is not an op of text field 'city'"}]
    }


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, [], "no such file"),
        ("{not json", [], "is not valid JSON"),
        ('{"all": []}', ["--as-of", "tomorrow"], "is not an ISO 8601 date and time"),
    ],
    ids=["missing-file", "not-json", "bad-as-of"],
)
def test_a_bad_file_or_option_is_a_clear_command_error(
    db: None, tmp_path: Path, content: str | None, args: list[str], message: str
) -> None:
    # given
    path = tmp_path / "rules.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")

    # when / then
    with pytest.raises(CommandError, match=message):
        call_command("segment_preview", str(path), *args, stdout=StringIO())
