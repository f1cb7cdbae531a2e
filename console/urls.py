from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.i18n import set_language

from console import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/setlang/", login_not_required(set_language), name="set_language"),
    path("customers/<int:customer_id>/", views.customer_360, name="customer_360"),
    path("customers/import/", include("customers.import_urls")),
    path("customers/", include("customers.urls")),
    path("api/v1/", include("customers.api_urls")),
    path("admin/django-rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
]
