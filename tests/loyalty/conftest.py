from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from customers.models import Customer
from loyalty.models import LoyaltySettings, Membership, Tier

# Tiers


@pytest.fixture
def tiers(db: None) -> dict[str, Tier]:
    """The default tiers of migration 0002 by code: normal, silver, gold, diamond."""
    return {tier.code: tier for tier in Tier.objects.order_by("rank")}


@pytest.fixture
def loyalty_settings(db: None) -> LoyaltySettings:
    return LoyaltySettings.objects.get_or_create(pk=1)[0]


@pytest.fixture
def membership_factory(db: None) -> Callable[..., Membership]:
    def make(
        customer: Customer,
        tier: Tier,
        *,
        tier_since: dt.datetime,
        below_tier_since: dt.datetime | None = None,
        **fields: Any,
    ) -> Membership:
        return Membership.objects.create(
            customer=customer,
            tier=tier,
            tier_since=tier_since,
            below_tier_since=below_tier_since,
            joined_at=customer.registered_at,
            **fields,
        )

    return make
