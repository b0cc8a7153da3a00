"""The index job: new tokens (from ingest, or later from sync) are embedded and searchable."""

from __future__ import annotations

import asyncio

from core.config import JobTrigger
from core.errors import IndexBusy, JobSkipped
from core.jobs.model import Job
from core.search.indexing import Indexer


def index_job(indexer: Indexer, trigger: JobTrigger) -> Job:
    """Embed what is missing and refresh the index; skips its turn while another run works."""

    async def work() -> str:
        try:
            report = await asyncio.to_thread(indexer.run, progress=False, wait=False)
        except IndexBusy as exc:
            raise JobSkipped("another index run is in progress") from exc
        return report.summary()

    return Job("index", "embed new tokens and refresh the similarity index", trigger, work)
