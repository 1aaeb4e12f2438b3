"""The ``fmclassify`` command: the library's functions behind subcommands.

This is the only module that prints or exits. Each subcommand returns an exit code: 0 on
success, 1 when runs of a sweep failed (the table shows which; the same command retries them)
or a file or folder could not be written (one line names it and what failed; finished runs
are kept), 2 for a usage or input error (with one line saying what to fix), 130 after Ctrl-C
(partial results are kept and the message says where), 141 when the reader of the output went
away (``fmclassify params deeper | head``: the shell's 128 + SIGPIPE, and no traceback).

Under torchrun (``torchrun --standalone --nproc-per-node=N -m fmclassify train ...``) ``train``
trains one run over the N processes (:mod:`fmclassify.distributed`); rank 0 alone prints and
writes the History and checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from fmclassify._cli_course import cmd_assignment, cmd_course, cmd_courses
from fmclassify._cli_shared import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
)
from fmclassify._cli_train import cmd_models, cmd_params, cmd_sweep, cmd_train
from fmclassify.exceptions import (
    DataNotFoundError,
    FmClassifyError,
    OutputError,
    RunFailedError,
)

__all__ = ["build_parser", "main"]

THEIRS = "the course's"  # a flag's default when each course sets its own
__exit_codes__ = (EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fmclassify`` command (used by the docs too)."""
    from fmclassify._version import __version__

    parser = argparse.ArgumentParser(
        prog="fmclassify",
        description="Train and study small-image classifiers (Fashion-MNIST and friends).",
    )
    parser.add_argument("--version", action="version", version=f"fmclassify {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="list registered models with their parameter counts")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'w*'")
    _add_shape_args(p)

    p = sub.add_parser("params", help="per-layer parameter formulas of a model")
    p.add_argument("model", help="a registered model name, e.g. deeper")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    _add_shape_args(p)

    p = sub.add_parser("train", help="train one model and print its epoch table")
    p.add_argument("--model", default="base", help="registered model name (default: base)")
    p.add_argument("--lr", type=float, default=0.1, help="learning rate (default: 0.1)")
    p.add_argument("--epochs", type=int, default=10, help="epoch budget (default: 10)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--optimizer", default="sgd", help="sgd, adam or adamw (default: sgd)")
    _add_recipe_args(p)
    p.add_argument("--no-shuffle", action="store_true", help="keep the quickstart batch order")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    _add_data_args(p)
    p.add_argument("--json", type=Path, metavar="PATH", help="write the History as JSON here")
    p.add_argument("--checkpoint", type=Path, metavar="PATH",
                   help="save a checkpoint after every epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("assignment", help="run every experiment of Q1.1-Q1.7 and write a report")
    _add_course_args(p, "base,deeper,wider", "1,0.1,0.01,0.001")

    sub.add_parser("courses", help="list the courses (the assignment, and plugins' courses)")
    p = sub.add_parser("course", help="run every question of a course and write its report")
    p.add_argument("name", help="a course name (see `fmclassify courses`), e.g. assignment")
    _add_course_args(p, None, None)

    p = sub.add_parser("sweep", help="train one model at several learning rates; print the table")
    p.add_argument("--model", default="base", help="registered model name (default: base)")
    p.add_argument("--lrs", default="1,0.1,0.01,0.001",
                   help="comma-separated learning rates (default: 1,0.1,0.01,0.001)")
    p.add_argument("--seeds", type=int, default=1, help="runs per learning rate (default: 1)")
    p.add_argument("--epochs", type=int, default=10, help="epochs per run (default: 10)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default: 64)")
    p.add_argument("--optimizer", default="sgd", help="sgd, adam or adamw (default: sgd)")
    _add_recipe_args(p)
    p.add_argument("--no-shuffle", action="store_true", help="keep the quickstart batch order")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    _add_data_args(p)
    p.add_argument("--store", "--out", dest="store", type=Path, metavar="DIR",
                   help="keep finished runs here; a rerun trains only what is missing")
    p.add_argument("--json", type=Path, metavar="PATH", help="write the result as JSON here")
    _add_where_args(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _add_course_args(p: argparse.ArgumentParser, models: str | None, lrs: str | None) -> None:
    """The flags of a course's report (the assignment's are the first course's)."""
    p.add_argument("--out", type=Path, default=Path("results"),
                   help="output folder; finished runs there are reused (default: results)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="budget", action="store_const", const="quick",
                      help="every answer in about 5 minutes on 2 CPU cores: a subset, fewer "
                           "epochs, a looser convergence rule (the default on a CPU)")
    mode.add_argument("--full", dest="budget", action="store_const", const="full",
                      help="the course's protocol: all images, 10 epochs, convergence up to "
                           "600 epochs (the default on a GPU)")
    p.set_defaults(budget="auto")
    p.add_argument("--seeds", type=int, default=3,
                   help="runs per configuration, seeds 0..N-1; tables show mean ± std "
                        "(default: 3)")
    p.add_argument("--models", default=None,
                   help=f"comma-separated models to compare (default: {models or THEIRS})")
    p.add_argument("--lrs", default=None,
                   help=f"comma-separated learning rates (default: {lrs or THEIRS})")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    _add_data_args(p, dataset=None if models is None else "fashion-mnist")
    _add_where_args(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_where_args(p: argparse.ArgumentParser) -> None:
    """Where the runs train: processes of this machine, or a Dask cluster."""
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N",
                       help="train in N processes on this machine (default: one per core; "
                            "1: one by one in this process)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="train on the Dask cluster of this scheduler, e.g. "
                            'tcp://host:8786 (pip install "fmclassify[dask]")')


def _add_recipe_args(p: argparse.ArgumentParser) -> None:
    """The training recipe's flags (defaults: the course's plain SGD)."""
    g = p.add_argument_group("recipe (defaults: the course's plain SGD at a constant rate)")
    g.add_argument("--momentum", type=float, default=0.0, help="SGD momentum (default: 0)")
    g.add_argument("--nesterov", action="store_true", help="Nesterov momentum")
    g.add_argument("--weight-decay", type=float, default=0.0, help="weight decay (default: 0)")
    g.add_argument("--schedule", default=None,
                   help="learning-rate schedule: step, cosine or one-cycle (default: constant)")
    g.add_argument("--warmup-epochs", type=int, default=0, help="linear warm-up epochs")
    g.add_argument("--label-smoothing", type=float, default=0.0, help="of the training loss")
    g.add_argument("--clip-grad-norm", type=float, default=None, help="max gradient norm")
    g.add_argument("--augment", default=None, help="comma-separated: flip, crop, erase")
    g.add_argument("--val-split", type=_fraction_or_count, default=None,
                   help="hold out this fraction (0.1) or count (5000) of the training set")
    g.add_argument("--precision", default="fp32", help="fp32 or bf16 (default: fp32)")
    g.add_argument("--ema", type=float, default=None, help="EMA decay of the weights, e.g. 0.999")
    g.add_argument("--step", default="auto",
                   help="auto, autograd, fused, graph (CUDA) or compiled (default: auto, the "
                        "fastest allowed)")


def _fraction_or_count(text: str) -> float | int:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a fraction such as 0.1 or a count such as 5000, got {text!r}") from None


def _add_shape_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in-channels", type=int, default=1, help="image channels (default: 1)")
    p.add_argument("--image-size", type=int, default=28, help="image side (default: 28)")
    p.add_argument("--num-classes", type=int, default=10, help="classes (default: 10)")


def _add_data_args(p: argparse.ArgumentParser, dataset: str | None = "fashion-mnist") -> None:
    p.add_argument("--dataset", default=dataset,
                   help="fashion-mnist, mnist, kmnist or cifar10 (default: "
                        f"{dataset or THEIRS})")
    p.add_argument("--data-root", type=Path, metavar="DIR",
                   help="look for (and download) the data here first")
    p.add_argument("--no-download", action="store_true", help="never download the data")
    p.add_argument("--train-size", type=int, metavar="N",
                   help="train on the first N training images (default: all)")
    p.add_argument("--test-size", type=int, metavar="N",
                   help="test on the first N test images (default: all)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = build_parser().parse_args(argv)
    handlers = {"models": cmd_models, "params": cmd_params, "train": cmd_train,
                "assignment": cmd_assignment, "sweep": cmd_sweep, "courses": cmd_courses,
                "course": cmd_course}
    try:
        code = handlers[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, inside the try, not at exit
        return code
    except BrokenPipeError:
        return _quiet_after_broken_pipe()
    except FmClassifyError as exc:
        rank = os.environ.get("RANK", "0") if int(os.environ.get("WORLD_SIZE", "1")) > 1 else "0"
        where = "" if rank == "0" else f" (rank {rank})"  # every rank of torchrun says its own
        print(f"fmclassify: error{where}: {_for_the_command_line(exc)}", file=sys.stderr)
        return EXIT_FAILED if isinstance(exc, (OutputError, RunFailedError)) else EXIT_USAGE
    except KeyboardInterrupt:
        print("fmclassify: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _quiet_after_broken_pipe() -> int:
    """End quietly when the reader of stdout went away (``| head``, ``| less`` quit early).

    Python's documented way: point stdout at devnull, so the flush at exit does not raise
    again and print a traceback; then exit as a process killed by SIGPIPE would appear.
    """
    with contextlib.suppress(OSError, ValueError):  # stdout may not be a real file (a test)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


def _for_the_command_line(exc: FmClassifyError) -> str:
    """The error's text, with the flags of this command where it names Python arguments."""
    text = str(exc)
    if isinstance(exc, DataNotFoundError):
        from fmclassify.data import HINTS

        flags = {"download": "run without --no-download on a machine with internet access",
                 "root": "pass --data-root <folder>", "no_download": "(--no-download)"}
        for what, phrase in HINTS.items():
            text = text.replace(phrase, flags[what])
    return text



if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
