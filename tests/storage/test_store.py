"""Store: idempotent upserts, latest sales, and which tokens still need a vector."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from core.errors import UnknownCollection, UnknownToken
from core.models import Attribute, Collection, Sale
from core.storage import Store
from core.storage.store import TokenWrite

PUNKS = Collection("cryptopunks", "CryptoPunks", contract="0xb47e")
BIRDS = Collection("moonbirds", "Moonbirds")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path / 'lens.sqlite'}")
    yield store
    store.close()


def write(token_id: str, sha: str = "a", *traits: tuple[str, str]) -> TokenWrite:
    return TokenWrite(
        token_id=token_id,
        name=None,
        image_path=f"images/{sha}.png",
        image_sha256=sha * 64,
        attributes=tuple(Attribute(t, v) for t, v in traits),
    )


def sale(slug: str, token_id: str, when: datetime, price: float, tx: str) -> Sale:
    return Sale(slug, token_id, when, price, "ETH", tx)


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2020, 1, day, hour, tzinfo=UTC)


def test_upsert_collection_is_idempotent(store: Store) -> None:
    pk, changed = store.upsert_collection(PUNKS)

    assert changed
    assert store.upsert_collection(PUNKS) == (pk, False)
    assert store.collections() == [PUNKS]


def test_upsert_collection_updates_in_place(store: Store) -> None:
    pk, _ = store.upsert_collection(PUNKS)
    renamed = Collection("cryptopunks", "Larva Labs Punks", contract="0xb47e")

    assert store.upsert_collection(renamed) == (pk, True)
    assert store.collection("cryptopunks").name == "Larva Labs Punks"
    assert len(store.collections()) == 1


def test_unknown_collection_and_token(store: Store) -> None:
    pk, _ = store.upsert_collection(PUNKS)
    store.upsert_tokens(pk, [write("1")])

    with pytest.raises(UnknownCollection, match="'nope'"):
        store.collection("nope")
    with pytest.raises(UnknownCollection):
        store.token("nope", "1")
    with pytest.raises(UnknownToken, match="Token 2 is not in collection 'cryptopunks'"):
        store.token("cryptopunks", "2")
    assert store.token("cryptopunks", "1").token_id == "1"


def test_upsert_tokens_counts_and_replaces_attributes(store: Store) -> None:
    pk, _ = store.upsert_collection(PUNKS)
    first = store.upsert_tokens(pk, [write("1", "a", ("type", "Ape")), write("2")])

    second = store.upsert_tokens(
        pk, [write("1", "a", ("type", "Alien"), ("hat", "Cap")), write("2"), write("3")]
    )

    assert (first.added, first.updated, first.unchanged) == (2, 0, 0)
    assert (second.added, second.updated, second.unchanged) == (1, 1, 1)
    token = store.token("cryptopunks", "1")
    assert store.attributes([token.pk]) == {
        token.pk: (Attribute("type", "Alien"), Attribute("hat", "Cap"))
    }


def test_add_sales_is_idempotent_by_tx_and_token(store: Store) -> None:
    pk, _ = store.upsert_collection(PUNKS)
    store.upsert_tokens(pk, [write("1"), write("2")])
    # One transaction may sell two tokens; both are kept.
    sales = [
        sale("cryptopunks", "1", at(1), 1.0, "0xa"),
        sale("cryptopunks", "2", at(1), 1.0, "0xa"),
    ]

    first = store.add_sales(pk, sales)
    again = store.add_sales(pk, [*sales, sales[0]])

    assert (first.added, first.unchanged) == (2, 0)
    assert (again.added, again.unchanged) == (0, 3)
    assert store.counts() == {"cryptopunks": {"tokens": 2, "sales": 2}}


def test_last_sales_picks_the_latest(store: Store) -> None:
    punks, _ = store.upsert_collection(PUNKS)
    birds, _ = store.upsert_collection(BIRDS)
    store.upsert_tokens(punks, [write("1"), write("2")])
    store.upsert_tokens(birds, [write("1")])
    # Inserted out of time order, so the answer cannot come from insertion order.
    store.add_sales(
        punks,
        [
            sale("cryptopunks", "1", at(5), 5.0, "0x5"),
            sale("cryptopunks", "1", at(9), 9.0, "0x9"),
            sale("cryptopunks", "1", at(2), 2.0, "0x2"),
        ],
    )
    store.add_sales(birds, [sale("moonbirds", "1", at(20), 20.0, "0x20")])
    punk1, punk2 = store.token("cryptopunks", "1"), store.token("cryptopunks", "2")
    bird1 = store.token("moonbirds", "1")

    latest = store.last_sales([punk1, punk2, bird1])

    assert set(latest) == {punk1.pk, bird1.pk}
    assert (latest[punk1.pk].price, latest[punk1.pk].tx) == (9.0, "0x9")
    assert latest[punk1.pk].timestamp == at(9)
    assert latest[punk1.pk].collection == "cryptopunks"
    assert latest[bird1.pk].price == 20.0


def test_last_sales_orders_by_instant_across_offsets(store: Store) -> None:
    pk, _ = store.upsert_collection(PUNKS)
    store.upsert_tokens(pk, [write("1")])
    tokyo = timezone(timedelta(hours=9))
    earlier = datetime(2020, 1, 1, 5, 0, tzinfo=tokyo)  # 2019-12-31 20:00 UTC
    later = datetime(2019, 12, 31, 22, 0, tzinfo=UTC)
    sales = [
        sale("cryptopunks", "1", earlier, 1.0, "0xa"),
        sale("cryptopunks", "1", later, 2.0, "0xb"),
    ]
    store.add_sales(pk, sales)
    token = store.token("cryptopunks", "1")

    latest = store.last_sales([token])[token.pk]

    assert latest.tx == "0xb"
    assert latest.timestamp == later


def test_tokens_to_embed_follows_model_key_and_image(store: Store) -> None:
    pk, _ = store.upsert_collection(PUNKS)
    store.upsert_tokens(pk, [write("1", "a"), write("2", "b"), write("3", "c")])
    tokens = store.tokens_to_embed("model-a")
    assert [t.token_id for t in tokens] == ["1", "2", "3"]

    store.save_embeddings("model-a", tokens[:2], np.eye(2, 4, dtype=np.float32))

    assert [t.token_id for t in store.tokens_to_embed("model-a")] == ["3"]
    assert [t.token_id for t in store.tokens_to_embed("model-b")] == ["1", "2", "3"]
    keys, vectors = store.embeddings("model-a")
    assert keys.tolist() == [tokens[0].pk, tokens[1].pk]
    np.testing.assert_array_equal(vectors, np.eye(2, 4, dtype=np.float32))

    store.upsert_tokens(pk, [write("2", "d")])  # token 2's image changed

    assert [t.token_id for t in store.tokens_to_embed("model-a")] == ["2", "3"]
    assert store.embeddings("model-a")[0].tolist() == [tokens[0].pk]  # the stale vector is out


def test_save_embeddings_replaces_a_vector(store: Store) -> None:
    pk, _ = store.upsert_collection(PUNKS)
    store.upsert_tokens(pk, [write("1")])
    token = store.token("cryptopunks", "1")

    store.save_embeddings("m", [token], np.array([[1, 0, 0]], dtype=np.float32))
    store.save_embeddings("m", [token], np.array([[0, 1, 0]], dtype=np.float32))

    keys, vectors = store.embeddings("m")
    assert keys.tolist() == [token.pk]
    assert vectors.tolist() == [[0.0, 1.0, 0.0]]


def test_tokens_to_embed_for_one_collection(store: Store) -> None:
    punks, _ = store.upsert_collection(PUNKS)
    birds, _ = store.upsert_collection(BIRDS)
    store.upsert_tokens(punks, [write("1"), write("2")])
    store.upsert_tokens(birds, [write("7")])

    assert [t.collection for t in store.tokens_to_embed("m", "moonbirds")] == ["moonbirds"]
    assert len(store.tokens_to_embed("m")) == 3
    with pytest.raises(UnknownCollection):
        store.tokens_to_embed("m", "nope")


def test_token_pks_and_lookup_by_pk(store: Store) -> None:
    punks, _ = store.upsert_collection(PUNKS)
    birds, _ = store.upsert_collection(BIRDS)
    store.upsert_tokens(punks, [write("1"), write("2")])
    store.upsert_tokens(birds, [write("1")])

    bird_pks = store.token_pks("moonbirds")
    everything = store.token_pks()

    assert len(bird_pks) == 1 and len(everything) == 3
    assert store.tokens_by_pk(bird_pks.tolist())[int(bird_pks[0])].collection == "moonbirds"
    assert set(store.tokens_by_pk(everything.tolist())) == set(everything.tolist())
    with pytest.raises(UnknownCollection):
        store.token_pks("nope")
