"""Version 0.1's schema, frozen: what `create_all` made before migrations existed.

Tests build a database with it, as a user's database from that version looks, and upgrade it.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

collections = Table(
    "collections",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(100), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("chain", String(40), nullable=False),
    Column("contract", String(100)),
    Column("currency", String(16), nullable=False),
    Column("marketplace", String(40), nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("collection_id", ForeignKey("collections.id", ondelete="CASCADE"), nullable=False),
    Column("token_id", String(100), nullable=False),
    Column("name", String(200)),
    Column("image_path", Text, nullable=False),
    Column("image_sha256", String(64), nullable=False),
    # Canonical JSON of the attributes: lets ingest tell "unchanged" from "updated" cheaply.
    Column("attributes_json", Text, nullable=False),
    UniqueConstraint("collection_id", "token_id", name="uq_token"),
)

attributes = Table(
    "attributes",
    metadata,
    Column("token_pk", ForeignKey("tokens.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("trait_type", String(100), nullable=False, index=True),
    Column("value", String(200), nullable=False),
)

sales = Table(
    "sales",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("collection_id", ForeignKey("collections.id", ondelete="CASCADE"), nullable=False),
    Column("token_id", String(100), nullable=False, index=True),
    Column("timestamp", DateTime(timezone=True), nullable=False, index=True),
    Column("price", Float, nullable=False),
    Column("currency", String(16), nullable=False),
    Column("tx", String(100), nullable=False),
    Column("seller", String(100)),
    Column("buyer", String(100)),
    Column("marketplace", String(40)),
    # One transaction can sell several tokens, but never the same token twice.
    UniqueConstraint("collection_id", "tx", "token_id", name="uq_sale"),
)

embeddings = Table(
    "embeddings",
    metadata,
    Column("token_pk", ForeignKey("tokens.id", ondelete="CASCADE"), primary_key=True),
    Column("model_key", String(80), primary_key=True),
    # The image the vector was computed from; a token whose image changed needs a new one.
    Column("image_sha256", String(64), nullable=False),
    Column("vector", LargeBinary, nullable=False),
)
