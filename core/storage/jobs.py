"""The scheduled jobs' log: each run's outcome, and each job's next planned run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from core.storage import schema
from core.storage.database import Database

# Runs kept per job; older ones are deleted as new ones finish.
KEEP_RUNS = 200


@dataclass(frozen=True)
class JobRun:
    """One run of a job: ``status`` is running, ok, failed or skipped."""

    id: str
    job: str
    started_at: datetime
    status: str
    finished_at: datetime | None = None
    summary: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class JobPlan:
    """When the bot's scheduler last planned a job to run next, and on what trigger."""

    job: str
    trigger: str
    next_run_at: datetime | None
    updated_at: datetime


class JobLog:
    """Reads and writes job runs and plans."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def save(self, run: JobRun) -> None:
        """Write a run as it stands now (insert, or update the row of the same id), and keep
        only the newest ``KEEP_RUNS`` runs of its job."""
        r = schema.job_runs
        values = {
            "job": run.job,
            "started_at": run.started_at,
            "status": run.status,
            "finished_at": run.finished_at,
            "summary": run.summary,
            "error": run.error,
        }
        statement = self._db.insert(r).values(id=run.id, **values)
        statement = statement.on_conflict_do_update(index_elements=[r.c.id], set_=values)
        with self._db.writing() as conn:
            conn.execute(statement)
            if run.finished_at is not None:
                stale = (
                    select(r.c.id)
                    .where(r.c.job == run.job)
                    .order_by(r.c.started_at.desc())
                    .offset(KEEP_RUNS)
                )
                conn.execute(r.delete().where(r.c.id.in_(stale.scalar_subquery())))

    def last_runs(self) -> dict[str, JobRun]:
        """Each job's most recent run."""
        r = schema.job_runs
        newest = (
            select(r.c.job, func.max(r.c.started_at).label("started_at"))
            .group_by(r.c.job)
            .subquery()
        )
        query = select(r).join(
            newest, (r.c.job == newest.c.job) & (r.c.started_at == newest.c.started_at)
        )
        with self._db.reading() as conn:
            return {row.job: _run(row) for row in conn.execute(query)}

    def runs(self, job: str, limit: int = 20) -> list[JobRun]:
        """A job's runs, newest first."""
        r = schema.job_runs
        query = select(r).where(r.c.job == job).order_by(r.c.started_at.desc()).limit(limit)
        with self._db.reading() as conn:
            return [_run(row) for row in conn.execute(query)]

    def planned(self, job: str, trigger: str, next_run_at: datetime | None, at: datetime) -> None:
        """Record the scheduler's plan for ``job``."""
        p = schema.job_schedule
        values = {"trigger": trigger, "next_run_at": next_run_at, "updated_at": at}
        statement = self._db.insert(p).values(job=job, **values)
        statement = statement.on_conflict_do_update(index_elements=[p.c.job], set_=values)
        with self._db.writing() as conn:
            conn.execute(statement)

    def plans(self) -> dict[str, JobPlan]:
        p = schema.job_schedule
        with self._db.reading() as conn:
            return {
                row.job: JobPlan(row.job, row.trigger, row.next_run_at, row.updated_at)
                for row in conn.execute(select(p))
            }


def _run(row: Any) -> JobRun:
    return JobRun(
        id=row.id,
        job=row.job,
        started_at=row.started_at,
        status=row.status,
        finished_at=row.finished_at,
        summary=row.summary,
        error=row.error,
    )
