"""A static files finder that serves Plotly's JavaScript from the installed plotly package.

The page loads Plotly from our own static files, never a CDN (offline use, a strict CSP), and the
file stays the one that matches the installed Python package: no copy to keep in step. Only that
one file is exposed, at vendor/plotly.min.js. It works with runserver, WhiteNoise's finders (in
development) and collectstatic (in production), which reads list() and the storage's prefix.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.checks import CheckMessage, Error
from django.core.files.storage import FileSystemStorage

PREFIX = "vendor"
FILE_NAME = "plotly.min.js"
URL_PATH = f"{PREFIX}/{FILE_NAME}"


def plotly_js_path() -> Path:
    return Path(plotly.__file__).resolve().parent / "package_data" / FILE_NAME


class PlotlyFinder(BaseFinder):
    def check(self, **kwargs: Any) -> list[CheckMessage]:
        if not plotly_js_path().is_file():
            return [
                Error(
                    f"{plotly_js_path()} is missing: reinstall the plotly package.",
                    id="console.E001",
                )
            ]
        return []

    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> Any:
        # Django 5.2 still passes the deprecated "all" now and then.
        find_all = bool(find_all or kwargs.get("all", False))
        source = plotly_js_path()
        if path.replace("\\", "/") != URL_PATH or not source.is_file():
            return [] if find_all else None
        return [str(source)] if find_all else str(source)

    def list(
        self, ignore_patterns: Iterable[str] | None
    ) -> Iterator[tuple[str, FileSystemStorage]]:
        source = plotly_js_path()
        if not source.is_file():
            return
        storage = FileSystemStorage(location=str(source.parent))
        # collectstatic and WhiteNoise put the file under this prefix, as for STATICFILES_DIRS.
        storage.prefix = PREFIX  # type: ignore[attr-defined]
        yield FILE_NAME, storage
