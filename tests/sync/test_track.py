"""/track and /untrack in chat: admins only, a background sync with progress, then ready."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

from bot.commands import LensCommands
from bot.console import Console
from core.imaging.workers import DecoderPool
from core.queries import CollectionTarget, parse_collection_target
from tests.bot.fake_discord import ADMIN_ROLE, FakeDiscord, interaction
from tests.bot.fake_telegram import FakeBotApi, update
from tests.bot.test_discord_bot import discord_bot
from tests.bot.test_telegram_bot import telegram
from tests.sync.conftest import SLUG, SYMBOL, add_apes, add_birds, sync_engine, sync_settings
from tests.sync.fake_market import FakeMarket


def test_collection_urls_and_slugs_name_what_to_follow() -> None:
    assert parse_collection_target("https://opensea.io/collection/boredapeyachtclub/") == (
        CollectionTarget("boredapeyachtclub", "opensea")
    )
    assert parse_collection_target("https://magiceden.io/marketplace/okay_bears?x=1") == (
        CollectionTarget("okay_bears", "magiceden")
    )
    assert parse_collection_target("Okay_Bears magiceden") == CollectionTarget(
        "okay_bears", "magiceden"
    )
    assert parse_collection_target("apes") == CollectionTarget("apes", None)


async def test_an_admin_tracks_a_collection_and_hears_when_it_is_ready(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool, api: FakeBotApi
) -> None:
    add_apes(market, tokens=12, sales=30)
    settings = sync_settings(tmp_path, market)
    async with sync_engine(settings, decoder) as engine:
        lens = LensCommands(engine)
        try:
            async with telegram(api, lens, admins=(900,)):
                await api.push(update(301, text="/track apes", user_id=42))
                refused = await api.reply_to(301, "sendMessage")
                url = f"https://opensea.io/collection/{SLUG}"
                await api.push(update(302, text=f"/track {url}", user_id=900))
                await api.wait_for(
                    lambda calls: any("is ready" in c.text for c in calls if c.chat_id == 302)
                )
                found = await lens.similar_image(market.nfts_of(SLUG)[0].image, "pic", 1, SLUG)
                await api.push(update(302, text=f"/untrack {SLUG}", user_id=900))
                await api.wait_for(lambda calls: any("Stopped following" in c.text for c in calls))
        finally:
            await lens.close()
        state = engine.storage.sync.state(SLUG)

    texts = [call.text for call in api.sent(302)]
    assert "only the bot's admins" in refused.text
    assert texts[0].startswith("Following Apes (apes) on OpenSea")
    ready = next(text for text in texts if "is ready" in text)
    assert "30 new sales" in ready and "/similar and /value can use it" in ready
    sold = {s.token_id for s in market.sales_of(SLUG)}
    assert found.result.matches[0].token_id in sold
    assert state is not None and not state.following
    assert engine.storage.sales.counts()[SLUG] == 30  # untracked, data kept


async def test_the_console_tracks_magic_eden_collections(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool
) -> None:
    add_birds(market, tokens=6, sales=10)
    out = io.StringIO()
    async with sync_engine(sync_settings(tmp_path, market), decoder) as engine:
        lens = LensCommands(engine)
        console = Console(lens, tmp_path / "console", out)
        await console.run(_lines(f"/track https://magiceden.io/marketplace/{SYMBOL}", "/nope"))
        await lens.settle()
        await lens.close()

    text = out.getvalue()
    assert f"Following {SYMBOL} ({SYMBOL}) on Magic Eden" in text
    assert "is ready: 10 new sales" in text


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def test_a_discord_admin_tracks_a_collection_through_the_gateway(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool, fake: FakeDiscord
) -> None:
    add_apes(market, tokens=6, sales=12)
    options = [{"name": "collection", "type": 3, "value": f"{SLUG} opensea"}]
    async with sync_engine(sync_settings(tmp_path, market), decoder) as engine:
        lens = LensCommands(engine)
        try:
            async with discord_bot(fake, lens, admin_roles=(int(ADMIN_ROLE),)):
                fake.dispatch("INTERACTION_CREATE", interaction("tok-no", "track", options))
                fake.dispatch(
                    "INTERACTION_CREATE",
                    interaction("tok-yes", "track", options, roles=[ADMIN_ROLE],
                                interaction_id="750000000000000199"),
                )  # fmt: skip
                (refused,) = await fake.answers("tok-no", 1)
                await fake.wait_for(
                    lambda _: any(
                        "is ready" in call.payload.get("content", "")
                        for call in fake.calls("tok-yes")
                    )
                )
                answers = fake.calls("tok-yes")
        finally:
            await lens.close()

    assert "only the bot's admins" in refused.payload["data"]["content"]
    texts = [a.payload.get("content", "") for a in answers[1:]]
    assert any(text.startswith("Following Apes (apes) on OpenSea") for text in texts)
    assert any("is ready: 12 new sales" in text for text in texts)
