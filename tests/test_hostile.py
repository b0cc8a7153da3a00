"""Hostile input cannot take the engine down: every case gets one clear sentence, in time,
and the process (and its image workers) goes on serving."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from core.errors import ImageError, UnsafeImage
from core.imaging.decode import ImageLimits
from core.imaging.prepare import PrepareSpec
from core.imaging.workers import DecoderPool, WorkerLimits
from tests.cli_runner import Cli, make_cli
from tests.datasets import ROOT
from tests.hostile import ANSWER_WITHIN_S, CORPUS, Case, png_zip_bomb, slow_filters, write_corpus

SPEC = PrepareSpec(ImageLimits(), canonical_size=32, preview_side=64)


@pytest.fixture(scope="module")
def pool() -> Iterator[DecoderPool]:
    """Workers with the shipped limits (config.yaml defaults)."""
    pool = DecoderPool(WorkerLimits())
    pool.warm_up()
    yield pool
    pool.close()


def good_png(cli: Cli) -> bytes:
    return (cli.dataset / "images" / "0.png").read_bytes()


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
async def test_each_case_is_one_clear_sentence_in_time(pool: DecoderPool, case: Case) -> None:
    started = time.monotonic()
    with pytest.raises(ImageError) as refused:
        await pool.prepare(case.make(), SPEC)
    took = time.monotonic() - started

    message = str(refused.value)
    assert case.answer in message
    assert message.endswith(".") and "\n" not in message and len(message) < 160
    assert took < ANSWER_WITHIN_S
    # The pool goes on serving.
    assert (await pool.prepare(tiny_png(), SPEC)).canonical is not None


def tiny_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(out, "PNG")
    return out.getvalue()


async def test_a_runaway_image_holds_one_worker_not_the_engine(pool: DecoderPool) -> None:
    # Submitted first, the runaway takes a worker before any of the small ones.
    runaway = asyncio.create_task(pool.prepare(slow_filters(), SPEC))
    await asyncio.sleep(0)
    started = time.monotonic()
    answered = [await pool.prepare(tiny_png(), SPEC) for _ in range(5)]
    others_took = time.monotonic() - started

    with pytest.raises(UnsafeImage, match="could not be read safely"):
        await runaway
    assert all(item.canonical is not None for item in answered)
    # Other requests were served by the other worker meanwhile, not queued behind it.
    assert others_took < 3.0


async def test_a_worker_out_of_memory_is_replaced() -> None:
    # 500 MB of address space is about 200 MB over an idle worker: a 41-megapixel decode
    # does not fit. (Lower the pixel cap's guard so the decoder really tries.)
    small = DecoderPool(WorkerLimits(workers=1, memory_bytes=500 << 20, timeout_s=30))
    spec = PrepareSpec(ImageLimits(max_pixels=10**9), canonical_size=32)
    try:
        with pytest.raises(UnsafeImage, match="could not be read safely"):
            await small.prepare(png_zip_bomb(), spec)
        assert (await small.prepare(tiny_png(), SPEC)).canonical is not None
    finally:
        small.close()


async def test_a_cancelled_request_stops_its_worker(pool: DecoderPool) -> None:
    task = asyncio.create_task(pool.prepare(slow_filters(), SPEC))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert (await pool.prepare(tiny_png(), SPEC)).canonical is not None


# Through the CLI -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    cli = make_cli(tmp_path_factory.mktemp("hostile-cli"))
    for command in (("ingest", str(cli.dataset)), ("index",)):
        result = cli.run(*command)
        assert result.returncode == 0, result.stderr
    return cli


def test_the_cli_answers_every_hostile_query_and_runs_the_rest(cli: Cli, tmp_path: Path) -> None:
    files = write_corpus(tmp_path / "corpus")
    good = tmp_path / "good.png"
    good.write_bytes(good_png(cli))
    sparse = tmp_path / "six-gigabytes.png"
    with sparse.open("wb") as handle:
        handle.truncate(6 << 30)  # sparse: costs no disk, but stat says 6 GB
    long_name = "x" * 300 + ".png"
    queries = [str(path) for _, path in files] + [
        str(sparse),
        str(tmp_path / long_name),
        "cryptopunks\n:1",
        str(good),
    ]

    started = time.monotonic()
    result = cli.run("similar", *queries, "--json", "--k", "2")
    took = time.monotonic() - started

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["query"] for line in lines] == queries
    for (case, _), line in zip(files, lines, strict=False):
        assert case.answer in line["error"], case.name
    assert "6 GB" in lines[len(files)]["error"] and "20 MB" in lines[len(files)]["error"]
    assert "is not an image file" in lines[len(files) + 1]["error"]
    assert "is not an image file" in lines[len(files) + 2]["error"]
    assert lines[-1]["matches"][0]["token_id"] == "0"  # the good query still ran
    # Python, TensorFlow and the model start once; then every case within its own bound.
    assert took < 30 + ANSWER_WITHIN_S * len(queries) / 4


# Through the console ---------------------------------------------------------------------


def test_the_console_answers_every_hostile_picture_and_keeps_going(
    cli: Cli, tmp_path: Path
) -> None:
    files = write_corpus(tmp_path / "corpus")
    good = tmp_path / "good.png"
    good.write_bytes(good_png(cli))
    lines = [f"/similar {path}" for _, path in files] + [f"/similar {good} k=1", "/quit"]
    # A developer's chat tokens must not start front ends in the console run.
    env = {
        k: v for k, v in cli.env.items() if k not in ("TELEGRAM_BOT_TOKEN", "DISCORD_BOT_TOKEN")
    }

    result = subprocess.run(
        [sys.executable, "-m", "bot", "console"],
        input="\n".join(lines) + "\n",
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30 + ANSWER_WITHIN_S * len(lines),
    )

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stdout.splitlines() if "error: " in line]
    assert len(errors) == len(files)
    for (case, _), line in zip(files, errors, strict=True):
        assert case.answer in line, case.name
    assert "1 look-alike" in result.stdout and "cryptopunks #0" in result.stdout
    assert result.stdout.rstrip().endswith("bye")


def test_in_a_batch_only_the_image_at_fault_is_blamed(pool: DecoderPool) -> None:
    # Small images share a worker task; the runaway kills that task, and the batch is
    # retried one image at a time so its neighbours still come back.
    blobs = [tiny_png(), slow_filters(), tiny_png(), b"not an image at all", tiny_png()]

    results = pool.prepare_many(blobs, SPEC)

    assert [type(item).__name__ for item in results] == [
        "PreparedImage",
        "UnsafeImage",
        "PreparedImage",
        "NotAnImage",
        "PreparedImage",
    ]
