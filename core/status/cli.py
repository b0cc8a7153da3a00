"""CLI glue for ``python -m core status [--json]``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from core.config import Settings
from core.embedding.embedder import Embedder
from core.errors import StorageError
from core.jobs import Job
from core.search.indexing import Indexer
from core.status.report import StatusReport, gather_status
from core.storage import JobRun, Storage, SyncState
from core.storage.migrate import current_revision, head_revision


class StatusServices(Protocol):
    """What ``status`` needs from the engine."""

    @property
    def storage(self) -> Storage: ...

    @property
    def embedder(self) -> Embedder: ...

    @property
    def indexer(self) -> Indexer: ...

    @property
    def jobs(self) -> tuple[Job, ...]: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...

    @property
    def settings(self) -> Settings: ...


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "status", help="collections, counts, the index, and each job's last and next run"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object")
    # Looking must not upgrade a database that an older bot is still running on.
    parser.set_defaults(run=run_status, upgrade=False)


def run_status(args: argparse.Namespace, engine: StatusServices) -> int:
    current, head = current_revision(engine.storage.database), head_revision()
    if current != head:
        raise StorageError(
            f"The database schema is at revision {current or 'none'} and this NFT Lens needs "
            f"{head}; run 'python -m core migrate' first."
        )
    report = gather_status(
        engine.storage,
        engine.embedder.key,
        engine.indexer.path,
        engine.jobs,
        engine.settings.sync.every_minutes,
    )
    if args.json:
        print(json.dumps(report_json(report)))
    else:
        print(format_report(report, engine.clock()))
    return 0


def report_json(report: StatusReport) -> dict[str, Any]:
    syncs = [c.sync for c in report.collections if c.sync is not None]
    finished = [s.last_finished_at for s in syncs if s.last_finished_at is not None]
    return {
        "schema_revision": report.schema_revision,
        "index": {
            "model": report.model,
            "vectors": report.embedded,
            "file_bytes": report.index_file.size_bytes if report.index_file else None,
            "updated_at": _iso(report.index_file.updated_at) if report.index_file else None,
        },
        "collections": [
            {
                "slug": c.slug,
                "name": c.name,
                "chain": c.chain,
                "tokens": c.tokens,
                "sales": c.sales,
                "embedded": c.embedded,
                "latest_sale": _iso(c.latest_sale),
                "sync": _sync_json(c.sync, c.sync_due),
            }
            for c in report.collections
        ],
        "last_sync": _iso(max(finished, default=None)),
        "jobs": [
            {
                "name": j.name,
                "description": j.description,
                "schedule": j.schedule,
                "enabled": j.enabled,
                "last_run": _run_json(j.last_run),
                "next_run": _iso(j.next_run),
                "planned_at": _iso(j.planned_at),
            }
            for j in report.jobs
        ],
    }


def format_report(report: StatusReport, now: datetime) -> str:
    index = report.index_file
    built = (
        f"file {index.size_bytes / 1e6:,.1f} MB, rebuilt {index.updated_at:%Y-%m-%d %H:%M} UTC"
        if index
        else "not built yet (python -m core index)"
    )
    lines = [
        f"schema revision {report.schema_revision or '?'}",
        f"index ({report.model}): {report.embedded:,} vectors; {built}",
        "collections:" if report.collections else "collections: none tracked yet",
    ]
    for c in report.collections:
        latest = f"latest sale {c.latest_sale:%Y-%m-%d}" if c.latest_sale else "no sales"
        lines.append(
            f"  {c.slug} ({c.chain}): {c.tokens:,} tokens, {c.embedded:,} embedded, "
            f"{c.sales:,} sales, {latest}"
        )
        if c.sync is not None:
            lines.append(f"    sync: {_sync_text(c.sync, c.sync_due, now)}")
    lines.append("jobs:")
    for j in report.jobs:
        lines.append(f"  {j.name} ({j.schedule}{'' if j.enabled else ', disabled'}):")
        lines.append(f"    last run: {_run_text(j.last_run)}")
        lines.append(f"    next run: {_next_text(j.next_run, now, j.enabled)}")
    return "\n".join(lines)


def _sync_text(state: SyncState, due: datetime | None, now: datetime) -> str:
    following = f"following on {state.marketplace}" if state.following else "not followed"
    if state.last_finished_at is None:
        last = "never synced"
    elif state.last_status == "failed":
        last = f"failed {state.last_finished_at:%Y-%m-%d %H:%M} UTC: {state.last_error}"
    else:
        last = f"ok {state.last_finished_at:%Y-%m-%d %H:%M} UTC"
    text = f"{following}; last {last}"
    if state.checkpoint is not None:
        text += f"; complete to {state.checkpoint:%Y-%m-%d %H:%M} UTC"
    if state.following:
        text += "; next " + ("with the next sync run" if due is None or due <= now
                             else f"{due:%Y-%m-%d %H:%M} UTC")  # fmt: skip
    return text


def _sync_json(state: SyncState | None, due: datetime | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {
        "marketplace": state.marketplace,
        "following": state.following,
        "every_minutes": state.every_minutes,
        "checkpoint": _iso(state.checkpoint),
        "last_started_at": _iso(state.last_started_at),
        "last_finished_at": _iso(state.last_finished_at),
        "last_status": state.last_status,
        "last_summary": state.last_summary,
        "last_error": state.last_error,
        "next_due": _iso(due),
    }


def _run_text(run: JobRun | None) -> str:
    if run is None:
        return "never"
    when = f"{run.started_at:%Y-%m-%d %H:%M} UTC"
    detail = run.error if run.status == "failed" else run.summary
    return f"{run.status} at {when} (ref {run.id})" + (f": {detail}" if detail else "")


def _next_text(next_run: datetime | None, now: datetime, enabled: bool) -> str:
    if not enabled:
        return "never (disabled in config.yaml)"
    if next_run is None:
        return "not scheduled yet (the bot schedules jobs when it runs: python -m bot)"
    text = f"{next_run:%Y-%m-%d %H:%M} UTC"
    if next_run < now:
        return text + " (overdue: is the bot running?)"
    return text


def _run_json(run: JobRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.id,
        "status": run.status,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "summary": run.summary,
        "error": run.error,
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
