"""Parse the canonical dataset layout into records, reporting bad rows by file and line.

Layout (one directory per collection)::

    collection.json   {"slug", "name", "chain", "contract", "currency", "marketplace"}
    tokens.jsonl      one token a line: {"token_id", "image", "attributes": [{trait_type, value}]}
    images/           the files that "image" points at, relative to the directory
    sales.csv         optional: token_id,timestamp,price,currency,tx,seller,buyer
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import DatasetError
from core.models import Attribute, Collection, Sale

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")


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


class _CollectionFile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    slug: str
    name: str
    chain: str = "ethereum"
    contract: str | None = None
    currency: str = "ETH"
    marketplace: str = "opensea"

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.match(value):
            raise ValueError("must be lower-case letters, digits, '-' or '_'")
        return value


class _AttributeRow(BaseModel):
    model_config = ConfigDict(extra="ignore")

    trait_type: Annotated[str, Field(min_length=1, max_length=100)]
    value: str | int | float | bool


class _TokenRow(BaseModel):
    model_config = ConfigDict(extra="ignore")

    token_id: str | int
    image: Annotated[str, Field(min_length=1)]
    name: str | None = None
    attributes: list[_AttributeRow] = []

    @field_validator("token_id")
    @classmethod
    def _token_id(cls, value: str | int) -> str | int:
        text = str(value).strip()
        if not text or len(text) > 100 or any(ch.isspace() for ch in text):
            raise ValueError("must be a non-empty id without spaces")
        return text


class _SaleRow(BaseModel):
    model_config = ConfigDict(extra="ignore")

    token_id: Annotated[str, Field(min_length=1, max_length=100)]
    timestamp: datetime
    price: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    currency: Annotated[str, Field(min_length=1, max_length=16)]
    tx: Annotated[str, Field(min_length=1, max_length=100)]
    seller: str | None = None
    buyer: str | None = None


def read_collection(directory: Path) -> Collection:
    """Read collection.json; a dataset without a valid one cannot be ingested at all."""
    path = directory / "collection.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        parsed = _CollectionFile.model_validate(raw)
    except FileNotFoundError as exc:
        raise DatasetError(f"{directory} has no collection.json; is it a dataset?") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path} is not readable JSON.") from exc
    except ValidationError as exc:
        raise DatasetError(f"{path} is invalid: {_first_error(exc)}.") from exc
    return Collection(**parsed.model_dump())


def read_tokens(directory: Path) -> Iterator[TokenEntry | Rejected]:
    """Yield each token of tokens.jsonl, or a Rejected for a line that cannot be used."""
    path = directory / "tokens.jsonl"
    if not path.is_file():
        raise DatasetError(f"{directory} has no tokens.jsonl.")
    root = directory.resolve()
    seen: set[str] = set()
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                row = _TokenRow.model_validate(json.loads(text))
            except json.JSONDecodeError:
                yield Rejected(path.name, number, "not valid JSON")
                continue
            except ValidationError as exc:
                yield Rejected(path.name, number, _first_error(exc))
                continue
            token_id = str(row.token_id)
            if token_id in seen:
                yield Rejected(path.name, number, f"token {token_id} appears twice")
                continue
            image = (root / row.image).resolve()
            if not image.is_relative_to(root):
                yield Rejected(path.name, number, "image path leaves the dataset directory")
                continue
            if not image.is_file():
                yield Rejected(path.name, number, f"image {row.image} does not exist")
                continue
            seen.add(token_id)
            yield TokenEntry(
                line=number,
                token_id=token_id,
                name=row.name,
                image_file=image,
                attributes=tuple(
                    Attribute(a.trait_type, _attribute_value(a.value)) for a in row.attributes
                ),
            )


def read_sales(directory: Path, slug: str) -> Iterator[tuple[int, Sale] | Rejected]:
    """Yield (line, sale) for each row of sales.csv (if present), or a Rejected for a bad row."""
    path = directory / "sales.csv"
    if not path.is_file():
        return
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"token_id", "timestamp", "price", "currency", "tx"} - set(
            reader.fieldnames or ()
        )
        if missing:
            yield Rejected(path.name, 1, f"missing columns: {', '.join(sorted(missing))}")
            return
        for row in reader:
            number = reader.line_num
            try:
                parsed = _SaleRow.model_validate({k: v for k, v in row.items() if k})
            except ValidationError as exc:
                yield Rejected(path.name, number, _first_error(exc))
                continue
            moment = parsed.timestamp
            yield (
                number,
                Sale(
                    collection=slug,
                    token_id=parsed.token_id.strip(),
                    timestamp=moment.astimezone(UTC)
                    if moment.tzinfo
                    else moment.replace(tzinfo=UTC),
                    price=parsed.price,
                    currency=parsed.currency.strip().upper(),
                    tx=parsed.tx.strip().lower(),
                    seller=(parsed.seller or None),
                    buyer=(parsed.buyer or None),
                ),
            )


def _attribute_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg'].lower()}" if where else error["msg"].lower()
