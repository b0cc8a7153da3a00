"""``python -m bot``: one process, one loop, every front end with a token, clean shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

from discord.http import Route

from bot.app import NO_FRONT_END, front_end_names, make_scheduler, run_bot
from bot.commands import LensCommands
from core.config import JobTrigger, Secrets
from core.errors import FetchError
from core.jobs import Job
from core.posting import PostRouter
from tests.bot import fake_discord, fake_telegram
from tests.bot.conftest import LensFactory
from tests.bot.fake_discord import GUILD_READY_S, FakeDiscord, interaction
from tests.bot.fake_telegram import FakeBotApi, update
from tests.bot.fakes import CRITTERS, Library
from tests.datasets import ROOT, write_config


def test_front_ends_follow_the_tokens_that_are_set() -> None:
    both = Secrets.from_env({"TELEGRAM_BOT_TOKEN": "t" * 20, "DISCORD_BOT_TOKEN": "d" * 20})
    blank = Secrets.from_env({"TELEGRAM_BOT_TOKEN": "  ", "DISCORD_BOT_TOKEN": ""})

    assert front_end_names(both) == ["telegram", "discord"]
    assert front_end_names(blank) == []


async def test_both_front_ends_share_one_loop_and_one_engine(
    make_lens: LensFactory,
) -> None:
    telegram, discord = FakeBotApi(), FakeDiscord()
    await telegram.start()
    await discord.start()
    lens: LensCommands = await make_lens(
        bot={
            "telegram": {"api_root": telegram.root, "poll_timeout_s": 1},
            "discord": {
                "api_root": discord.root,
                "command_sync": "global",
                "guild_ready_timeout_s": GUILD_READY_S,
            },
        }
    )
    secrets = Secrets.from_env(
        {"TELEGRAM_BOT_TOKEN": fake_telegram.TOKEN, "DISCORD_BOT_TOKEN": fake_discord.TOKEN}
    )
    stop = asyncio.Event()
    base = Route.BASE
    try:
        running = asyncio.create_task(run_bot(lens, secrets, stop))
        await discord.wait_for(lambda requests: any(r.method == "PUT" for r in requests))
        await telegram.wait_for(lambda calls: any(c.method == "setMyCommands" for c in calls))
        await telegram.push(update(300, text="/collections"))
        discord.dispatch("INTERACTION_CREATE", interaction("tok-both", "collections", []))
        from_telegram = await telegram.reply_to(300, "sendMessage")
        _, from_discord = await discord.answers("tok-both", 2)
        stop.set()
        await asyncio.wait_for(running, timeout=30)
    finally:
        await telegram.stop()
        await discord.stop()

    assert CRITTERS in from_telegram.text
    assert CRITTERS in from_discord.payload["embeds"][0]["description"]
    assert lens.answered == 2
    assert base == Route.BASE


async def test_the_bot_runs_the_engine_jobs_and_posts_failures_to_every_platform(
    make_lens: LensFactory, api: FakeBotApi, fake: FakeDiscord, tmp_path: Path
) -> None:
    lens = await make_lens(
        bot={
            "telegram": {"api_root": api.root, "poll_timeout_s": 1},
            "discord": {
                "api_root": fake.root,
                "command_sync": "off",
                "guild_ready_timeout_s": GUILD_READY_S,
            },
            "console_dir": str(tmp_path / "console"),
        },
        jobs={"alerts": ["telegram:-100777", f"discord:{fake_discord.CHANNEL_ID}", "console:ops"]},
    )

    async def broken() -> str:
        raise FetchError("The marketplace answered HTTP 502.")

    trigger = JobTrigger(every_minutes=60)
    engine = replace(
        lens.engine, jobs=(*lens.engine.jobs, Job("broken", "fails", trigger, broken))
    )
    router = PostRouter()
    scheduler = make_scheduler(engine, router)
    secrets = Secrets.from_env(
        {"TELEGRAM_BOT_TOKEN": fake_telegram.TOKEN, "DISCORD_BOT_TOKEN": fake_discord.TOKEN}
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(
        run_bot(lens, secrets, stop, router=router, scheduler=scheduler, ready=ready)
    )
    try:
        await asyncio.wait_for(ready.wait(), timeout=60)
        assert router.platforms == ("console", "discord", "telegram")
        registered = {job.id for job in scheduler.scheduler.get_jobs()}
        await scheduler.run_now("broken")
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=30)

    assert registered == {"sync", "digests", "index", "train", "housekeeping", "broken"}
    (telegram_alert,) = api.sent(-100777)
    (discord_alert,) = fake.messages(fake_discord.CHANNEL_ID)
    (console_alert,) = (tmp_path / "console" / "ops").glob("*.txt")
    run = lens.engine.storage.jobs.last_runs()["broken"]
    for text in (
        telegram_alert.text,
        discord_alert.payload["content"],
        console_alert.read_text(encoding="utf-8"),
    ):
        assert f"'broken' failed (ref {run.id})" in text
        assert "The marketplace answered HTTP 502." in text
    assert router.platforms == ("console",)  # the front ends unregistered as they stopped
    assert not scheduler.scheduler.running


async def start_bot_process(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def bot_env(library: Library, tmp_path: Path, **extra: str) -> dict[str, str]:
    config = write_config(tmp_path / "config.yaml", {"bot": {"telegram": {"poll_timeout_s": 1}}})
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("TELEGRAM_BOT_TOKEN", "DISCORD_BOT_TOKEN")
    }
    env.update(
        NFTLENS_CONFIG=str(config),
        NFTLENS_DATA_DIR=str(library.root / "data"),
        NFTLENS_VGG16_WEIGHTS="none",
        **extra,
    )
    return env


async def test_without_tokens_it_says_what_to_do_and_exits(
    library: Library, tmp_path: Path
) -> None:
    process = await start_bot_process(bot_env(library, tmp_path), ROOT)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 2
    assert NO_FRONT_END in stderr.decode()
    assert "python -m bot console" in stderr.decode()


async def test_sigterm_stops_a_running_bot_cleanly_and_the_token_never_shows(
    library: Library, tmp_path: Path
) -> None:
    api = FakeBotApi()
    await api.start()
    env = bot_env(
        library, tmp_path, TELEGRAM_BOT_TOKEN=fake_telegram.TOKEN, NFTLENS_TELEGRAM_API=api.root
    )
    try:
        process = await start_bot_process(env, ROOT)
        await api.wait_for(
            lambda calls: any(c.method == "setMyCommands" for c in calls), timeout=60
        )
        await api.push(update(400, text="/help"))
        reply = await api.reply_to(400, "sendMessage")
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        await api.stop()

    log = stderr.decode()
    assert process.returncode == 0, log
    assert "/similar" in reply.text
    assert "telegram: running as @nftlens_test_bot" in log and "bot: stopping" in log
    assert fake_telegram.TOKEN not in log
    assert fake_telegram.TOKEN.split(":")[1] not in log
    assert "Traceback" not in log
