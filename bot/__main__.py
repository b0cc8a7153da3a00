"""Entry point: ``python -m bot`` (the configured chat front ends) or ``python -m bot console``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from bot.app import console, serve
from bot.logs import configure_logging
from core.config import Secrets, load_settings
from core.errors import LensError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="Run the chat front ends whose tokens are set, plus the scheduler.",
    )
    parser.add_argument(
        "mode",
        nargs="?",
        choices=["console"],
        help="'console': the same commands in a local chat loop",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    args = parser.parse_args(argv)
    secrets = Secrets.from_env()
    quiet = args.mode == "console"
    # The console's own replies say what went wrong; its log stays out of the conversation.
    configure_logging(args.verbose, _secret_values(secrets), quiet=quiet)
    try:
        settings = load_settings()
        if settings.database_password:
            scrubbed = [*_secret_values(secrets), settings.database_password]
            configure_logging(args.verbose, scrubbed, quiet=quiet)
        if args.mode == "console":
            return asyncio.run(console(settings))
        return asyncio.run(serve(settings, secrets))
    except LensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _secret_values(secrets: Secrets) -> list[str]:
    values = (secrets.telegram_bot_token, secrets.discord_bot_token, secrets.opensea_api_key)
    return [value.get_secret_value() for value in values if value is not None]


if __name__ == "__main__":
    raise SystemExit(main())
