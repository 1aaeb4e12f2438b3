"""What a worker needs to train runs: the data set by name (DataRef), and this machine's pool.

:func:`fmclassify.runs.run_many` sends runs to a :class:`concurrent.futures.Executor` as data
(a :class:`~fmclassify.runs.RunSpec` each), never as live modules or tensors. The data set
goes by name where it can:

* a :class:`DataRef` names it (data set, folder, sizes of the subsets): each worker process
  loads it once, keeps it for the runs that follow (the last two data sets it saw), and
  checks that its copy is the one this process trained on (file checksums, and for data
  handed in as tensors a fingerprint of their content);
* data that loaded from files (:func:`~fmclassify.load_dataset`, and the first N images of it
  through :meth:`~fmclassify.ImageDataset.subset`) is named so automatically;
* data that cannot be named (built in memory, e.g. synthetic test sets) travels with each task:
  small runs are grouped a few to a task, so that is once per few runs. Save it and pass a
  :class:`DataRef` to send it by name instead;
* threads of this process are handed the data itself.

This machine's own pool (:func:`local_pool`) is a process pool whose workers inherit the data
(``fork`` on Linux) and die with their parent; :mod:`fmclassify.clusters` gives the executors
of other machines.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sys
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch

from fmclassify._checks import check_int
from fmclassify.data import ImageDataset, load_dataset
from fmclassify.exceptions import ConfigError, DataError

__all__ = [
    "Data",
    "DataHandle",
    "DataRef",
    "data_handle",
    "data_id",
    "fingerprint",
    "local_pool",
    "local_workers",
    "remember",
    "resolve",
]

Data = tuple[ImageDataset, ImageDataset]

_KEEP = 2  # data sets a worker process keeps loaded
_CACHE: OrderedDict[str, Data] = OrderedDict()  # per process: key -> (train, test)
_FINGERPRINTS: weakref.WeakKeyDictionary[ImageDataset, str] = weakref.WeakKeyDictionary()


def data_id(train: ImageDataset, test: ImageDataset) -> str:
    """Identify a data pair for run keys: name, sizes and checksums."""
    return f"{train.name}:{len(train)}:{len(test)}:{train.checksum[:16]}:{test.checksum[:16]}"


@dataclass(frozen=True)
class DataRef:
    """A data set by name, which every worker process loads once for itself.

    Parameters
    ----------
    name : str, default "fashion-mnist"
        As for :func:`~fmclassify.load_dataset`.
    root : str or path-like, optional
        A folder searched first (each worker looks there on its own machine, then in the other
        places :func:`~fmclassify.load_dataset` knows).
    download : bool, default True
        Let a worker download the data when it finds no copy.
    train_size, test_size : int, optional
        Keep the first N images of each split (default: all).
    normalize : bool, default False
        As for :func:`~fmclassify.load_dataset`.
    fingerprint : str, optional
        The content digest of the pair this stands for; a worker whose copy differs refuses
        it. Set by :meth:`of`.

    Examples
    --------
    >>> ref = DataRef("fashion-mnist", train_size=2000, test_size=500)
    >>> train, test = ref.load()                                 # doctest: +SKIP
    >>> result = fmc.lr_sweep(data=ref, executor=ex)              # doctest: +SKIP
    """

    name: str = "fashion-mnist"
    root: str | None = None
    download: bool = True
    train_size: int | None = None
    test_size: int | None = None
    normalize: bool = False
    fingerprint: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name must be a data set name such as 'fashion-mnist', "
                              f"got {self.name!r}")
        if self.root is not None:
            object.__setattr__(self, "root", os.fspath(self.root))
        for size in ("train_size", "test_size"):
            if getattr(self, size) is not None:
                check_int(size, getattr(self, size))

    def load(self) -> Data:
        """Load the pair (in this process; no cache), checked against :attr:`fingerprint`.

        Raises
        ------
        DataError
            The data is missing, or differs from the fingerprint.
        """
        train, test = load_dataset(self.name, root=self.root, download=self.download,
                                   normalize=self.normalize)
        if self.train_size is not None and self.train_size != len(train):
            train = train.subset(self.train_size)  # more than there are: a clear ConfigError
        if self.test_size is not None and self.test_size != len(test):
            test = test.subset(self.test_size)
        if self.fingerprint is not None and fingerprint(train, test) != self.fingerprint:
            raise DataError(f"the copy of {self.name} found here ({train.source}) differs from "
                            "the data the runs were made for; give every machine the same files")
        return train, test

    @classmethod
    def of(cls, train: ImageDataset, test: ImageDataset) -> DataRef | None:
        """The reference that reloads this pair, or None when it cannot be named.

        A pair can be named when both splits came from the files of one data set, each whole
        or its first N images; its fingerprint makes a worker refuse any other content.
        """
        if not (train.name and train.source and train.checksum and test.checksum
                and test.name == train.name and test.source == train.source):
            return None
        return cls(train.name, root=train.source, download=False, train_size=len(train),
                   test_size=len(test), normalize=train.mean is not None,
                   fingerprint=fingerprint(train, test))


def fingerprint(train: ImageDataset, test: ImageDataset) -> str:
    """A digest of the pair's content (images, labels, normalization), cached per data set."""
    parts = []
    for ds in (train, test):
        if ds not in _FINGERPRINTS:
            h = hashlib.sha256(repr((ds.image_shape, ds.mean, ds.std)).encode())
            for t in (ds.images, ds.labels):
                h.update(memoryview(t.detach().cpu().contiguous().numpy()).cast("B"))
            _FINGERPRINTS[ds] = h.hexdigest()
        parts.append(_FINGERPRINTS[ds])
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class DataHandle:
    """What a task carries to name its data: a key, and a reference or the data itself."""

    key: str
    ref: DataRef | None = None
    payload: Data | None = None

    def open(self) -> Data:
        """The data in this process: carried along, else the kept copy, else loaded and kept."""
        if self.payload is not None:
            return self.payload
        if self.key in _CACHE:
            _CACHE.move_to_end(self.key)
            return _CACHE[self.key]
        if self.ref is None:
            raise DataError("this worker process holds no data for its runs (it was not "
                            "started by this run_many call); pass the data by DataRef")
        data = self.ref.load()
        remember(self.key, data)
        return data


