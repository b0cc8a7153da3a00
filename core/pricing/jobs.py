"""The train job: every collection with enough sales gets a model fitted on all of them."""

from __future__ import annotations

import asyncio

from core.config import JobTrigger
from core.errors import JobSkipped, LensError
from core.jobs.model import Job
from core.pricing.service import PriceService
from core.storage import Catalog


def train_job(pricing: PriceService, catalog: Catalog, trigger: JobTrigger) -> Job:
    """Retrain each collection on all its sales (no ablations: nothing to evaluate on)."""

    async def work() -> str:
        collections = await asyncio.to_thread(catalog.collections)
        trained, skipped = [], []
        for collection in collections:
            try:
                report = await asyncio.to_thread(
                    pricing.train, collection.slug, None, ablations=False
                )
            except LensError as exc:
                skipped.append(f"{collection.slug} ({exc})")
                continue
            trained.append(f"{collection.slug} on {report.record.sales_used:,} sales")
        if not trained:
            raise JobSkipped("no collection has enough sales for a model yet")
        summary = "trained " + ", ".join(trained)
        return summary + (f"; skipped {'; '.join(skipped)}" if skipped else "")

    return Job("train", "retrain the price models on all sales", trigger, work)
