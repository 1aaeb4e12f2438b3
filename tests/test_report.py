from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest

from fmclassify.exceptions import ConfigError
from fmclassify.report import Budget, run_assignment
from fmclassify.training import Trainer
from helpers import make_dataset

TINY = Budget("tiny", train_size=None, epochs=2, max_epochs=3, gradient_steps=5)
KW = {"budget": TINY, "models": ("base", "wider"), "lrs": (0.5, 0.05), "progress": False}


@pytest.fixture
def data():
    return make_dataset(256, seed=0), make_dataset(128, seed=1, split="test")


def mask_timing(text: str) -> str:
    """Wall-clock seconds differ between two runs of the same report; everything else must not."""
    text = re.sub(r"\| \d+\.\d\d \|", "| T |", text)
    return re.sub(r"an epoch takes \d+\.\dx as long", "an epoch takes Tx as long", text)


def tables_without_seconds(out):
    tables = json.loads((out / "results.json").read_text())["tables"]
    for rows in tables.values():
        for row in rows:
            row.pop("seconds_per_epoch", None)
    return tables


def test_report_has_every_section_and_file(data, tmp_path):
    report = run_assignment(tmp_path, data=data, **KW)
    md = (tmp_path / "report.md").read_text()
    for q in ("Q1.1", "Q1.2", "Q1.3", "Q1.4", "Q1.5", "Q1.6", "Q1.7"):
        assert f"## {q}" in md
    assert "budget 'tiny'" in md
    assert "(n+1)*m = (64+1)*512 = 33,280" in md  # the Q1.5 formula table of base on 8x8 images
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == md.count("![")
    assert not re.search(r"<img[^>]+src='figures/", html)  # self-contained
    assert len(list((tmp_path / "runs").glob("*.json"))) == 3 * 2 + 2
    assert len(list((tmp_path / "figures").glob("*.png"))) == md.count("![")
    assert set(json.loads((tmp_path / "results.json").read_text())["tables"]) == {
        "q1_1", "q1_2", "q1_4", "q1_7"}
    assert report.markdown == md


def test_observations_come_from_measured_numbers(data, tmp_path):
    report = run_assignment(tmp_path, data=data, **KW)
    md = report.markdown
    best = max(report.results["q1_1"].table(), key=lambda r: r["final_accuracy"])
    expected = f"the best learning rate is {best['lr']:g}, with {100 * best['final_accuracy']:.1f}%"
    assert expected in md
    rows = {r["model"]: r for r in report.results["q1_4"].table()}
    ratio = rows["wider"]["parameters"] / rows["base"]["parameters"]
    assert f"{ratio:.2f}x base's" in md


def test_rerun_reuses_every_finished_run(data, tmp_path, monkeypatch):
    run_assignment(tmp_path, data=data, **KW)
    first = (tmp_path / "report.md").read_text()

    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(Trainer, "fit", no_training)
    run_assignment(tmp_path, data=data, **KW)
    assert (tmp_path / "report.md").read_text() == first


