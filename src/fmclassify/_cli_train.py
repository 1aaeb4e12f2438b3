"""The commands that train or count one model: ``models``, ``params``, ``train``, ``sweep``.

Private to the command line (:mod:`fmclassify.cli`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from fmclassify._cli_shared import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    check_sizes,
    check_where,
    data_ref,
    executor_for,
    floats,
    load_data,
    recipe_kwargs,
    report_failures,
)
from fmclassify.callbacks import CallbackBase, RunContext
from fmclassify.exceptions import FmClassifyError
from fmclassify.history import EpochRecord, History

__all__ = ["cmd_models", "cmd_params", "cmd_sweep", "cmd_train", "text_table"]


def _shape(args: argparse.Namespace) -> dict[str, int]:
    return {"num_classes": args.num_classes, "in_channels": args.in_channels,
            "image_size": args.image_size}


def cmd_models(args: argparse.Namespace) -> int:
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
    print(text_table(("model", "trainable params", "aliases", "source", "description"), rows,
                 right={1}))
    return EXIT_OK


def cmd_params(args: argparse.Namespace) -> int:
    from fmclassify.parameters import count_parameters
    from fmclassify.registry import build_model

    report = count_parameters(build_model(args.model, **_shape(args)))
    print(report.to_markdown() if args.markdown else str(report))
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
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
    check_sizes(args)
    Recipe(**recipe_kwargs(args)).check_budget(args.epochs)  # type: ignore[arg-type]
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

    train, test = load_data(args)
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
                      **recipe_kwargs(args))  # type: ignore[arg-type]
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


def cmd_sweep(args: argparse.Namespace) -> int:
    from fmclassify._checks import check_int
    from fmclassify.experiments import lr_sweep
    from fmclassify.runs import RunStore

    lrs = floats(args.lrs)
    seeds = tuple(range(check_int("seeds", args.seeds)))
    check_where(args)
    check_sizes(args)
    if args.json is not None and args.json.exists():
        print(f"fmclassify: error: {args.json} exists; choose another --json path or delete it",
              file=sys.stderr)
        return EXIT_USAGE
    _check_folders(args.json)
    store = RunStore(args.store) if args.store is not None else None  # made before any bar
    overall = tqdm(total=len(lrs) * len(seeds), desc="sweep runs", unit="run",
                   disable=args.no_progress)
    options = {"batch_size": args.batch_size, "shuffle": not args.no_shuffle, "step": args.step,
               **recipe_kwargs(args)}
    try:
        with executor_for(args) as executor:
            result = lr_sweep(args.model, lrs, args.epochs, seeds, data=data_ref(args),
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
    return report_failures([r for r in result.runs if r.history.status == "failed"])


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]

    def fmt(row: Sequence[str]) -> str:
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=False))]
        return "  ".join(cells).rstrip()

    lines = [fmt(header), "  ".join("-" * w for w in widths)]
    return "\n".join([*lines, *(fmt(r) for r in rows)])
