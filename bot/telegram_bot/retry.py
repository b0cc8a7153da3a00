"""Honouring Telegram's flood control: wait out ``RetryAfter`` and send the request again."""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

log = logging.getLogger(__name__)


class RetryAfterLimiter(BaseRateLimiter[int]):
    """Sends at once; on a 429 pauses every request for ``retry_after`` seconds, then retries.

    Our traffic is replies to users, so reacting to flood control is enough (no throttling
    ahead of it); what matters is that a reply delayed by a 429 still arrives.
    """

    def __init__(self, max_retries: int = 3, max_wait_s: float = 60.0) -> None:
        self._max_retries = max_retries
        self._max_wait_s = max_wait_s
        self._open = asyncio.Event()
        self._open.set()

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        retries = self._max_retries if rate_limit_args is None else rate_limit_args
        for attempt in range(retries + 1):
            await self._open.wait()
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                wait = retry_after_seconds(exc)
                if attempt == retries or wait > self._max_wait_s:
                    raise
                log.warning("Telegram flood control on %s: waiting %.1f s", endpoint, wait)
                self._open.clear()
                try:
                    await asyncio.sleep(wait)
                finally:
                    self._open.set()
        raise AssertionError("unreachable")  # pragma: no cover


def retry_after_seconds(exc: RetryAfter) -> float:
    """``exc.retry_after`` in seconds, whichever type this PTB version hands out."""
    with warnings.catch_warnings():
        # PTB 22 warns that the attribute will become a timedelta; both forms are handled.
        warnings.simplefilter("ignore")
        value = exc.retry_after
    if isinstance(value, dtm.timedelta):
        return value.total_seconds()
    return float(value)
