"""Sweeps on real Dask clusters on 127.0.0.1: a LocalCluster, and `dask scheduler` + `dask worker`.

The runs (the base MLP, 2 learning rates by 2 seeds, 2 epochs, the first 2,000 training and 500
test images of Fashion-MNIST, named by a DataRef that each worker loads itself) must give the
Histories of the same runs trained in this process with one intra-op thread, as the workers
have. A worker SIGKILLed mid-sweep leaves the finished runs in the store and the rerun trains
only the rest; a run made to fail is recorded as failed while the other three finish. Every
cluster is stopped in its fixture's teardown and every test has a deadline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from dask.distributed import Client

import fmclassify as fmc
from conftest import REAL_DATA
from fmclassify.cli import main
from fmclassify.clusters import dask_executor
from fmclassify.executors import DataRef
from fmclassify.runs import RunResult, RunStore

pytestmark = pytest.mark.integration

SWEEP = {"lrs": (0.1, 0.05), "epochs": 2, "seeds": (0, 1)}


@contextlib.contextmanager
def deadline(seconds: float):
    """Fail the block with TimeoutError after ``seconds`` (SIGALRM: the main thread only)."""
    def expire(signum, frame):
        raise TimeoutError(f"ran past its deadline of {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def strip(history):
    return [dataclasses.replace(r, seconds=0.0) for r in history.records]


def assert_same_runs(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert a.spec == b.spec
        assert a.history.status == b.history.status == "completed"
        assert strip(a.history) == strip(b.history)  # bit for bit, seconds aside
        assert a.history.metadata["threads"] == 1


@pytest.fixture(scope="module")
def ref(real_data):
    return DataRef("fashion-mnist", root=str(REAL_DATA), download=False, train_size=2000,
                   test_size=500)


@pytest.fixture(scope="module")
def here(ref):
    """The sweep trained one run after another in this process, with one intra-op thread."""
    with one_thread():
        return fmc.lr_sweep("base", data=ref, workers=1, **SWEEP)


@pytest.fixture(scope="module")
def local_cluster():
    with deadline(120):
        executor = dask_executor(workers=2)
    try:
        yield executor
    finally:
        with deadline(60):
            executor.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, SIGKILL it when it lingers."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """`dask scheduler` and `dask worker --nworkers 2 --nthreads 1`, as subprocesses.

    A task whose worker dies is not retried (allowed-failures 0: the run comes back as
    failed), and a worker holds one task at a time (saturation 1.0).
    """
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
           "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0"}
    dask = str(Path(sys.executable).parent / "dask")
    log = open(tmp_path_factory.mktemp("dask") / "cluster.log", "wb")  # noqa: SIM115
    commands = [
        [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        [dask, "worker", address, "--host", "127.0.0.1", "--nworkers", "2", "--nthreads", "1",
         "--no-dashboard", "--death-timeout", "60"],
    ]
    procs = []
    try:
        for command in commands:
            procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))
        with deadline(150), Client(address, timeout=120) as client:
            client.wait_for_workers(2, timeout=120)
            assert all(w.startswith("tcp://127.0.0.1:") for w in client.nthreads())
        yield address
    finally:
        for proc in reversed(procs):
            stop(proc)
        log.close()


def test_a_sweep_on_a_local_cluster_equals_one_thread_runs_here(local_cluster, ref, here):
    client = local_cluster.client
    assert client.scheduler.address.startswith("tcp://127.0.0.1:")
    assert sorted(client.nthreads().values()) == [1, 1]  # two worker processes, a task each
    assert all(w.startswith("tcp://127.0.0.1:") for w in client.nthreads())
    with deadline(150):
        result = fmc.lr_sweep("base", data=ref, executor=local_cluster, **SWEEP)
    assert_same_runs(result.runs, here.runs)


def test_a_run_that_fails_on_a_worker_is_recorded_while_the_others_finish(
        local_cluster, ref, here, tmp_path):
    store = RunStore(tmp_path)
    broken = here.runs[1].spec  # its checkpoint is garbage: the worker cannot resume it
    store.checkpoint_path(broken).write_bytes(b"not a checkpoint")
    with deadline(150):
        result = fmc.lr_sweep("base", data=ref, executor=local_cluster, store=store, **SWEEP)
    statuses = [r.history.status for r in result.runs]
    assert statuses == ["completed", "failed", "completed", "completed"]
    reason = result.runs[1].history.reason
    assert reason.startswith("CheckpointError: checkpoint") and "cannot be read" in reason
    assert_same_runs([result.runs[i] for i in (0, 2, 3)], [here.runs[i] for i in (0, 2, 3)])
    assert len(list(tmp_path.glob("*.json"))) == 3
    assert "failed" in result.table()[0]["status"]


def test_the_sweep_command_on_a_dask_scheduler_and_workers(scheduler, here, tmp_path, capsys):
    out = tmp_path / "sweep.json"
    argv = ["sweep", "--scheduler", scheduler, "--model", "base", "--lrs", "0.1,0.05",
            "--seeds", "2", "--epochs", "2", "--data-root", str(REAL_DATA), "--no-download",
            "--train-size", "2000", "--test-size", "500", "--store", str(tmp_path / "runs"),
            "--json", str(out), "--no-progress"]
    with deadline(180):
        assert main(argv) == 0
    runs = [RunResult.from_dict(r) for r in json.loads(out.read_text())["runs"]]
    assert_same_runs(runs, here.runs)
    assert len(list((tmp_path / "runs").glob("*.json"))) == 4
    assert f"result written to {out}" in capsys.readouterr().out


# Runs on each worker (client.run(exec, ...)): the run (LR, SEED) SIGKILLs its own worker at
# the end of its epoch 2 (before that epoch's checkpoint), once; the nanny starts a new one.
KILLER = textwrap.dedent("""
    import os, signal
    from pathlib import Path

    import fmclassify.training as training
    from fmclassify.callbacks import CallbackBase

    class KillOnce(CallbackBase):
        needs_gradients = False

        def on_epoch_end(self, run, record):
            meta = run.history.metadata
            if (record.epoch == 2 and (meta["lr"], meta["seed"]) == (LR, SEED)
                    and not Path(MARK).exists()):
                Path(MARK).touch()
                os.kill(os.getpid(), signal.SIGKILL)

    init = training.Trainer.__init__

    def patched(self, *args, **kwargs):
        kwargs["callbacks"] = [*kwargs.get("callbacks", ()), KillOnce()]
        init(self, *args, **kwargs)

    training.Trainer.__init__ = patched
