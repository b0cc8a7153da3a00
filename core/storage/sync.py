"""Marketplace sync's bookkeeping: followed collections, checkpoints and failed tokens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select

from core.storage import schema
from core.storage.database import Database

# How much of a failure message is kept per token.
ERROR_CHARS = 500


@dataclass(frozen=True)
class SyncState:
    """Where one collection's sync stands."""

    slug: str
    marketplace: str
    following: bool
    every_minutes: float | None = None
    # Every sale up to this moment is stored (the next run asks from here, less an overlap).
    checkpoint: datetime | None = None
    # An unfinished run stored everything in [resume_before, resume_until].
    resume_before: datetime | None = None
    resume_until: datetime | None = None
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    last_status: str | None = None
    last_summary: str | None = None
    last_error: str | None = None


class SyncBook:
    """Reads and writes sync state."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def follow(
        self, collection_pk: int, *, every_minutes: float | None = None, replace: bool = True
    ) -> bool:
        """Follow a collection; with ``replace`` false an existing row (say an /untrack) is
        left alone. Returns whether anything changed."""
        s = schema.sync_state
        values: dict[str, Any] = {"following": True, "every_minutes": every_minutes}
        statement = self._db.insert(s).values(collection_id=collection_pk, **values)
        if replace:
            statement = statement.on_conflict_do_update(
                index_elements=[s.c.collection_id], set_=values
            )
        else:
            statement = statement.on_conflict_do_nothing(index_elements=[s.c.collection_id])
        with self._db.writing() as conn:
            return bool(conn.execute(statement).rowcount)

    def unfollow(self, collection_pk: int) -> bool:
        """Stop following; the collection and its data stay. False if it was not followed."""
        s = schema.sync_state
        statement = (
            s.update()
            .where(s.c.collection_id == collection_pk)
            .where(s.c.following.is_(True))
            .values(following=False)
        )
        with self._db.writing() as conn:
            return bool(conn.execute(statement).rowcount)

    def states(self, *, following_only: bool = False) -> list[SyncState]:
        """Every collection that has sync state, by slug."""
        query = _state_query().order_by(schema.collections.c.slug)
        if following_only:
            query = query.where(schema.sync_state.c.following.is_(True))
        with self._db.reading() as conn:
            return [_state(row) for row in conn.execute(query)]

    def state(self, slug: str) -> SyncState | None:
        query = _state_query().where(schema.collections.c.slug == slug)
        with self._db.reading() as conn:
            row = conn.execute(query).first()
        return None if row is None else _state(row)

    def started(self, collection_pk: int, at: datetime) -> None:
        self._update(collection_pk, last_started_at=at)

    def progressed(self, collection_pk: int, before: datetime, until: datetime) -> None:
        """An unfinished run has stored every sale in [before, until]."""
        self._update(collection_pk, resume_before=before, resume_until=until)

    def advanced(self, collection_pk: int, checkpoint: datetime | None) -> None:
        """Every sale up to ``checkpoint`` is stored; the next run starts there."""
        self._update(collection_pk, checkpoint=checkpoint, resume_before=None, resume_until=None)

    def finished(self, collection_pk: int, at: datetime, summary: str) -> None:
        """A run ended well."""
        self._update(
            collection_pk,
            last_finished_at=at,
            last_status="ok",
            last_summary=summary,
            last_error=None,
        )

    def failed(self, collection_pk: int, at: datetime, error: str) -> None:
        """A run stopped; its checkpoint (and how far it got) stay as they were."""
        self._update(
            collection_pk,
            last_finished_at=at,
            last_status="failed",
            last_error=error[:ERROR_CHARS],
        )

    # Tokens whose metadata or image failed -----------------------------------------------

    def token_failed(
        self, collection_pk: int, token_id: str, error: str, at: datetime, retry_hours: float
    ) -> None:
        """Count a failure; the token is tried again after ``retry_hours`` × attempts."""
        f = schema.token_failures
        key = and_(f.c.collection_id == collection_pk, f.c.token_id == token_id)
        with self._db.writing() as conn:
            attempts = conn.execute(select(f.c.attempts).where(key)).scalar() or 0
            values = {
                "attempts": attempts + 1,
                "retry_at": at + timedelta(hours=retry_hours * (attempts + 1)),
                "error": error[:ERROR_CHARS],
            }
            statement = self._db.insert(f).values(
                collection_id=collection_pk, token_id=token_id, **values
            )
            statement = statement.on_conflict_do_update(
                index_elements=[f.c.collection_id, f.c.token_id], set_=values
            )
            conn.execute(statement)

    def tokens_recovered(self, collection_pk: int, token_ids: Sequence[str]) -> None:
        f = schema.token_failures
        if not token_ids:
            return
        with self._db.writing() as conn:
            conn.execute(
                f.delete()
                .where(f.c.collection_id == collection_pk)
                .where(f.c.token_id.in_(list(token_ids)))
            )

    def tokens_to_fetch(self, collection_pk: int, at: datetime, limit: int) -> list[str]:
        """Tokens that have sales but no token row, by token id, leaving out those whose
        last failure is still backing off."""
        s, t, f = schema.sales, schema.tokens, schema.token_failures
        known = (
            select(t.c.id)
            .where(t.c.collection_id == collection_pk)
            .where(t.c.token_id == s.c.token_id)
        )
        waiting = (
            select(f.c.token_id)
            .where(f.c.collection_id == collection_pk)
            .where(f.c.token_id == s.c.token_id)
            .where(f.c.retry_at > at)
        )
        query = (
            select(s.c.token_id)
            .where(s.c.collection_id == collection_pk)
            .where(~known.exists())
            .where(~waiting.exists())
            .group_by(s.c.token_id)
            .order_by(s.c.token_id)
            .limit(limit)
        )
        with self._db.reading() as conn:
            return [row[0] for row in conn.execute(query)]

    def failures(self, collection_pk: int) -> int:
        """How many tokens are waiting to be tried again."""
        f = schema.token_failures
        query = select(func.count()).select_from(f).where(f.c.collection_id == collection_pk)
        with self._db.reading() as conn:
            return int(conn.execute(query).scalar_one())

    def _update(self, collection_pk: int, **values: Any) -> None:
        s = schema.sync_state
        statement = self._db.insert(s).values(
            collection_id=collection_pk, following=False, **values
        )
        statement = statement.on_conflict_do_update(
            index_elements=[s.c.collection_id], set_=values
        )
        with self._db.writing() as conn:
            conn.execute(statement)


def _state_query() -> Any:
    s, c = schema.sync_state, schema.collections
    return select(c.c.slug, c.c.marketplace, s).join(c, c.c.id == s.c.collection_id)


def _state(row: Any) -> SyncState:
    return SyncState(
        slug=row.slug,
        marketplace=row.marketplace,
        following=bool(row.following),
        every_minutes=row.every_minutes,
        checkpoint=row.checkpoint,
        resume_before=row.resume_before,
        resume_until=row.resume_until,
        last_started_at=row.last_started_at,
        last_finished_at=row.last_finished_at,
        last_status=row.last_status,
        last_summary=row.last_summary,
        last_error=row.last_error,
    )
