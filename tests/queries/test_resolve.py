"""Resolving queries: tokens by reference or marketplace URL, files only where allowed, and
hostile paths refused with a sentence rather than a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import FetchError, ImageTooLarge, QueryError, UnknownCollection, UnknownToken
from core.models import Collection, ImageRef
from core.queries import ContractRef, ImageSubject, MintRef, QueryResolver, TokenRef, TokenSubject
from core.storage import Storage, TokenWrite
from tests.fakes import FakeImageFetcher

CONTRACT = "0x" + "ab" * 20
MINT = "7Ypu2Qz3vk8u5Q1AdG1hgDgS6PoP5KWyKqELMtpnrNBy"
URL = "https://img.example/a.png"


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    storage = Storage.open(f"sqlite:///{tmp_path / 'lens.sqlite'}")
    punks, _ = storage.catalog.upsert_collection(
        Collection("cryptopunks", "CryptoPunks", contract=CONTRACT)
    )
    sol, _ = storage.catalog.upsert_collection(
        Collection("sol-critters", "Sol", chain="solana", currency="SOL", marketplace="magiceden")
    )
    image = ImageRef("a" * 64, ".png")
    storage.catalog.upsert_tokens(punks, [TokenWrite("7804", None, image, ())])
    storage.catalog.upsert_tokens(sol, [TokenWrite(MINT, None, image, ())])
    yield storage
    storage.close()


@pytest.fixture
def resolver(storage: Storage) -> QueryResolver:
    return QueryResolver(storage.catalog, FakeImageFetcher({URL: b"bytes"}), max_bytes=1000)


@pytest.mark.parametrize(
    "text",
    [
        "cryptopunks 7804",
        "CryptoPunks #7804",
        f"https://opensea.io/assets/ethereum/{CONTRACT.upper().replace('0X', '0x')}/7804",
        f"https://magiceden.io/item-details/ethereum/{CONTRACT}/7804",
    ],
)
async def test_references_resolve_to_the_tracked_token(resolver: QueryResolver, text: str) -> None:
    subject = await resolver.resolve(text)

    assert isinstance(subject, TokenSubject)
    assert (subject.token.collection, subject.token.token_id) == ("cryptopunks", "7804")


async def test_a_solana_mint_is_found_in_its_collection(resolver: QueryResolver) -> None:
    subject = await resolver.resolve(f"https://magiceden.io/item-details/{MINT}")

    assert isinstance(subject, TokenSubject) and subject.token.collection == "sol-critters"


@pytest.mark.parametrize(
    ("reference", "error", "message"),
    [
        (TokenRef("cryptopunks", "1"), UnknownToken, "Token 1 is not in collection"),
        (TokenRef("nope", "1"), UnknownCollection, "'nope'"),
        (ContractRef("ethereum", "0x" + "cd" * 20, "1"), QueryError, "not one of the tracked"),
        (ContractRef("polygon", CONTRACT, "7804"), QueryError, "not one of the tracked"),
        (MintRef("9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"), UnknownToken, "not in any"),
    ],
)
def test_unknown_references_are_clear_errors(
    resolver: QueryResolver, reference: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        resolver.token(reference)  # type: ignore[arg-type]


async def test_urls_go_through_the_fetcher(resolver: QueryResolver) -> None:
    subject = await resolver.resolve(URL)

    assert subject == ImageSubject(b"bytes", URL)


async def test_without_a_fetcher_urls_are_refused_politely(storage: Storage) -> None:
    with pytest.raises(FetchError, match="not available"):
        await QueryResolver(storage.catalog, None, 1000).resolve(URL)


async def test_chat_never_reads_local_files(resolver: QueryResolver, tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG not really")

    with pytest.raises(QueryError, match="is not an image URL or a token"):
        await resolver.resolve(str(secret))
    assert await resolver.resolve(str(secret), allow_files=True) == ImageSubject(
        secret.read_bytes(), str(secret)
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda root: str(root / ("x" * 300 + ".png")),  # a name the OS refuses (ENAMETOOLONG)
        lambda root: str(root / "a\x00.png"),  # NUL: Python refuses the path
        lambda root: str(root),  # a directory
        lambda root: "",
        lambda root: "   \n",
    ],
)
async def test_hostile_paths_are_a_sentence_not_a_traceback(
    resolver: QueryResolver, tmp_path: Path, make: object
) -> None:
    with pytest.raises(QueryError) as refused:
        await resolver.resolve(make(tmp_path), allow_files=True)  # type: ignore[operator]

    assert "\n" not in str(refused.value) and len(str(refused.value)) < 200


async def test_a_file_is_size_checked_before_it_is_read(
    resolver: QueryResolver, tmp_path: Path
) -> None:
    huge = tmp_path / "huge.png"
    with huge.open("wb") as handle:
        handle.truncate(6 << 30)  # sparse: reading it whole would take 6 GB

    with pytest.raises(ImageTooLarge, match="6 GB"):
        await resolver.resolve(str(huge), allow_files=True)
