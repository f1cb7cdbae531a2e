from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.i18n import set_language

from console import views
from customers.urls import customer_urlpatterns

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/setlang/", login_not_required(set_language), name="set_language"),
    path("customers/<int:customer_id>/", views.customer_360, name="customer_360"),
    path(
        "customers/<int:customer_id>/points/adjust/",
        views.customer_points_adjust,
        name="customer_points_adjust",
    ),
    path(
        "customers/<int:customer_id>/points/redeem/",
        views.customer_points_redeem,
        name="customer_points_redeem",
    ),
    path("customers/import/", include("customers.import_urls")),
    path("customers/metrics/", include("customers.metrics_urls")),
    # The customers app's URLs ("customers:list" and the tag actions) with the console's list,
    # which adds the loyalty tier to it.
    path(
        "customers/",
        include((customer_urlpatterns(list_view=views.customer_list), "customers")),
    ),
    path("loyalty/", include("loyalty.urls")),
    path("segments/", include("segments.urls")),
    path("api/v1/segments/", include("segments.api_urls")),
    path("api/v1/", include("customers.api_urls")),
    path("admin/django-rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
]
