"""``python -m core train`` and ``value`` as users and benchmarks run them: JSON per the
contract, an error line per bad query or row, and exit status 1 when any failed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.datasets import ROOT, write_config
from tests.pricing.synthetic import CUT, SLUG, write_synthetic

CONTRACT = {"collection", "token_id", "at", "estimate", "low", "high", "currency", "usd",
            "last_sale", "comps", "reason"}  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> object:
    root = tmp_path_factory.mktemp("pricing-cli")
    config = write_config(root / "config.yaml", {"valuation": {"min_sales": 200}})
    env = {k: v for k, v in os.environ.items() if not k.startswith("NFTLENS_")}
    env.update(
        NFTLENS_CONFIG=str(config),
        NFTLENS_DATA_DIR=str(root / "data"),
        NFTLENS_VGG16_WEIGHTS="none",
    )

    def core(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "core", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    ingested = core("ingest", str(write_synthetic(root / "synthetic")))
    assert ingested.returncode == 0, ingested.stderr
    assert "daily floors: 540 read, 540 added" in ingested.stdout
    core.root = root  # type: ignore[attr-defined]
    return core


def test_train_prints_the_evaluation_as_json(run: object) -> None:
    trained = run("train", "--until", f"{CUT:%Y-%m-%d}", "--json")  # type: ignore[operator]

    assert trained.returncode == 0, trained.stderr
    (report,) = [json.loads(line) for line in trained.stdout.splitlines()]
    assert report["collection"] == SLUG
    assert report["trained_until"] == f"{CUT:%Y-%m-%d}T00:00:00Z"
    methods = [score["method"] for score in report["scores"]]
    assert methods[0] == "model" and "without traits" in methods
    model = report["scores"][0]
    assert set(model) >= {"mdape", "mean_abs_log_ratio", "within_25pct", "interval_coverage",
                          "top_decile_mdape", "bottom_decile_mdape"}  # fmt: skip


def test_value_json_follows_the_contract(run: object) -> None:
    answer = run("value", SLUG, "5", "--at", "2022-06-01", "--json")  # type: ignore[operator]

    assert answer.returncode == 0, answer.stderr
    (line,) = [json.loads(text) for text in answer.stdout.splitlines()]
    assert set(line) >= CONTRACT
    assert line["at"] == "2022-06-01T00:00:00Z" and line["currency"] == "ETH"
    assert line["low"] <= line["estimate"] <= line["high"]
    assert line["usd"] == pytest.approx(line["estimate"] * line["usd_rate"], rel=1e-3)


def test_a_batch_answers_every_row_and_reports_bad_ones(run: object, tmp_path: Path) -> None:
    rows = [f"{SLUG},{n},2022-06-0{1 + n % 5}" for n in range(8)]
    rows += [f"{SLUG},9999,2022-06-01", "nope,1,2022-06-01", f"{SLUG},1,yesterday",
             f"{SLUG},1,2021-02-01"]  # fmt: skip
    batch = tmp_path / "rows.csv"
    batch.write_text("collection,token_id,at\n" + "\n".join(rows) + "\n", encoding="utf-8")

    answer = run("value", "--batch", str(batch), "--json")  # type: ignore[operator]

    assert answer.returncode == 1
    assert "Traceback" not in answer.stderr
    lines = [json.loads(text) for text in answer.stdout.splitlines()]
    assert len(lines) == len(rows)
    assert all(set(line) >= CONTRACT for line in lines[:8])
    errors = [line["error"] for line in lines[8:]]
    assert [line["query"] for line in lines[8:]] == rows[8:]
    assert "Token 9999 is not in collection" in errors[0]
    assert "'nope'" in errors[1]
    assert "is not an ISO 8601 date or time" in errors[2]
    assert "python -m core train --until 2021-02-01" in errors[3]


def test_value_of_an_unknown_token_is_one_error_line(run: object) -> None:
    answer = run("value", SLUG, "9999", "--json")  # type: ignore[operator]
    plain = run("value", SLUG, "9999")  # type: ignore[operator]

    assert answer.returncode == 1
    assert json.loads(answer.stdout)["error"].startswith("Token 9999 is not in collection")
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    assert plain.stderr.strip().splitlines()[-1].startswith("error: Token 9999")
