"""Every periodic job, registered in this one place; `manage.py rqcron console.schedules` runs them.

Run exactly one rqcron process (RQ's cron has no leader election): `make run` starts it, and past
one machine it runs on one host only. Cron expressions are in UTC, the scheduler's clock; the
comments give the time in Asia/Shanghai (UTC+8).
"""

from rq import cron

from console.queues import DEFAULT
from loyalty.jobs import (
    catch_up_job,
    expire_points_job,
    recompute_tiers_job,
    release_pending_points_job,
)

# A safety net under the after-ingest trigger (loyalty.jobs.on_ingested): orders that reached the
# database another way (the admin, SQL) still earn points within 15 minutes.
cron.register(catch_up_job, DEFAULT, interval=15 * 60, name="loyalty-catch-up")
# Pending order points become spendable the hour their return window ends.
cron.register(release_pending_points_job, DEFAULT, cron="5 * * * *", name="points-release")
# 00:10 local: points whose expiry instant (local midnight) has just passed.
cron.register(expire_points_job, DEFAULT, cron="10 16 * * *", name="points-expiry")
# 02:30 local: every member's tier, after the day's orders are in.
cron.register(
    recompute_tiers_job, DEFAULT, cron="30 18 * * *", name="tiers-recompute", job_timeout=3600
)
