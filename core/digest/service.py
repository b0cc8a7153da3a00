"""Digests: a collection's visual groups, what each sold for, and which are moving.

``cluster`` keeps each collection's clustering current (a full k-means when there is none,
when it is older than ``digest.recluster_days`` or the collection grew past
``recluster_growth``; otherwise new tokens join their nearest cluster). ``digest`` reads the
window's sales, computes each cluster's numbers, picks the top movers and the largest groups,
names them, and draws a montage of each one's most representative tokens.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
from PIL import Image

from core.config import DigestSettings
from core.digest.clustering import fit, keep_ids, nearest
from core.digest.labels import LabelTerm, colour_label, label_terms, trait_terms
from core.digest.model import ClusterDigest, Digest
from core.digest.numbers import WindowNumbers, window_numbers
from core.errors import LensError
from core.models import Attribute, ImageRef, Picture, PriceEstimate, Sale
from core.pricing.service import PriceService
from core.render.collage import render_strip
from core.storage import Storage

log = logging.getLogger(__name__)

Previews = Callable[[Sequence[ImageRef | None]], Awaitable[list[bytes | None]]]


@dataclass(frozen=True)
class Clustering:
    """A collection's clusters as used by one digest."""

    # token row id -> cluster id, for every embedded token of the collection
    members: dict[int, int]
    centroids: dict[int, np.ndarray]
    keys: np.ndarray
    vectors: np.ndarray
    reclustered: bool
    silhouettes: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class _Plan:
    id: int
    why: str
    size: int
    numbers: WindowNumbers
    terms: tuple[LabelTerm, ...]
    representatives: list[int]


