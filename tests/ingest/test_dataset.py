"""Dataset parsing: a hostile corpus, built in tmp_path, is rejected row by row, in bounds."""

from __future__ import annotations

import json
import os
import tracemalloc
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.errors import DatasetError
from core.ingest.dataset import (
    SALE_LINE_LIMIT,
    TOKEN_LINE_LIMIT,
    Rejected,
    TokenEntry,
    read_collection,
    read_sales,
    read_tokens,
)
from core.models import Collection, Sale
from tests.datasets import MOONBIRDS, PUNKS, punks

NOW = datetime(2021, 6, 1, tzinfo=UTC)
GOOD_TOKEN = '{"token_id": "good", "image": "images/0.png"}'
HEADER = "token_id,timestamp,price,currency,tx,seller,buyer"
PUNKS_COLLECTION = Collection(
    slug="cryptopunks",
    name="CryptoPunks",
    chain="ethereum",
    contract="0xb47e3cd837ddf8e4c57f05d70ab865de6e193bbb",
    currency="ETH",
    marketplace="opensea",
)
MiB = 1024 * 1024


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return punks(tmp_path / "punks", count=5)


def line_bytes(line: str | bytes) -> bytes:
    return line if isinstance(line, bytes) else line.encode("utf-8")


def append(path: Path, *lines: str | bytes) -> int:
    """Append ``lines`` to ``path``; the number of the first of them."""
    first = len(path.read_bytes().splitlines()) + 1
    with path.open("ab") as handle:
        handle.writelines(line_bytes(line) + b"\n" for line in lines)
    return first


def tokens(dataset: Path) -> tuple[list[TokenEntry], list[Rejected]]:
    rows = list(read_tokens(dataset))
    return (
        [row for row in rows if isinstance(row, TokenEntry)],
        [row for row in rows if isinstance(row, Rejected)],
    )


def write_sales(dataset: Path, *rows: str | bytes, header: str | bytes = HEADER) -> None:
    (dataset / "sales.csv").write_bytes(b"".join(line_bytes(r) + b"\n" for r in (header, *rows)))


def sales(
    dataset: Path, collection: Collection = PUNKS_COLLECTION, now: datetime = NOW
) -> tuple[dict[int, Sale], list[Rejected]]:
    good: dict[int, Sale] = {}
    bad: list[Rejected] = []
    for item in read_sales(dataset, collection, now):
        if isinstance(item, Rejected):
            bad.append(item)
        else:
            good[item[0]] = item[1]
    return good, bad


def sale_row(
    *,
    token_id: str = "0",
    timestamp: str = "2019-01-02T03:04:05Z",
    price: str = "1.5",
    currency: str = "ETH",
    tx: str = "0x" + "ab" * 32,
    seller: str = "0xseller",
    buyer: str = "0xbuyer",
) -> str:
    return ",".join((token_id, timestamp, price, currency, tx, seller, buyer))


def deep(opening: str, closing: str, depth: int, inner: str = "1") -> str:
    return opening * depth + inner + closing * depth


# --- tokens.jsonl ----------------------------------------------------------------------------

