"""Embedding vectors: one per token and model, tied to the image they were computed from."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Select, func, select

from core.storage import schema
from core.storage.catalog import Catalog, StoredToken, stored_token, token_columns
from core.storage.database import Database, chunks


class VectorStore:
    """Reads and writes embedding vectors."""

    def __init__(self, db: Database, catalog: Catalog) -> None:
        self._db = db
        self._catalog = catalog

    def tokens_to_embed(self, model_key: str, slug: str | None = None) -> list[StoredToken]:
        """Tokens with no vector for ``model_key``, or one computed from an older image."""
        t, c, e = schema.tokens, schema.collections, schema.embeddings
        current = (
            select(e.c.token_pk)
            .where(e.c.model_key == model_key)
            .where(e.c.token_pk == t.c.id)
            .where(e.c.image_sha256 == t.c.image_sha256)
        )
        query = select(*token_columns()).join(c).where(~current.exists()).order_by(t.c.id)
        if slug is not None:
            self._catalog.collection(slug)
            query = query.where(c.c.slug == slug)
        with self._db.reading() as conn:
            return [stored_token(row) for row in conn.execute(query)]

    def save(self, model_key: str, tokens: Sequence[StoredToken], vectors: np.ndarray) -> None:
        """Store one batch of vectors atomically: a kill loses at most this batch.

        ``ON CONFLICT DO UPDATE``: two indexers racing on the same token leave one vector,
        never a failed transaction.
        """
        e = schema.embeddings
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        rows = [
            {
                "token_pk": tok.pk,
                "model_key": model_key,
                "image_sha256": tok.image.sha256,
                "vector": vector.tobytes(),
            }
            for tok, vector in zip(tokens, vectors, strict=True)
        ]
        if not rows:
            return
        statement = self._db.insert(e)
        statement = statement.on_conflict_do_update(
            index_elements=[e.c.token_pk, e.c.model_key],
            set_={
                "image_sha256": statement.excluded.image_sha256,
                "vector": statement.excluded.vector,
            },
        )
        with self._db.writing() as conn:
            conn.execute(statement, rows)

    def counts(self, model_key: str) -> dict[str, int]:
        """Per collection slug: how many tokens have a current vector for ``model_key``."""
        t, c, e = schema.tokens, schema.collections, schema.embeddings
        query = (
            select(c.c.slug, func.count(e.c.token_pk))
            .select_from(e)
            .join(t, t.c.id == e.c.token_pk)
            .join(c, c.c.id == t.c.collection_id)
            .where(e.c.model_key == model_key)
            .where(e.c.image_sha256 == t.c.image_sha256)
            .group_by(c.c.slug)
        )
        with self._db.reading() as conn:
            return {slug: int(n) for slug, n in conn.execute(query)}

    def vectors(
        self, model_key: str, pks: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Current vectors for ``model_key``: (token keys, float32 matrix), keys ascending."""
        query = self._current(model_key)
        e = schema.embeddings
        rows: list[Any] = []
        with self._db.reading() as conn:
            if pks is None:
                rows = list(conn.execute(query))
            else:
                for chunk in chunks(list(pks)):
                    rows.extend(conn.execute(query.where(e.c.token_pk.in_(chunk))))
        return _as_arrays(rows)

    def current_keys(self, model_key: str) -> np.ndarray:
        """The token keys that have a current vector for ``model_key``, ascending."""
        e = schema.embeddings
        query = self._current(model_key).with_only_columns(e.c.token_pk)
        with self._db.reading() as conn:
            return np.fromiter((row[0] for row in conn.execute(query)), dtype=np.int64)

    def batches(
        self, model_key: str, size: int = 20_000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every current vector for ``model_key``, ``size`` at a time in key order: an index
        of a million vectors is built without holding them all (twice) in memory."""
        e = schema.embeddings
        after = -1
        while True:
            query = self._current(model_key).where(e.c.token_pk > after).limit(size)
            with self._db.reading() as conn:
                keys, matrix = _as_arrays(list(conn.execute(query)))
            if not len(keys):
                return
            yield keys, matrix
            after = int(keys[-1])

    def _current(self, model_key: str) -> Select[Any]:
        t, e = schema.tokens, schema.embeddings
        return (
            select(e.c.token_pk, e.c.vector)
            .join(t, t.c.id == e.c.token_pk)
            .where(e.c.model_key == model_key)
            .where(e.c.image_sha256 == t.c.image_sha256)
            .order_by(e.c.token_pk)
        )


def _as_arrays(rows: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    if not rows:
        return np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32)
    keys = np.array([row[0] for row in rows], dtype=np.int64)
    matrix = np.stack([np.frombuffer(row[1], dtype=np.float32) for row in rows])
    return keys, matrix
