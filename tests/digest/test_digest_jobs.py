"""Scheduled digests: subscriptions fired by the job on a fake clock, operators' cron posts."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.commands import LensCommands
from core.errors import LensError
from core.imaging.workers import DecoderPool
from tests.digest.conftest import END, SLUG, build
from tests.fakes import FakeClock, RecordingPoster


async def test_subscriptions_post_when_their_day_or_week_is_up(
    tmp_path: Path, decoder: DecoderPool
) -> None:
    clock = FakeClock(END)
    for built in build(tmp_path, decoder, clock=clock):
        engine = built.engine
        poster = RecordingPoster("console")
        engine.router.register(poster)
        lens = LensCommands(engine)
        daily = await lens.digest(f"subscribe {SLUG} daily", "console:daily")
        weekly = await lens.digest(f"subscribe {SLUG} weekly", "console:weekly")
        listed = await lens.digest("list", "console:daily")
        job = next(job for job in engine.jobs if job.name == "digests")

        first = await job.work()
        clock.advance(hours=12)
        quiet = await job.work()
        clock.advance(hours=12)
        second = await job.work()
        clock.advance(days=6)
        third = await job.work()
        removed = await lens.digest("unsubscribe", "console:daily")
        clock.advance(days=7)
        last = await job.work()

    assert daily.text == f"This chat will get the {SLUG} digest daily."
    assert weekly.text == f"This chat will get the {SLUG} digest weekly."
    assert listed.text == f"Scheduled digests here:\n{SLUG}: daily"
    assert (first, quiet, second) == (
        "posted 2 digest(s)",
        "posted 0 digest(s)",
        "posted 1 digest(s)",
    )
    assert (third, last) == ("posted 2 digest(s)", "posted 1 digest(s)")
    assert removed.text == "Removed 1 scheduled digest from this chat."
    chats = [chat for chat, _ in poster.sent]
    assert chats == ["daily", "weekly", "daily", "daily", "weekly", "weekly"]
    _, post = poster.sent[0]
    assert post.text.startswith("Critters: 3 of 3 visual groups")
    assert len(post.pictures) == 3
    # A day later the daily window holds nothing new: one line, no pictures.
    _, quiet_post = poster.sent[2]
    assert "Nothing to report" in quiet_post.text and quiet_post.pictures == ()


async def test_operators_cron_digests_are_jobs_on_their_own_schedule(
    tmp_path: Path, decoder: DecoderPool
) -> None:
    posts = [{"collection": SLUG, "to": "console:ops", "cron": "0 9 * * 1"}]
    for built in build(tmp_path, decoder, posts=posts):
        poster = RecordingPoster("console")
        built.engine.router.register(poster)
        job = next(job for job in built.engine.jobs if job.name.startswith("digest "))
        result = await job.work()

    assert job.name == f"digest {SLUG} to console:ops"
    assert job.trigger.cron == "0 9 * * 1"
    assert result == f"posted the {SLUG} digest to console:ops"
    assert [chat for chat, _ in poster.sent] == ["ops"]


async def test_a_post_that_cannot_be_delivered_fails_the_run_and_is_retried(
    tmp_path: Path, decoder: DecoderPool
) -> None:
    clock = FakeClock(END)
    for built in build(tmp_path, decoder, clock=clock):
        lens = LensCommands(built.engine)
        await lens.digest(f"subscribe {SLUG} daily", "telegram:12345")
        job = next(job for job in built.engine.jobs if job.name == "digests")
        with pytest.raises(LensError, match="the telegram bot is not running"):
            await job.work()
        poster = RecordingPoster("telegram")
        built.engine.router.register(poster)
        clock.advance(minutes=15)
        retried = await job.work()

    # Not marked posted: the next run, a quarter of an hour later, delivers it.
    assert retried == "posted 1 digest(s)" and len(poster.sent) == 1
