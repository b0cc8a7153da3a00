"""Do the computer's visual groups line up with CryptoPunks' traits and prices? (study Q2)

    python -m bench.clusters --data-dir DIR [--ks 4,8,12,16,24] [--shuffles 200]

``DIR`` is a data directory where the 10,000 punks of ../shared/data/cryptopunks are ingested
and indexed with the real ImageNet weights (``python -m core ingest`` and ``index``, with
``NFTLENS_VGG16_WEIGHTS`` pointing at ../shared/models). For k chosen by the silhouette
(as the digests do with ``digest.k: 0``) and for fixed k, it reports:

- adjusted mutual information (AMI) of the clusters with ``type``, ``skin tone`` and
  ``accessory count``, and the mean (and largest) AMI with each common accessory's presence
  (those on at least 2% of punks);
- price spread: the standard deviation of each token's last sale (log price over that
  month's median, so the market's level drops out) within clusters (weighted by cluster
  size), against groups of the same sizes drawn at random (``--shuffles`` times):
  lower than nearly every random draw means the groups carry price information.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_mutual_info_score

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT.parent / "shared" / "models" / "vgg16_imagenet_notop.weights.h5"
SLUG = "cryptopunks"


def spread(labels: np.ndarray, logp: np.ndarray) -> float:
    """Size-weighted mean of the within-group standard deviation of log price."""
    total, weight = 0.0, 0
    for label in np.unique(labels):
        values = logp[labels == label]
        if len(values) >= 2:
            total += float(np.std(values)) * len(values)
            weight += len(values)
    return total / weight if weight else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--ks", default="4,8,12,16,24")
    parser.add_argument("--shuffles", type=int, default=200)
    args = parser.parse_args()
    os.environ["NFTLENS_DATA_DIR"] = str(args.data_dir)
    os.environ.setdefault("NFTLENS_VGG16_WEIGHTS", str(WEIGHTS))

    from core.app import open_engine_blocking
    from core.config import load_settings
    from core.digest.clustering import fit
    from core.digest.labels import label_terms, trait_terms

    settings = load_settings()
    with open_engine_blocking(settings) as engine:
        storage = engine.storage
        pks = storage.catalog.token_pks(SLUG)
        keys, vectors = storage.vectors.vectors(engine.embedder.key, pks.tolist())
        tokens = storage.catalog.tokens_by_pk(keys.tolist())
        attributes = storage.catalog.attributes(keys.tolist())
        # Each token's last sale, as log price over its month's median: the market level of
        # 2017 and of 2020 differ a hundredfold, and that is time, not looks.
        sales = [s for s in storage.sales.sales(SLUG) if s.currency == "ETH" and s.price > 0]
        months: dict[str, list[float]] = {}
        for sale in sales:
            months.setdefault(f"{sale.timestamp:%Y-%m}", []).append(sale.price)
        level = {month: float(np.median(prices)) for month, prices in months.items()}
        last: dict[str, float] = {
            sale.token_id: sale.price / level[f"{sale.timestamp:%Y-%m}"] for sale in sales
        }
    if not len(keys):
        raise SystemExit(f"no {SLUG} vectors for {engine.embedder.key} in {args.data_dir}")

    ids = [tokens[int(k)].token_id for k in keys]
    values = [{(a.trait_type, a.value) for a in attributes.get(int(k), ())} for k in keys]
    kind = [next((v for t, v in s if t == "type"), "?") for s in values]
    count = [next((v for t, v in s if t == "accessory count"), "?") for s in values]
    skin = [next((v for t, v in s if t == "skin tone"), "?") for s in values]
    accessories = Counter(v for s in values for t, v in s if t == "accessory")
    common = [a for a, n in accessories.items() if n >= 0.02 * len(keys)]
    sold = np.array([token in last for token in ids])
    logp = np.log(np.array([last.get(token, 1.0) for token in ids]))[sold]
    rng = np.random.default_rng(0)
    chosen_labels = np.zeros(len(keys), dtype=np.int64)

    runs: list[tuple[str, int]] = [("silhouette", 0)] + [
        ("fixed", int(k)) for k in args.ks.split(",")
    ]
    print(f"\nCryptoPunks: {len(keys):,} tokens, {int(sold.sum()):,} with a sale to 2020, "
          f"{len(common)} accessories on ≥2% of punks; model {engine.embedder.key}\n")  # fmt: skip
    print("| k | chosen by | AMI type | AMI skin tone | AMI accessory count "
          "| mean AMI accessories (max) "
          "| log-price spread in clusters | random groups (mean, 5th pct) | share of random "
          "≤ clusters | fit s |")  # fmt: skip
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for how, k in runs:
        started = time.perf_counter()
        result = fit(vectors, k, settings.digest.k_min, settings.digest.k_max)
        seconds = time.perf_counter() - started
        labels = result.labels
        ami_type = adjusted_mutual_info_score(kind, labels)
        ami_count = adjusted_mutual_info_score(count, labels)
        ami_skin = adjusted_mutual_info_score(skin, labels)
        per = [
            adjusted_mutual_info_score([("accessory", a) in s for s in values], labels)
            for a in common
        ]
        observed = spread(labels[sold], logp)
        random = np.array([spread(rng.permutation(labels[sold]), logp)
                           for _ in range(args.shuffles)])  # fmt: skip
        below = float((random <= observed).mean())
        chosen = f"silhouette ({settings.digest.k_min}–{settings.digest.k_max})" if not k else how
        print(
            f"| {result.k} | {chosen} | {ami_type:.3f} | {ami_skin:.3f} | {ami_count:.3f} | "
            f"{np.mean(per):.3f} ({np.max(per):.3f}) | {observed:.3f} | "
            f"{random.mean():.3f}, {np.percentile(random, 5):.3f} | {below:.3f} | {seconds:.1f} |"
        )
        if not k:
            scores = ", ".join(f"{kk}: {v:.3f}" for kk, v in sorted(result.silhouettes.items()))
            print(f"|  | silhouettes {scores} |  |  |  |  |  |  |  |  |")
            chosen_labels = labels
    # What the digests would call each group of the silhouette's k.
    members = [int(key) for key in keys]
    terms = trait_terms(members, attributes)
    everyone: Counter[tuple[str, str]] = Counter()
    for counted in terms.values():
        everyone.update(counted)
    print("\n| group | size | label (share in group, lift) |\n|---:|---:|---|")
    for cid in sorted(set(chosen_labels.tolist())):
        inside = [m for m, label in zip(members, chosen_labels.tolist(), strict=True)
                  if label == cid]  # fmt: skip
        found = label_terms(inside, everyone, len(members), terms)
        text = " · ".join(f"{t.text} ({t.share:.0%}, ×{t.lift:.1f})" for t in found)
        print(f"| {cid} | {len(inside):,} | {text or '(colours)'} |")


if __name__ == "__main__":
    main()
