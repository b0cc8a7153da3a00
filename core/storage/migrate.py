"""Upgrading a database's schema in place with Alembic, on SQLite and PostgreSQL.

Every start of the CLI and the bot runs ``migrate``; it does nothing when the database is
current. Databases made by version 0.1 (``create_all``, no ``alembic_version`` table) are
stamped at the first revision, which is exactly that schema, and upgraded from there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from filelock import FileLock, Timeout
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from core.errors import StorageError
from core.storage.database import Database

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The revision that is version 0.1's schema.
BASELINE = "0001"
# Any constant works; it names "schema migration" among PostgreSQL advisory locks.
PG_LOCK_KEY = 0x4E46_544C  # "NFTL"
LOCK_TIMEOUT_S = 120


@dataclass(frozen=True)
class Migration:
    """What one ``migrate`` did: the revision before (``None``: empty database) and after."""

    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:  # pragma: no cover - the project always ships revisions
        raise StorageError("No database migrations are installed.")
    return head


def current_revision(db: Database) -> str | None:
    """The database's revision (a version 0.1 database is at the baseline); ``None`` for an
    empty database."""
    with db.reading() as conn:
        return _revision_or_baseline(conn)


def migrate(db: Database, target: str | None = None) -> Migration:
    """Bring the database to the newest revision (or ``target``, for tests that build the
    database a previous version made); safe to run from several processes at once."""
    head = target or head_revision()
    try:
        with _exclusive(db), db.engine.begin() as conn:
            before = _revision_or_baseline(conn)
            if before == head:
                return Migration(before, head)
            config = _config()
            config.attributes["connection"] = conn
            if before == BASELINE and not _has_version_table(conn):
                command.stamp(config, BASELINE)
            command.upgrade(config, head)
    except CommandError as exc:
        raise StorageError(
            "The database was made by a newer NFT Lens than this one; upgrade NFT Lens "
            "(or point it at another database)."
        ) from exc
    except SQLAlchemyError as exc:
        raise StorageError(
            f"Upgrading the database schema failed ({exc.__class__.__name__})."
        ) from exc
    if before != head:
        log.info("database schema upgraded from %s to %s", before or "empty", head)
    return Migration(before, head)


def _revision_or_baseline(conn: Connection) -> str | None:
    revision = MigrationContext.configure(conn).get_current_revision()
    if revision is None and not _has_version_table(conn):
        tables = set(inspect(conn).get_table_names())
        if "collections" in tables:
            return BASELINE
    return revision


def _has_version_table(conn: Connection) -> bool:
    return "alembic_version" in inspect(conn).get_table_names()


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@contextmanager
def _exclusive(db: Database) -> Iterator[None]:
    """One migrating process at a time: an advisory lock on PostgreSQL, a file lock next to
    an SQLite file (SQLite runs DDL outside transactions, so it needs the outer lock)."""
    if db.dialect == "postgresql":
        with db.engine.connect() as conn:
            deadline = time.monotonic() + LOCK_TIMEOUT_S
            lock = text("SELECT pg_try_advisory_lock(:key)")
            while not conn.execute(lock, {"key": PG_LOCK_KEY}).scalar():
                if time.monotonic() > deadline:
                    raise StorageError(
                        "Another process has been upgrading the database for too long."
                    )
                time.sleep(0.5)
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PG_LOCK_KEY})
                conn.commit()
        return
    path = db.sqlite_path
    if path is None:
        yield
        return
    try:
        with FileLock(f"{path}.migrate.lock", timeout=LOCK_TIMEOUT_S):
            yield
    except Timeout as exc:
        raise StorageError(
            "Another process has been upgrading the database for too long."
        ) from exc
