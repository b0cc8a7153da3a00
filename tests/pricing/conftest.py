"""One synthetic market per test session: ingested, indexed (fake embedder) and trained."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.app import Engine
from core.imaging.workers import DecoderPool
from core.pricing.service import TrainReport
from tests.datasets import make_settings
from tests.engines import engine_for
from tests.pricing.synthetic import CUT, SLUG, write_synthetic


@dataclass(frozen=True)
class Market:
    """An engine over the synthetic collection, with a model trained until ``CUT``."""

    engine: Engine
    dataset: Path
    report: TrainReport


@pytest.fixture(scope="session")
def market(tmp_path_factory: pytest.TempPathFactory, decoder: DecoderPool) -> Iterator[Market]:
    root = tmp_path_factory.mktemp("market")
    settings = make_settings(root, valuation={"min_sales": 200, "keep_models": 3})
    dataset = write_synthetic(root / "synthetic")
    with engine_for(settings, decoder) as engine:
        ingested = engine.ingester.ingest(dataset, progress=False)
        assert ingested.rejected == ()
        engine.indexer.run(progress=False)
        report = engine.pricing.train(SLUG, CUT)
        yield Market(engine, dataset, report)
