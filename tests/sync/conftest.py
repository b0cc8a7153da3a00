"""Fixtures for sync tests: the fake marketplaces, and engines pointed at them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from core.app import Engine, open_engine
from core.config import Secrets, Settings
from core.imaging.workers import DecoderPool
from core.storage import schema
from tests.fakes import FakeEmbedder
from tests.sync.fake_market import FakeMarket, make_nfts, make_sales

KEY = "test-opensea-key"
START = int(datetime(2025, 6, 1, tzinfo=UTC).timestamp())
SLUG = "apes"
SYMBOL = "sol_birds"


@pytest.fixture
def market() -> Iterator[FakeMarket]:
    with FakeMarket(api_key=KEY) as fake:
        yield fake


def sync_settings(data_dir: Path, market: FakeMarket, **changes: Any) -> Settings:
    """Settings pointed at the fake, with retries quick enough for tests."""
    raw: dict[str, Any] = {
        "data_dir": str(data_dir),
        "fetch": {
            "ipfs_gateway": market.ipfs_root,
            "ipfs_fallback_gateways": [],
            "timeout_s": 5,
        },
        "marketplaces": {
            "opensea": {"api_root": market.opensea_root, "requests_per_s": 100, "page_size": 50},
            "magiceden": {"api_root": market.magiceden_root, "requests_per_s": 100,
                          "page_size": 40},
            "prices": {"api_root": market.prices_root, "requests_per_s": 100},
            "timeout_s": 2,
            "max_retries": 3,
            "backoff_s": 0.01,
            "max_backoff_s": 0.05,
        },
        "sync": {"history_days": 0},
    }  # fmt: skip
    for section, values in changes.items():
        if isinstance(values, dict) and isinstance(raw.get(section), dict):
            for key, value in values.items():
                current = raw[section].get(key)
                if isinstance(current, dict) and isinstance(value, dict):
                    current.update(value)
                else:
                    raw[section][key] = value
        else:
            raw[section] = values
    return Settings.model_validate(raw)


@asynccontextmanager
async def sync_engine(
    settings: Settings,
    decoder: DecoderPool,
    *,
    key: str | None = KEY,
    clock: Callable[[], datetime] | None = None,
    embedder: FakeEmbedder | None = None,
) -> AsyncIterator[Engine]:
    secrets = Secrets(opensea_api_key=SecretStr(key) if key else None)
    async with open_engine(
        settings,
        embedder=embedder or FakeEmbedder(),
        decoder=decoder,
        secrets=secrets,
        clock=clock,
    ) as engine:
        yield engine


def add_apes(market: FakeMarket, tokens: int = 60, sales: int = 200, seed: int = 0) -> None:
    nfts = make_nfts(tokens, seed)
    market.add_opensea_collection(SLUG, "Apes", nfts, make_sales(nfts, sales, START, seed))


def add_birds(market: FakeMarket, tokens: int = 40, sales: int = 150, seed: int = 1) -> None:
    nfts = make_nfts(tokens, seed, base58=True)
    market.add_magiceden_collection(
        SYMBOL, nfts, make_sales(nfts, sales, START, seed, symbol="SOL", signature=True)
    )


@dataclass(frozen=True)
class Snapshot:
    """What a sync leaves in the database, keyed by natural keys (row ids differ by run)."""

    sales: frozenset[tuple[str, str, int, float, str]]
    tokens: frozenset[tuple[str, str, str]]
    embedded: frozenset[str]
    checkpoint: datetime | None
    resume: tuple[datetime | None, datetime | None]


def snapshot(engine: Engine, slug: str) -> Snapshot:
    db = engine.storage.database
    c, s, t, e, st = (
        schema.collections, schema.sales, schema.tokens, schema.embeddings, schema.sync_state,
    )  # fmt: skip
    with db.reading() as conn:
        pk = conn.execute(select(c.c.id).where(c.c.slug == slug)).scalar_one()
        sales = frozenset(
            (r.tx, r.token_id, int(r.timestamp.timestamp()), round(r.price, 9), r.currency)
            for r in conn.execute(select(s).where(s.c.collection_id == pk))
        )
        tokens = frozenset(
            (r.token_id, r.image_sha256, r.attributes_json)
            for r in conn.execute(select(t).where(t.c.collection_id == pk))
        )
        embedded = frozenset(
            r.token_id
            for r in conn.execute(
                select(t.c.token_id).join(e, e.c.token_pk == t.c.id).where(t.c.collection_id == pk)
            )
        )
        state = conn.execute(select(st).where(st.c.collection_id == pk)).first()
    return Snapshot(
        sales,
        tokens,
        embedded,
        state.checkpoint if state else None,
        (state.resume_before, state.resume_until) if state else (None, None),
    )


def served_sales(market: FakeMarket, key: str, currency: str) -> frozenset[tuple[str, str, int]]:
    return frozenset(
        (sale.tx.lower() if currency == "ETH" else sale.tx, sale.token_id, sale.timestamp)
        for sale in market.sales_of(key)
    )


def stored_sales(snap: Snapshot) -> frozenset[tuple[str, str, int]]:
    return frozenset((tx, token, ts) for tx, token, ts, _, _ in snap.sales)
