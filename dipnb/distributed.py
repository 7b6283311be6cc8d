"""Running sweeps on a Dask cluster: a laptop (``LocalCluster``), SLURM/PBS (dask-jobqueue),
Kubernetes, or any scheduler address.

Dask is optional (``pip install "dask[distributed]"``); nothing here is imported by the rest of
the package. :func:`dask_executor` yields a :class:`concurrent.futures.Executor` for
:func:`dipnb.experiments.sweep`, which stores every result in the caller's cache as it arrives.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager

from .errors import ConfigError

__all__ = ["dask_executor"]


@contextmanager
def dask_executor(
    scheduler: str | None = None,
    *,
    local_workers: int | None = None,
    threads_per_worker: int = 1,
) -> Iterator[Executor]:
    """Connect to a Dask scheduler, or start a local cluster, and yield its executor.

    Args:
        scheduler: a scheduler address such as ``tcp://10.0.0.5:8786`` (a cluster started with
            ``dask scheduler`` / ``dask worker``, dask-jobqueue or dask-kubernetes).
        local_workers: instead, start a ``LocalCluster`` of this many worker processes here.
        threads_per_worker: torch threads per local worker (each task pins torch to its worker's
            thread count, so tasks do not fight over cores).

    Yields:
        A :class:`concurrent.futures.Executor`; the cluster (if local) and the client close on exit.
    """
    if (scheduler is None) == (local_workers is None):
        raise ConfigError("give either a scheduler address or a number of local workers, not both or neither")
    if local_workers is not None and (not isinstance(local_workers, int) or local_workers < 1):
        raise ConfigError(f"local_workers must be an integer >= 1, got {local_workers!r}")
    if not isinstance(threads_per_worker, int) or threads_per_worker < 1:
        raise ConfigError(f"threads_per_worker must be an integer >= 1, got {threads_per_worker!r}")
    try:
        from distributed import Client, LocalCluster
    except ImportError as e:
        raise ConfigError('Dask is not installed: pip install "dask[distributed]"') from e

    cluster = None
    if local_workers is not None:
        cluster = LocalCluster(
            n_workers=local_workers, threads_per_worker=threads_per_worker, processes=True,
            dashboard_address=None,
        )
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as e:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler!r}: {e}") from e
    try:
        yield client.get_executor()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
