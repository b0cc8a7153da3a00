"""``python -m core demo``: the whole flow on the generated sample, end to end."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PIL import Image

from core.render.collage import COLUMNS, LABEL_HEIGHT, PADDING, TILE
from tests.cli_runner import Cli, make_cli

# Enough critters for the price model: 48 give 288 sales, 227 of them before the demo's cut.
COUNT = 48


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return make_cli(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def demo(cli: Cli) -> subprocess.CompletedProcess[str]:
    return cli.run("demo", "--count", str(COUNT))


def test_demo_runs_every_step(demo: subprocess.CompletedProcess[str]) -> None:
    assert demo.returncode == 0, demo.stderr
    assert "Traceback" not in demo.stderr
    out = demo.stdout
    assert f"1. generated {COUNT} sample tokens" in out
    assert f"tokens: {COUNT} read, {COUNT} added" in out
    assert f"3. index: embedded {COUNT} images" in out
    assert f"{COUNT} vectors (exact)" in out
    assert "4. similar:" in out and "5. collage" in out
    assert "6. price model: lens-critters: model " in out
    assert "trained on 227 sales before 2024-09-01" in out
    assert "7. value: lens-critters 5 at " in out


def test_demo_price_model_beats_the_collection_median(
    demo: subprocess.CompletedProcess[str],
) -> None:
    # The sample prices carry trait premiums, so a model that learnt them must beat the
    # median of recent sales, which knows nothing about the token.
    assert demo.returncode == 0, demo.stderr
    mdape = {}
    for line in demo.stdout.splitlines():
        method, _, numbers = line.strip().partition("  ")
        if method in ("model", "median of last 20 sales"):
            mdape[method] = float(numbers.split()[0])
    model_mdape, median_mdape = mdape["model"], mdape["median of last 20 sales"]
    assert model_mdape < median_mdape


def test_small_demo_says_why_there_is_no_model(tmp_path: Path) -> None:
    small = make_cli(tmp_path).run("demo", "--count", "6")
    assert small.returncode == 0, small.stderr
    assert "5. collage" in small.stdout
    assert "6. price model: A price model for 'lens-critters' needs at least 200 sales" in (
        small.stdout
    )
    assert "7. value" not in small.stdout


def test_demo_writes_a_collage(cli: Cli, demo: subprocess.CompletedProcess[str]) -> None:
    collage = Path(cli.env["NFTLENS_DATA_DIR"]) / "demo" / "collage.png"
    assert demo.returncode == 0, demo.stderr

    with Image.open(collage) as image:
        image.verify()
    with Image.open(collage) as image:
        # The screenshot query plus its five matches: one row of six tiles.
        tiles = 1 + 5
        assert image.format == "PNG"
        assert tiles <= COLUMNS
        assert image.size == (
            PADDING + tiles * (TILE + PADDING),
            PADDING + TILE + LABEL_HEIGHT + PADDING,
        )


def test_demo_keeps_its_own_database(cli: Cli, demo: subprocess.CompletedProcess[str]) -> None:
    data = Path(cli.env["NFTLENS_DATA_DIR"])
    assert demo.returncode == 0, demo.stderr

    assert (data / "demo" / "nftlens.sqlite").is_file()
    assert not (data / "nftlens.sqlite").exists()
