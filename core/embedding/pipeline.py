"""Batch embedding with decoding overlapped: worker threads prepare batch n+1 while the
model runs batch n, so the model never waits for Pillow."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from core.embedding.embedder import Embedder
from core.errors import LensError

T = TypeVar("T")

# Batches decoded ahead of the model; two keeps it fed without holding much memory.
PREFETCH = 2


@dataclass(frozen=True)
class EmbeddedBatch(Generic[T]):
    """One batch out of the pipeline: the items that worked, their vectors, and failures."""

    items: list[T]
    vectors: np.ndarray
    failed: list[tuple[T, LensError]]


def embed_stream(
    embedder: Embedder,
    items: Sequence[T],
    load: Callable[[T], np.ndarray],
    batch_size: int,
    workers: int = 2,
) -> Iterator[EmbeddedBatch[T]]:
    """Yield embedded batches in order; ``load`` turns an item into a canonical image.

    A ``LensError`` from ``load`` marks just that item as failed. Closing the generator
    early stops the decoding thread too.
    """
    ready: queue.Queue[tuple[list[T], list[np.ndarray], list[tuple[T, LensError]]] | None]
    ready = queue.Queue(maxsize=PREFETCH)
    stop = threading.Event()
    problem: list[BaseException] = []

    def attempt(item: T) -> np.ndarray | LensError:
        try:
            return load(item)
        except LensError as exc:
            return exc

    def produce() -> None:
        try:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
                for start in range(0, len(items), batch_size):
                    if stop.is_set():
                        return
                    chunk = list(items[start : start + batch_size])
                    ok: list[T] = []
                    arrays: list[np.ndarray] = []
                    failed: list[tuple[T, LensError]] = []
                    for item, result in zip(chunk, pool.map(attempt, chunk), strict=True):
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
