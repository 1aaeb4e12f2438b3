"""Files on a shared or a failing disk: modes under the umask, one clear error, nothing lost."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import torch

import fmclassify as fmc
import fmclassify.runs
from fmclassify import registry
from fmclassify._io import atomic_write_bytes, output_error
from fmclassify.checkpoint import save_checkpoint
from fmclassify.exceptions import OutputError
from fmclassify.runs import RunSpec, RunStore, run_many
from helpers import make_dataset


@pytest.fixture
def data():
    return make_dataset(256, seed=0), make_dataset(128, seed=1, split="test")


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- modes: what a plain open(path, "w") gives --------------------------------------------------


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_every_kind_of_file_follows_the_umask(mask, tmp_path, data):
    with umask(mask):
        plain = tmp_path / "plain.txt"
        with open(plain, "w") as fh:  # the reference: what the user's own files get
            fh.write("x")
        history = fmc.Trainer(fmc.build_model("base", in_channels=1, image_size=8,
                                              num_classes=4, seed=0),
                              lr=0.1, epochs=1, batch_size=64, progress=False,
                              checkpoint=tmp_path / "run.ckpt",
                              callbacks=[fmc.CSVLogger(tmp_path / "log.csv")]).fit(*data)
        written = [history.to_json(tmp_path / "h.json"), history.to_csv(tmp_path / "h.csv"),
                   tmp_path / "run.ckpt", tmp_path / "log.csv",
                   save_checkpoint(tmp_path / "direct.pt", model=torch.nn.Linear(2, 2),
                                   optimizer=torch.optim.SGD([torch.zeros(1)], lr=0.1),
                                   history=history, generator=torch.Generator(), step=0),
                   RunStore(tmp_path / "store").save(
                       fmclassify.runs.RunResult(RunSpec("base", lr=0.1, epochs=1), history))]
    assert mode(plain) == 0o666 & ~mask
    assert {p.name: mode(p) for p in written} == {p.name: 0o666 & ~mask for p in written}


def test_a_rewritten_file_keeps_its_mode_as_open_does(tmp_path):
    path = tmp_path / "shared.json"
    atomic_write_bytes(path, b"old")
    path.chmod(0o640)
    with umask(0o077):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and mode(path) == 0o640


# -- one clear error for a place it cannot write ------------------------------------------------


def test_a_path_under_a_file_names_the_file(tmp_path):
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(OutputError, match=r"cannot write '.*afile/sub/x\.json': '.*afile' is "
                                          r"a file, not a folder") as info:
        atomic_write_bytes(tmp_path / "afile" / "sub" / "x.json", b"{}")
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOTDIR
    assert (tmp_path / "afile").read_text() == "mine"
    with pytest.raises(OutputError, match=r"cannot create the folder '.*afile/runs': '.*afile' "
                                          "is a file, not a folder"):
        RunStore(tmp_path / "afile" / "runs")


@pytest.mark.parametrize(("code", "message"), [
    (errno.ENOSPC, "no space left on the device .*free some space"),
    (errno.EACCES, "permission denied .*choose a folder you may write to"),
    (errno.EROFS, "the file system is read-only .*a writable file system"),
])
def test_each_cause_is_named_with_its_fix(code, message):
    exc = output_error("out/run.json", OSError(code, os.strerror(code)))
    assert isinstance(exc, fmc.FmClassifyError) and isinstance(exc, OSError)
    assert exc.errno == code and exc.filename == "out/run.json"
    with pytest.raises(OutputError, match=rf"^cannot write 'out/run\.json': {message}"):
        raise exc


def full_disk_for(match: str, monkeypatch) -> list[str]:
    """Make every write of a file whose name contains ``match`` fail with ENOSPC."""
    refused: list[str] = []
    real_open = os.open

    def open_(path, flags, *args, **kwargs):
        if match in os.fspath(path) and flags & os.O_CREAT:
            refused.append(os.fspath(path))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    return refused


def test_enospc_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "h.json"
    atomic_write_bytes(path, b"old")
    real_fsync = os.fsync

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OutputError, match=r"'.*h\.json': no space left on the device"):
        atomic_write_bytes(path, b"new")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["h.json"]


def counting_trains(monkeypatch) -> list[RunSpec]:
    trained: list[RunSpec] = []
    real = fmclassify.runs._train

    def train(spec, *args, **kwargs):
        trained.append(spec)
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(fmclassify.runs, "_train", train)
    return trained


SPECS = [RunSpec("base", lr=lr, epochs=2, batch_size=64) for lr in (0.1, 0.05, 0.02, 0.01)]


@pytest.mark.parametrize("what", ["ckpt", "json"])
def test_a_full_disk_stops_the_call_keeps_what_finished_and_a_rerun_trains_the_rest(
        what, tmp_path, data, monkeypatch):
    store = RunStore(tmp_path / "runs")
    refused = full_disk_for(f"{SPECS[2].key}.{what}", monkeypatch)
    seen = []
    with pytest.raises(OutputError, match=rf"cannot write '.*{SPECS[2].key}\.{what}': no "
                                          r"space left on the device") as info:
        run_many(SPECS, data, store=store, workers=1, on_run=seen.append)
    assert refused and [r.spec for r in seen][:2] == SPECS[:2]  # the fourth never started
    if what == "ckpt":  # in training: the run is named, and handed to on_run as failed
        assert "(run base lr=0.02 seed 0 stopped; the finished runs are kept)" in str(info.value)
        assert [r.history.status for r in seen] == ["completed", "completed", "failed"]
    else:  # its result could not be stored: its checkpoint stays, to resume from
        assert len(seen) == 2 and store.checkpoint_path(SPECS[2]).exists()
    assert sorted(p.name for p in store.folder.glob("*.json")) == sorted(
        f"{s.key}.json" for s in SPECS[:2])
    monkeypatch.undo()  # the space is freed
    trained = counting_trains(monkeypatch)
    results = run_many(SPECS, data, store=store, workers=1)
    assert trained == SPECS[2:]
    assert [r.history.status for r in results] == ["completed"] * 4


# -- a real tiny file system --------------------------------------------------------------------


@pytest.fixture
def tiny_fs(tmp_path):
    """A 96 KiB tmpfs mounted for the test (skipped where this process may not mount)."""
    where = tmp_path / "tiny"
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8); the ENOSPC tests above "
                    "simulate a full disk instead")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the ENOSPC tests "
                    "above simulate a full disk instead")
    yield where
    subprocess.run(["umount", str(where)], check=True)


def test_a_tiny_file_system_fills_then_a_rerun_trains_only_the_rest(tiny_fs, data,
                                                                     monkeypatch):
    # a 4-class linear model: a checkpoint of a few KiB, so some runs finish before it fills
    monkeypatch.setattr(registry, "_models", dict(registry._models))
    fmc.register_model("lin-io", override=True)(
        lambda *, num_classes=10, in_channels=1, image_size=28: torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(in_channels * image_size**2, num_classes)))
    specs = [RunSpec("lin-io", lr=lr / 100, epochs=2, batch_size=64) for lr in range(1, 41)]
    store = RunStore(tiny_fs / "runs")
    with pytest.raises(OutputError, match="no space left on the device"):
        run_many(specs, data, store=store, workers=2)
    finished = {p.name for p in store.folder.glob("*.json")}
    assert 0 < len(finished) < len(specs)
    before = {name: (store.folder / name).read_bytes() for name in finished}
    subprocess.run(["mount", "-o", "remount,size=4m", str(tiny_fs)], check=True)  # space freed
    trained = counting_trains(monkeypatch)
    results = run_many(specs, data, store=store, workers=1)
    assert len(trained) == len(specs) - len(finished)
    assert {f"{s.key}.json" for s in trained}.isdisjoint(finished)
    assert all(r.history.status == "completed" for r in results)
    assert {name: (store.folder / name).read_bytes() for name in finished} == before
