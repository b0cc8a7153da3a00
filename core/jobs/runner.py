"""Running one job: never two runs at once, every run recorded, a failure logged once with an
id (and posted to the alert chats), and the next run goes ahead as planned."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from core.errors import JobSkipped, LensError
from core.jobs.model import Job
from core.posting import ChatTarget, Post, PostRouter
from core.storage import JobLog, JobRun

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class Alerter:
    """Posts job failures to the configured chats; a failed alert is logged, not raised."""

    def __init__(self, router: PostRouter, targets: Sequence[ChatTarget]) -> None:
        self._router = router
        self._targets = tuple(targets)

    async def job_failed(self, job: str, run_id: str, message: str) -> None:
        post = Post(f"NFT Lens: the scheduled job '{job}' failed (ref {run_id}): {message}")
        for target in self._targets:
            try:
                await self._router.post(target, post)
            except LensError as exc:
                log.warning("could not post the failure of %s to %s: %s", job, target, exc)


class JobRunner:
    """Runs jobs and records each run in the job log."""

    def __init__(
        self, jobs_log: JobLog, clock: Clock | None = None, alerter: Alerter | None = None
    ) -> None:
        self._log = jobs_log
        self._clock = clock or (lambda: datetime.now(UTC))
        self._alerter = alerter
        self._running: dict[str, asyncio.Lock] = {}

    def is_running(self, name: str) -> bool:
        lock = self._running.get(name)
        return lock is not None and lock.locked()

    async def run(self, job: Job) -> JobRun:
        """One run of ``job``; returns how it went (it never raises for the job's failure)."""
        run_id = secrets.token_hex(6)
        lock = self._running.setdefault(job.name, asyncio.Lock())
        started = self._clock()
        if lock.locked():
            # The scheduler also refuses overlapping runs (max_instances=1); this covers a
            # run started by hand (an admin's "now") while the scheduled one is going.
            run = JobRun(run_id, job.name, started, "skipped", started, "still running")
            await self._record_whole(run)
            return run
        async with lock:
            status, summary, error = "ok", None, None
            try:
                await self._record(self._log.started, run_id, job.name, started)
                summary = await job.work()
            except JobSkipped as exc:
                status, summary = "skipped", str(exc)
                log.info("job %s skipped: %s", job.name, exc)
            except asyncio.CancelledError:
                # The bot is stopping mid-run: the run is over, and says so.
                await self._record(
                    self._log.finished, run_id, "failed", self._clock(), None, "cancelled"
                )
                raise
            except Exception as exc:
                status, error = "failed", _one_line(exc)
                # Logged here, once, with the run id; the scheduler never sees the exception.
                log.error("[%s] job %s failed: %s", run_id, job.name, error, exc_info=exc)
                if self._alerter is not None:
                    await self._alerter.job_failed(job.name, run_id, error)
            else:
                log.info("job %s: %s", job.name, summary)
            finished = self._clock()
            await self._record(self._log.finished, run_id, status, finished, summary, error)
        return JobRun(run_id, job.name, started, status, finished, summary, error)

    async def _record_whole(self, run: JobRun) -> None:
        await self._record(self._log.started, run.id, run.job, run.started_at)
        await self._record(
            self._log.finished, run.id, run.status, run.finished_at, run.summary, run.error
        )

    async def _record(self, write: Callable[..., None], *args: object) -> None:
        try:
            await asyncio.to_thread(write, *args)
        except LensError as exc:
            # The job log is bookkeeping: a database hiccup must not fail the job itself.
            log.warning("could not record a job run: %s", exc)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    if isinstance(exc, LensError):
        return message or type(exc).__name__
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