def test_killed_halfway_then_rerun_gives_the_same_report(data, tmp_path):
    """SIGKILL of the whole run in Q1.4 (its two runs train in two worker processes; one of
    them kills the parent at the end of its second epoch, and the kernel then kills the
    workers, whose checkpoints stay); the rerun retrains only what did not finish."""
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(__import__("pathlib").Path(__file__).parent)!r})
        from helpers import make_dataset
        from fmclassify.callbacks import CallbackBase
        from fmclassify.report import Budget, run_assignment
        import fmclassify.training as training

        runs = []
        class Killer(CallbackBase):
            needs_gradients = False

            def on_epoch_end(self, run, record):
                if len(runs) == 4 and record.epoch == 2:
                    os.kill(os.getppid(), signal.SIGKILL)  # this is a worker: kill the parent
        original = training.Trainer.__init__
        def patched(self, *a, **k):
            k["callbacks"] = [*k.get("callbacks", ()), Killer()]
            original(self, *a, **k)
        training.Trainer.__init__ = patched
        data = make_dataset(256, seed=0), make_dataset(128, seed=1, split="test")
        run_assignment({str(killed)!r}, data=data,
                       budget=Budget("tiny", None, 2, 3, 5), models=("base", "wider"),
                       lrs=(0.5, 0.05), progress=False, on_run=runs.append)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)  # returns once the orphaned workers are gone too
    assert proc.returncode == -9, proc.stderr
    finished = sorted(p.name for p in (killed / "runs").glob("*.json"))
    assert len(finished) == 4  # Q1.1 and Q1.2
    from fmclassify.checkpoint import read_checkpoint_history

    ckpts = sorted((killed / "runs").glob("*.ckpt"))
    assert len(ckpts) in (1, 2)  # Q1.4's runs, each at its last saved epoch
    assert all(read_checkpoint_history(c).epochs_trained in (1, 2) for c in ckpts)

    # the runs train in worker processes: count what the rerun wrote, not Trainer.fit calls
    stamps = {p: p.stat().st_mtime_ns for p in (killed / "runs").glob("*.json")}
    run_assignment(killed, data=data, **KW)
    after = set((killed / "runs").glob("*.json"))
    assert len(after - set(stamps)) == 4  # Q1.4's two models and Q1.7's two runs
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # none trained twice
    assert not list((killed / "runs").glob("*.ckpt"))
    run_assignment(straight, data=data, **KW)
    assert tables_without_seconds(killed) == tables_without_seconds(straight)
    assert mask_timing((killed / "report.md").read_text()) == mask_timing(
        (straight / "report.md").read_text())


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"budget": "huge"}, "unknown budget 'huge'; choose quick or full"),
    ({"seeds": 0}, "seeds must be an integer >= 1, got 0"),
    ({"models": ()}, "models must name at least one registered model"),
    ({"lrs": (0.1, -1)}, r"lrs must be positive learning rates, got \[0.1, -1\]"),
    ({"lrs": (0.1, "x")}, r"lrs must be positive learning rates, got \[0.1, 'x'\]"),
    ({"lrs": (float("inf"),)}, r"lrs must be positive learning rates, got \[inf\]"),
])
def test_bad_report_arguments(data, tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        run_assignment(tmp_path, data=data, **{**KW, **kwargs})


def test_report_with_a_diverging_learning_rate(data, tmp_path):
    """lr 1e6 diverges in every question; its gradient trace holds NaN/inf, read back as None."""
    report = run_assignment(tmp_path, data=data, **{**KW, "lrs": (0.5, 1e6)})
    md = report.markdown
    assert md.count("diverged at epoch 1") >= 3  # Q1.1, Q1.2, Q1.7 tables
    assert "lr 1e+06 diverged" in md
    q17 = {r["lr"]: r for r in report.results["q1_7"].table()}
    assert q17[1e6]["diverged"] == 1
    assert (tmp_path / "report.html").exists()


def test_questions_agree_on_shared_epochs(data, tmp_path):
    """Q1.1 and Q1.2 train each lr from the same seed with the same (default) step, so their
    first epochs are identical; Q1.7's traced epochs run through autograd (the tracer reads
    gradients) and agree with them within float rounding."""
    report = run_assignment(tmp_path, data=data, **{**KW, "lrs": (0.5, 0.05, 1e6)})
    for q11, q12, q17 in zip(*(report.results[k].runs for k in ("q1_1", "q1_2", "q1_7")),
                             strict=True):
        assert q11.history.metadata["step"] == q12.history.metadata["step"] == "fused"
        assert q17.history.metadata["step"].startswith("fused (autograd in epochs where")
        strip = [[(e.epoch, e.train_loss, e.test_loss, e.test_accuracy)
                  for e in r.history.records[:2]] for r in (q11, q12, q17)]
        assert strip[0] == strip[1]
        assert q11.history.status == q17.history.status or q11.spec.lr == 1e6
        for a, b in zip(strip[0], strip[2], strict=True):
            assert a[0] == b[0] and a[3] == pytest.approx(b[3], abs=2 / len(data[1]))
