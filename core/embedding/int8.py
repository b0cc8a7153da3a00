"""VGG16 in INT8 on the CPU (OpenVINO), converted and calibrated by the engine itself.

Most operators run on a small CPU server, where TensorFlow float32 is at the CPU's ceiling and
INT8 on its integer dot-product instructions (VNNI, AMX) is several times faster. The Keras
model is split in two: the convolutional trunk is converted to OpenVINO and quantized with
NNCF, calibrated on the engine's own canonical images with plain min/max ranges (NNCF's
default range estimate clipped outliers and cost neighbours); the head (grid pooling, the
fixed projection, the colour layout) stays float32. Vectors from this runtime get their own
model key, so they are never compared with float32 ones.

The converted models live under ``<data_dir>/models/<key>/``, keyed by everything the
float32 model's key holds (weights, layer, input size, pooling, precision ...), written to a
temporary folder and renamed into place (``atomic_dir``), so a killed conversion leaves
nothing half written, and housekeeping sweeps what it left. ``quality.json`` beside them
records how the INT8 vectors compared with float32 on held-out images (the runtime is used
only when that check passed) and a digest of the model files, which ends the model key.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import re
import sys
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.embedding.embedder import l2_normalise
from core.embedding.vgg16 import VGG16Embedder, preprocess
from core.errors import ModelError
from core.storage.files import atomic_dir

log = logging.getLogger(__name__)

RUNTIME_TAG = "ov-int8-v1"
# Calibration images; the last HELD_OUT of them only check the result.
HELD_OUT = 64
NEIGHBOURS = 10
BATCH = 32
# The weights files: the same conversion writes the same bytes, while the .xml files carry
# node names OpenVINO numbers afresh on every conversion.
WEIGHT_FILES = ("trunk.bin", "head.bin")


@dataclass(frozen=True)
class Quality:
    """How INT8 vectors compare with float32 ones on images calibration did not see."""

    images: int
    min_cosine: float
    mean_cosine: float
    # Share of each image's 10 nearest neighbours (among the held-out images) kept.
    neighbours_kept: float
    # A digest of the converted model's weights; part of the model key, so a model converted
    # again (other calibration images, another NNCF) never shares vectors with this one.
    # Empty for conversions made before it was recorded (their key stays as it was).
    fingerprint: str = ""

    def passes(self, min_cosine: float, min_neighbours: float) -> bool:
        return self.min_cosine >= min_cosine and self.neighbours_kept >= min_neighbours


def unavailable_reason() -> str | None:
    """Why the INT8 runtime cannot run here, or None when it can."""
    # NNCF is only needed to convert; finding it is enough here (importing it costs 0.4 s).
    try:
        import openvino as ov
    except ImportError:
        return "OpenVINO and NNCF are not installed"
    if importlib.util.find_spec("nncf") is None:
        return "OpenVINO and NNCF are not installed"
    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if "INT8" not in capabilities or not _integer_dot_products():
        return "this CPU has no fast integer instructions (VNNI or AMX)"
    # Without importing TensorFlow (seconds): the NVIDIA driver lists its GPUs here.
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir() and any(gpus.iterdir()):
        return "a GPU is present (Keras runs there)"
    return None


def _integer_dot_products() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True  # not Linux: trust OpenVINO's capability list
    return any(flag in flags for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


def model_dir(data_dir: Path, reference: VGG16Embedder) -> Path:
    return data_dir / "models" / f"{reference.key}-{RUNTIME_TAG}"


def stored_quality(directory: Path) -> Quality | None:
    """The quality recorded with a finished conversion, or None if there is none."""
    try:
        raw = json.loads((directory / "quality.json").read_text(encoding="utf-8"))
        quality = Quality(**raw)
    except (OSError, ValueError, TypeError):
        return None
    numbers = (quality.images, quality.min_cosine, quality.mean_cosine, quality.neighbours_kept)
    if not all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers):
        return None
    if not isinstance(quality.fingerprint, str) or not re.fullmatch(
        r"[0-9a-f]{0,64}", quality.fingerprint
    ):
        return None
    return quality


def convert(reference: VGG16Embedder, images: np.ndarray, directory: Path) -> Quality:
    """Convert and calibrate on ``images`` (canonical uint8 views), check on the held-out
    ones, and write the models and their quality to ``directory`` atomically."""
    import nncf
    import openvino as ov

    if len(images) <= HELD_OUT:
        raise ModelError(f"INT8 calibration needs more than {HELD_OUT} images.")
    calibration, held_out = images[:-HELD_OUT], images[-HELD_OUT:]
    trunk, head = reference.parts()
    trunk_ov = _to_openvino(ov, trunk, [trunk.input])
    head_ov = _to_openvino(ov, head, head.inputs)
    dataset = nncf.Dataset([preprocess(calibration[i : i + 1]) for i in range(len(calibration))])
    # NNCF draws progress bars on stdout, which `--json` keeps for results: send them to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        quantized = _quantize(nncf, trunk_ov, dataset, len(calibration))
    with atomic_dir(directory) as tmp:
        ov.save_model(quantized, str(tmp / "trunk.xml"))
        ov.save_model(head_ov, str(tmp / "head.xml"))
        runner = _Runner(ov, tmp)
        quality = _quality(reference.embed_batch(held_out), runner.embed(held_out))
        quality = replace(quality, fingerprint=_fingerprint(tmp))
        (tmp / "quality.json").write_text(json.dumps(asdict(quality)), encoding="utf-8")
    # Another process may have put its conversion in place first: that one is what stays.
    return stored_quality(directory) or quality


def _fingerprint(directory: Path) -> str:
    """A short digest of the model's weights (quantization ranges included)."""
    digest = hashlib.sha256()
    for name in WEIGHT_FILES:
        digest.update(name.encode())
        with (directory / name).open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:10]


