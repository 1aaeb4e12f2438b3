"""What the ``fmclassify`` commands share: exit codes, data, recipe, where runs train.

Private to the command line (:mod:`fmclassify.cli`): the data and the recipe the flags name,
the executor of ``--scheduler``, and how failed runs are reported.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from typing import Any

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE",
           "check_sizes", "check_where", "data_ref", "executor_for", "floats", "load_data",
           "recipe_kwargs", "report_failures"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a process ended by SIGPIPE


def recipe_kwargs(args: argparse.Namespace) -> dict[str, object]:
    """The recipe keyword arguments of the Trainer from the command line."""
    augment = None if args.augment is None else [
        a.strip() for a in args.augment.split(",") if a.strip()]
    return {"optimizer": args.optimizer, "momentum": args.momentum, "nesterov": args.nesterov,
            "weight_decay": args.weight_decay, "schedule": args.schedule,
            "warmup_epochs": args.warmup_epochs, "label_smoothing": args.label_smoothing,
            "clip_grad_norm": args.clip_grad_norm, "augment": augment,
            "val_split": args.val_split, "precision": args.precision, "ema": args.ema}


def check_sizes(args: argparse.Namespace) -> None:
    from fmclassify._checks import check_int

    for flag in ("train_size", "test_size"):
        if getattr(args, flag) is not None:
            check_int(flag, getattr(args, flag))


def load_data(args: argparse.Namespace) -> tuple[Any, Any]:
    """The data the flags name: ``--dataset`` from ``--data-root``, its first N images."""
    from fmclassify.data import load_dataset

    train, test = load_dataset(args.dataset, root=args.data_root, download=not args.no_download)
    if args.train_size is not None and args.train_size != len(train):
        train = train.subset(args.train_size)
    if args.test_size is not None and args.test_size != len(test):
        test = test.subset(args.test_size)
    return train, test


def data_ref(args: argparse.Namespace) -> Any:
    from fmclassify.executors import DataRef

    return DataRef(args.dataset, root=args.data_root, download=not args.no_download,
                   train_size=args.train_size, test_size=args.test_size)


def report_failures(failed: Sequence[Any]) -> int:
    for run in failed:
        print(f"fmclassify: run {run.spec.label} seed {run.spec.seed} failed: "
              f"{run.history.reason}", file=sys.stderr)
    if failed:
        print(f"fmclassify: {len(failed)} runs failed; the others are kept: rerun the same "
              "command to train only the failed ones", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def floats(text: str) -> list[float]:
    from fmclassify.exceptions import ConfigError

    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--lrs must be comma-separated numbers, got {text!r}") from None


def check_where(args: argparse.Namespace) -> None:
    from fmclassify._checks import check_int

    if args.workers is not None:
        check_int("workers", args.workers)


@contextlib.contextmanager
def executor_for(args: argparse.Namespace) -> Iterator[Executor | None]:
    """The Dask cluster of ``--scheduler`` for the block (None: this machine's processes)."""
    if args.scheduler is None:
        yield None
        return
    from fmclassify.clusters import dask_executor
    from fmclassify.exceptions import ConfigError

    try:
        executor = dask_executor(args.scheduler)
    except ImportError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"cannot reach the Dask scheduler at {args.scheduler} ({exc}); start "
                          "it with `dask scheduler` and workers with `dask worker ADDRESS`"
                          ) from None
    with executor:
        yield executor
