"""Interpret a trained classifier: confusion matrix, per-class metrics, the worst mistakes.

:func:`interpret` runs the model once over a data set and keeps the logits; every table and
figure of the returned :class:`Interpretation` reads that cache (as fastai's
``ClassificationInterpretation`` does), so asking for a plot never runs the model again.

Definitions (rows of the confusion matrix are true classes, columns predicted ones; TP, FP, FN
count the images of one class):

* **recall** = TP / (TP + FN): the fraction of the class's images predicted as that class.
  This is what :meth:`Interpretation.per_class` calls the class's **accuracy**, the number a
  course table of "accuracy per class" means (not ``(TP + TN) / N``, which a rare class makes
  look good whatever the model does).
* **precision** = TP / (TP + FP): the fraction of the images predicted as the class that are.
* **F1** = 2 * precision * recall / (precision + recall).
* A ratio whose denominator is 0 (a class with no images, or never predicted) is 0.0, never
  NaN, as scikit-learn's ``zero_division=0`` gives.
* The **loss** of an image is its cross-entropy, ``-log softmax(logits)[label]``, in nats.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from fmclassify._checks import check_choice, check_device, check_int
from fmclassify._frames import frame
from fmclassify._tables import Table, percent, to_html, to_text
from fmclassify.data import ImageDataset
from fmclassify.exceptions import ConfigError, DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["NORMALIZE", "Interpretation", "interpret"]

#: What :meth:`Interpretation.confusion_matrix` may normalize by (besides ``None``).
NORMALIZE = ("true", "pred")


class Interpretation:
    """A model's predictions on one data set, computed once, and what they say.

    Made by :func:`interpret`; construct it directly only to interpret logits you already have.

    Parameters
    ----------
    logits : torch.Tensor
        (N, C) raw scores, one row per image.
    dataset : ImageDataset
        The N images and labels the logits belong to; its ``classes`` name the C columns.

    Attributes
    ----------
    logits, probabilities : torch.Tensor
        float32 (N, C) on the CPU; probabilities are ``softmax(logits)``.
    predictions, labels : torch.Tensor
        int64 (N,) on the CPU: the arg-max class (the first on a tie) and the true class.
    losses : torch.Tensor
        float32 (N,): each image's cross-entropy in nats.
    classes : tuple of str
        The class names, in label order.

    Raises
    ------
    DataError
        ``logits`` is not (len(dataset), num_classes), or holds NaN or infinite values.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> interp = fmc.interpret(model, test)                     # doctest: +SKIP
    >>> interp.confusion_matrix(normalize="true")[0, 0]         # doctest: +SKIP
    >>> fig = interp.plot_top_losses(9)                         # doctest: +SKIP
    """

    def __init__(self, logits: torch.Tensor, dataset: ImageDataset) -> None:
        if not isinstance(dataset, ImageDataset):
            raise DataError(_not_a_dataset(dataset))
        expected = (len(dataset), dataset.num_classes)
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != expected:
            got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits)
            raise DataError(
                f"the model must give one row of {expected[1]} scores per image, (N, C) = "
                f"{expected}, got {got}; build it with num_classes={expected[1]}"
            )
        logits = logits.detach().to("cpu", torch.float32)
        if not bool(torch.isfinite(logits).all()):
            raise DataError("the model gave NaN or infinite scores; it has diverged, retrain it "
                            "with a smaller learning rate")
        self.dataset = dataset
        self.classes = tuple(dataset.classes)
        self.logits = logits
        self.labels = dataset.labels.detach().to("cpu", torch.int64)
        self.probabilities = logits.softmax(dim=1)
        self.predictions = logits.argmax(dim=1)
        self.losses = F.cross_entropy(logits, self.labels, reduction="none")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def accuracy(self) -> float:
        """Fraction of images whose predicted class is the true one (0..1)."""
        return float((self.predictions == self.labels).double().mean())

    def confusion_matrix(self, normalize: str | None = None) -> torch.Tensor:
        """Count, for each true class, how often each class was predicted.

        Parameters
        ----------
        normalize : {None, "true", "pred"}, optional
            ``None``: int64 counts. ``"true"``: each row divided by its total (each true
            class's images sum to 1; the diagonal is the recall). ``"pred"``: each column
            divided by its total (the diagonal is the precision). A row or column with no
            images stays 0.

        Returns
        -------
        torch.Tensor
            (C, C), ``matrix[true, predicted]``; int64 counts or float64 fractions.

        Raises
        ------
        ConfigError
            ``normalize`` is not None, "true" or "pred".

        Examples
        --------
        >>> import torch, fmclassify as fmc
        >>> ds = fmc.ImageDataset(torch.zeros(3, 1, 2, 2, dtype=torch.uint8),
        ...                       torch.tensor([0, 1, 1]), classes=("a", "b"))
        >>> interp = Interpretation(torch.tensor([[1.0, 0], [1, 0], [0, 1]]), ds)
        >>> interp.confusion_matrix().tolist()
        [[1, 0], [1, 1]]
        >>> interp.confusion_matrix("true").tolist()
        [[1.0, 0.0], [0.5, 0.5]]
        """
        if normalize is not None:
            check_choice("normalize", normalize, NORMALIZE, also="or None for counts")
        c = len(self.classes)
        counts = torch.bincount(self.labels * c + self.predictions, minlength=c * c).view(c, c)
        if normalize is None:
            return counts
        dim = 1 if normalize == "true" else 0
        totals = counts.sum(dim=dim, keepdim=True).double()
        return counts.double() / totals.clamp(min=1)  # an empty row/column: 0 / 1 = 0

    def per_class(self) -> list[dict[str, Any]]:
        """One row of metrics per class (definitions in the module docstring).

        Returns
        -------
        list of dict
            In label order, each with ``class`` (the name), ``accuracy`` (the same as
            ``recall``), ``precision``, ``recall``, ``f1`` (fractions 0..1) and ``support``
            (the number of images of the class).
        """
        counts = self.confusion_matrix().double()
        tp = counts.diagonal()
        support, predicted = counts.sum(dim=1), counts.sum(dim=0)
        recall = tp / support.clamp(min=1)
        precision = tp / predicted.clamp(min=1)
        both = precision + recall
        f1 = torch.where(both > 0, 2 * precision * recall / both.clamp(min=1e-300), 0.0)
        return [
            {"class": name, "accuracy": float(recall[i]), "precision": float(precision[i]),
             "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(self.classes)
        ]

    def to_dataframe(self) -> Any:
        """The per-class table (:meth:`per_class`) as a :class:`pandas.DataFrame`.

        Needs pandas, the optional extra ``fmclassify[pandas]``. One row per class, in label
        order: ``class`` (the name), ``accuracy``, ``precision``, ``recall``, ``f1`` (float64
        fractions 0..1) and ``support`` (int64, images of the class).

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        ImportError
            If pandas is not installed; the message says ``pip install "fmclassify[pandas]"``.
        """
        columns = {"class": None, "accuracy": "float64", "precision": "float64",
                   "recall": "float64", "f1": "float64", "support": "int64"}
        return frame(self.per_class(), columns, what="Interpretation.to_dataframe")

    def most_confused(self, k: int = 5) -> list[tuple[str, str, int]]:
        """The ``k`` most frequent mistakes, as (true class, predicted class, count).

        Parameters
        ----------
        k : int, default 5
            At most this many pairs (>= 1); fewer when fewer pairs were ever confused.

        Returns
        -------
        list of tuple
            Off-diagonal cells with a count > 0, largest count first; equal counts in label
            order of the true class, then of the predicted class.

        Raises
        ------
        ConfigError
            ``k`` is not an integer >= 1.
        """
        k = check_int("k", k)
        counts = self.confusion_matrix()
        cells = [(-int(counts[t, p]), t, p) for t in range(len(self.classes))
                 for p in range(len(self.classes)) if t != p and int(counts[t, p]) > 0]
        return [(self.classes[t], self.classes[p], -neg) for neg, t, p in sorted(cells)[:k]]

    def top_losses(self, k: int = 9) -> list[tuple[int, float, str, str]]:
        """The ``k`` images the model got most wrong, as (index, loss, true, predicted).

        Parameters
        ----------
        k : int, default 9
            At most this many images (>= 1); all of them when the data set is smaller.

        Returns
        -------
        list of tuple
            ``(index into the data set, cross-entropy loss, true class name, predicted class
            name)``, largest loss first; equal losses by index.

        Raises
        ------
        ConfigError
            ``k`` is not an integer >= 1.
        """
        k = min(check_int("k", k), len(self))
        order = torch.sort(self.losses, descending=True, stable=True).indices[:k]
        return [(int(i), float(self.losses[i]), self.classes[int(self.labels[i])],
                 self.classes[int(self.predictions[i])]) for i in order]

    def plot_confusion_matrix(self, normalize: str | None = None) -> Figure:
        """Draw :meth:`confusion_matrix` as a heat map with each cell's value.

        Parameters
        ----------
        normalize : {None, "true", "pred"}, optional
            As for :meth:`confusion_matrix`.

        Returns
        -------
        matplotlib.figure.Figure
            ``fig.axes[0]`` holds the matrix, one text per cell; ``fig.axes[1]`` the colour bar.
        """
        from fmclassify import plotting

        matrix = self.confusion_matrix(normalize)
        return plotting.plot_confusion_matrix(matrix.tolist(), self.classes, normalize=normalize)

    def plot_top_losses(self, k: int = 9) -> Figure:
        """Show the :meth:`top_losses` images, titled with true and predicted class and loss.

        Parameters
        ----------
        k : int, default 9
            How many images (>= 1).

        Returns
        -------
        matplotlib.figure.Figure
            One axes per image, largest loss first.
        """
        from fmclassify import plotting

        rows = self.top_losses(k)
        images = [_display_image(self.dataset, index) for index, *_ in rows]
        titles = [f"#{index}: {true} / {pred}\nloss {loss:.2f}"
                  for index, loss, true, pred in rows]
        return plotting.plot_top_losses(images, titles, title="true / predicted, loss")

    def _table(self) -> Table:
        """Per-class metrics, the most confused pairs under them: one table for every form."""
        rows = [[r["class"], percent(r["recall"]), percent(r["precision"]), f"{r['f1']:.3f}",
                 f"{r['support']:,}"] for r in self.per_class()]
        pairs = "; ".join(f"{t} -> {p}: {n:,}" for t, p, n in self.most_confused(5))
        return Table(["class", "recall", "precision", "f1", "support"], rows,
                     right=frozenset({1, 2, 3, 4}),
                     title=f"{self._heading()}, accuracy {100 * self.accuracy:.1f}%",
                     notes=(f"most confused (true -> predicted: count): {pairs or 'no mistakes'}",))

    def __str__(self) -> str:
        return to_text(self._table())

    def __repr__(self) -> str:
        return f"<Interpretation of {len(self):,} images, accuracy {100 * self.accuracy:.1f}%>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self) if cycle else str(self))

    def _repr_html_(self) -> str:
        return to_html(self._table())

    def _heading(self) -> str:
        about = " ".join(x for x in (self.dataset.name, self.dataset.split) if x)
        return f"Interpretation of {len(self):,} images" + (f" ({about})" if about else "")


def _display_image(dataset: ImageDataset, index: int) -> Any:
    """One image as a numpy array for imshow: (H, W) or (H, W, C), values in [0, 1]."""
    image = dataset.images[index].detach().to("cpu")
    if image.dtype == torch.uint8:
        image = image.to(torch.float32) / 255
    else:  # already-scaled floats of any range: stretch to [0, 1] for display only
        low, high = image.min(), image.max()
        image = (image - low) / (high - low) if high > low else torch.zeros_like(image)
    if image.shape[0] == 1:
        return image[0].numpy()  # (1, H, W) -> (H, W)
    return image.permute(1, 2, 0).numpy()  # (C, H, W) -> (H, W, C)


def _not_a_dataset(value: object) -> str:
    return (f"dataset must be an fmclassify ImageDataset (from load_dataset(), or "
            f"ImageDataset(images, labels, classes)), got {type(value).__name__}")


def interpret(model: nn.Module, dataset: ImageDataset, *, batch_size: int = 1000,
              device: str | torch.device = "auto") -> Interpretation:
    """Run ``model`` once over ``dataset`` and return what its predictions say.

    The model runs in evaluation mode (dropout off, batch norm on its running statistics)
    without gradients, on batches that are slices of ``dataset.float_images()``. Afterwards
    the model is back where it was: the same device and, module by module, the same
    training flag; its weights are never changed.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier giving (B, C) scores for ``(B, *dataset.image_shape)`` images.
    dataset : ImageDataset
        Usually the test split.
    batch_size : int, default 1000
        Images per forward pass; only memory depends on it.
    device : str or torch.device, default "auto"
        Where to run: ``"auto"`` picks CUDA when available, else the CPU.

    Returns
    -------
    Interpretation
        Logits, probabilities, predictions and losses on the CPU, with the tables and plots.

    Raises
    ------
    ConfigError
        ``model`` is not a Module, ``batch_size`` < 1, or an unusable ``device``.
    DataError
        ``dataset`` is not an ImageDataset, or the model does not fit its images or classes.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> train, test = fmc.load_dataset()                      # doctest: +SKIP
    >>> interp = fmc.interpret(model, test)                   # doctest: +SKIP
    >>> interp.most_confused(3)                               # doctest: +SKIP
    [('Shirt', 'T-shirt/top', 161), ('Pullover', 'Coat', 120), ('Coat', 'Pullover', 98)]
    >>> interp.plot_confusion_matrix(normalize="true")        # doctest: +SKIP
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}; "
                          "build one with fmc.build_model('base')")
    if not isinstance(dataset, ImageDataset):
        raise DataError(_not_a_dataset(dataset))
    batch_size = check_int("batch_size", batch_size)
    target = check_device(device)
    logits = _predict(model, dataset, batch_size, target)
    return Interpretation(logits, dataset)


