"""Rendering answers as chat text: markup escaping, marketplace links, the value summary."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot import render
from bot.commands import CollectionRow, CollectionsAnswer, Picture, SimilarAnswer, ValueAnswer
from core.models import Collection, Match, Sale, SimilarResult
from core.valuation import value_from_sales

ETH = Collection("apes", "Apes", "ethereum", "0x" + "12" * 20)
SOL = Collection("sols", "Sols", "solana", None, "SOL", "magiceden")
BARE = Collection("bare", "Bare")
PICTURE = Picture(b"png", "similar.png", "")


def sale(token: str, day: int, price: float, collection: str = "apes") -> Sale:
    return Sale(collection, token, datetime(2024, 5, day, tzinfo=UTC), price, "ETH", f"0x{day}")


def similar_answer(label: str) -> SimilarAnswer:
    matches = (
        Match("apes", "1", 0.91, None, sale("1", 3, 1.5)),
        Match("sols", "Mint1", 0.8, None),
        Match("bare", "2", 0.5, None),
    )
    return SimilarAnswer(
        SimilarResult(label, matches), label, PICTURE, {c.slug: c for c in (ETH, SOL, BARE)}
    )


def test_html_links_and_escapes_user_text() -> None:
    text = render.similar_text(similar_answer("<b>me</b> & co"), render.HTML)

    lines = text.splitlines()
    assert lines[0] == "3 look-alikes for &lt;b&gt;me&lt;/b&gt; &amp; co"
    assert lines[1] == (
        f'1. <a href="https://opensea.io/assets/ethereum/{ETH.contract}/1">'
        "apes #1</a> · 91% alike · last 1.5 ETH (2024-05-03)"
    )
    assert '<a href="https://magiceden.io/item-details/Mint1">sols #Mint1</a>' in lines[2]
    assert lines[3] == "3. bare #2 · 50% alike · no sales"  # no contract: no link


def test_markdown_escapes_only_what_discord_would_read_as_markup() -> None:
    markup = render.MARKDOWN

    assert markup.escape("a_b *c* [d] lens-critters #5") == r"a\_b \*c\* \[d\] lens-critters #5"
    assert markup.escape("# title\n> quote") == "\\# title\n\\> quote"
    assert markup.link("x", "https://e.example/") == "[x](<https://e.example/>)"


def test_no_matches_says_so() -> None:
    answer = SimilarAnswer(SimilarResult("q"), "q", PICTURE, {}, "apes")

    assert render.similar_text(answer, render.PLAIN) == (
        "No look-alikes found in apes for q. (is that collection indexed?)"
    )


def test_value_text_states_facts_and_the_note() -> None:
    history = [sale(str(n), n + 1, 1.0 + n / 10) for n in range(8)]
    value = value_from_sales(
        ETH, "3", datetime(2024, 6, 1, tzinfo=UTC), history, [history[3]], window_days=30
    )

    text = render.value_text(ValueAnswer(value, ETH, PICTURE), render.PLAIN)

    assert text.splitlines()[0] == f"apes #3 <https://opensea.io/assets/ethereum/{ETH.contract}/3>"
    assert "Last sale: 1.3 ETH on 2024-05-04" in text
    assert "Collection median: 1.35 ETH (8 sales, 2024-04-08 – 2024-05-08)" in text
    assert "Trend: too few sales to tell." in text
    assert "not a model estimate" in text


def test_value_text_without_any_sales() -> None:
    value = value_from_sales(BARE, "9", datetime(2024, 6, 1, tzinfo=UTC), [], [], 30)

    text = render.value_text(ValueAnswer(value, BARE, PICTURE), render.PLAIN)

    assert "Last sale: none recorded" in text
    assert "no recorded sales to compare with" in text


def test_collections_text() -> None:
    answer = CollectionsAnswer(
        (CollectionRow(ETH, 10_000, 6114, sale("1", 9, 2.0)), CollectionRow(SOL, 3, 0, None))
    )

    text = render.collections_text(answer, render.HTML)

    assert (
        "<b>apes</b> (Apes, ethereum): 10,000 tokens, 6,114 sales, latest sale 2024-05-09"
    ) in text
    assert "<b>sols</b> (Sols, solana): 3 tokens, 0 sales, no sales" in text


@pytest.mark.parametrize("markup", [render.PLAIN, render.HTML, render.MARKDOWN])
def test_help_names_every_command(markup: render.Markup) -> None:
    text = render.help_text(markup)

    for command in ("/similar", "/value", "/collections", "/help"):
        assert command in text
