"""Completed sales: stored once each (collection, transaction, token), read back by time."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_

from core.models import Sale
from core.storage import schema
from core.storage.catalog import StoredToken, UpsertCounts
from core.storage.database import Database, chunks


class SalesBook:
    """Reads and writes sales."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, collection_pk: int, sales: Sequence[Sale]) -> UpsertCounts:
        """Insert the sales not yet stored, in one transaction; idempotent.

        ``ON CONFLICT DO NOTHING`` on the natural key, so a second run, a concurrent sync or
        the same sale twice in one file adds nothing, and nothing the size of the collection's
        history is held in memory to find out. Callers pass sales in chunks of thousands.
        """
        s = schema.sales
        if not sales:
            return UpsertCounts()
        rows = [
            {
                "collection_id": collection_pk,
                "token_id": sale.token_id,
                "timestamp": sale.timestamp,
                "price": sale.price,
                "currency": sale.currency,
                "tx": sale.tx,
                "seller": sale.seller,
                "buyer": sale.buyer,
                "marketplace": sale.marketplace,
            }
            for sale in sales
        ]
        statement = (
            self._db.insert(s)
            .on_conflict_do_nothing(index_elements=[s.c.collection_id, s.c.tx, s.c.token_id])
            .returning(s.c.id)
        )
        with self._db.writing() as conn:
            added = len(conn.execute(statement, rows).all())
        return UpsertCounts(added=added, unchanged=len(sales) - added)

    def stamp(self, slug: str) -> tuple[int, int]:
        """(count, newest row id) of a collection's sales: changes whenever a sale is added."""
        c, s = schema.collections, schema.sales
        query = (
            select(func.count(s.c.id), func.max(s.c.id))
            .join(c, c.c.id == s.c.collection_id)
            .where(c.c.slug == slug)
        )
        with self._db.reading() as conn:
            count, newest = conn.execute(query).one()
        return int(count), int(newest or 0)

    def counts(self) -> dict[str, int]:
        """Per collection slug: how many sales are stored."""
        c, s = schema.collections, schema.sales
        query = select(c.c.slug, func.count(s.c.id)).join(s).group_by(c.c.slug)
        with self._db.reading() as conn:
            return {slug: int(n) for slug, n in conn.execute(query)}

    def last_sales(self, tokens: Iterable[StoredToken]) -> dict[int, Sale]:
        """The most recent sale of each token, where there is one."""
        s, c = schema.sales, schema.collections
        wanted = {(tok.collection, tok.token_id): tok.pk for tok in tokens}
        found: dict[int, Sale] = {}
        with self._db.reading() as conn:
            for chunk in chunks(list(wanted)):
                rows = conn.execute(
                    select(c.c.slug, s)
                    .join(c, s.c.collection_id == c.c.id)
                    .where(tuple_(c.c.slug, s.c.token_id).in_(chunk))
                    .order_by(s.c.timestamp, s.c.id)
                )
                for row in rows:
                    found[wanted[(row.slug, row.token_id)]] = _sale(row)
        return found

    def sales(
        self,
        slug: str,
        *,
        token_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[Sale]:
        """A collection's (or one token's) sales with ``since <= timestamp <= until``,
        oldest first; both bounds are optional."""
        s = schema.sales
        return self._sales(slug, token_id, since, until, (s.c.timestamp, s.c.id), None)

    def latest(self, slug: str, *, until: datetime | None = None) -> Sale | None:
        """The collection's most recent sale at or before ``until``."""
        s = schema.sales
        found = self._sales(slug, None, None, until, (s.c.timestamp.desc(), s.c.id.desc()), 1)
        return found[0] if found else None

    def _sales(
        self,
        slug: str,
        token_id: str | None,
        since: datetime | None,
        until: datetime | None,
        order: tuple[Any, ...],
        limit: int | None,
    ) -> list[Sale]:
        s, c = schema.sales, schema.collections
        query = (
            select(c.c.slug, s)
            .join(c, s.c.collection_id == c.c.id)
            .where(c.c.slug == slug)
            .order_by(*order)
            .limit(limit)
        )
        if token_id is not None:
            query = query.where(s.c.token_id == token_id)
        if since is not None:
            query = query.where(s.c.timestamp >= since)
        if until is not None:
            query = query.where(s.c.timestamp <= until)
        with self._db.reading() as conn:
            rows = conn.execute(query).all()
        return [_sale(row) for row in rows]


def _sale(row: Any) -> Sale:
    return Sale(
        collection=row.slug,
        token_id=row.token_id,
        timestamp=row.timestamp,
        price=float(row.price),
        currency=row.currency,
        tx=row.tx,
        seller=row.seller,
        buyer=row.buyer,
        marketplace=row.marketplace,
    )
