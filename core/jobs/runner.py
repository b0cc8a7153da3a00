"""Running one job: never two runs at once, every run recorded, a failure logged once with an
id (and posted to the alert chats), and the next run goes ahead as planned."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from core.errors import JobSkipped, LensError
from core.jobs.model import Job
from core.posting import ChatTarget, Post, PostRouter
from core.storage import JobLog, JobRun

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class Alerter:
    """Posts job failures to the configured chats; a failed alert is logged, never raised."""

    def __init__(self, router: PostRouter, targets: Sequence[ChatTarget]) -> None:
        self._router = router
        self._targets = tuple(targets)

    async def job_failed(self, job: str, run_id: str, message: str) -> None:
        post = Post(f"NFT Lens: the scheduled job '{job}' failed (ref {run_id}): {message}")
        for target in self._targets:
            try:
                await self._router.post(target, post)
            except Exception as exc:
                # A chat that is down must not turn one job failure into two.
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

    async def run(self, job: Job) -> JobRun:
        """One run of ``job``; returns how it went (it never raises for the job's failure;
        it re-raises cancellation after recording it)."""
        run_id = secrets.token_hex(6)
        lock = self._running.setdefault(job.name, asyncio.Lock())
        started = self._clock()
        if lock.locked():
            # The scheduler also refuses overlapping runs (max_instances=1); this covers a
            # run started by hand (an admin's "now") while the scheduled one is going.
            run = JobRun(run_id, job.name, started, "skipped", started, "still running")
            await self._save(run)
            return run
        async with lock:
            # The final write must land after this one, even if a cancel interrupts the wait.
            start = asyncio.ensure_future(self._save(JobRun(run_id, job.name, started, "running")))
            outcome = JobRun(run_id, job.name, started, "ok")
            try:
                await asyncio.shield(start)
                summary = await job.work()
            except JobSkipped as exc:
                outcome = replace(outcome, status="skipped", summary=str(exc))
                log.info("job %s skipped: %s", job.name, exc)
            except asyncio.CancelledError:
                # The bot is stopping mid-run: the run is over, and says so.
                await start
                await self._save(
                    replace(outcome, status="failed", finished_at=self._clock(), error="cancelled")
                )
                raise
            except Exception as exc:
                outcome = replace(outcome, status="failed", error=_one_line(exc))
                # Logged here, once, with the run id; the scheduler never sees the exception.
                log.error("[%s] job %s failed: %s", run_id, job.name, outcome.error, exc_info=exc)
            else:
                outcome = replace(outcome, summary=summary)
                log.info("job %s: %s", job.name, summary)
            outcome = replace(outcome, finished_at=self._clock())
            finishing = asyncio.ensure_future(self._save(outcome))
            try:
                await asyncio.shield(finishing)
            except asyncio.CancelledError:
                # Stopping just as the run ended: its outcome is still written.
                await finishing
                raise
        if outcome.status == "failed" and self._alerter is not None and outcome.error:
            await self._alerter.job_failed(job.name, run_id, outcome.error)
        return outcome

    async def _save(self, run: JobRun) -> None:
        try:
            await asyncio.to_thread(self._log.save, run)
        except LensError as exc:
            # The job log is bookkeeping: a database hiccup must not fail the job itself.
            log.warning("could not record a job run: %s", exc)


def _one_line(exc: BaseException) -> str:
    """What the job log and the alert chats are told: an engine error's own sentence, or,
    for anything else, no internals (the detail is in the log under the run's id)."""
    if isinstance(exc, LensError):
        lines = str(exc).strip().splitlines()
        return lines[0] if lines else type(exc).__name__
    return f"it failed unexpectedly ({type(exc).__name__}); the log has the details"
