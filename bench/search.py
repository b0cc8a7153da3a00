"""Search by size: the index kind chosen for a million vectors, against exact search.

    python -m bench.search [--count 1000000] [--queries 1000] [--threads 1]

Vectors are synthetic but shaped like the engine's: unit 1,216-d vectors whose common
direction has norm 0.83 and whose variance falls off as (i + 10)^-1.9 over a random basis,
which matches the real CryptoPunks vectors (16, 64, 128, 256 and 512 principal components keep
57%, 84%, 91%, 96% and 98% of the variance, against the real 57%, 84%, 92%, 96.5%, 99%).
They come in families of about 100 (a collection's look-alikes), spread so that a token's
nearest neighbour has cosine about 0.99, as among real punks. Queries are new members of
random families, so their neighbours are the hard case: look-alikes, not copies.

Prints, for the index ``index.approximate_above`` picks at this size (IVF by default): build
seconds, bytes per token (the saved file over the token count), and on ``--threads`` threads
per single query p50/p95 milliseconds and recall@10 against exact search, for the shipped
settings and a few neighbours; then a collection filter (one family, and 20 families) inside
the large index. Exact search is timed on the same queries for scale.

Last, ``similar`` through the engine with the model and workers warm, on an index of
``--count`` vectors: 400 real punks (ingested and embedded with the real weights) plus
look-alike vectors drawn around them (under keys no token has), so each query's probe walks
lists crowded with near-duplicates. Queries are punk image files, unfiltered and filtered to
the collection. Target: p95 ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from bench.shared import WEIGHTS, punk_dataset
from core.app import open_engine
from core.config import IndexSettings, load_settings
from core.search.index import VectorIndex

DIM = 1216
FAMILY = 100
MEAN_NORM = 0.83
SPREAD = 0.2


class Shape:
    """The synthetic distribution: a mean, a basis, a spectrum and family centres."""

    def __init__(self, families: int, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self.basis = np.linalg.qr(rng.standard_normal((DIM, DIM)))[0].astype(np.float32)
        spectrum = (np.arange(1, DIM + 1) + 10.0) ** -1.9
        spectrum *= (1 - MEAN_NORM**2) / spectrum.sum()
        self.scale = np.sqrt(spectrum).astype(np.float32)
        mean = rng.standard_normal(DIM)
        self.mean = (MEAN_NORM * mean / np.linalg.norm(mean)).astype(np.float32)
        self.centres = rng.standard_normal((families, DIM)).astype(np.float32)
        self.centres *= math.sqrt(1 - SPREAD**2)

    def draw(self, families: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noise = rng.standard_normal((len(families), DIM), dtype=np.float32) * SPREAD
        x = ((self.centres[families] + noise) * self.scale) @ self.basis.T + self.mean
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x


def generate(count: int, shape: Shape, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    families = rng.integers(0, len(shape.centres), count)
    vectors = np.empty((count, DIM), np.float32)
    for start in range(0, count, 50_000):
        vectors[start : start + 50_000] = shape.draw(families[start : start + 50_000], rng)
    return vectors, families


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def timed(index: VectorIndex, queries: np.ndarray, allowed: np.ndarray | None = None):
    times, found = [], []
    for query in queries:
        started = time.perf_counter()
        _, keys = index.search(query[None], 10, allowed)
        times.append((time.perf_counter() - started) * 1000)
        found.append(keys[0])
    return np.percentile(times, 50), np.percentile(times, 95), np.stack(found)


def similar_at_scale(count: int, tokens: int = 400, runs: int = 100) -> list[str]:
    """``similar`` latency on an index of ``count`` vectors around ``tokens`` real punks."""
    work = Path(tempfile.mkdtemp(prefix="nftlens-bench-"))
    try:
        dataset = punk_dataset(work / "dataset", tokens)
        env = {"NFTLENS_VGG16_WEIGHTS": str(WEIGHTS), "NFTLENS_DATA_DIR": str(work / "data")}
        settings = load_settings(env=env)
        queries = [str(dataset / "images" / f"{i}.png") for i in range(0, tokens, tokens // 20)]

        runtime = ""

        async def measure() -> dict[str, list[float]]:
            nonlocal runtime
            async with open_engine(settings) as engine:
                await asyncio.to_thread(engine.ingester.ingest, dataset, progress=False)
            # Reopened as the bot opens it: the runtime it picks (INT8 on a VNNI CPU) is
            # converted now, calibrated on the punks just ingested.
            async with open_engine(settings, convert=True) as engine:
                await asyncio.to_thread(engine.indexer.run, progress=False)
                keys, real = engine.storage.vectors.vectors(engine.embedder.key)
                rng = np.random.default_rng(5)
                extra = count - len(keys)
                vectors = np.empty((count, real.shape[1]), np.float32)
                vectors[: len(real)] = real
                for start in range(len(real), count, 50_000):
                    block = real[rng.integers(0, len(real), min(50_000, count - start))]
                    block += rng.standard_normal(block.shape, dtype=np.float32) * 0.004
                    block /= np.linalg.norm(block, axis=1, keepdims=True)
                    vectors[start : start + len(block)] = block
                all_keys = np.concatenate([keys, keys.max() + 1 + np.arange(extra)])
                VectorIndex.build(all_keys, vectors, settings.index).save(engine.indexer.path)
                del vectors
                await asyncio.to_thread(engine.decoder.warm_up)
                runtime = engine.embedder.device
                await engine.similar.similar(queries[0], allow_files=True)  # loads the index
                times: dict[str, list[float]] = {"all": [], "cryptopunks": []}
                for _ in range(runs // len(queries)):
                    for query in queries:
                        for scope, times_of in times.items():
                            collection = None if scope == "all" else scope
                            begun = time.perf_counter()
                            await engine.similar.similar(
                                query, allow_files=True, collection=collection
                            )
                            times_of.append((time.perf_counter() - begun) * 1000)
                return times

        times = asyncio.run(measure())
        rows = [
            "| similar, model and workers warm | index | runtime | p50 ms | p95 ms |",
            "|---|---|---|---:|---:|",
        ]
        for scope, values in times.items():
            label = "unfiltered" if scope == "all" else f"filtered to {scope} ({tokens} tokens)"
            rows.append(
                f"| {label} | {count:,} vectors | {runtime} | {np.percentile(values, 50):.0f} "
                f"| {np.percentile(values, 95):.0f} |"
            )
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--parts", default="search,similar", help="search (the index alone), similar (engine)"
    )
    args = parser.parse_args()
    parts = args.parts.split(",")
    if "search" in parts:
        index_at_scale(args.count, args.queries, args.threads)
    if "similar" in parts:
        print("\n" + "\n".join(similar_at_scale(args.count)))


def index_at_scale(count: int, queries_wanted: int, threads: int) -> None:
    """The index alone: build, size, latency and recall, filters."""
    shape = Shape(max(1, count // FAMILY))
    started = time.perf_counter()
    vectors, families = generate(count, shape, seed=1)
    keys = np.arange(count, dtype=np.int64) * 3 + 11  # scattered, like token row ids
    rng = np.random.default_rng(2)
    queries = shape.draw(rng.integers(0, len(shape.centres), queries_wanted), rng)
    print(f"generated {count:,} vectors in {time.perf_counter() - started:.0f} s")

    exact = faiss.IndexFlatIP(DIM)
    exact.add(vectors)
    _, truth_rows = exact.search(queries, 10)
    truth = keys[truth_rows]
    nearest = np.sort(exact.search(vectors[:500], 2)[0][:, 1])
    print(f"nearest-neighbour cosine of indexed vectors: median {np.median(nearest):.3f}")

    settings = IndexSettings()
    started = time.perf_counter()
    index = VectorIndex.build(keys, vectors, settings)
    build_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index.faiss"
        index.save(path)
        per_token = path.stat().st_size / count

    faiss.omp_set_num_threads(threads)
    print(
        f"\n{count:,} × {DIM}-d, kind {index.kind}, {index.lists} lists, built in "
        f"{build_s:.0f} s (2 threads), {per_token:,.0f} bytes per token; "
        f"search on {threads} thread(s), {queries_wanted} queries, k = 10\n"
    )
    print("| index | nprobe | re-rank × k | p50 ms | p95 ms | recall@10 |")
    print("|---|---:|---:|---:|---:|---:|")
    variants = [(settings.nprobe, settings.rerank_factor)]
    variants += [(8, 5), (16, 3), (16, 10), (32, 5), (64, 5)]
    for nprobe, factor in variants:
        tuned = index.searched_with(
            settings.model_copy(update={"nprobe": nprobe, "rerank_factor": factor})
        )
        p50, p95, found = timed(tuned, queries)
        shipped = " (shipped)" if (nprobe, factor) == variants[0] else ""
        print(
            f"| {index.kind}{shipped} | {nprobe} | {factor} | {p50:.2f} | {p95:.2f} "
            f"| {recall(found, truth):.3f} |"
        )
    times = []
    for query in queries[:50]:
        begun = time.perf_counter()
        exact.search(query[None], 10)
        times.append((time.perf_counter() - begun) * 1000)
    p50, p95 = np.percentile(times, 50), np.percentile(times, 95)
    print(f"| exact (brute force) | | | {p50:.2f} | {p95:.2f} | 1.000 |")

    print(
        "\n| collection filter inside the index | keys | p50 ms | p95 ms "
        "| recall@10 vs exact in the filter |"
    )
    print("|---|---:|---:|---:|---:|")
    for label, chosen in (("one family", 1), ("20 families", 20), ("500 families", 500)):
        picked = rng.choice(len(shape.centres), chosen, replace=False)
        rows = np.flatnonzero(np.isin(families, picked))
        member_queries = shape.draw(rng.choice(picked, 100), rng)
        sims = member_queries @ vectors[rows].T
        want = keys[rows][np.argsort(-sims, axis=1)[:, :10]]
        p50, p95, found = timed(index, member_queries, keys[rows])
        print(f"| {label} | {len(rows):,} | {p50:.2f} | {p95:.2f} | {recall(found, want):.3f} |")


if __name__ == "__main__":
    main()
