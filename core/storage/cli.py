"""CLI glue for ``python -m core migrate``."""

from __future__ import annotations

import argparse
from typing import Any, Protocol

from core.storage import Storage


class MigrateServices(Protocol):
    """What ``migrate`` needs from the engine (opening it already ran the migration)."""

    @property
    def storage(self) -> Storage: ...


def add_commands(commands: Any) -> None:
    parser = commands.add_parser("migrate", help="upgrade the database schema in place")
    parser.set_defaults(run=run_migrate)


def run_migrate(args: argparse.Namespace, engine: MigrateServices) -> int:
    migration = engine.storage.migration
    if migration is None or not migration.changed:
        revision = migration.after if migration else "unknown"
        print(f"the database schema is current (revision {revision})")
    else:
        print(
            f"upgraded the database schema from {migration.before or 'empty'} "
            f"to revision {migration.after}"
        )
    return 0
