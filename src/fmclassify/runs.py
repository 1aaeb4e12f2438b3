"""Runs as data: what to train (:class:`RunSpec`), what came out, where it is kept, who trains it.

A :class:`RunSpec` is the whole configuration of one run, names and numbers only, so it can be
hashed into a store key, written to JSON and sent to another process. :func:`run_one` trains
one in this process with a plain :meth:`fmclassify.Trainer.fit`; :func:`run_many` hands several
out through a :class:`concurrent.futures.Executor`:

* by default on a CPU, a process pool of this machine, one process per core
  (:func:`~fmclassify.executors.local_workers`), each with its share of the intra-op threads
  (one each on two cores), the data handed over once per process (inherited through ``fork``
  on Linux, not copied);
* any executor you pass (``executor=``): a ``ThreadPoolExecutor``, a ``ProcessPoolExecutor``,
  a cluster's: Dask's (``client.get_executor(pure=False)``, :func:`fmclassify.dask_executor`),
  submitit's for SLURM. Each task is a few specs and the name of the data
  (:mod:`fmclassify.executors`): a worker process loads the data once and keeps it, trains
  each run with a plain :meth:`~fmclassify.Trainer.fit`, and sends back its History (and
  gradient trace). Small runs go a few to a task, so an engine's per-task overhead does not
  dominate; runs of an epoch of Fashion-MNIST or more go one to a task;
* one by one in this process when there is one run, one core, or a GPU (which one run keeps
  busy).

A run trained in a worker with one intra-op thread equals bit for bit the same run trained in
this process under ``torch.set_num_threads(1)``. Given a :class:`RunStore`, every finished run
is written there as it arrives, and unfinished runs keep their checkpoint there (when the
workers see its folder: a shared file system); calling again trains only what is missing,
each run resuming on its own; a run that is the beginning of a longer finished one (the same
configuration at a constant rate, more epochs or a convergence detector) is read from it, not
trained (:meth:`RunResult.first_epochs`). A run that fails (an error in training, a worker
lost, data a worker cannot load) comes back with status ``"failed"`` and the error's text,
and the others go on (``on_error="record"``), or it stops the call (``"raise"``); failed runs
are not stored, so the next call tries them again. A run that cannot write its checkpoint
(no space left, no permission: :class:`~fmclassify.OutputError`) stops the call instead, with
that error, since every other run would fail the same way; the finished runs are kept. Ctrl-C
cancels the runs not started and keeps those that finished.
"""

from __future__ import annotations

import math
import os
import signal
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import BrokenExecutor, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from multiprocessing import Process
from pathlib import Path
from typing import Any, Literal

from fmclassify._checks import check_choice, check_device, check_int
from fmclassify.convergence import ConvergenceDetector
from fmclassify.exceptions import (
    ConfigError,
    DataError,
    FmClassifyError,
    OutputError,
    RunFailedError,
    WorkerLostError,
)
from fmclassify.executors import (
    Data,
    DataHandle,
    DataRef,
    data_handle,
    data_id,
    local_pool,
    local_workers,
    resolve,
)
from fmclassify.gradients import GradientTracer
from fmclassify.history import History
from fmclassify.registry import build_model
from fmclassify.runspec import RECIPE_FIELDS, RunResult, RunSpec, RunStore
from fmclassify.training import Trainer, check_data_fits, fit_together, why_not_fit_together

__all__ = [
    "ON_ERROR",
    "RECIPE_FIELDS",
    "Data",
    "RunResult",
    "RunSpec",
    "RunStore",
    "check_run_options",
    "data_id",
    "local_workers",
    "run_many",
    "run_one",
    "train_runs",
]

#: The values of ``on_error``: record a failed run and go on, or stop at the first.
ON_ERROR = ("record", "raise")


