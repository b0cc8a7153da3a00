"""The housekeeping job: temporary files that killed processes left behind are removed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.config import JobTrigger
from core.jobs.model import Job
from core.storage.files import sweep_temp_files

# A temporary file this old belongs to no write still in progress (the longest writes, an
# index of a million vectors or a large image, take minutes).
STALE_AFTER_S = 6 * 3600


def housekeeping_job(data_dir: Path, trigger: JobTrigger) -> Job:
    """Sweep ``*.part`` files older than ``STALE_AFTER_S`` under the data directory."""

    async def work() -> str:
        removed = await asyncio.to_thread(sweep_temp_files, data_dir, STALE_AFTER_S)
        return f"removed {removed} leftover temporary file(s)"

    return Job("housekeeping", "remove leftover temporary files", trigger, work)
