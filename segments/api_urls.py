from django.urls import re_path

from segments import api

app_name = "segments_api"

# The trailing slash is optional: APPEND_SLASH cannot redirect a POST.
urlpatterns = [
    re_path(r"^preview/?$", api.preview, name="preview"),
]
