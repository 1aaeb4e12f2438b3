from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import fmclassify.runs
from fmclassify.checkpoint import read_checkpoint_history
from fmclassify.course import count_runs
from fmclassify.exceptions import ConfigError, OutputError, RunFailedError
from fmclassify.report import BUDGETS, Budget, run_assignment, total_runs
from fmclassify.training import Trainer
from helpers import make_dataset

# A rule synthetic data meets within three epochs, so Q1.2's rows carry numbers.
TINY = Budget("tiny", train_size=None, epochs=2, max_epochs=3, gradient_steps=5,
              threshold=0.05, patience=1, window=1, recipe_epochs=2)
KW = {"budget": TINY, "models": ("base", "wider"), "lrs": (0.5, 0.05), "progress": False,
      "seeds": 1}
QUESTIONS = ("Q1.1", "Q1.2", "Q1.3", "Q1.4", "Q1.5", "Q1.6", "Q1.7")


def tiny_data(name: str = "synthetic"):
    return tuple(dataclasses.replace(ds, name=name) for ds in (
        make_dataset(256, seed=0), make_dataset(128, seed=1, split="test")))


@pytest.fixture
def data():
    return tiny_data()


@pytest.fixture(scope="module")
def one_seed(tmp_path_factory):
    """A report of one seed, on the synthetic sets named Fashion-MNIST (so the course's
    numbers are shown); read by several tests."""
    out = tmp_path_factory.mktemp("one_seed")
    return run_assignment(out, data=tiny_data("fashion-mnist"), **KW)


@pytest.fixture(scope="module")
def three_seeds(tmp_path_factory):
    """The default three seeds; lr 1e6 diverges in every seed of every question."""
    out = tmp_path_factory.mktemp("three_seeds")
    return run_assignment(out, data=tiny_data("fashion-mnist"),
                          **{**KW, "lrs": (0.1, 1e6), "seeds": 3})


def mask_timing(text: str) -> str:
    """Wall-clock seconds differ between two runs of the same report; everything else must not."""
    text = re.sub(r"\| \d+\.\d\d \|", "| T |", text)
    return re.sub(r"an epoch takes \d+\.\dx as long", "an epoch takes Tx as long", text)


def tables_without_seconds(out):
    tables = json.loads((out / "results.json").read_text())["tables"]
    for rows in tables.values():
        for row in rows:
            row.pop("seconds_per_epoch", None)
            row.pop("seconds_per_epoch_std", None)
    return tables


def markdown_tables(md: str) -> dict[str, list[list[str]]]:
    """Each section's first Markdown table (header included), by its ``## Qx.y`` heading."""
    out: dict[str, list[list[str]]] = {}
    for section in re.split(r"\n## ", md)[1:]:
        blocks = section.split("\n\n")
        table = next((b for b in blocks[1:] if b.startswith("| ")), "")
        rows = [[c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]]
                for ln in table.split("\n") if ln]
        out[blocks[0].split(" ")[0]] = rows
    return out


def test_report_has_every_section_and_file(one_seed):
    report, tmp_path = one_seed, one_seed.out
    md = (tmp_path / "report.md").read_text()
    for q in QUESTIONS:
        assert f"## {q}" in md
    assert "## Summary" in md and "## Beyond the course" in md
    assert "budget 'tiny'" in md
    assert "(n+1)*m = (64+1)*512 = 33,280" in md  # the Q1.5 formula table of base on 8x8 images
    runs = 4 * 2 + 2 + 2 + 1  # Q1.1, Q1.2, Q1.7 twice; Q1.4; the per-layer flow; the recipe
    assert len(list((tmp_path / "runs").glob("*.json"))) == runs == count_runs(
        "assignment", TINY, 1, ("base", "wider"), (0.5, 0.05))
    assert len(list((tmp_path / "runs").glob("*.final.pt"))) == 1  # the interpreted model's
    assert len(list((tmp_path / "figures").glob("*.png"))) == md.count("![")
    # A figure per run where the report shows them run by run (none may silently go missing):
    for pattern, count in (("q1_1-run-base-*", 2), ("q1_4-run-*", 2),
                           ("q1_7-gradients-*", 2), ("q1_7_abs-gradients-*", 2),
                           ("q1_7-flow-*", 2)):
        assert len(list((tmp_path / "figures").glob(pattern + ".png"))) == count, pattern
    assert set(json.loads((tmp_path / "results.json").read_text())["tables"]) == {
        "q1_1", "q1_2", "q1_4", "q1_7", "q1_7_abs", "q1_7_flow", "recipe"}
    assert report.markdown == md


