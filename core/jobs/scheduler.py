"""The bot process's one scheduler: APScheduler's ``AsyncIOScheduler`` on the bot's loop.

Each declared job is registered with ``max_instances=1`` (never two runs of a job at once),
``coalesce`` (runs that piled up become one), a misfire grace time, and a jittered trigger.
After every run, and at start, each job's next run time is written to the job log, so
``python -m core status`` can show it from another process, and so that a run that was due
while the bot was down is not forgotten: at start, a job whose recorded next run has passed
is registered at that time, and runs at once if it is within the grace time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
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
from core.storage import JobLog, JobPlan

log = logging.getLogger(__name__)


def make_trigger(trigger: JobTrigger) -> BaseTrigger:
    """The APScheduler trigger for a configured schedule (UTC, with its jitter)."""
    jitter = trigger.jitter_s or None
    if trigger.every_minutes is not None:
        return IntervalTrigger(minutes=trigger.every_minutes, timezone=UTC, jitter=jitter)
    if trigger.cron is None:  # pragma: no cover - the config model requires one of the two
        raise ValueError("a job trigger needs every_minutes or cron")
    return CronTrigger(**crontab_fields(trigger.cron), timezone=UTC, jitter=jitter)


def _missed_run(job: Job, plan: JobPlan | None, now: datetime) -> datetime | None:
    """The recorded next run of ``job`` if it has passed (and was planned on the schedule
    the job still has); ``None`` otherwise."""
    if plan is None or plan.next_run_at is None or plan.trigger != job.trigger.describe():
        return None
    return plan.next_run_at if plan.next_run_at < now else None


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
        self._running: set[asyncio.Task[object]] = set()
        self._recording = asyncio.Lock()

    async def __aenter__(self) -> JobScheduler:
        try:
            plans = await asyncio.to_thread(self._log.plans)
        except LensError as exc:
            log.warning("could not read the job plans; scheduling afresh: %s", exc)
            plans = {}
        self.start(plans)
        await self.record_plans()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop scheduling, cancel the runs in progress and wait until they have ended (a
        cancelled run records itself as such; the index job stops between batches), then
        record the plans the next start will pick up."""
        if self.scheduler.running:
            self.scheduler.pause()
        running = list(self._running)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await self.record_plans()
        self.shutdown()
        # AsyncIOScheduler finishes shutting down on the loop's next turn.
        await asyncio.sleep(0)

    def start(self, plans: Mapping[str, JobPlan] | None = None) -> None:
        """Register every enabled job and start the scheduler on the running loop; a job
        whose recorded next run (``plans``) has passed is registered at that time."""
        now = self._clock()
        for job in self.jobs:
            missed = _missed_run(job, (plans or {}).get(job.name), now)
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
                **({"next_run_time": missed} if missed else {}),
            )
            if missed:
                log.info("job %s was due at %s while the bot was down", job.name, missed)
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
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            await self._runner.run(job)
            await self.record_plans()
        finally:
            if task is not None:
                self._running.discard(task)

    async def record_plans(self) -> None:
        """Write each job's next run time to the job log (one writer at a time, each reading
        the plans only once it may write, so the newest plan is the one that stays)."""
        async with self._recording:
            now = self._clock()
            plans = [(j.name, j.trigger.describe(), self.next_run(j.name)) for j in self.jobs]

            def write() -> None:
                for name, trigger, next_run in plans:
                    self._log.planned(name, trigger, next_run, now)

            try:
                await asyncio.to_thread(write)
            except LensError as exc:
                log.warning("could not record the job plans: %s", exc)
