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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from tqdm import tqdm

from fmclassify.callbacks import CallbackBase, RunContext
from fmclassify.exceptions import (
    DataNotFoundError,
    FmClassifyError,
    OutputError,
    RunFailedError,
)
from fmclassify.history import EpochRecord, History

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a process ended by SIGPIPE


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
    p.add_argument("--models", default="base,deeper,wider",
                   help="comma-separated models for Q1.4 (default: base,deeper,wider)")
    p.add_argument("--lrs", default="1,0.1,0.01,0.001",
                   help="comma-separated learning rates (default: 1,0.1,0.01,0.001)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    _add_data_args(p)
    _add_where_args(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

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


def _recipe(args: argparse.Namespace) -> dict[str, object]:
    """The recipe keyword arguments of the Trainer from the command line."""
    augment = None if args.augment is None else [
        a.strip() for a in args.augment.split(",") if a.strip()]
    return {"optimizer": args.optimizer, "momentum": args.momentum, "nesterov": args.nesterov,
            "weight_decay": args.weight_decay, "schedule": args.schedule,
            "warmup_epochs": args.warmup_epochs, "label_smoothing": args.label_smoothing,
            "clip_grad_norm": args.clip_grad_norm, "augment": augment,
            "val_split": args.val_split, "precision": args.precision, "ema": args.ema}


def _add_shape_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in-channels", type=int, default=1, help="image channels (default: 1)")
    p.add_argument("--image-size", type=int, default=28, help="image side (default: 28)")
    p.add_argument("--num-classes", type=int, default=10, help="classes (default: 10)")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="fashion-mnist",
                   help="fashion-mnist, mnist, kmnist or cifar10 (default: fashion-mnist)")
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
    handlers = {"models": _cmd_models, "params": _cmd_params, "train": _cmd_train,
                "assignment": _cmd_assignment, "sweep": _cmd_sweep}
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


def _shape(args: argparse.Namespace) -> dict[str, int]:
    return {"num_classes": args.num_classes, "in_channels": args.in_channels,
            "image_size": args.image_size}


def _cmd_models(args: argparse.Namespace) -> int:
    from fmclassify.registry import build_model, list_models

    rows = []
    for spec in list_models(args.pattern):
        try:
            model = build_model(spec.name, **_shape(args))
            count = f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,}"
        except (FmClassifyError, RuntimeError, TypeError, ValueError) as exc:
            count = f"n/a ({type(exc).__name__})"
        rows.append((spec.name, count, ", ".join(spec.aliases), spec.source, spec.description))
    if not rows:
        print(f"no registered model matches {args.pattern!r}", file=sys.stderr)
        return EXIT_USAGE
    print(_table(("model", "trainable params", "aliases", "source", "description"), rows,
                 right={1}))
    return EXIT_OK


def _cmd_params(args: argparse.Namespace) -> int:
    from fmclassify.parameters import count_parameters
    from fmclassify.registry import build_model

    report = count_parameters(build_model(args.model, **_shape(args)))
    print(report.to_markdown() if args.markdown else str(report))
    return EXIT_OK


def _cmd_train(args: argparse.Namespace) -> int:
    from fmclassify._checks import check_choice, check_int, check_lr, check_seed
    from fmclassify.distributed import process_group
    from fmclassify.recipes import Recipe
    from fmclassify.registry import get_model_spec
    from fmclassify.steps import STEPS

    # every argument is checked before the data is loaded (and before torchrun's ranks join)
    get_model_spec(args.model)
    check_lr(args.lr)
    check_int("epochs", args.epochs)
    check_int("batch_size", args.batch_size)
    check_seed(args.seed)
    check_choice("step", args.step, STEPS)
    _check_sizes(args)
    Recipe(**_recipe(args)).check_budget(args.epochs)  # type: ignore[arg-type]
    if args.resume and args.checkpoint is None:
        print("fmclassify: error: --resume needs --checkpoint PATH (the file to continue from)",
              file=sys.stderr)
        return EXIT_USAGE
    if args.checkpoint is not None and args.checkpoint.exists() and not args.resume:
        print(f"fmclassify: error: checkpoint {args.checkpoint} exists; add --resume to continue "
              "it, or choose another --checkpoint path", file=sys.stderr)
        return EXIT_USAGE
    if args.json is not None and args.json.exists() and not args.resume:
        print(f"fmclassify: error: {args.json} exists; choose another --json path or delete it",
              file=sys.stderr)
        return EXIT_USAGE
    _check_folders(args.json, args.checkpoint)  # before training, not after
    with process_group(args.device) as shard:  # one process, or rank r of torchrun's N
        return _train(args, lead=shard.rank == 0, world=shard.world)


