"""Parse a dataset directory into typed records; a bad row is a reported Rejected, not a crash.

Layout (one directory per collection)::

    collection.json   {"slug", "name", "chain", "contract", "currency", "marketplace"}
    tokens.jsonl      one token a line: {"token_id", "image", "attributes": [{trait_type, value}]}
    images/           the files that "image" points at, relative to the directory
    sales.csv         optional: token_id,timestamp,price,currency,tx,seller,buyer

Every file is read line by line with a byte cap per line, so memory follows the longest allowed
row, not the file. Only a dataset that is unusable as a whole (no collection.json, no
tokens.jsonl) raises ``DatasetError``; every other problem is one ``Rejected`` row.
"""

from __future__ import annotations

import codecs
import csv
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, NoReturn

from sqlalchemy import Column, String

from core.errors import DatasetError
from core.models import Attribute, Collection, Sale, is_slug, is_token_id
from core.storage import schema

# The largest token row that can pass (a 1,024-character image path, a 200-character name and
# 100 attributes of 100 + 200 characters, every character written as a \u-escaped surrogate
# pair) is about 380 KB, so 1 MiB refuses no usable row while capping what one line can cost.
TOKEN_LINE_LIMIT = 1024 * 1024
# A sale row with every field at its schema length in 4-byte characters is under 4 KB (real
# rows are ~190 bytes); 64 KiB leaves ample room and keeps a junk file cheap to walk through.
SALE_LINE_LIMIT = 64 * 1024
# collection.json is six short strings; anything this big is not one.
COLLECTION_FILE_LIMIT = 64 * 1024
# An overlong line is skipped by reading to its newline in pieces of this size.
_SKIP_CHUNK = 64 * 1024

# A token row nests three deep (row, attribute list, attribute); the cap stops a line of
# 100,000 brackets before the recursive decoder sees it.
MAX_JSON_DEPTH = 20
MAX_ATTRIBUTES = 100
MAX_IMAGE_PATH = 1024
# NAME_MAX of ext4, APFS and NTFS: a longer path part fails in the OS with ENAMETOOLONG.
MAX_PATH_PART_BYTES = 255


def _length(column: Column[Any]) -> int:
    """The declared length of a String column, so each limit is written once, in the schema."""
    kind = column.type
    if not isinstance(kind, String) or kind.length is None:
        raise TypeError(f"{column} is not a String column with a length")
    return kind.length


_COLLECTION_LENGTHS = {
    name: _length(schema.collections.c[name])
    for name in ("slug", "name", "chain", "contract", "currency", "marketplace")
}
_TOKEN_ID_LENGTH = _length(schema.tokens.c["token_id"])
_TOKEN_NAME_LENGTH = _length(schema.tokens.c["name"])
_TRAIT_TYPE_LENGTH = _length(schema.attributes.c["trait_type"])
_TRAIT_VALUE_LENGTH = _length(schema.attributes.c["value"])
_SALE_LENGTHS = {
    name: _length(schema.sales.c[name])
    for name in ("token_id", "currency", "tx", "seller", "buyer")
}

# When each chain began: a sale stamped earlier is a wrong column or unit, not history. A chain
# not listed gets Bitcoin's genesis, the earliest any chain could have.
GENESIS: Mapping[str, datetime] = {
    "ethereum": datetime(2015, 7, 30, tzinfo=UTC),
    "solana": datetime(2020, 3, 16, tzinfo=UTC),
    "polygon": datetime(2020, 5, 30, tzinfo=UTC),
    "base": datetime(2023, 7, 13, tzinfo=UTC),
    "bitcoin": datetime(2009, 1, 3, tzinfo=UTC),
    "ordinals": datetime(2009, 1, 3, tzinfo=UTC),
}
_DEFAULT_GENESIS = GENESIS["bitcoin"]
# A naive time is read as UTC, and a local time written without its offset runs up to 14 hours
# ahead (UTC+14); block times may also lead real time (Bitcoin accepts blocks 2 hours ahead) and
# the exporter's clock may differ from ours. A day covers all of these, while a wrong year or
# milliseconds read as seconds is still refused.
FUTURE_TOLERANCE = timedelta(days=1)

