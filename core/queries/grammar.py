"""The one grammar for naming a token: references, marketplace item URLs, and plain URLs.

    cryptopunks:7804   cryptopunks 7804   CryptoPunks #7804   cryptopunks:#7804
    https://opensea.io/assets/ethereum/0xb47e…/7804   (also /item/<chain>/…, /assets/<contract>/…)
    https://magiceden.io/item-details/<solana mint>   (and …/<chain>/<contract>/<id>)

Slugs are case-insensitive (stored lower-case); token ids keep their case. Every pattern is a
full match: a slug with a trailing newline is not a slug.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import QueryError, shown
from core.models import SLUG_PATTERN, TOKEN_ID_PATTERN, is_slug

# "cryptopunks 7804", "cryptopunks:7804", "cryptopunks #7804", "cryptopunks:#7804"
_TOKEN_REFERENCE = re.compile(
    rf"(?P<slug>{SLUG_PATTERN})(?:[ \t]+#?|:#?)(?P<token>{TOKEN_ID_PATTERN})", re.I
)
_BASE58 = r"[1-9A-HJ-NP-Za-km-z]{32,44}"
# opensea.io/assets/<chain>/<contract>/<id>, the older /assets/<contract>/<id>, and the newer
# /item/<chain>/<contract>/<id>; on Solana the mint stands where other chains put a contract.
_OPENSEA_URL = re.compile(
    r"https?://(?:www\.|testnets\.)?opensea\.io/(?:assets|item)/"
    rf"(?:(?P<chain>[a-z0-9_-]{{1,40}})/)?(?P<contract>0x[0-9a-fA-F]{{40}}|{_BASE58})"
    rf"(?:/(?P<token>{TOKEN_ID_PATTERN}))?/?(?:[?#]\S*)?",
    re.I,
)
# magiceden.io/item-details/<mint> (Solana) and /item-details/<chain>/<contract>/<id>.
_MAGICEDEN_URL = re.compile(
    r"https?://(?:www\.)?magiceden\.(?:io|us)/item-details/"
    r"(?:(?P<chain>[a-z0-9_-]{1,40})/(?P<contract>0x[0-9a-fA-F]{40})/(?P<token>[0-9]{1,80})"
    rf"|(?P<mint>{_BASE58}))/?(?:[?#]\S*)?",
    re.I,
)
URL_SCHEMES = ("http://", "https://", "ipfs://")


@dataclass(frozen=True)
class TokenRef:
    """A token named by collection slug and token id."""

    collection: str
    token_id: str


@dataclass(frozen=True)
class ContractRef:
    """A token named by contract address (and chain) and token id, as in a marketplace URL."""

    chain: str | None
    contract: str
    token_id: str


@dataclass(frozen=True)
class MintRef:
    """A Solana token named by its mint address; its collection is found by lookup."""

    mint: str


Reference = TokenRef | ContractRef | MintRef


def parse_reference(text: str) -> Reference | None:
    """A token reference or a marketplace item URL, or ``None`` when ``text`` is neither."""
    text = text.strip()
    if match := _TOKEN_REFERENCE.fullmatch(text):
        return TokenRef(match["slug"].lower(), match["token"])
    if match := _OPENSEA_URL.fullmatch(text):
        chain = match["chain"].lower() if match["chain"] else None
        if match["token"] is None:
            return MintRef(match["contract"])
        return ContractRef(chain, match["contract"].lower(), match["token"])
    if match := _MAGICEDEN_URL.fullmatch(text):
        if match["mint"]:
            return MintRef(match["mint"])
        return ContractRef(match["chain"].lower(), match["contract"].lower(), match["token"])
    return None


def is_url(text: str) -> bool:
    """Whether ``text`` is an http(s) or ipfs:// URL (marketplace item URLs included)."""
    return text.strip().lower().startswith(URL_SCHEMES)


def parse_slug(text: str) -> str:
    """A collection slug as people type it (any case), or ``QueryError``."""
    slug = text.strip().lower()
    if not is_slug(slug):
        raise QueryError(f"'{shown(text)}' is not a collection name.")
    return slug


# opensea.io/collection/<slug>; magiceden.io/marketplace/<symbol> (Solana collection pages).
_OPENSEA_COLLECTION = re.compile(
    rf"https?://(?:www\.)?opensea\.io/collection/(?P<slug>{SLUG_PATTERN})/?(?:[?#]\S*)?", re.I
)
_MAGICEDEN_COLLECTION = re.compile(
    rf"https?://(?:www\.)?magiceden\.(?:io|us)/marketplace/(?P<slug>{SLUG_PATTERN})/?"
    r"(?:[?#]\S*)?",
    re.I,
)
MARKETPLACE_NAMES = {"opensea": "opensea", "magiceden": "magiceden", "me": "magiceden"}


@dataclass(frozen=True)
class CollectionTarget:
    """A collection to follow: its slug (Magic Eden: symbol), and where, if said."""

    slug: str
    marketplace: str | None


def parse_collection_target(text: str) -> CollectionTarget:
    """An OpenSea or Magic Eden collection URL, or ``SLUG [opensea|magiceden]``."""
    text = text.strip()
    if match := _OPENSEA_COLLECTION.fullmatch(text):
        return CollectionTarget(match["slug"].lower(), "opensea")
    if match := _MAGICEDEN_COLLECTION.fullmatch(text):
        return CollectionTarget(match["slug"].lower(), "magiceden")
    words = text.split()
    if len(words) == 2 and words[1].lower() in MARKETPLACE_NAMES:
        return CollectionTarget(parse_slug(words[0]), MARKETPLACE_NAMES[words[1].lower()])
    if len(words) == 1 and not is_url(words[0]):
        return CollectionTarget(parse_slug(words[0]), None)
    raise QueryError(
        "Give an OpenSea or Magic Eden collection URL, or a collection slug (optionally "
        "followed by 'opensea' or 'magiceden')."
    )
