"""Forms of the customer pages: parsing only, the rules live in services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from customers.queries import MAX_PAGE
from customers.services import clean_tag_name


class TagForm(forms.Form):
    # Not required here: the service's rule decides, and says, what a valid name is.
    name = forms.CharField(label=_("Tag name"), required=False, strip=True)

    def clean_name(self) -> str:
        return clean_tag_name(self.cleaned_data.get("name") or "")


class PageForm(forms.Form):
    page = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_PAGE,
        error_messages={
            "invalid": _("The page must be a whole number."),
            "min_value": _("Pages start at 1."),
            "max_value": _(
                "Pages past %(limit_value)s are not shown: narrow the list with the filters."
            ),
        },
    )

    def page_number(self) -> int:
        """The page asked for, or the first page when it is missing or wrong."""
        if self.is_valid():
            return int(self.cleaned_data.get("page") or 1)
        return 1

    def errors_text(self) -> list[Any]:
        return list(self.errors.get("page", []))