BAD_TOKEN_LINES: list[tuple[str, str | bytes, str]] = [
    ("cut-short", '{"token_id": "x", "image": "images/0.png"', "not valid JSON"),
    ("nul-in-image", '{"token_id": "x", "image": "images/a\\u0000.png"}', "image has control"),
    (
        "escape-in-image",
        '{"token_id": "x", "image": "images/\\u001b[2J.png"}',
        "image has control",
    ),
    ("c1-in-name", '{"token_id": "x", "image": "images/0.png", "name": "a\\u0085"}', "name has"),
    (
        "lone-surrogate",
        '{"token_id": "x", "image": "images/0.png", "name": "\\ud800"}',
        "name has control characters",
    ),
    (
        "long-part",
        json.dumps({"token_id": "x", "image": "images/" + "a" * 256 + ".png"}),
        "image path has a part longer than 255 bytes",
    ),
    (
        "long-part-in-bytes",  # 86 characters, 258 bytes
        json.dumps({"token_id": "x", "image": "images/" + "€" * 86}, ensure_ascii=False),
        "image path has a part longer than 255 bytes",
    ),
    (
        "long-path",
        json.dumps({"token_id": "x", "image": "images/" + ("a" * 100 + "/") * 11 + "0.png"}),
        "image is longer than 1024 characters",
    ),
    ("absolute", '{"token_id": "x", "image": "/etc/passwd"}', "image path is absolute"),
    ("drive", '{"token_id": "x", "image": "C:\\\\x.png"}', "image path is absolute"),
    ("unc", '{"token_id": "x", "image": "\\\\\\\\host\\\\x.png"}', "image path is absolute"),
    (
        "dot-dot",
        '{"token_id": "x", "image": "images/../../x.png"}',
        "image path leaves the dataset directory",
    ),
    ("no-image", '{"token_id": "x"}', "image is missing"),
    ("deep-arrays", deep("[", "]", 100_000), "not valid JSON: nested deeper than 20 levels"),
    (
        "deep-objects",
        deep('{"a":', "}", 100_000),
        "not valid JSON: nested deeper than 20 levels",
    ),
    (
        # Linear, not quadratic: every quote of this unclosed string once restarted a scan.
        "unclosed-escaped-quotes",
        "[" * 21 + '"' + '\\"' * 400_000,
        "not valid JSON: nested deeper than 20 levels",
    ),
    (
        "deep-inside-a-token",
        '{"token_id": "x", "image": "images/0.png", "extra": ' + deep("[", "]", 30) + "}",
        "not valid JSON: nested deeper than 20 levels",
    ),
    (
        "huge-int-id",
        '{"token_id": ' + "1234567890" * 500 + ', "image": "images/0.png"}',
        "token_id is longer than 100 characters",
    ),
    (
        "huge-int-value",
        '{"token_id": "x", "image": "images/0.png", "attributes": [{"trait_type": "n", '
        '"value": ' + "9" * 5000 + "}]}",
        "attribute 1: value is longer than 200 characters",
    ),
    ("list", "[1, 2]", "not a JSON object (found a list)"),
    ("number", "5", "not a JSON object (found a number)"),
    ("string", '"x"', "not a JSON object (found a string)"),
    (
        "nan",
        '{"token_id": "x", "image": "images/0.png", "attributes": [{"trait_type": "a", '
        '"value": NaN}]}',
        "not valid JSON: NaN is not a JSON number",
    ),
    (
        "huge-float",
        '{"token_id": "x", "image": "images/0.png", "attributes": [{"trait_type": "a", '
        '"value": 1e999}]}',
        "attribute 1: value is not a finite number",
    ),
    ("invalid-utf8", b'{"token_id": "x", "image": "images/\xff.png"}', "not valid UTF-8 (byte"),
    ("id-newline", '{"token_id": "5\\n", "image": "images/0.png"}', "token_id '5\\n' may only"),
    ("id-space", '{"token_id": "5 x", "image": "images/0.png"}', "token_id '5 x' may only"),
    (
        "id-bool",
        '{"token_id": true, "image": "images/0.png"}',
        "token_id must be a string or an integer, not a boolean",
    ),
    (
        "id-float",
        '{"token_id": 1.5, "image": "images/0.png"}',
        "token_id must be a string or an integer, not a number",
    ),
    (
        "long-name",
        json.dumps({"token_id": "x", "image": "images/0.png", "name": "n" * 201}),
        "name is longer than 200 characters",
    ),
    (
        "long-trait-type",
        json.dumps(
            {"token_id": "x", "image": "images/0.png", "attributes": [{"trait_type": "t" * 101}]}
        ),
        "attribute 1: trait_type is longer than 100 characters",
    ),
    (
        "long-value",
        json.dumps(
            {
                "token_id": "x",
                "image": "images/0.png",
                "attributes": [
                    {"trait_type": "a", "value": "ok"},
                    {"trait_type": "b", "value": "v" * 201},
                ],
            }
        ),
        "attribute 2: value is longer than 200 characters",
    ),
    (
        "too-many-attributes",
        json.dumps(
            {
                "token_id": "x",
                "image": "images/0.png",
                "attributes": [{"trait_type": "t", "value": n} for n in range(101)],
            }
        ),
        "101 attributes; at most 100 are allowed",
    ),
    (
        "attributes-not-a-list",
        '{"token_id": "x", "image": "images/0.png", "attributes": {"a": 1}}',
        "attributes must be a list, not an object",
    ),
    (
        "int-trait-type",
        '{"token_id": "x", "image": "images/0.png", "attributes": [{"trait_type": 5}]}',
        "attribute 1: trait_type must be a string, not a number",
    ),
    (
        "null-value",
        '{"token_id": "x", "image": "images/0.png", "attributes": [{"trait_type": "a"}]}',
        "attribute 1: value is missing",
    ),
]


