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
