"""interpret(): a scripted model whose every prediction is known, checked against hand counts."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from fmclassify.data import ImageDataset
from fmclassify.exceptions import ConfigError, DataError
from fmclassify.interpret import Interpretation, interpret

CLASSES = ("cat", "dog", "owl", "e<m>u")  # "e<m>u" has no images and is never predicted
LABELS = [0, 0, 0, 1, 1, 2, 2, 2]
PREDICTED = [0, 1, 1, 1, 0, 2, 2, 1]
# rows: true cat, dog, owl, emu; columns: predicted
COUNTS = [[1, 2, 0, 0], [1, 1, 0, 0], [0, 1, 2, 0], [0, 0, 0, 0]]


def scripted_logits() -> torch.Tensor:
    """(8, 4) logits whose arg-max is PREDICTED; images 1 and 2 get identical rows (a tie)."""
    table = torch.randn(len(LABELS), len(CLASSES), generator=torch.Generator().manual_seed(0))
    table[torch.arange(len(LABELS)), PREDICTED] += 5.0
    table[2] = table[1]
    return table


class Scripted(nn.Module):
    """Returns row ``i`` of a fixed table for the image whose first pixel holds ``i``."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table)
        self.weight = nn.Parameter(torch.zeros(()))
        self.seen_training: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen_training.append(self.training)
        index = torch.round(x[:, 0, 0, 0] * 255).long()  # float_images() divided by 255
        return self.table[index] + self.weight


@pytest.fixture
def data() -> ImageDataset:
    images = torch.zeros(len(LABELS), 1, 2, 2, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(len(LABELS), dtype=torch.uint8)
    return ImageDataset(images, torch.tensor(LABELS), classes=CLASSES, name="toy", split="test")


@pytest.fixture
def interp(data) -> Interpretation:
    return interpret(Scripted(scripted_logits()), data, batch_size=3)


def test_caches_the_models_outputs_on_the_cpu(interp):
    table = scripted_logits()
    assert torch.equal(interp.logits, table)
    assert interp.predictions.tolist() == PREDICTED
    assert interp.labels.tolist() == LABELS
    torch.testing.assert_close(interp.probabilities, table.softmax(1))
    hand = torch.stack([-(table[i, y] - table[i].logsumexp(0)) for i, y in enumerate(LABELS)])
    torch.testing.assert_close(interp.losses, hand)
    torch.testing.assert_close(interp.losses, F.cross_entropy(table, torch.tensor(LABELS),
                                                              reduction="none"))
    assert interp.accuracy == 4 / 8


def test_batch_size_does_not_change_anything(data, interp):
    whole = interpret(Scripted(scripted_logits()), data)
    assert torch.equal(whole.logits, interp.logits)


def test_runs_in_eval_mode_without_grad_and_restores_the_flags(data):
    model = nn.Sequential(Scripted(scripted_logits()))
    model.train()
    model[0].eval()  # a submodule the user froze in eval mode stays so
    interpret(model, data)
    assert model[0].seen_training == [False]
    assert model.training and not model[0].training
    assert model[0].weight.grad is None


def test_confusion_matrix_counts(interp):
    matrix = interp.confusion_matrix()
    assert matrix.dtype == torch.int64
    assert matrix.tolist() == COUNTS


def test_confusion_matrix_normalized_by_true_class(interp):
    expected = [[1 / 3, 2 / 3, 0, 0], [0.5, 0.5, 0, 0], [0, 1 / 3, 2 / 3, 0], [0, 0, 0, 0]]
    torch.testing.assert_close(interp.confusion_matrix("true"),
                               torch.tensor(expected, dtype=torch.float64))


def test_confusion_matrix_normalized_by_prediction(interp):
    # predicted totals: cat 2, dog 4, owl 2, emu 0 (an empty column stays 0, not NaN)
    expected = [[0.5, 0.5, 0, 0], [0.5, 0.25, 0, 0], [0, 0.25, 1, 0], [0, 0, 0, 0]]
    torch.testing.assert_close(interp.confusion_matrix("pred"),
                               torch.tensor(expected, dtype=torch.float64))


def test_per_class_metrics_by_hand(interp):
    rows = interp.per_class()
    assert [r["class"] for r in rows] == list(CLASSES)
    assert [r["support"] for r in rows] == [3, 2, 3, 0]
    hand = {  # (recall, precision, f1): TP / support, TP / predicted, harmonic mean
        "cat": (1 / 3, 1 / 2, 2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2)),
        "dog": (1 / 2, 1 / 4, 2 * (1 / 2) * (1 / 4) / (1 / 2 + 1 / 4)),
        "owl": (2 / 3, 1.0, 2 * (2 / 3) / (2 / 3 + 1)),
        "e<m>u": (0.0, 0.0, 0.0),
    }
    for row in rows:
        recall, precision, f1 = hand[row["class"]]
        assert row["recall"] == pytest.approx(recall)
        assert row["accuracy"] == row["recall"]
        assert row["precision"] == pytest.approx(precision)
        assert row["f1"] == pytest.approx(f1)
        assert all(math.isfinite(row[k]) for k in ("recall", "precision", "f1"))


