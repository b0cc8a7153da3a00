"""The sync job: followed collections that are due, plus the day's floors and USD rates."""

from __future__ import annotations

from core.config import JobTrigger
from core.errors import LensError
from core.jobs.model import Job
from core.sync.service import Syncer


def sync_job(syncer: Syncer, trigger: JobTrigger) -> Job:
    """Sync each followed collection whose interval is up; fails if any of them failed."""

    async def work() -> str:
        report = await syncer.sync_due()
        if report.failed:
            # The others were synced and kept; the run is reported failed so alerts fire.
            raise LensError("; ".join(c.summary() for c in report.failed))
        return report.summary().replace("\n", "; ")

    return Job("sync", "pull new sales and tokens from OpenSea and Magic Eden", trigger, work)
