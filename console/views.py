"""The shell's pages: the home dashboard and the customer 360 page, composed from the apps."""

from __future__ import annotations

from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from customers.queries import get_customer_profile, get_dashboard_figures, list_tag_names


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    figures = get_dashboard_figures(now=timezone.now())
    return render(request, "console/home.html", {"figures": figures})


@require_GET
@permission_required("customers.view_customer", raise_exception=True)
def customer_360(request: HttpRequest, customer_id: int) -> HttpResponse:
    profile = get_customer_profile(customer_id=customer_id)
    if profile is None:
        raise Http404(_("No customer has the id %(id)s.") % {"id": customer_id})
    context = {
        "customer": profile.customer,
        "profile": profile,
        # The names customers/customer_tags.html expects (customers.views renders it too).
        "customer_id": customer_id,
        "customer_tags": profile.tags,
        "tag_suggestions": list_tag_names(),
        # Later issues add their parts here: membership and points (loyalty), segments and
        # messages (campaigns), each from its app's queries.
    }
    return render(request, "console/customer_360.html", context)
