"""The points ledger's public writes, in one place for callers (views, jobs, commands).

The work is split by concern: earning.py (earning, release, refunds), redemption.py (spending
and manual adjustments), expiry.py (FIFO expiry), ledger.py (what they share).
"""

from loyalty.services.earning import award_points, release_pending_points, reverse_refunded_orders
from loyalty.services.expiry import expire_points
from loyalty.services.ledger import BatchResult, InsufficientPoints, points_to_yuan
from loyalty.services.redemption import ADJUST_PERMISSION, Redemption, adjust_points, redeem_points

__all__ = [
    "ADJUST_PERMISSION",
    "BatchResult",
    "InsufficientPoints",
    "Redemption",
    "adjust_points",
    "award_points",
    "expire_points",
    "points_to_yuan",
    "redeem_points",
    "release_pending_points",
    "reverse_refunded_orders",
]
