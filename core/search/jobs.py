"""The index job: new tokens (from ingest, or later from sync) are embedded and searchable."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from core.config import JobTrigger
from core.errors import IndexBusy, JobSkipped
from core.jobs.model import Job
from core.search.indexing import Indexer


def index_job(indexer: Indexer, trigger: JobTrigger) -> Job:
    """Embed what is missing and refresh the index; skips its turn while another run works."""

    async def work() -> str:
        stop = threading.Event()
        run = asyncio.ensure_future(
            asyncio.to_thread(indexer.run, progress=False, wait=False, stop=stop)
        )
        try:
            report = await asyncio.shield(run)
        except IndexBusy as exc:
            raise JobSkipped("another index run is in progress") from exc
        except asyncio.CancelledError:
            # A thread cannot be cancelled: ask it to stop after its batch, and wait, so the
            # engine it uses is not closed under it.
            stop.set()
            with contextlib.suppress(Exception):
                await run
            raise
        return report.summary()

    return Job("index", "embed new tokens and refresh the similarity index", trigger, work)
