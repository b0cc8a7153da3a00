"""Retrieval quality and speed of the embedding, on real CryptoPunks and Moonbirds.

For each method and input size: index N tokens of each collection, query with N synthetic
marketplace screenshots (bench/screenshots.py) and report recall@1 and @10 per collection and
on the mixed index; for punks also how often the 10 nearest neighbours share the punk's
`type` and how much their accessories overlap (Jaccard). "plain" is VGG16 as the study used
it: the image composited on white, resized, block5 average pooling.

    python -m bench.retrieval --n 300 --sizes 96,128,160,224 --poolings avg,max --bf16

Needs ../shared (data and weights); embeddings are cached under bench/out/cache.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from bench.screenshots import make_screenshot
from core.embedding.vgg16 import VGG16Embedder
from core.imaging.canonical import canonicalise

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WEIGHTS = SHARED / "models" / "vgg16_imagenet_notop.weights.h5"
OUT = Path(__file__).resolve().parent / "out"
BACKGROUND = (128, 128, 128)
COLLECTIONS = {"cryptopunks": 10_000, "moonbirds": 2_000}


@dataclass(frozen=True)
class Method:
    name: str
    size: int
    canonical: bool
    layer: str
    pooling: str
    grid: int
    projection: int
    colour_grid: int = 16
    colour_weight: float = 0.0
    precision: str = "float32"

    @property
    def tag(self) -> str:
        colour = f"c{self.colour_grid}x{self.colour_weight:g}" if self.colour_weight else "c0"
        return f"{self.name}-{self.size}-{self.precision}-{colour}"


def methods(sizes: list[int], bf16: bool, poolings: list[str]) -> list[Method]:
    """plain first, then ours (the shipped default) at each size, then the ablations."""
    ours = Method("ours", sizes[0], True, "block4_conv3", "gem", 4, 1024, 8, 0.15)
    chosen = [Method("plain", 224, False, "block5_pool", "avg", 1, 0)]
    chosen += [replace(ours, size=s) for s in sizes]
    if poolings:
        # What each design step buys: global GeM of block5 on the canonical view, the grid
        # without the colour layout, and the grid with the other poolings.
        chosen.append(Method("canonical-gem5", sizes[0], True, "block5_conv3", "gem", 1, 0))
        chosen.append(replace(ours, name="ours-nocolour", colour_weight=0.0))
        chosen += [replace(ours, name=f"ours-{p}", pooling=p) for p in poolings]
    if bf16:
        chosen.append(replace(ours, precision="bfloat16"))
    return chosen


def load_sample(
    n: int, seed: int
) -> dict[str, tuple[list[str], list[Image.Image], list[Image.Image]]]:
    rng = np.random.default_rng(seed)
    sample = {}
    for slug, total in COLLECTIONS.items():
        ids = [str(i) for i in rng.choice(total, n, replace=False)]
        images = [
            Image.open(SHARED / "data" / slug / "images" / f"{i}.png").convert("RGBA") for i in ids
        ]
        shots = [make_screenshot(image, rng) for image in images]
        sample[slug] = (ids, images, shots)
    return sample


def prepare(method: Method) -> Callable[[Image.Image], np.ndarray]:
    if method.canonical:
        return lambda image: canonicalise(image, method.size, BACKGROUND)

    def plain(image: Image.Image) -> np.ndarray:
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        white.alpha_composite(image.convert("RGBA"))
        size = (method.size, method.size)
        return np.asarray(white.convert("RGB").resize(size, Image.Resampling.BILINEAR))

    return plain


def embed_all(method: Method, images: list[Image.Image], cache: Path) -> tuple[np.ndarray, float]:
    if cache.exists():
        data = np.load(cache)
        return data["vectors"], float(data["rate"])
    embedder = VGG16Embedder(
        str(WEIGHTS),
        method.size,
        method.pooling,
        method.precision,  # type: ignore[arg-type]
        layer=method.layer,
        grid=method.grid,
        projection_dim=method.projection,
        colour_grid=method.colour_grid,
        colour_weight=method.colour_weight,
    )
    embedder.warm_up()
    convert = prepare(method)
    started = time.perf_counter()
    vectors = [
        embedder.embed_batch(np.stack([convert(im) for im in images[i : i + 16]]))
        for i in range(0, len(images), 16)
    ]
    rate = len(images) / (time.perf_counter() - started)
    result = np.concatenate(vectors)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, vectors=result, rate=rate)
    return result, rate


def recall(index: np.ndarray, queries: np.ndarray) -> tuple[float, float]:
    sims = queries @ index.T
    own = sims[np.arange(len(queries)), np.arange(len(queries))]
    rank = (sims > own[:, None]).sum(axis=1)
    return float((rank < 1).mean()), float((rank < 10).mean())


def punk_neighbours(ids: list[str], vectors: np.ndarray) -> tuple[float, float]:
    traits = {}
    for line in (SHARED / "data" / "cryptopunks" / "tokens.jsonl").open():
        row = json.loads(line)
        attrs = row["attributes"]
        kind = next(a["value"] for a in attrs if a["trait_type"] == "type")
        accessories = {a["value"] for a in attrs if a["trait_type"] == "accessory"}
        traits[row["token_id"]] = (kind, accessories)
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    nearest = np.argsort(-sims, axis=1)[:, :10]
    same_type, overlap = [], []
    for i, row in enumerate(nearest):
        kind, accessories = traits[ids[i]]
        for j in row:
            other_kind, other_acc = traits[ids[j]]
            same_type.append(kind == other_kind)
            union = accessories | other_acc
            overlap.append(len(accessories & other_acc) / len(union) if union else 1.0)
    return float(np.mean(same_type)), float(np.mean(overlap))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="tokens per collection")
    parser.add_argument("--sizes", default="96,128,160,224")
    parser.add_argument("--bf16", action="store_true", help="also bfloat16 at the first size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--poolings", default="", help="e.g. avg,max: compare at the first size")
    args = parser.parse_args()
    sample = load_sample(args.n, args.seed)
    header = (
        "| method | input | precision | img/s | punks r@1 | r@10 | moonbirds r@1 | r@10 "
        "| mixed r@1 | r@10 | punk NN same type | NN accessory Jaccard |"
    )
    rows = [header, "|" + "---|" * 12]
    poolings = [p for p in args.poolings.split(",") if p]
    for method in methods([int(s) for s in args.sizes.split(",")], args.bf16, poolings):
        index, queries, rates = {}, {}, []
        for slug, (_ids, images, shots) in sample.items():
            # Tags hold dots (colour weights), so the name is built whole, not by suffix.
            stem = f"{method.tag}-{slug}-n{args.n}-s{args.seed}"
            index[slug], rate = embed_all(method, images, OUT / "cache" / f"{stem}.index.npz")
            queries[slug], _ = embed_all(method, shots, OUT / "cache" / f"{stem}.query.npz")
            rates.append(rate)
        cells = [recall(index[s], queries[s]) for s in sample]
        cells.append(
            recall(np.concatenate(list(index.values())), np.concatenate(list(queries.values())))
        )
        same, jaccard = punk_neighbours(sample["cryptopunks"][0], index["cryptopunks"])
        rows.append(
            f"| {method.name} | {method.size} | {method.precision} | {np.mean(rates):.1f} | "
            + " | ".join(f"{a:.3f} | {b:.3f}" for a, b in cells)
            + f" | {same:.3f} | {jaccard:.3f} |"
        )
        print(rows[-1], flush=True)
    print(f"\nN = {args.n} tokens per collection, seed {args.seed}\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