""")


def test_a_worker_killed_mid_sweep_keeps_the_finished_runs_and_the_rerun_trains_the_rest(
        scheduler, ref, here, tmp_path):
    from fmclassify.checkpoint import read_checkpoint_history

    store, mark = tmp_path / "runs", tmp_path / "killed"
    with deadline(240), dask_executor(scheduler) as ex:
        ex.client.run(exec, KILLER, {"LR": 0.05, "SEED": 1, "MARK": str(mark)})
        first = fmc.lr_sweep("base", data=ref, executor=ex, store=store, **SWEEP)
    assert mark.exists()  # the worker did die
    assert [r.history.status for r in first.runs] == ["completed"] * 3 + ["failed"]
    assert "its task did not come back (KilledWorker" in first.runs[3].history.reason
    finished = {p: p.stat().st_mtime_ns for p in store.glob("*.json")}
    assert len(finished) == 3
    (ckpt,) = store.glob("*.ckpt")  # the killed run's last finished epoch
    assert read_checkpoint_history(ckpt).epochs_trained == 1

    with deadline(240), dask_executor(scheduler) as ex:
        again = fmc.lr_sweep("base", data=ref, executor=ex, store=store, **SWEEP)
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())  # none trained twice
    assert len(list(store.glob("*.json"))) == 4 and not list(store.glob("*.ckpt"))
    assert_same_runs(again.runs, here.runs)  # the resumed run equals the straight one
