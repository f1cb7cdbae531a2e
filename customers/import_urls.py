from django.urls import path

from customers import import_views

app_name = "imports"

urlpatterns = [
    path("", import_views.import_upload, name="upload"),
    path("<int:import_run_id>/", import_views.import_report, name="report"),
]
