"""Find, fetch, validate and hold the image data sets; batch them fast.

:func:`load_dataset` returns the train and test splits as :class:`ImageDataset` objects: whole
uint8 tensors in memory. Training takes batches as slices of those tensors
(:func:`iter_batches`), because the quickstart's per-sample PIL transform path is several times
slower and does nothing a slice cannot do.

Where the data comes from
-------------------------
The first of these places that holds a complete copy wins:

1. the ``root`` argument;
2. the folder named by the environment variable ``FMCLASSIFY_DATA``;
3. the user cache, ``$XDG_CACHE_HOME/fmclassify`` or ``~/.cache/fmclassify``;
4. the system copy under :data:`SYSTEM_DATA_DIR` (Debian's ``dataset-fashion-mnist`` installs
   ``/usr/share/datasets/fashion-mnist``);
5. a download with torchvision into ``root`` if given, else into the user cache.

In each place the files may lie in the folder itself, in ``<place>/<name>/`` (``name`` as in
:data:`DATASETS`), or in torchvision's layout (``<place>/FashionMNIST/raw/``,
``<place>/cifar-10-batches-py/``). IDX files may be gzipped (``.gz``) or not. When nothing is
found, one :class:`~fmclassify.exceptions.DataNotFoundError` lists every folder looked in and
the ways to fix it. A damaged file raises :class:`~fmclassify.exceptions.CorruptDataError`
naming it; a damaged copy is never skipped silently in favour of the next place.

Downloads take a file lock (``<target>/.fmclassify.lock``) and go to a temporary folder inside
the target first; the finished files are then moved into place with :func:`os.replace`, so two
processes preparing the same folder at once neither corrupt it nor download twice.

CIFAR-10 batches are Python pickles. They are read with ``encoding="latin1"`` as torchvision
does, through an unpickler that accepts nothing but numpy arrays, lists, numbers and strings,
because unpickling an untrusted file could otherwise run arbitrary code.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from . import _sources
from ._batching import iter_batches, num_batches
from ._formats import RawSplit
from ._sources import SPECS, DatasetSpec, Found, Place
from .exceptions import ConfigError, DataError, DataNotFoundError, UnknownDatasetError

__all__ = [
    "DATASETS",
    "ENV_VAR",
    "HINTS",
    "SYSTEM_DATA_DIR",
    "ImageDataset",
    "iter_batches",
    "list_datasets",
    "load_dataset",
    "num_batches",
]

_log = logging.getLogger(__name__)

#: The data set names :func:`load_dataset` accepts (aliases aside).
DATASETS: tuple[str, ...] = ("fashion-mnist", "mnist", "kmnist", "cifar10")
#: The environment variable naming a folder to look in (second in the search order).
ENV_VAR = "FMCLASSIFY_DATA"
#: Where system packages install data sets (Debian: ``dataset-fashion-mnist``).
SYSTEM_DATA_DIR = Path("/usr/share/datasets")

_ALIASES = {
    "fashionmnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
    "cifar-10": "cifar10",
}


def list_datasets() -> list[str]:
    """Return the names of the data sets :func:`load_dataset` knows.

    Returns
    -------
    list of str
        ``["fashion-mnist", "mnist", "kmnist", "cifar10"]``.

    Examples
    --------
    >>> list_datasets()
    ['fashion-mnist', 'mnist', 'kmnist', 'cifar10']
    """
    return list(DATASETS)


def _canonical_name(name: str) -> str:
    """Map a data set name or alias (any case, ``_`` for ``-``) to its name in DATASETS."""
    if not isinstance(name, str):
        raise TypeError(f"the data set name must be a string, got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key in SPECS:
        return key
    choices = [*DATASETS, *_ALIASES]
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    hint = f"did you mean {_ALIASES.get(close[0], close[0])!r}? " if close else ""
    raise UnknownDatasetError(f"unknown data set {name!r}; {hint}available: {', '.join(DATASETS)}")


@dataclass(eq=False)
class ImageDataset:
    """One split of an image data set, held whole in memory.

    Parameters
    ----------
    images : torch.Tensor
        Shape (N, C, H, W): uint8 pixels 0..255 (what the loaders give), or float32 values
        already on the scale the model should see (your own preprocessed data), which must
        all be finite.
    labels : torch.Tensor
        int64, shape (N,), values in ``[0, len(classes))``, on the device of ``images``.
    classes : tuple of str
        Class names, in label order.
    name : str, optional
        The data set's name (``"fashion-mnist"``, ...).
    split : str, optional
        ``"train"`` or ``"test"``.
    source : str, optional
        The folder the files were read from.
    checksum : str, optional
        sha256 hex digest over the uncompressed content of the files of this split, in reading
        order (IDX: images, then labels; CIFAR-10: the batches). A gzipped and a plain copy of
        the same data give the same checksum. A :meth:`subset` keeps its source's checksum.
    mean, std : tuple of float, optional
        Per-channel normalization applied by :meth:`float_images` (on the [0, 1] scale); both
        ``None`` (the default) for plain [0, 1] floats.

    Raises
    ------
    DataError
        Wrong dtypes, shapes or devices, a length mismatch, no images, a label out of range, or
        mean/std that do not match the channels.

    Examples
    --------
    >>> ds = ImageDataset(torch.zeros(4, 1, 28, 28, dtype=torch.uint8),
    ...                   torch.tensor([0, 1, 2, 1]), classes=("a", "b", "c"))
    >>> len(ds), ds.num_classes, ds.image_shape
    (4, 3, (1, 28, 28))
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    name: str = ""
    split: str = ""
    source: str = ""
    checksum: str = ""
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    _float_cache: torch.Tensor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.classes = tuple(self.classes)
        what = f"data set {self.name!r} ({self.split})" if self.name else "data set"
        images, labels = self.images, self.labels
        if (not isinstance(images, torch.Tensor) or images.ndim != 4
                or images.dtype not in (torch.uint8, torch.float32)):
            raise DataError(
                f"{what}: images must be a uint8 (or float32) tensor of shape (N, C, H, W), got "
                f"{_describe(images)}"
            )
        if images.dtype == torch.float32:
            _check_finite(images, what)
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.ndim != 1:
            raise DataError(
                f"{what}: labels must be an int64 tensor of shape (N,), got {_describe(labels)}"
            )
        if len(images) != len(labels):
            raise DataError(f"{what}: {len(images)} images but {len(labels)} labels")
        if len(images) == 0:
            raise DataError(f"{what}: it holds no images")
        if images.device != labels.device:
            raise DataError(f"{what}: images on {images.device} but labels on {labels.device}")
        if not self.classes or not all(isinstance(c, str) for c in self.classes):
            raise DataError(f"{what}: classes must be a non-empty sequence of names")
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= len(self.classes):
            raise DataError(
                f"{what}: labels span {low}..{high}, but with {len(self.classes)} "
                f"classes they must lie in 0..{len(self.classes) - 1}"
            )
        self._check_normalization(what)

    def _check_normalization(self, what: str) -> None:
        """Check that mean and std are both unset, or both one positive value per channel."""
        if self.mean is None and self.std is None:
            return
        channels = self.images.shape[1]
        if self.mean is None or self.std is None:
            raise DataError(f"{what}: set both mean and std, or neither")
        self.mean, self.std = tuple(map(float, self.mean)), tuple(map(float, self.std))
        if len(self.mean) != channels or len(self.std) != channels:
            raise DataError(
                f"{what}: mean and std need one value per channel ({channels}), "
                f"got {len(self.mean)} and {len(self.std)}"
            )
        if not all(s > 0 for s in self.std):
            raise DataError(f"{what}: every std must be positive, got {self.std}")

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"image_shape={self.image_shape}, classes={self.num_classes}, "
            f"device={self.images.device}, normalized={self.mean is not None})"
        )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(classes)``)."""
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape of one image, (C, H, W)."""
        _, c, h, w = self.images.shape
        return (c, h, w)

    def float_images(self) -> torch.Tensor:
        """Return the images as float32, exactly as the quickstart's transforms would.

        ``images / 255`` with the very operations of ``torchvision.transforms.ToTensor``, then,
        when ``mean`` and ``std`` are set, ``(x - mean) / std`` per channel as
        ``transforms.Normalize`` does. Computed once, on the device of ``images``, and cached:
        do not modify the returned tensor in place.

        Returns
        -------
        torch.Tensor
            float32, shape (N, C, H, W).
        """
        if self._float_cache is None:
            if self.images.dtype == torch.float32:
                x = self.images.clone()  # already scaled by the caller; never alias their tensor
            else:
                x = self.images.to(torch.float32).div(255)
            if self.mean is not None and self.std is not None:
                mean = torch.as_tensor(self.mean, dtype=torch.float32, device=x.device)
                std = torch.as_tensor(self.std, dtype=torch.float32, device=x.device)
                x.sub_(mean.view(-1, 1, 1)).div_(std.view(-1, 1, 1))
            self._float_cache = x
        return self._float_cache

    def subset(self, n_or_indices: int | slice | Sequence[int] | torch.Tensor) -> ImageDataset:
        """Return a subset that keeps this split's metadata.

        Parameters
        ----------
        n_or_indices : int, slice, sequence of int or torch.Tensor
            ``n``: the first ``n`` images (``1 <= n <= len(self)``); a slice; or indices (a 1-D
            integer tensor or sequence, or a boolean mask of length N).

        Returns
        -------
        ImageDataset
            A new data set; a cached :meth:`float_images` result is carried over.

        Raises
        ------
        ConfigError
            ``n`` out of range, an index out of range, or a selection with no images.
        """
        if isinstance(n_or_indices, bool):
            raise ConfigError("subset() takes a count, a slice or indices, not a bool")
        if isinstance(n_or_indices, int):
            if not 1 <= n_or_indices <= len(self):
                raise ConfigError(
                    f"subset({n_or_indices}): n must lie in 1..{len(self)}, the "
                    "size of the data set"
                )
            index: slice | torch.Tensor = slice(0, n_or_indices)
        elif isinstance(n_or_indices, slice):
            index = n_or_indices
        else:
            index = self._index_tensor(n_or_indices)
        images, labels = self._take(self.images, index), self._take(self.labels, index)
        if len(labels) == 0:
            raise ConfigError(f"subset({n_or_indices!r}) selects no images")
        new = replace(self, images=images, labels=labels)
        if self._float_cache is not None:
            new._float_cache = self._take(self._float_cache, index)
        return new

    def _index_tensor(self, indices: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """Turn indices or a boolean mask into a checked 1-D int64 index on our device."""
        index = torch.as_tensor(indices, device=self.images.device)
        if index.dtype == torch.bool and index.shape == (len(self),):
            index = index.nonzero().squeeze(1)
        if index.ndim != 1 or index.dtype.is_floating_point or index.dtype == torch.bool:
            raise ConfigError(
                "subset() indices must be a 1-D integer tensor or sequence, or a "
                f"boolean mask of length {len(self)}; got {_describe(index)}"
            )
        index = index.to(torch.int64)
        if len(index) and not (-len(self) <= int(index.min()) and int(index.max()) < len(self)):
            raise ConfigError(
                f"subset() index out of range for a data set of {len(self)} "
                f"images (indices span {int(index.min())}..{int(index.max())})"
            )
        return index % len(self)  # negative indices count from the end, as in Python

    @staticmethod
    def _take(tensor: torch.Tensor, index: slice | torch.Tensor) -> torch.Tensor:
        """Select along dimension 0 by slice (a view) or index tensor (a copy)."""
        return tensor[index] if isinstance(index, slice) else tensor.index_select(0, index)

    def to(self, device: torch.device | str) -> ImageDataset:
        """Return this data set on ``device`` (``self`` when it is already there).

        Parameters
        ----------
        device : torch.device or str
            Target device, e.g. ``"cuda"``.

        Returns
        -------
        ImageDataset
            Same metadata; the float cache is recomputed on the new device when needed.
        """
        device = torch.device(device)
        if self.images.device == device or (
            device.index is None and self.images.device.type == device.type
        ):
            return self
        return replace(self, images=self.images.to(device), labels=self.labels.to(device))


def _check_finite(images: torch.Tensor, what: str) -> None:
    bad = ~torch.isfinite(images)
    if bool(bad.any()):
        count = int(bad.sum())
        first = int(bad.flatten(1).any(1).nonzero()[0])
        raise DataError(
            f"{what}: {count} image values are NaN or infinite (first in image {first}); "
            "clean or drop those images before training"
        )


def _describe(value: object) -> str:
    """Describe a value for an error message: dtype and shape of tensors, else the type."""
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


# ---------------------------------------------------------------------------------------------
# Finding and fetching the files
# ---------------------------------------------------------------------------------------------


def _user_cache_dir() -> Path:
    """Return ``$XDG_CACHE_HOME/fmclassify``, or ``~/.cache/fmclassify`` when it is unset."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # the XDG spec says to ignore a relative path
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "fmclassify"


def _places(root: Path | None) -> list[Place]:
    """Return the places to search, in the documented order (read when called)."""
    env = os.environ.get(ENV_VAR, "")
    return [
        Place("root argument", root),
        Place(f"${ENV_VAR}", Path(env).expanduser() if env else None),
        Place("user cache", _user_cache_dir()),
        Place("system copy", SYSTEM_DATA_DIR),
    ]


#: The phrases of a :class:`DataNotFoundError` that speak of Python arguments, by what they
#: refer to; the command line puts its own flags in their place (``--no-download``, ...).
HINTS = {
    "download": "call load_dataset(..., download=True) on a machine with internet access",
    "root": "pass root=<folder>",
    "no_download": "(download=False)",
}


def _not_found(spec: DatasetSpec, log: list[str], download: str) -> DataNotFoundError:
    """Build the one error that lists every place looked and the ways to fix it."""
    fixes = [f"install the system copy: {spec.install_hint}"] if spec.install_hint else []
    wanted = ", ".join(spec.files) + (" (each may be .gz)" if spec.kind == "idx" else "")
    fixes += [
        f"put the files ({wanted}) in a folder and set {ENV_VAR}=<folder> or {HINTS['root']}",
        HINTS["download"],
    ]
    return DataNotFoundError(
        f"could not find the {spec.name} data set. Looked in:\n"
        + "\n".join(log)
        + f"\n  download: {download}\nTo fix it, do one of:\n"
        + "\n".join(f"  - {fix}" for fix in fixes)
    )


def _locate(spec: DatasetSpec, root: str | os.PathLike[str] | None, fetch: bool) -> Found:
    """Search the places in order, then download; raise DataNotFoundError when all fail."""
    root_path = Path(root).expanduser() if root is not None else None
    log: list[str] = []
    found = _sources.search(spec, _places(root_path), log)
    if found is not None:
        return found
    if not fetch:
        raise _not_found(spec, log, f"not attempted {HINTS['no_download']}")
    target = root_path if root_path is not None else _user_cache_dir()
    try:
        return _sources.download(spec, target)
    except Exception as exc:  # any failure (network, md5, disk, lock) means "not found"; say why
        reason = f"into {target} failed: {type(exc).__name__}: {exc}".strip()
        raise _not_found(spec, log, reason) from exc


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and (population) std of uint8 images on the [0, 1] scale.

    A 256-bin histogram per channel gives both in one pass without a float copy of the data.
    """
    means, stds = [], []
    values = torch.arange(256, dtype=torch.float64)
    for channel in images.transpose(0, 1).reshape(images.shape[1], -1):
        counts = torch.bincount(channel.cpu(), minlength=256).to(torch.float64)
        total = counts.sum()
        mean = (counts * values).sum() / total
        var = (counts * (values - mean) ** 2).sum() / total
        means.append(float(mean) / 255)
        stds.append(float(var.sqrt()) / 255)
    return tuple(means), tuple(stds)


def load_dataset(
    name: str = "fashion-mnist",
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    *,
    normalize: bool = False,
) -> tuple[ImageDataset, ImageDataset]:
    """Find (or download), validate and load a data set's train and test splits.

    Parameters
    ----------
    name : str, default "fashion-mnist"
        One of :data:`DATASETS`, case-insensitive; aliases ``fashion_mnist``, ``fmnist``,
        ``FashionMNIST``, ``cifar-10``.
    root : str or os.PathLike, optional
        A folder searched first, and where a download goes (default: the user cache).
    download : bool, default True
        Download with torchvision when no local copy is found.
    normalize : bool, default False
        Give both splits the train split's per-channel mean and std, so that
        :meth:`ImageDataset.float_images` returns standardized values. The default keeps the
        quickstart's plain ``ToTensor()`` scale, [0, 1].

    Returns
    -------
    train, test : ImageDataset
        uint8 images (N, C, H, W) and int64 labels, on the CPU.

    Raises
    ------
    UnknownDatasetError
        ``name`` is not a known data set (the message suggests the closest).
    DataNotFoundError
        No copy anywhere and no download; the message lists every folder looked in.
    CorruptDataError
        A file is truncated or malformed; the message names it.

    Examples
    --------
    >>> train, test = load_dataset("fashion-mnist")  # doctest: +SKIP
    >>> len(train), len(test), train.image_shape  # doctest: +SKIP
    (60000, 10000, (1, 28, 28))
    """
    spec = SPECS[_canonical_name(name)]
    folder, files = _locate(spec, root, download)
    _log.info("reading %s from %s", spec.name, folder)
    raw_train, raw_test, classes = _sources.read_dataset(spec, files)
    mean, std = _channel_stats(raw_train.images) if normalize else (None, None)

    def build(raw: RawSplit, split: str) -> ImageDataset:
        return ImageDataset(
            raw.images,
            raw.labels,
            classes,
            name=spec.name,
            split=split,
            source=str(folder),
            checksum=raw.checksum,
            mean=mean,
            std=std,
        )

    return build(raw_train, "train"), build(raw_test, "test")