@pytest.mark.parametrize(
    ("line", "reason"),
    [pytest.param(line, reason, id=name) for name, line, reason in BAD_TOKEN_LINES],
)
def test_bad_token_line_is_one_rejected_row(dataset: Path, line: str | bytes, reason: str) -> None:
    first = append(dataset / "tokens.jsonl", line, GOOD_TOKEN)

    entries, rejected = tokens(dataset)

    assert [(r.file, r.line) for r in rejected] == [("tokens.jsonl", first)]
    assert rejected[0].reason.startswith(reason)
    assert len(rejected[0].reason) < 120
    assert [e.token_id for e in entries] == ["0", "1", "2", "3", "4", "good"]
    assert entries[-1].line == first + 1


def test_accepted_token_variations(dataset: Path) -> None:
    first = append(
        dataset / "tokens.jsonl",
        '{"token_id": 12345, "image": "images/1.png"}',
        '{"token_id": "a", "image": "images/1.png", "junk": ' + "7" * 5000 + "}",
        '{"token_id": "b", "image": "images/1.png", "name": "' + "[" * 50 + '"}',
        '{"token_id": "c", "image": "images/1.png", "attributes": [{"trait_type": "n", '
        '"value": 3}, {"trait_type": "b", "value": false}, {"trait_type": "f", "value": 2.5}]}',
        json.dumps(
            {
                "token_id": "d",
                "image": "images/../images/1.png",
                "name": "👨‍👩‍👧 " + "n" * 192,
                "attributes": [{"trait_type": "t" * 100, "value": "v" * 200}] * 100,
            }
        ),
    )

    entries, rejected = tokens(dataset)

    assert rejected == []
    by_id = {e.token_id: e for e in entries}
    assert [e.line for e in entries[5:]] == list(range(first, first + 5))
    assert type(by_id["12345"].token_id) is str
    assert by_id["b"].name == "[" * 50
    assert [(a.trait_type, a.value) for a in by_id["c"].attributes] == [
        ("n", "3"),
        ("b", "false"),
        ("f", "2.5"),
    ]
    assert all(type(a.value) is str for a in by_id["c"].attributes)
    assert len(by_id["d"].attributes) == 100
    assert by_id["d"].image_file == (dataset / "images" / "1.png").resolve()


def test_duplicate_ids_are_rejected_by_value_not_by_number(dataset: Path) -> None:
    first = append(
        dataset / "tokens.jsonl",
        '{"token_id": 3, "image": "images/1.png"}',
        '{"token_id": "5", "image": "images/1.png"}',
        '{"token_id": "5", "image": "images/1.png"}',
        '{"token_id": "x", "image": "images/missing.png"}',
        '{"token_id": "x", "image": "images/1.png"}',
        '{"token_id": "05", "image": "images/1.png"}',  # another id than "5"
    )

    entries, rejected = tokens(dataset)

    assert [(r.line, r.reason) for r in rejected] == [
        (first, "token 3 appears twice"),
        (first + 2, "token 5 appears twice"),
        (first + 3, "image images/missing.png does not exist"),
    ]
    assert [e.token_id for e in entries[5:]] == ["5", "x", "05"]


