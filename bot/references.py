"""Reading what people type after a command: options, token references and marketplace URLs.

/similar cryptopunks 7804 k=10 in=moonbirds
/similar https://example.com/ape.png
/value cryptopunks:7804
/value https://opensea.io/assets/ethereum/0xb47e…/7804
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import QueryError

SLUG = r"[a-z0-9][a-z0-9_-]{0,99}"
TOKEN = r"[A-Za-z0-9._-]{1,100}"
# "cryptopunks 7804", "cryptopunks:7804", "cryptopunks #7804"
TOKEN_REFERENCE = re.compile(rf"^(?P<slug>{SLUG})(?:\s+#?|:#?)(?P<token>{TOKEN})$", re.I)
# opensea.io/assets/<chain>/<contract>/<id>, the older /assets/<contract>/<id>, and the
# newer /item/<chain>/<contract>/<id>.
OPENSEA_URL = re.compile(
    r"^https?://(?:www\.|testnets\.)?opensea\.io/(?:assets|item)/"
    r"(?:(?P<chain>[a-z0-9_-]+)/)?(?P<contract>0x[0-9a-fA-F]{40}|[1-9A-HJ-NP-Za-km-z]{32,44})"
    rf"(?:/(?P<token>{TOKEN}))?/?(?:[?#].*)?$",
    re.I,
)
# magiceden.io/item-details/<mint> (Solana) and /item-details/<chain>/<contract>/<id>.
MAGICEDEN_URL = re.compile(
    r"^https?://(?:www\.)?magiceden\.(?:io|us)/item-details/"
    r"(?:(?P<chain>[a-z0-9_-]+)/(?P<contract>0x[0-9a-fA-F]{40})/(?P<token>[0-9]{1,80})"
    r"|(?P<mint>[1-9A-HJ-NP-Za-km-z]{32,44}))/?(?:[?#].*)?$",
    re.I,
)
OPTION = re.compile(r"^(?P<key>k|top|in|collection)=(?P<value>\S+)$", re.I)
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


@dataclass(frozen=True)
class Options:
    """``k=N`` / ``top=N`` and ``in=SLUG`` / ``collection=SLUG`` pulled out of a command."""

    rest: str
    k: int | None = None
    collection: str | None = None


def parse_options(text: str, max_k: int) -> Options:
    """Split ``text`` into its options and the rest, in any order."""
    k: int | None = None
    collection: str | None = None
    rest: list[str] = []
    for word in text.split():
        match = OPTION.match(word)
        if match is None:
            rest.append(word)
            continue
        key, value = match["key"].lower(), match["value"]
        if key in ("k", "top"):
            if not value.isdigit() or not 1 <= int(value) <= max_k:
                raise QueryError(f"k must be a whole number from 1 to {max_k}.")
            k = int(value)
        else:
            if not re.fullmatch(SLUG, value.lower()):
                raise QueryError(f"'{value}' is not a collection name.")
            collection = value.lower()
    return Options(" ".join(rest), k, collection)


def parse_reference(text: str) -> Reference | None:
    """A token reference or a marketplace token URL, or ``None`` when ``text`` is neither."""
    text = text.strip()
    if match := TOKEN_REFERENCE.match(text):
        return TokenRef(match["slug"].lower(), match["token"])
    if match := OPENSEA_URL.match(text):
        chain = match["chain"].lower() if match["chain"] else None
        if match["token"] is None:
            # OpenSea's Solana pages name the mint where other chains name the contract.
            return MintRef(match["contract"])
        return ContractRef(chain, match["contract"].lower(), match["token"])
    if match := MAGICEDEN_URL.match(text):
        if match["mint"]:
            return MintRef(match["mint"])
        return ContractRef(match["chain"].lower(), match["contract"].lower(), match["token"])
    return None


def is_url(text: str) -> bool:
    return text.strip().lower().startswith(URL_SCHEMES)
