"""``python -m core``: every engine action without a chat platform.

Each feature package owns its sub-commands (``add_commands``); a command's handler takes the
parsed arguments and the ``Engine`` (an ``async def`` handler gets one with an HTTP session,
a plain one the blocking kind). This module only builds the parser, sets up logging, opens
the engine from the composition root, and turns engine errors into one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from typing import Any

from core.app import open_engine, open_engine_blocking
from core.config import Settings, load_settings
from core.errors import LensError

log = logging.getLogger("core")


def build_parser() -> argparse.ArgumentParser:
    from core.demo import cli as demo_cli
    from core.digest import cli as digest_cli
    from core.ingest import cli as ingest_cli
    from core.pricing import cli as pricing_cli
    from core.search import cli as search_cli
    from core.status import cli as status_cli
    from core.storage import cli as storage_cli
    from core.sync import cli as sync_cli

    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ingest_cli.add_commands(commands)
    search_cli.add_commands(commands)
    pricing_cli.add_commands(commands)
    sync_cli.add_commands(commands)
    digest_cli.add_commands(commands)
    status_cli.add_commands(commands)
    storage_cli.add_commands(commands)
    demo_cli.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        settings = load_settings()
        # A command may run on its own settings (the demo keeps its own data directory).
        adjust: Callable[[argparse.Namespace, Settings], Settings] | None = getattr(
            args, "settings", None
        )
        if adjust is not None:
            settings = adjust(args, settings)
        return run_command(args.run, args, settings)
    except LensError as exc:
        log.debug("command failed", exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception:
        # A fault of ours, not of the input: one line, and the traceback with -v.
        incident = secrets.token_hex(4)
        log.debug("[%s] unexpected failure", incident, exc_info=True)
        print(
            f"error: something went wrong on our side (ref {incident}); rerun with -v for "
            "the details",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("interrupted; rerun the command to continue where it stopped", file=sys.stderr)
        return 130


def run_command(handler: Callable[..., Any], args: argparse.Namespace, settings: Settings) -> int:
    """Open the engine the handler needs and run it."""
    # Commands that embed images may run the one-time INT8 conversion when they open.
    embeds = bool(getattr(args, "embeds", False))
    if inspect.iscoroutinefunction(handler):

        async def run() -> int:
            async with open_engine(settings, convert=embeds) as engine:
                return int(await handler(args, engine))

        return asyncio.run(run())
    # Blocking commands run on the main thread, so Ctrl-C stops them between batches. A
    # read-only command (status) says so, and leaves the schema for `migrate` to upgrade.
    with open_engine_blocking(
        settings, upgrade=getattr(args, "upgrade", True), convert=embeds
    ) as engine:
        return int(handler(args, engine))


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # TensorFlow's C++ start-up chatter is noise for CLI users; keep Python warnings.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for noisy in ("tensorflow", "absl", "h5py", "PIL", "faiss", "asyncio", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
