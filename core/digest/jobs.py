"""Scheduled digests: chats' daily and weekly subscriptions, and operators' cron entries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from core.config import DigestPost, JobTrigger
from core.digest.model import Digest, cluster_line, headline
from core.digest.service import DigestService
from core.errors import LensError
from core.jobs.model import Job
from core.posting import ChatTarget, Post, PostRouter
from core.storage import Storage

log = logging.getLogger(__name__)

CADENCES = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}
# A subscription counts as due this much early, so the job's own interval and jitter do not
# push a daily digest later every day.
DUE_SLACK = timedelta(minutes=30)


def digest_post(digest: Digest) -> Post:
    """A digest as plain text plus one montage per group, for any platform."""
    lines = [headline(digest)]
    for c in digest.clusters:
        tag = "moving" if c.why == "mover" else "one of the largest"
        lines.append(f"• {c.label} ({tag}): {cluster_line(c, digest.collection.currency)}")
    pictures = tuple(c.montage for c in digest.clusters if c.montage is not None)
    return Post("\n".join(lines), pictures)


def subscriptions_job(
    digests: DigestService,
    storage: Storage,
    router: PostRouter,
    trigger: JobTrigger,
    clock: Callable[[], datetime],
) -> Job:
    """Post each subscribed chat's digest when its day or week is up."""

    async def work() -> str:
        now = clock()
        posted, failed = 0, []
        subscriptions = await asyncio.to_thread(storage.digests.subscriptions)
        for subscription in subscriptions:
            last = subscription.last_posted_at
            if last is not None and now - last + DUE_SLACK < CADENCES[subscription.cadence]:
                continue
            days = CADENCES[subscription.cadence].days
            try:
                digest = await digests.digest(subscription.collection, now=now, window_days=days)
                await router.post(ChatTarget.parse(subscription.target), digest_post(digest))
            except LensError as exc:
                log.warning("digest for %s failed: %s", subscription.target, exc)
                failed.append(f"{subscription.collection} to {subscription.target}: {exc}")
                continue
            await asyncio.to_thread(storage.digests.posted, subscription.id, now)
            posted += 1
        if failed:
            raise LensError(f"{len(failed)} digest(s) not posted: " + "; ".join(failed))
        return f"posted {posted} digest(s)"

    return Job("digests", "post the digests chats subscribed to", trigger, work)


def operator_job(digests: DigestService, router: PostRouter, post: DigestPost) -> Job:
    """One digest from config.yaml's ``digest.posts``, on its own cron line."""

    async def work() -> str:
        digest = await digests.digest(post.collection, window_days=post.window_days)
        await router.post(ChatTarget.parse(post.to), digest_post(digest))
        return f"posted the {post.collection} digest to {post.to}"

    return Job(
        f"digest {post.collection} to {post.to}",
        f"post the {post.collection} digest",
        JobTrigger(cron=post.cron, jitter_s=60),
        work,
    )
