"""Sliding-window rate limits (on a fake clock) and the cap on waiting requests."""

from __future__ import annotations

import pytest

from bot.failures import EngineBusy, RateLimited
from bot.ratelimit import PendingGate, RateLimiter, SlidingWindow
from core.config import RateLimit
from tests.bot.conftest import FakeClock


def test_window_allows_n_then_says_how_long_to_wait(clock: FakeClock) -> None:
    window = SlidingWindow(RateLimit(requests=2, per_s=10), clock)

    window.hit("a")
    clock.advance(4)
    window.hit("a")

    assert window.retry_after("a") == pytest.approx(6)
    assert window.retry_after("b") == 0
    clock.advance(6)
    assert window.retry_after("a") == 0


def test_quiet_keys_are_swept(clock: FakeClock) -> None:
    window = SlidingWindow(RateLimit(requests=5, per_s=1), clock)
    for n in range(SlidingWindow.SWEEP_EVERY - 1):
        window.hit(n)
    clock.advance(2)

    window.hit("fresh")

    assert len(window) == 1


def test_user_and_chat_limits_and_refusals_do_not_count(clock: FakeClock) -> None:
    limiter = RateLimiter(RateLimit(requests=2, per_s=60), RateLimit(requests=3, per_s=60), clock)

    limiter.admit("ann", "room")
    limiter.admit("ann", "room")
    with pytest.raises(RateLimited) as refused:
        limiter.admit("ann", "room")
    limiter.admit("bob", "room")
    with pytest.raises(RateLimited):
        limiter.admit("cat", "room")  # the room is full even though cat is new
    limiter.admit("cat", "elsewhere")

    assert refused.value.retry_after == pytest.approx(60)
    assert "try again in 60 s" in str(refused.value)
    clock.advance(60)
    limiter.admit("ann", "room")


def test_pending_gate_refuses_past_capacity() -> None:
    gate = PendingGate(2)

    with gate.enter(), gate.enter():
        assert gate.pending == 2
        with pytest.raises(EngineBusy), gate.enter():
            pass
    assert gate.pending == 0
