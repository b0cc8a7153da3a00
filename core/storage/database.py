"""The database connection: SQLite or PostgreSQL, errors as one sentence, UTC timestamps."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.types import TypeDecorator

from core.errors import StorageError

log = logging.getLogger(__name__)

# SQLite caps bound parameters per statement; IN (...) lists are chunked below it.
CHUNK = 500


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps that go in and come out as aware UTC datetimes, on either database.

    SQLite keeps datetimes as text and drops any offset, so they are stored as naive UTC there;
    PostgreSQL gets aware UTC values, so its ``timestamptz`` never reads them in the server's
    local time zone.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Database:
    """One SQLAlchemy engine, with reading and writing transactions that speak our errors."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def connect(cls, url: str) -> Database:
        """Connect to ``url`` (nothing is created or migrated here)."""
        try:
            parsed = make_url(url)
            engine = create_engine(parsed, pool_pre_ping=parsed.get_backend_name() != "sqlite")
        except (SQLAlchemyError, ArgumentError, ImportError, ValueError) as exc:
            raise StorageError(f"Cannot open the database: {exc.__class__.__name__}.") from exc
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        return cls(engine)

    @property
    def dialect(self) -> str:
        return str(self.engine.dialect.name)

    @property
    def sqlite_path(self) -> str | None:
        """The database file, for SQLite on disk; ``None`` otherwise."""
        if self.dialect != "sqlite":
            return None
        name = self.engine.url.database
        return name if name and name != ":memory:" else None

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with translated(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        with translated(), self.engine.begin() as conn:
            yield conn

    def insert(self, table: Table) -> Any:
        """An INSERT that knows ``ON CONFLICT`` on this dialect (both support it)."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)


@contextmanager
def translated() -> Iterator[None]:
    """Database failures (locked, full disk, lost connection) as one StorageError sentence."""
    try:
        yield
    except SQLAlchemyError as exc:
        log.debug("database error", exc_info=True)
        raise StorageError(
            f"The database failed ({exc.__class__.__name__}); try again in a moment."
        ) from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer; busy_timeout: a second writer (the bot's job and a
    # CLI ingest at once) waits its turn instead of failing with "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL syncs at checkpoints rather than at every commit: a killed process
    # loses nothing committed and the file never corrupts; only a power cut can take back
    # the last commits. Ingest commits thousands of chunks, each paying an fsync under FULL.
    cursor.execute("PRAGMA synchronous=NORMAL")
    # 64 MB of page cache (the default is 2 MB): inserts into a large sales table touch
    # index pages all over it.
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def chunks(items: list[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