def test_path_the_os_refuses_is_a_rejected_row(tmp_path: Path) -> None:
    dataset = punks(tmp_path / ("d" * 200) / "punks", count=2)
    # Every part is within NAME_MAX and the path within 1,024 characters, but at 4 bytes a
    # character the whole is past PATH_MAX: stat fails with ENAMETOOLONG.
    image = "/".join(["😀" * 63] * 16)
    assert len(os.fsencode(dataset / image)) > 4096
    first = append(
        dataset / "tokens.jsonl",
        json.dumps({"token_id": "x", "image": image}),
        GOOD_TOKEN,
    )

    entries, rejected = tokens(dataset)

    assert [(r.line, r.reason) for r in rejected] == [
        (first, "image path cannot be checked: file name too long")
    ]
    assert entries[-1].token_id == "good"


def test_symlink_loop_is_a_rejected_row(dataset: Path) -> None:
    (dataset / "images" / "loop.png").symlink_to(dataset / "images" / "loop.png")
    first = append(
        dataset / "tokens.jsonl", '{"token_id": "x", "image": "images/loop.png"}', GOOD_TOKEN
    )

    entries, rejected = tokens(dataset)

    assert [r.line for r in rejected] == [first]
    # Python 3.11's Path.resolve raises on a loop; later versions leave it to is_file.
    assert rejected[0].reason in {
        "image path cannot be checked: symlink loop",
        "image images/loop.png does not exist",
    }
    assert entries[-1].token_id == "good"


def test_overlong_lines_are_skipped_and_numbers_stay_right(dataset: Path) -> None:
    def padded(token_id: str, size: int) -> bytes:
        start = f'{{"token_id": "{token_id}", "image": "images/1.png", "pad": "'.encode()
        return start + b"a" * (size - len(start) - 2) + b'"}'

    first = append(
        dataset / "tokens.jsonl",
        b"x" * (2 * MiB),
        padded("edge", TOKEN_LINE_LIMIT),
        padded("over", TOKEN_LINE_LIMIT + 1),
        GOOD_TOKEN,
    )
    with (dataset / "tokens.jsonl").open("ab") as handle:
        handle.write(b"y" * (TOKEN_LINE_LIMIT + 5))  # the last line, without a newline

    entries, rejected = tokens(dataset)

    assert [(r.line, r.reason) for r in rejected] == [
        (first, "line is longer than 1 MiB"),
        (first + 2, "line is longer than 1 MiB"),
        (first + 4, "line is longer than 1 MiB"),
    ]
    assert [(e.token_id, e.line) for e in entries[5:]] == [
        ("edge", first + 1),
        ("good", first + 3),
    ]


def test_crlf_and_blank_lines(dataset: Path) -> None:
    lines = (dataset / "tokens.jsonl").read_bytes().splitlines()
    (dataset / "tokens.jsonl").write_bytes(b"\xef\xbb\xbf" + b"\r\n\r\n".join(lines) + b"\r\n")

    entries, rejected = tokens(dataset)

    assert rejected == []
    assert [(e.token_id, e.line) for e in entries] == [(str(n), 2 * n + 1) for n in range(5)]


def test_a_50_mb_line_costs_a_bounded_amount_of_memory(dataset: Path) -> None:
    path = dataset / "tokens.jsonl"
    with path.open("ab") as handle:
        handle.write(b'{"token_id": "huge", "image": "images/0.png", "pad": "')
        for _ in range(50):
            handle.write(b"a" * 1_000_000)
        handle.write(b'"}\n' + GOOD_TOKEN.encode() + b"\n")

    tracemalloc.start()
    try:
        entries, rejected = tokens(dataset)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert [(r.line, r.reason) for r in rejected] == [(6, "line is longer than 1 MiB")]
    assert [(e.token_id, e.line) for e in entries[5:]] == [("good", 7)]
    assert peak < 4 * MiB  # the line is 50 MB; one line-limit buffer plus change is allowed


def test_dataset_without_tokens_is_a_dataset_error(dataset: Path) -> None:
    (dataset / "tokens.jsonl").unlink()

    with pytest.raises(DatasetError, match=r"has no tokens\.jsonl"):
        list(read_tokens(dataset))


# --- collection.json -------------------------------------------------------------------------

