"""The benchmark database: found, created fresh, migrated and filled with customers.

Plain psycopg here, no Django in the parent process: what runs under measurement runs in a child
process with its own Django, so the harness neither shares its connections nor pollutes its memory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dj_database_url
import psycopg
from psycopg import sql

from bench import generate

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/yunying_bench"


def database_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL


def connect_kwargs(url: str, *, dbname: str | None = None) -> dict[str, Any]:
    config = dj_database_url.parse(url)
    return {
        "host": config["HOST"] or "127.0.0.1",
        "port": int(config["PORT"] or 5432),
        "user": config["USER"] or "postgres",
        "password": config["PASSWORD"] or None,
        "dbname": dbname or config["NAME"],
        "connect_timeout": 3,
    }


def why_not_available(url: str) -> str | None:
    """None when PostgreSQL answers at url's server, else the reason it does not."""
    try:
        with psycopg.connect(**connect_kwargs(url, dbname="postgres")):
            return None
    except psycopg.Error as error:
        return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def connect(url: str) -> psycopg.Connection[Any]:
    """A connection to the benchmark database, in the project's time zone for naive times."""
    connection = psycopg.connect(**connect_kwargs(url), autocommit=True)
    connection.execute("SET TimeZone = 'Asia/Shanghai'")
    return connection


def child_env(url: str) -> dict[str, str]:
    """The environment of a Django process working on the benchmark database."""
    env = dict(os.environ)
    env["DATABASE_URL"] = url
    env.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BASE_DIR), env.get("PYTHONPATH")]))
    return env


def create_fresh(url: str) -> None:
    """Drop and create the database, then run the project's migrations in it."""
    name = connect_kwargs(url)["dbname"]
    if not name.startswith("yunying_bench"):
        # Dropping a database is only safe on one the benchmark owns.
        raise SystemExit(f"bench: refusing to drop {name!r}: name it yunying_bench...")
    with psycopg.connect(**connect_kwargs(url, dbname="postgres"), autocommit=True) as admin:
        identifier = sql.Identifier(name)
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(identifier))
    subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "migrate", "--no-input", "-v", "0"],
        env=child_env(url),
        cwd=BASE_DIR,
        check=True,
    )


def insert_customers(url: str, count: int) -> float:
    """Make `count` customers in one statement and analyse the table; returns the seconds."""
    started = time.perf_counter()
    statement, params = generate.customers_sql(count)
    with connect(url) as connection:
        connection.execute(statement, params)
        connection.execute("VACUUM ANALYZE customers_customer")
    return time.perf_counter() - started
