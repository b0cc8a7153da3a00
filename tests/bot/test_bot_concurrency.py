"""Twenty people at once: every /similar is answered, and embeddings stay within their bound."""

from __future__ import annotations

import asyncio
import threading

from bot.access import Admins
from bot.telegram_bot import running_telegram
from core.config import AdminSettings, TelegramSettings
from tests.bot.conftest import LensFactory
from tests.bot.fake_telegram import TOKEN, FakeBotApi, update
from tests.bot.fakes import Library, WatchedEmbedder, screenshot_png

PEOPLE = 20
BOUND = 2


async def test_twenty_simultaneous_similar_requests_are_all_answered_within_the_bound(
    make_lens: LensFactory, library: Library
) -> None:
    gate = threading.Event()
    embedder = WatchedEmbedder(gate)
    lens = await make_lens(embedder=embedder, embedding={"max_concurrent": BOUND})
    api = FakeBotApi()
    await api.start()
    try:
        for n in range(PEOPLE):
            api.files[f"shot-{n}"] = screenshot_png(n, library)
        settings = TelegramSettings(api_root=api.root, poll_timeout_s=1)
        async with running_telegram(TOKEN, settings, lens, Admins(AdminSettings())):
            for n in range(PEOPLE):
                await api.push(
                    update(1000 + n, user_id=5000 + n, caption="/similar k=2", photo=f"shot-{n}")
                )
            # Hold the first embeddings until every request is waiting for the engine.
            assert await asyncio.to_thread(embedder.wait_active, BOUND)
            for _ in range(10_000):
                if lens.gate.pending == PEOPLE:
                    break
                await asyncio.sleep(0)  # a bare yield to the loop, no wall-clock wait
            assert lens.gate.pending == PEOPLE
            assert embedder.active == BOUND
            gate.set()
            await api.wait_for(
                lambda calls: sum(c.method == "sendMessage" for c in calls) == PEOPLE, timeout=60
            )
    finally:
        gate.set()
        await api.stop()

    for n in range(PEOPLE):
        sent = [c.method for c in api.sent(1000 + n)]
        assert sent == ["sendChatAction", "sendPhoto", "sendMessage"], (n, sent)
    assert embedder.calls == PEOPLE
    assert embedder.max_active == BOUND
    assert lens.answered == PEOPLE and lens.failed == 0
