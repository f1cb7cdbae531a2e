"""Every periodic job, registered in this one place; `manage.py rqcron console.schedules` runs them.

Run exactly one rqcron process (RQ's cron has no leader election): `make run` starts it, and past
one machine it runs on one host only. Cron expressions are in UTC, the scheduler's clock; the
comments give the time in Asia/Shanghai (UTC+8).
"""

from rq import cron

from console.queues import DEFAULT, SEGMENTS
from customers.jobs import prune_import_uploads_job, recompute_metrics_job
from loyalty.jobs import (
    catch_up_job,
    expire_points_job,
    recompute_tiers_job,
    release_pending_points_job,
)
from segments.jobs import (
    apply_tag_rules_job,
    prune_segment_history_job,
    refresh_all_dynamic_segments_job,
    refresh_due_segments_job,
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

# 03:30 local: uploaded CSVs of imports finished IMPORT_UPLOAD_KEEP_DAYS ago (reports stay).
cron.register(prune_import_uploads_job, DEFAULT, cron="30 19 * * *", name="imports-prune")

# 01:30 local: every customer's metrics (RFM, lifecycle...) as of the new day; ingest keeps the
# touched customers' metrics fresh in between (segments.jobs.on_ingested).
cron.register(
    recompute_metrics_job, DEFAULT, cron="30 17 * * *", name="metrics-nightly", job_timeout=3600
)
# 02:00 local: every dynamic segment against the fresh metrics.
cron.register(
    refresh_all_dynamic_segments_job, SEGMENTS, cron="0 18 * * *", name="segments-nightly"
)
# Each dynamic segment on its own interval (hourly by default; a segment sets its own).
cron.register(refresh_due_segments_job, SEGMENTS, interval=60, name="segments-due")
cron.register(apply_tag_rules_job, SEGMENTS, interval=15 * 60, name="tag-rules")
cron.register(prune_segment_history_job, SEGMENTS, cron="0 20 * * *", name="segments-prune")
