"""``python -m core demo``: the whole flow on the generated sample, end to end."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PIL import Image

from core.render.collage import COLUMNS, LABEL_HEIGHT, PADDING, TILE
from tests.cli_runner import Cli, make_cli

COUNT = 6


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