def trainer_for(spec: RunSpec, data: Data, *, checkpoint: Path | None = None,
                progress: bool = False,
                device: str = "auto") -> tuple[Trainer, GradientTracer | None]:
    """The Trainer (and gradient tracer, if the spec has one) that trains ``spec``."""
    train, _ = data
    c, h, _ = train.image_shape
    model = build_model(spec.model, num_classes=train.num_classes, in_channels=c,
                        image_size=h, seed=spec.seed)
    detector = ConvergenceDetector(**dict(spec.detector)) if spec.detector else None
    tracer = GradientTracer(**dict(spec.tracer)) if spec.tracer else None
    callbacks = [cb for cb in (detector, tracer) if cb is not None]
    trainer = Trainer(model, lr=spec.lr, epochs=spec.epochs, batch_size=spec.batch_size,
                      seed=spec.seed, shuffle=spec.shuffle, step=spec.step,  # type: ignore[arg-type]
                      device=device, callbacks=callbacks, progress=progress,
                      checkpoint=checkpoint, **spec.recipe_kwargs())
    return trainer, tracer


def run_one(spec: RunSpec, data: Data, *, store: RunStore | None = None,
            progress: bool = False, device: str = "auto") -> RunResult:
    """Train one run in this process (or load it from ``store`` when it already finished).

    Parameters
    ----------
    spec : RunSpec
        What to train.
    data : (ImageDataset, ImageDataset)
        Train and test sets.
    store : RunStore, optional
        Reuse finished runs and resume unfinished ones from their checkpoint; the finished
        run is saved there.
    progress : bool, default False
        Show the epoch bar.
    device : str, default "auto"
        Training device.

    Returns
    -------
    RunResult
    """
    if store is not None and (cached := store.load(spec)) is not None:
        return cached
    result = _train(spec, data, store.checkpoint_path(spec) if store else None, progress, device)
    if store is not None:
        store.save(result)
    return result


def _train(spec: RunSpec, data: Data, checkpoint: Path | None, progress: bool,
           device: str) -> RunResult:
    trainer, tracer = trainer_for(spec, data, checkpoint=checkpoint, progress=progress,
                                  device=device)
    history = trainer.fit(*data, resume=checkpoint is not None)
    return RunResult(spec, history, tracer.to_dict() if tracer else None)


def _attempt(spec: RunSpec, data: Data, checkpoint: Path | None, progress: bool,
             device: str) -> RunResult:
    """Train ``spec``; an error becomes a result with status "failed" and the error's text."""
    try:
        if spec.data and data_id(*data) != spec.data:
            raise DataError(f"the data here is {data_id(*data)}, but the run was made for "
                            f"{spec.data}; give every machine the same data set files")
        return _train(spec, data, checkpoint, progress, device)
    except OutputError as exc:  # where it writes is at fault, not the run: the call stops
        return _failed(spec, f"{type(exc).__name__}: {exc}", output=exc)
    except Exception as exc:
        return _failed(spec, f"{type(exc).__name__}: {exc}")


def _failed(spec: RunSpec, error: str, output: OutputError | None = None) -> RunResult:
    host = f"{socket.gethostname()}, pid {os.getpid()}"
    metadata: dict[str, Any] = {"model": spec.model, "lr": spec.lr, "epochs": spec.epochs,
                                "seed": spec.seed, "batch_size": spec.batch_size,
                                "host": socket.gethostname()}
    if output is not None:  # plain data, so it crosses from any worker
        metadata["output_error"] = {"message": str(output), "errno": output.errno,
                                    "filename": output.filename}
    return RunResult(spec, History(status="failed", reason=f"{error} (on {host})",
                                   metadata=metadata))


def _stop_error(result: RunResult) -> FmClassifyError:
    """The error that stops a call at this failed run.

    A run that could not write (:class:`OutputError`) stops the call whatever ``on_error``
    says: every other run would fail the same way.
    """
    where = f"run {result.spec.label} seed {result.spec.seed}"
    output = result.history.metadata.get("output_error")
    if output:
        return OutputError(f"{output['message']} ({where} stopped; the finished runs are kept)",
                           errno=output.get("errno"), filename=output.get("filename"))
    return RunFailedError(f"{where} failed: {result.history.reason}; the finished runs are kept")


