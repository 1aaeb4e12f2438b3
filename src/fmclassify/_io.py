"""Writing what a run produced: atomically, and as JSON with non-finite floats as null."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "dumps_json", "json_ready"]


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
    most a stray ``.tmp`` file beside the target.

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
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