BAD_COLLECTIONS: list[tuple[str, bytes, str]] = [
    ("slug-newline", b'{"slug": "cryptopunks\\n", "name": "x"}', "slug has control characters"),
    ("slug-space", b'{"slug": "cryptopunks ", "name": "x"}', "slug 'cryptopunks ' must be"),
    ("slug-upper", b'{"slug": "Punks", "name": "x"}', "slug 'Punks' must be lower-case"),
    ("slug-missing", b'{"name": "x"}', "slug is missing"),
    ("slug-int", b'{"slug": ' + b"1" * 5000 + b', "name": "x"}', "slug must be a string, not a"),
    ("slug-long", json.dumps({"slug": "a" * 101, "name": "x"}).encode(), "longer than 100"),
    ("name-long", json.dumps({"slug": "a", "name": "n" * 201}).encode(), "longer than 200"),
    ("name-empty", b'{"slug": "a", "name": " "}', "name is empty"),
    ("name-control", b'{"slug": "a", "name": "a\\u0000"}', "name has control characters"),
    ("chain-odd", b'{"slug": "a", "name": "x", "chain": "eth chain"}', "chain 'eth chain'"),
    ("chain-long", json.dumps({"slug": "a", "name": "x", "chain": "c" * 41}).encode(), "chain"),
    ("chain-number", b'{"slug": "a", "name": "x", "chain": 1}', "chain must be a string"),
    ("currency-odd", b'{"slug": "a", "name": "x", "currency": "E$"}', r"currency 'E\$'"),
    ("currency-long", b'{"slug": "a", "name": "x", "currency": "' + b"E" * 17 + b'"}', "16"),
    ("market-odd", b'{"slug": "a", "name": "x", "marketplace": "a/b"}', "marketplace 'a/b'"),
    ("contract-space", b'{"slug": "a", "name": "x", "contract": "0x 1"}', "contract '0x 1' has"),
    ("broken", b"{oops", r"is not readable JSON\.$"),
    ("list", b"[]", r"not readable JSON: not a JSON object \(found a list\)"),
    ("deep", deep("[", "]", 10_000).encode(), "not readable JSON: nested deeper than 20"),
    ("not-utf8", b'{"slug": "a", "name": "\xff"}', "not readable JSON: not UTF-8"),
    ("too-large", b'{"slug": "a", "name": "x", "pad": "' + b"p" * 70_000 + b'"}', "64 KiB"),
]


@pytest.mark.parametrize(
    ("content", "message"),
    [pytest.param(content, message, id=name) for name, content, message in BAD_COLLECTIONS],
)
def test_bad_collection_json_is_a_dataset_error(
    dataset: Path, content: bytes, message: str
) -> None:
    (dataset / "collection.json").write_bytes(content)

    with pytest.raises(DatasetError, match=message):
        read_collection(dataset)


def test_collection_json_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "collection.json").mkdir()

    with pytest.raises(DatasetError, match="is not a regular file"):
        read_collection(tmp_path)


def test_collection_settings_are_normalised(dataset: Path) -> None:
    (dataset / "collection.json").write_bytes(
        b'\xef\xbb\xbf{"slug": "birds", "name": "Birds", "chain": "Solana", "currency": "sol",'
        b' "marketplace": "MagicEden", "contract": "", "extra": [1]}'
    )

    assert read_collection(dataset) == Collection(
        slug="birds",
        name="Birds",
        chain="solana",
        contract=None,
        currency="SOL",
        marketplace="magiceden",
    )


def test_real_collections_are_read() -> None:
    assert read_collection(PUNKS) == PUNKS_COLLECTION
    assert read_collection(MOONBIRDS).slug == "moonbirds"


# --- sales.csv -------------------------------------------------------------------------------

