"""The assignment's sentences, written from measured numbers only: the report's and the gallery's.

Each sentence states what the tables above it support; a sentence whose premise the data does
not meet is left out rather than written with a hedge. A row without a number gets a reason a
student can act on (:func:`fmclassify.course.pieces.why_no_number`), never a bare "n/a". The
assignment report (:mod:`fmclassify.course.assignment`) and the tutorial gallery's Q pages call
the same functions, so a page and the report never word one finding twice.

Comparisons follow the seeds policy of :mod:`fmclassify.course.assignment.spread`: a mean is
called higher than another only beyond the spread of their seeds. This module holds the
sentences on the learning rate (Q1.1-Q1.3), the gradient (Q1.7) and the modern recipe; those
on networks (Q1.4, Q1.6) are :mod:`fmclassify.course.assignment.network_observations`'s,
re-exported here so that every sentence function is found in one place.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fmclassify.course.assignment.network_observations import (
    model_observations,
    structure_observations,
)
from fmclassify.course.assignment.sentences import Sentences
from fmclassify.course.assignment.spread import apart, one_seed, order, pct, thrashes

if TYPE_CHECKING:
    from fmclassify.experiments import ExperimentResult

__all__ = [
    "budget_observations",
    "cancellation_observation",
    "convergence_observations",
    "gradient_blowups",
    "gradient_observation",
    "gradient_observations",
    "lr_observations",
    "lr_trends",
    "model_observations",
    "recipe_observation",
    "structure_observations",
    "sweep_observations",
    "threshold_observations",
    "trend",
]

# -- Q1.1 to Q1.3: the learning rate ---------------------------------------------------------


def _lr(row: Mapping[str, Any]) -> str:
    return f"lr {row['lr']:g}"


def sweep_observations(sweep: ExperimentResult) -> Sentences:
    """Q1.1's sentences: which learning rate did best after the fixed budget, and the others.

    Parameters
    ----------
    sweep : ExperimentResult
        An :func:`~fmclassify.lr_sweep` (one or several seeds).

    Returns
    -------
    Sentences
        Diverged and thrashing rates first, then the best rate (a sentence that starts with
        "After"), then how far each other stable rate ended from it.
    """
    rows = sweep.table()
    notes: list[str] = []
    for r in rows:
        if r["diverged"]:
            notes.append(f"lr {r['lr']:g} diverged in {r['diverged']} of {r['seeds']} seeds: its "
                         "loss became non-finite, so those seeds give no accuracy.")
        if thrashes(r) and r["final_accuracy"] is not None:
            notes.append(f"lr {r['lr']:g} trained but thrashed (unstable in {r['unstable']} of "
                         f"{r['seeds']} seeds): best accuracy {pct(r['best_accuracy'])}, final "
                         f"{pct(r['final_accuracy'])}, final training loss "
                         f"{r['final_train_loss']:.3f}; its steps overshoot the minimum.")
    stable = [r for r in rows if r["final_accuracy"] is not None and not thrashes(r)]
    if not stable:
        return Sentences(notes)
    best = max(stable, key=lambda r: r["final_accuracy"])
    epochs = sweep.runs[0].spec.epochs
    close = [r for r in stable if r is not best and apart(best, r, "final_accuracy") is False]
    if close:
        notes.append(f"After {epochs} epochs lr {best['lr']:g} ends highest "
                     f"({pct(best['final_accuracy'])}), but within the spread of its seeds of "
                     + ", ".join(f"{_lr(r)} ({pct(r['final_accuracy'])})" for r in close)
                     + ": the final accuracy does not separate them.")
    else:
        notes.append(f"After {epochs} epochs the best learning rate is {best['lr']:g}, with "
                     f"{pct(best['final_accuracy'])} final test accuracy.")
    for r in sorted(stable, key=lambda r: -r["lr"]):
        if r is best or r in close:
            continue
        gap = 100 * (best["final_accuracy"] - r["final_accuracy"])
        why = ("smaller steps make less progress in the same number of epochs"
               if r["lr"] < best["lr"] else "a longer step did not buy more")
        notes.append(f"lr {r['lr']:g} ends {gap:.1f} points lower "
                     f"({pct(r['final_accuracy'])}): {why}.")
    return Sentences(notes + one_seed(stable, "learning rate"))


def convergence_observations(conv: ExperimentResult,
                             sweep: ExperimentResult | None = None) -> Sentences:
    """Q1.2's sentences: when each learning rate met the convergence rule, and the trend.

    Parameters
    ----------
    conv : ExperimentResult
        A :func:`~fmclassify.convergence_study`.
    sweep : ExperimentResult, optional
        Q1.1's sweep: each converged rate's accuracy is then set against its Q1.1 runs'.

    Returns
    -------
    Sentences
    """
    sweep_rows = {r["lr"]: r for r in sweep.table()} if sweep is not None else {}
    notes: list[str] = []
    converged: list[Mapping[str, Any]] = []
    groups = conv.groups()
    for r in conv.table():
        lr, epoch = r["lr"], r.get("converged_epoch")
        missed = [run.history.epochs_trained for run in groups[lr]
                  if run.history.status not in ("diverged", "failed") and run.history.trained
                  and _converged_at(run.history) is None]
        if missed:
            notes.append(f"lr {lr:g} did not meet the rule within {max(missed)} epochs in "
                         f"{len(missed)} of {r['seeds']} seeds.")
        if epoch is None:
            continue
        if thrashes(r):
            notes.append(f"lr {lr:g} met the convergence rule at epoch {_epoch(r)}, but at "
                         f"{pct(r['final_accuracy'])} accuracy: its accuracy stopped changing "
                         "because the network stopped learning, not because it reached a good "
                         "minimum (flagged unstable).")
            continue
        converged.append(r)
        asides = [f"unstable in {r['unstable']} of {r['seeds']} seeds"] if r["unstable"] else []
        base = sweep_rows.get(lr)
        if base and base["final_accuracy"] is not None and r["final_accuracy"] is not None:
            diff = 100 * (r["final_accuracy"] - base["final_accuracy"])
            asides.append(f"{diff:+.1f} points against the final accuracy of its Q1.1 runs")
        notes.append(f"lr {lr:g} met the convergence rule at epoch {_epoch(r)} with "
                     f"{pct(r['final_accuracy'])} accuracy"
                     + (f" ({'; '.join(asides)})" if asides else "") + ".")
    if len(converged) >= 2:
        by_lr = sorted(converged, key=lambda r: -r["lr"])
        epochs = [r["converged_epoch"] for r in by_lr]
        words = ", ".join(f"lr {r['lr']:g}: {_epoch(r)}" for r in by_lr)
        if any(apart(a, b, "converged_epoch") is False for a, b in itertools.pairwise(by_lr)):
            notes.append(f"The epochs to convergence ({words}) overlap within the spread of "
                         "their seeds: the rule does not put these learning rates in an order.")
        elif all(a <= b for a, b in itertools.pairwise(epochs)):
            notes.append(f"Smaller learning rates needed more epochs to converge ({words}).")
        else:
            notes.append(f"The epochs to convergence do not simply grow as the learning rate "
                         f"shrinks ({words}): a rule on the change per epoch also stops a run "
                         "that learns slowly but steadily.")
    return Sentences(notes)


def _converged_at(history: Any) -> int | None:
    """The epoch a run met its convergence rule at (its typed verdict), or None."""
    return history.convergence.epoch if history.convergence is not None else None


def _epoch(row: Mapping[str, Any]) -> str:
    """A row's convergence epoch: the mean over its converged seeds, ± their spread."""
    spread = row.get("converged_epoch_std")
    return f"{row['converged_epoch']:.0f}" + ("" if spread is None else f" ± {spread:.0f}")


