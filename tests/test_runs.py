"""run_many through any Executor: data by name or by value, small runs grouped, failures kept."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from concurrent.futures import Executor, Future, ThreadPoolExecutor

import pytest
import torch

import fmclassify as fmc
from fmclassify.exceptions import ConfigError, DataError, RunFailedError
from fmclassify.executors import DataHandle, DataRef, data_id, fingerprint
from fmclassify.history import History
from fmclassify.runs import RunSpec, RunStore, run_many, run_one, train_runs
from helpers import make_dataset


@pytest.fixture
def data():
    return make_dataset(256, seed=0), make_dataset(128, seed=1, split="test")


class Inline(Executor):
    """An executor that is no thread pool of ours: runs each task here, records what it got."""

    def __init__(self, fail_task: int | None = None):
        self.tasks: list[tuple] = []
        self.fail_task = fail_task

    def submit(self, fn, /, *args, **kwargs):
        future: Future = Future()
        self.tasks.append(args)
        if len(self.tasks) - 1 == self.fail_task:
            future.set_exception(OSError("connection to the worker lost"))
        else:
            future.set_result(fn(*args, **kwargs))
        return future


def specs(data, lrs=(0.5, 0.05), seeds=(0, 1), epochs=2):
    ident = data_id(*data)
    return [RunSpec("base", lr, epochs, seed, batch_size=32, data=ident)
            for lr in lrs for seed in seeds]


def strip(history):
    return [dataclasses.replace(r, seconds=0.0) for r in history.records]


@contextlib.contextmanager
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _one_intra_op_thread():
    """One thread: these runs are tiny, and a second thread only waits on a busy machine."""
    with one_thread():
        yield


def test_small_runs_go_a_few_to_a_task_and_unnamed_data_travels_with_them(data):
    ex = Inline()
    sent = run_many(specs(data, seeds=(0, 1, 2, 3)), data, executor=ex)
    here = run_many(specs(data, seeds=(0, 1, 2, 3)), data, workers=1)
    # 8 runs of 2 epochs x 256 images, an executor that does not say its size (8 workers)
    assert [len(task[0]) for task in ex.tasks] == [1] * 8
    many = specs(data, lrs=(0.5, 0.1, 0.05, 0.01), seeds=tuple(range(16)), epochs=1)
    ex2 = Inline()
    ex2.parallelism = lambda: 2
    run_many(many[:8], data, executor=ex2)
    assert [len(task[0]) for task in ex2.tasks] == [2] * 4  # at least two tasks per worker
    handle = ex.tasks[0][1]
    assert isinstance(handle, DataHandle) and handle.ref is None
    assert handle.payload is data  # synthetic data cannot be named: it goes by value
    for a, b in zip(sent, here, strict=True):
        assert a.spec == b.spec and strip(a.history) == strip(b.history)


def test_a_failed_run_is_recorded_and_the_others_go_on(data, tmp_path):
    store = RunStore(tmp_path)
    runs = specs(data)
    store.checkpoint_path(runs[1]).write_bytes(b"not a checkpoint")
    seen = []
    results = run_many(runs, data, store=store, executor=Inline(), on_run=seen.append)
    statuses = [r.history.status for r in results]
    assert statuses == ["completed", "failed", "completed", "completed"]
    reason = results[1].history.reason
    assert reason.startswith("CheckpointError: checkpoint") and "cannot be read" in reason
    assert len(seen) == 4 and results[1].history.metadata["lr"] == 0.5
    assert len(list(tmp_path.glob("*.json"))) == 3  # a failed run is not stored as finished
    # the same call, once the cause is gone, trains only the failed run
    store.checkpoint_path(runs[1]).unlink()
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")}
    ex = Inline()
    again = run_many(runs, data, store=store, executor=ex)
    assert [len(t[0]) for t in ex.tasks] == [1]
    assert all(r.history.status == "completed" for r in again)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())


def test_on_error_raise_stops_at_the_first_failure(data, tmp_path):
    store = RunStore(tmp_path)
    runs = specs(data)
    store.checkpoint_path(runs[0]).write_bytes(b"junk")
    with pytest.raises(RunFailedError, match=r"run base lr=0.5 seed 0 failed: CheckpointError"):
        run_many(runs, data, store=store, executor=Inline(), on_error="raise")
    with pytest.raises(fmc.CheckpointError, match="cannot be read"):  # here: its own error
        run_many(runs, data, store=store, workers=1, on_error="raise")
    in_process = run_many(runs, data, store=store, workers=1)  # record: the default
    assert [r.history.status for r in in_process] == ["failed", *["completed"] * 3]


def test_a_task_that_never_comes_back_fails_its_runs_only(data):
    results = run_many(specs(data), data, executor=Inline(fail_task=2))
    assert [r.history.status for r in results] == ["completed", "completed", "failed",
                                                   "completed"]
    assert "its task did not come back (OSError: connection to the worker lost)" in (
        results[2].history.reason)


def test_a_thread_pool_shares_this_process_data(data):
    with ThreadPoolExecutor(2) as pool:
        results = run_many(specs(data, seeds=(0,)), data, executor=pool)
    assert [r.history.status for r in results] == ["completed", "completed"]


def test_a_worker_without_the_data_fails_its_runs_with_the_reason(data):
    out = train_runs(specs(data)[:2], DataHandle("nowhere"), None, "cpu")
    assert [r.history.status for r in out] == ["failed", "failed"]
    assert "the worker could not load the data (DataError" in out[0].history.reason


def test_data_made_for_another_set_fails_on_the_worker(data):
    other = make_dataset(256, seed=5), make_dataset(128, seed=6, split="test")
    spec = dataclasses.replace(specs(data)[0], data="fashion-mnist:60000:10000:x:y")
    out = train_runs([spec], DataHandle("v", payload=other), None, "cpu")
    assert out[0].history.status == "failed"
    assert "but the run was made for fashion-mnist:60000:10000:x:y" in out[0].history.reason


def test_a_failed_history_round_trips_through_json():
    h = History(status="failed", reason="RuntimeError: boom (on host, pid 1)")
    assert History.from_dict(json.loads(json.dumps(h.to_dict()))) == h
    assert h.describe_status() == "failed" and not h.unstable


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"on_error": "ignore"}, "unknown on_error 'ignore'; choose one of 'record', 'raise'"),
    ({"executor": "dask"}, "executor must be a concurrent.futures.Executor"),
    ({"workers": 0}, "workers must be an integer >= 1, got 0"),
])
def test_bad_run_options_fail_before_any_work(data, kwargs, message, monkeypatch):
    from fmclassify import experiments

    monkeypatch.setattr(experiments, "load_dataset", lambda *a, **k: pytest.fail("loaded"))
    with pytest.raises(ConfigError, match=message):
        fmc.lr_sweep(**kwargs)
    with pytest.raises(ConfigError, match=message):
        run_many(specs(data), data, **kwargs)


def test_data_that_does_not_fit_fails_once_before_any_run(data):
    odd = (make_dataset(64), make_dataset(32, size=10, split="test"))
    ex = Inline()
    with pytest.raises(DataError, match=r"train images are \(1, 8, 8\) but test images are"):
        run_many(specs(data), odd, executor=ex)
    assert not ex.tasks


def test_a_data_ref_names_loaded_files_and_refuses_other_content(tmp_path):
    from helpers import write_fashion_idx

    write_fashion_idx(tmp_path, n_train=300, n_test=100)
    ref = DataRef("fashion-mnist", root=tmp_path, download=False, train_size=200, test_size=50)
    train, test = ref.load()
    assert (len(train), len(test)) == (200, 50)
    named = DataRef.of(train, test)
    assert named == dataclasses.replace(ref, root=str(tmp_path), fingerprint=named.fingerprint)
    assert named.load()[0].images.equal(train.images)
    shuffled = train.subset(torch.arange(199, -1, -1))  # not the first 200: the worker refuses
    with pytest.raises(DataError, match="differs from the data the runs were made for"):
        DataRef.of(shuffled, test).load()
    assert fingerprint(train, test) != fingerprint(shuffled, test)
    with pytest.raises(ConfigError, match="train_size must be an integer >= 1, got 0"):
        DataRef(train_size=0)


def test_synthetic_data_cannot_be_named(data):
    assert DataRef.of(*data) is None


class FakeJobs:
    """A job submitter with submitit's surface: submit -> job with done, result, cancel."""

    class Job:
        def __init__(self, fn, args):
            self.fn, self.args, self.cancelled = fn, args, False

        def done(self):
            return True

        def result(self):
            return self.fn(*self.args)

        def cancel(self):
            self.cancelled = True

    def __init__(self):
        self.jobs = []

    def submit(self, fn, *args):
        self.jobs.append(self.Job(fn, args))
        return self.jobs[-1]


