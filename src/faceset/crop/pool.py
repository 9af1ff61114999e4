"""Run per-photo work on every core with a bounded number in flight, so memory stays flat."""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TypeVar

from faceset.crop.job import CropJob
from faceset.model import Outcome

J = TypeVar("J")
R = TypeVar("R")

# Batches queued per worker: enough to keep each busy while results are collected, few enough
# that a 100,000-face library never sits in memory at once.
IN_FLIGHT_PER_WORKER = 4
# Jobs sent to a worker together: one round trip costs about as much as reporting a missing file,
# so single jobs would make a re-check of a large library IPC-bound.
BATCH = 8
# Imported once by the server that forks the workers, so workers start with them loaded:
# __main__ (the default), which each worker would otherwise re-run, and the crop code.
WORKER_MODULES = ["__main__", "faceset.crop.render"]


def default_workers() -> int:
    """Return the number of cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _context() -> multiprocessing.context.ForkServerContext:
    # forkserver: workers must not inherit the parent's open database connection.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_MODULES)
    return context


def start_early(workers: int) -> None:
    """Start the process that forks workers now, so that its imports run while this process
    reads the library, not after; does nothing where work runs inline (``workers=1``)."""
    if workers > 1:
        _context()
        multiprocessing.forkserver.ensure_running()


def crop_all(jobs: Iterable[CropJob], workers: int) -> Iterator[Outcome]:
    """Yield one outcome per crop job, in completion order; ``workers=1`` runs in this process."""
    from faceset.crop.render import crop_face  # the decoders: only where photos are cropped

    return map_bounded(crop_face, jobs, workers)


def map_bounded(fn: Callable[[J], R], jobs: Iterable[J], workers: int) -> Iterator[R]:
    """Yield ``fn(job)`` for every job, in completion order, with few jobs queued at a time.

    ``fn`` must be a module-level function: workers import it. ``workers=1`` runs inline.
    """
    if workers <= 1:
        yield from map(fn, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=_context()) as pool:
        pending: set[Future[list[R]]] = set()
        limit = workers * IN_FLIGHT_PER_WORKER
        for batch in _batches(jobs, BATCH):
            pending.add(pool.submit(_apply, fn, batch))
            if len(pending) >= limit:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    yield from f.result()
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                yield from f.result()


def _batches(jobs: Iterable[J], size: int) -> Iterator[list[J]]:
    batch: list[J] = []
    for job in jobs:
        batch.append(job)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _apply(fn: Callable[[J], R], batch: list[J]) -> list[R]:
    return [fn(job) for job in batch]