def test_html_is_one_self_contained_file_with_every_figure(one_seed):
    tmp_path = one_seed.out
    md, page = (tmp_path / "report.md").read_text(), (tmp_path / "report.html").read_text()
    uris = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    pngs = sorted(p.read_bytes() for p in (tmp_path / "figures").glob("*.png"))
    import base64

    assert sorted(base64.b64decode(u) for u in uris) == pngs  # every figure, as data: URIs
    assert len(uris) == md.count("![")
    assert not re.search(r"https?://", page)
    assert not re.search(r"<link\b|<script\b|<iframe\b|@import|url\(", page, re.IGNORECASE)
    assert not re.search(r"src=['\"](?!data:)", page)
    assert "<nav class='toc'>" in page and page.index("Summary") < page.index("Q1.1 Learning")


def test_every_row_has_a_number_or_a_reason_beside_the_course(three_seeds):
    report = three_seeds
    for key in ("q1_1", "q1_2", "q1_4", "q1_7"):
        assert all(row["seeds"] == 3 for row in report.results[key].table())
    tables = markdown_tables(report.markdown)
    expect_course = {"Q1.1": "Course: final (10 epochs)", "Q1.2": "Course: epochs",
                     "Q1.4": "Course: avg (10 epochs)", "Q1.7": "Course's hint"}
    headline = {"Q1.1": 1, "Q1.2": 1, "Q1.4": 3, "Q1.7": 3}
    for q, column in expect_course.items():
        header, _, *rows = tables[q]
        assert column in header, (q, header)
        assert rows
        for row in rows:
            cell, why = row[headline[q]], row[-1]
            assert cell != "n/a" or re.search(r"\d of \d seeds: .{20,}", why), (q, row)
            if cell != "n/a":
                assert " ± " in cell, (q, row)  # mean ± standard deviation over the seeds
    q11 = {row[0]: row for row in tables["Q1.1"][2:]}
    assert q11["0.1"][4] == "87.2%" and q11["0.1"][5] == "84.68%"  # the course's, from data
    assert "diverged in 3 of 3 seeds: the steps are too large" in q11["1e+06"][-1]
    q12 = {row[0]: row for row in tables["Q1.2"][2:]}
    assert q12["0.1"][3] == "204" and q12["0.1"][1] != "n/a"
    q14 = {row[0]: row for row in tables["Q1.4"][2:]}
    assert q14["base"][2] == "669,706" and q14["wider"][4] == "87.49%"
    assert q14["base"][5].startswith(("+", "-")) and q14["base"][6] in ("yes", "no")
    md = report.markdown
    assert "the course does not state its convergence rule" in md
    assert "the mean test accuracy over its 10 epochs" in md
    assert "The course's hint says the mean of the gradients should be decreased" in md


@pytest.mark.parametrize("which", ["one_seed", "three_seeds"])
def test_summary_answers_all_seven_questions(which, request):
    report = request.getfixturevalue(which)
    summary = markdown_tables(report.markdown)["Summary"]
    assert summary[0] == ["Question", "What we measured", "The course"]
    answers = {row[0].split(" ")[0]: row[1] for row in summary[2:]}
    assert set(QUESTIONS) <= set(answers) and "Beyond:" in answers
    for q in QUESTIONS:
        assert answers[q] not in ("", "n/a") and re.search(r"\d", answers[q]), (q, answers[q])
    course = {row[0].split(" ")[0]: row[2] for row in summary[2:]}
    assert "87.2%" in course["Q1.1"] and "597" in course["Q1.2"]
    assert "1,475,338" in course["Q1.5"] and "decreased" in course["Q1.7"]


