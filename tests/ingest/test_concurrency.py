"""Concurrent writers (two ingests and the index job at once) lose and duplicate nothing, on
SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from core.imaging.workers import DecoderPool
from tests.datasets import PUNKS_WITH_SALES, make_settings, moonbirds, punks, sale_rows
from tests.engines import engine_for


def test_two_ingests_and_the_index_job_at_once(
    tmp_path: Path, database_url: str, decoder: DecoderPool
) -> None:
    settings = make_settings(tmp_path, database_url=database_url)
    punk_set = punks(tmp_path / "punks", count=20)
    bird_set = moonbirds(tmp_path / "birds", count=10)
    expected_sales = sum(len(sale_rows(punk_set, t)) for t in PUNKS_WITH_SALES)
    errors: list[BaseException] = []
    ingests_done = threading.Event()

    def each_in_its_own_engine(work: Callable[..., object]) -> Callable[[], None]:
        # Separate engines: separate connection pools, as separate processes would have.
        def run() -> None:
            try:
                with engine_for(settings, decoder) as engine:
                    work(engine)
            except BaseException as exc:
                errors.append(exc)

        return run

    def index_until_ingests_finish(engine: object) -> None:
        while not ingests_done.is_set():
            engine.indexer.run(progress=False)  # type: ignore[attr-defined]

    def ingest(dataset: Path) -> Callable[[object], object]:
        return lambda engine: engine.ingester.ingest(dataset, progress=False)  # type: ignore[attr-defined]

    ingests = [
        threading.Thread(target=each_in_its_own_engine(ingest(dataset)))
        for dataset in (punk_set, punk_set, bird_set)
    ]
    indexing = threading.Thread(target=each_in_its_own_engine(index_until_ingests_finish))
    indexing.start()
    for thread in ingests:
        thread.start()
    for thread in ingests:
        thread.join(timeout=120)
    ingests_done.set()
    indexing.join(timeout=120)

    assert errors == []
    with engine_for(settings, decoder) as engine:
        final = engine.indexer.run(progress=False)
        assert engine.storage.catalog.token_counts() == {"cryptopunks": 20, "moonbirds": 10}
        assert engine.storage.sales.counts() == {"cryptopunks": expected_sales}
        assert len(engine.storage.sales.sales("cryptopunks")) == expected_sales
        assert engine.storage.vectors.counts(engine.embedder.key) == {
            "cryptopunks": 20,
            "moonbirds": 10,
        }
        assert final.indexed == 30