# Far above any real sale: the largest NFT sales on record are ~42k ETH and ~$91M (Pak's "The
# Merge"), so a price past these is a unit or column mistake (wei written as ETH, say). The
# 124,457 ETH CryptoPunk #9998 "sale" of 2021 was a flash-loan wash trade and is refused.
PRICE_CEILINGS: Mapping[str, float] = {
    "ETH": 1e5,
    "WETH": 1e5,
    "SOL": 1e7,
    "USD": 1e9,
    "USDC": 1e9,
    "USDT": 1e9,
    "DAI": 1e9,
}
DEFAULT_PRICE_CEILING = 1e9

_SALE_COLUMNS = ("token_id", "timestamp", "price", "currency", "tx")
# C0 and C1 controls (NUL, newlines, escape sequences) and lone surrogates: JSON's "\ud800"
# decodes to one, and it cannot be encoded to UTF-8 for the database or a chat message.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# The closing quote is optional so that a match never fails: with it required, every quote of
# an unclosed string like '"\\"\\"\\"...' restarts a scan to the end of the line, which is
# quadratic (a 1 MiB line took hours). An unclosed string ends the JSON the decoder can parse,
# so letting it swallow the rest of the line hides no bracket the decoder would reach.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_CURRENCY = re.compile(r"[A-Z0-9][A-Z0-9._-]*")
_DRIVE = re.compile(r"[A-Za-z]:")


