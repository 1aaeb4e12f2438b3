"""Where a data set's files come from: their names and layouts, the search, the download.

Private: :mod:`fmclassify.data` decides the search order (the ``places``) and turns what is
found into tensors; this module knows which files make a complete copy (:data:`SPECS`), where
inside a folder they may lie (:func:`candidate_folders`), how to search a list of places and
say what each held (:func:`search`), and how to download with torchvision without two processes
tripping over each other (:func:`download`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

from ._formats import FIX_HINT, RawSplit, read_cifar_classes, read_cifar_split, read_idx_split
from .exceptions import CorruptDataError, DataError

__all__ = [
    "LOCK_NAME",
    "SPECS",
    "DatasetSpec",
    "Found",
    "Place",
    "candidate_folders",
    "download",
    "find_files",
    "read_dataset",
    "search",
]

_log = logging.getLogger("fmclassify.data")

#: The lock file a download holds in its target folder.
LOCK_NAME = ".fmclassify.lock"
_LOCK_TIMEOUT_S = 3600.0  # a CIFAR-10 download (163 MB) on a slow link stays well under this
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
_CIFAR_META = "batches.meta"


@dataclass(frozen=True)
class DatasetSpec:
    """What fmclassify knows about one data set: its files, layouts and class names.

    Parameters
    ----------
    name : str
        The name in ``fmclassify.data.DATASETS``.
    kind : {"idx", "cifar"}
        The file format.
    torchvision_name : str
        The class in ``torchvision.datasets`` that downloads it.
    download_dir : str
        Where that class puts the files, relative to its root (torchvision's layout).
    classes : tuple of str
        Class names in label order; empty when the files carry them (CIFAR's ``batches.meta``).
    install_hint : str
        A command that installs a system copy, when one exists.
    """

    name: str
    kind: Literal["idx", "cifar"]
    torchvision_name: str
    download_dir: str
    classes: tuple[str, ...] = ()
    install_hint: str = ""

    def split_files(self, split: str) -> tuple[str, ...]:
        """Return the file names of ``split`` (``"train"`` or ``"test"``), in reading order."""
        return (_IDX_FILES if self.kind == "idx" else _CIFAR_FILES)[split]

    @property
    def files(self) -> tuple[str, ...]:
        """Every file a complete copy holds."""
        extra = (_CIFAR_META,) if self.kind == "cifar" else ()
        return (*self.split_files("train"), *self.split_files("test"), *extra)


# Class names as torchvision spells them (a test checks that they stay equal), written out so
# that reading local files does not pay for importing torchvision.datasets (about a second).
_FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_KMNIST_CLASSES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")

#: The known data sets by name.
SPECS = {
    "fashion-mnist": DatasetSpec(
        "fashion-mnist", "idx", "FashionMNIST", "FashionMNIST/raw", _FASHION_CLASSES,
        install_hint="sudo apt-get install dataset-fashion-mnist",
    ),
    "mnist": DatasetSpec("mnist", "idx", "MNIST", "MNIST/raw", tuple("0123456789")),
    "kmnist": DatasetSpec("kmnist", "idx", "KMNIST", "KMNIST/raw", _KMNIST_CLASSES),
    "cifar10": DatasetSpec("cifar10", "cifar", "CIFAR10", "cifar-10-batches-py"),
}  # fmt: skip


class Place(NamedTuple):
    """A place to search: a label for messages, and the folder (None: not set)."""

    label: str
    path: Path | None


#: A complete copy: the folder, and each file name mapped to the path found (plain or .gz).
Found = tuple[Path, dict[str, Path]]


def candidate_folders(place: Path, spec: DatasetSpec) -> list[Path]:
    """Return the folders of ``place`` that may hold ``spec``'s files, in the order tried.

    The place itself, ``<place>/<name>``, and torchvision's layout under ``place``.
    """
    return [place, place / spec.name, place / spec.download_dir]


def _existing(folder: Path, name: str, *, gzip_ok: bool) -> Path | None:
    """Return ``folder/name``, or else ``folder/name.gz`` when allowed, if it is a file."""
    for candidate in (name, f"{name}.gz") if gzip_ok else (name,):
        path = folder / candidate
        if path.is_file():
            return path
    return None


def find_files(folder: Path, spec: DatasetSpec) -> tuple[dict[str, Path] | None, str]:
    """Look for a complete copy of ``spec`` directly in ``folder``.

    Where both a plain and a gzipped IDX file exist (torchvision keeps both), the plain one is
    read: it needs no decompression.

    Returns
    -------
    files : dict of str to pathlib.Path, or None
        Each file name of :attr:`DatasetSpec.files` mapped to the path found; None unless all
        are there.
    status : str
        ``"found"``, or why not, for the error listing every place looked.
    """
    if not folder.is_dir():
        return None, "not a folder" if folder.exists() else "does not exist"
    found = {n: _existing(folder, n, gzip_ok=spec.kind == "idx") for n in spec.files}
    missing = [name for name, path in found.items() if path is None]
    if not missing:
        return {name: path for name, path in found.items() if path is not None}, "found"
    if len(missing) == len(found):
        return None, f"no {spec.name} files"
    suffix = "[.gz]" if spec.kind == "idx" else ""
    return None, "incomplete: missing " + ", ".join(m + suffix for m in missing)


def search(spec: DatasetSpec, places: list[Place], log: list[str]) -> Found | None:
    """Return the first folder holding a complete copy, and its files.

    Parameters
    ----------
    spec : DatasetSpec
        The data set.
    places : list of Place
        Searched in order; in each, the folders of :func:`candidate_folders`.
    log : list of str
        Receives one indented line per place and per folder tried, with what it held.

    Returns
    -------
    tuple of (pathlib.Path, dict) or None
        The folder and its files, as :func:`find_files` gives them; None when no folder holds
        a complete copy.
    """
    seen: set[Path] = set()
    for label, place in places:
        if place is None:
            log.append(f"  {label}: not set")
            continue
        log.append(f"  {label} ({place}):")
        for folder in candidate_folders(place, spec):
            if folder in seen:  # e.g. root and $FMCLASSIFY_DATA naming the same folder
                continue
            seen.add(folder)
            files, status = find_files(folder, spec)
            if files is not None:
                return folder, files
            log.append(f"    {folder}: {status}")
    return None


def download(spec: DatasetSpec, target: Path) -> Found:
    """Download ``spec`` with torchvision into ``target``, safe against concurrent callers.

    Under a file lock on ``target/.fmclassify.lock``: if another process finished the job while
    we waited, its files are used; else torchvision downloads (and md5-checks) into a temporary
    folder inside ``target``, and each finished file is moved into torchvision's layout with
    :func:`os.replace`, which is atomic, so no reader ever sees a half-written file.

    Parameters
    ----------
    spec : DatasetSpec
        The data set.
    target : pathlib.Path
        The folder to download into (created when missing).

    Returns
    -------
    tuple of (pathlib.Path, dict)
        The folder holding the files, and the files, as :func:`search` gives them.

    Raises
    ------
    Exception
        Whatever the download raised: ``RuntimeError`` or ``urllib.error.URLError`` from
        torchvision, ``OSError`` from the disk, ``filelock.Timeout`` after an hour's wait.
    """
    import filelock  # only a download needs these; torchvision.datasets takes ~1 s to import
    import torchvision.datasets

    target.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(target / LOCK_NAME, timeout=_LOCK_TIMEOUT_S):
        found = search(spec, [Place("download folder", target)], [])
        if found is not None:
            return found
        with tempfile.TemporaryDirectory(dir=target, prefix=".download-") as tmp:
            _log.info("downloading %s into %s", spec.name, target)
            # Constructing the dataset downloads every file of both splits and checks their md5
            # sums; it also decodes the train split, which costs a second, once.
            getattr(torchvision.datasets, spec.torchvision_name)(tmp, train=True, download=True)
            source, dest = Path(tmp) / spec.download_dir, target / spec.download_dir
            dest.mkdir(parents=True, exist_ok=True)
            for path in sorted(source.iterdir()):
                if path.is_file():
                    os.replace(path, dest / path.name)
    files, status = find_files(dest, spec)
    if files is None:
        raise DataError(f"the download left {dest} {status}")
    return dest, files


def read_dataset(
    spec: DatasetSpec, files: dict[str, Path]
) -> tuple[RawSplit, RawSplit, tuple[str, ...]]:
    """Read both splits of a complete copy found by :func:`find_files`.

    Returns
    -------
    train, test : RawSplit
        The two splits.
    classes : tuple of str
        The class names.

    Raises
    ------
    CorruptDataError
        A damaged file (named), or train and test images of different shapes.
    """
    classes = spec.classes or read_cifar_classes(files[_CIFAR_META])
    splits = []
    for split in ("train", "test"):
        paths = [files[name] for name in spec.split_files(split)]
        if spec.kind == "idx":
            splits.append(read_idx_split(paths[0], paths[1], len(classes)))
        else:
            splits.append(read_cifar_split(paths, len(classes)))
    train, test = splits
    if train.images.shape[1:] != test.images.shape[1:]:
        raise CorruptDataError(
            f"corrupt data in {files[spec.files[0]].parent}: train images have shape "
            f"{tuple(train.images.shape[1:])} but test images {tuple(test.images.shape[1:])}. "
            + FIX_HINT
        )
    return train, test, classes