def _predict(model: nn.Module, dataset: ImageDataset, batch_size: int,
             device: torch.device) -> torch.Tensor:
    """(N, C) logits on the CPU; the model's device and training flags are restored."""
    flags = [m.training for m in model.modules()]
    homes = {t.device for t in (*model.parameters(), *model.buffers())}
    if len(homes) > 1:
        raise ConfigError(f"the model's tensors lie on several devices ({sorted(map(str, homes))})"
                          "; interpret() needs the whole model on one, e.g. model.cpu()")
    home = homes.pop() if homes else torch.device("cpu")
    images = dataset.to(device).float_images()
    outputs = []
    try:
        model.to(device).eval()
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                outputs.append(_forward(model, images[start:start + batch_size]).cpu())
    finally:
        model.to(home)
        for module, flag in zip(model.modules(), flags, strict=True):
            module.training = flag
    return torch.cat(outputs)


def _forward(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """The model's scores for one batch; a shape error says how to build a fitting model."""
    try:
        out = model(batch)
    except torch.cuda.OutOfMemoryError:
        raise  # not a shape problem: a smaller batch_size helps
    except RuntimeError as exc:
        c, h, w = batch.shape[1:]
        raise DataError(
            f"the model cannot take this data set's images, shape (B, {c}, {h}, {w}): {exc}. "
            f"Build it for them, e.g. build_model(name, in_channels={c}, image_size={h})"
        ) from exc
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != len(batch):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise DataError(f"the model must return (B, C) class scores for a batch of "
                        f"{len(batch)} images, got {got}")
    return out
