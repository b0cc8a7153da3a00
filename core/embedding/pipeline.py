"""Batch embedding with decoding overlapped: batch n+1 is decoded while the model runs batch
n, so the model never waits for the image workers."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from core.embedding.embedder import Embedder
from core.errors import LensError

T = TypeVar("T")

# Batches decoded ahead of the model; two keeps it fed without holding much memory.
PREFETCH = 2

LoadBatch = Callable[[list[T]], Sequence[np.ndarray | LensError]]


@dataclass(frozen=True)
class EmbeddedBatch(Generic[T]):
    """One batch out of the pipeline: the items that worked, their vectors, and failures."""

    items: list[T]
    vectors: np.ndarray
    failed: list[tuple[T, LensError]]


def embed_stream(
    embedder: Embedder,
    items: Sequence[T],
    load_batch: LoadBatch[T],
    batch_size: int,
) -> Iterator[EmbeddedBatch[T]]:
    """Yield embedded batches in order; ``load_batch`` turns items into canonical images,
    or a ``LensError`` for an item that cannot be used (just that item fails).

    Closing the generator early stops the loading thread too.
    """
    ready: queue.Queue[tuple[list[T], list[np.ndarray], list[tuple[T, LensError]]] | None]
    ready = queue.Queue(maxsize=PREFETCH)
    stop = threading.Event()
    problem: list[BaseException] = []

    def produce() -> None:
        try:
            for start in range(0, len(items), batch_size):
                if stop.is_set():
                    return
                chunk = list(items[start : start + batch_size])
                loaded = load_batch(chunk)
                ok: list[T] = []
                arrays: list[np.ndarray] = []
                failed: list[tuple[T, LensError]] = []
                for item, result in zip(chunk, loaded, strict=True):
                    if isinstance(result, LensError):
                        failed.append((item, result))
                    else:
                        ok.append(item)
                        arrays.append(result)
                _put(ready, (ok, arrays, failed), stop)
        except BaseException as exc:  # re-raised in the consumer, never lost in a thread
            problem.append(exc)
        finally:
            _put(ready, None, stop)

    producer = threading.Thread(target=produce, name="embed-prefetch", daemon=True)
    producer.start()
    try:
        while True:
            batch = ready.get()
            if batch is None:
                break
            ok, arrays, failed = batch
            vectors = (
                embedder.embed_batch(np.stack(arrays))
                if arrays
                else np.empty((0, embedder.dim), dtype=np.float32)
            )
            yield EmbeddedBatch(ok, vectors, failed)
        if problem:
            raise problem[0]
    finally:
        stop.set()
        while producer.is_alive():
            try:
                ready.get_nowait()
            except queue.Empty:
                producer.join(timeout=0.05)


def _put(target: queue.Queue[Any], value: object, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            target.put(value, timeout=0.1)
            return
        except queue.Full:
            continue