def _late_best(short: Any, long: Any) -> tuple[int, float] | None:
    """(epoch, gain) when ``long``'s best accuracy came after ``short``'s last epoch, else None.

    The gain is over ``short``'s *best* accuracy, not its last: a run that peaked early and
    fell back gained nothing from more epochs.
    """
    if not short.trained or not long.trained:
        return None
    accs, epochs = long.column("test_accuracy"), long.column("epoch")
    top = max(accs)
    epoch = epochs[accs.index(top)]
    if epoch <= short.trained[-1].epoch:
        return None
    return epoch, top - short.best_accuracy


def budget_observations(sweep: ExperimentResult, conv: ExperimentResult) -> Sentences:
    """Q1.3's comparison: the learning rates in order after Q1.1's budget and after Q1.2's runs.

    A rate's fixed budget "cut it short" only when, in most of its seeds, the longer run's best
    accuracy came after the fixed budget's last epoch, above that budget's best by more than
    the spread of its seeds. A thrashing rate is never cut short: its steps overshoot, and more
    of them cannot help.

    Parameters
    ----------
    sweep, conv : ExperimentResult
        Q1.1's :func:`~fmclassify.lr_sweep` and Q1.2's :func:`~fmclassify.convergence_study`,
        with the same learning rates and seeds.

    Returns
    -------
    Sentences
    """
    short_rows = {r["lr"]: r for r in sweep.table()}
    long_rows = {r["lr"]: r for r in conv.table()}
    epochs = sweep.runs[0].spec.epochs if sweep.runs else 0
    notes: list[str] = []
    fixed, fixed_words = order(list(short_rows.values()), "final_accuracy", _lr)
    longer, longer_words = order(list(long_rows.values()), "best_accuracy", _lr)
    if len(fixed) > 1:
        notes.append(f"By final accuracy after {epochs} epochs: {fixed_words}; by the best "
                     f"accuracy of the longer Q1.2 runs: {longer_words}. The order "
                     + ("held" if fixed == longer else "changed")
                     + " when the runs were given more epochs"
                     + (" (≈: within the spread of their seeds)." if "≈" in fixed_words
                        + longer_words else "."))
    long_groups = conv.groups()
    for lr, runs in sweep.groups().items():
        short_row, long_row = short_rows[lr], long_rows.get(lr)
        pairs = [(s.history, lg.history) for s in runs for lg in long_groups.get(lr, [])
                 if s.spec.seed == lg.spec.seed and s.history.trained
                 and s.history.status not in ("diverged", "failed")
                 and lg.history.status not in ("diverged", "failed")]
        if not pairs or long_row is None:
            continue
        if thrashes(short_row) or thrashes(long_row):
            peaks = sorted({lg.column("epoch")[lg.column("test_accuracy").index(
                lg.best_accuracy)] for _, lg in pairs})
            at = (f"epoch {peaks[0]}" if len(peaks) == 1 else
                  f"epochs {', '.join(map(str, peaks))} (by seed)")
            notes.append(f"lr {lr:g} thrashed (flagged unstable): its best accuracy came at "
                         f"{at}; more epochs cannot help steps that overshoot, so the fixed "
                         "budget did not cut it short.")
            continue
        late = [x for x in (_late_best(s, lg) for s, lg in pairs) if x is not None]
        n = len(pairs)
        if 2 * len(late) <= n:
            notes.append(f"lr {lr:g}: its best accuracy came within Q1.1's {epochs} epochs in "
                         f"{n - len(late)} of {n} seeds: more epochs did not improve it.")
            continue
        gain = statistics.fmean(g for _, g in late)
        at = statistics.fmean(e for e, _ in late)
        spread = short_row.get("best_accuracy_std")
        if spread is not None and gain <= spread:
            notes.append(f"lr {lr:g}: the longer runs' best came after epoch {epochs}, but only "
                         f"{100 * gain:.1f} points above the best within Q1.1's {epochs} epochs, "
                         "within the spread of its seeds: more epochs did not clearly help.")
            continue
        notes.append(f"lr {lr:g}: the fixed budget cut it short: in {len(late)} of {n} seeds "
                     f"the longer run's best accuracy came after epoch {epochs} (at epoch "
                     f"{at:.0f}{' on average' if len(late) > 1 else ''}), {100 * gain:.1f} "
                     "points above its best within Q1.1's "
                     f"{epochs} epochs.")
    return Sentences(notes)


