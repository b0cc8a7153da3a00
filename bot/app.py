"""``python -m bot``: one engine, the front ends with tokens and the scheduler, in one loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC
from typing import TextIO

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.access import Admins
from bot.commands import LensCommands
from bot.console import Console, read_lines
from core.app import Engine, open_engine
from core.config import Secrets, Settings
from core.embedding.embedder import Embedder

log = logging.getLogger(__name__)

NO_FRONT_END = (
    "No chat front end to start: set TELEGRAM_BOT_TOKEN and/or DISCORD_BOT_TOKEN "
    "(see README, 'Running the bot'), or try the commands locally with `python -m bot console`."
)


@asynccontextmanager
async def open_lens(
    settings: Settings, embedder: Embedder | None = None
) -> AsyncIterator[LensCommands]:
    """The engine (with its HTTP session) and the bot's commands over it; closed on exit."""
    async with open_engine(settings, embedder) as engine, lens_over(engine) as lens:
        yield lens


@asynccontextmanager
async def lens_over(engine: Engine) -> AsyncIterator[LensCommands]:
    """The bot's commands over an engine that is already open."""
    yield LensCommands(engine)


def make_scheduler() -> AsyncIOScheduler:
    """The process's one scheduler; it runs on the bot's loop (later features add jobs)."""
    return AsyncIOScheduler(timezone=UTC)


def front_end_names(secrets: Secrets) -> list[str]:
    """The chat platforms whose tokens are set."""
    names = []
    if secrets.telegram_bot_token is not None:
        names.append("telegram")
    if secrets.discord_bot_token is not None:
        names.append("discord")
    return names


async def run_front_ends(lens: LensCommands, secrets: Secrets, stop: asyncio.Event) -> None:
    """Start the scheduler and every front end with a token; stop them all once ``stop`` is set.

    Front ends start in order and stop in reverse; one that fails to start stops the others.
    """
    settings = lens.settings.bot
    admins = Admins(settings.admins)
    scheduler = make_scheduler()
    async with AsyncExitStack() as stack:
        scheduler.start()
        stack.callback(scheduler.shutdown, wait=False)
        # Each platform's library is imported only when its front end actually runs.
        if secrets.telegram_bot_token is not None:
            from bot.telegram_bot import running_telegram

            token = secrets.telegram_bot_token.get_secret_value()
            await stack.enter_async_context(
                running_telegram(token, settings.telegram, lens, admins)
            )
        if secrets.discord_bot_token is not None:
            from bot.discord_bot import running_discord

            token = secrets.discord_bot_token.get_secret_value()
            # If the gateway connection ends for good, the process ends rather than idles.
            await stack.enter_async_context(
                running_discord(token, settings.discord, lens, admins, on_lost=stop.set)
            )
        log.info("bot: running; Ctrl-C or SIGTERM stops it")
        await stop.wait()
        log.info("bot: stopping")


async def serve(settings: Settings, secrets: Secrets, out: TextIO | None = None) -> int:
    """Run until SIGINT/SIGTERM; exit status 2 when no front end has a token."""
    if not front_end_names(secrets):
        print(NO_FRONT_END, file=out or sys.stderr)
        return 2
    stop = asyncio.Event()
    with _stop_on_signals(stop):
        async with open_lens(settings) as lens:
            # Build the model (and load or download its weights) before taking requests:
            # a missing weights file fails here, once, not on every user's first query.
            log.info("bot: loading the embedding model")
            await asyncio.to_thread(lens.engine.embedder.warm_up)
            await run_front_ends(lens, secrets, stop)
    return 0


async def console(
    settings: Settings, stdin: TextIO | None = None, out: TextIO | None = None
) -> int:
    """The commands in a terminal chat loop."""
    out_dir = settings.bot.console_dir or settings.data_dir / "console"
    async with open_lens(settings) as lens:
        await Console(lens, out_dir, out or sys.stdout).run(read_lines(stdin or sys.stdin))
    return 0


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on Windows
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
