from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from loyalty.models import Membership, Tier
from segments.export import iter_segment_export_rows
from segments.models import Segment, SegmentMember
from tests.factories import SHANGHAI, CustomerFactory

JOINED_AT = dt.datetime(2026, 11, 20, 12, 0, tzinfo=SHANGHAI)
JOINED = "2026-11-20T12:00:00+08:00"
HEADER = ["external_id", "name", "phone", "email", "city", "tier", "joined_at"]


@pytest.fixture
def segment(db: None) -> Segment:
    segment = Segment.objects.create(name="上海客户", definition={"all": []})
    gold = Tier.objects.get(code="gold")
    wang: Any = CustomerFactory(
        external_id="C1", name="王芳", phone="+8613812341234", email="wang@example.com"
    )
    Membership.objects.create(customer=wang, tier=gold, tier_since=JOINED_AT, joined_at=JOINED_AT)
    li: Any = CustomerFactory(
        external_id="C2", name="=HYPERLINK(1)", phone="", email="", city="北京"
    )
    CustomerFactory(external_id="C3")  # not a member
    for customer in (li, wang):
        SegmentMember.objects.create(segment=segment, customer=customer, joined_at=JOINED_AT)
    return segment


def read_csv(response: Any) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body[1:])))


def export_url(segment_id: int) -> str:
    return reverse("segments:export_csv", kwargs={"segment_id": segment_id})


def test_the_export_rows_mask_contact_details_unless_allowed(segment: Segment) -> None:
    masked = list(iter_segment_export_rows(segment.pk, can_view_contact=False))
    shown = list(iter_segment_export_rows(segment.pk, can_view_contact=True))

    assert masked == [
        HEADER,
        [
            "C1",
            "王芳",
            "138****1234",
            "w***@example.com",
            "上海",
            "金卡",
            "2026-11-20T12:00:00+08:00",
        ],
        ["C2", "'=HYPERLINK(1)", "", "", "北京", "", "2026-11-20T12:00:00+08:00"],
    ]
    assert shown[1][2:4] == ["+8613812341234", "wang@example.com"]


def test_an_operator_downloads_the_members_with_masked_contacts(
    segment: Segment, operator_client: Client, django_assert_num_queries: Any
) -> None:
    # when: session, user, its two permission lists, the segment, the rows (one query however
    # many rows: the streamed iterator fetches them in chunks)
    with django_assert_num_queries(6):
        response = operator_client.get(export_url(segment.pk))
        rows = read_csv(response)

    # then
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith(
        f'attachment; filename="segment-{segment.pk}-'
    )
    assert [row[:4] for row in rows] == [
        HEADER[:4],
        ["C1", "王芳", "138****1234", "w***@example.com"],
        ["C2", "'=HYPERLINK(1)", "", ""],
    ]


def test_an_admin_downloads_the_members_with_their_contacts(
    segment: Segment, admin_client_role: Client
) -> None:
    rows = read_csv(admin_client_role.get(export_url(segment.pk)))

    assert rows[1][:4] == ["C1", "王芳", "+8613812341234", "wang@example.com"]


def test_the_export_names_the_tier_in_english_for_english_users(
    segment: Segment, manager_client: Client
) -> None:
    rows = read_csv(manager_client.get(export_url(segment.pk), HTTP_ACCEPT_LANGUAGE="en"))

    assert rows[1][5] == "Gold"


def test_a_user_without_a_role_may_not_export(segment: Segment, make_user: Any) -> None:
    client = Client()
    client.force_login(make_user(None))

    assert client.get(export_url(segment.pk)).status_code == 403


def test_an_unknown_segment_is_a_404(db: None, operator_client: Client) -> None:
    assert operator_client.get(export_url(999999)).status_code == 404


def test_the_export_is_get_only(segment: Segment, operator_client: Client) -> None:
    assert operator_client.post(export_url(segment.pk)).status_code == 405
