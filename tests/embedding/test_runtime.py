"""Choosing the embedding runtime: INT8 where it may run and passes its check, Keras otherwise."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.app import make_embedder
from core.config import Settings
from core.embedding import runtime
from core.embedding.embedder import Embedder
from core.embedding.int8 import Int8Embedder, convert, model_dir, stored_quality
from core.embedding.runtime import choose_embedder
from core.embedding.vgg16 import VGG16Embedder
from core.imaging.workers import DecoderPool
from core.storage.files import atomic_dir
from tests.datasets import make_settings, punks
from tests.engines import engine_for

SHARED = Path(__file__).resolve().parents[3] / "shared"
WEIGHTS = SHARED / "models" / "vgg16_imagenet_notop.weights.h5"
TOKENS = 120


def _settings(tmp_path: Path, **embedding: object) -> Settings:
    weights = str(WEIGHTS) if WEIGHTS.is_file() else "none"
    base = {"weights": weights, "input_size": 32, "batch_size": 16, "calibration_images": 100}
    return make_settings(tmp_path, embedding={**base, **embedding})


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, decoder: DecoderPool) -> Iterator[Path]:
    """120 punks ingested once: the images calibration reads."""
    root = tmp_path_factory.mktemp("runtime")
    with engine_for(_settings(root), decoder) as engine:
        engine.ingester.ingest(punks(root / "punks", TOKENS), progress=False)
    yield root


def _choose(
    library: Path, decoder: DecoderPool, probe: str | None = None, **embedding: object
) -> tuple[Settings, VGG16Embedder, Embedder]:
    """Choose as the engine does over the library, with the probe saying ``probe`` (None:
    INT8 can run here)."""
    settings = _settings(library, **embedding)
    reference = make_embedder(settings)
    with engine_for(settings, decoder) as engine:
        chosen = choose_embedder(
            settings,
            reference,
            engine.storage,
            engine.images,
            decoder,
            probe=lambda: probe,
        )
    return settings, reference, chosen


def test_keras_is_used_when_configured_or_when_int8_cannot_run(
    library: Path, decoder: DecoderPool, caplog: pytest.LogCaptureFixture
) -> None:
    _, reference, chosen = _choose(library, decoder, runtime="keras")
    assert chosen is reference
    with caplog.at_level(logging.INFO):
        _, reference, chosen = _choose(library, decoder, probe="OpenVINO is not installed")
    assert chosen is reference
    assert "embedding with Keras float32: OpenVINO is not installed" in caplog.text


@pytest.mark.real_weights
def test_int8_is_converted_once_checked_and_close_to_keras(
    library: Path, decoder: DecoderPool
) -> None:
    if not WEIGHTS.is_file():
        pytest.skip("the real VGG16 weights are not in ../shared/models")
    settings, reference, chosen = _choose(library, decoder)
    assert isinstance(chosen, Int8Embedder)
    directory = model_dir(settings.data_dir, reference)
    quality = stored_quality(directory)
    assert quality is not None and quality.images == 64
    # The key names the converted files: a model converted again never shares vectors.
    assert re.fullmatch(r"[0-9a-f]{10}", quality.fingerprint)
    assert chosen.key == f"{reference.key}-ov-int8-v1-{quality.fingerprint}"
    assert chosen.dim == reference.dim
    assert quality.min_cosine >= 0.995 and quality.neighbours_kept >= 0.9
    stamp = (directory / "trunk.bin").stat().st_mtime_ns

    # A second start uses the cached model; different settings get a model of their own.
    _, _, again = _choose(library, decoder)
    assert (directory / "trunk.bin").stat().st_mtime_ns == stamp
    _, other_reference, _ = _choose(library, decoder, input_size=64)
    assert model_dir(settings.data_dir, other_reference) != directory

    views = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    from_int8, from_keras = again.embed_batch(views), reference.embed_batch(views)
    assert from_int8.shape == from_keras.shape
    np.testing.assert_allclose(np.linalg.norm(from_int8, axis=1), 1.0, rtol=1e-5)
    assert float(np.min(np.sum(from_int8 * from_keras, axis=1))) > 0.98


@pytest.mark.real_weights
def test_vectors_that_fail_the_quality_check_fall_back_to_keras(
    tmp_path: Path, library: Path, decoder: DecoderPool, caplog: pytest.LogCaptureFixture
) -> None:
    if not WEIGHTS.is_file():
        pytest.skip("the real VGG16 weights are not in ../shared/models")
    with caplog.at_level(logging.INFO):
        settings, reference, chosen = _choose(library, decoder, int8_min_cosine=1.0,
                                              int8_min_neighbours=1.0, input_size=48)  # fmt: skip
    assert chosen is reference
    assert "failed the quality check" in caplog.text
    # The check is recorded: the next start does not convert again to fail again.
    assert stored_quality(model_dir(settings.data_dir, reference)) is not None


def test_too_few_images_to_calibrate_keep_keras(
    tmp_path: Path, decoder: DecoderPool, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path)
    with engine_for(settings, decoder) as engine, caplog.at_level(logging.INFO):
        engine.ingester.ingest(punks(tmp_path / "punks", 5), progress=False)
        reference = make_embedder(settings)
        chosen = choose_embedder(
            settings, reference, engine.storage, engine.images, decoder, probe=lambda: None
        )
    assert chosen is reference
    # Half of calibration_images (100), and never fewer than the 64 held out to check it + 1.
    assert "calibration needs 65 images and the engine holds 5" in caplog.text


def test_a_conversion_that_dies_leaves_no_half_written_model(tmp_path: Path) -> None:
    target = tmp_path / "models" / "m"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "trunk.xml").write_text("<half/>")
        raise RuntimeError("killed mid-write")
    assert not target.exists()
    assert list((tmp_path / "models").iterdir()) == []
    assert stored_quality(target) is None  # so the next start converts again


def test_a_conversion_that_fails_leaves_the_command_on_keras(
    tmp_path: Path, library: Path, decoder: DecoderPool, caplog: pytest.LogCaptureFixture
) -> None:
    # A data directory where the models folder cannot be made (a file stands in its way).
    settings = _settings(tmp_path, weights="none", input_size=40)
    with engine_for(settings, decoder) as engine:
        engine.ingester.ingest(punks(tmp_path / "punks", TOKENS), progress=False)
    (settings.data_dir / "models").write_text("not a folder")
    reference = make_embedder(settings)
    with engine_for(settings, decoder) as engine, caplog.at_level(logging.INFO):
        chosen = choose_embedder(
            settings, reference, engine.storage, engine.images, decoder, probe=lambda: None
        )
    assert chosen is reference
    assert "the INT8 conversion failed" in caplog.text


def test_a_conversion_made_before_fingerprints_keeps_its_key(tmp_path: Path) -> None:
    """quality.json without a fingerprint (an earlier version's conversion) still counts,
    under the key its vectors were stored with; a malformed fingerprint does not."""
    directory = tmp_path / "m"
    directory.mkdir()
    legacy = {"images": 64, "min_cosine": 0.999, "mean_cosine": 0.9995, "neighbours_kept": 0.99}
    (directory / "quality.json").write_text(json.dumps(legacy))
    reference = make_embedder(_settings(tmp_path, weights="none"))

    quality = stored_quality(directory)

    assert quality is not None and quality.fingerprint == ""
    assert Int8Embedder(reference, directory, quality.fingerprint).key == (
        f"{reference.key}-ov-int8-v1"
    )
    (directory / "quality.json").write_text(json.dumps({**legacy, "fingerprint": "../x"}))
    assert stored_quality(directory) is None


def test_a_failed_conversion_is_not_retried_at_every_start(
    tmp_path: Path,
    library: Path,
    decoder: DecoderPool,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tries: list[int] = []

    def failing_convert(*args: object) -> None:
        tries.append(1)
        raise RuntimeError("the converter ran out of memory")

    monkeypatch.setattr(runtime, "convert", failing_convert)
    settings, reference, chosen = _choose(library, decoder, weights="none", input_size=56)
    assert chosen is reference and len(tries) == 1
    marker = model_dir(settings.data_dir, reference).with_name(
        model_dir(settings.data_dir, reference).name + ".failed"
    )
    assert "ran out of memory" in marker.read_text()

    with caplog.at_level(logging.INFO):
        _, _, again = _choose(library, decoder, weights="none", input_size=56)
    assert again is not None and len(tries) == 1  # not tried again so soon
    assert "it is tried again after that" in caplog.text and "ran out of memory" in caplog.text

    day_ago = time.time() - runtime.RETRY_FAILED_S - 60
    os.utime(marker, (day_ago, day_ago))
    _choose(library, decoder, weights="none", input_size=56)
    assert len(tries) == 2


@pytest.mark.real_weights
def test_the_same_conversion_gets_the_same_fingerprint(
    tmp_path: Path, library: Path, decoder: DecoderPool
) -> None:
    """The key must not depend on which process converted: OpenVINO renumbers the nodes in
    its .xml on every conversion, so only the weights are digested."""
    if not WEIGHTS.is_file():
        pytest.skip("the real VGG16 weights are not in ../shared/models")
    settings = _settings(library, input_size=32)
    reference = make_embedder(settings)
    with engine_for(settings, decoder) as engine:
        views = runtime.calibration_views(
            settings, engine.storage, engine.images, decoder, reference.input_size
        )

    first = convert(reference, views, tmp_path / "first")
    second = convert(reference, views, tmp_path / "second")

    assert first.fingerprint and first.fingerprint == second.fingerprint