def remember(key: str, data: Data) -> None:
    """Keep ``data`` in this process under ``key`` (the last few data sets are kept)."""
    _CACHE[key] = data
    _CACHE.move_to_end(key)
    while len(_CACHE) > _KEEP:
        _CACHE.popitem(last=False)


def data_handle(data: Data, ref: DataRef | None, *,
                where: Literal["pool", "threads", "processes"]) -> DataHandle:
    """How the tasks of ``where`` find ``data``.

    ``"pool"``: this machine's pool, whose processes hold it under the handle's key
    (:func:`local_pool`); ``"threads"``: threads of this process, handed it as it is;
    ``"processes"``: any other processes, by ``ref`` (or one derived from the data), else by
    value, the data travelling with each task.
    """
    if where == "pool":
        return DataHandle(f"local:{id(data[0])}:{id(data[1])}")
    if where == "threads":
        return DataHandle("threads", payload=data)
    ref = ref if ref is not None else DataRef.of(*data)
    if ref is not None:
        return DataHandle(repr(ref), ref=ref)
    return DataHandle(f"value:{fingerprint(*data)}", payload=data)


def resolve(data: Data | DataRef) -> tuple[Data, DataRef | None]:
    """The tensors of ``data`` (a DataRef is loaded once per process) and its reference."""
    if isinstance(data, DataRef):
        return DataHandle(repr(data), ref=data).open(), data
    if (not isinstance(data, tuple) or len(data) != 2
            or not all(isinstance(d, ImageDataset) for d in data)):
        raise ConfigError("data must be a (train, test) pair of ImageDatasets from "
                          f"fmclassify.load_dataset, or a fmclassify.DataRef; got {data!r:.80}")
    return data, None


# -- this machine's processes -------------------------------------------------------------------


def local_workers(runs: int, device: str = "auto") -> int:
    """How many processes :func:`run_many` starts here: one per core, 1 for a GPU or one run."""
    if runs < 2 or device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return 1
    return max(1, min(runs, torch.get_num_threads()))


def _init_worker(key: str, data: Data, threads: int, parent: int) -> None:
    """A pool process's start: its data, its threads, and Ctrl-C left to the parent.

    The parent stops its workers with SIGTERM (each run then keeps the checkpoint of its last
    finished epoch). On Linux the kernel kills a worker whose parent died (SIGKILL: with no
    parent to report to, its unfinished epoch is lost, its checkpoints are not), so no orphan
    keeps writing checkpoints that a rerun is about to resume.
    """
    remember(key, data)
    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before that line
            os.kill(os.getpid(), signal.SIGKILL)


@contextmanager
def local_pool(n: int, handle: DataHandle,
               data: Data) -> Iterator[tuple[Executor, list[multiprocessing.Process]]]:
    """A pool of ``n`` processes holding ``data`` under ``handle``'s key, and its processes.

    Each process gets its share of this machine's intra-op threads. The processes are known
    so that Ctrl-C can stop them (SIGTERM: each run keeps its last finished epoch).
    """
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    for ds in data:
        ds.float_images()  # computed once here; forked workers share these pages
    threads = max(1, torch.get_num_threads() // n)
    before = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context(method),
                               initializer=_init_worker,
                               initargs=(handle.key, data, threads, os.getpid()))
    children: list[multiprocessing.Process] = []
    try:
        pool.submit(int).result()  # start the workers now, to know their processes
        children = [p for p in multiprocessing.active_children() if p not in before]
        yield pool, children
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
