from django.urls import path

from loyalty import views

app_name = "loyalty"

urlpatterns = [
    path("", views.tiers_overview, name="tiers"),
    path("points/", views.points_overview, name="points"),
    path("tiers/rules/", views.tier_rules, name="tier_rules"),
    path("tiers/rules/preview/", views.tier_rules_preview, name="tier_rules_preview"),
    path("points/rules/", views.points_rules, name="points_rules"),
    path("points/settings/", views.points_settings, name="points_settings"),
]