BAD_SALES: list[tuple[str, str | bytes, str]] = [
    ("not-iso", sale_row(timestamp="last tuesday"), "timestamp 'last tuesday' is not an ISO"),
    (
        "overflow",
        sale_row(timestamp="0001-01-01T00:00:00+01:00"),
        "timestamp '0001-01-01T00:00:00+01:00' is out of range",
    ),
    ("overflow-high", sale_row(timestamp="9999-12-31T23:00:00-01:00"), "timestamp '9999-12-31"),
    (
        "before-genesis",
        sale_row(timestamp="2015-07-29T23:59:59Z"),
        "timestamp 2015-07-29T23:59:59Z is before ethereum began (2015-07-30)",
    ),
    ("year-one", sale_row(timestamp="0001-01-01T00:00:00"), "timestamp 0001-01-01T00:00:00 is be"),
    (
        "future",
        sale_row(timestamp="2021-06-02T00:00:01Z"),
        "timestamp 2021-06-02T00:00:01Z is in the future",
    ),
    (
        "five-digit-year",
        sale_row(timestamp="51000-01-01T00:00:00Z"),
        "timestamp '51000-01-01T00:00:00Z' is not an ISO 8601 time",
    ),
    ("eth-ceiling", sale_row(price="2e+09"), "price 2e+09 ETH is above the 100000 ETH ceiling"),
    (
        "weth-ceiling",
        sale_row(price="100000.5", currency="weth"),
        "price 100000.5 WETH is above the 100000 WETH ceiling",
    ),
    ("sol-ceiling", sale_row(price="2e7", currency="SOL"), "price 2e7 SOL is above the 1e+07 SOL"),
    (
        "usdc-ceiling",
        sale_row(price="2000000000", currency="USDC"),
        "price 2000000000 USDC is above the 1e+09 USDC ceiling",
    ),
    (
        "dai-ceiling",
        sale_row(price="1.5e9", currency="DAI"),
        "price 1.5e9 DAI is above the 1e+09 DAI ceiling",
    ),
    (
        "other-ceiling",
        sale_row(price="1.5e9", currency="APE"),
        "price 1.5e9 APE is above the 1e+09 APE ceiling",
    ),
    ("inf", sale_row(price="inf"), "price 'inf' is not a finite number"),
    ("minus-inf", sale_row(price="-Infinity"), "price '-Infinity' is not a finite number"),
    ("nan", sale_row(price="nan"), "price 'nan' is not a finite number"),
    ("overflowing-price", sale_row(price="1e999"), "price 1e999 is not a finite number"),
    ("underscores", sale_row(price="1_000"), "price '1_000' is not a number"),
    ("arabic-digits", sale_row(price="١٢"), "price '١٢' is not a number"),
    ("hex", sale_row(price="0x10"), "price '0x10' is not a number"),
    ("negative", sale_row(price="-2"), "price -2 is negative"),
    ("no-price", sale_row(price=""), "price is missing"),
    ("long-tx", sale_row(tx="0x" + "f" * 99), "tx is longer than 100 characters"),
    ("long-seller", sale_row(seller="s" * 101), "seller is longer than 100 characters"),
    ("long-buyer", sale_row(buyer="b" * 101), "buyer is longer than 100 characters"),
    ("long-currency", sale_row(currency="C" * 17), "currency is longer than 16 characters"),
    ("bad-token-id", sale_row(token_id="3 x"), "token_id '3 x' may only have"),
    ("long-token-id", sale_row(token_id="9" * 101), "token_id is longer than 100 characters"),
    ("nul-in-seller", sale_row(seller="0x\x00"), "seller has control characters"),
    ("nul-in-tx", sale_row(tx="0x\x00ab"), "tx has control characters"),
    ("escape-in-id", sale_row(token_id="\x1b[31m3"), "token_id has control characters"),
    ("lone-cr", sale_row(tx="0x1\r2"), "not valid CSV: new-line character seen in unquoted"),
    ("unclosed-quote", '0,"2019-01-02T03:04:05Z,1.5,ETH,0x1', "not valid CSV: unexpected end"),
    ("short-row", "0,2019-01-02T03:04:05Z,1.5", "currency is missing"),
    ("invalid-utf8", b"0,2019-01-02T03:04:05Z,1.5,ETH,0x1,\xff\xfe,0xb", "not valid UTF-8"),
    ("field-300kb", sale_row(seller="s" * 300_000), "line is longer than 64 KiB"),
]