@dataclass(frozen=True)
class Rejected:
    """A row that was skipped, and why."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class TokenEntry:
    """A token row as read, with the absolute path of its image file."""

    line: int
    token_id: str
    name: str | None
    image_file: Path
    attributes: tuple[Attribute, ...]


class _RowError(Exception):
    """One row cannot be used; the message is its reason. Never leaves this module."""


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


# Integers are read as Decimal: ids and trait values become text anyway, and Decimal converts
# to and from digits in linear time, where int() on thousands of digits is quadratic (hence
# Python's 4,300-digit limit, which would raise mid-parse). A str subclass would also do, but
# builds 5x slower than Decimal (0.4 s for a 1 MiB line of small integers).
_JSON = json.JSONDecoder(parse_int=Decimal, parse_constant=_refuse_constant)


def read_collection(directory: Path) -> Collection:
    """Read collection.json; a dataset without a valid one cannot be ingested at all."""
    path = directory / "collection.json"
    try:
        if not path.is_file():
            if path.exists():
                raise DatasetError(f"{path} is not a regular file.")
            raise DatasetError(f"{directory} has no collection.json; is it a dataset?")
        with path.open("rb") as handle:
            data = handle.read(COLLECTION_FILE_LIMIT + 1)
    except OSError as exc:
        raise DatasetError(f"{path} cannot be read: {_os_reason(exc)}.") from exc
    if len(data) > COLLECTION_FILE_LIMIT:
        raise DatasetError(f"{path} is larger than {_size(COLLECTION_FILE_LIMIT)}.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not readable JSON: not UTF-8.") from exc
    try:
        raw = _json_object(text)
    except _RowError as exc:
        detail = str(exc).removeprefix("not valid JSON").removeprefix(": ")
        raise DatasetError(
            f"{path} is not readable JSON{': ' if detail else ''}{detail}."
        ) from exc
    try:
        return _collection(raw)
    except _RowError as exc:
        raise DatasetError(f"{path} is invalid: {exc}.") from exc


def read_tokens(directory: Path) -> Iterator[TokenEntry | Rejected]:
    """Each token of tokens.jsonl, or a Rejected for a line that cannot be used.

    A missing or unreadable tokens.jsonl raises ``DatasetError`` here, at the call, before
    anything is written (the rows themselves are read lazily).
    """
    path = directory / "tokens.jsonl"
    if not path.is_file():
        raise DatasetError(f"{directory} has no tokens.jsonl.")
    try:
        root = directory.resolve()
        handle = path.open("rb")
    except (OSError, RuntimeError) as exc:
        raise DatasetError(f"{path} cannot be read: {_os_reason(exc)}.") from exc
    return _token_rows(path, root, handle)


def _token_rows(path: Path, root: Path, handle: IO[bytes]) -> Iterator[TokenEntry | Rejected]:
    # Grows with the distinct accepted ids only (about 65 bytes each as ints, 90 as strings,
    # set slots included): the one thing here that grows with the file, not the row.
    seen: set[int | str] = set()
    with handle:
        for item in _lines(handle, path.name, TOKEN_LINE_LIMIT):
            if isinstance(item, Rejected):
                yield item
                continue
            number, text = item
            if not text.strip():
                continue
            try:
                entry = _token_entry(number, text, root, seen)
            except _RowError as exc:
                yield Rejected(path.name, number, str(exc))
                continue
            yield entry


def read_sales(
    directory: Path, collection: Collection, now: datetime
) -> Iterator[tuple[int, Sale] | Rejected]:
    """Yield (line, sale) for each row of sales.csv (if present), or a Rejected for a bad row.

    ``collection`` gives the slug and the chain (whose genesis is the earliest allowed time);
    ``now`` (naive means UTC) plus ``FUTURE_TOLERANCE`` is the latest.
    """
    latest = (now if now.tzinfo else now.replace(tzinfo=UTC)) + FUTURE_TOLERANCE
    chain = collection.chain.lower()
    for item in _csv_records(directory / "sales.csv", _SALE_COLUMNS):
        if isinstance(item, Rejected):
            yield item
            continue
        number, fields = item
        try:
            yield number, _sale(fields, collection.slug, chain, latest)
        except _RowError as exc:
            yield Rejected("sales.csv", number, str(exc))


def read_daily(
    directory: Path, name: str, column: str, collection: Collection, now: datetime
) -> Iterator[tuple[int, date, float] | Rejected]:
    """Yield (line, day, value) for each row of an optional ``date,<column>`` file (daily
    floors, daily USD rates), or a Rejected for a bad row."""
    latest = ((now if now.tzinfo else now.replace(tzinfo=UTC)) + FUTURE_TOLERANCE).date()
    earliest = GENESIS.get(collection.chain.lower(), _DEFAULT_GENESIS).date()
    # A rate may be older than the chain (ETH traded before its genesis); a floor may not.
    if column == "usd":
        earliest = _DEFAULT_GENESIS.date()
    for item in _csv_records(directory / name, ("date", column)):
        if isinstance(item, Rejected):
            yield item
            continue
        number, fields = item
        try:
            day = _day(_csv_text(fields, "date", required=True), earliest, latest)
            value = _price(
                _csv_text(fields, column, required=True),
                "USD" if column == "usd" else collection.currency.upper(),
            )
            if value <= 0:
                raise _RowError(f"{column} must be above zero")
        except _RowError as exc:
            yield Rejected(name, number, str(exc))
            continue
        yield number, day, value


def _csv_records(
    path: Path, columns: tuple[str, ...]
) -> Iterator[tuple[int, dict[str, str]] | Rejected]:
    """The rows of an optional CSV file with a header naming at least ``columns``, as
    (line, fields); bounded lines, and a Rejected per unusable line."""
    if not path.exists():
        return
    if not path.is_file():
        yield Rejected(path.name, 1, f"{path.name} is not a regular file")
        return
    try:
        handle = path.open("rb")
    except OSError as exc:
        yield Rejected(path.name, 1, f"cannot be read: {_os_reason(exc)}")
        return
    with handle:
        header: list[str] | None = None
        for item in _lines(handle, path.name, SALE_LINE_LIMIT):
            if isinstance(item, Rejected):
                yield item
                if header is None:
                    return  # without a header no row can be mapped to its columns
                continue
            number, text = item
            if not text.strip():
                continue
            if header is None and "\r" in text:
                # Lines are split at \n only, so a classic-Mac file is one line: say so.
                yield Rejected(path.name, number, "lines end in a bare \\r; use \\n or \\r\\n")
                return
            try:
                fields = _csv_fields(text)
            except csv.Error as exc:
                # csv's messages go on with advice ("... - do you need to open the file ...")
                problem = str(exc).split(" - ")[0].lower()
                yield Rejected(path.name, number, f"not valid CSV: {problem}")
                if header is None:
                    return
                continue
            if header is None:
                header = [name.strip() for name in fields]
                missing = set(columns) - set(header)
                if missing:
                    yield Rejected(
                        path.name, number, f"missing columns: {', '.join(sorted(missing))}"
                    )
                    return
                continue
            yield number, dict(zip(header, fields, strict=False))


def _lines(handle: IO[bytes], file: str, limit: int) -> Iterator[tuple[int, str] | Rejected]:
    """Yield (number, text) per line, without its line break; an overlong or non-UTF-8 line is
    a Rejected, and an overlong one is skipped in bounded pieces, never held whole."""
    number = 0
    while True:
        try:
            raw = handle.readline(limit + 1)
            overlong = len(raw) > limit and not raw.endswith(b"\n")
            while overlong and (piece := handle.readline(_SKIP_CHUNK)) and piece[-1:] != b"\n":
                pass
        except OSError as exc:  # the disk, not a row: the file as a whole cannot be read
            raise DatasetError(
                f"{file} cannot be read after line {number}: {_os_reason(exc)}."
            ) from exc
        if not raw:
            return
        number += 1
        if overlong:
            yield Rejected(file, number, f"line is longer than {_size(limit)}")
            continue
        raw = raw.removesuffix(b"\n").removesuffix(b"\r")
        if number == 1:
            raw = raw.removeprefix(codecs.BOM_UTF8)  # spreadsheet exports start with one
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Rejected(file, number, f"not valid UTF-8 (byte {exc.start + 1} of the line)")
            continue
        yield number, text


def _json_object(text: str) -> dict[str, Any]:
    """Decode one JSON object with a depth cap; any failure is a _RowError, not a traceback."""
    if _too_deep(text):
        raise _RowError(f"not valid JSON: nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = _JSON.decode(text)
    except json.JSONDecodeError as exc:
        raise _RowError("not valid JSON") from exc
    except RecursionError as exc:  # _too_deep should make this unreachable; kept as a backstop
        raise _RowError(f"not valid JSON: nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:
        raise _RowError(f"not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise _RowError(f"not a JSON object (found {_json_kind(value)})")
    return value


def _too_deep(text: str) -> bool:
    """Whether ``text`` nests arrays and objects past MAX_JSON_DEPTH, in linear time."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False  # it cannot nest deeper than it has brackets
    depth = 0
    for bracket in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_JSON_DEPTH:
            return True
    return False


