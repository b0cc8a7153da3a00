"""Collections, tokens and their traits: what the engine tracks."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, select

from core.errors import UnknownCollection, UnknownToken, shown
from core.models import Attribute, Collection, ImageRef
from core.storage import schema
from core.storage.database import Database, chunks
from core.storage.images import ImageStore


@dataclass(frozen=True)
class StoredToken:
    """A token row: its database key, collection, id, image reference and name."""

    pk: int
    collection: str
    token_id: str
    image: ImageRef
    name: str | None = None


@dataclass(frozen=True)
class TokenWrite:
    """What ingest (or sync) wants stored for one token."""

    token_id: str
    name: str | None
    image: ImageRef
    attributes: tuple[Attribute, ...]


@dataclass(frozen=True)
class UpsertCounts:
    """How an idempotent upsert went."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: UpsertCounts) -> UpsertCounts:
        return UpsertCounts(
            self.added + other.added,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
        )


class Catalog:
    """Reads and writes collections, tokens and attributes."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # Collections ---------------------------------------------------------------------------

    def upsert_collection(self, collection: Collection) -> tuple[int, bool]:
        """Insert or update by slug; returns the row id and whether anything changed."""
        values = _collection_values(collection)
        table = schema.collections
        with self._db.writing() as conn:
            row = conn.execute(select(table).where(table.c.slug == collection.slug)).first()
            if row is not None and {key: getattr(row, key) for key in values} == values:
                return int(row.id), False
            # ON CONFLICT: another process may insert the same slug between our read and write.
            statement = self._db.insert(table).values(**values)
            statement = statement.on_conflict_do_update(
                index_elements=[table.c.slug], set_=values
            ).returning(table.c.id)
            return int(conn.execute(statement).scalar_one()), True

    def collection(self, slug: str) -> Collection:
        table = schema.collections
        with self._db.reading() as conn:
            row = conn.execute(select(table).where(table.c.slug == slug)).first()
        if row is None:
            raise UnknownCollection(f"No collection called '{shown(slug)}' is tracked.")
        return _collection(row)

    def collection_pk(self, slug: str) -> int:
        table = schema.collections
        with self._db.reading() as conn:
            pk = conn.execute(select(table.c.id).where(table.c.slug == slug)).scalar()
        if pk is None:
            raise UnknownCollection(f"No collection called '{shown(slug)}' is tracked.")
        return int(pk)

    def collections(self) -> list[Collection]:
        with self._db.reading() as conn:
            rows = conn.execute(select(schema.collections).order_by(schema.collections.c.slug))
            return [_collection(row) for row in rows]

    def token_counts(self) -> dict[str, int]:
        """Per collection slug: how many tokens are stored (collections without any: 0)."""
        c, t = schema.collections, schema.tokens
        query = select(c.c.slug, func.count(t.c.id)).outerjoin(t).group_by(c.c.slug)
        with self._db.reading() as conn:
            return {slug: int(n) for slug, n in conn.execute(query)}

    def tokens_stamp(self, slug: str) -> tuple[int, int]:
        """(count, total length of their attributes) of a collection's tokens: changes when a
        token is added or its traits are rewritten (a same-length edit aside)."""
        c, t = schema.collections, schema.tokens
        query = (
            select(
                func.count(t.c.id), func.coalesce(func.sum(func.length(t.c.attributes_json)), 0)
            )
            .join(c, c.c.id == t.c.collection_id)
            .where(c.c.slug == slug)
        )
        with self._db.reading() as conn:
            count, length = conn.execute(query).one()
        return int(count), int(length)

    # Tokens --------------------------------------------------------------------------------

    def upsert_tokens(self, collection_pk: int, writes: Sequence[TokenWrite]) -> UpsertCounts:
        """Insert new tokens, update changed ones, leave the rest; one transaction per 500."""
        total = UpsertCounts()
        for chunk in chunks(list(writes)):
            total += self._upsert_chunk(collection_pk, chunk)
        return total

    def _upsert_chunk(self, collection_pk: int, writes: list[TokenWrite]) -> UpsertCounts:
        t, a = schema.tokens, schema.attributes
        # The last row for an id wins, as row by row would (the same id twice in one chunk
        # would otherwise be one statement updating a row twice, which PostgreSQL refuses).
        latest = {write.token_id: write for write in writes}
        with self._db.writing() as conn:
            existing = {
                row.token_id: row
                for row in conn.execute(
                    select(
                        t.c.id, t.c.token_id, t.c.name, t.c.image_path, t.c.image_sha256,
                        t.c.attributes_json,
                    )
                    .where(t.c.collection_id == collection_pk)
                    .where(t.c.token_id.in_(list(latest)))
                )
            }  # fmt: skip
            changed: list[tuple[TokenWrite, dict[str, Any]]] = []
            unchanged = 0
            for write in latest.values():
                values = {
                    "collection_id": collection_pk,
                    "token_id": write.token_id,
                    "name": write.name,
                    "image_path": ImageStore.key(write.image),
                    "image_sha256": write.image.sha256,
                    "attributes_json": _attributes_json(write.attributes),
                }
                row = existing.get(write.token_id)
                if row is not None and all(
                    getattr(row, key) == values[key]
                    for key in ("name", "image_path", "image_sha256", "attributes_json")
                ):
                    unchanged += 1
                else:
                    changed.append((write, values))
            unchanged += len(writes) - len(latest)
            if not changed:
                return UpsertCounts(unchanged=unchanged)
            # One statement for the chunk. ON CONFLICT: a concurrent ingest or sync may have
            # added a token between our read and this write.
            statement = self._db.insert(t)
            statement = statement.on_conflict_do_update(
                index_elements=[t.c.collection_id, t.c.token_id],
                set_={
                    key: statement.excluded[key]
                    for key in ("name", "image_path", "image_sha256", "attributes_json")
                },
            ).returning(t.c.id, t.c.token_id, sort_by_parameter_order=True)
            keys = {
                token_id: int(pk)
                for pk, token_id in conn.execute(statement, [values for _, values in changed])
            }
            conn.execute(a.delete().where(a.c.token_pk.in_(list(keys.values()))))
            attributes = [
                {"token_pk": keys[write.token_id], "position": i, "trait_type": attr.trait_type,
                 "value": attr.value}
                for write, _ in changed
                for i, attr in enumerate(write.attributes)
            ]  # fmt: skip
            if attributes:
                conn.execute(a.insert(), attributes)
        added = sum(1 for write, _ in changed if write.token_id not in existing)
        return UpsertCounts(added, len(changed) - added, unchanged)

    def token(self, slug: str, token_id: str) -> StoredToken:
        rows = self._tokens(
            (schema.collections.c.slug == slug) & (schema.tokens.c.token_id == token_id)
        )
        if not rows:
            self.collection(slug)  # raises UnknownCollection when that is the real problem
            raise UnknownToken(f"Token {shown(token_id)} is not in collection '{slug}'.")
        return rows[0]

    def tokens_with_id(self, token_id: str) -> list[StoredToken]:
        """Every tracked token with this id, in any collection (Solana mints are unique)."""
        return self._tokens(schema.tokens.c.token_id == token_id)

    def tokens_by_pk(self, pks: Iterable[int]) -> dict[int, StoredToken]:
        found: dict[int, StoredToken] = {}
        for chunk in chunks(list(pks)):
            for token in self._tokens(schema.tokens.c.id.in_(chunk)):
                found[token.pk] = token
        return found

    def token_ids(self, slug: str, among: Iterable[str] | None = None) -> set[str]:
        """The token ids stored for one collection (only those in ``among``, if given)."""
        t, c = schema.tokens, schema.collections
        query = select(t.c.token_id).join(c).where(c.c.slug == slug)
        if among is None:
            with self._db.reading() as conn:
                return set(conn.execute(query).scalars().all())
        found: set[str] = set()
        with self._db.reading() as conn:
            for chunk in chunks(list(among)):
                found.update(conn.execute(query.where(t.c.token_id.in_(chunk))).scalars())
        return found

    def token_pks(self, slug: str | None = None) -> np.ndarray:
        """Keys of all tokens, or of one collection's."""
        t, c = schema.tokens, schema.collections
        query = select(t.c.id).join(c).order_by(t.c.id)
        if slug is not None:
            self.collection(slug)
            query = query.where(c.c.slug == slug)
        with self._db.reading() as conn:
            return np.array(conn.execute(query).scalars().all(), dtype=np.int64)

    def attributes(self, pks: Iterable[int]) -> dict[int, tuple[Attribute, ...]]:
        a = schema.attributes
        result: dict[int, list[Attribute]] = {}
        with self._db.reading() as conn:
            for chunk in chunks(list(pks)):
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
        query = select(*token_columns()).join(c).where(where).order_by(t.c.id)
        with self._db.reading() as conn:
            return [stored_token(row) for row in conn.execute(query)]


def token_columns() -> tuple[Any, ...]:
    """The columns ``stored_token`` reads (select them with the tokens joined to collections)."""
    t, c = schema.tokens, schema.collections
    return (t.c.id, c.c.slug, t.c.token_id, t.c.image_path, t.c.image_sha256, t.c.name)


def stored_token(row: Any) -> StoredToken:
    """A ``StoredToken`` from a row with id, slug, token_id, image_path, image_sha256, name."""
    return StoredToken(
        int(row.id), row.slug, row.token_id, ImageStore.ref(row.image_path, row.image_sha256),
        row.name,
    )  # fmt: skip


def _collection_values(collection: Collection) -> dict[str, Any]:
    return {
        "slug": collection.slug,
        "name": collection.name,
        "chain": collection.chain,
        "contract": collection.contract,
        "currency": collection.currency,
        "marketplace": collection.marketplace,
    }


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
