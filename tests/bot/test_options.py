"""Reading chat options (k=, in=) out of what people type after a command."""

from __future__ import annotations

import pytest

from bot.options import Options, parse_options
from core.errors import QueryError


def test_options_come_out_in_any_order() -> None:
    assert parse_options("k=10 cryptopunks 7804 in=Moonbirds", 20) == Options(
        "cryptopunks 7804", 10, "moonbirds"
    )
    assert parse_options("top=3 collection=punks https://x.example/a.png", 20) == Options(
        "https://x.example/a.png", 3, "punks"
    )
    assert parse_options("", 20) == Options("")


@pytest.mark.parametrize("text", ["k=0", "k=21", "k=ten", "in=Not/A/Slug", "in=-x"])
def test_bad_options_are_refused_clearly(text: str) -> None:
    with pytest.raises(QueryError):
        parse_options(text, 20)
