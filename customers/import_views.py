"""The CSV import pages (admins): upload a file, then follow its run to the report."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.decorators import permission_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers

from customers.imports import (
    IMPORT_PERMISSION,
    RECENT_RUNS,
    check_upload,
    get_import_run,
    list_kind_columns,
    max_upload_bytes,
    start_import,
    too_large_error,
)
from customers.models import ImportKind
from customers.queries import list_recent_import_runs

REPORT_TARGET = "import-report"  # the id of the polled section in import_report_body.html


class ImportForm(forms.Form):
    kind = forms.ChoiceField(
        label=gettext_lazy("Kind of data"),
        choices=ImportKind.choices,
        initial=ImportKind.CUSTOMERS,
        widget=forms.RadioSelect,
    )
    # Not required here: check_upload decides, and says, what a good upload is.
    file = forms.FileField(
        label=gettext_lazy("CSV file"),
        required=False,
        allow_empty_file=True,
        widget=forms.FileInput(attrs={"accept": ".csv,text/csv"}),
    )
    is_strict = forms.BooleanField(
        label=gettext_lazy("Strict: if any row is bad, import nothing"), required=False
    )
    create_missing_customers = forms.BooleanField(
        label=gettext_lazy("Create a customer for an unknown customer_id"),
        help_text=gettext_lazy("Orders only: registered at their first order."),
        required=False,
    )

    def __init__(self, *args: Any, is_upload_too_large: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.is_upload_too_large = is_upload_too_large

    def clean_file(self) -> UploadedFile:
        if self.is_upload_too_large:
            raise too_large_error()
        return check_upload(self.cleaned_data.get("file"))


class _SizeLimitUploadHandler(FileUploadHandler):
    """Drops a file past the size limit as it arrives, so a huge upload never fills the disk."""

    def __init__(self, request: HttpRequest, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.is_too_large = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > self.limit:
            self.is_too_large = True
            raise SkipFile
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler (a temporary file) makes the UploadedFile


def _is_partial(request: HttpRequest, target: str) -> bool:
    # A history restore after a cache miss wants the whole page, even though htmx sent it.
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
        and request.headers.get("HX-Target") == target
    )


def _upload_page(request: HttpRequest, form: ImportForm, *, status: int = 200) -> HttpResponse:
    context = {
        "form": form,
        "kind_columns": list_kind_columns(),
        "runs": list_recent_import_runs(limit=RECENT_RUNS),
        "max_upload_megabytes": f"{max_upload_bytes() / (1024 * 1024):g}",
    }
    return render(request, "customers/import_upload.html", context, status=status)


# The limit handler must be installed before anything reads the body, and the CSRF check reads
# it: so the view is exempt and the inner one checks the token (Django's documented way).
@csrf_exempt
@require_http_methods(["GET", "POST"])
@permission_required(IMPORT_PERMISSION, raise_exception=True)
def import_upload(request: HttpRequest) -> HttpResponse:
    size_limit = _SizeLimitUploadHandler(request, max_upload_bytes())
    request.upload_handlers.insert(0, size_limit)
    return _import_upload(request, size_limit)


@csrf_protect
def _import_upload(request: HttpRequest, size_limit: _SizeLimitUploadHandler) -> HttpResponse:
    if request.method != "POST":
        return _upload_page(request, ImportForm())
    form = ImportForm(
        data=request.POST, files=request.FILES, is_upload_too_large=size_limit.is_too_large
    )
    if form.is_valid():
        if not isinstance(request.user, User):
            raise PermissionDenied
        try:
            run = start_import(
                kind=form.cleaned_data["kind"],
                uploaded_file=form.cleaned_data["file"],
                is_strict=form.cleaned_data["is_strict"],
                create_missing_customers=form.cleaned_data["create_missing_customers"],
                actor=request.user,
            )
        except ValidationError as error:
            form.add_error("kind" if error.code == "kind" else "file", error)
        else:
            return redirect("imports:report", import_run_id=run.pk)
    return _upload_page(request, form, status=400)


@require_GET
@permission_required(IMPORT_PERMISSION, raise_exception=True)
@vary_on_headers("HX-Request", "HX-Target")
def import_report(request: HttpRequest, import_run_id: int) -> HttpResponse:
    run = get_import_run(import_run_id=import_run_id)
    if run is None:
        raise Http404(_("No import run has the id %(id)s.") % {"id": import_run_id})
    context = {"run": run, "report_target": REPORT_TARGET}
    if _is_partial(request, REPORT_TARGET):
        return render(request, "customers/import_report_body.html", context)
    return render(request, "customers/import_report.html", context)