def test_a_job_submitter_trains_the_sweep_through_job_executor(data):
    from fmclassify.clusters import JobExecutor

    jobs = FakeJobs()
    ex = JobExecutor(jobs, parallelism=2, poll=0.01)
    results = fmc.lr_sweep("base", lrs=(0.5, 0.05), epochs=1, seeds=(0, 1), data=data,
                           batch_size=32, executor=ex)
    assert [r.history.status for r in results.runs] == ["completed"] * 4
    assert [len(j.args[0]) for j in jobs.jobs] == [1] * 4  # 4 runs, 2 at once: one per job
    ex.shutdown()


def test_dask_executor_names_the_extra_when_dask_is_missing(monkeypatch):
    import sys

    from fmclassify.clusters import dask_executor

    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # import fails as if missing
    with pytest.raises(ImportError, match=r'pip install "fmclassify\[dask\]"'):
        dask_executor()
    with pytest.raises(ConfigError, match="workers sizes a local cluster"):
        dask_executor("tcp://127.0.0.1:8786", workers=2)


# -- a run read from the first epochs of a longer one --------------------------------------------


def detector(**kwargs):
    return tuple(sorted(fmc.ConvergenceDetector(**kwargs).config().items()))


def same_run(a: History, b: History) -> None:
    assert (a.status, a.reason, a.diverged_epoch) == (b.status, b.reason, b.diverged_epoch)
    assert strip(a) == strip(b)
    assert a.metadata == b.metadata


