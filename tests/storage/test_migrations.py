"""Schema migrations: a database made by version 0.1 is upgraded in place and loses nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, insert, inspect, select, text

from core.errors import StorageError
from core.models import Attribute, ImageRef
from core.storage import Database, Storage, schema
from core.storage.migrate import BASELINE, current_revision, head_revision, migrate
from tests.datasets import ROOT
from tests.storage import legacy_schema as legacy

SHA = "ab" * 32
VECTOR = np.arange(4, dtype=np.float32)


def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture
def legacy_db(database_url: str) -> Iterator[Engine]:
    """A database as version 0.1 left it: its ``create_all`` schema and rows in every table."""
    engine = create_engine(sqlalchemy_url(database_url))
    legacy.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(legacy.collections),
            [
                {"id": 1, "slug": "cryptopunks", "name": "CryptoPunks", "chain": "ethereum",
                 "contract": "0xb47e", "currency": "ETH", "marketplace": "opensea"},
                {"id": 2, "slug": "moonbirds", "name": "Moonbirds", "chain": "ethereum",
                 "contract": None, "currency": "ETH", "marketplace": "opensea"},
            ],
        )  # fmt: skip
        conn.execute(
            insert(legacy.tokens),
            [
                {"id": 10 + n, "collection_id": 1 if n < 3 else 2, "token_id": str(n),
                 "name": None, "image_path": f"images/ab/{SHA}.png", "image_sha256": SHA,
                 "attributes_json": '[["type","Human"]]'}
                for n in range(5)
            ],
        )  # fmt: skip
        conn.execute(
            insert(legacy.attributes),
            [
                {"token_pk": 10 + n, "position": 0, "trait_type": "type", "value": "Human"}
                for n in range(5)
            ],
        )
        conn.execute(
            insert(legacy.sales),
            [
                {"collection_id": 1, "token_id": str(n % 3), "price": 1.5 + n,
                 "timestamp": datetime(2020, 1, 1 + n, 12), "currency": "ETH",
                 "tx": f"0x{n:02x}", "seller": "0xs", "buyer": "0xb", "marketplace": None}
                for n in range(7)
            ],
        )  # fmt: skip
        conn.execute(
            insert(legacy.embeddings),
            [
                {"token_pk": 10 + n, "model_key": "m", "image_sha256": SHA,
                 "vector": VECTOR.tobytes()}
                for n in range(5)
            ],
        )  # fmt: skip
    yield engine
    engine.dispose()


def row_counts(engine: Engine) -> dict[str, int]:
    tables = ("collections", "tokens", "attributes", "sales", "embeddings")
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}


def test_a_version_0_1_database_is_upgraded_and_keeps_every_row(
    legacy_db: Engine, database_url: str
) -> None:
    before = row_counts(legacy_db)

    storage = Storage.open(database_url)
    try:
        assert storage.migration is not None
        assert (storage.migration.before, storage.migration.after) == (BASELINE, head_revision())
        assert row_counts(legacy_db) == before == {
            "collections": 2, "tokens": 5, "attributes": 5, "sales": 7, "embeddings": 5,
        }  # fmt: skip
        # ...and every row reads back through today's code.
        token = storage.catalog.token("cryptopunks", "1")
        assert token.image == ImageRef(SHA, ".png")
        assert storage.catalog.attributes([token.pk]) == {token.pk: (Attribute("type", "Human"),)}
        sales = storage.sales.sales("cryptopunks")
        assert len(sales) == 7
        assert sales[0].timestamp == datetime(2020, 1, 1, 12, tzinfo=UTC)
        assert sales[-1].price == 7.5
        keys, vectors = storage.vectors.vectors("m")
        assert keys.tolist() == [10, 11, 12, 13, 14]
        np.testing.assert_array_equal(vectors[0], VECTOR)
        # New tables are there and usable.
        storage.jobs.planned("index", "every 15 min", None, datetime(2026, 1, 1, tzinfo=UTC))
        assert list(storage.jobs.plans()) == ["index"]
    finally:
        storage.close()


def test_an_upgraded_database_has_exactly_the_current_schema(
    legacy_db: Engine, database_url: str
) -> None:
    Storage.open(database_url).close()

    with legacy_db.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), schema.metadata)

    assert differences == []


def test_a_new_database_gets_exactly_the_current_schema(database_url: str) -> None:
    Storage.open(database_url).close()
    engine = create_engine(sqlalchemy_url(database_url))
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    finally:
        engine.dispose()

    assert differences == []


def test_migrating_a_current_database_changes_nothing(database_url: str) -> None:
    first = Storage.open(database_url)
    first.close()
    second = Storage.open(database_url)
    second.close()

    assert first.migration is not None and first.migration.before is None
    assert second.migration is not None and not second.migration.changed


def test_processes_starting_at_once_migrate_once(database_url: str) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            Storage.open(database_url).close()
        except BaseException as exc:  # collected for the assert below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    database = Database.connect(database_url)
    try:
        assert current_revision(database) == head_revision()
    finally:
        database.close()


def test_a_database_from_a_newer_version_is_refused_clearly(database_url: str) -> None:
    Storage.open(database_url).close()
    database = Database.connect(database_url)
    with database.writing() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    try:
        with pytest.raises(StorageError, match="made by a newer NFT Lens"):
            migrate(database)
    finally:
        database.close()


def test_the_migrate_command_reports_the_upgrade(tmp_path: Path, legacy_db: Engine) -> None:
    url = legacy_db.url.render_as_string(hide_password=False)
    config = tmp_path / "config.yaml"
    config.write_text(f"database_url: '{url}'\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NFTLENS_")}
    env.update(NFTLENS_CONFIG=str(config), NFTLENS_DATA_DIR=str(tmp_path / "data"))

    def command(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "core", name],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    # Looking leaves an old database alone (an older bot may still be running on it).
    looked = command("status")
    assert looked.returncode == 1 and "Traceback" not in looked.stderr
    assert f"at revision {BASELINE}" in looked.stderr and "python -m core migrate" in looked.stderr
    with legacy_db.connect() as conn:
        assert "alembic_version" not in inspect(conn).get_table_names()

    first, second = command("migrate"), command("migrate")

    assert first.returncode == 0, first.stderr
    assert f"upgraded the database schema from {BASELINE} to revision" in first.stdout
    assert second.returncode == 0, second.stderr
    assert "the database schema is current" in second.stdout
    with legacy_db.connect() as conn:
        assert conn.execute(select(legacy.sales.c.id)).all() != []


# One collection row, written as an old schema holds it.
APES = insert(schema.collections).values(
    id=1, slug="apes", name="Apes", chain="ethereum", contract="0xbc4c", currency="ETH",
    marketplace="opensea",
)  # fmt: skip


def test_a_database_made_by_the_previous_version_gains_sync_and_digests_keeping_every_row(
    database_url: str,
) -> None:
    # The previous release stopped at 0003 (price models and market data).
    database = Database.connect(database_url)
    try:
        assert migrate(database, target="0003").after == "0003"
        with database.writing() as conn:
            conn.execute(APES)
            conn.execute(
                insert(schema.sales),
                [
                    {"collection_id": 1, "token_id": str(n), "price": 1.0 + n,
                     "timestamp": datetime(2025, 1, 1 + n, tzinfo=UTC), "currency": "ETH",
                     "tx": f"0x{n:02x}", "seller": None, "buyer": None, "marketplace": None}
                    for n in range(3)
                ],
            )  # fmt: skip
            conn.execute(
                insert(schema.floors).values(collection_id=1, day=datetime(2025, 1, 1).date(),
                                             floor=0.5)
            )  # fmt: skip
    finally:
        database.close()

    storage = Storage.open(database_url)
    try:
        assert storage.migration is not None
        assert (storage.migration.before, storage.migration.after) == ("0003", head_revision())
        assert len(storage.sales.sales("apes")) == 3
        assert [floor for _, floor in storage.market.floors("apes")] == [0.5]
        # The new tables work on the old rows: follow, checkpoint, a failed token.
        pk = storage.catalog.collection_pk("apes")
        storage.sync.follow(pk, every_minutes=15)
        storage.sync.advanced(pk, datetime(2025, 1, 3, tzinfo=UTC))
        assert storage.sync.tokens_to_fetch(pk, datetime(2026, 1, 1, tzinfo=UTC), 10) == [
            "0", "1", "2",
        ]  # fmt: skip
        state = storage.sync.state("apes")
        assert state is not None and state.following and state.every_minutes == 15
        assert state.checkpoint == datetime(2025, 1, 3, tzinfo=UTC)
        # ...and so do the digest tables (0005).
        at = datetime(2026, 1, 1, tzinfo=UTC)
        assert storage.digests.subscribe("telegram:1", pk, "weekly", at)
        assert [s.collection for s in storage.digests.subscriptions()] == ["apes"]
        storage.digests.replace_clustering(pk, "m", {3: np.ones(4, np.float32)}, {}, at)
        assert list(storage.digests.clustering(pk, "m").centroids) == [3]
    finally:
        storage.close()


def test_a_database_made_by_the_previous_version_keeps_its_clusters(database_url: str) -> None:
    # The previous release stopped at 0005 (sync and digests).
    database = Database.connect(database_url)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        assert migrate(database, target="0005").after == "0005"
        with database.writing() as conn:
            conn.execute(APES)
            conn.execute(
                insert(schema.tokens),
                [
                    {"id": n, "collection_id": 1, "token_id": str(n),
                     "image_sha256": f"{n:064x}", "image_path": f"{n}.png",
                     "attributes_json": "[]"}
                    for n in (1, 2)
                ],
            )  # fmt: skip
            conn.execute(
                text(
                    "INSERT INTO clusters (collection_id, model_key, cluster_id, centroid,"
                    " created_at) VALUES (1, 'm', 4, :centroid, :at)"
                ),
                {"centroid": np.ones(4, np.float32).tobytes(), "at": at},
            )
            conn.execute(
                text(
                    "INSERT INTO cluster_members (token_pk, model_key, cluster_id)"
                    " VALUES (1, 'm', 4), (2, 'm', 4)"
                )
            )
    finally:
        database.close()

    storage = Storage.open(database_url)
    try:
        assert storage.migration is not None
        assert (storage.migration.before, storage.migration.after) == ("0005", head_revision())
        kept = storage.digests.clustering(1, "m")
        assert list(kept.centroids) == [4] and kept.members == {1: 4, 2: 4}
        assert kept.fitted_tokens is None  # unknown until the next full clustering
        storage.digests.replace_clustering(1, "m", {4: np.ones(4, np.float32)}, {1: 4}, at)
        assert storage.digests.clustering(1, "m").fitted_tokens == 1
    finally:
        storage.close()
