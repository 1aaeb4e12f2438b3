"""Runs as data: what to train (:class:`RunSpec`), what came out, where it is kept, who trains it.

A :class:`RunSpec` is the whole configuration of one run, names and numbers only, so it can be
hashed into a store key, written to JSON and sent to another process. :func:`run_one` trains
one in this process with a plain :meth:`fmclassify.Trainer.fit`; :func:`run_many` hands several
out through a :class:`concurrent.futures.Executor`:

* by default on a CPU, a process pool of this machine, one process per core
  (:func:`local_workers`), each with its share of the intra-op threads (one each on two cores),
  the data handed over once per process (inherited through ``fork`` on Linux, not copied);
* any executor you pass (``executor=``): a ``ThreadPoolExecutor``, a ``ProcessPoolExecutor`` or
  a cluster's, e.g. Dask's ``client.get_executor()``;
* one by one in this process when there is one run, one core, or a GPU (which one run keeps
  busy).

A run trained in a worker with one intra-op thread equals bit for bit the same run trained in
this process under ``torch.set_num_threads(1)``. Given a :class:`RunStore`, every finished run
is written there as it arrives, and unfinished runs keep their checkpoint there; calling again
trains only what is missing, each run resuming on its own.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import (
    BrokenExecutor,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from fmclassify._checks import check_choice, check_int, check_lr, check_seed
from fmclassify._io import atomic_write_bytes, dumps_json
from fmclassify.convergence import ConvergenceDetector
from fmclassify.data import ImageDataset
from fmclassify.exceptions import ConfigError, WorkerLostError
from fmclassify.gradients import GradientTracer
from fmclassify.history import History
from fmclassify.recipes import Recipe
from fmclassify.registry import build_model, get_model_spec
from fmclassify.steps import STEPS
from fmclassify.training import Trainer

__all__ = [
    "RECIPE_FIELDS",
    "Data",
    "RunResult",
    "RunSpec",
    "RunStore",
    "data_id",
    "local_workers",
    "run_many",
    "run_one",
]

Data = tuple[ImageDataset, ImageDataset]

#: The recipe arguments of :class:`~fmclassify.Trainer` that a :class:`RunSpec` carries.
RECIPE_FIELDS = tuple(f.name for f in fields(Recipe))


@dataclass(frozen=True)
class RunSpec:
    """The full configuration of one run; two equal specs give the same numbers.

    Parameters
    ----------
    model : str
        Registered model name.
    lr : float
        Learning rate.
    epochs : int
        Epoch budget.
    seed : int
        Seeds the weights, the shuffling, augmentation and dropout.
    batch_size, shuffle, step
        As for :class:`~fmclassify.Trainer`.
    optimizer, momentum, nesterov, weight_decay, schedule, warmup_epochs, label_smoothing, \