def _collection(raw: dict[str, Any]) -> Collection:
    slug = _required_text(raw, "slug", _COLLECTION_LENGTHS["slug"])
    if not is_slug(slug):
        raise _RowError(f"slug {_quote(slug)} must be lower-case letters, digits, '-' or '_'")
    name = _required_text(raw, "name", _COLLECTION_LENGTHS["name"])
    contract = _json_text(raw, "contract", _COLLECTION_LENGTHS["contract"])
    if contract is not None and any(ch.isspace() for ch in contract):
        raise _RowError(f"contract {_quote(contract)} has spaces")
    return Collection(
        slug=slug,
        name=name,
        chain=_word(raw, "chain", "ethereum", _NAME, str.lower),
        contract=contract or None,
        currency=_word(raw, "currency", "ETH", _CURRENCY, str.upper),
        marketplace=_word(raw, "marketplace", "opensea", _NAME, str.lower),
    )


def _word(
    raw: dict[str, Any],
    key: str,
    default: str,
    pattern: re.Pattern[str],
    case: Callable[[str], str],
) -> str:
    """An identifier-like setting (chain, currency, marketplace), in its canonical case."""
    text = _json_text(raw, key, _COLLECTION_LENGTHS[key])
    if text is None:
        return default
    word = case(text.strip())
    if not pattern.fullmatch(word):
        raise _RowError(f"{key} {_quote(text)} must be letters, digits, '.', '-' or '_'")
    return word


