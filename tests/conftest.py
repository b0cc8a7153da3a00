"""Fixtures shared by the whole suite: the image workers, and the databases to test against."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from core.app import make_decoder
from core.config import Settings
from core.imaging.workers import DecoderPool
from tests.bot.fake_discord import FakeDiscord
from tests.bot.fake_telegram import FakeBotApi
from tests.postgres_server import running_server, server_binaries

# The storage, ingest and migration tests run against SQLite and PostgreSQL: a server this
# session starts from the installed Debian packages (.ci/run installs them), or the one this
# variable names. With neither, the PostgreSQL half is skipped, unless
# NFTLENS_TEST_REQUIRE_POSTGRES says that is a failure (CI sets it).
PG_URL_VARIABLE = "NFTLENS_TEST_DATABASE_URL"
DATABASES = ["sqlite", "postgresql"]


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    """The Telegram Bot API stand-in, on loopback."""
    fake = FakeBotApi()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    """The Discord REST and gateway stand-in, on loopback."""
    server = FakeDiscord()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="session")
def decoder() -> Iterator[DecoderPool]:
    """One warm pool of image workers, with the limits users get, shared by the session."""
    pool = make_decoder(Settings())
    pool.warm_up()
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str | None]:
    """A PostgreSQL server for this session, or ``None`` when there is none to be had."""
    url = os.environ.get(PG_URL_VARIABLE)
    if url:
        yield url
        return
    binaries = server_binaries()
    if binaries is None:
        if os.environ.get("NFTLENS_TEST_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is required for these tests but is not installed")
        yield None
        return
    with running_server(binaries) as started:
        yield started


@pytest.fixture
def fresh_postgres(postgres_admin_url: str | None) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards."""
    if not postgres_admin_url:
        pytest.skip("no PostgreSQL server (install postgresql or set NFTLENS_TEST_DATABASE_URL)")
    admin = make_url(postgres_admin_url).set(drivername="postgresql+psycopg")
    name = f"nftlens_{secrets.token_hex(6)}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind: SQLite in ``tmp_path``, and PostgreSQL when a server
    is available."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lens.sqlite'}"
    url: str = request.getfixturevalue("fresh_postgres")
    return url
