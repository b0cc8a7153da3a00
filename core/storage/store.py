"""The Store: every read and write the engine makes, over SQLite or PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, create_engine, event, func, select, tuple_
from sqlalchemy.exc import SQLAlchemyError

from core.errors import StorageError, UnknownCollection, UnknownToken
from core.models import Attribute, Collection, Sale
from core.storage import schema

# SQLite caps bound parameters per statement; chunk IN (...) lists below it.
_CHUNK = 500


@dataclass(frozen=True)
class StoredToken:
    """A token row with its database key and the image file it was ingested with."""

    pk: int
    collection: str
    token_id: str
    image_path: str
    image_sha256: str
    name: str | None = None


@dataclass(frozen=True)
class TokenWrite:
    """What ingest wants stored for one token."""

    token_id: str
    name: str | None
    image_path: str
    image_sha256: str
    attributes: tuple[Attribute, ...]


@dataclass(frozen=True)
class UpsertCounts:
    """How an idempotent upsert went."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0


class Store:
    """Collections, tokens, sales and embedding bookkeeping behind one small API."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect and create missing tables; SQLite gets WAL so readers never block writers."""
        try:
            engine = create_engine(url, future=True)
            if engine.dialect.name == "sqlite":
                event.listen(engine, "connect", _sqlite_pragmas)
            schema.metadata.create_all(engine)
        except (SQLAlchemyError, ImportError) as exc:
            raise StorageError(f"Cannot open the database: {exc.__class__.__name__}.") from exc
        return cls(engine)

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with _translated(), self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with _translated(), self._engine.begin() as conn:
            yield conn

    # Collections -------------------------------------------------------------------------

    def upsert_collection(self, collection: Collection) -> tuple[int, bool]:
        """Insert or update by slug; returns the row id and whether anything changed."""
        values = {
            "slug": collection.slug,
            "name": collection.name,
            "chain": collection.chain,
            "contract": collection.contract,
            "currency": collection.currency,
            "marketplace": collection.marketplace,
        }
        table = schema.collections
        with self._writing() as conn:
            row = conn.execute(select(table).where(table.c.slug == collection.slug)).first()
            if row is None:
                result = conn.execute(table.insert().values(**values))
                return _new_key(result), True
            current = {key: getattr(row, key) for key in values}
            if current == values:
                return int(row.id), False
            conn.execute(table.update().where(table.c.id == row.id).values(**values))
            return int(row.id), True

    def collection(self, slug: str) -> Collection:
        table = schema.collections
        with self._reading() as conn:
            row = conn.execute(select(table).where(table.c.slug == slug)).first()
        if row is None:
            raise UnknownCollection(f"No collection called '{slug}' is tracked.")
        return _collection(row)

    def collections(self) -> list[Collection]:
        with self._reading() as conn:
            rows = conn.execute(select(schema.collections).order_by(schema.collections.c.slug))
            return [_collection(row) for row in rows]

    def counts(self) -> dict[str, dict[str, int]]:
        """Per collection slug: how many tokens and sales are stored."""
        c, t, s = schema.collections, schema.tokens, schema.sales
        with self._reading() as conn:
            tokens: dict[str, int] = dict(
                conn.execute(select(c.c.slug, func.count(t.c.id)).join(t).group_by(c.c.slug))
                .tuples()
                .all()
            )
            sales: dict[str, int] = dict(
                conn.execute(select(c.c.slug, func.count(s.c.id)).join(s).group_by(c.c.slug))
                .tuples()
                .all()
            )
        return {
            slug: {"tokens": int(tokens.get(slug, 0)), "sales": int(sales.get(slug, 0))}
            for slug in sorted(set(tokens) | set(sales))
        }

    # Tokens ------------------------------------------------------------------------------

    def upsert_tokens(self, collection_pk: int, writes: Sequence[TokenWrite]) -> UpsertCounts:
        """Insert new tokens, update changed ones, leave the rest; one transaction."""
        t, a = schema.tokens, schema.attributes
        added = updated = unchanged = 0
        with self._writing() as conn:
            existing = {
                row.token_id: row
                for row in conn.execute(
                    select(
                        t.c.id,
                        t.c.token_id,
                        t.c.name,
                        t.c.image_path,
                        t.c.image_sha256,
                        t.c.attributes_json,
                    ).where(t.c.collection_id == collection_pk)
                )
            }
            for write in writes:
                attrs_json = _attributes_json(write.attributes)
                values = {
                    "name": write.name,
                    "image_path": write.image_path,
                    "image_sha256": write.image_sha256,
                    "attributes_json": attrs_json,
                }
                row = existing.get(write.token_id)
                if row is None:
                    result = conn.execute(
                        t.insert().values(
                            collection_id=collection_pk, token_id=write.token_id, **values
                        )
                    )
                    pk = _new_key(result)
                    added += 1
                elif all(getattr(row, key) == value for key, value in values.items()):
                    unchanged += 1
                    continue
                else:
                    pk = int(row.id)
                    conn.execute(t.update().where(t.c.id == pk).values(**values))
                    conn.execute(a.delete().where(a.c.token_pk == pk))
                    updated += 1
                if write.attributes:
                    conn.execute(
                        a.insert(),
                        [
                            {
                                "token_pk": pk,
                                "position": i,
                                "trait_type": attr.trait_type,
                                "value": attr.value,
                            }
                            for i, attr in enumerate(write.attributes)
                        ],
                    )
        return UpsertCounts(added, updated, unchanged)

    def token(self, slug: str, token_id: str) -> StoredToken:
        rows = self._tokens(
            (schema.collections.c.slug == slug) & (schema.tokens.c.token_id == token_id)
        )
        if not rows:
            self.collection(slug)  # raises UnknownCollection when that is the real problem
            raise UnknownToken(f"Token {token_id} is not in collection '{slug}'.")
        return rows[0]

    def tokens_by_pk(self, pks: Iterable[int]) -> dict[int, StoredToken]:
        found: dict[int, StoredToken] = {}
        for chunk in _chunks(list(pks)):
            for token in self._tokens(schema.tokens.c.id.in_(chunk)):
                found[token.pk] = token
        return found

    def token_ids(self, slug: str) -> set[str]:
        """The token ids stored for one collection."""
        t, c = schema.tokens, schema.collections
        query = select(t.c.token_id).join(c).where(c.c.slug == slug)
        with self._reading() as conn:
            return set(conn.execute(query).scalars().all())

    def token_pks(self, slug: str | None = None) -> np.ndarray:
        """Keys of all tokens, or of one collection's."""
        t, c = schema.tokens, schema.collections
        query = select(t.c.id).join(c).order_by(t.c.id)
        if slug is not None:
            self.collection(slug)
            query = query.where(c.c.slug == slug)
        with self._reading() as conn:
            return np.array(conn.execute(query).scalars().all(), dtype=np.int64)

    def attributes(self, pks: Iterable[int]) -> dict[int, tuple[Attribute, ...]]:
        a = schema.attributes
        result: dict[int, list[Attribute]] = {}
        with self._reading() as conn:
            for chunk in _chunks(list(pks)):
                rows = conn.execute(
                    select(a).where(a.c.token_pk.in_(chunk)).order_by(a.c.token_pk, a.c.position)
                )
                for row in rows:
                    result.setdefault(row.token_pk, []).append(
                        Attribute(row.trait_type, row.value)
                    )
        return {pk: tuple(attrs) for pk, attrs in result.items()}

    def _tokens(self, where: Any) -> list[StoredToken]:
        t, c = schema.tokens, schema.collections
        query = (
            select(t.c.id, c.c.slug, t.c.token_id, t.c.image_path, t.c.image_sha256, t.c.name)
            .join(c)
            .where(where)
        )
        with self._reading() as conn:
            return [
                StoredToken(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in conn.execute(query)
            ]

    # Sales -------------------------------------------------------------------------------

    def add_sales(self, collection_pk: int, sales: Sequence[Sale]) -> UpsertCounts:
        """Insert sales not yet stored (natural key: collection, tx, token); one transaction."""
        s = schema.sales
        added = unchanged = 0
        with self._writing() as conn:
            known = set(
                conn.execute(
                    select(s.c.tx, s.c.token_id).where(s.c.collection_id == collection_pk)
                ).tuples()
            )
            fresh = []
            for sale in sales:
                key = (sale.tx, sale.token_id)
                if key in known:
                    unchanged += 1
                    continue
                known.add(key)
                fresh.append(
                    {
                        "collection_id": collection_pk,
                        "token_id": sale.token_id,
                        "timestamp": _stored_time(sale.timestamp),
                        "price": sale.price,
                        "currency": sale.currency,
                        "tx": sale.tx,
                        "seller": sale.seller,
                        "buyer": sale.buyer,
                        "marketplace": sale.marketplace,
                    }
                )
            if fresh:
                conn.execute(s.insert(), fresh)
                added = len(fresh)
        return UpsertCounts(added=added, unchanged=unchanged)

    def last_sales(self, tokens: Iterable[StoredToken]) -> dict[int, Sale]:
        """The most recent sale of each token, where there is one."""
        s, c = schema.sales, schema.collections
        wanted = {(tok.collection, tok.token_id): tok.pk for tok in tokens}
        found: dict[int, Sale] = {}
        keys = list(wanted)
        with self._reading() as conn:
            for chunk in _chunks(keys):
                rows = conn.execute(
                    select(c.c.slug, s)
                    .join(c, s.c.collection_id == c.c.id)
                    .where(tuple_(c.c.slug, s.c.token_id).in_(chunk))
                    .order_by(s.c.timestamp)
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

    def latest_sale(self, slug: str, *, until: datetime | None = None) -> Sale | None:
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
            query = query.where(s.c.timestamp >= _stored_time(since))
        if until is not None:
            query = query.where(s.c.timestamp <= _stored_time(until))
        with self._reading() as conn:
            rows = conn.execute(query).all()
        return [_sale(row) for row in rows]

    # Embeddings --------------------------------------------------------------------------

    def tokens_to_embed(self, model_key: str, slug: str | None = None) -> list[StoredToken]:
        """Tokens with no vector for ``model_key``, or one computed from an older image."""
        t, c, e = schema.tokens, schema.collections, schema.embeddings
        current = (
            select(e.c.token_pk)
            .where(e.c.model_key == model_key)
            .where(e.c.token_pk == t.c.id)
            .where(e.c.image_sha256 == t.c.image_sha256)
        )
        where = ~current.exists()
        if slug is not None:
            self.collection(slug)
            where = where & (c.c.slug == slug)
        return sorted(self._tokens(where), key=lambda tok: tok.pk)

    def save_embeddings(
        self, model_key: str, tokens: Sequence[StoredToken], vectors: np.ndarray
    ) -> None:
        """Store one batch of vectors atomically: a kill loses at most this batch."""
        e = schema.embeddings
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._writing() as conn:
            conn.execute(
                e.delete()
                .where(e.c.model_key == model_key)
                .where(e.c.token_pk.in_([tok.pk for tok in tokens]))
            )
            conn.execute(
                e.insert(),
                [
                    {
                        "token_pk": tok.pk,
                        "model_key": model_key,
                        "image_sha256": tok.image_sha256,
                        "vector": vector.tobytes(),
                    }
                    for tok, vector in zip(tokens, vectors, strict=True)
                ],
            )

    def embeddings(
        self, model_key: str, pks: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Current vectors for ``model_key``: (token keys, float32 matrix), keys ascending."""
        t, e = schema.tokens, schema.embeddings
        query = (
            select(e.c.token_pk, e.c.vector)
            .join(t, t.c.id == e.c.token_pk)
            .where(e.c.model_key == model_key)
            .where(e.c.image_sha256 == t.c.image_sha256)
            .order_by(e.c.token_pk)
        )
        rows: list[Any] = []
        with self._reading() as conn:
            if pks is None:
                rows = list(conn.execute(query))
            else:
                for chunk in _chunks(list(pks)):
                    rows.extend(conn.execute(query.where(e.c.token_pk.in_(chunk))))
        if not rows:
            return np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32)
        keys = np.array([row[0] for row in rows], dtype=np.int64)
        matrix = np.stack([np.frombuffer(row[1], dtype=np.float32) for row in rows])
        return keys, matrix


@contextmanager
def _translated() -> Iterator[None]:
    """Database failures (locked, full disk, lost connection) as one StorageError sentence."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StorageError(
            f"The database failed ({exc.__class__.__name__}); try again in a moment."
        ) from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _collection(row: Any) -> Collection:
    return Collection(
        slug=row.slug,
        name=row.name,
        chain=row.chain,
        contract=row.contract,
        currency=row.currency,
        marketplace=row.marketplace,
    )


def _attributes_json(attrs: Sequence[Attribute]) -> str:
    return json.dumps([[a.trait_type, a.value] for a in attrs], separators=(",", ":"))


def _new_key(result: Any) -> int:
    key = result.inserted_primary_key
    if key is None:
        raise StorageError("The database did not return the new row's key.")
    return int(key[0])


def _sale(row: Any) -> Sale:
    return Sale(
        collection=row.slug,
        token_id=row.token_id,
        timestamp=_utc(row.timestamp),
        price=float(row.price),
        currency=row.currency,
        tx=row.tx,
        seller=row.seller,
        buyer=row.buyer,
        marketplace=row.marketplace,
    )


def _stored_time(moment: datetime) -> datetime:
    # SQLite keeps datetimes as naive text and drops any offset, so everything is stored,
    # and compared, as naive UTC; PostgreSQL gets the same instants.
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _chunks(items: list[Any], size: int = _CHUNK) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