def train_runs(specs: Sequence[RunSpec], data: DataHandle, store: str | None = None,
               device: str = "auto") -> list[RunResult]:
    """Train runs where a task of :func:`run_many` lands (a worker process); never raises.

    Parameters
    ----------
    specs : sequence of RunSpec
        The task's runs.
    data : DataHandle
        Names the data (loaded once per process and kept).
    store : str, optional
        The folder of the run store, used where it exists on this machine (a shared file
        system): unfinished runs checkpoint there and resume, and a run already finished there
        (a task an engine ran again after losing a worker) is read back, not trained again.
        A run that begins a longer one finished there or earlier in this task (Q1.1's
        10-epoch runs begin Q1.2's convergence runs: :meth:`RunResult.first_epochs`) is read
        from it.
    device : str, default "auto"
        Training device.

    Returns
    -------
    list of RunResult
        One per spec; a run that could not train has status "failed" and the error's text.
    """
    try:
        ds = data.open()
    except Exception as exc:
        return [_failed(s, f"the worker could not load the data ({type(exc).__name__}: {exc})")
                for s in specs]
    runs = RunStore(store) if store is not None and Path(store).is_dir() else None
    results: list[RunResult] = []
    for spec in specs:
        finished = runs.load(spec) if runs is not None else None
        begun = (r.first_epochs(spec) for r in results if r.history.status != "failed")
        finished = finished or next((r for r in begun if r is not None), None)
        ckpt = runs.checkpoint_path(spec) if runs is not None else None
        results.append(finished or _attempt(spec, ds, ckpt, False, device))
    return results


def run_many(
    specs: Sequence[RunSpec],
    data: Data | DataRef,
    *,
    store: RunStore | None = None,
    executor: Executor | None = None,
    workers: int | None = None,
    progress: bool = False,
    device: str = "auto",
    on_run: Callable[[RunResult], None] | None = None,
    on_error: Literal["record", "raise"] = "record",
) -> list[RunResult]:
    """Train ``specs`` (those not finished in ``store``) and return their results in order.

    Parameters
    ----------
    specs : sequence of RunSpec
        The runs.
    data : (ImageDataset, ImageDataset) or DataRef
        Train and test sets, or a reference that each worker loads for itself.
    store : RunStore, optional
        Finished runs are read from it (also a run that a longer stored run begins,
        :meth:`RunStore.load`) and every newly finished run is written to it as it arrives;
        unfinished runs keep their checkpoint there and resume from it.
    executor : concurrent.futures.Executor, optional
        Where the runs train; see the module documentation. Default: a process pool of
        :func:`local_workers` processes (one by one here when that is 1).
    workers : int, optional
        Processes of the default pool; 1 trains every run one by one in this process.
    progress : bool, default False
        Show each run's epoch bar (one-by-one runs only).
    device : str, default "auto"
        Training device.
    on_run : callable, optional
        Called with each RunResult as it finishes (or is read from the store, or fails).
    on_error : {"record", "raise"}, default "record"
        A run that fails is returned with status "failed" while the others go on; or the
        first failure stops the call (its own exception here, :class:`RunFailedError` from a
        worker).

    Returns
    -------
    list of RunResult
        In the order of ``specs``.

    Raises
    ------
    OutputError
        A run could not write its checkpoint or the store its result (no space left, no
        permission): the call stops; the finished runs are kept, and the same call trains only
        the rest once the cause is fixed.
    KeyboardInterrupt
        On Ctrl-C: runs not started are cancelled, running ones stop at their next step and
        keep the checkpoint of their last finished epoch, finished ones are in the store.
    WorkerLostError
        A process of the default pool died (killed, out of memory); finished runs are kept.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> data = fmc.load_dataset("fashion-mnist")                             # doctest: +SKIP
    >>> specs = [fmc.RunSpec("base", lr=lr, epochs=2) for lr in (0.1, 0.01)]
    >>> results = fmc.run_many(specs, data, workers=2)                       # doctest: +SKIP
    """
    check_run_options(executor, workers, on_error)
    for spec in specs:
        if not isinstance(spec, RunSpec):
            raise ConfigError(f"specs must be RunSpec objects, got {type(spec).__name__}")
    data, ref = resolve(data)
    done, todo = _stored(specs, store, on_run)
    for model in sorted({s.model for s in todo.values()}):  # before any run trains
        check_data_fits(_model_for(model, data), *data)

    def arrived(i: int, result: RunResult) -> None:
        failed = result.history.status == "failed"
        if store is not None and not failed:
            store.save(result)
        done[i] = result
        if on_run is not None:
            on_run(result)
        if failed and (on_error == "raise" or result.history.metadata.get("output_error")):
            raise _stop_error(result)

    n = workers if workers is not None else local_workers(len(todo), device)
    if executor is None and min(n, len(todo)) > 1:
        _dispatch(executor, n, data, ref, todo, store, device, arrived)
    elif executor is None and check_device(device).type == "cuda":
        _train_together(todo, data, store, progress, device, arrived, on_error)
    elif executor is None:
        for i, spec in todo.items():
            ckpt = store.checkpoint_path(spec) if store is not None else None
            if store is not None and (begun := store.load_prefix(spec)) is not None:
                arrived(i, begun)  # an earlier run of this call begins it
            else:
                arrived(i, _train(spec, data, ckpt, progress, device) if on_error == "raise"
                        else _attempt(spec, data, ckpt, progress, device))
    elif todo:
        _dispatch(executor, n, data, ref, todo, store, device, arrived)
    return [done[i] for i in range(len(specs))]


