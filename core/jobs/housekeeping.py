"""The housekeeping job: temporary files that killed processes left behind are removed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.config import JobTrigger
from core.jobs.model import Job
from core.storage.files import STALE_TEMP_S, sweep_temp_files


def housekeeping_job(data_dir: Path, trigger: JobTrigger) -> Job:
    """Sweep ``*.part`` files older than ``STALE_TEMP_S`` under the data directory."""

    async def work() -> str:
        removed = await asyncio.to_thread(sweep_temp_files, data_dir, STALE_TEMP_S)
        return f"removed {removed} leftover temporary file(s)"

    return Job("housekeeping", "remove leftover temporary files", trigger, work)
