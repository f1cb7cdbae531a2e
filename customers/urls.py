from django.urls import path

from customers import views

app_name = "customers"

urlpatterns = [
    path("", views.customer_list, name="list"),
    path("<int:customer_id>/tags/", views.customer_tag_add, name="tag_add"),
    path(
        "<int:customer_id>/tags/<int:tag_id>/remove/",
        views.customer_tag_remove,
        name="tag_remove",
    ),
]
