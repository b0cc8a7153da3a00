"""Storage: SQLAlchemy Core tables and the Store that reads and writes them."""

from core.storage.store import Store, StoredToken

__all__ = ["Store", "StoredToken"]
