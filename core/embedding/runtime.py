"""Choosing the embedding runtime: Keras float32, or INT8 on the CPU where it is faster and
its vectors pass the quality check (see ``core/embedding/int8.py``)."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from filelock import FileLock

from core.config import Settings
from core.embedding.embedder import Embedder
from core.embedding.int8 import (
    HELD_OUT,
    Int8Embedder,
    Quality,
    convert,
    model_dir,
    stored_quality,
    unavailable_reason,
)
from core.embedding.vgg16 import VGG16Embedder
from core.errors import LensError
from core.imaging.decode import ImageLimits
from core.imaging.prepare import PrepareSpec
from core.imaging.workers import ImageDecoder
from core.storage import Storage
from core.storage.files import atomic_write
from core.storage.images import ImageStore

log = logging.getLogger(__name__)

# A failed conversion costs each start a minute; it is tried again after this long.
RETRY_FAILED_S = 24 * 3600

Probe = Callable[[], str | None]


def choose_embedder(
    settings: Settings,
    reference: VGG16Embedder,
    storage: Storage,
    images: ImageStore,
    decoder: ImageDecoder,
    *,
    probe: Probe = unavailable_reason,
    embeds: bool = True,
) -> Embedder:
    """The configured runtime's embedder; falls back to ``reference`` (Keras) with a log
    line saying why. The first INT8 choice of a command that ``embeds`` converts and
    calibrates (blocking, once) and compiles the model to check it; other commands only
    need the key, so they take what an earlier conversion left, without either."""
    cfg = settings.embedding
    if cfg.runtime == "keras":
        return reference
    directory = model_dir(settings.data_dir, reference)
    if not embeds and stored_quality(directory) is None:
        return reference
    level = logging.WARNING if cfg.runtime == "openvino-int8" else logging.INFO
    reason = probe()
    if reason is not None:
        log.log(level, "embedding with Keras float32: %s", reason)
        return reference
    quality = stored_quality(directory)
    if quality is None:
        # One conversion at a time per data directory: a bot and an index started together
        # would otherwise both convert, and the loser's key would live only in its process.
        lock = FileLock(f"{directory}.lock")
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
            lock.acquire()
        except OSError as exc:
            log.warning("embedding with Keras float32: the INT8 conversion failed (%s)", exc)
            return reference
        try:
            quality = stored_quality(directory) or _converted(
                settings, reference, storage, images, decoder, directory, level
            )
        finally:
            lock.release()
        if quality is None:
            return reference
    if not quality.passes(cfg.int8_min_cosine, cfg.int8_min_neighbours):
        log.log(
            level,
            "embedding with Keras float32: INT8 vectors failed the quality check "
            "(min cosine %.4f, neighbours kept %.3f)",
            quality.min_cosine,
            quality.neighbours_kept,
        )
        return reference
    chosen = Int8Embedder(reference, directory, quality.fingerprint)
    if not embeds:
        return chosen
    try:
        chosen.warm_up()  # compile now: a damaged cache must fail here, not on a query
    except Exception as exc:
        log.warning(
            "embedding with Keras float32: the cached INT8 model cannot be loaded (%s); it "
            "will be converted again",
            exc,
        )
        shutil.rmtree(directory, ignore_errors=True)
        return reference
    _say_if_switching(storage, reference.key, chosen.key)
    return chosen


def _converted(
    settings: Settings,
    reference: VGG16Embedder,
    storage: Storage,
    images: ImageStore,
    decoder: ImageDecoder,
    directory: Path,
    level: int,
) -> Quality | None:
    """Convert and calibrate now, or say why not (``None``: stay on Keras)."""
    failed = _recent_failure(directory)
    if failed is not None:
        log.log(
            level,
            "embedding with Keras float32: the INT8 conversion failed less than %d hours "
            "ago (%s); it is tried again after that, or at once if %s is deleted",
            RETRY_FAILED_S // 3600,
            failed,
            _failure_marker(directory),
        )
        return None
    # Calibration needs images beyond the held-out ones that check it.
    needed = max(settings.embedding.calibration_images // 2, HELD_OUT + 1)
    # Too few tokens to succeed: say so without decoding any (nor starting the workers).
    held = sum(storage.catalog.token_counts().values())
    if held >= needed:
        views = calibration_views(settings, storage, images, decoder, reference.input_size)
        held = len(views)  # those that decode
    if held < needed:
        log.log(
            level,
            "embedding with Keras float32: INT8 calibration needs %d images and the "
            "engine holds %d so far",
            needed,
            held,
        )
        return None
    log.info("converting VGG16 to INT8, calibrated on %d of the engine's images", len(views))
    try:
        quality = convert(reference, views, directory)
    except Exception as exc:  # a converter failure must not stop the command: use Keras
        log.warning(
            "embedding with Keras float32: the INT8 conversion failed (%s: %s)",
            type(exc).__name__,
            exc,
            exc_info=log.isEnabledFor(logging.DEBUG),
        )
        _remember_failure(directory, f"{type(exc).__name__}: {exc}")
        return None
    _failure_marker(directory).unlink(missing_ok=True)
    return quality


def calibration_views(
    settings: Settings, storage: Storage, images: ImageStore, decoder: ImageDecoder, size: int
) -> np.ndarray:
    """Canonical views of up to ``calibration_images`` stored token images, spread evenly
    over the catalog (the same ones each time)."""
    pks = storage.catalog.token_pks()
    wanted = settings.embedding.calibration_images
    if len(pks) > wanted:
        pks = pks[np.linspace(0, len(pks) - 1, wanted).astype(int)]
    tokens = storage.catalog.tokens_by_pk(pks.tolist())
    blobs = []
    for token in tokens.values():
        try:
            blobs.append(images.read(token.image, settings.images.max_bytes))
        except LensError:
            continue
    spec = PrepareSpec(
        ImageLimits(settings.images.max_bytes, settings.images.max_pixels),
        canonical_size=size,
        background=settings.images.background_rgb,
    )
    views = [
        item.canonical
        for item in decoder.prepare_many(blobs, spec)
        if not isinstance(item, LensError) and item.canonical is not None
    ]
    return np.stack(views) if views else np.empty((0, size, size, 3), dtype=np.uint8)


def _failure_marker(directory: Path) -> Path:
    return directory.with_name(f"{directory.name}.failed")


def _recent_failure(directory: Path) -> str | None:
    """What the last conversion's failure said, if it failed within RETRY_FAILED_S."""
    marker = _failure_marker(directory)
    try:
        age = time.time() - marker.stat().st_mtime
        said = marker.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if age >= RETRY_FAILED_S:
        return None
    return said.strip()[:300] or "no reason recorded"


def _remember_failure(directory: Path, reason: str) -> None:
    """Best effort: a folder that cannot be written to is often why it failed."""
    try:
        atomic_write(_failure_marker(directory), reason.encode("utf-8"), durable=False)
    except OSError:
        log.debug("could not record the failed conversion", exc_info=True)


def _say_if_switching(storage: Storage, old: str, new: str) -> None:
    before = sum(storage.vectors.counts(old).values())
    after = sum(storage.vectors.counts(new).values())
    if before > after:
        log.warning(
            "embedding runtime is now openvino-int8 (model %s): its vectors are not "
            "comparable with Keras float32 ones, so index will embed %d tokens again",
            new,
            before - after,
        )
