"""The ``fmclassify`` command: the library's functions behind subcommands.

This is the only module that prints or exits. Each subcommand returns an exit code: 0 on
success, 2 for a usage or input error (with one line saying what to fix), 130 after Ctrl-C
(partial results are kept and the message says where).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from fmclassify.callbacks import CallbackBase, RunContext
from fmclassify.exceptions import FmClassifyError
from fmclassify.history import EpochRecord, History

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fmclassify`` command (used by the docs too)."""
    from fmclassify import __version__

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
                      help="a few minutes on a laptop: a subset and few epochs (the default)")
    mode.add_argument("--full", dest="budget", action="store_const", const="full",
                      help="the course's settings: 10 epochs, convergence up to 600 epochs")
    p.set_defaults(budget="quick")
    p.add_argument("--seeds", type=int, default=1, help="runs per configuration (default: 1)")
    p.add_argument("--models", default="base,deeper,wider",
                   help="comma-separated models for Q1.4 (default: base,deeper,wider)")
    p.add_argument("--lrs", default="1,0.1,0.01,0.001",
                   help="comma-separated learning rates (default: 1,0.1,0.01,0.001)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    _add_data_args(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


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
    g.add_argument("--augment", default=None, help="comma-separated: flip, crop")
    g.add_argument("--val-split", type=_fraction_or_count, default=None,
                   help="hold out this fraction (0.1) or count (5000) of the training set")
    g.add_argument("--precision", default="fp32", help="fp32 or bf16 (default: fp32)")
    g.add_argument("--ema", type=float, default=None, help="EMA decay of the weights, e.g. 0.999")
    g.add_argument("--step", default="auto",
                   help="auto, autograd, fused or compiled (default: auto, the fastest allowed)")


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = build_parser().parse_args(argv)
    handlers = {"models": _cmd_models, "params": _cmd_params, "train": _cmd_train,
                "assignment": _cmd_assignment}
    try:
        return handlers[args.command](args)
    except FmClassifyError as exc:
        print(f"fmclassify: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fmclassify: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


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
        rows.append((spec.name, count, spec.source, spec.description))
    if not rows:
        print(f"no registered model matches {args.pattern!r}", file=sys.stderr)
        return EXIT_USAGE
    print(_table(("model", "trainable params", "source", "description"), rows, right={1}))
    return EXIT_OK


def _cmd_params(args: argparse.Namespace) -> int:
    from fmclassify.parameters import count_parameters
    from fmclassify.registry import build_model

    report = count_parameters(build_model(args.model, **_shape(args)))
    print(report.to_markdown() if args.markdown else str(report))
    return EXIT_OK


def _cmd_train(args: argparse.Namespace) -> int:
    from fmclassify._checks import check_choice, check_int, check_lr, check_seed
    from fmclassify.data import load_dataset
    from fmclassify.recipes import Recipe
    from fmclassify.registry import build_model, get_model_spec
    from fmclassify.steps import STEPS
    from fmclassify.training import Trainer, TrainingInterrupted

    # every argument is checked before the data is loaded
    get_model_spec(args.model)
    check_lr(args.lr)
    check_int("epochs", args.epochs)
    check_int("batch_size", args.batch_size)
    check_seed(args.seed)
    check_choice("step", args.step, STEPS)
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
    train, test = load_dataset(args.dataset, root=args.data_root, download=not args.no_download)
    c, h, _ = train.image_shape
    model = build_model(args.model, num_classes=train.num_classes, in_channels=c, image_size=h,
                        seed=args.seed)
    printer = _EpochPrinter()
    trainer = Trainer(model, lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
                      seed=args.seed, shuffle=not args.no_shuffle, step=args.step,
                      device=args.device, callbacks=[printer], progress=not args.no_progress,
                      checkpoint=args.checkpoint, **_recipe(args))  # type: ignore[arg-type]
    print(f"training {args.model} on {train.name} ({len(train):,} train / {len(test):,} test "
          f"images) with lr {args.lr:g}, batch {args.batch_size}, on {trainer.device}")
    try:
        history = trainer.fit(train, test, resume=args.resume)
    except TrainingInterrupted as exc:
        where = _save_partial(exc.history, args)
        print(f"interrupted after {exc.history.epochs_trained} finished epochs; {where}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"status: {history.describe_status()} ({history.reason})")
    if args.json is not None:
        print(f"history written to {history.to_json(args.json)}")
    return EXIT_OK


def _save_partial(history: History, args: argparse.Namespace) -> str:
    places = []
    if args.json is not None:
        places.append(f"history in {history.to_json(args.json)}")
    if args.checkpoint is not None:
        places.append(f"checkpoint in {args.checkpoint} (rerun with --resume to continue)")
    return "; ".join(places) if places else "pass --json/--checkpoint to keep partial results"


class _EpochPrinter(CallbackBase):
    """A callback that prints the course's epoch table as the run goes."""

    needs_gradients = False

    def on_fit_start(self, run: RunContext) -> None:
        """Print the table header."""
        tqdm.write(f"{'epoch':>5}  {'train loss':>10}  {'test loss':>9}  {'accuracy':>8}  "
                   f"{'seconds':>7}")

    def on_epoch_end(self, run: RunContext, record: EpochRecord) -> None:
        """Print one row."""
        tqdm.write(f"{record.epoch:>5}  {record.train_loss or 0.0:>10.4f}  "
                   f"{record.test_loss:>9.4f}  {record.test_accuracy:>8.1%}  "
                   f"{record.seconds:>7.2f}")


def _cmd_assignment(args: argparse.Namespace) -> int:
    from fmclassify.data import load_dataset
    from fmclassify.report import check_assignment, run_assignment, total_runs

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    try:
        lrs = [float(x) for x in args.lrs.split(",") if x.strip()]
    except ValueError:
        print(f"fmclassify: error: --lrs must be comma-separated numbers, got {args.lrs!r}",
              file=sys.stderr)
        return EXIT_USAGE
    check_assignment(args.budget, args.seeds, models, lrs)  # before the data is loaded
    data = load_dataset(args.dataset, root=args.data_root, download=not args.no_download)
    total = total_runs(args.seeds, models, lrs)
    overall = tqdm(total=total, desc="assignment runs", unit="run", disable=args.no_progress)
    try:
        report = run_assignment(args.out, budget=args.budget, seeds=args.seeds, models=models,
                                lrs=lrs, data=data, progress=not args.no_progress,
                                device=args.device, on_run=lambda _run: overall.update())
    except KeyboardInterrupt:
        overall.close()
        print(f"fmclassify: interrupted; finished runs are kept in {args.out / 'runs'} and the "
              "unfinished one has a checkpoint there: rerun the same command to continue",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    overall.close()
    print(f"report written to {report.markdown_path} and {report.html_path}")
    return EXIT_OK


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
