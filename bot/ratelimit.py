"""Admission control: per-user and per-chat sliding-window limits, and a cap on waiting work."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager

from bot.failures import EngineBusy, RateLimited
from core.config import RateLimit


class SlidingWindow:
    """At most ``limit.requests`` hits per key in any ``limit.per_s`` seconds."""

    # Every this many hits, keys whose hits have all expired are dropped, so the table of
    # users and chats does not grow without bound.
    SWEEP_EVERY = 1024

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._clock = clock
        self._hits: dict[Hashable, deque[float]] = {}
        self._since_sweep = 0

    def retry_after(self, key: Hashable) -> float:
        """Seconds until ``key`` may go again; 0 when it may go now."""
        hits = self._hits.get(key)
        if hits is None:
            return 0.0
        now = self._clock()
        self._expire(hits, now)
        if len(hits) < self._limit.requests:
            return 0.0
        return hits[0] + self._limit.per_s - now

    def hit(self, key: Hashable) -> None:
        now = self._clock()
        self._hits.setdefault(key, deque()).append(now)
        self._since_sweep += 1
        if self._since_sweep >= self.SWEEP_EVERY:
            self._since_sweep = 0
            for stale in [k for k, hits in self._hits.items() if not self._expire(hits, now)]:
                del self._hits[stale]

    def __len__(self) -> int:
        return len(self._hits)

    def _expire(self, hits: deque[float], now: float) -> int:
        while hits and hits[0] <= now - self._limit.per_s:
            hits.popleft()
        return len(hits)


class RateLimiter:
    """Checks a user and a chat against their windows; a refused request counts against none."""

    def __init__(
        self, user: RateLimit, chat: RateLimit, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._user = SlidingWindow(user, clock)
        self._chat = SlidingWindow(chat, clock)

    def admit(self, user: Hashable, chat: Hashable | None = None) -> None:
        """Count one command, or raise ``RateLimited`` saying how long to wait."""
        wait = self._user.retry_after(user)
        if chat is not None:
            wait = max(wait, self._chat.retry_after(chat))
        if wait > 0:
            raise RateLimited(wait)
        self._user.hit(user)
        if chat is not None:
            self._chat.hit(chat)


class PendingGate:
    """Lets at most ``capacity`` requests wait for (or use) the engine; the rest are refused.

    The engine's own semaphore bounds how many embeddings run at once; this bounds the queue
    in front of it, so a flood gets a quick "busy" instead of minutes of silence.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.pending = 0

    @contextmanager
    def enter(self) -> Iterator[None]:
        if self.pending >= self.capacity:
            raise EngineBusy()
        self.pending += 1
        try:
            yield
        finally:
            self.pending -= 1
