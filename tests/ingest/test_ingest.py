"""ingest: counts, idempotence, updates, and bad rows reported by file and line, then skipped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.app import Engine
from core.errors import DatasetError
from core.imaging.workers import DecoderPool
from core.ingest.service import IngestReport
from core.storage import schema
from tests.datasets import PUNKS_WITH_SALES, make_settings, moonbirds, punks, sale_rows
from tests.engines import engine_for


@pytest.fixture
def engine(tmp_path: Path, database_url: str, decoder: DecoderPool) -> Iterator[Engine]:
    settings = make_settings(tmp_path, database_url=database_url)
    with engine_for(settings, decoder) as engine:
        yield engine


@pytest.fixture
def data_dir(engine: Engine) -> Path:
    return engine.settings.data_dir


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return punks(tmp_path / "punks", count=20)


def run(dataset: Path, engine: Engine) -> IngestReport:
    return engine.ingester.ingest(dataset, progress=False)


def dump(engine: Engine) -> list[tuple[str, list[Any]]]:
    """Every row of every table, in key order: equal dumps mean nothing changed."""
    tables = []
    with engine.storage.database.reading() as conn:
        for table in schema.metadata.sorted_tables:
            keys = list(table.primary_key.columns)
            rows = conn.execute(select(table).order_by(*keys)).all()
            tables.append((table.name, [tuple(row) for row in rows]))
    return tables


def counts(engine: Engine) -> dict[str, dict[str, int]]:
    """Per tracked collection: how many tokens and sales are stored."""
    tokens = engine.storage.catalog.token_counts()
    sales = engine.storage.sales.counts()
    return {slug: {"tokens": n, "sales": sales.get(slug, 0)} for slug, n in tokens.items()}


def append_tokens(dataset: Path, *lines: str) -> None:
    with (dataset / "tokens.jsonl").open("a", encoding="utf-8") as handle:
        handle.writelines(line + "\n" for line in lines)


def append_sales(dataset: Path, *rows: str) -> None:
    with (dataset / "sales.csv").open("a", encoding="utf-8") as handle:
        handle.writelines(row + "\n" for row in rows)


def count_lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_first_run_counts(dataset: Path, engine: Engine, data_dir: Path) -> None:
    expected_sales = sum(len(sale_rows(dataset, t)) for t in PUNKS_WITH_SALES)

    report = run(dataset, engine)

    assert report.collection == "cryptopunks"
    assert report.collection_changed
    assert (report.tokens.read, report.tokens.added, report.tokens.rejected) == (20, 20, 0)
    assert (report.sales.read, report.sales.added, report.sales.rejected) == (9, 9, 0)
    assert expected_sales == 9
    assert report.rejected == ()
    assert counts(engine) == {"cryptopunks": {"tokens": 20, "sales": 9}}
    assert "tokens: 20 read, 20 added, 0 updated, 0 unchanged, 0 rejected" in report.summary()


def test_images_are_stored_by_content_hash(dataset: Path, engine: Engine, data_dir: Path) -> None:
    run(dataset, engine)

    token = engine.storage.catalog.token("cryptopunks", "7")
    stored = engine.images.path(token.image)
    assert stored.read_bytes() == (dataset / "images" / "7.png").read_bytes()
    assert stored.name == f"{token.image.sha256}.png"
    assert stored.is_relative_to(data_dir)
    assert not list(data_dir.rglob("*.part"))


def test_attributes_are_stored_in_order(dataset: Path, engine: Engine, data_dir: Path) -> None:
    run(dataset, engine)

    token = engine.storage.catalog.token("cryptopunks", "0")
    attributes = engine.storage.catalog.attributes([token.pk])[token.pk]
    assert [(a.trait_type, a.value) for a in attributes] == [
        ("type", "Human"),
        ("skin tone", "Medium"),
        ("accessory count", "3"),
        ("accessory", "Green Eye Shadow"),
        ("accessory", "Earring"),
        ("accessory", "Blonde Bob"),
    ]


def test_second_run_changes_nothing(dataset: Path, engine: Engine, data_dir: Path) -> None:
    run(dataset, engine)
    before = dump(engine)
    files_before = sorted(p.relative_to(data_dir) for p in data_dir.rglob("*.png"))

    report = run(dataset, engine)

    assert not report.collection_changed
    assert (report.tokens.added, report.tokens.updated, report.tokens.unchanged) == (0, 0, 20)
    assert (report.sales.added, report.sales.unchanged) == (0, 9)
    assert dump(engine) == before
    assert sorted(p.relative_to(data_dir) for p in data_dir.rglob("*.png")) == files_before


def test_changed_attribute_updates_one_token(
    dataset: Path, engine: Engine, data_dir: Path
) -> None:
    run(dataset, engine)
    lines = (dataset / "tokens.jsonl").read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[4])
    row["attributes"][0]["value"] = "Robot"
    lines[4] = json.dumps(row)
    (dataset / "tokens.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    report = run(dataset, engine)

    assert (report.tokens.added, report.tokens.updated, report.tokens.unchanged) == (0, 1, 19)
    token = engine.storage.catalog.token("cryptopunks", row["token_id"])
    assert engine.storage.catalog.attributes([token.pk])[token.pk][0].value == "Robot"
    assert counts(engine)["cryptopunks"]["tokens"] == 20


def test_changed_image_updates_the_token(dataset: Path, engine: Engine, data_dir: Path) -> None:
    run(dataset, engine)
    old = engine.storage.catalog.token("cryptopunks", "3")
    (dataset / "images" / "3.png").write_bytes((dataset / "images" / "4.png").read_bytes())

    report = run(dataset, engine)

    assert report.tokens.updated == 1
    new = engine.storage.catalog.token("cryptopunks", "3")
    assert new.image == engine.storage.catalog.token("cryptopunks", "4").image
    assert new.image != old.image


def test_collection_without_sales(tmp_path: Path, engine: Engine, data_dir: Path) -> None:
    dataset = moonbirds(tmp_path / "birds", count=8)
    assert not (dataset / "sales.csv").exists()

    report = run(dataset, engine)

    assert report.collection == "moonbirds"
    assert (report.tokens.read, report.tokens.added, report.tokens.rejected) == (8, 8, 0)
    assert (report.sales.read, report.sales.added, report.sales.rejected) == (0, 0, 0)
    assert counts(engine) == {"moonbirds": {"tokens": 8, "sales": 0}}


def test_two_collections_keep_apart(
    tmp_path: Path, dataset: Path, engine: Engine, data_dir: Path
) -> None:
    run(dataset, engine)
    run(moonbirds(tmp_path / "birds", count=5), engine)

    assert counts(engine) == {
        "cryptopunks": {"tokens": 20, "sales": 9},
        "moonbirds": {"tokens": 5, "sales": 0},
    }
    assert engine.storage.catalog.token_ids("moonbirds") == {"0", "1", "2", "3", "4"}


def test_bad_token_rows_are_reported_and_skipped(
    dataset: Path, engine: Engine, data_dir: Path
) -> None:
    (dataset / "images" / "notes.png").write_text("these are my notes", encoding="utf-8")
    (dataset.parent / "outside.png").write_bytes((dataset / "images" / "0.png").read_bytes())
    first = count_lines(dataset / "tokens.jsonl") + 1
    append_tokens(
        dataset,
        '{"token_id": "100", "image": "images/0.png"',  # cut short
        '{"image": "images/1.png"}',
        '{"token_id": "5", "image": "images/5.png"}',
        '{"token_id": "101", "image": "images/101.png"}',
        '{"token_id": "102", "image": "../outside.png"}',
        '{"token_id": "103", "image": "images/notes.png"}',
        "",
        '{"token_id": "104 x", "image": "images/2.png"}',
        '{"token_id": "105", "image": "images/2.png"}',
    )

    report = run(dataset, engine)

    reasons = {(r.file, r.line): r.reason for r in report.rejected}
    assert set(reasons) == {("tokens.jsonl", first + n) for n in (0, 1, 2, 3, 4, 5, 7)}
    assert reasons[("tokens.jsonl", first)] == "not valid JSON"
    assert "token_id" in reasons[("tokens.jsonl", first + 1)]
    assert reasons[("tokens.jsonl", first + 2)] == "token 5 appears twice"
    assert reasons[("tokens.jsonl", first + 3)] == "image images/101.png does not exist"
    assert reasons[("tokens.jsonl", first + 4)] == "image path leaves the dataset directory"
    assert "notes.png" in reasons[("tokens.jsonl", first + 5)]
    assert "not an image" in reasons[("tokens.jsonl", first + 5)]
    assert "token_id" in reasons[("tokens.jsonl", first + 7)]
    assert str(report.rejected[0]) == f"tokens.jsonl:{first}: not valid JSON"
    assert report.tokens.read == 20 + 8
    assert (report.tokens.added, report.tokens.rejected) == (21, 7)
    assert engine.storage.catalog.token_ids("cryptopunks") == {str(n) for n in range(20)} | {"105"}


def test_symlink_out_of_the_dataset_is_refused(
    tmp_path: Path, dataset: Path, engine: Engine, data_dir: Path
) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes((dataset / "images" / "0.png").read_bytes())
    (dataset / "images" / "link.png").symlink_to(secret)
    append_tokens(dataset, '{"token_id": "200", "image": "images/link.png"}')

    report = run(dataset, engine)

    assert [r.reason for r in report.rejected] == ["image path leaves the dataset directory"]
    assert "200" not in engine.storage.catalog.token_ids("cryptopunks")


def test_bad_sale_rows_are_reported_and_skipped(
    dataset: Path, engine: Engine, data_dir: Path
) -> None:
    first = count_lines(dataset / "sales.csv") + 1
    tx = "0x" + "ab" * 32
    append_sales(
        dataset,
        f"3,last tuesday,1.5,ETH,{tx}1,0xs,0xb",
        f"3,2019-01-02T03:04:05Z,-2,ETH,{tx}2,0xs,0xb",
        f"9999,2019-01-02T03:04:05Z,2,ETH,{tx}3,0xs,0xb",
        f"3,2019-01-02T03:04:05Z,abc,ETH,{tx}4,0xs,0xb",
        f"3,2019-01-02T03:04:05Z,2.5,eth,{tx.upper()}5,0xs,0xb",
    )

    report = run(dataset, engine)

    reasons = {(r.file, r.line): r.reason for r in report.rejected}
    assert set(reasons) == {("sales.csv", first + n) for n in range(4)}
    assert "timestamp" in reasons[("sales.csv", first)]
    assert "price" in reasons[("sales.csv", first + 1)]
    assert reasons[("sales.csv", first + 2)] == "token 9999 is not in the collection"
    assert "price" in reasons[("sales.csv", first + 3)]
    assert (report.sales.read, report.sales.added, report.sales.rejected) == (14, 10, 4)
    assert report.tokens.rejected == 0
    token = engine.storage.catalog.token("cryptopunks", "3")
    sale = engine.storage.sales.last_sales([token])[token.pk]
    assert (sale.price, sale.currency, sale.tx) == (2.5, "ETH", (tx + "5").lower())
    assert sale.timestamp == datetime(2019, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_sales_without_required_columns(dataset: Path, engine: Engine, data_dir: Path) -> None:
    (dataset / "sales.csv").write_text("token_id,price\n3,1.0\n", encoding="utf-8")

    report = run(dataset, engine)

    assert [str(r) for r in report.rejected] == [
        "sales.csv:1: missing columns: currency, timestamp, tx"
    ]
    assert report.tokens.added == 20
    assert counts(engine)["cryptopunks"]["sales"] == 0


def test_sale_time_with_an_offset_keeps_its_instant(
    dataset: Path, engine: Engine, data_dir: Path
) -> None:
    append_sales(dataset, "3,2019-01-02T12:00:00+09:00,1.0,ETH,0xfeed,0xs,0xb")

    run(dataset, engine)

    token = engine.storage.catalog.token("cryptopunks", "3")
    sale = engine.storage.sales.last_sales([token])[token.pk]
    assert sale.timestamp == datetime(2019, 1, 2, 3, 0, tzinfo=UTC)


def break_dataset(dataset: Path, how: str) -> None:
    collection = dataset / "collection.json"
    if how == "no-collection-json":
        collection.unlink()
    elif how == "broken-json":
        collection.write_text("{oops", encoding="utf-8")
    elif how == "bad-slug":
        collection.write_text('{"slug": "Bad Slug", "name": "x"}', encoding="utf-8")
    elif how == "no-tokens":
        (dataset / "tokens.jsonl").unlink()


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("no-collection-json", r"has no collection\.json"),
        ("broken-json", "is not readable JSON"),
        ("bad-slug", "slug"),
        ("no-tokens", r"has no tokens\.jsonl"),
    ],
)
def test_unusable_dataset_is_a_dataset_error(
    dataset: Path, engine: Engine, data_dir: Path, how: str, message: str
) -> None:
    break_dataset(dataset, how)

    with pytest.raises(DatasetError, match=message):
        run(dataset, engine)
    assert counts(engine) == {}


def test_missing_directory_is_a_dataset_error(
    tmp_path: Path, engine: Engine, data_dir: Path
) -> None:
    with pytest.raises(DatasetError, match=r"has no collection\.json"):
        run(tmp_path / "nowhere", engine)
