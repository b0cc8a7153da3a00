"""Storage: the database by concern (catalog, sales, vectors, jobs, market data, price
models), and the image store."""

from __future__ import annotations

from dataclasses import dataclass

from core.storage.catalog import Catalog, StoredToken, TokenWrite, UpsertCounts
from core.storage.database import Database
from core.storage.digests import DigestBook, StoredClustering, Subscription
from core.storage.jobs import JobLog, JobPlan, JobRun
from core.storage.market import MarketData
from core.storage.migrate import Migration, migrate
from core.storage.price_models import PriceModelRecord, PriceModelRegistry
from core.storage.sales import SalesBook
from core.storage.sync import SyncBook, SyncState
from core.storage.vectors import VectorStore

__all__ = [
    "Catalog",
    "Database",
    "DigestBook",
    "JobLog",
    "JobPlan",
    "JobRun",
    "MarketData",
    "Migration",
    "PriceModelRecord",
    "PriceModelRegistry",
    "SalesBook",
    "Storage",
    "StoredClustering",
    "StoredToken",
    "Subscription",
    "SyncBook",
    "SyncState",
    "TokenWrite",
    "UpsertCounts",
    "VectorStore",
]


@dataclass(frozen=True)
class Storage:
    """The database's parts, over one connection pool."""

    database: Database
    catalog: Catalog
    sales: SalesBook
    vectors: VectorStore
    jobs: JobLog
    market: MarketData
    price_models: PriceModelRegistry
    sync: SyncBook
    digests: DigestBook
    migration: Migration | None = None

    @classmethod
    def open(cls, url: str, *, upgrade: bool = True) -> Storage:
        """Connect, and (unless told not to) bring the schema to the newest revision."""
        database = Database.connect(url)
        try:
            migration = migrate(database) if upgrade else None
        except BaseException:
            database.close()
            raise
        catalog = Catalog(database)
        return cls(
            database=database,
            catalog=catalog,
            sales=SalesBook(database),
            vectors=VectorStore(database, catalog),
            jobs=JobLog(database),
            market=MarketData(database),
            price_models=PriceModelRegistry(database),
            sync=SyncBook(database),
            digests=DigestBook(database),
            migration=migration,
        )

    def close(self) -> None:
        self.database.close()
