"""The errors fmclassify raises.

Every error a user can trigger is a :class:`FmClassifyError`, so one ``except`` clause catches
them all. Where it helps, a subclass also derives from the built-in error a Python user would
expect (``ValueError`` for a bad argument, ``LookupError`` for an unknown name), so existing
``except ValueError`` code keeps working. Messages say what was wrong and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "CorruptDataError",
    "DataError",
    "DataNotFoundError",
    "FmClassifyError",
    "OutputError",
    "ParameterCountError",
    "RunFailedError",
    "UnknownDatasetError",
    "UnknownModelError",
    "WorkerLostError",
]


class FmClassifyError(Exception):
    """Base class of every error fmclassify raises on purpose.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> try:
    ...     fmc.build_model("bse")
    ... except fmc.FmClassifyError as exc:
    ...     print(type(exc).__name__)
    UnknownModelError
    """


class ConfigError(FmClassifyError, ValueError):
    """A configuration value is out of range or inconsistent (lr <= 0, epochs < 1, ...).

    Examples
    --------
    >>> import fmclassify as fmc
    >>> fmc.Trainer(fmc.build_model("base"), lr=0, epochs=1)
    Traceback (most recent call last):
    ...
    fmclassify.exceptions.ConfigError: lr must be a finite number > 0, got 0; the course uses 0.1
    """


class UnknownModelError(FmClassifyError, LookupError):
    """No model is registered under the requested name; the message lists close matches.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> fmc.build_model("wide")
    Traceback (most recent call last):
    ...
    fmclassify.exceptions.UnknownModelError: unknown model 'wide'; did you mean 'wider'? ...
    """

    def __str__(self) -> str:  # LookupError would quote the message like a dict key
        return str(self.args[0]) if self.args else ""


class UnknownDatasetError(FmClassifyError, LookupError):
    """The requested data set name is not one fmclassify knows.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> try:
    ...     fmc.load_dataset("mnsit", download=False)
    ... except fmc.UnknownDatasetError as exc:
    ...     print("did you mean 'mnist'" in str(exc))
    True
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DataError(FmClassifyError):
    """Data is missing, corrupt, or does not fit the model.

    Examples
    --------
    >>> import torch, fmclassify as fmc
    >>> fmc.ImageDataset(torch.zeros(0, 1, 28, 28, dtype=torch.uint8),
    ...                  torch.zeros(0, dtype=torch.long), classes=("a",))
    Traceback (most recent call last):
    ...
    fmclassify.exceptions.DataError: data set: it holds no images
    """


class DataNotFoundError(DataError, FileNotFoundError):
    """No copy of the data set was found in any of the places searched, and none was fetched.

    The message lists every place looked and the ways to fix it.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> try:
    ...     fmc.load_dataset("cifar10", download=False)
    ... except fmc.DataNotFoundError as exc:
    ...     print(str(exc).splitlines()[0])  # doctest: +ELLIPSIS
    could not find the cifar10 data set...
    """


class CorruptDataError(DataError):
    """A data file exists but is truncated or malformed; the message names the file.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> try:
    ...     fmc.load_dataset("mnist", root="/path/with/a/truncated/copy")  # doctest: +SKIP
    ... except fmc.CorruptDataError as exc:
    ...     print(exc)  # e.g. ".../train-images-idx3-ubyte.gz: the header promises ..."
    """


class ParameterCountError(FmClassifyError):
    """An analytic parameter rule disagrees with what PyTorch allocated, or cannot be applied.

    Examples
    --------
    >>> import torch, fmclassify as fmc
    >>> fmc.count_parameters(torch.nn.LazyLinear(4))
    Traceback (most recent call last):
    ...
    fmclassify.exceptions.ParameterCountError: ...
    """


class CheckpointError(FmClassifyError):
    """A checkpoint is unreadable or belongs to another model or configuration.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> trainer = fmc.Trainer(fmc.build_model("base"), lr=0.1, epochs=5,
    ...                       checkpoint="other-run.ckpt")                    # doctest: +SKIP
    >>> trainer.fit(train, test, resume=True)                                  # doctest: +SKIP
    Traceback (most recent call last):
    ...
    fmclassify.exceptions.CheckpointError: checkpoint 'other-run.ckpt' belongs to another run ...
    """


class OutputError(FmClassifyError, OSError):
    """A file or folder could not be written: not a folder, no permission, no space left.

    The message names the path and what failed, and says how to fix it. It is an
    :class:`OSError` too (``errno`` and ``filename`` are set), so ``except OSError`` code keeps
    working. What finished before (runs in a store, earlier files) is kept: calling again
    once the cause is fixed does only what is missing.

    Parameters
    ----------
    message : str
        The whole message.
    errno : int, optional
        The operating system's error number (``errno.ENOSPC``, ...).
    filename : str, optional
        The path that could not be written.

    Examples
    --------
    >>> import errno
    >>> exc = OutputError("cannot write 'out/a.json': no space left on the device",
    ...                   errno=errno.ENOSPC, filename="out/a.json")
    >>> isinstance(exc, OSError), exc.errno == errno.ENOSPC, str(exc)
    (True, True, "cannot write 'out/a.json': no space left on the device")
    """

    def __init__(self, message: str, *, errno: int | None = None,
                 filename: str | None = None) -> None:
        super().__init__(message)
        self.errno = errno
        self.filename = filename

    def __str__(self) -> str:  # OSError would print "[Errno ...]" only when given two args
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[object, ...]:  # keyword arguments survive a process pool
        return (_output_error, (str(self), self.errno, self.filename))


def _output_error(message: str, errno: int | None, filename: str | None) -> OutputError:
    return OutputError(message, errno=errno, filename=filename)


class WorkerLostError(FmClassifyError):
    """A worker process died (killed, out of memory) before its run finished.

    The runs that finished before are kept in the store; calling the same function again
    trains only the missing ones.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> try:                                                         # doctest: +SKIP
    ...     fmc.lr_sweep(lrs=(0.1, 0.01), store="runs")
    ... except fmc.WorkerLostError:
    ...     fmc.lr_sweep(lrs=(0.1, 0.01), store="runs")   # trains only what is missing
    """


class RunFailedError(FmClassifyError):
    """A run of a sweep failed and the call was asked to stop (``on_error="raise"``).

    The message names the run and carries the error's type and text from where it trained
    (a worker's traceback stays in that worker's log). The runs that finished are kept in the
    store; with the default ``on_error="record"`` the run is returned with status "failed"
    instead and the others go on.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> try:                                                            # doctest: +SKIP
    ...     fmc.lr_sweep(executor=ex, on_error="raise")
    ... except fmc.RunFailedError as exc:
    ...     print(exc)  # run base lr=0.1 seed 0 failed: CheckpointError: ...
    """
