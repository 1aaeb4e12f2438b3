"""Writing what a run produced: atomically, and as JSON with non-finite floats as null."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from fmclassify.exceptions import OutputError

__all__ = ["atomic_write_bytes", "dumps_json", "json_ready", "make_folder", "output_error"]


def json_ready(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) replaced by ``None``, for JSON.

    ``json.dumps`` hands floats to its ``default`` hook never, so they are replaced before;
    dicts, lists and tuples are walked, anything else is returned as it is.

    Examples
    --------
    >>> json_ready({"loss": float("inf"), "values": [1.0, float("nan")]})
    {'loss': None, 'values': [1.0, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def dumps_json(value: Any, *, indent: int | None = 1) -> str:
    """JSON text of ``value``: non-finite floats as ``null``, tuples and paths as lists and strings.

    Examples
    --------
    >>> dumps_json({"a": float("nan"), "b": (1, 2)}, indent=None)
    '{"a": null, "b": [1, 2]}'
    """
    return json.dumps(json_ready(value), indent=indent, allow_nan=False, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file, fsync and rename.

    Readers see either the old file or the new one, never a partial write; a crash leaves at
    most a stray ``.tmp`` file beside the target. The file gets the permissions a plain
    ``open(path, "w")`` gives: a new file ``0o666`` less the user's umask (``-rw-r--r--``
    under umask 022), a replaced file keeps its mode.

    Parameters
    ----------
    path : path-like
        The file to write; its folder is created if missing.
    data : bytes
        The whole new content.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    OutputError
        When the folder cannot be made or the file cannot be written (a parent is a file, no
        permission, no space left); it names the path and what failed. The old file, if any,
        is left as it was.
    """
    target = Path(path)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: a new file of our own; mode 0o666 lets the kernel apply the umask, as open() does
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o666)
    except OSError as exc:
        raise output_error(target, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(fh.fileno(), stat.S_IMODE(os.stat(target).st_mode))  # as open() keeps it
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise output_error(target, exc) from None
        raise
    return target


_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation


def make_folder(folder: str | os.PathLike[str]) -> Path:
    """Create ``folder`` and its parents if missing (``mkdir -p``); return it.

    Raises
    ------
    OutputError
        When it cannot be made: a parent is a file, no permission, no space left.
    """
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(path, exc, action="create the folder") from None
    return path


def output_error(path: str | os.PathLike[str], exc: OSError, *,
                 action: str = "write") -> OutputError:
    r"""The :class:`OutputError` for ``exc``, raised writing ``path``: what failed, how to fix it.

    Examples
    --------
    >>> import errno
    >>> exc = output_error("out/run.json", OSError(errno.ENOSPC, "No space left on device"))
    >>> print(str(exc).replace("; ", ";\n"))
    cannot write 'out/run.json': no space left on the device (No space left on device);
    free some space or write elsewhere, then run again: what finished is kept
    """
    target = Path(path)
    code = exc.errno
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        why = "no space left on the device"
        fix = "free some space or write elsewhere, then run again: what finished is kept"
    elif code in (errno.ENOTDIR, errno.EEXIST) or _blocking_file(target) is not None:
        blocker = _blocking_file(target)
        why = (f"{str(blocker)!r} is a file, not a folder" if blocker is not None
               else "a part of the path is not a folder")
        fix = "choose a path whose folders are folders"
    elif code in (errno.EACCES, errno.EPERM):
        why = "permission denied"
        fix = "choose a folder you may write to, or change its permissions"
    elif code == errno.EROFS:
        why = "the file system is read-only"
        fix = "choose a folder on a writable file system"
    else:
        why = "the operating system refused the write"
        fix = "check the folder, then run again: what finished is kept"
    detail = exc.strerror or type(exc).__name__
    return OutputError(f"cannot {action} {str(target)!r}: {why} ({detail}); {fix}",
                       errno=code, filename=str(target))


def _blocking_file(path: Path) -> Path | None:
    """The first part of ``path`` (or ``path`` itself, as a folder) that is a file, if any."""
    for part in reversed((path, *path.parents)):
        if part.exists() and not part.is_dir():
            return part
    return None