@pytest.mark.parametrize(
    ("row", "reason"), [pytest.param(row, reason, id=name) for name, row, reason in BAD_SALES]
)
def test_bad_sale_row_is_one_rejected_row(dataset: Path, row: str | bytes, reason: str) -> None:
    write_sales(dataset, sale_row(tx="0x1"), row, sale_row(tx="0x3"), sale_row(tx="0x4"))

    good, rejected = sales(dataset)

    assert [(r.file, r.line) for r in rejected] == [("sales.csv", 3)]
    assert rejected[0].reason.startswith(reason)
    assert len(rejected[0].reason) < 120
    assert {line: sale.tx for line, sale in good.items()} == {2: "0x1", 4: "0x3", 5: "0x4"}


def test_accepted_sale_variations(dataset: Path) -> None:
    write_sales(
        dataset,
        sale_row(price="100000", currency="eth", tx="0xAB", seller="", buyer=""),
        sale_row(price="9999999", currency="SOL", timestamp="2019-01-02 03:04:05"),
        sale_row(price="1e9", currency="usdc", timestamp="2019-01-02T12:00:00+09:00"),
        sale_row(price="0", timestamp="2015-07-30T00:00:00Z"),
        sale_row(price="-0", timestamp="2021-06-01T23:59:59Z"),  # within the day's tolerance
        " 1 , 2019-01-02T03:04:05Z , .5 , ETH , 0x5 , , ",
        '"2","2019-01-02T03:04:05Z","1.5","ETH","0x6","0xs","0xb","extra column"',
        "",
    )

    good, rejected = sales(dataset)

    assert rejected == []
    assert good[2] == Sale(
        collection="cryptopunks",
        token_id="0",
        timestamp=datetime(2019, 1, 2, 3, 4, 5, tzinfo=UTC),
        price=100000.0,
        currency="ETH",
        tx="0xab",
    )
    assert good[3].timestamp == datetime(2019, 1, 2, 3, 4, 5, tzinfo=UTC)  # naive is UTC
    assert good[4].timestamp == datetime(2019, 1, 2, 3, 0, tzinfo=UTC)
    assert (good[4].price, good[4].currency) == (1e9, "USDC")
    assert str(good[6].price) == "0.0"
    assert (good[7].token_id, good[7].price, good[7].tx, good[7].seller) == ("1", 0.5, "0x5", None)
    assert good[8].token_id == "2"
    assert sorted(good) == [2, 3, 4, 5, 6, 7, 8]


@pytest.mark.parametrize(
    ("chain", "too_early", "early_enough", "reason"),
    [
        ("ethereum", "2015-07-29", "2015-07-30", "before ethereum began (2015-07-30)"),
        ("solana", "2020-03-15", "2020-03-16", "before solana began (2020-03-16)"),
        ("polygon", "2020-05-29", "2020-05-30", "before polygon began (2020-05-30)"),
        ("base", "2023-07-12", "2023-07-13", "before base began (2023-07-13)"),
        ("bitcoin", "2009-01-02", "2009-01-03", "before bitcoin began (2009-01-03)"),
        ("ordinals", "2009-01-02", "2009-01-03", "before ordinals began (2009-01-03)"),
        ("aptos", "2009-01-02", "2009-01-03", "before the first blockchain began (2009-01-03)"),
    ],
)
def test_sales_before_the_chain_began(
    dataset: Path, chain: str, too_early: str, early_enough: str, reason: str
) -> None:
    write_sales(
        dataset,
        sale_row(timestamp=f"{too_early}T23:59:59Z", tx="0x1"),
        sale_row(timestamp=f"{early_enough}T00:00:00Z", tx="0x2"),
    )
    collection = Collection(slug="c", name="C", chain=chain)

    good, rejected = sales(dataset, collection, now=datetime(2024, 1, 1, tzinfo=UTC))

    assert [(r.line, r.reason) for r in rejected] == [
        (2, f"timestamp {too_early}T23:59:59Z is {reason}")
    ]
    assert [sale.collection for sale in good.values()] == ["c"]


