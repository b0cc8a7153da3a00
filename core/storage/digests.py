"""Clusters (centres and members) and digest subscriptions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import select

from core.storage import schema
from core.storage.database import Database, chunks


@dataclass(frozen=True)
class StoredClustering:
    """A collection's clusters for one model: centres by cluster id, and members."""

    centroids: Mapping[int, np.ndarray]
    # token row id -> cluster id
    members: Mapping[int, int]
    created_at: datetime | None
    # Tokens the last full clustering was fitted on (None: made before this was recorded).
    fitted_tokens: int | None = None


@dataclass(frozen=True)
class Subscription:
    """A chat that gets a collection's digest daily or weekly."""

    id: int
    target: str
    collection: str
    cadence: str
    created_at: datetime
    last_posted_at: datetime | None = None


class DigestBook:
    """Reads and writes clusters and subscriptions."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # Clusters --------------------------------------------------------------------------------

    def clustering(self, collection_pk: int, model_key: str) -> StoredClustering:
        c, m, t = schema.clusters, schema.cluster_members, schema.tokens
        with self._db.reading() as conn:
            rows = conn.execute(
                select(c)
                .where(c.c.collection_id == collection_pk)
                .where(c.c.model_key == model_key)
                .order_by(c.c.cluster_id)
            ).all()
            members = conn.execute(
                select(m.c.token_pk, m.c.cluster_id)
                .join(t, t.c.id == m.c.token_pk)
                .where(t.c.collection_id == collection_pk)
                .where(m.c.model_key == model_key)
            ).all()
        return StoredClustering(
            centroids={
                row.cluster_id: np.frombuffer(row.centroid, dtype=np.float32) for row in rows
            },
            members={int(pk): int(cluster) for pk, cluster in members},
            created_at=min((row.created_at for row in rows), default=None),
            fitted_tokens=rows[0].fitted_tokens if rows else None,
        )

    def replace_clustering(
        self,
        collection_pk: int,
        model_key: str,
        centroids: Mapping[int, np.ndarray],
        members: Mapping[int, int],
        at: datetime,
    ) -> None:
        """A full re-clustering of ``members``, in one transaction: readers see the old one or
        the new."""
        c, m, t = schema.clusters, schema.cluster_members, schema.tokens
        tokens = select(t.c.id).where(t.c.collection_id == collection_pk)
        with self._db.writing() as conn:
            conn.execute(
                c.delete()
                .where(c.c.collection_id == collection_pk)
                .where(c.c.model_key == model_key)
            )
            conn.execute(
                m.delete().where(m.c.model_key == model_key).where(m.c.token_pk.in_(tokens))
            )
            if centroids:
                conn.execute(
                    c.insert(),
                    [
                        {"collection_id": collection_pk, "model_key": model_key,
                         "cluster_id": cid, "centroid": np.asarray(v, np.float32).tobytes(),
                         "created_at": at, "fitted_tokens": len(members)}
                        for cid, v in centroids.items()
                    ],
                )  # fmt: skip
            self._insert_members(conn, model_key, members)

    def add_members(self, model_key: str, members: Mapping[int, int]) -> None:
        """New tokens joining their nearest existing cluster."""
        with self._db.writing() as conn:
            self._insert_members(conn, model_key, members)

    def _insert_members(self, conn: object, model_key: str, members: Mapping[int, int]) -> None:
        rows = [
            {"token_pk": pk, "model_key": model_key, "cluster_id": cid}
            for pk, cid in members.items()
        ]
        for chunk in chunks(rows):
            statement = self._db.insert(schema.cluster_members).on_conflict_do_nothing(
                index_elements=["token_pk", "model_key"]
            )
            conn.execute(statement, chunk)  # type: ignore[attr-defined]

    # Subscriptions ---------------------------------------------------------------------------

    def subscribe(self, target: str, collection_pk: int, cadence: str, at: datetime) -> bool:
        """Subscribe (or change the cadence); returns whether it is new."""
        s = schema.digest_subscriptions
        with self._db.writing() as conn:
            found = conn.execute(
                select(s.c.id)
                .where(s.c.target == target)
                .where(s.c.collection_id == collection_pk)
            ).scalar()
            if found is not None:
                conn.execute(s.update().where(s.c.id == found).values(cadence=cadence))
                return False
            conn.execute(
                s.insert().values(
                    target=target, collection_id=collection_pk, cadence=cadence, created_at=at
                )
            )
            return True

    def unsubscribe(self, target: str, collection_pk: int | None = None) -> int:
        """Remove a chat's subscription to one collection (or all); returns how many."""
        s = schema.digest_subscriptions
        statement = s.delete().where(s.c.target == target)
        if collection_pk is not None:
            statement = statement.where(s.c.collection_id == collection_pk)
        with self._db.writing() as conn:
            return int(conn.execute(statement).rowcount)

    def subscriptions(self, target: str | None = None) -> list[Subscription]:
        s, c = schema.digest_subscriptions, schema.collections
        query = (
            select(s, c.c.slug).join(c, c.c.id == s.c.collection_id).order_by(s.c.target, c.c.slug)
        )
        if target is not None:
            query = query.where(s.c.target == target)
        with self._db.reading() as conn:
            return [
                Subscription(
                    row.id, row.target, row.slug, row.cadence, row.created_at, row.last_posted_at
                )
                for row in conn.execute(query)
            ]

    def posted(self, subscription_id: int, at: datetime) -> None:
        s = schema.digest_subscriptions
        with self._db.writing() as conn:
            conn.execute(s.update().where(s.c.id == subscription_id).values(last_posted_at=at))
