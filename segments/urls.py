from django.urls import path

from segments import builder_views, explain_views, page_views, tag_views, views

app_name = "segments"

urlpatterns = [
    path("", page_views.segment_list, name="list"),
    path("new/", builder_views.segment_new, name="new"),
    path("builder/values/", builder_views.builder_values, name="builder_values"),
    path("builder/explain/", explain_views.builder_explain, name="builder_explain"),
    path("<int:segment_id>/", page_views.segment_detail, name="detail"),
    path("<int:segment_id>/edit/", builder_views.segment_edit, name="edit"),
    path("<int:segment_id>/refresh/", page_views.segment_refresh, name="refresh"),
    path("<int:segment_id>/explain/", page_views.segment_explain, name="explain"),
    path("<int:segment_id>/export.csv", views.segment_export_csv, name="export_csv"),
    path("tags/", tag_views.tag_rule_list, name="tag_rules"),
    path("tags/new/", tag_views.tag_rule_new, name="tag_rule_new"),
    path("tags/<int:tag_rule_id>/edit/", tag_views.tag_rule_edit, name="tag_rule_edit"),
    path("tags/<int:tag_rule_id>/delete/", tag_views.tag_rule_delete, name="tag_rule_delete"),
    path("tags/<int:tag_rule_id>/apply/", tag_views.tag_rule_apply, name="tag_rule_apply"),
]
