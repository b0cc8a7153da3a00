"""Gathering the status report: collections and counts, the index, each job's runs and plans."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from core.jobs import Job
from core.search.indexing import IndexCache
from core.storage import JobRun, Storage


@dataclass(frozen=True)
class CollectionStatus:
    """One tracked collection: how much of it is stored and embedded."""

    slug: str
    name: str
    chain: str
    tokens: int
    sales: int
    embedded: int
    latest_sale: datetime | None


@dataclass(frozen=True)
class JobStatus:
    """One scheduled job: its schedule, its last run and its next planned run."""

    name: str
    description: str
    schedule: str
    enabled: bool
    last_run: JobRun | None
    next_run: datetime | None
    # When the bot's scheduler recorded that plan (``None``: it never has).
    planned_at: datetime | None


@dataclass(frozen=True)
class StatusReport:
    """Everything ``python -m core status`` prints."""

    schema_revision: str | None
    model: str
    indexed: int | None
    collections: tuple[CollectionStatus, ...]
    jobs: tuple[JobStatus, ...]


def gather_status(
    storage: Storage, model_key: str, indexes: IndexCache, jobs: Sequence[Job]
) -> StatusReport:
    """Read the report from the database and the index file (blocking)."""
    tokens = storage.catalog.token_counts()
    sales = storage.sales.counts()
    embedded = storage.vectors.counts(model_key)
    collections = tuple(
        CollectionStatus(
            slug=c.slug,
            name=c.name,
            chain=c.chain,
            tokens=tokens.get(c.slug, 0),
            sales=sales.get(c.slug, 0),
            embedded=embedded.get(c.slug, 0),
            latest_sale=latest.timestamp if (latest := storage.sales.latest(c.slug)) else None,
        )
        for c in storage.catalog.collections()
    )
    runs = storage.jobs.last_runs()
    plans = storage.jobs.plans()
    job_rows = tuple(
        JobStatus(
            name=job.name,
            description=job.description,
            schedule=job.trigger.describe(),
            enabled=job.trigger.enabled,
            last_run=runs.get(job.name),
            next_run=plan.next_run_at if (plan := plans.get(job.name)) else None,
            planned_at=plan.updated_at if plan else None,
        )
        for job in jobs
    )
    migration = storage.migration
    return StatusReport(
        schema_revision=migration.after if migration else None,
        model=model_key,
        indexed=indexes.size(),
        collections=collections,
        jobs=job_rows,
    )
