"""The registry of trained price models: which artefact, trained on what, measured how."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from core.storage import schema
from core.storage.database import Database


@dataclass(frozen=True)
class PriceModelRecord:
    """One trained model: its artefact file (relative to the data directory) and metadata."""

    version: str
    collection: str
    trained_until: datetime
    created_at: datetime
    path: str
    sales_used: int
    features: tuple[str, ...]
    metrics: dict[str, Any]


class PriceModelRegistry:
    """Reads and writes the price model registry."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, collection_pk: int, record: PriceModelRecord) -> None:
        with self._db.writing() as conn:
            conn.execute(
                schema.price_models.insert().values(
                    version=record.version,
                    collection_id=collection_pk,
                    trained_until=record.trained_until,
                    created_at=record.created_at,
                    path=record.path,
                    sales_used=record.sales_used,
                    features=json.dumps(list(record.features)),
                    metrics=json.dumps(record.metrics),
                )
            )

    def remove(self, version: str) -> None:
        with self._db.writing() as conn:
            conn.execute(
                schema.price_models.delete().where(schema.price_models.c.version == version)
            )

    def latest(
        self, slug: str, *, trained_until: datetime | None = None
    ) -> PriceModelRecord | None:
        """The newest model of a collection (trained on sales up to ``trained_until`` at most)."""
        found = self._select(slug, trained_until, limit=1)
        return found[0] if found else None

    def all(self, slug: str) -> list[PriceModelRecord]:
        """Every model of a collection, newest training window first."""
        return self._select(slug, None, limit=None)

    def _select(
        self, slug: str, trained_until: datetime | None, limit: int | None
    ) -> list[PriceModelRecord]:
        m, c = schema.price_models, schema.collections
        query = (
            select(c.c.slug, m)
            .join(c, c.c.id == m.c.collection_id)
            .where(c.c.slug == slug)
            .order_by(m.c.trained_until.desc(), m.c.created_at.desc())
            .limit(limit)
        )
        if trained_until is not None:
            query = query.where(m.c.trained_until <= trained_until)
        with self._db.reading() as conn:
            return [
                PriceModelRecord(
                    version=row.version,
                    collection=row.slug,
                    trained_until=row.trained_until,
                    created_at=row.created_at,
                    path=row.path,
                    sales_used=int(row.sales_used),
                    features=tuple(json.loads(row.features)),
                    metrics=json.loads(row.metrics),
                )
                for row in conn.execute(query)
            ]
