"""One lr sweep three ways, side by side: in this process, --workers 2, a 2-worker Dask cluster.

The sweep: the base MLP at ``--runs`` learning rates (default 8), ``--epochs`` epochs each
(default 1) on the first ``--train-size`` training images (default all 60,000) and the whole
test set, one intra-op thread per run everywhere (in this process under
``torch.set_num_threads(1)``, as the workers have), so the three give the same Histories (the
script checks it) and differ only in where the runs train:

* in this process, one run after another (``workers=1``);
* our own pool of ``--workers`` processes (``workers=2``, forked, the data inherited);
* a Dask LocalCluster of ``--workers`` processes on 127.0.0.1 (``fmc.dask_executor``): each
  worker loads the data by name (a DataRef) and keeps it. The sweep runs twice on the same
  cluster: cold (the workers import fmclassify and load the data on their first task) and warm.

Printed: wall seconds, the speed-up over one process, and the overhead per run. A run's own cost
T is the in-process wall / runs. A parallel sweep costs each run ``wall * workers / runs``; the
overhead per run is that minus T (for the pool: fork, results, two runs sharing the machine).
The engine's own overhead is Dask's wall minus the pool's, times workers / runs, also as a
percentage of T; on a busy machine that difference is mostly noise, so the script also times
what Dask adds to a task directly: the round trip of an empty ``train_runs`` task (the data
handle sent, the kept data found, an empty result back), median of 20 on the warm cluster.
The cluster's start and its cold first sweep are one-time costs, printed apart, and so is the
load average (other jobs on the machine) before and after.

    python benchmarks/dask_sweep.py [--runs 8] [--epochs 1] [--train-size 60000] [--workers 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time

# This file's name shadows Dask's own package ``distributed`` when run from this folder (the
# script's folder comes first on sys.path): look there last, for _common alone.
if sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(os.path.realpath(__file__)):
    sys.path.append(sys.path.pop(0))

import torch
from _common import SYSTEM_COPY, machine

import fmclassify as fmc
from fmclassify.clusters import dask_executor
from fmclassify.executors import DataHandle, DataRef
from fmclassify.runs import train_runs

LRS = (0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005, 0.0002, 0.0001, 0.00005)


def sweep(ref: DataRef, lrs: tuple[float, ...], epochs: int, **where: object) -> tuple[float, list]:
    """Wall seconds of one lr_sweep, and its runs."""
    start = time.perf_counter()
    result = fmc.lr_sweep("base", lrs=lrs, epochs=epochs, data=ref, **where)
    return time.perf_counter() - start, result.runs


def same(a: list, b: list) -> bool:
    strip = [[dataclasses.replace(r, seconds=0.0) for r in run.history.records] for run in a]
    return strip == [[dataclasses.replace(r, seconds=0.0) for r in run.history.records]
                     for run in b]


def round_trip(ex: object, ref: DataRef) -> float:
    """Median seconds of an empty train_runs task on the cluster (20 of them, one at a time)."""
    handle, times = DataHandle(repr(ref), ref=ref), []
    for _ in range(20):
        start = time.perf_counter()
        ex.submit(train_runs, [], handle, None, "cpu").result()  # type: ignore[attr-defined]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8, help=f"learning rates, up to {len(LRS)}")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-size", type=int, default=60_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    lrs, w = LRS[:args.runs], args.workers
    torch.set_num_threads(1)
    print(machine())
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    ref = DataRef("fashion-mnist", root=str(SYSTEM_COPY), download=False,
                  train_size=args.train_size)
    fmc.lr_sweep("base", lrs=lrs[:1], epochs=1, data=ref, workers=1)  # load, warm up: untimed
    print(f"{len(lrs)} runs of the base MLP, {args.epochs} epoch(s) of {args.train_size:,} "
          f"images each, one intra-op thread per run, {w} workers\n")

    alone, runs_alone = sweep(ref, lrs, args.epochs, workers=1)
    pooled, runs_pool = sweep(ref, lrs, args.epochs, workers=w)
    started = time.perf_counter()
    with dask_executor(workers=w) as ex:
        startup = time.perf_counter() - started
        cold, runs_cold = sweep(ref, lrs, args.epochs, executor=ex)
        warm, runs_dask = sweep(ref, lrs, args.epochs, executor=ex)
        trip = round_trip(ex, ref)

    n = len(lrs)
    run = alone / n
    print(f"{'where':<28} {'wall s':>8} {'speed-up':>9} {'s per run':>10} {'overhead/run':>13}")
    rows = (("in this process", alone, 1), (f"--workers {w} (own pool)", pooled, w),
            (f"Dask, {w} workers, warm", warm, w), (f"Dask, {w} workers, cold", cold, w))
    for name, wall, workers in rows:
        per_run = wall * workers / n
        print(f"{name:<28} {wall:>8.2f} {alone / wall:>8.2f}x {per_run:>10.2f} "
              f"{per_run - run:>+12.2f}s")
    engine = (warm - pooled) * w / n
    print(f"\na run alone: {run:.2f} s; Dask's overhead per run over the own pool (warm): "
          f"{engine:+.3f} s = {100 * engine / run:+.1f}% of a run")
    print(f"Dask's round trip of an empty task (warm, median of 20): {1000 * trip:.1f} ms = "
          f"{100 * trip / run:.2f}% of a run")
    print(f"one-time: cluster start {startup:.2f} s; its cold first sweep took "
          f"{cold - warm:+.2f} s more than the warm one (imports, data load per worker)")
    print(f"same Histories (seconds aside): pool {same(runs_pool, runs_alone)}, "
          f"Dask cold {same(runs_cold, runs_alone)}, warm {same(runs_dask, runs_alone)}")
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
