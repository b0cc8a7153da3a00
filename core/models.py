"""Typed, frozen records that everything past the edges works with."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


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
class Token:
    """A token as ingested: where its image lives and what traits it has."""

    collection: str
    token_id: str
    image: str
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
    image: str | None
    last_sale: Sale | None = None


@dataclass(frozen=True)
class SimilarResult:
    """The best matches for one query, best first."""

    query: str
    matches: tuple[Match, ...] = field(default_factory=tuple)