def _required_text(raw: dict[str, Any], key: str, limit: int) -> str:
    text = _json_text(raw, key, limit)
    if text is None:
        raise _RowError(f"{key} is missing")
    if not text.strip():
        raise _RowError(f"{key} is empty")
    return text


def _json_text(raw: dict[str, Any], key: str, limit: int) -> str | None:
    """``raw[key]`` as checked text (within ``limit`` characters, no controls), or None."""
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _RowError(f"{key} must be a string, not {_json_kind(value)}")
    if len(value) > limit:
        raise _RowError(f"{key} is longer than {limit} characters")
    if _CONTROL.search(value):
        raise _RowError(f"{key} has control characters")
    return value


def _token_entry(number: int, text: str, root: Path, seen: set[int | str]) -> TokenEntry:
    """Check one token line; marks its id as seen only once the whole row has passed."""
    row = _json_object(text)
    token_id = row.get("token_id")
    if token_id is None:
        raise _RowError("token_id is missing")
    if isinstance(token_id, Decimal):  # a JSON integer (see _JSON)
        token_id = str(token_id)
    if not isinstance(token_id, str):
        raise _RowError(f"token_id must be a string or an integer, not {_json_kind(token_id)}")
    if len(token_id) > _TOKEN_ID_LENGTH:
        raise _RowError(f"token_id is longer than {_TOKEN_ID_LENGTH} characters")
    _check_token_id(token_id)
    name = _json_text(row, "name", _TOKEN_NAME_LENGTH)
    attributes = _attributes(row.get("attributes"))
    image = _required_text(row, "image", MAX_IMAGE_PATH)
    _check_image_path(image)
    key = _seen_key(token_id)
    if key in seen:
        raise _RowError(f"token {token_id} appears twice")
    image_file = _image_file(root, image)
    seen.add(key)
    return TokenEntry(
        line=number,
        token_id=token_id,
        name=name,
        image_file=image_file,
        attributes=attributes,
    )


def _seen_key(token_id: str) -> int | str:
    # Decimal ids (most collections) are kept as ints, smaller than their strings; a leading
    # zero keeps the string, so that "05" and "5" stay two ids.
    if token_id.isdigit() and (token_id == "0" or not token_id.startswith("0")):
        return int(token_id)
    return token_id