def test_a_diverged_seed_enters_no_mean(three_seeds):
    """lr 1e6 diverges: its rows count it and average nothing of it; its gradient trace is not
    finite, so Q1.7 takes no statistic over it."""
    report = three_seeds
    for key in ("q1_1", "q1_2"):
        for row in report.results[key].table():
            if row["lr"] == 1e6:
                assert row["diverged"] == 3 and row["final_accuracy"] is None
                assert row["mean_accuracy"] is None and row["final_accuracy_std"] is None
                assert "diverged in 3 of 3 seeds" in row["outcome"]
    q17 = {r["lr"]: r for r in report.results["q1_7"].table()}
    assert q17[1e6]["gradient_mean"] is None and q17[1e6]["gradient_nonfinite"] == 3
    assert q17[0.1]["gradient_mean"] is not None
    assert "no statistic is taken over a trace that is not finite" in report.markdown
    assert "lr 1e+06 diverged in 3 of 3 seeds" in report.markdown


def test_a_mean_counts_only_the_seeds_that_trained():
    """One seed of three diverges: the row is the mean and spread of the other two."""
    from fmclassify.experiments import ExperimentResult
    from fmclassify.history import EpochRecord, History
    from fmclassify.runs import RunResult, RunSpec

    def run(seed, accuracies, status="completed"):
        h = History(status=status, diverged_epoch=3 if status == "diverged" else None)
        for i, a in enumerate(accuracies):
            h.append(EpochRecord(i, None if i == 0 else 0.5, 0.5, a, 1.0))
        return RunResult(RunSpec("base", 0.1, 2, seed), h)

    result = ExperimentResult("lr_sweep", [run(0, [0.1, 0.8, 0.9]), run(1, [0.1, 0.7, 0.7]),
                                           run(2, [0.1, 0.99], "diverged")])
    row = result.table()[0]
    assert row["final_accuracy"] == pytest.approx(0.8)
    assert row["final_accuracy_std"] == pytest.approx(0.1414, abs=1e-4)
    assert row["outcome"] == "trained in 2 of 3 seeds; diverged in 1 of 3 seeds (epoch 3)"
    assert "80.0% ± 14.1" in result.to_markdown()


def test_rerun_reuses_every_finished_run(one_seed, tmp_path, monkeypatch):
    import shutil

    shutil.copytree(one_seed.out, tmp_path, dirs_exist_ok=True)
    first = (tmp_path / "report.md").read_text()
    fit = Trainer.fit

    def restore_only(self, train, test, *, resume=False):
        """The report rebuilds its interpreted model from a finished run's last checkpoint:
        a fit that restores it trains no epoch; any other fit is a run trained again."""
        done = (resume and self.checkpoint is not None and self.checkpoint.exists()
                and read_checkpoint_history(self.checkpoint).epochs_trained == self.epochs)
        if not done:
            raise AssertionError("a finished run was trained again")
        return fit(self, train, test, resume=resume)

    monkeypatch.setattr(Trainer, "fit", restore_only)
    run_assignment(tmp_path, data=tiny_data("fashion-mnist"), **KW)
    assert (tmp_path / "report.md").read_text() == first


