"""Untrusted images are decoded in a pool of worker processes with memory, CPU and time caps.

Image decoders are native code fed by strangers: an SVG can crash its renderer, a PNG can
claim gigabytes, a filter chain can burn minutes of CPU. Here that costs one worker, which is
replaced, and the request gets one sentence; the bot or CLI process never sees the crash.

- memory: ``RLIMIT_AS`` on each worker (an allocation past it fails, or the worker dies);
- CPU: ``RLIMIT_CPU`` re-armed before each task to "used so far + the task's budget";
- time: pebble kills a worker whose task passes its wall-clock deadline;
- no core files from crashing decoders (``RLIMIT_CORE`` 0).

Workers are forked from a ``forkserver`` that has preloaded the decoding modules, so a
replacement starts in milliseconds and never inherits the model or the event loop. The pool
is started lazily, or at once with ``warm_up``, and kept warm.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import logging
import multiprocessing
import resource
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pebble import ProcessExpired, ProcessPool
from PIL import Image

from core.errors import LensError, UnsafeImage
from core.imaging.decode import ImageLimits
from core.imaging.prepare import PreparedImage, PrepareSpec, prepare_image

log = logging.getLogger(__name__)

UNSAFE = "This image could not be read safely."
# A worker is replaced after this many tasks, so slow leaks in native decoders stay bounded.
TASKS_PER_WORKER = 500
# Images this small (in all) share one task in a batch; a 24 px punk is about 1 KB.
GROUP_BYTES = 256 * 1024
GROUP_SIZE = 32


class ImageDecoder(Protocol):
    """Turns untrusted image bytes into a ``PreparedImage`` without risking the caller."""

    def warm_up(self) -> None:
        """Get ready (start workers) so the first request is not slow."""
        ...

    async def prepare(self, data: bytes, spec: PrepareSpec) -> PreparedImage:
        """Decode off the event loop; raise an ``ImageError`` (``UnsafeImage`` included)."""
        ...

    def prepare_many(
        self, blobs: Sequence[bytes], spec: PrepareSpec
    ) -> list[PreparedImage | LensError]:
        """Decode a batch at once (blocking; for worker threads); a failure per item."""
        ...


@dataclass(frozen=True)
class WorkerLimits:
    """How many workers, and what each task may spend."""

    workers: int = 2
    memory_bytes: int = 1 << 30
    cpu_s: float = 4.0
    timeout_s: float = 5.0


class DecoderPool:
    """The real ``ImageDecoder``: a pebble process pool with caps per worker and per task."""

    def __init__(self, limits: WorkerLimits) -> None:
        self._limits = limits
        self._pool: ProcessPool | None = None
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> None:
        """Start the workers (idempotent)."""
        self._ensure_pool()

    def warm_up(self) -> None:
        """Start every worker and make each decode once, so the first query is fast."""
        blank = _tiny_png()
        spec = PrepareSpec(ImageLimits(), canonical_size=32, preview_side=16)
        for result in self.prepare_many([blank] * self._limits.workers, spec):
            if isinstance(result, LensError):
                raise result

    def close(self) -> None:
        """Stop the workers; later calls fail."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()
            pool.join(timeout=10)

    async def prepare(self, data: bytes, spec: PrepareSpec) -> PreparedImage:
        future = self._submit(data, spec)
        try:
            return await asyncio.wrap_future(future)
        except BaseException as exc:
            raise _translated(exc) from exc

    def prepare_many(
        self, blobs: Sequence[bytes], spec: PrepareSpec
    ) -> list[PreparedImage | LensError]:
        # Small images travel together, one task per group: a round trip to a worker costs
        # more than decoding a 24 px punk. A group whose worker dies or runs over is retried
        # one image per task, so only the image at fault gets the blame.
        groups = _groups(blobs)
        futures = [self._submit_group([blobs[i] for i in group], spec) for group in groups]
        results: list[PreparedImage | LensError] = [UnsafeImage(UNSAFE)] * len(blobs)
        try:
            for group, future in zip(groups, futures, strict=True):
                try:
                    outcomes = future.result()
                except BaseException as exc:
                    error = _translated(exc)
                    if not isinstance(error, LensError):
                        raise error from exc
                    outcomes = self._one_by_one([blobs[i] for i in group], spec, error)
                for index, outcome in zip(group, outcomes, strict=True):
                    results[index] = outcome
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return results

    def _one_by_one(
        self, blobs: list[bytes], spec: PrepareSpec, error: LensError
    ) -> list[PreparedImage | LensError]:
        if len(blobs) == 1:
            return [error]
        outcomes: list[PreparedImage | LensError] = []
        for future in [self._submit_group([data], spec) for data in blobs]:
            try:
                outcomes.extend(future.result())
            except BaseException as exc:
                single = _translated(exc)
                if not isinstance(single, LensError):
                    raise single from exc
                outcomes.append(single)
        return outcomes

    def _submit(self, data: bytes, spec: PrepareSpec) -> concurrent.futures.Future[Any]:
        pool = self._ensure_pool()
        return pool.schedule(
            _run_task,
            args=(data, spec, self._limits.cpu_s),
            timeout=self._limits.timeout_s,
        )

    def _submit_group(
        self, blobs: list[bytes], spec: PrepareSpec
    ) -> concurrent.futures.Future[Any]:
        pool = self._ensure_pool()
        return pool.schedule(
            _run_group,
            args=(blobs, spec, self._limits.cpu_s),
            timeout=self._limits.timeout_s,
        )

    def _ensure_pool(self) -> ProcessPool:
        with self._lock:
            if self._closed:
                raise RuntimeError("the image decoder pool is closed")
            if self._pool is None:
                self._pool = ProcessPool(
                    max_workers=self._limits.workers,
                    max_tasks=TASKS_PER_WORKER,
                    initializer=_init_worker,
                    initargs=(self._limits.memory_bytes,),
                    context=_context(),
                )
            return self._pool


