"""ApiClient's JSON handling against a loopback server: large pages parse off the loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from core.errors import MarketplaceError
from core.sync import http
from core.sync.http import ApiClient, RetryPolicy

BIG_ITEMS = 20_000  # about 0.6 MB of JSON: past PARSE_ON_LOOP_BYTES


@pytest.fixture
async def root() -> AsyncIterator[str]:
    big = json.dumps({"items": [{"id": i, "name": f"token {i}"} for i in range(BIG_ITEMS)]})
    assert len(big) > http.PARSE_ON_LOOP_BYTES
    pages = {
        "/big": big,
        "/small": json.dumps({"items": [{"id": 1}]}),
        "/big-broken": big[:-1],
    }

    async def serve(request: web.Request) -> web.Response:
        return web.Response(text=pages[request.path], content_type="application/json")

    app = web.Application()
    app.router.add_get("/{name}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def items(data: Any) -> list[Any]:
    return list(http.json_object(data)["items"])


async def test_large_pages_are_parsed_in_a_thread_and_small_ones_inline(
    root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    threaded: list[str] = []
    real_to_thread = asyncio.to_thread

    async def recording_to_thread(func: Any, /, *args: Any) -> Any:
        threaded.append(getattr(func, "__name__", "?"))
        return await real_to_thread(func, *args)

    monkeypatch.setattr(http.asyncio, "to_thread", recording_to_thread)
    async with ApiClient.session(10) as session:
        client = ApiClient(
            session, name="Test", root=root, requests_per_s=100, policy=RetryPolicy(max_retries=0)
        )
        small = await client.get("/small", None, items, what="a small page")
        assert threaded == []
        big = await client.get("/big", None, items, what="a big page")
        assert threaded == ["_parse"]
        assert len(small) == 1 and len(big) == BIG_ITEMS and big[-1]["id"] == BIG_ITEMS - 1
        with pytest.raises(MarketplaceError):
            await client.get("/big-broken", None, items, what="a broken page")