class DigestService:
    """Clusters collections and builds their digests."""

    def __init__(
        self,
        *,
        storage: Storage,
        pricing: PriceService,
        previews: Previews,
        model_key: str,
        settings: DigestSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self._storage = storage
        self._pricing = pricing
        self._previews = previews
        self._model_key = model_key
        self._settings = settings
        self._clock = clock
        self._busy = asyncio.Semaphore(1)

    # Clustering ------------------------------------------------------------------------------

    def cluster(self, slug: str, *, force: bool = False) -> Clustering:
        """The collection's clustering, refreshed as configured (blocking: SQL, k-means)."""
        storage, cfg = self._storage, self._settings
        collection_pk = storage.catalog.collection_pk(slug)
        pks = storage.catalog.token_pks(slug)
        keys, vectors = storage.vectors.vectors(self._model_key, pks.tolist())
        stored = storage.digests.clustering(collection_pk, self._model_key)
        now = self._clock()
        dims = {len(v) for v in stored.centroids.values()}
        # Growth counts from the last fit: tokens that joined a cluster since were not fitted.
        fitted = stored.fitted_tokens if stored.fitted_tokens is not None else len(stored.members)
        stale = (
            force
            or not stored.centroids
            or stored.created_at is None
            or now - stored.created_at > timedelta(days=cfg.recluster_days)
            or len(keys) > fitted * (1 + cfg.recluster_growth)
            or (len(keys) and dims != {vectors.shape[1]})
        )
        if not len(keys):
            return Clustering({}, {}, keys, vectors, False)
        if stale:
            result = fit(vectors, cfg.k, cfg.k_min, cfg.k_max)
            labels = {int(key): int(label) for key, label in zip(keys, result.labels, strict=True)}
            ids = keep_ids(stored.members, labels, result.k)
            centroids = {ids[i]: result.centroids[i] for i in range(result.k)}
            members = {key: ids[label] for key, label in labels.items()}
            storage.digests.replace_clustering(
                collection_pk, self._model_key, centroids, members, now
            )
            log.info("clustered %s: k=%d over %d tokens", slug, result.k, len(keys))
            silhouettes = tuple(sorted(result.silhouettes.items()))
            return Clustering(members, centroids, keys, vectors, True, silhouettes)
        embedded = set(keys.tolist())
        members = {k: v for k, v in stored.members.items() if k in embedded}
        new = [i for i, key in enumerate(keys.tolist()) if key not in members]
        if new:
            joined = dict(
                zip(
                    keys[new].tolist(),
                    nearest(vectors[new], stored.centroids),
                    strict=True,
                )
            )
            storage.digests.add_members(self._model_key, joined)
            members.update(joined)
        return Clustering(members, dict(stored.centroids), keys, vectors, False)

    # Digests ---------------------------------------------------------------------------------

    async def digest(
        self,
        slug: str,
        *,
        now: datetime | None = None,
        window_days: int | None = None,
        recluster: bool = False,
    ) -> Digest:
        """The digest of ``slug`` for the window ending ``now`` (default: the clock). One at
        a time: a re-clustering is seconds of k-means, and two at once would both run it."""
        async with self._busy:
            return await self._digest(slug, now, window_days, recluster)

    async def _digest(
        self, slug: str, now: datetime | None, window_days: int | None, recluster: bool
    ) -> Digest:
        storage, cfg = self._storage, self._settings
        collection = await asyncio.to_thread(storage.catalog.collection, slug)
        end = now or self._clock()
        days = timedelta(days=window_days or cfg.window_days)
        start, previous_start = end - days, end - 2 * days
        sales = await asyncio.to_thread(storage.sales.sales, slug, since=previous_start, until=end)
        currency = collection.currency.upper()
        sales = [s for s in sales if s.currency.upper() == currency and s.timestamp < end]
        current = [s for s in sales if s.timestamp >= start]
        before = [s for s in sales if s.timestamp < start]
        base = Digest(
            collection=collection,
            start=start,
            end=end,
            previous_start=previous_start,
            k=0,
            clusters=(),
            sales=len(current),
            volume=sum(s.price for s in current),
        )
        quiet = (
            f"Nothing to report for {collection.name}: no sales between "
            f"{start:%Y-%m-%d} and {end:%Y-%m-%d}."
        )
        if not current and not recluster:
            # A quiet window (a daily subscription's usual day) needs no k-means.
            stored = await asyncio.to_thread(
                storage.digests.clustering,
                await asyncio.to_thread(storage.catalog.collection_pk, slug),
                self._model_key,
            )
            return _nothing(replace(base, k=len(stored.centroids)), quiet)
        clustering = await asyncio.to_thread(self.cluster, slug, force=recluster)
        base = replace(base, k=len(clustering.centroids), silhouettes=clustering.silhouettes)
        if not clustering.members:
            return _nothing(base, f"{collection.name} has no embedded tokens to group yet.")
        if not current:
            return _nothing(base, quiet)
        tokens = await asyncio.to_thread(storage.catalog.tokens_by_pk, list(clustering.members))
        cluster_of = {tokens[pk].token_id: cid for pk, cid in clustering.members.items()}
        bands = await self._bands(slug, current)
        attributes = await asyncio.to_thread(storage.catalog.attributes, list(clustering.members))
        plans = await asyncio.to_thread(
            self._plan, clustering, current, before, cluster_of, bands, attributes
        )
        clusters = []
        for plan in plans:
            refs = [tokens[pk].image for pk in plan.representatives]
            previews = await self._previews(refs)
            label = (
                " · ".join(t.text for t in plan.terms)
                if plan.terms
                else await asyncio.to_thread(_colours_label, previews)
            )
            ids = tuple(tokens[pk].token_id for pk in plan.representatives)
            montage = await asyncio.to_thread(
                _montage, collection.slug, plan.id, label, ids, previews
            )
            clusters.append(
                ClusterDigest(
                    id=plan.id,
                    label=label,
                    size=plan.size,
                    terms=plan.terms,
                    numbers=plan.numbers,
                    why=plan.why,
                    representatives=ids,
                    montage=montage,
                )
            )
        if not clusters:
            return _nothing(base, f"Nothing to report for {collection.name} this window.")
        return replace(base, clusters=tuple(clusters))

    def _plan(
        self,
        clustering: Clustering,
        current: Sequence[Sale],
        before: Sequence[Sale],
        cluster_of: dict[str, int],
        bands: dict[tuple[str, str], tuple[float, float]] | None,
        attributes: dict[int, tuple[Attribute, ...]],
    ) -> list[_Plan]:
        """The groups to show, with their numbers, traits and most central tokens (CPU
        work over the whole collection: run in a worker thread)."""
        numbers = window_numbers(current, before, cluster_of, bands)
        sizes = Counter(clustering.members.values())
        members = list(clustering.members)
        terms = trait_terms(members, attributes)
        everyone: Counter[tuple[str, str]] = Counter()
        for counted in terms.values():
            everyone.update(counted)
        by_cluster: dict[int, list[int]] = {}
        for pk, cid in clustering.members.items():
            by_cluster.setdefault(cid, []).append(pk)
        return [
            _Plan(
                id=cid,
                why=why,
                size=sizes[cid],
                numbers=numbers.get(cid, WindowNumbers()),
                terms=label_terms(by_cluster.get(cid, []), everyone, len(members), terms),
                representatives=self._representatives(clustering, cid),
            )
            for cid, why in self._choose(numbers, clustering)
        ]

    def _choose(
        self, numbers: dict[int, WindowNumbers], clustering: Clustering
    ) -> list[tuple[int, str]]:
        cfg = self._settings
        movers = [
            cid
            for cid, n in numbers.items()
            if n.change is not None
            and n.sales >= cfg.min_sales
            and n.previous_sales >= cfg.min_sales
        ]
        movers.sort(key=lambda cid: (-abs(numbers[cid].change or 0.0), cid))
        chosen = [(cid, "mover") for cid in movers[: cfg.movers]]
        taken = {cid for cid, _ in chosen}
        sizes = Counter(clustering.members.values())
        largest = sorted(sizes, key=lambda cid: (-sizes[cid], cid))
        chosen += [(cid, "largest") for cid in largest if cid not in taken][: cfg.largest]
        return chosen

    def _representatives(self, clustering: Clustering, cid: int) -> list[int]:
        """The cluster's tokens nearest its centre, most representative first."""
        keys = clustering.keys
        mask = np.array([clustering.members.get(int(k)) == cid for k in keys.tolist()])
        if not mask.any():
            return []
        centre = clustering.centroids[cid]
        centre = centre / max(float(np.linalg.norm(centre)), 1e-12)
        scores = clustering.vectors[mask] @ centre
        order = np.argsort(-scores, kind="stable")[: self._settings.montage_tokens]
        return [int(k) for k in keys[mask][order]]

    async def _bands(
        self, slug: str, sales: Sequence[Sale]
    ) -> dict[tuple[str, str], tuple[float, float]] | None:
        """The model's 80% interval for each sale, valued as of just before it; None when
        the collection has no model."""
        has_model = await asyncio.to_thread(self._pricing.has_model, slug)
        if not has_model:
            return None
        rows: list[tuple[str, str, datetime | None]] = [
            (slug, s.token_id, s.timestamp) for s in sales
        ]
        results = await asyncio.to_thread(self._pricing.value_many, rows)
        bands: dict[tuple[str, str], tuple[float, float]] = {}
        for sale, result in zip(sales, results, strict=True):
            if isinstance(result, PriceEstimate):
                bands[(sale.tx, sale.token_id)] = (result.low, result.high)
            elif not isinstance(result, LensError):  # pragma: no cover - value_many's contract
                raise TypeError(result)
        return bands


def _nothing(base: Digest, line: str) -> Digest:
    return replace(base, nothing=line)


def _montage(
    slug: str, cid: int, label: str, ids: Sequence[str], previews: Sequence[bytes | None]
) -> Picture:
    data = render_strip([(p, [f"{slug} #{t}"]) for p, t in zip(previews, ids, strict=True)])
    return Picture(data, f"{slug}-cluster-{cid}.png", f"Group {cid}: {label}")


def _colours_label(previews: Sequence[bytes | None]) -> str:
    """Named from the mean colour of each preview's opaque pixels (our own small PNGs)."""
    colours = []
    for preview in previews:
        if preview is None:
            continue
        image = Image.open(io.BytesIO(preview), formats=["PNG"]).convert("RGBA")
        pixels = np.asarray(image, dtype=np.float32).reshape(-1, 4)
        opaque = pixels[pixels[:, 3] > 127][:, :3]
        if len(opaque):
            colours.append(opaque.mean(axis=0))
    return colour_label(np.array(colours, dtype=np.float32).reshape(-1, 3))
