"""Database tables (SQLAlchemy Core) at the newest revision, keyed by natural keys.

This is what the code reads and writes; the database gets there through the Alembic revisions
in ``core/storage/migrations`` (``python -m core migrate``, also run on every start). A change
here without a revision there fails ``tests/storage/test_migrations.py``.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from core.storage.database import UtcDateTime

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
    Column("timestamp", UtcDateTime, nullable=False, index=True),
    Column("price", Float, nullable=False),
    Column("currency", String(16), nullable=False),
    Column("tx", String(100), nullable=False),
    Column("seller", String(100)),
    Column("buyer", String(100)),
    Column("marketplace", String(40)),
    # One transaction can sell several tokens, but never the same token twice.
    UniqueConstraint("collection_id", "tx", "token_id", name="uq_sale"),
    # Valuation and digests read one collection's sales by time.
    Index("ix_sales_collection_time", "collection_id", "timestamp"),
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

# Scheduled jobs: one row per run (the newest few hundred are kept), and each job's next run
# as the bot's scheduler last planned it, so `python -m core status` can tell both.
job_runs = Table(
    "job_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("job", String(64), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    # running, ok, failed or skipped
    Column("status", String(16), nullable=False),
    Column("summary", Text),
    Column("error", Text),
    Index("ix_job_runs_job_started", "job", "started_at"),
)

job_schedule = Table(
    "job_schedule",
    metadata,
    Column("job", String(64), primary_key=True),
    Column("trigger", String(200), nullable=False),
    Column("next_run_at", UtcDateTime),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Market data beside the sales: a collection's daily floor price (in its currency), and the
# daily USD rate of a currency. Dates are UTC days.
floors = Table(
    "floors",
    metadata,
    Column("collection_id", ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("floor", Float, nullable=False),
)

usd_rates = Table(
    "usd_rates",
    metadata,
    Column("currency", String(16), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("usd", Float, nullable=False),
)

# Trained price models: the artefact file (under the data directory) and what it was trained
# on; `value --at T` uses the newest one trained until T or earlier.
price_models = Table(
    "price_models",
    metadata,
    Column("version", String(80), primary_key=True),
    Column("collection_id", ForeignKey("collections.id", ondelete="CASCADE"), nullable=False),
    Column("trained_until", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("path", Text, nullable=False),
    Column("sales_used", Integer, nullable=False),
    # JSON: the feature names, and the evaluation against the baselines.
    Column("features", Text, nullable=False),
    Column("metrics", Text, nullable=False),
    Index("ix_price_models_collection_until", "collection_id", "trained_until"),
)

# Marketplace sync: per collection, whether it is followed, how often, and how far its sales
# are known to be complete. ``checkpoint`` moves only after everything up to it is committed;
# ``resume_before``/``resume_until`` record how far an unfinished run got, so a rerun after a
# kill pages only what that run had not yet stored.
sync_state = Table(
    "sync_state",
    metadata,
    Column("collection_id", ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True),
    Column("following", Boolean, nullable=False),
    Column("every_minutes", Float),
    Column("checkpoint", UtcDateTime),
    Column("resume_before", UtcDateTime),
    Column("resume_until", UtcDateTime),
    Column("last_started_at", UtcDateTime),
    Column("last_finished_at", UtcDateTime),
    # ok or failed
    Column("last_status", String(16)),
    Column("last_summary", Text),
    Column("last_error", Text),
)

# Tokens whose metadata or image could not be fetched: tried again after a back-off, so one
# broken token neither blocks a sync nor costs a request on every run.
token_failures = Table(
    "token_failures",
    metadata,
    Column("collection_id", ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True),
    Column("token_id", String(100), primary_key=True),
    Column("attempts", Integer, nullable=False),
    Column("retry_at", UtcDateTime, nullable=False),
    Column("error", Text, nullable=False),
)

# Visual groups of a collection (k-means over one model's vectors): each cluster's centre,
# and which cluster each token belongs to. Cluster ids are kept across re-clusterings by
# matching old groups to new ones, so "this group is up this week" means the same group.
clusters = Table(
    "clusters",
    metadata,
    Column("collection_id", ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True),
    Column("model_key", String(80), primary_key=True),
    Column("cluster_id", Integer, primary_key=True),
    Column("centroid", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # Tokens the k-means was fitted on (tokens joined since are members, not fitted).
    Column("fitted_tokens", Integer),
)

cluster_members = Table(
    "cluster_members",
    metadata,
    Column("token_pk", ForeignKey("tokens.id", ondelete="CASCADE"), primary_key=True),
    Column("model_key", String(80), primary_key=True),
    Column("cluster_id", Integer, nullable=False),
)

# Chats that get a collection's digest on a cadence (daily or weekly), set with /digest.
digest_subscriptions = Table(
    "digest_subscriptions",
    metadata,
    Column("id", Integer, primary_key=True),
    # A ChatTarget: "telegram:CHAT_ID", "discord:CHANNEL_ID", "console:NAME".
    Column("target", String(200), nullable=False),
    Column("collection_id", ForeignKey("collections.id", ondelete="CASCADE"), nullable=False),
    Column("cadence", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_posted_at", UtcDateTime),
    UniqueConstraint("target", "collection_id", name="uq_digest_subscription"),
)