def threshold_observations(conv: ExperimentResult,
                           replay: Mapping[Any, Mapping[float, Sequence[int | None]]],
                           rule: Mapping[str, Any]) -> Sentences:
    """Q1.2's threshold: what looser thresholds would have said, and a threshold out of reach.

    Parameters
    ----------
    conv : ExperimentResult
        The convergence study.
    replay : mapping
        Learning rate -> threshold -> the epoch the rule with that threshold declares
        convergence at, per seed in the order of ``conv``'s runs (None: not within the run);
        from replaying :class:`~fmclassify.ConvergenceDetector` on the recorded accuracies.
        Thresholds as strict as the study's or looser (stricter ones need longer runs).
    rule : mapping
        The study's rule: ``threshold``, ``patience``, ``window`` (as
        :meth:`fmclassify.report.Budget.detector_config` gives them).

    Returns
    -------
    Sentences
        Per rate, how much sooner the loosest threshold stops it; then, only when some run
        never met the study's threshold, why a strict threshold can stay out of reach (the
        last moves of its smoothed accuracy); else that no run here shows that case.
    """
    notes: list[str] = []
    for lr, by_threshold in replay.items():
        loose, strict = max(by_threshold), min(by_threshold)
        a, b = by_threshold[loose], by_threshold[strict]
        if any(e is None for e in (*a, *b)) or not a:
            continue
        sooner = statistics.fmean(b) - statistics.fmean(a)
        if sooner > 0:
            notes.append(f"lr {lr:g}: a threshold of {loose:g} instead of {strict:g} stops it at "
                         f"epoch {_epochs(a)} instead of {_epochs(b)}, {sooner:.0f} epochs "
                         "sooner on average.")
        else:
            notes.append(f"lr {lr:g}: every threshold from {loose:g} to {strict:g} stops it at "
                         f"epoch {_epochs(b)}: its accuracy stopped moving at once.")
    window, patience, threshold = rule["window"], rule["patience"], rule["threshold"]
    missed = [r for r in conv.runs if r.history.status not in ("diverged", "failed")
              and r.history.trained and _converged_at(r.history) is None]
    for run in missed:
        moves = _smoothed_moves(run.history.column("test_accuracy"), window)[-patience:]
        notes.append(f"{run.spec.label} seed {run.spec.seed} never met the rule within "
                     f"{run.history.epochs_trained} epochs: the last {len(moves)} moves of its "
                     f"{window}-epoch average were "
                     + ", ".join(f"{100 * m:.2f}" for m in moves) + f" points, not all under "
                     f"{100 * threshold:g}: the noise of the batches and of a finite test set "
                     "keeps even a smoothed accuracy moving, so a strict threshold can stay out "
                     "of reach.")
    if not missed and conv.runs:
        notes.append(f"Every run met the rule at {100 * threshold:g} points within its budget, so "
                     "none shows a threshold out of reach here; a stricter one can be: the "
                     "noise of the batches and of a finite test set keeps even a smoothed "
                     "accuracy moving by a little.")
    return Sentences(notes)


