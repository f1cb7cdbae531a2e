from __future__ import annotations

from django.conf import settings
from rq.cron import CronScheduler

from console.queues import QUEUE_NAMES


def test_every_schedule_loads_on_a_queue_the_workers_listen_to(rq_queues: dict) -> None:
    scheduler = CronScheduler(connection=rq_queues["default"].connection)

    scheduler.load_config_from_file("console.schedules")

    jobs = {job.name: job for job in scheduler.get_jobs()}
    assert sorted(jobs) == [
        "imports-prune",
        "loyalty-catch-up",
        "metrics-nightly",
        "points-expiry",
        "points-release",
        "segments-due",
        "segments-nightly",
        "segments-prune",
        "tag-rules",
        "tiers-recompute",
    ]
    assert {job.queue_name for job in jobs.values()} <= set(QUEUE_NAMES)
    assert set(settings.RQ_QUEUES) == set(QUEUE_NAMES)
    assert jobs["segments-due"].interval == 60
    assert jobs["tiers-recompute"].cron == "30 18 * * *"
