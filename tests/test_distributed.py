"""One run over two processes with torchrun (gloo, 127.0.0.1) equals the single-process run.

The ranks' rows of each global batch are exactly that batch, the gradient is the global batch's
(also for a last batch that splits 9/8), evaluation sums over the ranks, rank 0 alone writes,
and a run checkpointed under torchrun resumes under torchrun.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fmclassify as fmc
from conftest import REAL_DATA
from fmclassify.distributed import Shard, current_shard, process_group
from fmclassify.exceptions import ConfigError

TORCHRUN = str(Path(sys.executable).parent / "torchrun")


def test_the_ranks_rows_are_the_global_batch_and_weigh_their_share():
    for m in (64, 17, 5):
        x, y = torch.arange(m * 3).view(m, 3), torch.arange(m)
        parts = [Shard(r, 3) for r in range(3)]
        pieces = [s.split(x, y) for s in parts]
        assert sorted(torch.cat([py for _, py in pieces]).tolist()) == list(range(m))
        assert all(px.equal(x[py]) for px, py in pieces)
        assert sum(s.weight for s in parts) == pytest.approx(1.0)
        assert [s.weight * m for s in parts] == pytest.approx([len(py) for _, py in pieces])


def test_one_process_is_the_whole_run():
    shard = current_shard()
    assert (shard.rank, shard.world) == (0, 1)
    t = torch.ones(3)
    assert shard.split(t, t)[0] is t and shard.sum(t) is t and shard.rows(t) is t
    model = torch.nn.Linear(2, 2)
    assert shard.wrap(model) is model
    with process_group("cpu") as inside:  # no torchrun environment: nothing joins
        assert inside.world == 1


def test_batches_that_leave_a_rank_without_rows_are_refused():
    with pytest.raises(ConfigError, match="fewer than the 4 processes"):
        Shard(0, 4).check_batches(1986, 64)  # the last batch holds 2 rows
    with pytest.raises(ConfigError, match="fewer than the 4 processes"):
        Shard(0, 4).check_batches(100, 2)
    Shard(0, 2).check_batches(2001, 64)  # 17 rows: 9 and 8


def run_group(command, cwd, timeout):
    """Run ``command`` in its own process group; kill the whole group if it overruns."""
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo"}
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{command[:3]} ran past {timeout} s:\n{out[-3000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # no rank outlives the test
    return proc.returncode, out


def torchrun_train(tmp_path, *args):
    # --standalone on 127.0.0.1: MASTER_ADDR is 127.0.0.1 and gloo uses the loopback device
    command = [TORCHRUN, "--standalone", "--local-addr=127.0.0.1", "--nproc-per-node=2",
               "-m", "fmclassify", "train", "--model", "base", "--lr", "0.1",
               "--batch-size", "64", "--data-root", str(REAL_DATA), "--no-download",
               "--train-size", "2001", "--test-size", "500", "--no-progress", *args]
    return run_group(command, tmp_path, timeout=240)


def assert_records_close(dp, alone):
    assert [r["epoch"] for r in dp] == [r.epoch for r in alone]
    for key in ("train_loss", "test_loss"):
        got = [r[key] for r in dp if r[key] is not None]
        want = [getattr(r, key) for r in alone if getattr(r, key) is not None]
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close([r["test_accuracy"] for r in dp],
                               [r.test_accuracy for r in alone], rtol=0, atol=1 / 500)


@pytest.mark.integration
def test_torchrun_on_two_processes_equals_one_process_and_resumes(real_data, tmp_path):
    train, test = real_data[0].subset(2001), real_data[1].subset(500)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = fmc.Trainer(fmc.build_model("base", seed=0), lr=0.1, epochs=2, batch_size=64,
                            progress=False).fit(train, test)
    finally:
        torch.set_num_threads(threads)
    assert alone.metadata["world_size"] == 1

    code, out = torchrun_train(tmp_path, "--epochs", "1", "--checkpoint", "run.ckpt",
                               "--json", "one.json")
    assert code == 0, out[-3000:]
    assert out.count("epoch  train loss") == 1 and "over 2 processes" in out  # rank 0 speaks
    first = json.loads((tmp_path / "one.json").read_text())
    assert first["metadata"]["world_size"] == 2
    assert first["metadata"]["step"] == "autograd (it trains data-parallel over 2 processes)"
    assert first["metadata"]["batch_size"] == 64  # the global batch
    assert_records_close(first["records"], alone.records[:2])

    code, out = torchrun_train(tmp_path, "--epochs", "2", "--checkpoint", "run.ckpt",
                               "--resume", "--json", "two.json")
    assert code == 0, out[-3000:]
    second = json.loads((tmp_path / "two.json").read_text())
    assert second["status"] == "completed"
    assert_records_close(second["records"], alone.records)
    assert second["records"][:2] == first["records"]  # the resumed run kept its first epoch
