"""Typed reads of one key of a JSON column, the same on SQLite and PostgreSQL.

Each expression is NULL unless the key holds a value of its type, so a comparison never mixes
types (PostgreSQL's jsonb orders every string before every number; SQLite every number before
every text) and a cast never sees a value it cannot read: the CASE runs the cast only for a value
of the right type. The key is a bound parameter, never part of the SQL text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BooleanField, Expression, F, FloatField, TextField
from django.db.models.sql.compiler import SQLCompiler
from django.db.utils import NotSupportedError

# The normalised JSON type names JsonKeyType yields (PostgreSQL's jsonb_typeof names).
JSON_TYPES = ("string", "number", "boolean", "null", "array", "object")


def _sqlite_path(key: str) -> str:
    # Keys are letters, digits, "_" and "-" (fields.ATTRIBUTE_KEY_RE): no quote to escape.
    return f'$."{key}"'


class _JsonKey(Expression):
    def __init__(self, column: str | Expression, key: str) -> None:
        super().__init__()
        self.column: Any = F(column) if isinstance(column, str) else column
        self.key = key

    def get_source_expressions(self) -> list[Any]:
        return [self.column]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        (self.column,) = exprs

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, Any]:
        raise NotSupportedError(f"JSON rules need SQLite or PostgreSQL, not {connection.vendor}")

    def _sqlite(self, compiler: SQLCompiler, template: str) -> tuple[str, Any]:
        column_sql, column_params = compiler.compile(self.column)
        path = _sqlite_path(self.key)
        count = template.count("{column}")
        return (
            template.format(column=column_sql),
            [param for _ in range(count) for param in (*column_params, path)],
        )

    def _postgresql(self, compiler: SQLCompiler, template: str) -> tuple[str, Any]:
        column_sql, column_params = compiler.compile(self.column)
        count = template.count("{column}")
        return (
            template.format(column=column_sql),
            [param for _ in range(count) for param in (*column_params, self.key)],
        )


class JsonKeyText(_JsonKey):
    """The key's value when it is a JSON string, else NULL."""

    output_field = TextField()

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, Any]:
        return self._sqlite(
            compiler,
            "(CASE WHEN json_type({column}, %s) = 'text' THEN json_extract({column}, %s) END)",
        )

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, Any]:
        return self._postgresql(
            compiler,
            "(CASE WHEN jsonb_typeof({column} -> %s::text) = 'string' "
            "THEN ({column} ->> %s::text) END)",
        )


class JsonKeyNumber(_JsonKey):
    """The key's value when it is a JSON number, else NULL."""

    output_field = FloatField()

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, Any]:
        return self._sqlite(
            compiler,
            "(CASE WHEN json_type({column}, %s) IN ('integer', 'real') "
            "THEN json_extract({column}, %s) END)",
        )

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, Any]:
        return self._postgresql(
            compiler,
            "(CASE WHEN jsonb_typeof({column} -> %s::text) = 'number' "
            "THEN ({column} ->> %s::text)::double precision END)",
        )


class JsonKeyBool(_JsonKey):
    """True or false when the key holds JSON true or false, else NULL."""

    output_field = BooleanField()

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, Any]:
        return self._sqlite(
            compiler, "(CASE json_type({column}, %s) WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)"
        )

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, Any]:
        return self._postgresql(
            compiler,
            "(CASE jsonb_typeof({column} -> %s::text) WHEN 'boolean' "
            "THEN ({column} ->> %s::text)::boolean END)",
        )


class JsonKeyType(_JsonKey):
    """The JSON type of the key's value as jsonb_typeof names it; NULL when the key is absent."""

    output_field = TextField()

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, Any]:
        return self._sqlite(
            compiler,
            "(CASE json_type({column}, %s) WHEN 'text' THEN 'string' WHEN 'integer' THEN 'number' "
            "WHEN 'real' THEN 'number' WHEN 'true' THEN 'boolean' WHEN 'false' THEN 'boolean' "
            "WHEN 'null' THEN 'null' WHEN 'array' THEN 'array' WHEN 'object' THEN 'object' END)",
        )

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, Any]:
        return self._postgresql(compiler, "jsonb_typeof({column} -> %s::text)")