def _train(args: argparse.Namespace, *, lead: bool, world: int) -> int:
    """Train the run of ``fmclassify train``; only the lead process (rank 0) speaks and writes."""
    from fmclassify.registry import build_model
    from fmclassify.training import Trainer, TrainingInterrupted

    train, test = _load(args)
    c, h, _ = train.image_shape
    model = build_model(args.model, num_classes=train.num_classes, in_channels=c, image_size=h,
                        seed=args.seed)
    over = f" over {world} processes" if world > 1 else ""
    printer = _EpochPrinter(f"training {args.model} on {train.name} ({{sizes}}) with lr "
                            f"{args.lr:g}, batch {args.batch_size}, on {{device}}{over}")
    trainer = Trainer(model, lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
                      seed=args.seed, shuffle=not args.no_shuffle, step=args.step,
                      device=args.device, callbacks=[printer] if lead else [],
                      progress=not args.no_progress, checkpoint=args.checkpoint,
                      **_recipe(args))  # type: ignore[arg-type]
    say: Callable[..., Any] = print if lead else (lambda *a, **k: None)
    try:
        history = trainer.fit(train, test, resume=args.resume)
    except TrainingInterrupted as exc:
        if lead:
            where = _save_partial(exc.history, args)
            print(f"interrupted after {exc.history.epochs_trained} finished epochs; {where}",
                  file=sys.stderr)
        return EXIT_INTERRUPTED
    say(f"status: {history.describe_status()} ({history.reason})")
    if args.json is not None and lead:
        print(f"history written to {history.to_json(args.json)}")
    return EXIT_OK


def _check_sizes(args: argparse.Namespace) -> None:
    from fmclassify._checks import check_int

    for flag in ("train_size", "test_size"):
        if getattr(args, flag) is not None:
            check_int(flag, getattr(args, flag))


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    """The data the flags name: ``--dataset`` from ``--data-root``, its first N images."""
    from fmclassify.data import load_dataset

    train, test = load_dataset(args.dataset, root=args.data_root, download=not args.no_download)
    if args.train_size is not None and args.train_size != len(train):
        train = train.subset(args.train_size)
    if args.test_size is not None and args.test_size != len(test):
        test = test.subset(args.test_size)
    return train, test


def _data_ref(args: argparse.Namespace) -> Any:
    from fmclassify.executors import DataRef

    return DataRef(args.dataset, root=args.data_root, download=not args.no_download,
                   train_size=args.train_size, test_size=args.test_size)


def _save_partial(history: History, args: argparse.Namespace) -> str:
    places = []
    if args.json is not None:
        places.append(f"history in {history.to_json(args.json)}")
    if args.checkpoint is not None:
        places.append(f"checkpoint in {args.checkpoint} (rerun with --resume to continue)")
    return "; ".join(places) if places else "pass --json/--checkpoint to keep partial results"


def _check_folders(*paths: Path | None) -> None:
    """Create the folders the files of ``paths`` go into; OutputError when one cannot be."""
    from fmclassify._io import make_folder

    for path in paths:
        if path is not None:
            make_folder(path.parent)


