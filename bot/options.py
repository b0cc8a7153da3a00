"""Chat command options: ``k=N`` / ``top=N`` and ``in=SLUG`` / ``collection=SLUG``, anywhere.

/similar cryptopunks 7804 k=10 in=moonbirds

What is left after the options is the query, which the engine's one grammar reads
(``core.queries``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import QueryError
from core.queries import parse_slug

OPTION = re.compile(r"(?P<key>k|top|in|collection)=(?P<value>\S+)", re.I)


@dataclass(frozen=True)
class Options:
    """The options pulled out of a command, and the rest of its text."""

    rest: str
    k: int | None = None
    collection: str | None = None


def parse_options(text: str, max_k: int) -> Options:
    """Split ``text`` into its options and the rest, in any order."""
    k: int | None = None
    collection: str | None = None
    rest: list[str] = []
    for word in text.split():
        match = OPTION.fullmatch(word)
        if match is None:
            rest.append(word)
            continue
        key, value = match["key"].lower(), match["value"]
        if key in ("k", "top"):
            if not value.isdigit() or not 1 <= int(value) <= max_k:
                raise QueryError(f"k must be a whole number from 1 to {max_k}.")
            k = int(value)
        else:
            collection = parse_slug(value)
    return Options(" ".join(rest), k, collection)
