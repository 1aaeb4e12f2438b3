"""Readers for the on-disk formats of the data sets: IDX files and CIFAR-10 pickle batches.

Private: :mod:`fmclassify.data` is the public face, :mod:`fmclassify._sources` finds the files.
Every reader checks what it reads before decoding it, so that any problem becomes one
:class:`~fmclassify.exceptions.CorruptDataError` naming the file and what is wrong with it,
never a stray ``struct.error`` or ``IndexError``. Decoding works on whole buffers
(``numpy.frombuffer``), never sample by sample.

IDX (MNIST, Fashion-MNIST, KMNIST)
    A big-endian header: the magic number ``0x000008DD`` (two zero bytes, the data type code
    ``0x08`` for unsigned bytes, the number of dimensions ``DD``), one ``uint32`` size per
    dimension, then the data in row-major order. Images are ``0x00000803`` (count, rows,
    columns), labels ``0x00000801`` (count). Files may be gzip-compressed.
CIFAR-10 (the "python version")
    Pickled dicts: ``data_batch_1`` .. ``data_batch_5`` and ``test_batch`` hold ``data`` (a
    uint8 array of shape (N, 3072): 1024 red, then 1024 green, then 1024 blue values, each
    32 x 32 plane row-major) and ``labels`` (N ints); ``batches.meta`` holds ``label_names``.
    They are read with ``encoding="latin1"`` as torchvision does, but through an unpickler that
    refuses every global except numpy's array reconstructors and ``bytes``, since unpickling
    an untrusted file can otherwise run arbitrary code.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import pickle
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .exceptions import CorruptDataError, DataError

__all__ = [
    "FIX_HINT",
    "RawSplit",
    "read_cifar_classes",
    "read_cifar_split",
    "read_content",
    "read_idx_split",
]

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_UBYTE = 0x08
_IDX_TYPE_NAMES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}
_CIFAR_SIDE = 32
_CIFAR_ROW = 3 * _CIFAR_SIDE * _CIFAR_SIDE  # 3072 bytes per image
#: What to do about a damaged file; ends every CorruptDataError message.
FIX_HINT = (
    "Delete the file and fetch the data set again (load_dataset(..., download=True)), "
    "or reinstall the package that provides it."
)


@dataclass(frozen=True)
class RawSplit:
    """One split as read from disk: the tensors and a checksum of what was read.

    Parameters
    ----------
    images : torch.Tensor
        uint8, shape (N, C, H, W).
    labels : torch.Tensor
        int64, shape (N,).
    checksum : str
        sha256 hex digest over the uncompressed content of the files read, in reading order.
    """

    images: torch.Tensor
    labels: torch.Tensor
    checksum: str


def _corrupt(path: Path, problem: str) -> CorruptDataError:
    """Build the error for a damaged file: which file, what is wrong, what to do."""
    return CorruptDataError(f"corrupt data file {path}: {problem}. {FIX_HINT}")


def read_content(path: Path) -> bytes:
    """Return the content of ``path``, gunzipped when it is a gzip file.

    A file is treated as gzip when its name ends in ``.gz`` or its first bytes are the gzip
    magic number (an IDX file starts with two zero bytes, so the two cannot be confused).

    Parameters
    ----------
    path : pathlib.Path
        The file to read.

    Returns
    -------
    bytes
        The (decompressed) content.

    Raises
    ------
    DataError
        The file cannot be read (permissions, I/O error).
    CorruptDataError
        The gzip stream is truncated or damaged.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"cannot read data file {path}: {exc.strerror or exc}; check that it exists "
            "and that you may read it"
        ) from exc
    if path.suffix != ".gz" and not data.startswith(_GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except EOFError as exc:  # the stream stops before its end marker
        raise _corrupt(
            path, "the gzip stream is truncated (it ends before its end marker)"
        ) from exc
    except (OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise _corrupt(path, f"not a valid gzip file ({exc})") from exc


def _idx_dims(content: bytes, path: Path, *, ndim: int, what: str) -> tuple[int, ...]:
    """Validate an IDX header against the content length; return the dimension sizes."""
    expected_magic = (_IDX_UBYTE << 8) | ndim
    if len(content) < 4:
        raise _corrupt(
            path, f"it is {len(content)} bytes long, too short for an IDX header (at least 4)"
        )
    (magic,) = struct.unpack_from(">I", content, 0)
    bad_magic = (
        f"bad magic number 0x{magic:08X} (an IDX {what} file starts with 0x{expected_magic:08X})"
    )
    if content[0] or content[1]:
        raise _corrupt(path, f"{bad_magic}: this is not an IDX file")
    if content[2] != _IDX_UBYTE:
        type_name = _IDX_TYPE_NAMES.get(content[2], "unknown")
        raise _corrupt(
            path, f"{bad_magic}: data type code 0x{content[2]:02X} ({type_name}), expected 0x08"
        )
    if content[3] != ndim:
        raise _corrupt(path, f"{bad_magic}: {content[3]} dimensions, expected {ndim}")
    header = 4 + 4 * ndim
    if len(content) < header:
        raise _corrupt(
            path,
            f"truncated header: {len(content)} bytes, but a {ndim}-dimensional IDX "
            f"header takes {header}",
        )
    dims = struct.unpack_from(f">{ndim}I", content, 4)
    shape = " x ".join(str(d) for d in dims)
    if 0 in dims:
        raise _corrupt(path, f"the header gives the empty shape {shape}")
    expected = math.prod(dims)
    actual = len(content) - header
    if actual < expected:
        raise _corrupt(
            path,
            f"truncated: the header promises {shape} = {expected} bytes of data, but only "
            f"{actual} follow the {header}-byte header",
        )
    if actual > expected:
        raise _corrupt(
            path,
            f"{actual - expected} bytes more than the {shape} = {expected} bytes of data "
            "the header describes",
        )
    return dims


def _decode_idx(content: bytes, path: Path, *, ndim: int, what: str) -> np.ndarray[Any, Any]:
    """Decode a validated uint8 IDX buffer into a writable array of the header's shape."""
    dims = _idx_dims(content, path, ndim=ndim, what=what)
    # one copy of the whole buffer: frombuffer views the immutable bytes, torch needs writable
    flat = np.frombuffer(content, dtype=np.uint8, count=math.prod(dims), offset=4 + 4 * ndim)
    return flat.reshape(dims).copy()


def _check_labels(labels: torch.Tensor, num_classes: int, path: Path) -> None:
    """Raise when a label falls outside ``[0, num_classes)``, naming the first one."""
    bad = (labels < 0) | (labels >= num_classes)
    if bool(bad.any()):
        index = int(bad.nonzero()[0, 0])
        raise _corrupt(
            path,
            f"label {int(labels[index])} at index {index} is outside 0..{num_classes - 1} "
            f"(this data set has {num_classes} classes)",
        )


def _check_counts(n_images: int, n_labels: int, images: str, labels: str) -> None:
    """Raise when the images and the labels of a split do not pair up."""
    if n_images != n_labels:
        raise CorruptDataError(
            f"corrupt data: {images} holds {n_images} images but {labels} holds {n_labels} "
            f"labels; they must pair up one to one. {FIX_HINT}"
        )


def read_idx_split(images_path: Path, labels_path: Path, num_classes: int) -> RawSplit:
    """Read an IDX image file and its label file.

    Parameters
    ----------
    images_path, labels_path : pathlib.Path
        The ``*-images-idx3-ubyte[.gz]`` and ``*-labels-idx1-ubyte[.gz]`` files.
    num_classes : int
        Labels must lie in ``[0, num_classes)``.

    Returns
    -------
    RawSplit
        Images of shape (N, 1, rows, columns), labels of shape (N,).

    Raises
    ------
    CorruptDataError
        Any malformed header, size, gzip stream, count mismatch or label; the message names
        the file.
    """
    hasher = hashlib.sha256()
    image_bytes = read_content(images_path)
    hasher.update(image_bytes)
    images = _decode_idx(image_bytes, images_path, ndim=3, what="image")
    del image_bytes
    label_bytes = read_content(labels_path)
    hasher.update(label_bytes)
    labels = torch.from_numpy(_decode_idx(label_bytes, labels_path, ndim=1, what="label"))
    _check_counts(len(images), len(labels), str(images_path), str(labels_path))
    labels = labels.to(torch.int64)
    _check_labels(labels, num_classes, labels_path)
    # (N, rows, columns) -> (N, 1, rows, columns): one grey channel
    return RawSplit(torch.from_numpy(images).unsqueeze(1), labels, hasher.hexdigest())


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that builds only containers, numbers, strings and numpy arrays.

    A pickle can name any importable callable and have it called while loading; CIFAR-10
    batches need only numpy's array and scalar reconstructors, and the ``bytes`` constructors
    that protocol-2 pickles written by Python 3 use.
    """

    _ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
            ("_codecs", "encode"),
            ("builtins", "bytes"),
            ("__builtin__", "bytes"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        """Return an allowed global; refuse any other."""
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"it asks for the global {module}.{name}, which a CIFAR-10 batch never needs"
            )
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            # numpy 2 renamed numpy.core to numpy._core and warns on the old name
            module = "numpy._core." + module.removeprefix("numpy.core.")
        return super().find_class(module, name)


def _unpickle(content: bytes, path: Path) -> Any:
    """Unpickle a CIFAR file with the restricted unpickler; any failure names the file."""
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(content), encoding="latin1").load()
    except Exception as exc:  # damaged pickles raise nearly anything: EOFError, ValueError, ...
        raise _corrupt(path, f"cannot unpickle it ({type(exc).__name__}: {exc})") from exc


def _cifar_dict(content: bytes, path: Path, keys: Sequence[str]) -> dict[str, Any]:
    """Unpickle a CIFAR file and check that it is a dict holding ``keys``."""
    obj = _unpickle(content, path)
    if not isinstance(obj, dict):
        raise _corrupt(path, f"it holds a {type(obj).__name__}, expected a dict")
    for key in keys:
        if key not in obj:
            present = ", ".join(sorted(repr(k) for k in obj)) or "none"
            raise _corrupt(path, f"it has no {key!r} entry (entries: {present})")
    return obj


def _decode_cifar_batch(
    content: bytes, path: Path
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Decode one CIFAR-10 batch into uint8 (N, 3072) data and int64 (N,) labels."""
    obj = _cifar_dict(content, path, ("data", "labels"))
    data = obj["data"]
    if not (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[1] == _CIFAR_ROW
    ):
        found = (
            f"a {data.dtype} array of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else f"a {type(data).__name__}"
        )
        raise _corrupt(path, f"'data' is {found}, expected a uint8 array of shape (N, 3072)")
    if len(data) == 0:
        raise _corrupt(path, "it holds no images")
    try:
        labels = np.asarray(obj["labels"])
    except (TypeError, ValueError) as exc:
        raise _corrupt(path, f"'labels' is not a list of integers ({exc})") from exc
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise _corrupt(path, f"'labels' is not a flat list of integers (dtype {labels.dtype})")
    _check_counts(len(data), len(labels), f"'data' of {path}", "its 'labels'")
    return data, labels.astype(np.int64)


def read_cifar_split(batch_paths: Sequence[Path], num_classes: int) -> RawSplit:
    """Read and concatenate CIFAR-10 batch files.

    Parameters
    ----------
    batch_paths : sequence of pathlib.Path
        The batch files of one split, in order.
    num_classes : int
        Labels must lie in ``[0, num_classes)``.

    Returns
    -------
    RawSplit
        Images of shape (N, 3, 32, 32), labels of shape (N,).

    Raises
    ------
    CorruptDataError
        A file that does not unpickle, lacks an entry, or has data of the wrong type or shape.
    """
    hasher = hashlib.sha256()
    datas, labels = [], []
    for path in batch_paths:
        content = read_content(path)
        hasher.update(content)
        data, batch_labels = _decode_cifar_batch(content, path)
        _check_labels(torch.from_numpy(batch_labels), num_classes, path)
        datas.append(data)
        labels.append(batch_labels)
    # (N, 3072) -> (N, 3, 32, 32): channel planes, each row-major; concatenate copies once
    images = np.concatenate(datas).reshape(-1, 3, _CIFAR_SIDE, _CIFAR_SIDE)
    return RawSplit(
        torch.from_numpy(images), torch.from_numpy(np.concatenate(labels)), hasher.hexdigest()
    )


def read_cifar_classes(meta_path: Path) -> tuple[str, ...]:
    """Read the class names from a CIFAR-10 ``batches.meta`` file.

    Parameters
    ----------
    meta_path : pathlib.Path
        The ``batches.meta`` file.

    Returns
    -------
    tuple of str
        The ``label_names`` entry, in label order.

    Raises
    ------
    CorruptDataError
        The file does not unpickle or ``label_names`` is not a non-empty list of strings.
    """
    names = _cifar_dict(read_content(meta_path), meta_path, ("label_names",))["label_names"]
    if (
        not isinstance(names, (list, tuple))
        or not names
        or not all(isinstance(n, str) and n for n in names)
    ):
        raise _corrupt(meta_path, "'label_names' is not a non-empty list of class names")
    return tuple(names)