def _attributes(raw: Any) -> tuple[Attribute, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _RowError(f"attributes must be a list, not {_json_kind(raw)}")
    if len(raw) > MAX_ATTRIBUTES:
        raise _RowError(f"{len(raw)} attributes; at most {MAX_ATTRIBUTES} are allowed")
    attributes = []
    for position, item in enumerate(raw, start=1):
        if not isinstance(item, dict):
            raise _RowError(f"attribute {position} must be an object, not {_json_kind(item)}")
        try:
            trait_type = _required_text(item, "trait_type", _TRAIT_TYPE_LENGTH)
            value = _trait_value(item.get("value"))
        except _RowError as exc:
            raise _RowError(f"attribute {position}: {exc}") from None
        attributes.append(Attribute(trait_type, value))
    return tuple(attributes)


def _trait_value(value: Any) -> str:
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _RowError("value is not a finite number")
        text = str(value)
    elif isinstance(value, str | Decimal):  # Decimal: a JSON integer (see _JSON)
        text = str(value)
    elif value is None:
        raise _RowError("value is missing")
    else:
        raise _RowError(f"value must be a string, number or boolean, not {_json_kind(value)}")
    if len(text) > _TRAIT_VALUE_LENGTH:
        raise _RowError(f"value is longer than {_TRAIT_VALUE_LENGTH} characters")
    if _CONTROL.search(text):
        raise _RowError("value has control characters")
    return text


def _check_image_path(image: str) -> None:
    """Refuse what no file under the dataset can be called, before the OS sees the path."""
    if image.startswith(("/", "\\")) or _DRIVE.match(image):
        raise _RowError("image path is absolute")
    for part in re.split(r"[/\\]", image):
        if len(part.encode("utf-8")) > MAX_PATH_PART_BYTES:
            raise _RowError(f"image path has a part longer than {MAX_PATH_PART_BYTES} bytes")


def _image_file(root: Path, image: str) -> Path:
    try:
        target = (root / image).resolve()
        inside = target.is_relative_to(root)
        exists = inside and target.is_file()
    # OSError: ENAMETOOLONG and the like from stat; RuntimeError: Path.resolve on a symlink
    # loop (Python < 3.13); ValueError: whatever the OS layer refuses to encode.
    except (OSError, RuntimeError, ValueError) as exc:
        raise _RowError(f"image path cannot be checked: {_os_reason(exc)}") from None
    if not inside:
        raise _RowError("image path leaves the dataset directory")
    if not exists:
        raise _RowError(f"image {_show(image)} does not exist")
    return target


def _csv_fields(text: str) -> list[str]:
    """Split one line as CSV; a record never spans lines (see below)."""
    # A reader per line, not one over the file: a shared reader that meets an unclosed quote
    # swallows the following lines into one field until the 128 KiB field limit, then resumes
    # mid-junk with wrong line numbers. strict=True makes an unclosed quote an error here.
    return next(csv.reader((text,), strict=True), [])


def _sale(fields: dict[str, str], slug: str, chain: str, latest: datetime) -> Sale:
    token_id = _csv_text(fields, "token_id", required=True)
    _check_token_id(token_id)
    timestamp = _sale_time(_csv_text(fields, "timestamp", required=True), chain, latest)
    currency = _csv_text(fields, "currency", required=True).upper()
    price = _price(_csv_text(fields, "price", required=True), currency)
    return Sale(
        collection=slug,
        token_id=token_id,
        timestamp=timestamp,
        price=price,
        currency=currency,
        tx=_csv_text(fields, "tx", required=True).lower(),
        seller=_csv_text(fields, "seller") or None,
        buyer=_csv_text(fields, "buyer") or None,
    )


def _csv_text(fields: dict[str, str], name: str, *, required: bool = False) -> str:
    """A field, stripped; controls are refused before stripping so none can hide at the ends."""
    raw = fields.get(name) or ""
    if _CONTROL.search(raw):
        raise _RowError(f"{name} has control characters")
    text = raw.strip()
    if required and not text:
        raise _RowError(f"{name} is missing")
    limit = _SALE_LENGTHS.get(name)
    if limit is not None and len(text) > limit:
        raise _RowError(f"{name} is longer than {limit} characters")
    return text


def _sale_time(text: str, chain: str, latest: datetime) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _RowError(f"timestamp {_quote(text)} is not an ISO 8601 time") from None
    try:
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except OverflowError:
        raise _RowError(f"timestamp {_quote(text)} is out of range") from None
    _check_moment(moment, chain, latest, _show(text))
    return moment


def _check_token_id(token_id: str) -> None:
    if not is_token_id(token_id):
        raise _RowError(
            f"token_id {_quote(token_id)} may only have letters, digits, '.', '_', '-'"
        )


def _check_moment(moment: datetime, chain: str, latest: datetime, shown: str) -> None:
    """A sale's time must fall after its chain began and not in the future."""
    genesis = GENESIS.get(chain)
    if moment < (genesis or _DEFAULT_GENESIS):
        began = chain if genesis else "the first blockchain"
        start = (genesis or _DEFAULT_GENESIS).date().isoformat()
        raise _RowError(f"timestamp {shown} is before {began} began ({start})")
    if moment > latest:
        raise _RowError(f"timestamp {shown} is in the future")


def _check_ceiling(value: float, currency: str, shown: str) -> None:
    ceiling = PRICE_CEILINGS.get(currency, DEFAULT_PRICE_CEILING)
    if value > ceiling:
        raise _RowError(
            f"price {shown} {_show(currency)} is above the {ceiling:g} {_show(currency)} ceiling"
        )


def _day(text: str, earliest: date, latest: date) -> date:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise _RowError(f"date {_quote(text)} is not an ISO 8601 date") from None
    if day < earliest:
        raise _RowError(f"date {_show(text)} is before {earliest.isoformat()}")
    if day > latest:
        raise _RowError(f"date {_show(text)} is in the future")
    return day


def _price(text: str, currency: str) -> float:
    if not _DECIMAL.fullmatch(text):
        if text.lstrip("+-").lower() in {"inf", "infinity", "nan"}:
            raise _RowError(f"price {_quote(text)} is not a finite number")
        raise _RowError(f"price {_quote(text)} is not a number")
    value = float(text)
    if not math.isfinite(value):
        raise _RowError(f"price {_show(text)} is not a finite number")
    if value < 0:
        raise _RowError(f"price {_show(text)} is negative")
    _check_ceiling(value, currency, _show(text))
    return value + 0.0  # "-0" parses as -0.0, which would show as a negative price


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "null" if value is None else type(value).__name__


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, RuntimeError):
        return "symlink loop"
    return "invalid path"


