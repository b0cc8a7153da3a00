"""Small datasets in the canonical layout, cut from the real collections in ../shared/data."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import yaml

from core.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
PUNKS = SHARED_DATA / "cryptopunks"
MOONBIRDS = SHARED_DATA / "moonbirds"

# Punks 0, 1 and 14 have sales (3 each) among the first twenty.
PUNKS_WITH_SALES = ("0", "1", "14")


def copy_collection(source: Path, target: Path, token_ids: Iterable[str]) -> Path:
    """Copy ``token_ids`` of ``source`` (token lines, images, their sales) into ``target``."""
    wanted = [str(token_id) for token_id in token_ids]
    (target / "images").mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "collection.json", target / "collection.json")
    rows = {}
    with (source / "tokens.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            if row["token_id"] in wanted:
                rows[row["token_id"]] = line.rstrip("\n")
    missing = set(wanted) - set(rows)
    assert not missing, f"tokens {sorted(missing)} are not in {source}"
    for token_id in wanted:
        image = json.loads(rows[token_id])["image"]
        shutil.copy(source / image, target / image)
    (target / "tokens.jsonl").write_text(
        "".join(rows[token_id] + "\n" for token_id in wanted), encoding="utf-8"
    )
    sales = source / "sales.csv"
    if sales.is_file():
        with sales.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            kept = [row for row in reader if row[0] in wanted]
        with (target / "sales.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(kept)
    return target


def punks(target: Path, count: int = 20) -> Path:
    """The first ``count`` CryptoPunks, with their sales."""
    return copy_collection(PUNKS, target, (str(n) for n in range(count)))


def moonbirds(target: Path, count: int = 10) -> Path:
    """The first ``count`` Moonbirds (a collection without sales.csv)."""
    return copy_collection(MOONBIRDS, target, (str(n) for n in range(count)))


def sale_rows(directory: Path, token_id: str) -> list[dict[str, str]]:
    """The rows of ``directory``/sales.csv for one token."""
    with (directory / "sales.csv").open(encoding="utf-8", newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["token_id"] == token_id]


def write_config(path: Path, overrides: dict[str, object]) -> Path:
    """A config file holding just ``overrides``; everything else keeps its default."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(overrides), encoding="utf-8")
    return path


def make_settings(tmp_path: Path, **sections: object) -> Settings:
    """Settings for a test: data under ``tmp_path``/data, small fast embedding batches."""
    overrides: dict[str, object] = {
        "embedding": {"input_size": 32, "batch_size": 4, "decode_workers": 2}
    }
    overrides.update(sections)
    config = write_config(tmp_path / "config.yaml", overrides)
    return load_settings(config, env={"NFTLENS_DATA_DIR": str(tmp_path / "data")})
