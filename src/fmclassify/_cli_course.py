"""The commands that run a course: ``assignment``, ``courses`` and ``course NAME``.

Private to the command line (:mod:`fmclassify.cli`).
"""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from fmclassify._cli_shared import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    check_sizes,
    check_where,
    executor_for,
    floats,
    load_data,
    report_failures,
)
from fmclassify._cli_train import text_table
from fmclassify.exceptions import FmClassifyError

__all__ = ["cmd_assignment", "cmd_course", "cmd_courses"]


def cmd_assignment(args: argparse.Namespace) -> int:
    """``fmclassify assignment``: the first course, with its flags."""
    return _run("assignment", args, "assignment runs")


def cmd_course(args: argparse.Namespace) -> int:
    """``fmclassify course NAME``: any registered course, the assignment's flags."""
    return _run(args.name, args, f"{args.name} runs")


def cmd_courses(args: argparse.Namespace) -> int:
    """``fmclassify courses``: every registered course, plugins included."""
    from fmclassify.course import list_courses

    rows = [(c.name, c.dataset, str(len(c.questions)), c.source, c.description)
            for c in list_courses()]
    print(text_table(("course", "data set", "questions", "source", "description"), rows,
                     right={2}))
    return EXIT_OK


def _run(name: str, args: argparse.Namespace, label: str) -> int:
    """Check every flag, claim the folder, load the data, then train with an overall bar."""
    from fmclassify.course import (
        check_course,
        claim_output_folder,
        count_runs,
        get_course,
        run_course,
    )

    course = get_course(name)
    models = None if args.models is None else [
        m.strip() for m in args.models.split(",") if m.strip()]
    lrs = None if args.lrs is None else floats(args.lrs)
    check_course(course, args.budget, args.seeds, models, lrs,  # before the data is loaded
                 device=args.device)
    check_where(args)
    check_sizes(args)
    claim_output_folder(args.out)  # a folder it cannot write fails here, before any bar
    if args.dataset is None:
        args.dataset = course.dataset
    data = load_data(args)
    total = count_runs(course, args.budget, args.seeds, models, lrs, device=args.device)
    overall = tqdm(total=total, desc=label, unit="run", disable=args.no_progress)
    try:
        with executor_for(args) as executor:
            report = run_course(course, args.out, budget=args.budget, seeds=args.seeds,
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
    return report_failures(failed)
