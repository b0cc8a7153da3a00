"""LensCommands: the platform-free command logic over a real engine with fakes at the edges."""

from __future__ import annotations

import pytest
from PIL import Image

from bot.commands import LensCommands
from bot.failures import EngineBusy, RateLimited
from core.errors import (
    FetchError,
    NotAnImage,
    QueryError,
    UnknownCollection,
    UnknownToken,
)
from core.valuation import SALES_ONLY_NOTE
from tests.bot.conftest import LensFactory
from tests.bot.fakes import CRITTERS, CRITTERS_CONTRACT, MINTS, SOLANA, Library, screenshot_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


async def test_a_screenshot_finds_its_own_token_first(
    lens: LensCommands, library: Library
) -> None:
    answer = await lens.similar_image(screenshot_png(5, library), "shot.png", k=3)

    assert [m.token_id for m in answer.result.matches][:1] == ["5"]
    assert len(answer.result.matches) == 3
    assert answer.collage.data.startswith(PNG_MAGIC)
    assert answer.collections[CRITTERS].contract == CRITTERS_CONTRACT


async def test_token_reference_excludes_the_token_and_draws_its_image(
    lens: LensCommands,
) -> None:
    answer = await lens.similar_text(f"{CRITTERS} 5", k=4)

    assert answer.label == f"{CRITTERS} #5"
    assert "5" not in [m.token_id for m in answer.result.matches if m.collection == CRITTERS]
    # The query tile is drawn beside four matches: five tiles in one row.
    collage = Image.open(__import__("io").BytesIO(answer.collage.data))
    assert collage.width > 4 * 192


async def test_marketplace_urls_resolve_to_tracked_tokens(lens: LensCommands) -> None:
    by_contract = await lens.similar_text(
        f"https://opensea.io/assets/ethereum/{CRITTERS_CONTRACT}/7", k=2
    )
    by_mint = await lens.similar_text(f"https://magiceden.io/item-details/{MINTS[1]}", k=2)

    assert by_contract.label == f"{CRITTERS} #7"
    assert by_mint.label == f"{SOLANA} #{MINTS[1]}"


async def test_collection_filter_keeps_matches_inside_it(lens: LensCommands) -> None:
    answer = await lens.similar_text(f"{CRITTERS}:3", k=5, collection=SOLANA)

    assert {m.collection for m in answer.result.matches} == {SOLANA}
    assert answer.collection_filter == SOLANA


async def test_image_url_goes_through_the_fetcher(
    make_lens: LensFactory, library: Library
) -> None:
    url = "https://img.example/critter.png"
    lens = await make_lens(images={url: screenshot_png(9, library)})

    answer = await lens.similar_text(url, k=1)

    assert answer.result.matches[0].token_id == "9"


@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        ("", QueryError, "Send a picture"),
        ("hello there friend", QueryError, "not an image URL or a token"),
        ("/etc/passwd", QueryError, "not an image URL or a token"),
        ("nosuch 5", UnknownCollection, "nosuch"),
        (f"{CRITTERS} 999", UnknownToken, "999"),
        (f"https://opensea.io/assets/ethereum/0x{'cd' * 20}/1", QueryError, "contract"),
        ("https://img.example/missing.png", FetchError, "404"),
    ],
)
async def test_bad_queries_raise_one_clear_error(
    lens: LensCommands, text: str, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        await lens.similar_text(text)


async def test_chat_queries_never_read_local_files(lens: LensCommands, library: Library) -> None:
    path = library.critters / "images" / "5.png"

    with pytest.raises(QueryError):
        await lens.similar_text(str(path))
    console = await lens.similar_text(str(path), k=1, allow_files=True)

    assert console.result.matches[0].token_id == "5"


async def test_not_an_image_is_refused(lens: LensCommands) -> None:
    with pytest.raises(NotAnImage):
        await lens.similar_image(b"%PDF-1.7 not a picture", "doc.pdf")


async def test_unknown_collection_filter_is_refused_before_embedding(
    make_lens: LensFactory, library: Library
) -> None:
    from tests.bot.fakes import WatchedEmbedder

    embedder = WatchedEmbedder()
    lens = await make_lens(embedder=embedder)

    with pytest.raises(UnknownCollection):
        await lens.similar_image(screenshot_png(1, library), "x", collection="nosuch")
    assert embedder.calls == 0


async def test_k_is_capped_for_chat(lens: LensCommands) -> None:
    answer = await lens.similar_text(f"{CRITTERS}:1", k=500)

    assert len(answer.result.matches) == 20


async def test_value_reads_sales_and_draws_a_chart(lens: LensCommands) -> None:
    answer = await lens.value(f"{CRITTERS} 5")

    value = answer.value
    assert (value.collection, value.token_id, value.currency) == (CRITTERS, "5", "ETH")
    assert value.sales_count > 0 and value.recent_median is not None
    assert value.note == SALES_ONLY_NOTE
    assert answer.chart.data.startswith(PNG_MAGIC)


async def test_value_accepts_a_marketplace_url(lens: LensCommands) -> None:
    answer = await lens.value(f"https://magiceden.io/item-details/{MINTS[0]}")

    assert answer.value.collection == SOLANA
    assert answer.value.last_sale is not None and answer.value.currency == "SOL"


async def test_value_needs_a_token(lens: LensCommands) -> None:
    with pytest.raises(QueryError, match="which token"):
        await lens.value("lens-critters")


async def test_collections_lists_counts(lens: LensCommands) -> None:
    answer = await lens.collections()

    rows = {row.collection.slug: row for row in answer.rows}
    assert rows[CRITTERS].tokens == 24 and rows[CRITTERS].sales > 0
    assert rows[SOLANA].tokens == 3 and rows[SOLANA].latest_sale is not None


async def test_rate_limit_counts_per_user_and_chat(make_lens: LensFactory) -> None:
    lens = await make_lens(bot={"user_rate_limit": {"requests": 2, "per_s": 60}})

    lens.admit("alice", "room")
    lens.admit("alice", "room")
    with pytest.raises(RateLimited, match=r"try again in \d+ s"):
        lens.admit("alice", "room")
    lens.admit("bob", "room")
    assert lens.rate_limited == 1


async def test_a_full_queue_answers_busy_at_once(make_lens: LensFactory) -> None:
    lens = await make_lens(bot={"max_pending": 1})

    with lens.gate.enter(), pytest.raises(EngineBusy):
        await lens.similar_text(f"{CRITTERS}:1")


async def test_status_reports_the_index_and_counters(lens: LensCommands) -> None:
    lens.record(ok=True)
    lens.record(ok=False)

    status = await lens.status()

    assert status.indexed == 27
    assert (status.answered, status.failed, status.collections) == (1, 1, 2)