def _train_together(todo: dict[int, RunSpec], data: Data, store: RunStore | None,
                    progress: bool, device: str, arrived: Callable[[int, RunResult], None],
                    on_error: str) -> None:
    """On a GPU: the runs that differ only in learning rate and seed train as one model.

    Runs that :func:`~fmclassify.training.why_not_fit_together` refuses (a run with EMA,
    models that differ) train one by one, each with the GPU's own step (a captured graph).
    The groups go out in the order of ``todo`` (its first run's place), so a run that begins a
    longer one is read from the store when its turn comes, as one by one.
    """
    groups: dict[RunSpec, list[int]] = {}
    for i, spec in todo.items():  # the same run but for lr and seed: one group
        groups.setdefault(replace(spec, lr=1.0, seed=0), []).append(i)
    data = (data[0].to(check_device(device)), data[1].to(check_device(device)))  # once
    for group in groups.values():
        members = []
        for i in group:
            spec = todo[i]
            if store is not None and (begun := store.load_prefix(spec)) is not None:
                arrived(i, begun)  # an earlier run of this call begins it
            else:
                members.append(i)
        trained = _fit_group([todo[i] for i in members], data, store, device)
        if trained is not None:
            for i, result in zip(members, trained, strict=True):
                arrived(i, result)
            continue
        for i in members:  # one by one: alone, runs that cannot train together, or after an
            spec = todo[i]  # error in the group (each resumes from its own checkpoint)
            ckpt = _checkpoint(store, spec)
            arrived(i, _train(spec, data, ckpt, progress, device) if on_error == "raise"
                    else _attempt(spec, data, ckpt, progress, device))


def _fit_group(specs: list[RunSpec], data: Data, store: RunStore | None,
               device: str) -> list[RunResult] | None:
    """Train ``specs`` with :func:`fit_together`, or None: fewer than two, or they cannot.

    None too when the group fails for an error of a run (the caller then trains each run on
    its own, from its checkpoint, so one run's error fails that run alone); a place it cannot
    write to (:class:`OutputError`) or an interrupt stops the call.
    """
    if len(specs) < 2:
        return None
    made = [trainer_for(s, data, checkpoint=_checkpoint(store, s), device=device) for s in specs]
    trainers = [t for t, _ in made]
    if why_not_fit_together(trainers) is not None:
        return None
    try:
        histories = fit_together(trainers, *data, resume=store is not None)
    except (OutputError, KeyboardInterrupt):
        raise
    except Exception:
        return None
    return [RunResult(s, h, tracer.to_dict() if tracer else None)
            for s, h, (_, tracer) in zip(specs, histories, made, strict=True)]


def _checkpoint(store: RunStore | None, spec: RunSpec) -> Path | None:
    return store.checkpoint_path(spec) if store is not None else None


def _stored(specs: Sequence[RunSpec], store: RunStore | None,
            on_run: Callable[[RunResult], None] | None
            ) -> tuple[dict[int, RunResult], dict[int, RunSpec]]:
    """The runs finished in ``store`` (each handed to ``on_run``), and those still to train."""
    done: dict[int, RunResult] = {}
    todo: dict[int, RunSpec] = {}
    for i, spec in enumerate(specs):
        cached = store.load(spec) if store is not None else None
        if cached is None:
            todo[i] = spec
            continue
        if store is not None and not store.json_path(spec).exists():
            store.save(cached)  # read from a longer run it begins: kept under its own key too
        done[i] = cached
        if on_run is not None:
            on_run(cached)
    return done, todo


