"""Storage on SQLite and PostgreSQL: idempotent upserts, latest sales, vectors to compute."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from core.errors import UnknownCollection, UnknownToken
from core.models import Attribute, Collection, ImageRef, Sale
from core.storage import Storage, TokenWrite

PUNKS = Collection("cryptopunks", "CryptoPunks", contract="0xb47e")
BIRDS = Collection("moonbirds", "Moonbirds")


@pytest.fixture
def storage(database_url: str) -> Iterator[Storage]:
    storage = Storage.open(database_url)
    yield storage
    storage.close()


def write(token_id: str, sha: str = "a", *traits: tuple[str, str]) -> TokenWrite:
    return TokenWrite(
        token_id=token_id,
        name=None,
        image=ImageRef(sha * 64, ".png"),
        attributes=tuple(Attribute(t, v) for t, v in traits),
    )


def sale(slug: str, token_id: str, when: datetime, price: float, tx: str) -> Sale:
    return Sale(slug, token_id, when, price, "ETH", tx)


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2020, 1, day, hour, tzinfo=UTC)


def test_upsert_collection_is_idempotent(storage: Storage) -> None:
    pk, changed = storage.catalog.upsert_collection(PUNKS)

    assert changed
    assert storage.catalog.upsert_collection(PUNKS) == (pk, False)
    assert storage.catalog.collections() == [PUNKS]


def test_upsert_collection_updates_in_place(storage: Storage) -> None:
    pk, _ = storage.catalog.upsert_collection(PUNKS)
    renamed = Collection("cryptopunks", "Larva Labs Punks", contract="0xb47e")

    assert storage.catalog.upsert_collection(renamed) == (pk, True)
    assert storage.catalog.collection("cryptopunks").name == "Larva Labs Punks"
    assert len(storage.catalog.collections()) == 1


def test_unknown_collection_and_token(storage: Storage) -> None:
    pk, _ = storage.catalog.upsert_collection(PUNKS)
    storage.catalog.upsert_tokens(pk, [write("1")])

    with pytest.raises(UnknownCollection, match="'nope'"):
        storage.catalog.collection("nope")
    with pytest.raises(UnknownCollection):
        storage.catalog.token("nope", "1")
    with pytest.raises(UnknownToken, match="Token 2 is not in collection 'cryptopunks'"):
        storage.catalog.token("cryptopunks", "2")
    assert storage.catalog.token("cryptopunks", "1").token_id == "1"


def test_upsert_tokens_counts_and_replaces_attributes(storage: Storage) -> None:
    pk, _ = storage.catalog.upsert_collection(PUNKS)
    first = storage.catalog.upsert_tokens(pk, [write("1", "a", ("type", "Ape")), write("2")])

    second = storage.catalog.upsert_tokens(
        pk, [write("1", "a", ("type", "Alien"), ("hat", "Cap")), write("2"), write("3")]
    )

    assert (first.added, first.updated, first.unchanged) == (2, 0, 0)
    assert (second.added, second.updated, second.unchanged) == (1, 1, 1)
    token = storage.catalog.token("cryptopunks", "1")
    assert storage.catalog.attributes([token.pk]) == {
        token.pk: (Attribute("type", "Alien"), Attribute("hat", "Cap"))
    }


def test_add_sales_is_idempotent_by_tx_and_token(storage: Storage) -> None:
    pk, _ = storage.catalog.upsert_collection(PUNKS)
    storage.catalog.upsert_tokens(pk, [write("1"), write("2")])
    # One transaction may sell two tokens; both are kept.
    sales = [
        sale("cryptopunks", "1", at(1), 1.0, "0xa"),
        sale("cryptopunks", "2", at(1), 1.0, "0xa"),
    ]

    first = storage.sales.add(pk, sales)
    again = storage.sales.add(pk, [*sales, sales[0]])

    assert (first.added, first.unchanged) == (2, 0)
    assert (again.added, again.unchanged) == (0, 3)
    assert storage.catalog.token_counts() == {"cryptopunks": 2}
    assert storage.sales.counts() == {"cryptopunks": 2}


def test_last_sales_picks_the_latest(storage: Storage) -> None:
    punks, _ = storage.catalog.upsert_collection(PUNKS)
    birds, _ = storage.catalog.upsert_collection(BIRDS)
    storage.catalog.upsert_tokens(punks, [write("1"), write("2")])
    storage.catalog.upsert_tokens(birds, [write("1")])
    # Inserted out of time order, so the answer cannot come from insertion order.
    storage.sales.add(
        punks,
        [
            sale("cryptopunks", "1", at(5), 5.0, "0x5"),
            sale("cryptopunks", "1", at(9), 9.0, "0x9"),
            sale("cryptopunks", "1", at(2), 2.0, "0x2"),
        ],
    )
    storage.sales.add(birds, [sale("moonbirds", "1", at(20), 20.0, "0x20")])
    catalog = storage.catalog
    punk1, punk2 = catalog.token("cryptopunks", "1"), catalog.token("cryptopunks", "2")
    bird1 = catalog.token("moonbirds", "1")

    latest = storage.sales.last_sales([punk1, punk2, bird1])

    assert set(latest) == {punk1.pk, bird1.pk}
    assert (latest[punk1.pk].price, latest[punk1.pk].tx) == (9.0, "0x9")
    assert latest[punk1.pk].timestamp == at(9)
    assert latest[punk1.pk].collection == "cryptopunks"
    assert latest[bird1.pk].price == 20.0


def test_last_sales_orders_by_instant_across_offsets(storage: Storage) -> None:
    pk, _ = storage.catalog.upsert_collection(PUNKS)
    storage.catalog.upsert_tokens(pk, [write("1")])
    tokyo = timezone(timedelta(hours=9))
    earlier = datetime(2020, 1, 1, 5, 0, tzinfo=tokyo)  # 2019-12-31 20:00 UTC
    later = datetime(2019, 12, 31, 22, 0, tzinfo=UTC)
    sales = [
        sale("cryptopunks", "1", earlier, 1.0, "0xa"),
        sale("cryptopunks", "1", later, 2.0, "0xb"),
    ]
    storage.sales.add(pk, sales)
    token = storage.catalog.token("cryptopunks", "1")

    latest = storage.sales.last_sales([token])[token.pk]

    assert latest.tx == "0xb"
    assert latest.timestamp == later


def test_tokens_to_embed_follows_model_key_and_image(storage: Storage) -> None:
    pk, _ = storage.catalog.upsert_collection(PUNKS)
    storage.catalog.upsert_tokens(pk, [write("1", "a"), write("2", "b"), write("3", "c")])
    tokens = storage.vectors.tokens_to_embed("model-a")
    assert [t.token_id for t in tokens] == ["1", "2", "3"]

    storage.vectors.save("model-a", tokens[:2], np.eye(2, 4, dtype=np.float32))

    assert [t.token_id for t in storage.vectors.tokens_to_embed("model-a")] == ["3"]
    assert [t.token_id for t in storage.vectors.tokens_to_embed("model-b")] == ["1", "2", "3"]
    keys, vectors = storage.vectors.vectors("model-a")
    assert keys.tolist() == [tokens[0].pk, tokens[1].pk]
    np.testing.assert_array_equal(vectors, np.eye(2, 4, dtype=np.float32))

    storage.catalog.upsert_tokens(pk, [write("2", "d")])  # token 2's image changed

    assert [t.token_id for t in storage.vectors.tokens_to_embed("model-a")] == ["2", "3"]
    # The stale vector is out.
    assert storage.vectors.vectors("model-a")[0].tolist() == [tokens[0].pk]


def test_current_vectors_stream_in_key_order_batches_leaving_stale_ones_out(
    storage: Storage,
) -> None:
    pk, _ = storage.catalog.upsert_collection(PUNKS)
    storage.catalog.upsert_tokens(pk, [write(str(n), "abcdefg"[n]) for n in range(7)])
    tokens = storage.vectors.tokens_to_embed("m")
    storage.vectors.save("m", tokens, np.arange(7 * 3, dtype=np.float32).reshape(7, 3))
    storage.vectors.save("other", tokens[:2], np.ones((2, 3), np.float32))
    storage.catalog.upsert_tokens(pk, [write("4", "z")])  # its vector goes stale

    batches = list(storage.vectors.batches("m", size=2))

    want_keys, want_vectors = storage.vectors.vectors("m")
    assert [len(keys) for keys, _ in batches] == [2, 2, 2]
    np.testing.assert_array_equal(np.concatenate([k for k, _ in batches]), want_keys)
    np.testing.assert_array_equal(np.concatenate([v for _, v in batches]), want_vectors)
    assert storage.vectors.current_keys("m").tolist() == want_keys.tolist()
    assert tokens[4].pk not in want_keys.tolist() and len(want_keys) == 6
    assert list(storage.vectors.batches("nothing")) == []


def test_save_embeddings_replaces_a_vector(storage: Storage) -> None:
    pk, _ = storage.catalog.upsert_collection(PUNKS)
    storage.catalog.upsert_tokens(pk, [write("1")])
    token = storage.catalog.token("cryptopunks", "1")

    storage.vectors.save("m", [token], np.array([[1, 0, 0]], dtype=np.float32))
    storage.vectors.save("m", [token], np.array([[0, 1, 0]], dtype=np.float32))

    keys, vectors = storage.vectors.vectors("m")
    assert keys.tolist() == [token.pk]
    assert vectors.tolist() == [[0.0, 1.0, 0.0]]


def test_tokens_to_embed_for_one_collection(storage: Storage) -> None:
    punks, _ = storage.catalog.upsert_collection(PUNKS)
    birds, _ = storage.catalog.upsert_collection(BIRDS)
    storage.catalog.upsert_tokens(punks, [write("1"), write("2")])
    storage.catalog.upsert_tokens(birds, [write("7")])

    birds_only = storage.vectors.tokens_to_embed("m", "moonbirds")
    assert [t.collection for t in birds_only] == ["moonbirds"]
    assert len(storage.vectors.tokens_to_embed("m")) == 3
    with pytest.raises(UnknownCollection):
        storage.vectors.tokens_to_embed("m", "nope")


def test_token_pks_and_lookup_by_pk(storage: Storage) -> None:
    punks, _ = storage.catalog.upsert_collection(PUNKS)
    birds, _ = storage.catalog.upsert_collection(BIRDS)
    storage.catalog.upsert_tokens(punks, [write("1"), write("2")])
    storage.catalog.upsert_tokens(birds, [write("1")])

    bird_pks = storage.catalog.token_pks("moonbirds")
    everything = storage.catalog.token_pks()

    assert len(bird_pks) == 1 and len(everything) == 3
    found = storage.catalog.tokens_by_pk(bird_pks.tolist())
    assert found[int(bird_pks[0])].collection == "moonbirds"
    assert set(storage.catalog.tokens_by_pk(everything.tolist())) == set(everything.tolist())
    with pytest.raises(UnknownCollection):
        storage.catalog.token_pks("nope")
