from django.urls import path

from segments import builder_views, page_views, views

app_name = "segments"

urlpatterns = [
    path("", page_views.segment_list, name="list"),
    path("new/", builder_views.segment_new, name="new"),
    path("builder/values/", builder_views.builder_values, name="builder_values"),
    path("<int:segment_id>/", page_views.segment_detail, name="detail"),
    path("<int:segment_id>/edit/", builder_views.segment_edit, name="edit"),
    path("<int:segment_id>/refresh/", page_views.segment_refresh, name="refresh"),
    path("<int:segment_id>/explain/", page_views.segment_explain, name="explain"),
    path("<int:segment_id>/export.csv", views.segment_export_csv, name="export_csv"),
]
