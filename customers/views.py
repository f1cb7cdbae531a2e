"""The customer list and the tag actions of the 360 page (the page itself is console's)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from customers.filters import CustomerFilterSet
from customers.forms import PageForm, TagForm
from customers.queries import (
    CustomerPage,
    customer_exists,
    list_customer_tags,
    list_customers,
    list_tag_names,
)
from customers.services import add_tag, remove_tag

RESULTS_TARGET = "customer-results"
TAGS_TARGET = "customer-tags"  # the id of the tags section in customers/customer_tags.html


@dataclass(frozen=True)
class Column:
    key: str
    label: Any
    sort_url: str = ""
    aria_sort: str = ""  # "ascending" / "descending" on the column the list is sorted by
    next_is_descending: bool = False


# The list's columns in order; sortable ones name their sort key (see filters.SORTS). Apps above
# this one add columns through customer_list's extra_columns and extra_cells_template.
COLUMNS: list[tuple[str, Any, bool]] = [
    ("name", gettext_lazy("Name"), True),
    ("external_id", gettext_lazy("External id"), True),
    ("phone", gettext_lazy("Phone"), False),
    ("city", gettext_lazy("City"), True),
    ("channel", gettext_lazy("Channel"), False),
    ("tags", gettext_lazy("Tags"), False),
    ("registered_at", gettext_lazy("Registered"), True),
    ("last_seen_at", gettext_lazy("Last seen"), True),
]
# Dates read best newest first; the first click on them sorts descending.
DESCENDING_FIRST = {"registered_at", "last_seen_at"}


def _is_partial(request: HttpRequest, target: str) -> bool:
    # A history restore after a cache miss wants the whole page, even though htmx sent it.
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
        and request.headers.get("HX-Target") == target
    )


def _list_url(params: QueryDict, **changes: str | int | None) -> str:
    query = params.copy()
    for key, value in changes.items():
        query.pop(key, None)
        if value not in (None, ""):
            query[key] = str(value)
    encoded = query.urlencode()
    return reverse("customers:list") + (f"?{encoded}" if encoded else "")


def _columns(
    params: QueryDict, current_sort: str, extra_columns: Sequence[tuple[str, Any]] = ()
) -> list[Column]:
    current_key = current_sort.lstrip("-")
    is_descending = current_sort.startswith("-")
    columns = []
    for key, label, sortable in [*COLUMNS, *((key, label, False) for key, label in extra_columns)]:
        if not sortable:
            columns.append(Column(key=key, label=label))
            continue
        if key == current_key:
            next_descending = not is_descending
            aria_sort = "descending" if is_descending else "ascending"
        else:
            next_descending = key in DESCENDING_FIRST
            aria_sort = ""
        sort = f"-{key}" if next_descending else key
        columns.append(
            Column(
                key=key,
                label=label,
                sort_url=_list_url(params, sort=sort, page=None),
                aria_sort=aria_sort,
                next_is_descending=next_descending,
            )
        )
    return columns


@require_GET
@permission_required("customers.view_customer", raise_exception=True)
@vary_on_headers("HX-Request", "HX-Target")
def customer_list(
    request: HttpRequest,
    *,
    filterset_class: type[CustomerFilterSet] = CustomerFilterSet,
    extra_columns: Sequence[tuple[str, Any]] = (),
    extra_cells_template: str = "",
) -> HttpResponse:
    """The customer list. The console composes it with the apps above this one: a FilterSet
    that extends CustomerFilterSet (its extra filters are shown after the base ones), columns
    (key, label; not sortable) and a template of their cells, included in every row."""
    filterset = filterset_class(data=request.GET)
    page_form = PageForm(data=request.GET)
    page = list_customers(filterset=filterset, page_number=page_form.page_number())
    params = request.GET
    page_errors = page_form.errors_text()
    is_past_the_end = filterset.is_valid() and page.number > 1 and not page.customers
    last_url = ""
    if is_past_the_end:
        page_errors.append(_past_the_end(page))
        # Page 1 always exists and has its own link ("First").
        if page.last_page and page.last_page > 1:
            last_url = _list_url(params, page=page.last_page)
    context = {
        "filterset": filterset,
        "form": filterset.form,
        "page": page,
        "page_errors": page_errors,
        "columns": _columns(params, filterset.current_sort, extra_columns),
        "extra_filter_fields": [
            filterset.form[name]
            for name in filterset.form.fields
            if name not in CustomerFilterSet.base_filters
        ],
        "extra_cells_template": extra_cells_template,
        "current_sort": filterset.current_sort if params.get("sort") else "",
        "previous_url": (
            _list_url(params, page=page.number - 1)
            if page.has_previous and not is_past_the_end
            else ""
        ),
        "next_url": _list_url(params, page=page.number + 1) if page.has_next else "",
        "first_url": _list_url(params, page=None) if page.number > 1 else "",
        "last_url": last_url,
        "is_past_the_end": is_past_the_end,
        "results_target": RESULTS_TARGET,
    }
    if _is_partial(request, RESULTS_TARGET):
        return render(
            request, "customers/customer_list_results.html", {**context, "is_partial": True}
        )
    return render(request, "customers/customer_list.html", context)


def _past_the_end(page: CustomerPage) -> str:
    if page.last_page is None:
        return _("There is no page %(number)d.") % {"number": page.number}
    return ngettext(
        "There is no page %(number)d: the list has %(last)d page.",
        "There is no page %(number)d: the list has %(last)d pages.",
        page.last_page,
    ) % {"number": page.number, "last": page.last_page}


def _tags_context(*, customer_id: int, form: TagForm | None = None) -> dict[str, Any]:
    # The same names the 360 page (console) gives the partial customers/customer_tags.html.
    return {
        "customer_id": customer_id,
        "customer_tags": list_customer_tags(customer_id=customer_id),
        "tag_suggestions": list_tag_names(),
        "tag_value": form.data.get("name", "") if form is not None and form.errors else "",
        "tag_errors": form.errors.get("name", []) if form is not None else [],
    }


def _tags_response(
    request: HttpRequest, customer_id: int, form: TagForm | None = None, status: int = 200
) -> HttpResponse:
    return render(
        request,
        "customers/customer_tags.html",
        _tags_context(customer_id=customer_id, form=form),
        status=status,
    )


def _require_customer(customer_id: int) -> None:
    if not customer_exists(customer_id=customer_id):
        raise Http404(_("No customer has the id %(id)s.") % {"id": customer_id})


@require_POST
@permission_required("customers.add_customertag", raise_exception=True)
def customer_tag_add(request: HttpRequest, customer_id: int) -> HttpResponse:
    _require_customer(customer_id)
    form = TagForm(data=request.POST)
    added_name = ""
    if form.is_valid():
        try:
            customer_tag = add_tag(
                customer_id=customer_id, tag_name=form.cleaned_data["name"], actor=request.user
            )
            added_name = customer_tag.tag.name
        except ValidationError as error:
            form.add_error("name", error)
    if _is_partial(request, TAGS_TARGET):
        # 422 tells htmx (see the htmx-config in base.html) to show the form with its error.
        return _tags_response(request, customer_id, form, status=200 if added_name else 422)
    if added_name:
        messages.success(request, _("Tag “%(tag)s” added.") % {"tag": added_name})
    for problem in form.errors.get("name", []):
        messages.error(request, str(problem))
    return redirect("customer_360", customer_id=customer_id)


@require_POST
@permission_required("customers.delete_customertag", raise_exception=True)
def customer_tag_remove(request: HttpRequest, customer_id: int, tag_id: int) -> HttpResponse:
    _require_customer(customer_id)
    removed = remove_tag(customer_id=customer_id, tag_id=tag_id, actor=request.user)
    if _is_partial(request, TAGS_TARGET):
        return _tags_response(request, customer_id)
    if removed:
        messages.success(request, _("Tag removed."))
    else:
        messages.info(request, _("The customer did not have that tag."))
    return redirect("customer_360", customer_id=customer_id)