def test_most_confused_orders_by_count_then_label(interp):
    assert interp.most_confused() == [("cat", "dog", 2), ("dog", "cat", 1), ("owl", "dog", 1)]
    assert interp.most_confused(k=2) == [("cat", "dog", 2), ("dog", "cat", 1)]


def test_top_losses_are_sorted_and_match_cross_entropy(interp):
    table = scripted_logits()
    hand = F.cross_entropy(table, torch.tensor(LABELS), reduction="none").tolist()
    order = sorted(range(len(LABELS)), key=lambda i: (-hand[i], i))
    top = interp.top_losses(k=len(LABELS))
    assert [row[0] for row in top] == order
    for index, loss, true, predicted in top:
        assert loss == pytest.approx(hand[index])
        assert (true, predicted) == (CLASSES[LABELS[index]], CLASSES[PREDICTED[index]])
    tied = [row[0] for row in top if row[0] in (1, 2)]
    assert tied == [1, 2]  # equal losses: lower index first
    assert len(interp.top_losses(k=3)) == 3
    assert len(interp.top_losses(k=100)) == len(LABELS)


def test_plot_confusion_matrix(interp):
    fig = interp.plot_confusion_matrix()
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts == [str(v) for row in COUNTS for v in row]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(CLASSES)
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    normalized = interp.plot_confusion_matrix(normalize="true")
    assert normalized.axes[0].texts[1].get_text() == "0.67"


def test_plot_top_losses(interp):
    fig = interp.plot_top_losses(k=5)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 5  # a 3 x 2 grid, the sixth cell removed
    index, loss, true, predicted = interp.top_losses(5)[0]
    title = fig.axes[0].get_title()
    assert f"#{index}" in title and f"{true} / {predicted}" in title and f"{loss:.2f}" in title
    assert fig.axes[0].get_images()[0].get_array().shape == (2, 2)


def test_text_and_html_summaries(interp):
    text = str(interp)
    assert "accuracy 50.0%" in text and "cat -> dog: 2" in text
    assert "toy test" in text
    page = interp._repr_html_()
    assert "<table>" in page and "50.0%" in page
    assert "e&lt;m&gt;u" in page and "e<m>u" not in page

    class Printer:
        def __init__(self):
            self.out = ""

        def text(self, s):
            self.out += s

    printer = Printer()
    interp._repr_pretty_(printer, cycle=False)
    assert printer.out == text


def test_rejects_what_is_not_a_model_or_a_dataset(data):
    with pytest.raises(ConfigError, match=r"model must be a torch.nn.Module, got str"):
        interpret("base", data)
    with pytest.raises(DataError, match=r"dataset must be an fmclassify ImageDataset.*got list"):
        interpret(Scripted(scripted_logits()), [1, 2])


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_rejects_a_bad_batch_size(data, bad):
    with pytest.raises(ConfigError, match=r"batch_size must be an integer >= 1"):
        interpret(Scripted(scripted_logits()), data, batch_size=bad)


def test_rejects_an_unknown_device(data):
    with pytest.raises(ConfigError, match=r"unknown device 'gpu0'; use 'auto', 'cpu' or 'cuda'"):
        interpret(Scripted(scripted_logits()), data, device="gpu0")


def test_a_model_built_for_other_images_says_how_to_fix_it(data):
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 4))
    with pytest.raises(DataError, match=r"in_channels=1, image_size=2"):
        interpret(model, data)


def test_a_model_with_the_wrong_number_of_classes(data):
    with pytest.raises(DataError, match=r"num_classes=4"):
        interpret(Scripted(scripted_logits()[:, :3]), data)


def test_a_diverged_model(data):
    table = scripted_logits()
    table[3, 1] = math.nan
    with pytest.raises(DataError, match=r"NaN or infinite"):
        interpret(Scripted(table), data)


@pytest.mark.parametrize("method, args, match", [
    ("confusion_matrix", ("rows",), r"unknown normalize 'rows'; choose one of 'true', 'pred'"),
    ("most_confused", (0,), r"k must be an integer >= 1, got 0"),
    ("top_losses", (1.5,), r"k must be an integer >= 1, got 1.5"),
    ("plot_top_losses", (0,), r"k must be an integer >= 1"),
])
def test_method_arguments_are_checked(interp, method, args, match):
    with pytest.raises(ConfigError, match=match):
        getattr(interp, method)(*args)


def test_real_classes_on_synthetic_data(tiny_data):
    _, test = tiny_data
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
    interp = interpret(model, test)
    assert int(interp.confusion_matrix().sum()) == len(test)
    assert sum(r["support"] for r in interp.per_class()) == len(test)
    assert isinstance(interp.plot_top_losses(), Figure)
