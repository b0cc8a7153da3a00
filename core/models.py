"""Typed, frozen records that everything past the edges works with."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

# The one definition of what a collection slug and a token id may look like; the query
# grammar, ingest, sync and the chat front ends all check against these, with full matches
# (``re.fullmatch``: a trailing newline is not part of a valid slug).
SLUG_PATTERN = r"[a-z0-9][a-z0-9_-]{0,99}"
TOKEN_ID_PATTERN = r"[A-Za-z0-9._-]{1,100}"
_SLUG = re.compile(SLUG_PATTERN)
_TOKEN_ID = re.compile(TOKEN_ID_PATTERN)


def is_slug(text: str) -> bool:
    """Whether ``text`` is a valid collection slug: lower-case letters, digits, '-' and '_'."""
    return _SLUG.fullmatch(text) is not None


def is_token_id(text: str) -> bool:
    """Whether ``text`` is a valid token id: letters, digits, '.', '_' and '-', up to 100."""
    return _TOKEN_ID.fullmatch(text) is not None


@dataclass(frozen=True)
class Collection:
    """A tracked NFT collection."""

    slug: str
    name: str
    chain: str = "ethereum"
    contract: str | None = None
    currency: str = "ETH"
    marketplace: str = "opensea"


@dataclass(frozen=True)
class Attribute:
    """One ERC-721 style trait."""

    trait_type: str
    value: str


@dataclass(frozen=True)
class ImageRef:
    """A stored image, named by its content: the image store turns it back into bytes."""

    sha256: str
    suffix: str = ""


@dataclass(frozen=True)
class Token:
    """A token: its stored image and what traits it has."""

    collection: str
    token_id: str
    image: ImageRef
    attributes: tuple[Attribute, ...] = ()
    name: str | None = None


@dataclass(frozen=True)
class Sale:
    """One completed sale of one token."""

    collection: str
    token_id: str
    timestamp: datetime
    price: float
    currency: str
    tx: str
    seller: str | None = None
    buyer: str | None = None
    marketplace: str | None = None


@dataclass(frozen=True)
class Match:
    """One answer to ``similar``: a token and how alike it looks, in [0, 1]."""

    collection: str
    token_id: str
    score: float
    image: ImageRef | None
    last_sale: Sale | None = None


@dataclass(frozen=True)
class SimilarResult:
    """The best matches for one query, best first."""

    query: str
    matches: tuple[Match, ...] = field(default_factory=tuple)
    # A small PNG of what was asked about (the upload, the fetched image or the token's own
    # picture), drawn once by the image workers, for collages.
    preview: bytes | None = None


@dataclass(frozen=True)
class Picture:
    """A rendered PNG for people: its bytes, a file name and a one-line description."""

    data: bytes
    filename: str
    description: str = ""


@dataclass(frozen=True)
class Comparable:
    """A comparable sale behind an estimate: a token that looks alike, and its last sale."""

    collection: str
    token_id: str
    similarity: float
    price: float
    currency: str
    timestamp: datetime


@dataclass(frozen=True)
class PriceEstimate:
    """What a token was worth at ``at``: an estimate with an 80% interval, and why."""

    collection: str
    token_id: str
    at: datetime
    estimate: float
    low: float
    high: float
    currency: str
    # The collection level the premium is measured from (median of its last 50 sales).
    level: float
    reason: str
    model: str
    # The estimate in USD, where a rate for that day is known.
    usd: float | None = None
    usd_rate: float | None = None
    last_sale: Sale | None = None
    rarity_rank: int | None = None
    supply: int = 0
    comps: tuple[Comparable, ...] = ()
