"""The bad-input battery: each mistake gets one clear error before any training starts.

Data-file corruptions (bad magic, wrong dimensions, truncation, count mismatch, labels out of
range) are tested one by one in test_data.py and fuzzed in test_data_fuzz.py; configuration
errors of the Trainer in test_training.py. This file covers the rest, and the paths a user
takes through the command line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

import fmclassify as fmc
from fmclassify.cli import main
from fmclassify.exceptions import ConfigError, DataError, UnknownDatasetError
from helpers import make_dataset, write_fashion_idx


def test_float_images_with_nan_are_refused():
    images = torch.rand(8, 1, 4, 4)
    images[3, 0, 1, 1] = float("nan")
    images[5, 0, 0, 0] = float("inf")
    with pytest.raises(DataError, match=r"2 image values are NaN or infinite \(first in image 3\)"):
        fmc.ImageDataset(images, torch.zeros(8, dtype=torch.long), classes=("a", "b"))


def test_float_images_are_used_as_given():
    images = torch.rand(8, 1, 4, 4)
    ds = fmc.ImageDataset(images, torch.zeros(8, dtype=torch.long), classes=("a", "b"))
    assert torch.equal(ds.float_images(), images)
    assert ds.float_images().data_ptr() != images.data_ptr()


def test_empty_data_set_is_refused():
    with pytest.raises(DataError, match="it holds no images"):
        fmc.ImageDataset(torch.zeros(0, 1, 4, 4, dtype=torch.uint8),
                         torch.zeros(0, dtype=torch.long), classes=("a",))


def test_unknown_dataset_suggests_names():
    with pytest.raises(UnknownDatasetError, match="did you mean 'mnist'"):
        fmc.load_dataset("mnsit", download=False)


def test_missing_data_lists_every_place(tmp_path, monkeypatch):
    import fmclassify.data as data

    monkeypatch.setattr(data, "SYSTEM_DATA_DIR", tmp_path / "system")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("FMCLASSIFY_DATA", raising=False)
    with pytest.raises(fmc.DataNotFoundError) as info:
        fmc.load_dataset("fashion-mnist", root=tmp_path / "mine", download=False)
    message = str(info.value)
    for place in ("mine", "cache", "system"):
        assert place in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_existing_checkpoint_is_never_overwritten_without_resume(tmp_path):
    ckpt = tmp_path / "mine.ckpt"
    ckpt.write_bytes(b"precious")
    train, test = make_dataset(64), make_dataset(32, seed=1)
    model = fmc.build_model("base", num_classes=4, image_size=8)
    with pytest.raises(ConfigError, match="already exists; pass resume=True"):
        fmc.Trainer(model, lr=0.1, epochs=1, checkpoint=ckpt, progress=False).fit(train, test)
    assert ckpt.read_bytes() == b"precious"


def test_report_refuses_a_folder_of_someone_elses_files(tmp_path):
    from fmclassify.report import run_assignment

    (tmp_path / "thesis.md").write_text("mine")
    with pytest.raises(ConfigError, match="already holds files that fmclassify did not write"):
        run_assignment(tmp_path, data=(make_dataset(64), make_dataset(32, seed=1)))
    assert (tmp_path / "thesis.md").read_text() == "mine"


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "--dataset", "fashon-mnist", "--no-progress"], "did you mean 'fashion-mnist'"),
    (["train", "--batch-size", "0", "--no-progress"], "batch_size must be an integer >= 1"),
    (["train", "--lr", "nan", "--no-progress"], "lr must be a finite number > 0, got nan"),
    (["train", "--model", "resnet", "--no-progress"], "unknown model 'resnet'"),
    (["assignment", "--seeds", "0", "--no-progress"], "seeds must be an integer >= 1"),
    (["assignment", "--lrs", "0.1,x", "--no-progress"], "--lrs must be comma-separated numbers"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    write_fashion_idx(tmp_path / "data", n_train=64, n_test=32)
    assert main([*argv, "--data-root", str(tmp_path / "data"), "--no-download"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_checkpoint_exists_without_resume(tmp_path, capsys):
    (tmp_path / "run.ckpt").write_bytes(b"x")
    assert main(["train", "--checkpoint", str(tmp_path / "run.ckpt"), "--no-progress"]) == 2
    assert "add --resume to continue it" in capsys.readouterr().err


@pytest.mark.integration
def test_ctrl_c_during_train_keeps_finished_epochs_and_exits_130(tmp_path, real_data):
    write_fashion_idx(tmp_path / "data", n_train=2048, n_test=512, source=real_data)
    out = tmp_path / "h.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fmclassify.cli", "train", "--epochs", "500", "--no-progress",
         "--data-root", str(tmp_path / "data"), "--no-download", "--json", str(out),
         "--checkpoint", str(tmp_path / "run.ckpt")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # Ctrl-C's default action, as in a terminal: a test runner started in the background
        # by a shell (`cmd &`) inherits SIGINT ignored, and Python then never raises
        # KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in proc.stdout:
        if line.strip().startswith("2 "):  # the second epoch's row: two epochs are finished
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted after" in err and str(out) in err and "--resume" in err
    history = json.loads(out.read_text())
    assert history["status"] == "interrupted"
    assert len(history["records"]) >= 3  # epoch 0 and at least two finished epochs