class _EpochPrinter(CallbackBase):
    """A callback that prints the run's header and the course's epoch table as the run goes.

    The header gives the sizes the run trains on, read from the run's metadata (train,
    validation and test images: a validation split is held out of the training set), and the
    table shows validation columns when there is a validation split.

    Parameters
    ----------
    header : str
        The first line, with ``{sizes}`` and ``{device}`` filled in at the start of the fit.
    """

    needs_gradients = False

    def __init__(self, header: str) -> None:
        self.header = header
        self.validation = False

    def on_fit_start(self, run: RunContext) -> None:
        """Print the run's header and the table's."""
        meta = run.history.metadata
        held = meta.get("val_size") or 0
        self.validation = held > 0
        sizes = (f"{meta.get('train_size', 0):,} train / "
                 + (f"{held:,} validation / " if held else "")
                 + f"{meta.get('test_size', 0):,} test images")
        tqdm.write(self.header.format(sizes=sizes, device=meta.get("device", "?")))
        val = f"  {'val loss':>8}  {'val acc':>8}" if self.validation else ""
        tqdm.write(f"{'epoch':>5}  {'train loss':>10}{val}  {'test loss':>9}  {'accuracy':>8}  "
                   f"{'seconds':>7}")

    def on_epoch_end(self, run: RunContext, record: EpochRecord) -> None:
        """Print one row."""
        val = (f"  {_number(record.val_loss, '8.4f'):>8}  "
               f"{_number(record.val_accuracy, '8.1%'):>8}") if self.validation else ""
        tqdm.write(f"{record.epoch:>5}  {record.train_loss or 0.0:>10.4f}{val}  "
                   f"{record.test_loss:>9.4f}  {record.test_accuracy:>8.1%}  "
                   f"{record.seconds:>7.2f}")


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _cmd_assignment(args: argparse.Namespace) -> int:
    from fmclassify.report import (
        check_assignment,
        claim_output_folder,
        run_assignment,
        total_runs,
    )

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    lrs = _floats(args.lrs)
    check_assignment(args.budget, args.seeds, models, lrs,  # before the data is loaded
                     device=args.device)
    _check_where(args)
    _check_sizes(args)
    claim_output_folder(args.out)  # a folder it cannot write fails here, before any bar
    data = _load(args)
    total = total_runs(args.seeds, models, lrs)
    overall = tqdm(total=total, desc="assignment runs", unit="run", disable=args.no_progress)
    try:
        with _executor(args) as executor:
            report = run_assignment(args.out, budget=args.budget, seeds=args.seeds,
                                    models=models, lrs=lrs, data=data,
                                    progress=not args.no_progress, device=args.device,
                                    on_run=lambda _run: overall.update(), executor=executor,
                                    workers=args.workers)
    except FmClassifyError:
        overall.close()  # the error's one line goes below the bar, not into it
        raise
    except KeyboardInterrupt:
        overall.close()
        print(f"fmclassify: interrupted; finished runs are kept in {args.out / 'runs'} and the "
              "unfinished one has a checkpoint there: rerun the same command to continue",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    overall.close()
    print(f"report written to {report.markdown_path} and {report.html_path}")
    failed = [r for res in report.results.values() for r in res.runs
              if r.history.status == "failed"]
    return _report_failures(failed)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from fmclassify._checks import check_int
    from fmclassify.experiments import lr_sweep
    from fmclassify.runs import RunStore

    lrs = _floats(args.lrs)
    seeds = tuple(range(check_int("seeds", args.seeds)))
    _check_where(args)
    _check_sizes(args)
    if args.json is not None and args.json.exists():
        print(f"fmclassify: error: {args.json} exists; choose another --json path or delete it",
              file=sys.stderr)
        return EXIT_USAGE
    _check_folders(args.json)
    store = RunStore(args.store) if args.store is not None else None  # made before any bar
    overall = tqdm(total=len(lrs) * len(seeds), desc="sweep runs", unit="run",
                   disable=args.no_progress)
    options = {"batch_size": args.batch_size, "shuffle": not args.no_shuffle, "step": args.step,
               **_recipe(args)}
    try:
        with _executor(args) as executor:
            result = lr_sweep(args.model, lrs, args.epochs, seeds, data=_data_ref(args),
                              store=store, device=args.device, executor=executor,
                              workers=args.workers, on_run=lambda _run: overall.update(),
                              **options)
    except FmClassifyError:
        overall.close()  # the error's one line goes below the bar, not into it
        raise
    except KeyboardInterrupt:
        overall.close()
        kept = f"finished runs are kept in {args.store}" if args.store else "pass --store DIR"
        print(f"fmclassify: interrupted; {kept} (rerun the same command to continue)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    overall.close()
    print(result.to_markdown())
    if args.json is not None:
        result.to_json(args.json)
        print(f"result written to {args.json}")
    return _report_failures([r for r in result.runs if r.history.status == "failed"])


def _report_failures(failed: Sequence[Any]) -> int:
    for run in failed:
        print(f"fmclassify: run {run.spec.label} seed {run.spec.seed} failed: "
              f"{run.history.reason}", file=sys.stderr)
    if failed:
        print(f"fmclassify: {len(failed)} runs failed; the others are kept: rerun the same "
              "command to train only the failed ones", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _floats(text: str) -> list[float]:
    from fmclassify.exceptions import ConfigError

    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--lrs must be comma-separated numbers, got {text!r}") from None


def _check_where(args: argparse.Namespace) -> None:
    from fmclassify._checks import check_int

    if args.workers is not None:
        check_int("workers", args.workers)


@contextlib.contextmanager
def _executor(args: argparse.Namespace) -> Iterator[Executor | None]:
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


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]

    def fmt(row: Sequence[str]) -> str:
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=False))]
        return "  ".join(cells).rstrip()

    lines = [fmt(header), "  ".join("-" * w for w in widths)]
    return "\n".join([*lines, *(fmt(r) for r in rows)])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