clip_grad_norm, augment, val_split, precision, ema
        The recipe, as for :class:`~fmclassify.Trainer`, by name (no callables: a spec is
        stored and sent to other processes as data).
    detector : tuple of (str, value) pairs, optional
        Keyword arguments of a :class:`~fmclassify.ConvergenceDetector`.
    tracer : tuple of (str, value) pairs, optional
        Keyword arguments of a :class:`~fmclassify.GradientTracer`.
    data : str
        Identifies the data: name, sizes and checksum (:func:`data_id`).

    Raises
    ------
    ConfigError
        For any value the Trainer would refuse, checked when the spec is made.
    """

    model: str
    lr: float
    epochs: int
    seed: int = 0
    batch_size: int = 64
    shuffle: bool = True
    step: str = "auto"
    optimizer: str = "sgd"
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str | None = None
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    clip_grad_norm: float | None = None
    augment: tuple[str, ...] | None = None
    val_split: float | int | None = None
    precision: str = "fp32"
    ema: float | None = None
    detector: tuple[tuple[str, Any], ...] | None = None
    tracer: tuple[tuple[str, Any], ...] | None = None
    data: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError(f"model must be a registered model name, got {self.model!r}")
        get_model_spec(self.model)  # an unknown name fails here, listing the close ones
        check_lr(self.lr)
        check_int("epochs", self.epochs)
        check_seed(self.seed)
        check_int("batch_size", self.batch_size)
        check_choice("step", self.step, STEPS)
        for name in ("optimizer", "schedule"):
            if callable(getattr(self, name)):
                raise ConfigError(f"{name} must be a name in a sweep (runs are stored and sent "
                                  "as data); train a callable with fmclassify.Trainer directly")
        if self.augment is not None:
            if isinstance(self.augment, str) or any(not isinstance(a, str) for a in self.augment):
                raise ConfigError("augment must be a tuple of names such as ('flip', 'crop') in "
                                  "a sweep; train callables with fmclassify.Trainer directly")
            object.__setattr__(self, "augment", tuple(self.augment))
        Recipe(**self.recipe_kwargs()).check_budget(self.epochs)

    def recipe_kwargs(self) -> dict[str, Any]:
        """The recipe arguments of the Trainer."""
        return {name: getattr(self, name) for name in RECIPE_FIELDS}

    @property
    def key(self) -> str:
        """A file-name-safe key: readable prefix plus a hash of the whole configuration."""
        blob = json.dumps(asdict(self), sort_keys=True, default=str).encode()
        digest = hashlib.sha256(blob).hexdigest()[:12]
        return f"{self.model}-lr{self.lr:g}-e{self.epochs}-s{self.seed}-{digest}"

    @property
    def label(self) -> str:
        """A short label for legends: ``"base lr=0.1"``."""
        return f"{self.model} lr={self.lr:g}"


@dataclass
class RunResult:
    """One finished (or ended) run: its spec, History and optional gradient trace."""

    spec: RunSpec
    history: History
    gradients: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; :meth:`from_dict` reads it back."""
        return {"spec": asdict(self.spec), "history": self.history.to_dict(),
                "gradients": self.gradients}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        """Rebuild a result written by :meth:`to_dict`."""
        raw = dict(data["spec"])
        for k in ("detector", "tracer"):
            if raw.get(k) is not None:
                raw[k] = tuple((a, _freeze(b)) for a, b in raw[k])
        if raw.get("augment") is not None:
            raw["augment"] = tuple(raw["augment"])
        return cls(RunSpec(**raw), History.from_dict(data["history"]), data.get("gradients"))


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class RunStore:
    """A folder of finished runs (``KEY.json``) and unfinished ones' checkpoints (``KEY.ckpt``).

    Parameters
    ----------
    folder : path-like
        Created if missing.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def json_path(self, spec: RunSpec) -> Path:
        """Where the finished run of ``spec`` is stored."""
        return self.folder / f"{spec.key}.json"

    def checkpoint_path(self, spec: RunSpec) -> Path:
        """Where the unfinished run of ``spec`` keeps its checkpoint."""
        return self.folder / f"{spec.key}.ckpt"

    def load(self, spec: RunSpec) -> RunResult | None:
        """The stored result of ``spec``, or None when it has not finished."""
        path = self.json_path(spec)
        if not path.exists():
            return None
        with open(path, encoding="utf-8") as fh:
            return RunResult.from_dict(json.load(fh))

    def save(self, result: RunResult) -> Path:
        """Store a finished run atomically and drop its checkpoint."""
        path = atomic_write_bytes(self.json_path(result.spec),
                                  dumps_json(result.to_dict()).encode())
        self.checkpoint_path(result.spec).unlink(missing_ok=True)
        return path


def data_id(train: ImageDataset, test: ImageDataset) -> str:
    """Identify a data pair for run keys: name, sizes and checksums."""
    return f"{train.name}:{len(train)}:{len(test)}:{train.checksum[:16]}:{test.checksum[:16]}"


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


def local_workers(runs: int, device: str = "auto") -> int:
    """How many processes :func:`run_many` starts here: one per core, 1 for a GPU or one run."""
    if runs < 2 or device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return 1
    return max(1, min(runs, torch.get_num_threads()))


def run_many(
    specs: Sequence[RunSpec],
    data: Data,
    *,
    store: RunStore | None = None,
    executor: Executor | None = None,
    workers: int | None = None,
    progress: bool = False,
    device: str = "auto",
    on_run: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """Train ``specs`` (those not finished in ``store``) and return their results in order.

    Parameters
    ----------
    specs : sequence of RunSpec
        The runs.
    data : (ImageDataset, ImageDataset)
        Train and test sets.
    store : RunStore, optional
        Finished runs are read from it and every newly finished run is written to it as it
        arrives; unfinished runs keep their checkpoint there and resume from it.
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
        Called with each RunResult as it finishes (or is read from the store).

    Returns
    -------
    list of RunResult
        In the order of ``specs``.

    Raises
    ------
    KeyboardInterrupt
        On Ctrl-C: runs not started are cancelled, running ones stop at their next step and
        keep the checkpoint of their last finished epoch, finished ones are in the store.
    """
    done: dict[int, RunResult] = {}
    todo = []
    for i, spec in enumerate(specs):
        cached = store.load(spec) if store is not None else None
        if cached is not None:
            done[i] = cached
            if on_run is not None:
                on_run(cached)
        else:
            todo.append(i)
    n = check_int("workers", workers) if workers is not None else local_workers(len(todo), device)
    if executor is None and min(n, len(todo)) <= 1:
        for i in todo:
            done[i] = run_one(specs[i], data, store=store, progress=progress, device=device)
            if on_run is not None:
                on_run(done[i])
    elif todo:
        def arrived(i: int, result: RunResult) -> None:
            if store is not None:
                store.save(result)
            done[i] = result
            if on_run is not None:
                on_run(result)

        with _executor(executor, min(n, len(todo)), data) as (pool, children):
            _gather(pool, children, {i: specs[i] for i in todo}, data, store, device, arrived)
    return [done[i] for i in range(len(specs))]


# -- the workers --------------------------------------------------------------------------------

_WORKER_DATA: dict[str, Data] = {}  # per process: the data handed to this worker


def _init_worker(key: str, data: Data, threads: int, parent: int) -> None:
    """A pool process's start: its data, its threads, and Ctrl-C left to the parent.

    The parent stops its workers with SIGTERM (each run then keeps the checkpoint of its last
    finished epoch). On Linux the kernel kills a worker whose parent died (SIGKILL: with no
    parent to report to, its unfinished epoch is lost, its checkpoints are not), so no orphan
    keeps writing checkpoints that a rerun is about to resume.
    """
    _WORKER_DATA[key] = data
    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before that line
            os.kill(os.getpid(), signal.SIGKILL)


def _train_in_worker(spec: RunSpec, key: str, data: Data | None, checkpoint: str | None,
                     device: str) -> RunResult:
    """One run in a worker, on the data handed to it (``data``, else the process's own)."""
    ds = data if data is not None else _WORKER_DATA[key]
    return _train(spec, ds, Path(checkpoint) if checkpoint else None, False, device)


@contextmanager
def _executor(given: Executor | None, n: int,
              data: Data) -> Iterator[tuple[Executor, list[multiprocessing.Process]]]:
    """The executor to use and, for our own pool, its processes (to stop them on Ctrl-C)."""
    if given is not None:
        yield given, []
        return
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    for ds in data:
        ds.float_images()  # computed once here; forked workers share these pages
    threads = max(1, torch.get_num_threads() // n)
    before = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context(method),
                               initializer=_init_worker,
                               initargs=(data_id(*data), data, threads, os.getpid()))
    children: list[multiprocessing.Process] = []
    try:
        pool.submit(int).result()  # start the workers now, to know their processes
        children = [p for p in multiprocessing.active_children() if p not in before]
        yield pool, children
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _gather(pool: Executor, children: list[multiprocessing.Process], specs: dict[int, RunSpec],
            data: Data, store: RunStore | None, device: str,
            arrived: Callable[[int, RunResult], None]) -> None:
    """Submit every spec, hand each result to ``arrived`` as it comes; stop all on Ctrl-C."""
    key = data_id(*data)
    # our own pool and thread pools already hold the data; any other executor gets it sent
    send = None if children or isinstance(pool, ThreadPoolExecutor) else data
    if isinstance(pool, ThreadPoolExecutor):
        _WORKER_DATA[key] = data
    futures: dict[Future[RunResult], int] = {}
    for i, spec in specs.items():
        ckpt = str(store.checkpoint_path(spec)) if store is not None else None
        futures[pool.submit(_train_in_worker, spec, key, send, ckpt, device)] = i
    pending = set(futures)
    try:
        while pending:
            finished, pending = wait(pending, return_when="FIRST_COMPLETED")
            for future in finished:
                arrived(futures[future], _result(future))
    except BaseException:
        for future in pending:
            future.cancel()
        for child in children:  # each running run stops at its next step, checkpoint kept
            if child.is_alive():
                os.kill(child.pid, signal.SIGTERM)  # type: ignore[arg-type]
        raise


def _result(future: Future[RunResult]) -> RunResult:
    try:
        return future.result()
    except BrokenExecutor as exc:
        raise WorkerLostError(f"a worker process died before its run finished ({exc}); the runs "
                         "that finished are kept: call again to train only the rest") from None
