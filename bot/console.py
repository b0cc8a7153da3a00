"""``python -m bot console``: the bot's commands in a terminal, pictures written to files."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from bot import render
from bot.commands import MAX_K, LensCommands
from bot.failures import describe_failure
from bot.options import parse_options
from core.models import Picture
from core.storage.files import atomic_write

log = logging.getLogger(__name__)

BANNER = "NFT Lens console. Type /help for the commands, /quit to leave."
CONSOLE_HELP = (
    render.HelpTopic(
        "/similar FILE", "Local image files work here too.", ("/similar ~/Pictures/ape.png k=8",)
    ),
    render.HelpTopic("/status", "How the bot is doing.", ()),
    render.HelpTopic("/quit", "Leave (or Ctrl-D).", ()),
)


class Console:
    """A chat loop over lines of text; the person at the terminal is the admin."""

    def __init__(self, lens: LensCommands, out_dir: Path, out: TextIO) -> None:
        self._lens = lens
        self._out_dir = out_dir
        self._out = out
        self._numbers = itertools.count(1)
        self._session = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")

    async def run(self, lines: AsyncIterator[str]) -> None:
        self._say(BANNER)
        self._prompt()
        async for line in lines:
            if not await self.handle(line):
                break
            self._prompt()
        self._say("bye")

    async def handle(self, line: str) -> bool:
        """Run one line; ``False`` once the user asked to leave."""
        words = line.strip().split(maxsplit=1)
        if not words:
            return True
        command = words[0].lstrip("/").lower()
        rest = words[1] if len(words) > 1 else ""
        if command in ("quit", "exit", "q"):
            return False
        try:
            await self._run(command, rest)
        except Exception as exc:  # the console's one error handler, like each chat platform's
            self._lens.record(ok=False)
            self._say("error: " + describe_failure(exc, log, "console"))
        return True

    async def _run(self, command: str, rest: str) -> None:
        lens = self._lens
        if command == "similar":
            options = parse_options(rest, MAX_K)
            answer = await lens.similar_text(
                options.rest, options.k, options.collection, allow_files=True
            )
            self._say(render.similar_text(answer, render.PLAIN))
            await self._show(answer.collage, "similar")
        elif command == "value":
            value = await lens.value(rest)
            self._say(render.value_text(value, render.PLAIN))
            await self._show(value.chart, "value")
            if value.comps is not None:
                await self._show(value.comps, "comps")
        elif command == "collections":
            self._say(render.collections_text(await lens.collections(), render.PLAIN))
        elif command == "status":
            self._say(render.status_text(await lens.status(), render.PLAIN))
            return
        elif command == "track":

            async def notify(text: str) -> None:
                self._say(text)

            self._say(render.track_started_text(await lens.track(rest, notify)))
            return
        elif command == "digest":
            reply = await lens.digest(rest, "console:console")
            if reply.post is not None:
                self._say(reply.post.text)
                for picture in reply.post.pictures:
                    await self._show(picture, "digest")
            if reply.text is not None:
                self._say(reply.text)
            return
        elif command == "untrack":
            self._say(render.untrack_text(*await lens.untrack(rest)))
            return
        elif command in ("help", "start"):
            self._say(render.help_text(render.PLAIN, CONSOLE_HELP))
            return
        else:
            self._say(f"Unknown command '/{command}'; try /help.")
            return
        lens.record(ok=True)

    async def _show(self, picture: Picture, kind: str) -> None:
        # Named by time as well as number, so a second session never overwrites the first's.
        path = self._out_dir / f"{kind}-{self._session}-{next(self._numbers):03d}.png"
        await asyncio.to_thread(atomic_write, path, picture.data, durable=False)
        self._say(f"picture: {path}")

    def _say(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def _prompt(self) -> None:
        self._out.write("> ")
        self._out.flush()


async def read_lines(stream: TextIO) -> AsyncIterator[str]:
    """Lines from a blocking stream, read on a daemon thread so the loop never blocks.

    A daemon thread rather than the default executor: a read still waiting on the terminal
    must not hold up interpreter exit after Ctrl-C.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def pump() -> None:
        # RuntimeError: the loop has closed, so nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            with contextlib.suppress(OSError, ValueError):
                for line in iter(stream.readline, ""):
                    loop.call_soon_threadsafe(queue.put_nowait, line)
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="console-stdin", daemon=True).start()
    while (line := await queue.get()) is not None:
        yield line