def check_run_options(executor: Executor | None, workers: int | None, on_error: str) -> None:
    """Check where and how runs train (``executor``, ``workers``, ``on_error``), before any work.

    Raises
    ------
    ConfigError
        ``executor`` is not a :class:`concurrent.futures.Executor`, ``workers`` < 1, or
        ``on_error`` is not one of :data:`ON_ERROR`.
    """
    if executor is not None and not isinstance(executor, Executor):
        raise ConfigError(f"executor must be a concurrent.futures.Executor (a process pool, "
                          f"Dask's client.get_executor()), got {type(executor).__name__}")
    if workers is not None:
        check_int("workers", workers)
    check_choice("on_error", on_error, ON_ERROR)


def _model_for(name: str, data: Data) -> Any:
    c, h, _ = data[0].image_shape
    return build_model(name, num_classes=data[0].num_classes, in_channels=c, image_size=h,
                       seed=0)


# -- the workers --------------------------------------------------------------------------------

#: Work a task aims at, in images trained (epochs x training images): one Fashion-MNIST epoch.
TASK_WORK = 60_000


def _dispatch(executor: Executor | None, n: int, data: Data, ref: DataRef | None,
              specs: dict[int, RunSpec], store: RunStore | None, device: str,
              arrived: Callable[[int, RunResult], None]) -> None:
    """Send the runs out: to our own pool one per task, to any other executor in groups."""
    if executor is None:
        handle = data_handle(data, ref, where="pool")
        with local_pool(min(n, len(specs)), handle, data) as (pool, children):
            _gather(pool, children, [[i] for i in specs], specs, handle, store, device, arrived)
        return
    shared = isinstance(executor, ThreadPoolExecutor)
    handle = data_handle(data, ref, where="threads" if shared else "processes")
    groups = [[i] for i in specs] if shared else _groups(specs, len(data[0]), executor)
    _gather(executor, [], groups, specs, handle, store, device, arrived)


def _groups(specs: dict[int, RunSpec], train_size: int, executor: Executor) -> list[list[int]]:
    """Runs in tasks of about :data:`TASK_WORK`, yet at least two tasks per worker."""
    get = getattr(executor, "parallelism", None)
    parallel = get() if callable(get) else 8  # an executor that does not say: a few workers
    todo = list(specs)
    work = max(1, max(s.epochs for s in specs.values()) * train_size)
    size = max(1, min(TASK_WORK // work, math.ceil(len(todo) / (2 * parallel))))
    return [todo[k:k + size] for k in range(0, len(todo), size)]


def _gather(pool: Executor, children: list[Process], groups: list[list[int]],
            specs: dict[int, RunSpec], handle: DataHandle, store: RunStore | None, device: str,
            arrived: Callable[[int, RunResult], None]) -> None:
    """Submit every group, hand each result to ``arrived`` as it comes; stop all on Ctrl-C."""
    futures: dict[Future[list[RunResult]], list[int]] = {}
    for group in groups:
        folder = str(store.folder) if store is not None else None
        futures[pool.submit(train_runs, [specs[i] for i in group], handle, folder, device)] = group
    pending = set(futures)
    try:
        while pending:
            finished, pending = wait(pending, return_when="FIRST_COMPLETED")
            for future in finished:
                group = futures.pop(future)  # let go: an engine recomputes results still held
                for i, result in zip(group, _results(future, [specs[i] for i in group]),
                                     strict=True):
                    arrived(i, result)
    except BaseException:
        for future in pending:
            future.cancel()
        for child in children:  # each running run stops at its next step, checkpoint kept
            if child.is_alive():
                os.kill(child.pid, signal.SIGTERM)  # type: ignore[arg-type]
        raise


def _results(future: Future[list[RunResult]], specs: list[RunSpec]) -> list[RunResult]:
    try:
        return future.result()
    except BrokenExecutor as exc:
        raise WorkerLostError(f"a worker process died before its run finished ({exc}); the runs "
                              "that finished are kept: call again to train only the rest") from None
    except Exception as exc:  # the task never came back: its worker was lost, or it was not sent
        return [_failed(s, f"its task did not come back ({type(exc).__name__}: {exc})")
                for s in specs]
