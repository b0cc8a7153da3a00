"""The bot process's one scheduler: APScheduler's ``AsyncIOScheduler`` on the bot's loop.

Each declared job is registered with ``max_instances=1`` (never two runs of a job at once),
``coalesce`` (runs that piled up while the bot was down become one), a misfire grace time, and
a jittered trigger. After every run, and at start, each job's next run time is written to the
job log, so ``python -m core status`` can show it from another process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.config import JobTrigger, crontab_fields
from core.errors import LensError
from core.jobs.model import Job
from core.jobs.runner import JobRunner
from core.storage import JobLog

log = logging.getLogger(__name__)


def make_trigger(trigger: JobTrigger) -> BaseTrigger:
    """The APScheduler trigger for a configured schedule (UTC, with its jitter)."""
    jitter = trigger.jitter_s or None
    if trigger.every_minutes is not None:
        return IntervalTrigger(minutes=trigger.every_minutes, timezone=UTC, jitter=jitter)
    if trigger.cron is None:  # pragma: no cover - the config model requires one of the two
        raise ValueError("a job trigger needs every_minutes or cron")
    return CronTrigger(**crontab_fields(trigger.cron), timezone=UTC, jitter=jitter)


class JobScheduler:
    """Registers the enabled jobs on an ``AsyncIOScheduler`` and records their plans."""

    def __init__(
        self,
        jobs: Sequence[Job],
        runner: JobRunner,
        jobs_log: JobLog,
        *,
        misfire_grace_s: int,
        clock: Callable[[], datetime] | None = None,
        scheduler: AsyncIOScheduler | None = None,
    ) -> None:
        self.jobs = tuple(job for job in jobs if job.trigger.enabled)
        self._runner = runner
        self._log = jobs_log
        self._misfire_grace_s = misfire_grace_s
        self._clock = clock or (lambda: datetime.now(UTC))
        self.scheduler = scheduler or AsyncIOScheduler(timezone=UTC)

    async def __aenter__(self) -> JobScheduler:
        self.start()
        await self.record_plans()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.shutdown()
        # AsyncIOScheduler finishes shutting down on the loop's next turn.
        await asyncio.sleep(0)

    def start(self) -> None:
        """Register every enabled job and start the scheduler on the running loop."""
        for job in self.jobs:
            self.scheduler.add_job(
                self._fire,
                trigger=make_trigger(job.trigger),
                args=[job],
                id=job.name,
                name=job.description,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=self._misfire_grace_s,
                replace_existing=True,
            )
        self.scheduler.start()
        log.info(
            "scheduler: %s", ", ".join(f"{j.name} ({j.trigger.describe()})" for j in self.jobs)
        )

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def next_run(self, name: str) -> datetime | None:
        job: Any = self.scheduler.get_job(name)
        return None if job is None else job.next_run_time

    async def run_now(self, name: str) -> None:
        """Run a job at once (admins, tests); the runner still refuses an overlapping run."""
        for job in self.jobs:
            if job.name == name:
                await self._fire(job)
                return
        raise KeyError(name)

    async def _fire(self, job: Job) -> None:
        await self._runner.run(job)
        await self.record_plans()

    async def record_plans(self) -> None:
        """Write each job's next run time to the job log."""
        now = self._clock()
        plans = [(job.name, job.trigger.describe(), self.next_run(job.name)) for job in self.jobs]

        def write() -> None:
            for name, trigger, next_run in plans:
                self._log.planned(name, trigger, next_run, now)

        try:
            await asyncio.to_thread(write)
        except LensError as exc:
            log.warning("could not record the job plans: %s", exc)