def _epochs(values: Sequence[int | None]) -> str:
    return "/".join(str(v) for v in values)


def _smoothed_moves(accs: Sequence[float], window: int) -> list[float]:
    """Absolute change of the ``window``-epoch moving average of ``accs``, epoch to epoch."""
    means = [statistics.fmean(accs[i - window + 1: i + 1]) for i in range(window - 1, len(accs))]
    return [abs(b - a) for a, b in itertools.pairwise(means)]


def lr_observations(sweep: ExperimentResult, conv: ExperimentResult) -> Sentences:
    """Q1.3's sentences, as the report writes them.

    Q1.1's (:func:`sweep_observations`), Q1.2's against Q1.1's runs
    (:func:`convergence_observations`), then :func:`budget_observations`.
    """
    return (sweep_observations(sweep) + convergence_observations(conv, sweep)
            + budget_observations(sweep, conv))


# -- Q1.7: the gradient -------------------------------------------------------------------------


def trend(values: Sequence[float | None]) -> tuple[float, float] | None:
    """The mean ``|value|`` over the first and the last tenth of a trace (None if not finite)."""
    if not values or any(v is None for v in values):
        return None
    k = max(1, len(values) // 10)
    sizes = [abs(float(v)) for v in values if v is not None]
    return statistics.fmean(sizes[:k]), statistics.fmean(sizes[-k:])


def lr_trends(result: ExperimentResult) -> dict[Any, tuple[float, float] | None]:
    """Per learning rate, :func:`trend` averaged over the seeds whose traces stayed finite."""
    out: dict[Any, tuple[float, float] | None] = {}
    for lr, runs in result.groups().items():
        found = [t for r in runs if r.gradients
                 and (t := trend(r.gradients["values"])) is not None]
        out[lr] = (statistics.fmean(t[0] for t in found),
                   statistics.fmean(t[1] for t in found)) if found else None
    return out


def _change(early: float, late: float) -> str:
    if late < early:
        return f"down {100 * (1 - late / early):.0f}%"
    return f"up {late / early:.3g}x" if early else "up from 0"


def gradient_observation(lr: float, signed: tuple[float, float], size: tuple[float, float],
                         hint: str, steps: int) -> str:
    """What the course's hint predicts against what the two traces of one lr measured."""
    k = max(1, steps // 10)
    first, last = f"steps 1-{k}", f"steps {steps - k + 1}-{steps}"
    fell = [signed[1] < signed[0], size[1] < size[0]]
    verdict = ("it holds for both" if all(fell) else "it holds for neither" if not any(fell)
               else "it holds for the signed mean only" if fell[0]
               else "it holds for the size only")
    return (f"The course's hint says {hint}; at lr {lr:g} the size of the signed mean gradient "
            f"went from {signed[0]:.2e} ({first}) to {signed[1]:.2e} ({last}), "
            f"{_change(*signed)}, and the mean absolute gradient from {size[0]:.2e} to "
            f"{size[1]:.2e}, {_change(*size)}: {verdict}.")


def gradient_blowups(result: ExperimentResult, factor: float = 1000.0) -> Sentences:
    """Per learning rate, a trace that left the finite numbers or grew ``factor`` times its start.

    Parameters
    ----------
    result : ExperimentResult
        A :func:`~fmclassify.gradient_study`; the mean absolute gradient (``"mean_abs"``) shows
        a blow-up best, since no cancellation hides it.
    factor : float, default 1000
        How many times its first step's size a step must reach to count as a blow-up.

    Returns
    -------
    Sentences
        One sentence per rate that blew up in some seed (nothing for the others): where its
        trace peaked or stopped being finite, where it ended, and how its run ended.
    """
    notes = []
    for lr, runs in result.groups().items():
        traced = [r for r in runs if r.gradients and r.gradients["values"]]
        broken = [r for r in traced if any(v is None for v in r.gradients["values"])]
        huge = [r for r in traced if r not in broken and _peak(r.gradients["values"], factor)]
        if broken:
            first = min(r.gradients["values"].index(None) + 1 for r in broken)
            notes.append(f"lr {lr:g}: in {len(broken)} of {len(runs)} seeds the trace is not "
                         f"finite from step {first} on: the loss overflowed, as the steps threw "
                         "the weights out of the floating-point range, and no mean or size is "
                         "taken over such a trace.")
        if huge:
            run = huge[0]
            values = [abs(float(v)) for v in run.gradients["values"]]
            step = max(range(len(values)), key=values.__getitem__)
            h = run.history
            notes.append(f"lr {lr:g}: in {len(huge)} of {len(runs)} seeds the gradient blew up, "
                         f"to more than {factor:g}x its first step's size (seed {run.spec.seed}: "
                         f"{values[0]:.1e} at step 1, {values[step]:.1e} at step {step + 1}, "
                         f"{values[-1]:.1e} at step {len(values)}): each step is the learning "
                         "rate times the gradient, so a long step lands where the gradient is "
                         "larger still, and the weights it leaves behind "
                         + (f"ended the run at {pct(h.final_accuracy)} test accuracy, flagged "
                            "unstable." if h.unstable else
                            f"still gave {pct(h.final_accuracy)} test accuracy."))
    return Sentences(notes)


def _peak(values: Sequence[float | None], factor: float) -> bool:
    sizes = [abs(float(v)) for v in values if v is not None]
    return bool(sizes) and max(sizes) > factor * max(sizes[0], 1e-30)


def cancellation_observation(signed: ExperimentResult, size: ExperimentResult,
                             lr: float) -> str:
    """How much of the gradient cancels in the signed mean at one learning rate.

    Parameters
    ----------
    signed, size : ExperimentResult
        The same :func:`~fmclassify.gradient_study` with ``statistic="mean"`` and
        ``"mean_abs"``: the runs of one seed trace the same steps.
    lr : float
        The learning rate to describe.

    Returns
    -------
    str
        The median over the steps (and seeds) of ``|signed mean| / mean |g|``, and how often the
        signed mean changed sign; or why there is nothing to say.
    """
    pairs = [(a.gradients["values"], b.gradients["values"])
             for a in signed.groups().get(lr, []) for b in size.groups().get(lr, [])
             if a.spec.seed == b.spec.seed and a.gradients and b.gradients]
    ratios = [abs(x) / y for m, s in pairs for x, y in zip(m, s, strict=False)
              if x is not None and y]
    if not ratios:
        return f"lr {lr:g} has no finite pair of traces to compare."
    flips = [sum((x > 0) != (y > 0) for x, y in itertools.pairwise(m) if None not in (x, y))
             for m, _ in pairs]
    return (f"At lr {lr:g} the signed mean is typically {statistics.median(ratios):.1%} of the "
            "mean absolute gradient (median over the steps and seeds): most of the gradient "
            f"cancels in the sum, and the signed mean changed sign {min(flips)} to {max(flips)} "
            f"times in {len(pairs[0][0])} steps.")


def gradient_observations(signed: ExperimentResult, size: ExperimentResult, hint: str,
                          steps: int) -> Sentences:
    """Q1.7's sentences: :func:`gradient_observation` per rate, then :func:`gradient_blowups`.

    Parameters
    ----------
    signed, size : ExperimentResult
        The same :func:`~fmclassify.gradient_study` with ``statistic="mean"`` and
        ``"mean_abs"``.
    hint : str
        The course's hint (:data:`fmclassify.course.assignment.PUBLISHED`'s ``gradient_hint``).
    steps : int
        The traced steps.

    Returns
    -------
    Sentences
        A rate whose traces are not finite gets no trend sentence, only its blow-up's.
    """
    a, b = lr_trends(signed), lr_trends(size)
    groups = size.groups()
    notes = []
    for lr, early_late in a.items():
        sizes = b.get(lr)
        blown = any(_peak(r.gradients["values"], 1000.0) for r in groups.get(lr, [])
                    if r.gradients)
        if early_late is not None and sizes is not None and not blown:
            notes.append(gradient_observation(lr, early_late, sizes, hint, steps))
    return Sentences(notes) + gradient_blowups(size)


# -- beyond the course --------------------------------------------------------------------------


def recipe_observation(plain: Mapping[str, Any] | None, recipe: Mapping[str, Any],
                       recipe_epochs: int, plain_epochs: int | None,
                       course: float | None) -> str:
    """How far the modern recipe takes the course's CNN, against its plain SGD runs."""
    line = (f"With the modern recipe the course's CNN reaches {pct(recipe['final_accuracy'])} "
            f"after {recipe_epochs} epochs")
    if plain is not None and plain.get("final_accuracy") is not None:
        gain = 100 * (recipe["final_accuracy"] - plain["final_accuracy"])
        line += (f", {gain:+.1f} points from the course's setup ({pct(plain['final_accuracy'])}"
                 f" after {plain_epochs} epochs, same data)")
    if course is not None:
        line += (f"; the course reported {pct(course)} (its mean over 10 epochs) for the "
                 "same network")
    return line + ": the difference is the training setup, not the network."
