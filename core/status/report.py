"""Gathering the status report: collections and counts, the index, each job's runs and plans."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.jobs import Job
from core.storage import JobRun, Storage, SyncState
from core.storage.migrate import current_revision


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
    # Marketplace sync, for collections that have synced or are followed.
    sync: SyncState | None = None
    # When the sync job will next take it (followed collections only).
    sync_due: datetime | None = None


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
class IndexFile:
    """The index file on disk, read without loading it (it can be gigabytes)."""

    path: Path
    size_bytes: int
    updated_at: datetime


@dataclass(frozen=True)
class StatusReport:
    """Everything ``python -m core status`` prints."""

    schema_revision: str | None
    model: str
    # Tokens with a current vector for the model (the index holds them once it is rebuilt).
    embedded: int
    index_file: IndexFile | None
    collections: tuple[CollectionStatus, ...]
    jobs: tuple[JobStatus, ...]


def gather_status(
    storage: Storage,
    model_key: str,
    index_path: Path,
    jobs: Sequence[Job],
    sync_every_minutes: float = 30.0,
) -> StatusReport:
    """Read the report from the database and the index file's metadata (blocking)."""
    syncs = {state.slug: state for state in storage.sync.states()}
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
            sync=syncs.get(c.slug),
            sync_due=_sync_due(syncs.get(c.slug), sync_every_minutes),
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
    return StatusReport(
        schema_revision=current_revision(storage.database),
        model=model_key,
        embedded=sum(embedded.values()),
        index_file=_index_file(index_path),
        collections=collections,
        jobs=job_rows,
    )


def _sync_due(state: SyncState | None, default_minutes: float) -> datetime | None:
    if state is None or not state.following or state.last_started_at is None:
        return None
    return state.last_started_at + timedelta(minutes=state.every_minutes or default_minutes)


def _index_file(path: Path) -> IndexFile | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return IndexFile(path, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))
