from django.urls import re_path

from customers import api

app_name = "api"

# Shops post to /api/v1/orders; the trailing slash is optional, since APPEND_SLASH cannot redirect
# a POST.
urlpatterns = [
    re_path(r"^orders/?$", api.ingest_orders, name="orders"),
    re_path(r"^events/?$", api.ingest_events, name="events"),
]
