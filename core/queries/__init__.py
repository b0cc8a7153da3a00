"""What people ask about: one grammar for token references, URLs and files, and its resolver."""

from core.queries.grammar import (
    CollectionTarget,
    ContractRef,
    MintRef,
    Reference,
    TokenRef,
    is_url,
    parse_collection_target,
    parse_reference,
    parse_slug,
)
from core.queries.resolve import ImageSubject, QueryResolver, Subject, TokenSubject

__all__ = [
    "CollectionTarget",
    "ContractRef",
    "ImageSubject",
    "MintRef",
    "QueryResolver",
    "Reference",
    "Subject",
    "TokenRef",
    "TokenSubject",
    "is_url",
    "parse_collection_target",
    "parse_reference",
    "parse_slug",
]