def _quantize(nncf: Any, model: Any, dataset: Any, size: int) -> Any:
    """Post-training INT8 with plain min/max ranges: NNCF's default estimate clips the
    outliers that VGG16's later layers depend on (cosine to float32 fell to 0.99)."""
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    return nncf.quantize(
        model,
        dataset,
        subset_size=size,
        advanced_parameters=AdvancedQuantizationParameters(
            activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX,
            weights_range_estimator_params=RangeEstimatorParametersSet.MINMAX,
        ),
    )


class Int8Embedder:
    """The ``Embedder`` over a converted model directory (see ``convert``)."""

    def __init__(self, reference: VGG16Embedder, directory: Path, fingerprint: str = "") -> None:
        self._reference = reference
        self._directory = directory
        self._fingerprint = fingerprint
        self._runner: _Runner | None = None
        self._lock = threading.Lock()

    @property
    def key(self) -> str:
        key = f"{self._reference.key}-{RUNTIME_TAG}"
        return f"{key}-{self._fingerprint}" if self._fingerprint else key

    @property
    def dim(self) -> int:
        return self._reference.dim

    @property
    def input_size(self) -> int:
        return self._reference.input_size

    @property
    def device(self) -> str:
        return "openvino:CPU int8"

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        return self._ensure().embed(np.asarray(images))

    def warm_up(self) -> None:
        self._ensure()

    def _ensure(self) -> _Runner:
        with self._lock:
            if self._runner is None:
                import openvino as ov

                self._runner = _Runner(ov, self._directory)
            return self._runner


class _Runner:
    """The two compiled models: INT8 trunk, float32 head."""

    def __init__(self, ov: Any, directory: Path) -> None:
        core = ov.Core()
        self._trunk = core.compile_model(str(directory / "trunk.xml"), "CPU")
        self._head = core.compile_model(str(directory / "head.xml"), "CPU")
        self._lock = threading.Lock()

    def embed(self, images: np.ndarray) -> np.ndarray:
        out = []
        with self._lock:
            for start in range(0, len(images), BATCH):
                batch = preprocess(images[start : start + BATCH])
                features = self._trunk(batch)[0]
                out.append(np.asarray(self._head([features, batch])[0], dtype=np.float32))
        if not out:
            return np.empty((0, 0), dtype=np.float32)
        return l2_normalise(np.concatenate(out))


def _to_openvino(ov: Any, model: Any, inputs: list[Any]) -> Any:
    import tensorflow as tf

    specs = [tf.TensorSpec([None, *(int(d) for d in x.shape[1:])], tf.float32) for x in inputs]

    @tf.function(input_signature=specs)
    def run(*args: Any) -> Any:
        return model(list(args) if len(args) > 1 else args[0], training=False)

    converted = ov.convert_model(run)
    converted.reshape({i: [-1, *(int(d) for d in x.shape[1:])] for i, x in enumerate(inputs)})
    return converted


def _quality(reference: np.ndarray, candidate: np.ndarray) -> Quality:
    cosine = np.sum(reference * candidate, axis=1)
    k = min(NEIGHBOURS, len(reference) - 1)
    kept = float(np.mean([len(a & b) / k for a, b in zip(_near(reference, k), _near(candidate, k),
                                                          strict=True)]))  # fmt: skip
    return Quality(len(reference), float(cosine.min()), float(cosine.mean()), kept)


def _near(vectors: np.ndarray, k: int) -> list[set[int]]:
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    return [set(row.tolist()) for row in np.argsort(-similarity, axis=1)[:, :k]]
