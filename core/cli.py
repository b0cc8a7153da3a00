"""``python -m core``: every engine action without a chat platform.

Each feature package owns its sub-commands (``add_commands``); this module only builds the
parser, sets up logging, and turns engine errors into one line on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from core.config import load_settings
from core.errors import LensError

log = logging.getLogger("core")


def build_parser() -> argparse.ArgumentParser:
    from core.demo import cli as demo_cli
    from core.ingest import cli as ingest_cli
    from core.search import cli as search_cli

    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ingest_cli.add_commands(commands)
    search_cli.add_commands(commands)
    demo_cli.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        settings = load_settings()
        return int(args.run(args, settings))
    except LensError as exc:
        log.debug("command failed", exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; rerun the command to continue where it stopped", file=sys.stderr)
        return 130


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # TensorFlow's C++ start-up chatter is noise for CLI users; keep Python warnings.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for noisy in ("tensorflow", "absl", "h5py", "PIL", "faiss", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
