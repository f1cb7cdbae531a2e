from collections.abc import Callable

from django.http import HttpResponse
from django.urls import URLPattern, path

from customers import views

app_name = "customers"


def customer_urlpatterns(
    *, list_view: Callable[..., HttpResponse] = views.customer_list
) -> list[URLPattern]:
    """The app's URLs; the console passes its composed list view (customers plus loyalty)."""
    return [
        path("", list_view, name="list"),
        path("<int:customer_id>/tags/", views.customer_tag_add, name="tag_add"),
        path(
            "<int:customer_id>/tags/<int:tag_id>/remove/",
            views.customer_tag_remove,
            name="tag_remove",
        ),
    ]


urlpatterns = customer_urlpatterns()
