"""The one query grammar: token references and marketplace item URLs, full matches only."""

from __future__ import annotations

import pytest

from core.errors import QueryError
from core.models import is_slug, is_token_id
from core.queries import ContractRef, MintRef, TokenRef, is_url, parse_reference, parse_slug

PUNKS = "0xb47e3cd837ddf8e4c57f05d70ab865de6e193bbb"
MINT = "7Ypu2Qz3vk8u5Q1AdG1hgDgS6PoP5KWyKqELMtpnrNBy"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cryptopunks 7804", TokenRef("cryptopunks", "7804")),
        ("cryptopunks:7804", TokenRef("cryptopunks", "7804")),
        ("CryptoPunks #7804", TokenRef("cryptopunks", "7804")),
        ("cryptopunks:#7804", TokenRef("cryptopunks", "7804")),
        ("lens-critters:0xAbC", TokenRef("lens-critters", "0xAbC")),
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
        ("cryptopunks\n:7804", None),
        ("cryptopunks 78 04", None),
        ("cryptopunks 7804\nsecond line", None),
        ("crypto/punks 7804", None),
        ("a" * 101 + " 1", None),
        ("cryptopunks " + "9" * 101, None),
        (f"https://opensea.io/assets/ethereum/{PUNKS}/7804 extra", None),
        (f"https://opensea.io.evil.example/assets/ethereum/{PUNKS}/7804", None),
    ],
)
def test_parse_reference(text: str, expected: object) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize(
    ("text", "slug"), [("CryptoPunks", "cryptopunks"), ("  moonbirds ", "moonbirds")]
)
def test_parse_slug(text: str, slug: str) -> None:
    assert parse_slug(text) == slug


@pytest.mark.parametrize("text", ["Not/A/Slug", "", "-punks", "a" * 101, "punks\x00"])
def test_bad_slugs_are_refused_clearly(text: str) -> None:
    with pytest.raises(QueryError, match="is not a collection name"):
        parse_slug(text)


def test_a_stored_slug_is_a_full_match() -> None:
    # What people type is trimmed; a slug from a file or an API is taken as it is.
    assert is_slug("cryptopunks") and is_token_id("7804")
    assert not is_slug("cryptopunks\n") and not is_slug("CryptoPunks")
    assert not is_token_id("7804\n") and not is_token_id("")


def test_is_url() -> None:
    assert is_url("HTTPS://example.com/a.png") and is_url("ipfs://Qm")
    assert not is_url("cryptopunks 1") and not is_url("file:///etc/passwd")
