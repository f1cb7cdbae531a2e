from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from customers.models import Customer


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "console/home.html", {})


def customer_360(request: HttpRequest, customer_id: int) -> HttpResponse:
    customer = get_object_or_404(Customer, pk=customer_id)
    return render(request, "console/customer_360.html", {"customer": customer})