def _size(limit: int) -> str:
    if limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    return f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} bytes"


def _show(text: str, limit: int = 40) -> str:
    """``text`` cut for a reason; only for text already checked for control characters."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quote(text: str, limit: int = 40) -> str:
    """``text`` as a quoted, escaped Python literal, cut for a reason."""
    return repr(_show(text, limit))


# Checks other edges share (marketplace sync parses the same things out of API pages). Each
# raises ValueError with the reason a row would be rejected for.


def parse_attributes(raw: Any) -> tuple[Attribute, ...]:
    """Traits in ERC-721 form (``[{"trait_type", "value"}]``), checked like tokens.jsonl's."""
    if isinstance(raw, list):
        # A JSON integer read by json.loads (not _JSON) is an int; a bool stays a bool.
        raw = [
            {**item, "value": str(item["value"])}
            if isinstance(item, dict) and type(item.get("value")) is int
            else item
            for item in raw
        ]
    try:
        return _attributes(raw)
    except _RowError as exc:
        raise ValueError(str(exc)) from None


def checked_text(raw: dict[str, Any], key: str, limit: int) -> str | None:
    """``raw[key]`` as text within ``limit`` characters and free of control characters."""
    try:
        return _json_text(raw, key, limit)
    except _RowError as exc:
        raise ValueError(str(exc)) from None


def check_sale(sale: Sale, chain: str, latest: datetime) -> None:
    """Refuse a sale ingest would refuse: bad token id, impossible time, absurd price, or
    fields too long for the database."""
    try:
        _check_token_id(sale.token_id)
        for name in ("currency", "tx", "seller", "buyer"):
            value = getattr(sale, name) or ""
            if _CONTROL.search(value):
                raise _RowError(f"{name} has control characters")
            if len(value) > _SALE_LENGTHS[name]:
                raise _RowError(f"{name} is longer than {_SALE_LENGTHS[name]} characters")
        _check_moment(sale.timestamp, chain, latest, sale.timestamp.isoformat())
        if not math.isfinite(sale.price) or sale.price <= 0:
            raise _RowError("the price is not a positive number")
        _check_ceiling(sale.price, sale.currency, f"{sale.price:g}")
    except _RowError as exc:
        raise ValueError(str(exc)) from None
