"""The errors of the rule language: each names the path of the bad node and what is wrong."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError


@dataclass(frozen=True)
class RuleError:
    """One problem in a rule tree.

    path is where in the tree, written like "all[2].any[0].op" ("" is the root); message says what
    is wrong in words an operator understands.
    """

    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class RulesInvalid(ValidationError):
    """A rule tree that cannot be compiled; .errors lists every problem found."""

    def __init__(self, errors: list[RuleError]) -> None:
        self.errors = list(errors)
        super().__init__([str(error) for error in self.errors], code="invalid_rules")
