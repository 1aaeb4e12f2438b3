"""Executors beyond this machine's pool: a Dask cluster's, and a batch system's jobs.

:func:`dask_executor` connects to a Dask scheduler (``dask scheduler``, ``dask worker ADDRESS``)
or starts a cluster on this machine, on 127.0.0.1 (``pip install "fmclassify[dask]"``).
:class:`JobExecutor` turns a job submitter such as submitit's ``AutoExecutor`` (SLURM) into a
:class:`concurrent.futures.Executor`. Either goes to ``executor=`` of every experiment; see
:mod:`fmclassify.runs` for what travels to the workers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

import torch

from fmclassify._checks import check_int
from fmclassify.exceptions import ConfigError

__all__ = ["DaskExecutor", "JobExecutor", "dask_executor"]


# -- Dask ---------------------------------------------------------------------------------------


class DaskExecutor(Executor):
    """A Dask client's executor (``client.get_executor(pure=False)``) that owns the client.

    Shutting it down (or leaving its ``with`` block) closes the client, and the local
    cluster when it started one. ``client`` is the :class:`dask.distributed.Client`, for its
    dashboard and worker information.
    """

    def __init__(self, client: Any, cluster: Any = None) -> None:
        self.client = client
        self.cluster = cluster
        self._inner = client.get_executor(pure=False)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` on a worker of the cluster."""
        return self._inner.submit(fn, *args, **kwargs)  # type: ignore[no-any-return]

    def parallelism(self) -> int:
        """The runs the cluster trains at once: its workers' threads."""
        return max(1, sum(self.client.nthreads().values()))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking tasks, then close the client (and the local cluster)."""
        self._inner.shutdown(wait=wait and not cancel_futures)
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __repr__(self) -> str:
        return f"DaskExecutor({self.client.scheduler.address!r})"


def dask_executor(address: str | None = None, *, workers: int | None = None,
                  timeout: float = 30.0) -> DaskExecutor:
    """An executor on a Dask cluster: the scheduler at ``address``, or a new local cluster.

    Parameters
    ----------
    address : str, optional
        A running scheduler, e.g. ``"tcp://scheduler:8786"`` (``dask scheduler``). Default:
        start a cluster on this machine, on 127.0.0.1, of ``workers`` processes with one task
        thread each and their share of the intra-op threads.
    workers : int, optional
        Processes of the local cluster (default: one per core); only without ``address``.
    timeout : float, default 30
        Seconds to wait for the scheduler.

    Returns
    -------
    DaskExecutor
        Use it in a ``with`` block, or call ``shutdown()``, to close the client and cluster.

    Raises
    ------
    ImportError
        Without Dask; the message says ``pip install "fmclassify[dask]"``.
    ConfigError
        ``workers`` given with ``address``, or out of range.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> with fmc.dask_executor("tcp://scheduler:8786") as ex:            # doctest: +SKIP
    ...     result = fmc.lr_sweep(seeds=(0, 1, 2), executor=ex)
    """
    if workers is not None:
        check_int("workers", workers)
        if address is not None:
            raise ConfigError("workers sizes a local cluster; a scheduler at an address has "
                              "the workers started there (dask worker ADDRESS --nworkers N)")
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ImportError('dask_executor needs Dask; install it with '
                          'pip install "fmclassify[dask]"') from None
    if address is not None:
        return DaskExecutor(Client(address, timeout=timeout))
    n = workers or max(1, torch.get_num_threads())
    threads = max(1, torch.get_num_threads() // n)
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None,
                           env={"OMP_NUM_THREADS": str(threads)})
    try:
        return DaskExecutor(Client(cluster, timeout=timeout), cluster)
    except BaseException:
        cluster.close()
        raise


# -- batch systems ------------------------------------------------------------------------------


class JobExecutor(Executor):
    """A :class:`concurrent.futures.Executor` over a job submitter, e.g. submitit's for SLURM.

    ``submitter.submit(fn, *args)`` must return a job with ``done()``, ``result()`` and
    ``cancel()`` (submitit's ``AutoExecutor`` does). One thread watches the jobs and completes
    each future when its job ends; cancelling a future cancels its job.

    Parameters
    ----------
    submitter : object
        Submits one function call as a job.
    parallelism : int, default 8
        Jobs that run at once, for grouping small runs into tasks.
    poll : float, default 2
        Seconds between looks at the jobs.

    Examples
    --------
    >>> import submitit                                                     # doctest: +SKIP
    >>> slurm = submitit.AutoExecutor(folder="logs/%j")                     # doctest: +SKIP
    >>> slurm.update_parameters(timeout_min=60, cpus_per_task=2)            # doctest: +SKIP
    >>> fmc.lr_sweep(executor=JobExecutor(slurm, parallelism=16))           # doctest: +SKIP
    """

    def __init__(self, submitter: Any, *, parallelism: int = 8, poll: float = 2.0) -> None:
        self._submitter = submitter
        self._parallelism = check_int("parallelism", parallelism)
        self._poll = poll
        self._jobs: list[tuple[Any, Future[Any]]] = []
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Submit ``fn(*args, **kwargs)`` as a job; its future completes when the job ends."""
        future: Future[Any] = Future()
        job = self._submitter.submit(fn, *args, **kwargs)
        with self._lock:
            self._jobs.append((job, future))
            if self._watcher is None or not self._watcher.is_alive():
                self._watcher = threading.Thread(target=self._watch, daemon=True,
                                                 name="fmclassify-jobs")
                self._watcher.start()
        return future

    def parallelism(self) -> int:
        """The jobs that run at once (as given)."""
        return self._parallelism

    def _watch(self) -> None:
        while True:
            with self._lock:
                if not self._jobs:
                    self._watcher = None
                    return
                jobs = list(self._jobs)
            for job, future in jobs:
                if future.cancelled():
                    job.cancel()
                elif not job.done():
                    continue
                elif future.set_running_or_notify_cancel():
                    try:
                        future.set_result(job.result())
                    except Exception as exc:  # the job's error, raised by the future
                        future.set_exception(exc)
                with self._lock:
                    self._jobs.remove((job, future))
            time.sleep(self._poll)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Cancel the jobs not finished (``cancel_futures``), or wait for them (``wait``)."""
        if cancel_futures:
            for _, future in list(self._jobs):
                future.cancel()
        watcher = self._watcher
        if wait and watcher is not None:
            watcher.join()
