from __future__ import annotations

import json

import pytest

import fmclassify.data
from fmclassify.cli import main
from helpers import make_dataset


@pytest.fixture
def fake_fashion(monkeypatch):
    """Make load_dataset return the tiny synthetic set, so train runs in a second."""
    data = make_dataset(256, seed=0), make_dataset(128, seed=1, split="test")
    monkeypatch.setattr(fmclassify.data, "load_dataset", lambda *a, **k: data)
    return data


def test_models_lists_counts_and_sources(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "base" in out and "669,706" in out and "1,475,338" in out and "1,557,330" in out
    assert "built-in" in out


def test_models_for_cifar_shapes(capsys):
    assert main(["models", "--in-channels", "3", "--image-size", "32"]) == 0
    assert f"{(3 * 32 * 32 + 1) * 512 + 513 * 512 + 513 * 10:,}" in capsys.readouterr().out


def test_models_pattern_without_match(capsys):
    assert main(["models", "zzz*"]) == 2
    assert "no registered model matches 'zzz*'" in capsys.readouterr().err


def test_params_table_and_markdown(capsys):
    assert main(["params", "deeper"]) == 0
    out = capsys.readouterr().out
    for count in ("320", "64", "18,496", "128", "1,383,000", "72,120", "1,210"):
        assert count in out
    assert main(["params", "base", "--markdown"]) == 0
    md = capsys.readouterr().out
    assert "| `linear_relu_stack.0` | Linear | `(n+1)*m = (784+1)*512 = 401,920` |" in md


def test_unknown_model_is_one_clear_line(capsys):
    assert main(["params", "wdier"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fmclassify: error: unknown model 'wdier'; did you mean 'wider'")
    assert err.count("\n") == 1


def test_train_prints_epoch_table_and_writes_json(fake_fashion, tmp_path, capsys):
    path = tmp_path / "h.json"
    code = main(["train", "--model", "base", "--lr", "0.1", "--epochs", "2", "--batch-size",
                 "32", "--json", str(path), "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "epoch  train loss  test loss  accuracy" in out
    assert "status: completed" in out
    history = json.loads(path.read_text())
    assert [r["epoch"] for r in history["records"]] == [0, 1, 2]


def test_train_refuses_to_overwrite_json(fake_fashion, tmp_path, capsys):
    path = tmp_path / "h.json"
    path.write_text("mine")
    assert main(["train", "--epochs", "1", "--json", str(path), "--no-progress"]) == 2
    assert "exists; choose another --json path" in capsys.readouterr().err
    assert path.read_text() == "mine"


def test_resume_needs_checkpoint(capsys):
    assert main(["train", "--resume"]) == 2
    assert "--resume needs --checkpoint PATH" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "--lr", "0", "--no-progress"], "lr must be a finite number > 0"),
    (["train", "--epochs", "0", "--no-progress"], "epochs must be an integer >= 1"),
    (["train", "--optimizer", "rmsprop", "--no-progress"], "unknown optimizer 'rmsprop'"),
])
def test_train_bad_configuration(fake_fashion, capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_conflicting_budget_flags_are_refused(capsys):
    with pytest.raises(SystemExit) as info:
        main(["assignment", "--quick", "--full"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("fmclassify ")


@pytest.fixture
def idx_root(tmp_path):
    """A Fashion-MNIST in the real file format (synthetic images), that DataRef can name."""
    from helpers import write_fashion_idx

    root = tmp_path / "data"
    write_fashion_idx(root, n_train=256, n_test=128)
    return root


def sweep_argv(root, *extra):
    return ["sweep", "--model", "base", "--lrs", "0.5,0.05", "--epochs", "1", "--batch-size",
            "32", "--data-root", str(root), "--no-download", "--train-size", "200",
            "--no-progress", "--workers", "1", *extra]


def test_sweep_prints_the_table_writes_json_and_reuses_its_store(idx_root, tmp_path, capsys):
    store, out = tmp_path / "runs", tmp_path / "sweep.json"
    assert main(sweep_argv(idx_root, "--store", str(store), "--json", str(out))) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| Learning rate |") and f"result written to {out}" in printed
    result = json.loads(out.read_text())
    assert [r["spec"]["lr"] for r in result["runs"]] == [0.5, 0.05]
    assert {r["history"]["metadata"]["train_size"] for r in result["runs"]} == {200}
    stamps = {p: p.stat().st_mtime_ns for p in store.glob("*.json")}
    assert len(stamps) == 2
    assert main(sweep_argv(idx_root, "--store", str(store))) == 0  # nothing trains again
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())


def test_sweep_exits_1_when_a_run_fails_and_says_how_to_retry(idx_root, tmp_path, capsys):
    from fmclassify.executors import DataRef, data_id
    from fmclassify.runs import RunSpec, RunStore

    data = DataRef(root=idx_root, download=False, train_size=200).load()
    spec = RunSpec("base", 0.05, 1, 0, batch_size=32, data=data_id(*data))
    RunStore(tmp_path / "runs").checkpoint_path(spec).write_bytes(b"junk")
    assert main(sweep_argv(idx_root, "--store", str(tmp_path / "runs"))) == 1
    err = capsys.readouterr().err
    assert "fmclassify: run base lr=0.05 seed 0 failed: CheckpointError" in err
    assert "1 runs failed; the others are kept: rerun the same command" in err


@pytest.mark.parametrize(("argv", "message"), [
    (["sweep", "--workers", "0"], "workers must be an integer >= 1, got 0"),
    (["sweep", "--lrs", "0.1,x"], "--lrs must be comma-separated numbers, got '0.1,x'"),
    (["sweep", "--seeds", "0"], "seeds must be an integer >= 1, got 0"),
    (["sweep", "--train-size", "0"], "train_size must be an integer >= 1, got 0"),
    (["assignment", "--workers", "0"], "workers must be an integer >= 1, got 0"),
])
def test_sweep_and_assignment_check_their_flags_first(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(fmclassify.data, "load_dataset", lambda *a, **k: pytest.fail("loaded"))
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_workers_and_scheduler_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as info:
        main(["sweep", "--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_python_dash_m_fmclassify_runs_the_command():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "fmclassify", "--version"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("fmclassify ")


# -- what the run trained on --------------------------------------------------------------------


def test_train_with_a_validation_split_shows_its_columns_and_the_true_sizes(fake_fashion,
                                                                            capsys):
    assert main(["train", "--epochs", "2", "--val-split", "0.1", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # 256 training images, 26 (10%, stratified) held out for validation
    assert lines[0].startswith("training base on synthetic (230 train / 26 validation / 128 "
                               "test images) with lr 0.1, batch 64, on cpu")
    assert lines[1].split() == ["epoch", "train", "loss", "val", "loss", "val", "acc", "test",
                                "loss", "accuracy", "seconds"]
    for epoch, line in enumerate(lines[2:4], start=1):
        cells = line.split()
        assert int(cells[0]) == epoch and len(cells) == 7
        assert float(cells[2]) > 0 and cells[3].endswith("%")  # val loss, val accuracy


def test_train_without_a_validation_split_shows_the_course_table(fake_fashion, capsys):
    assert main(["train", "--epochs", "1", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "(256 train / 128 test images)" in lines[0]
    assert lines[1].split() == ["epoch", "train", "loss", "test", "loss", "accuracy", "seconds"]


def test_a_reader_that_goes_away_ends_the_command_quietly():
    """`fmclassify params deeper | head -0`: the pipe is closed before the first write."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # the reader has gone
    try:
        proc = subprocess.run([sys.executable, "-m", "fmclassify", "params", "deeper"],
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert proc.stderr == ""  # no BrokenPipeError traceback, no "Exception ignored"
    assert proc.returncode == 141  # 128 + SIGPIPE, what the shell reports for `yes | head`


def test_data_not_found_names_the_command_line_flags(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FMCLASSIFY_DATA", str(tmp_path))
    monkeypatch.setattr(fmclassify.data, "SYSTEM_DATA_DIR", tmp_path / "none")
    monkeypatch.setattr(fmclassify.data, "_user_cache_dir", lambda: tmp_path / "cache")
    code = main(["train", "--data-root", str(tmp_path), "--no-download", "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "could not find the fashion-mnist data set" in err
    assert "download: not attempted (--no-download)" in err
    assert "pass --data-root <folder>" in err
    assert "run without --no-download on a machine with internet access" in err
    assert "load_dataset(" not in err and "root=<folder>" not in err


def test_did_you_mean_offers_only_names_the_models_command_lists(capsys):
    assert main(["models"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["model", "trainable", "params", "aliases"]
    assert next(r for r in table if r.startswith("deeper")).split()[2] == "cnn"
    assert main(["params", "cnm"]) == 2
    assert "did you mean 'cnn' (another name for 'deeper')?" in capsys.readouterr().err


# -- the place it writes to ---------------------------------------------------------------------


def test_an_assignment_under_a_file_is_one_line_before_any_progress_bar(tmp_path, capsys,
                                                                       monkeypatch):
    (tmp_path / "afile").write_text("mine")
    monkeypatch.setattr(fmclassify.data, "load_dataset", lambda *a, **k: pytest.fail("loaded"))
    assert main(["assignment", "--out", str(tmp_path / "afile" / "sub")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fmclassify: error: cannot create the folder ")
    assert "afile' is a file, not a folder" in err
    assert err.count("\n") == 1 and "assignment runs" not in err


def test_a_full_disk_is_one_line_exit_1_and_keeps_the_finished_runs(idx_root, tmp_path, capsys,
                                                                   monkeypatch):
    import errno
    import os

    real_open, store = os.open, tmp_path / "runs"

    def full_after_one(path, flags, *args, **kwargs):  # the first run's result fits, no more
        if os.fspath(path).startswith(str(store) + "/.") and flags & os.O_CREAT and len(
                list(store.glob("*.json"))) >= 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", full_after_one)
    assert main(sweep_argv(idx_root, "--store", str(store))) == 1
    err = capsys.readouterr().err
    assert err.startswith("fmclassify: error: cannot write ") and err.count("\n") == 1
    assert "no space left on the device" in err and "Traceback" not in err
    assert len(list(store.glob("*.json"))) == 1
    monkeypatch.undo()
    assert main(sweep_argv(idx_root, "--store", str(store))) == 0
    assert len(list(store.glob("*.json"))) == 2


def test_train_checks_where_it_writes_before_training(fake_fashion, tmp_path, capsys):
    (tmp_path / "afile").write_text("mine")
    for flag in ("--json", "--checkpoint"):
        code = main(["train", "--epochs", "1", "--no-progress", flag,
                     str(tmp_path / "afile" / "run.out")])
        captured = capsys.readouterr()
        assert code == 1 and "epoch" not in captured.out  # nothing trained
        assert captured.err.startswith("fmclassify: error: cannot create the folder ")
        assert "afile' is a file, not a folder" in captured.err and captured.err.count("\n") == 1
