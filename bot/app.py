"""``python -m bot``: the engine, the front ends with tokens, the posters and the scheduler,
all in one event loop.

The engine comes from the composition root (``core.app``); this module adds what only the bot
process has: the chat front ends, a ``PostRouter`` that each running front end registers its
poster with (plus the console poster, which writes files), and the ``JobScheduler`` that runs
the engine's declared jobs and posts their failures to ``jobs.alerts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TextIO

from bot.access import Admins
from bot.commands import LensCommands
from bot.console import Console, read_lines
from bot.console_poster import ConsolePoster
from core.app import Engine, open_engine
from core.config import Secrets, Settings
from core.jobs import Alerter, JobRunner, JobScheduler
from core.posting import ChatTarget, PostRouter

log = logging.getLogger(__name__)

NO_FRONT_END = (
    "No chat front end to start: set TELEGRAM_BOT_TOKEN and/or DISCORD_BOT_TOKEN "
    "(see README, 'Running the bot'), or try the commands locally with `python -m bot console`."
)


def front_end_names(secrets: Secrets) -> list[str]:
    """The chat platforms whose tokens are set."""
    names = []
    if secrets.telegram_bot_token is not None:
        names.append("telegram")
    if secrets.discord_bot_token is not None:
        names.append("discord")
    return names


def console_dir(settings: Settings) -> Path:
    """Where the console writes pictures and console-target posts."""
    return settings.bot.console_dir or settings.data_dir / "console"


def make_scheduler(engine: Engine, router: PostRouter) -> JobScheduler:
    """The engine's jobs on one scheduler, failures posted to the configured alert chats."""
    settings = engine.settings.jobs
    alerter = Alerter(router, [ChatTarget.parse(target) for target in settings.alerts])
    runner = JobRunner(engine.storage.jobs, engine.clock, alerter)
    return JobScheduler(
        engine.jobs,
        runner,
        engine.storage.jobs,
        misfire_grace_s=settings.misfire_grace_s,
        clock=engine.clock,
    )


async def run_bot(
    lens: LensCommands,
    secrets: Secrets,
    stop: asyncio.Event,
    *,
    router: PostRouter | None = None,
    scheduler: JobScheduler | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Start every front end with a token, their posters and the scheduler; stop them all
    (in reverse order) once ``stop`` is set. A front end that fails to start stops the rest.
    ``ready`` is set once everything has started.
    """
    engine = lens.engine
    settings = lens.settings.bot
    admins = Admins(settings.admins)
    # Scheduled posts (alerts, digests) go through the engine's router unless told otherwise.
    router = router or engine.router
    router.register(ConsolePoster(console_dir(lens.settings)))
    async with AsyncExitStack() as stack:
        # Last out: a /track's background sync is cancelled once nothing can start another.
        stack.push_async_callback(lens.close)
        # Each platform's library is imported only when its front end actually runs.
        if secrets.telegram_bot_token is not None:
            from bot.telegram_bot import TelegramPoster, running_telegram

            token = secrets.telegram_bot_token.get_secret_value()
            application = await stack.enter_async_context(
                running_telegram(token, settings.telegram, lens, admins)
            )
            router.register(TelegramPoster(application.bot))
            stack.callback(router.unregister, "telegram")
        if secrets.discord_bot_token is not None:
            from bot.discord_bot import DiscordPoster, running_discord

            token = secrets.discord_bot_token.get_secret_value()
            # If the gateway connection ends for good, the process ends rather than idles.
            client = await stack.enter_async_context(
                running_discord(token, settings.discord, lens, admins, on_lost=stop.set)
            )
            router.register(DiscordPoster(client))
            stack.callback(router.unregister, "discord")
        # Jobs start last, once whatever they may post through is up, and stop first.
        await stack.enter_async_context(scheduler or make_scheduler(engine, router))
        log.info("bot: running; Ctrl-C or SIGTERM stops it")
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("bot: stopping")


async def serve(settings: Settings, secrets: Secrets, out: TextIO | None = None) -> int:
    """Run until SIGINT/SIGTERM; exit status 2 when no front end has a token."""
    if not front_end_names(secrets):
        print(NO_FRONT_END, file=out or sys.stderr)
        return 2
    stop = asyncio.Event()
    with _stop_on_signals(stop):
        async with open_engine(settings, secrets=secrets, convert=True) as engine:
            # Build the model (and load or download its weights) and start the image
            # workers before taking requests: a missing weights file fails here, once.
            log.info("bot: loading the embedding model")
            await asyncio.to_thread(engine.embedder.warm_up)
            await asyncio.to_thread(engine.decoder.warm_up)
            await asyncio.to_thread(engine.background_decoder.warm_up)
            await run_bot(LensCommands(engine), secrets, stop)
    return 0


@asynccontextmanager
async def open_console(settings: Settings) -> AsyncIterator[LensCommands]:
    async with open_engine(settings) as engine:
        lens = LensCommands(engine)
        try:
            yield lens
        finally:
            await lens.close()


async def console(
    settings: Settings, stdin: TextIO | None = None, out: TextIO | None = None
) -> int:
    """The commands in a terminal chat loop."""
    async with open_console(settings) as lens:
        await Console(lens, console_dir(settings), out or sys.stdout).run(
            read_lines(stdin or sys.stdin)
        )
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
