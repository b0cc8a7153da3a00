"""The engine's one exception tree; every error a user can cause is a ``LensError``.

    LensError                     base: ``str(err)`` is one clear sentence for the user
    ├── ConfigError               config.yaml or environment is invalid
    ├── StorageError              the database cannot be opened or written
    ├── DatasetError              a dataset directory is unusable as a whole
    ├── InputError                the user's request is wrong; safe to show verbatim
    │   ├── QueryError            a query is neither a file, a URL nor SLUG:TOKEN_ID
    │   ├── UnknownCollection     no such collection is tracked
    │   ├── UnknownToken          no such token in a tracked collection
    │   ├── ImageError            bytes that cannot be used as an image
    │   │   ├── NotAnImage        not a picture format we read
    │   │   ├── BrokenImage       a known format, but truncated or corrupt
    │   │   ├── ImageTooLarge     over the byte or pixel caps (decompression bombs too)
    │   │   └── UnsafeImage       crashed, overran or exhausted its decoding worker
    │   └── FetchError            a URL could not be fetched
    │       └── UrlRefused        the URL points at a private, loopback or link-local address
    ├── ModelError                the embedding model cannot be built or its weights loaded
    ├── PostingError              a post could not be delivered to a chat or channel
    ├── MarketplaceError          a marketplace or price API could not be read
    │   ├── MarketplaceAuthError  it refused our API key (or asked for one)
    │   └── MalformedResponse     it kept answering with a page we cannot parse
    ├── IndexNotReady             there is no index yet (run ``python -m core index``)
    ├── IndexBusy                 another ``index`` run holds the index lock
    └── JobSkipped                a scheduled job had nothing it could do this time

Library and HTTP errors are translated once, where they cross into the engine, with
``raise X(...) from exc``; callers above that line only ever see this tree.
"""

from __future__ import annotations


class LensError(Exception):
    """Base of every engine error; the message is one sentence fit to show a user."""


class ConfigError(LensError):
    """The configuration file or an environment override is invalid."""


class StorageError(LensError):
    """The database cannot be opened, migrated or written."""


class DatasetError(LensError):
    """A dataset directory cannot be ingested at all (missing or unreadable collection.json)."""


class InputError(LensError):
    """The user's request is at fault; the message can be shown as it is."""


class QueryError(InputError):
    """A query is not an image file, an http(s)/ipfs URL or a SLUG:TOKEN_ID reference."""


class UnknownCollection(InputError):
    """The collection is not tracked."""


class UnknownToken(InputError):
    """The token is not in the tracked collection."""


class ImageError(InputError):
    """The bytes cannot be used as an image."""


class NotAnImage(ImageError):
    """The bytes are not in a picture format the engine reads."""


class BrokenImage(ImageError):
    """The picture format is known but the file is truncated or corrupt."""


class ImageTooLarge(ImageError):
    """The image is over the configured byte or pixel caps."""


class UnsafeImage(ImageError):
    """Decoding the image crashed its worker process, or ran past its time or memory cap."""


class FetchError(InputError):
    """A URL could not be fetched (bad status, timeout, too large, unreachable)."""


class UrlRefused(FetchError):
    """The URL resolves to an address the engine refuses to contact."""


class ModelError(LensError):
    """The embedding model cannot be built, or its weights cannot be loaded."""


class PostingError(LensError):
    """A post (text and pictures) could not be delivered to its chat or channel."""


class MarketplaceError(LensError):
    """OpenSea, Magic Eden or the price API failed after its retries, or refused a request."""


class MarketplaceAuthError(MarketplaceError):
    """The API refused the key (HTTP 401/403): the operator must set a valid one."""


class MalformedResponse(MarketplaceError):
    """A page stayed truncated or malformed through every retry; nothing past it is stored."""


class IndexNotReady(LensError):
    """No similarity index exists yet for the configured model."""


class IndexBusy(LensError):
    """Another ``index`` run (the CLI or the bot's scheduled job) holds the index lock."""


class JobSkipped(LensError):
    """A scheduled job could not do its work this time and will try again at its next run."""


def shown(text: str, limit: int = 60) -> str:
    """Text a user gave, as it may appear inside one of these sentences: printable, one line,
    and short."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in text.strip())
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"