def test_killed_halfway_then_rerun_gives_the_same_report(data, tmp_path):
    """SIGKILL of the whole run once four runs are stored, at the end of a run's second epoch
    (a run trained in a worker process kills its parent, and the kernel then kills the
    workers, whose checkpoints stay; a run trained in the calling process kills that process);
    the rerun retrains only what did not finish, and the report equals a straight one."""
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    script = textwrap.dedent(f"""
        import multiprocessing, os, signal, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from helpers import make_dataset
        from fmclassify.callbacks import CallbackBase
        from fmclassify.report import Budget, run_assignment
        import fmclassify.training as training

        stored = Path({str(killed / "runs")!r})
        class Killer(CallbackBase):
            needs_gradients = False

            def on_epoch_end(self, run, record):
                if record.epoch == 2 and len(list(stored.glob("*.json"))) >= 4:
                    # in a worker process kill its parent (the run); in the run itself, itself
                    worker = multiprocessing.parent_process() is not None
                    os.kill(os.getppid() if worker else os.getpid(), signal.SIGKILL)
        original = training.Trainer.__init__
        def patched(self, *a, **k):
            k["callbacks"] = [*k.get("callbacks", ()), Killer()]
            original(self, *a, **k)
        training.Trainer.__init__ = patched
        data = make_dataset(256, seed=0), make_dataset(128, seed=1, split="test")
        run_assignment({str(killed)!r}, data=data, budget=Budget(*{dataclasses.astuple(TINY)!r}),
                       models=("base", "wider"), lrs=(0.5, 0.05), progress=False, seeds=1)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=180)  # returns once the orphaned workers are gone too
    assert proc.returncode == -9, proc.stderr
    stamps = {p: p.stat().st_mtime_ns for p in (killed / "runs").glob("*.json")}
    total = count_runs("assignment", TINY, 1, ("base", "wider"), (0.5, 0.05))
    assert 4 <= len(stamps) < total
    ckpts = sorted((killed / "runs").glob("*.ckpt"))
    assert ckpts  # the killer's run, at its last saved epoch, and any other unfinished one
    assert all(read_checkpoint_history(c).epochs_trained in (1, 2) for c in ckpts)

    # the runs train in worker processes: count what the rerun wrote, not Trainer.fit calls
    run_assignment(killed, data=data, **KW)
    after = set((killed / "runs").glob("*.json"))
    assert len(after) == total and len(after - set(stamps)) == total - len(stamps)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # none trained twice
    assert not list((killed / "runs").glob("*.ckpt"))
    run_assignment(straight, data=data, **KW)
    assert tables_without_seconds(killed) == tables_without_seconds(straight)
    assert mask_timing((killed / "report.md").read_text()) == mask_timing(
        (straight / "report.md").read_text())


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"budget": "huge"}, "unknown budget 'huge'; choose auto, quick or full"),
    ({"seeds": 0}, "seeds must be an integer >= 1, got 0"),
    ({"models": ()}, "models must name at least one registered model"),
    ({"lrs": (0.1, -1)}, r"lrs must be positive learning rates, got \[0.1, -1\]"),
    ({"lrs": (0.1, "x")}, r"lrs must be positive learning rates, got \[0.1, 'x'\]"),
    ({"lrs": (float("inf"),)}, r"lrs must be positive learning rates, got \[inf\]"),
])
def test_bad_report_arguments(data, tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        run_assignment(tmp_path, data=data, **{**KW, **kwargs})


def test_questions_agree_on_shared_epochs(three_seeds):
    """Q1.1 and Q1.2 train each lr from the same seed with the same (default) step, so their
    first epochs are identical; Q1.7's traced epochs run through autograd (the tracer reads
    gradients) and agree with them within float rounding."""
    report, data = three_seeds, tiny_data()
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


def test_the_quick_budget_is_one_definition():
    quick, full = BUDGETS["quick"], BUDGETS["full"]
    assert full.train_size is None and full.epochs == 10 and full.max_epochs == 600
    assert quick.threshold > full.threshold  # the looser rule the report says it uses
    assert "looser" not in full.rule() and "0.1 points" in full.rule()


def test_a_run_two_questions_share_trains_once(three_seeds):
    # lr 0.1 is among the lrs: Q1.4's base run is Q1.1's, stored (and counted) once
    stored = list((three_seeds.out / "runs").glob("*.json"))
    assert len(stored) == count_runs("assignment", TINY, 3, ("base", "wider"), (0.1, 1e6))
    q11 = {r.spec.key for r in three_seeds.results["q1_1"].runs if r.spec.lr == 0.1}
    q14 = {r.spec.key for r in three_seeds.results["q1_4"].runs if r.spec.model == "base"}
    assert q11 == q14 and len(q14) == 3


def test_q1_1_is_read_from_the_first_epochs_of_q1_2(tmp_path, data):
    # a rule no run meets in 4 epochs (patience 4): each Q1.2 run begins Q1.1's 2-epoch run
    budget = dataclasses.replace(TINY, max_epochs=4, threshold=1e-9, patience=4, recipe_epochs=0)
    report = run_assignment(tmp_path, data=data,
                            **{**KW, "budget": budget, "models": ("base",), "workers": 1})
    sweep, study = report.results["q1_1"].runs, report.results["q1_2"].runs
    assert [r.spec.lr for r in sweep] == [r.spec.lr for r in study]
    for short, long in zip(sweep, study, strict=True):
        assert long.history.epochs_trained == 4
        assert short.history.epochs_trained == 2 and short.history.status == "completed"
        # the epochs' own wall times: read from the Q1.2 run, not trained again
        assert [r.seconds for r in short.history] == [r.seconds for r in long.history][:3]
    assert len(list((tmp_path / "runs").glob("*.json"))) == count_runs(
        "assignment", budget, 1, ("base",), (0.5, 0.05))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("epochs", 0, "epochs must be an integer >= 1, got 0"),
    ("recipe_epochs", -1, "recipe_epochs must be an integer >= 0, got -1"),
    ("train_size", 0.5, "train_size must be an integer >= 1, got 0.5"),
    ("threshold", -0.1, "threshold must be a finite number >= 0, got -0.1"),
])
def test_a_budget_with_a_bad_field_fails_at_once(field, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        dataclasses.replace(TINY, **{field: value})


def test_budgets_are_named_and_select_the_first_training_images():
    assert Budget.named("quick") is BUDGETS["quick"]
    with pytest.raises(ConfigError, match="unknown budget 'fast'; choose auto, quick or full"):
        Budget.named("fast")
    train = make_dataset(12_000, classes=10, seed=0)
    picked = BUDGETS["quick"].select(train)
    assert len(picked) == 10_000 and torch.equal(picked.images, train.images[:10_000])
    assert BUDGETS["full"].select(train) is train


def test_a_budget_of_no_recipe_epochs_skips_the_last_section(data, tmp_path):
    budget = dataclasses.replace(TINY, recipe_epochs=0)
    report = run_assignment(tmp_path, data=data, **{**KW, "budget": budget})
    assert "Not run: budget 'tiny' trains no epoch of the recipe" in report.markdown
    assert "| Beyond: a modern recipe for the CNN | not run on budget 'tiny' |" in report.markdown
    assert len(list((tmp_path / "runs").glob("*.json"))) == count_runs(
        "assignment", budget, 1, ("base", "wider"), (0.5, 0.05))
    assert "recipe" not in json.loads((tmp_path / "results.json").read_text())["tables"]


# -- the place it writes to: modes, failures, disk use -------------------------------------------


def test_every_file_of_a_report_follows_the_umask(one_seed):
    mask = os.umask(0)
    os.umask(mask)
    files = [p for p in one_seed.out.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".md", ".html", ".json", ".png", ".pt"}
    assert {str(p.relative_to(one_seed.out)): stat.S_IMODE(p.stat().st_mode) for p in files} == {
        str(p.relative_to(one_seed.out)): 0o666 & ~mask for p in files}


def never_trains(*args, **kwargs):
    raise AssertionError("a run trained although the output folder cannot be written")


def test_an_output_folder_under_a_file_fails_before_any_run(data, tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("mine")
    monkeypatch.setattr(fmclassify.runs, "_train", never_trains)
    with pytest.raises(OutputError, match=r"cannot create the folder '.*afile/sub': '.*afile' "
                                          "is a file, not a folder"):
        run_assignment(tmp_path / "afile" / "sub", data=data, **KW, workers=1)
    assert (tmp_path / "afile").read_text() == "mine"


def test_no_report_is_written_from_runs_that_all_failed(data, tmp_path, monkeypatch):
    def broken(spec, *args, **kwargs):
        raise RuntimeError("the GPU caught fire")

    monkeypatch.setattr(fmclassify.runs, "_train", broken)
    with pytest.raises(RunFailedError, match=r"all \d+ runs failed, so no report was written; "
                                             r"the first, .*RuntimeError: the GPU caught fire"):
        run_assignment(tmp_path, data=data, **KW, workers=1)
    assert not (tmp_path / "report.md").exists() and not (tmp_path / "results.json").exists()


def test_the_header_reads_a_run_that_trained_when_the_first_failed(data, tmp_path, monkeypatch):
    train = fmclassify.runs._train
    failed = []

    def fails_at_the_first_lr(spec, *args, **kwargs):  # Q1.1's (and Q1.2's) first runs
        if spec.lr == KW["lrs"][0] and spec.model == "base" and spec.tracer is None:
            failed.append(spec)
            raise RuntimeError("out of memory")
        return train(spec, *args, **kwargs)

    monkeypatch.setattr(fmclassify.runs, "_train", fails_at_the_first_lr)
    report = run_assignment(tmp_path, data=data, **KW, workers=1)
    assert report.results["q1_1"].runs[0].history.status == "failed"
    assert "optimizer None" not in report.markdown
    # the recipe's runs train at batch 128: the header says so rather than quote one run
    assert re.search(r"Batch sizes 64 and 128 \(per run, see its table\), optimizer sgd, "
                     r"device cpu, torch \S+\.", report.markdown)


def test_a_full_disk_keeps_every_finished_run_and_the_rerun_trains_only_the_rest(
        data, tmp_path, monkeypatch):
    """The disk fills after six runs are stored: one error, no report; once space is freed the
    same call trains only the runs that were not stored, and the report is whole."""
    real_open, stored = os.open, []

    def open_(path, flags, *args, **kwargs):
        name = os.fspath(path)
        if "/runs/." in name and flags & os.O_CREAT:
            if len(stored) >= 6:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)
            if ".json." in name:
                stored.append(name)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    with pytest.raises(OutputError, match=r"cannot write '.*/runs/.*': no space left on the "
                                          "device"):
        run_assignment(tmp_path, data=data, **KW, workers=1)
    monkeypatch.undo()
    finished = {p.name for p in (tmp_path / "runs").glob("*.json")}
    assert len(finished) == 6 and not (tmp_path / "report.md").exists()
    trained: list[str] = []
    real_train = fmclassify.runs._train

    def train(spec, *args, **kwargs):
        trained.append(f"{spec.key}.json")
        return real_train(spec, *args, **kwargs)

    monkeypatch.setattr(fmclassify.runs, "_train", train)
    report = run_assignment(tmp_path, data=data, **KW, workers=1)
    assert trained and finished.isdisjoint(trained)
    assert "Q1.7" in report.markdown and (tmp_path / "report.html").exists()


def test_disk_use_stays_near_the_final_size(data, tmp_path):
    """While the runs train, at most one kept checkpoint per Q1.4 model is on disk (beside
    the checkpoint of the run in training), only the best model's once Q1.4 is stored, and
    one at the end: the interpreted model's."""
    runs = tmp_path / "runs"
    seen: list[tuple[set[str], set[str]]] = []  # (kept checkpoints, stored runs) per arrival

    def look(_run):
        seen.append(({p.name.removesuffix(".final.pt") for p in runs.glob("*.final.pt")},
                     {p.stem for p in runs.glob("*.json")}))

    report = run_assignment(tmp_path, data=data, **KW, workers=1, on_run=look)
    q14 = {r.spec.key for r in report.results["q1_4"].runs}
    assert all(kept <= q14 and len(kept) <= len(KW["models"]) for kept, _ in seen)
    assert all(len(kept) <= 1 for kept, stored in seen if q14 <= stored)
    assert any(kept for kept, _ in seen) and not list(runs.glob("*.ckpt"))
    assert len(list(runs.glob("*.final.pt"))) == 1 and report.results["q1_4"].runs


def test_total_runs_still_counts_and_says_it_is_deprecated():
    with pytest.warns(DeprecationWarning, match="use fmclassify.course.count_runs"):
        assert total_runs(1, ("base", "wider"), (0.5, 0.05)) == count_runs(
            "assignment", "quick", 1, ("base", "wider"), (0.5, 0.05)) == 4 * 2 + 2 + 2 + 1
    with pytest.warns(DeprecationWarning):
        assert total_runs(1, ("base",), (0.5,), recipe=False) == 4 + 1 + 1