def _translated(exc: BaseException) -> BaseException:
    """What the caller sees: the worker's own image errors as they are; a crash, a deadline
    or an exhausted memory cap as ``UnsafeImage``, logged once with the detail."""
    if isinstance(exc, LensError):
        return exc
    if isinstance(exc, concurrent.futures.TimeoutError | TimeoutError):
        log.warning("image worker ran past its deadline; it was replaced")
        return UnsafeImage(UNSAFE)
    if isinstance(exc, ProcessExpired):
        log.warning("image worker died (exit code %s); it was replaced", exc.exitcode)
        return UnsafeImage(UNSAFE)
    if isinstance(exc, MemoryError):
        log.warning("image worker ran out of its memory allowance")
        return UnsafeImage(UNSAFE)
    if isinstance(exc, asyncio.CancelledError | concurrent.futures.CancelledError):
        return exc
    if isinstance(exc, Exception):
        # Anything else a decoder raised is about this image, not about us.
        log.warning("image worker failed: %s: %s", type(exc).__name__, exc)
        return UnsafeImage(UNSAFE)
    return exc


_context_lock = threading.Lock()


def _context() -> Any:
    """The forkserver start method, with the decoding modules preloaded in the server."""
    with _context_lock:
        if "forkserver" not in multiprocessing.get_all_start_methods():  # pragma: no cover
            return multiprocessing.get_context("spawn")
        context = multiprocessing.get_context("forkserver")
        # Preload only this module's imports: the default would re-import the parent's
        # __main__ in the server.
        context.set_forkserver_preload(["core.imaging.prepare"])
        return context


def _init_worker(memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def _groups(blobs: Sequence[bytes]) -> list[list[int]]:
    """Indexes of ``blobs`` in task-sized groups: small images together (up to
    ``GROUP_BYTES`` and ``GROUP_SIZE``), anything larger alone."""
    groups: list[list[int]] = []
    current: list[int] = []
    size = 0
    for index, data in enumerate(blobs):
        if current and (size + len(data) > GROUP_BYTES or len(current) >= GROUP_SIZE):
            groups.append(current)
            current, size = [], 0
        current.append(index)
        size += len(data)
    if current:
        groups.append(current)
    return groups


def _arm_cpu_budget(cpu_s: float) -> None:
    # RLIMIT_CPU counts the process's whole life; re-arm it so this task gets its budget.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used + cpu_s) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _run_task(data: bytes, spec: PrepareSpec, cpu_s: float) -> PreparedImage:
    _arm_cpu_budget(cpu_s)
    return prepare_image(data, spec)


def _run_group(
    blobs: list[bytes], spec: PrepareSpec, cpu_s: float
) -> list[PreparedImage | LensError]:
    # One budget for the group: groups are small images only, which decode in milliseconds.
    _arm_cpu_budget(cpu_s)
    outcomes: list[PreparedImage | LensError] = []
    for data in blobs:
        try:
            outcomes.append(prepare_image(data, spec))
        except LensError as exc:
            outcomes.append(exc)
    return outcomes


def _tiny_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (8, 8), (200, 30, 30, 255)).save(out, "PNG")
    return out.getvalue()