@pytest.mark.parametrize("longer", [
    {"epochs": 5},                                                    # a longer plain run
    {"epochs": 6, "detector": detector(threshold=1e-9, min_epochs=6)},  # never converges
    {"epochs": 6, "detector": detector(threshold=1.0, patience=1, min_epochs=4)},  # at 4
    {"epochs": 6, "lr": 50.0},                                        # diverges in epoch 1
], ids=["plain", "detector", "converged-later", "diverged"])
def test_a_run_is_read_from_a_longer_run_it_begins(data, tmp_path, longer):
    short = dataclasses.replace(specs(data, lrs=(longer.pop("lr", 0.05),), seeds=(0,),
                                      epochs=3)[0])
    long = dataclasses.replace(short, **longer)
    store = RunStore(tmp_path)
    run_one(long, data, store=store)
    read = store.load(short)
    fresh = run_one(short, data)  # trained on its own, no store
    assert read is not None and read.spec == short
    same_run(read.history, fresh.history)
    stored = store.load(long).history
    assert [r.seconds for r in read.history] == [r.seconds for r in stored][:len(read.history)]


@pytest.mark.parametrize("change", [
    {"detector": detector(threshold=1.0, patience=1)},  # converged at epoch 1, before 3
    {"detector": detector(threshold=1e-9, min_epochs=6, restore_best=True)},  # weights: another's
    {"seed": 1},                                        # another configuration
    {"epochs": 2},                                      # shorter
], ids=["converged-earlier", "restore-best", "other-seed", "shorter"])
def test_a_longer_run_that_does_not_begin_the_run_is_not_used(data, tmp_path, change):
    short = specs(data, lrs=(0.05,), seeds=(0,), epochs=3)[0]
    store = RunStore(tmp_path)
    run_one(dataclasses.replace(short, epochs=6, **change) if "epochs" not in change
                else dataclasses.replace(short, **change), data, store=store)
    assert store.load(short) is None


def test_a_scheduled_run_is_never_read_from_a_longer_one(data, tmp_path):
    short = dataclasses.replace(specs(data, lrs=(0.05,), seeds=(0,), epochs=3)[0],
                                schedule="cosine")
    store = RunStore(tmp_path)
    run_one(dataclasses.replace(short, epochs=6), data, store=store)
    assert store.load(short) is None  # a cosine over 6 epochs is not one over 3


def begins(short, result, longer, data):
    """``result`` is ``short``'s run read from ``longer`` (its epochs' seconds), not trained."""
    assert result.spec == short
    assert [r.seconds for r in result.history] == [
        r.seconds for r in longer.history][:short.epochs + 1]
    same_run(result.history, run_one(short, data).history)


@pytest.fixture
def pair(data):
    short, = specs(data, lrs=(0.05,), seeds=(0,), epochs=2)
    return short, dataclasses.replace(short, epochs=4,
                                      detector=detector(threshold=1e-9, min_epochs=4))


def test_run_many_one_by_one_reads_a_run_an_earlier_one_begins(data, tmp_path, pair):
    short, long = pair
    store = RunStore(tmp_path)
    results = run_many([long, short], data, store=store, workers=1)
    begins(short, results[1], results[0], data)
    assert store.json_path(short).exists()  # stored under its own key as it arrived


def test_a_task_reads_a_run_begun_earlier_in_it_or_in_the_store(data, tmp_path, pair):
    short, long = pair
    handle = DataHandle("v", payload=data)
    first, second = train_runs([long, short], handle, None, "cpu")  # in the same task
    begins(short, second, first, data)
    stored = run_one(long, data, store=RunStore(tmp_path))
    only, = train_runs([short], handle, str(tmp_path), "cpu")  # a task after the long one's
    begins(short, only, stored, data)


def test_an_unreadable_file_of_another_run_does_not_break_the_lookup(data, tmp_path):
    short = specs(data, lrs=(0.05,), seeds=(0,), epochs=3)[0]
    store = RunStore(tmp_path)
    (tmp_path / f"base-lr0.05-e9-s0-{'0' * 12}.json").write_text("{not json")
    assert store.load(short) is None
