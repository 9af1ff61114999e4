"""Run per-photo work on every core with a bounded number in flight, so memory stays flat."""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from faceset.crop.job import CropJob
from faceset.model import Outcome

log = logging.getLogger(__name__)
J = TypeVar("J")
R = TypeVar("R")

# Batches queued per worker: enough to keep each busy while results are collected, few enough
# that a 100,000-face library never sits in memory at once.
IN_FLIGHT_PER_WORKER = 4
# Jobs sent to a worker together: one round trip costs about as much as reporting a missing file,
# so single jobs would make a re-check of a large library IPC-bound.
BATCH = 8
# Imported once by the server that forks the workers, so workers start with them loaded:
# __main__ (the default), which each worker would otherwise re-run, the crop code, and the guard
# that makes the server die with the run.
WORKER_MODULES = ["__main__", "faceset.crop.render", "faceset.crop.forkserver_guard"]


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
    # the decoders: only where photos are cropped
    from faceset.crop.render import crashed, crop_face

    return map_bounded(crop_face, jobs, workers, crashed=crashed)


def map_bounded(
    fn: Callable[[J], R],
    jobs: Iterable[J],
    workers: int,
    crashed: Callable[[J], R] | None = None,
) -> Iterator[R]:
    """Yield ``fn(job)`` for every job, in completion order, with few jobs queued at a time.

    ``fn`` must be a module-level function: workers import it. ``workers=1`` runs inline.
    A worker killed by a signal (a decoder's crash, the OOM killer) breaks the pool: a new one
    is started, the jobs that were in flight run again one at a time, and a job that kills its
    worker alone yields ``crashed(job)`` (without ``crashed``, the pool's error is raised).
    """
    if workers <= 1:
        yield from map(fn, jobs)
        return
    source = iter(_batches(jobs, BATCH))
    limit = workers * IN_FLIGHT_PER_WORKER
    while True:
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=_context(), initializer=worker_init
        ) as pool:
            pending: dict[Future[list[R]], list[J]] = {}
            try:
                for batch in source:
                    pending[pool.submit(_apply, fn, batch)] = batch
                    if len(pending) >= limit:
                        yield from _collect(pending)
                while pending:
                    yield from _collect(pending)
                return
            except BrokenProcessPool:
                if crashed is None:
                    raise
                suspects = [job for batch in pending.values() for job in batch]
        log.warning("a worker died; retrying the %d photos it may have held, one at a time",
                    len(suspects))  # fmt: skip
        yield from _one_at_a_time(fn, suspects, crashed)


def _collect(pending: dict[Future[list[R]], list[J]]) -> Iterator[R]:
    """Yield the results of the futures done; they leave ``pending`` once their results are out."""
    done, _ = wait(pending, return_when=FIRST_COMPLETED)
    for future in done:
        results = future.result()  # BrokenProcessPool leaves the batch in pending, to retry
        del pending[future]
        yield from results


def _one_at_a_time(fn: Callable[[J], R], jobs: list[J], crashed: Callable[[J], R]) -> Iterator[R]:
    """Run each job alone in a fresh one-worker pool; a job that kills it is ``crashed``."""
    for job in jobs:
        with ProcessPoolExecutor(
            max_workers=1, mp_context=_context(), initializer=worker_init
        ) as alone:
            try:
                yield from alone.submit(_apply, fn, [job]).result()
            except BrokenProcessPool:
                yield crashed(job)


def worker_init() -> None:
    """Set up a worker: Ctrl-C is the parent's to handle (it stops the pool and says what was
    done), and a worker dies with the process that started it, even one killed by SIGKILL (the
    forkserver exits when the run's process goes; PR_SET_PDEATHSIG then ends its workers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform == "linux":
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() == 1:  # the parent died before prctl: nothing left to work for
            os._exit(1)


PR_SET_PDEATHSIG = 1


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
