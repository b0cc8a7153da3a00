"""``python -m core sync`` SIGKILLed at points along the way, then rerun: same end state."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from core.config import load_settings
from core.storage import Storage, schema
from tests.datasets import ROOT, write_config
from tests.sync.conftest import KEY, SLUG, START
from tests.sync.fake_market import FakeMarket, make_nfts, make_sales

# A kill point is a number of requests the fake has answered (sales pages, then metadata and
# images), or None: a moment after the last request, while the run embeds and indexes.
KILL_POINTS: list[int | None] = [2, 5, 30, 70, None]


def _cli(root: Path, market: FakeMarket) -> tuple[list[str], dict[str, str]]:
    config = write_config(
        root / "config.yaml",
        {
            "embedding": {"input_size": 32, "batch_size": 8},
            "fetch": {"ipfs_gateway": market.ipfs_root, "ipfs_fallback_gateways": []},
            "marketplaces": {
                "opensea": {"api_root": market.opensea_root, "page_size": 20,
                            "requests_per_s": 50},
                "prices": {"api_root": market.prices_root, "requests_per_s": 50},
                "backoff_s": 0.01,
            },
            "sync": {"history_days": 0, "token_concurrency": 2},
        },
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("NFTLENS_")}
    env.update(
        NFTLENS_DATA_DIR=str(root / "data"),
        NFTLENS_CONFIG=str(config),
        NFTLENS_VGG16_WEIGHTS="none",
        OPENSEA_API_KEY=KEY,
    )
    command = [sys.executable, "-m", "core", "sync", "--collection", SLUG,
               "--marketplace", "opensea", "--json"]  # fmt: skip
    return command, env


def _state(root: Path) -> dict[str, object]:
    settings = load_settings(root / "config.yaml", env={"NFTLENS_DATA_DIR": str(root / "data")})
    storage = Storage.open(settings.db_url)
    c, s, t, e, st = (
        schema.collections, schema.sales, schema.tokens, schema.embeddings, schema.sync_state,
    )  # fmt: skip
    try:
        with storage.database.reading() as conn:
            pk = conn.execute(select(c.c.id).where(c.c.slug == SLUG)).scalar_one()
            sales = sorted(
                (r.tx, r.token_id, r.timestamp.isoformat(), r.price)
                for r in conn.execute(select(s).where(s.c.collection_id == pk))
            )
            tokens = sorted(
                (r.token_id, r.image_sha256, r.attributes_json)
                for r in conn.execute(select(t).where(t.c.collection_id == pk))
            )
            embedded = sorted(
                r.token_id
                for r in conn.execute(select(t.c.token_id).join(e, e.c.token_pk == t.c.id))
            )
            row = conn.execute(select(st).where(st.c.collection_id == pk)).one()
        index = Path(root / "data" / "index")
        return {
            "sales": sales,
            "tokens": tokens,
            "embedded": embedded,
            "checkpoint": row.checkpoint,
            "resume": (row.resume_before, row.resume_until),
            "following": row.following,
            "index_files": sorted(p.name for p in index.glob("*.faiss")),
        }
    finally:
        storage.close()


def test_a_sync_killed_at_any_point_and_rerun_ends_like_a_clean_one(tmp_path: Path) -> None:
    rng = random.Random(7)
    with FakeMarket(api_key=KEY) as market:
        nfts = make_nfts(30, 11)
        market.add_opensea_collection(SLUG, "Apes", nfts, make_sales(nfts, 90, START, 11))

        clean_root = tmp_path / "clean"
        command, env = _cli(clean_root, market)
        clean = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                               timeout=300)  # fmt: skip
        assert clean.returncode == 0, clean.stderr

        killed_root = tmp_path / "killed"
        command, env = _cli(killed_root, market)
        kills = 0
        for point in KILL_POINTS:
            market.reset_log()
            child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)  # fmt: skip
            try:
                target = point if point is not None else 10**9
                deadline = time.monotonic() + 120
                last_count, quiet_since = -1, time.monotonic()
                while child.poll() is None and time.monotonic() < deadline:
                    count = len(market.requests)
                    if count != last_count:
                        last_count, quiet_since = count, time.monotonic()
                    quiet = time.monotonic() - quiet_since
                    if count >= target or (point is None and count > 0 and quiet > 0.5):
                        # A little later than the threshold, at a random moment.
                        time.sleep(rng.uniform(0, 0.05))
                        child.send_signal(signal.SIGKILL)
                        kills += 1
                        break
                    time.sleep(0.002)
            finally:
                if child.poll() is None:
                    child.kill()
                child.wait(timeout=30)
        assert kills >= 3  # most points were reached before the run could finish

        rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                               timeout=300)  # fmt: skip
        assert rerun.returncode == 0, rerun.stderr
        report = json.loads(rerun.stdout)
        assert report["collections"][0]["error"] is None

    expected, got = _state(clean_root), _state(killed_root)
    assert len(expected["sales"]) == len(market.sales_of(SLUG))  # type: ignore[arg-type]
    assert got == expected
    assert got["resume"] == (None, None)
