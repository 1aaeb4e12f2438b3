"""Batches as slices of in-memory tensors, in exactly a DataLoader's order (private).

:mod:`fmclassify.data` re-exports :func:`iter_batches` and :func:`num_batches`; they live here
so that the data module keeps to finding, reading and holding the data sets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from fmclassify._checks import check_int
from fmclassify.exceptions import ConfigError, DataError

__all__ = ["Batch", "index_batches", "iter_batches", "num_batches"]


def num_batches(n: int, batch_size: int) -> int:
    """Return how many batches :func:`iter_batches` yields for ``n`` samples.

    Parameters
    ----------
    n : int
        Number of samples (>= 0).
    batch_size : int
        Samples per batch (>= 1); the last batch may be smaller.

    Returns
    -------
    int
        ``ceil(n / batch_size)``.

    Raises
    ------
    ConfigError
        ``n`` negative or ``batch_size`` not a positive integer.
    """
    check_int("batch_size", batch_size)
    check_int("n", n, minimum=0)
    return -(-n // batch_size)


def _permutation(n: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    """Draw the epoch's permutation exactly as ``DataLoader(shuffle=True)`` would.

    Creating a DataLoader iterator first draws one int64 from the generator (the workers' base
    seed, ``_BaseDataLoaderIter.__init__``); then ``RandomSampler`` calls ``torch.randperm(n,
    generator=generator)``, or, without a generator, seeds a fresh one from the global RNG and
    draws from that. We make the same draws, so a CPU generator (or the global RNG) in the same
    state gives the same order. A CUDA generator draws on its own device instead; that has no
    DataLoader counterpart.
    """
    if generator is not None and generator.device.type != "cpu":
        return torch.randperm(n, generator=generator, device=generator.device).to(device)
    torch.empty((), dtype=torch.int64).random_(generator=generator)  # the base-seed draw
    if generator is None:
        seed = int(torch.empty((), dtype=torch.int64).random_().item())  # a CPU tensor: no sync
        generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=generator)
    if device.type == "cuda":
        # from pinned memory the copy runs asynchronously instead of stalling the host
        return perm.pin_memory().to(device, non_blocking=True)
    return perm.to(device)


def iter_batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images, labels)`` batches as slices of in-memory tensors.

    Parameters
    ----------
    images, labels : torch.Tensor
        Tensors on the same device, with the same first dimension (e.g.
        ``ds.float_images()`` and ``ds.labels``).
    batch_size : int
        Samples per batch; the last batch holds the remainder.
    shuffle : bool, default True
        False: contiguous views ``images[i:i + batch_size]``, the order of
        ``DataLoader(ds, batch_size)``. True: one permutation per call, in exactly the order of
        ``DataLoader(ds, batch_size, shuffle=True, generator=generator)`` for a generator in the
        same state, which a full pass also advances exactly as the DataLoader's epoch does (so
        epoch after epoch the orders agree); batches are ``index_select`` copies.
    generator : torch.Generator, optional
        Source of the permutation; ``None`` uses the global RNG, as the DataLoader does. A CPU
        generator works for tensors on any device: the permutation is drawn on the CPU and
        copied over asynchronously, without a host sync. A CUDA generator draws on its own
        device, which must be the tensors' device, and matches no DataLoader order.

    Yields
    ------
    tuple of torch.Tensor
        A batch of images and the matching labels.

    Raises
    ------
    ConfigError
        ``batch_size`` not a positive integer, or a generator on another device.
    DataError
        ``images`` and ``labels`` differ in length or device.

    Examples
    --------
    >>> x, y = torch.arange(10).view(10, 1), torch.arange(10)
    >>> [len(b) for b, _ in iter_batches(x, y, 4, shuffle=False)]
    [4, 4, 2]
    """
    check_int("batch_size", batch_size)
    if len(images) != len(labels) or images.device != labels.device:
        raise DataError(
            f"images and labels must pair up: got {len(images)} images on {images.device} "
            f"and {len(labels)} labels on {labels.device}"
        )
    if generator is not None and generator.device.type not in ("cpu", images.device.type):
        raise ConfigError(
            f"the generator is on {generator.device} but the data on {images.device}; pass a "
            "CPU generator (works everywhere) or one on the data's device"
        )
    return _batches(images, labels, batch_size, shuffle, generator)


def _batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    shuffle: bool,
    generator: torch.Generator | None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield the batches for :func:`iter_batches` (split out so its checks run at call time)."""
    n = len(images)
    if not shuffle:
        for start in range(0, n, batch_size):
            yield images[start : start + batch_size], labels[start : start + batch_size]
        return
    perm = _permutation(n, images.device, generator)
    for start in range(0, n, batch_size):
        index = perm[start : start + batch_size]
        yield images.index_select(0, index), labels.index_select(0, index)
    if generator is not None and generator.device.type == "cpu":
        # RandomSampler draws one more permutation as it runs out (`randperm(n)[: num_samples %
        # n]` in sampler.py, empty here); drawing it too keeps the generator in step with a
        # DataLoader's epoch after epoch.
        torch.randperm(n, generator=generator)


def index_batches(n: int, batch_size: int, *, shuffle: bool = True,
                  generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> Iterator[torch.Tensor]:
    """Yield the rows of each batch of :func:`iter_batches`, as index tensors on ``device``.

    The same order, and the same draws from ``generator``, as :func:`iter_batches` over ``n``
    samples: ``images.index_select(0, index)`` is its batch. Each index is a view of the
    epoch's permutation (or of ``arange(n)`` unshuffled), so yielding one costs no copy.
    """
    check_int("batch_size", batch_size)
    device = torch.device(device)
    order = (_permutation(n, device, generator) if shuffle
             else torch.arange(n, device=device))
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]
    if shuffle and generator is not None and generator.device.type == "cpu":
        torch.randperm(n, generator=generator)  # as _batches: in step with a DataLoader


@dataclass(frozen=True, slots=True)
class Batch:
    """One training batch as the Trainer's loop hands it to a step: its rows, and how to get it.

    A step that can gather the rows itself (a captured CUDA graph) reads ``images``,
    ``labels`` and ``index`` when ``plain``; any other calls :meth:`tensors`.

    Attributes
    ----------
    images, labels : torch.Tensor
        The whole training set on the training device (the same tensors all run long).
    index : torch.Tensor
        The batch's rows, (B,) int64 on that device.
    prepare : callable
        ``(images, labels) -> (images, labels)``: the recipe's augmentation, and this
        process's share of the rows under torchrun.
    plain : bool
        ``prepare`` returns its input unchanged (no augmentation, one process).
    """

    images: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor
    prepare: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    plain: bool

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's images and labels, gathered and prepared."""
        return self.prepare(self.images.index_select(0, self.index),
                            self.labels.index_select(0, self.index))