def test_the_future_is_now_plus_a_day(dataset: Path) -> None:
    now = datetime(2021, 6, 1, 12, 0)  # naive: read as UTC
    day = timedelta(days=1)
    write_sales(
        dataset,
        sale_row(timestamp=(now + day).isoformat(), tx="0x1"),
        sale_row(timestamp=(now + day + timedelta(seconds=1)).isoformat(), tx="0x2"),
        sale_row(timestamp=(now + day).isoformat() + "-01:00", tx="0x3"),
    )

    good, rejected = sales(dataset, now=now)

    assert [r.line for r in rejected] == [3, 4]
    assert all(r.reason.endswith("is in the future") for r in rejected)
    assert list(good) == [2]


def test_header_problems(dataset: Path) -> None:
    write_sales(dataset, sale_row(), header="token_id,price")
    assert sales(dataset) == (
        {},
        [Rejected("sales.csv", 1, "missing columns: currency, timestamp, tx")],
    )

    write_sales(dataset, sale_row(), header=b"x" * (SALE_LINE_LIMIT + 1))
    assert sales(dataset) == ({}, [Rejected("sales.csv", 1, "line is longer than 64 KiB")])

    write_sales(dataset, sale_row(), header=b'"token_id,timestamp')
    assert [r.reason for r in sales(dataset)[1]] == ["not valid CSV: unexpected end of data"]

    (dataset / "sales.csv").write_bytes(f"{HEADER}\r{sale_row()}\r".encode())
    assert [r.reason for r in sales(dataset)[1]] == [r"lines end in a bare \r; use \n or \r\n"]


def test_header_with_bom_crlf_and_spaces(dataset: Path) -> None:
    (dataset / "sales.csv").write_bytes(
        b"\xef\xbb\xbf token_id , timestamp,price,currency,tx,seller,buyer\r\n"
        + sale_row().encode()
        + b"\r\n"
    )

    good, rejected = sales(dataset)

    assert rejected == []
    assert good[2].tx == "0x" + "ab" * 32
    assert good[2].buyer == "0xbuyer"


def test_no_sales_csv_is_no_sales(dataset: Path) -> None:
    (dataset / "sales.csv").unlink()

    assert list(read_sales(dataset, PUNKS_COLLECTION, NOW)) == []


def test_junk_sales_csv_costs_a_bounded_amount_of_memory(dataset: Path) -> None:
    path = dataset / "sales.csv"
    with path.open("wb") as handle:
        handle.write(HEADER.encode() + b"\n")
        for n in range(4000):
            handle.write(b'"' + b"junk," * 200 + b"\n" if n % 2 else b"\x00" * 1000 + b"\n")
        handle.write(b"z" * 20_000_000 + b"\n")
        handle.write(sale_row().encode() + b"\n")

    tracemalloc.start()
    try:
        counted = count(read_sales(dataset, PUNKS_COLLECTION, NOW))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert counted == {"rejected": 4001, "sales": 1}
    assert peak < 1 * MiB  # the file is 25 MB; a few line-limit buffers are allowed


def count(rows: Iterable[tuple[int, Sale] | Rejected]) -> dict[str, int]:
    counted = {"rejected": 0, "sales": 0}
    for row in rows:
        counted["rejected" if isinstance(row, Rejected) else "sales"] += 1
    return counted


# --- the real datasets -------------------------------------------------------------------------


def test_every_real_punk_sale_is_read() -> None:
    good, rejected = sales(PUNKS, read_collection(PUNKS), datetime.now(UTC))

    assert rejected == []
    assert len(good) == 6114
    assert min(s.timestamp for s in good.values()) == datetime(2017, 6, 23, 21, 5, 6, tzinfo=UTC)
    assert max(s.price for s in good.values()) < 10_000


@pytest.mark.parametrize(("directory", "size"), [(PUNKS, 10_000), (MOONBIRDS, 2_000)])
def test_every_real_token_is_read(directory: Path, size: int) -> None:
    entries, rejected = tokens(directory)

    assert rejected == []
    assert len(entries) == size
    assert {e.token_id for e in entries} == {str(n) for n in range(size)}
