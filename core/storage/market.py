"""Market data beside the sales: daily floor prices and daily USD rates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import func, select

from core.storage import schema
from core.storage.database import Database


class MarketData:
    """Reads and writes floors (per collection) and USD rates (per currency), by UTC day."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def save_floors(self, collection_pk: int, days: Sequence[tuple[date, float]]) -> int:
        """Insert or replace daily floors; returns how many days were written."""
        f = schema.floors
        rows = [{"collection_id": collection_pk, "day": d, "floor": v} for d, v in days]
        if not rows:
            return 0
        statement = self._db.insert(f)
        statement = statement.on_conflict_do_update(
            index_elements=[f.c.collection_id, f.c.day], set_={"floor": statement.excluded.floor}
        )
        with self._db.writing() as conn:
            conn.execute(statement, rows)
        return len(rows)

    def save_rates(self, currency: str, days: Sequence[tuple[date, float]]) -> int:
        """Insert or replace daily USD rates of ``currency``; returns the days written."""
        r = schema.usd_rates
        rows = [{"currency": currency.upper(), "day": d, "usd": v} for d, v in days]
        if not rows:
            return 0
        statement = self._db.insert(r)
        statement = statement.on_conflict_do_update(
            index_elements=[r.c.currency, r.c.day], set_={"usd": statement.excluded.usd}
        )
        with self._db.writing() as conn:
            conn.execute(statement, rows)
        return len(rows)

    def floors(self, slug: str) -> list[tuple[date, float]]:
        """A collection's daily floors, oldest first."""
        f, c = schema.floors, schema.collections
        query = (
            select(f.c.day, f.c.floor)
            .join(c, c.c.id == f.c.collection_id)
            .where(c.c.slug == slug)
            .order_by(f.c.day)
        )
        with self._db.reading() as conn:
            return [(row.day, float(row.floor)) for row in conn.execute(query)]

    def rates(self, currency: str) -> list[tuple[date, float]]:
        """A currency's daily USD rates, oldest first."""
        r = schema.usd_rates
        query = select(r.c.day, r.c.usd).where(r.c.currency == currency.upper()).order_by(r.c.day)
        with self._db.reading() as conn:
            return [(row.day, float(row.usd)) for row in conn.execute(query)]

    def stamp(self, slug: str, currency: str) -> tuple[float, ...]:
        """Count and sum of a collection's floors and of its currency's rates: changes when a
        day is added or a value rewritten."""
        f, c, r = schema.floors, schema.collections, schema.usd_rates
        floors = (
            select(func.count(f.c.day), func.coalesce(func.sum(f.c.floor), 0))
            .join(c, c.c.id == f.c.collection_id)
            .where(c.c.slug == slug)
        )
        rates = select(func.count(r.c.day), func.coalesce(func.sum(r.c.usd), 0)).where(
            r.c.currency == currency.upper()
        )
        with self._db.reading() as conn:
            floor_count, floor_sum = conn.execute(floors).one()
            rate_count, rate_sum = conn.execute(rates).one()
        return int(floor_count), float(floor_sum), int(rate_count), float(rate_sum)
