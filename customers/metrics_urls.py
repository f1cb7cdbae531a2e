from django.urls import path

from customers import metrics_views

app_name = "customer_metrics"

urlpatterns = [
    path("settings/", metrics_views.metrics_settings, name="settings"),
    path("settings/preview/", metrics_views.metrics_settings_preview, name="preview"),
]
