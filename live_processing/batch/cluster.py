"""The Dask cluster reprocessing runs on, and the integration mapped over it.

By default a ``LocalCluster`` of single-threaded worker processes on this machine
(loopback only; its dashboard on 127.0.0.1:8787); with a scheduler address, that
cluster (``dask-scheduler``, or ``dask-jobqueue``'s on a batch system), whose workers
have ``operando`` installed and see the raw files at the same paths.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .tasks import integrate_chunk, warm_up

log = logging.getLogger(__name__)

DASHBOARD = "127.0.0.1:8787"
# one thread per worker: the integration kernels (numba) would otherwise each take
# every core, and workers would fight over them
SINGLE_THREAD = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
# distributed sets glibc's trim threshold to 64 KiB in its workers, which also fixes the
# mmap threshold at its 128 KiB default: every 10 MB frame is then a fresh mmap, paged in
# and zeroed again (a 2M frame took 13 ms instead of 8). Frames reuse the heap with these
# instead.
HEAP = {"MALLOC_TRIM_THRESHOLD_": str(256 << 20), "MALLOC_MMAP_THRESHOLD_": str(64 << 20)}

WORKER_ENV = {**SINGLE_THREAD, **HEAP}

Chunk = tuple[str, np.ndarray]  # (raw file, positions in it)


class ClusterError(RuntimeError):
    """The Dask cluster could not be started or reached: names it and why."""


@contextmanager
def dask_client(
    scheduler: str | None = None, workers: int | None = None, dashboard: str = DASHBOARD
) -> Iterator[Any]:
    """A ``distributed.Client``: of the cluster at ``scheduler``, or of a new
    ``LocalCluster`` of ``workers`` processes (default: one per core)."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise ClusterError(f"Dask scheduler {scheduler}: cannot connect ({exc})") from exc
        try:
            yield client
        finally:
            client.close()
        return
    n = workers or os.cpu_count() or 1
    if n < 1:
        raise ClusterError(f"--workers {n}: need at least 1")
    import numba

    threads = numba.get_num_threads()
    # the workers take the cores: this process's own back-projection runs on one thread
    numba.set_num_threads(max(1, min(threads, (os.cpu_count() or 1) - n)))
    import dask

    # glibc and numba read these as a process starts: the Nanny sets them before it
    # spawns a worker (a worker's ``env`` comes after its start, too late), here only
    pre_spawn = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **WORKER_ENV}
    with (
        _environ_kept(WORKER_ENV),
        dask.config.set(
            {
                "distributed.nanny.pre-spawn-environ": pre_spawn,
                # its 10 ms stack sampling costs a worker ~3 % of the integration
                "distributed.worker.profile.enabled": False,
            }
        ),
        LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=dashboard,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        try:
            yield client
        finally:
            numba.set_num_threads(threads)


@contextmanager
def _environ_kept(keys: dict[str, str]) -> Iterator[None]:
    """This process's values of ``keys`` as they were, after the block (the Nanny puts
    its pre-spawn variables in this process's environment)."""
    before = {k: os.environ.get(k) for k in keys}
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def integrate_on(
    client: Any, on_chunk: Callable[[int], None] | None = None
) -> Callable[[list[Chunk], dict[str, Any]], Iterator[tuple[int, np.ndarray]]]:
    """A function mapping chunks over ``client``'s workers: ``(index, patterns)`` as each
    chunk is done, in any order; ``on_chunk(frames)`` after each (progress)."""
    from distributed import as_completed

    def run(chunks: list[Chunk], spec: dict[str, Any]) -> Iterator[tuple[int, np.ndarray]]:
        ready = client.run(warm_up, spec)  # every worker builds its integrator at once
        log.info("integrators ready on %d workers (%.1f s)", len(ready), max(ready.values()))
        [shared] = client.scatter([spec], broadcast=True)
        futures = {
            client.submit(integrate_chunk, path, positions, shared, pure=False): k
            for k, (path, positions) in enumerate(chunks)
        }
        try:
            for future, patterns in as_completed(futures, with_results=True):
                k = futures[future]
                if on_chunk is not None:
                    on_chunk(len(chunks[k][1]))
                yield k, patterns
        finally:
            client.cancel(list(futures))

    return run


def integrate_here(chunks: list[Chunk], spec: dict[str, Any]) -> Iterator[tuple[int, np.ndarray]]:
    """The same, in this process (no cluster: tests, a quick look)."""
    for k, (path, positions) in enumerate(chunks):
        yield k, integrate_chunk(path, positions, spec)
