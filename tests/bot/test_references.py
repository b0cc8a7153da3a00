"""Reading options, token references and marketplace URLs out of what people type."""

from __future__ import annotations

import pytest

from bot.references import (
    ContractRef,
    MintRef,
    Options,
    TokenRef,
    is_url,
    parse_options,
    parse_reference,
)
from core.errors import QueryError

PUNKS = "0xb47e3cd837ddf8e4c57f05d70ab865de6e193bbb"
MINT = "7Ypu2Qz3vk8u5Q1AdG1hgDgS6PoP5KWyKqELMtpnrNBy"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cryptopunks 7804", TokenRef("cryptopunks", "7804")),
        ("cryptopunks:7804", TokenRef("cryptopunks", "7804")),
        ("CryptoPunks #7804", TokenRef("cryptopunks", "7804")),
        ("  bored-ape-yacht-club   12 ", TokenRef("bored-ape-yacht-club", "12")),
        (
            f"https://opensea.io/assets/ethereum/{PUNKS}/7804",
            ContractRef("ethereum", PUNKS, "7804"),
        ),
        (
            f"https://opensea.io/assets/{PUNKS.upper().replace('0X', '0x')}/7804",
            ContractRef(None, PUNKS, "7804"),
        ),
        (
            f"https://opensea.io/item/ethereum/{PUNKS}/7804?tab=activity",
            ContractRef("ethereum", PUNKS, "7804"),
        ),
        (f"https://opensea.io/assets/solana/{MINT}", MintRef(MINT)),
        (f"https://magiceden.io/item-details/{MINT}", MintRef(MINT)),
        (
            f"https://magiceden.io/item-details/ethereum/{PUNKS}/12",
            ContractRef("ethereum", PUNKS, "12"),
        ),
        ("https://example.com/ape.png", None),
        ("ipfs://QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", None),
        ("what is this", None),
        ("/etc/passwd", None),
        ("", None),
    ],
)
def test_parse_reference(text: str, expected: object) -> None:
    assert parse_reference(text) == expected


def test_options_come_out_in_any_order() -> None:
    assert parse_options("k=10 cryptopunks 7804 in=Moonbirds", 20) == Options(
        "cryptopunks 7804", 10, "moonbirds"
    )
    assert parse_options("top=3 collection=punks https://x.example/a.png", 20) == Options(
        "https://x.example/a.png", 3, "punks"
    )
    assert parse_options("", 20) == Options("")


@pytest.mark.parametrize("text", ["k=0", "k=21", "k=ten", "in=Not/A/Slug"])
def test_bad_options_are_refused_clearly(text: str) -> None:
    with pytest.raises(QueryError):
        parse_options(text, 20)


def test_is_url() -> None:
    assert is_url("HTTPS://example.com/a.png") and is_url("ipfs://Qm")
    assert not is_url("cryptopunks 1") and not is_url("file:///etc/passwd")
