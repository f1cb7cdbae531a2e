from typing import Any

import pytest


@pytest.mark.django_db(transaction=True)
def test_an_anonymous_visitor_is_sent_to_the_login_page(page: Any) -> None:
    page.goto("/customers/")
    assert "/accounts/login/" in page.url
