import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Imports run one way: an app may import only the apps to its right.
LAYERS = ["console", "reports", "campaigns", "segments", "loyalty", "customers"]


def _app_of(module: str) -> str | None:
    head = module.split(".", 1)[0]
    return head if head in LAYERS else None


def _references(path: Path) -> list[tuple[int, str]]:
    """Imported modules and "app.Model" strings passed to relation fields, with line numbers."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in {"ForeignKey", "OneToOneField", "ManyToManyField"} and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.append((node.lineno, first.value))
    return found


def find_violations(root: Path) -> list[str]:
    violations = []
    for app in LAYERS:
        allowed = set(LAYERS[LAYERS.index(app) :])
        for path in sorted((root / app).rglob("*.py")):
            for lineno, target in _references(path):
                other = _app_of(target)
                if other and other not in allowed:
                    violations.append(f"{path.relative_to(root)}:{lineno} {app} -> {other}")
    return violations


def test_apps_import_only_downwards() -> None:
    assert find_violations(ROOT) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from segments.models import Segment\n", ["customers/bad.py:1 customers -> segments"]),
        ("import campaigns.services\n", ["customers/bad.py:1 customers -> campaigns"]),
        (
            "from django.db import models\nx = models.ForeignKey('loyalty.Tier', on_delete=None)\n",
            ["customers/bad.py:2 customers -> loyalty"],
        ),
        ("from customers.models import Customer\n", []),
    ],
    ids=["from-import-up", "import-up", "string-fk-up", "same-app"],
)
def test_the_check_catches_an_upward_reference(
    tmp_path: Path, source: str, expected: list[str]
) -> None:
    for app in LAYERS:
        (tmp_path / app).mkdir()
    (tmp_path / "customers" / "bad.py").write_text(source)
    assert find_violations(tmp_path) == expected
