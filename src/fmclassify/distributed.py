"""One run over several processes: torchrun's environment, each rank's rows, summed counts.

``torchrun --standalone --nproc-per-node=N -m fmclassify train ...`` starts N processes (ranks)
of the same command. :func:`process_group` joins them from torchrun's environment (gloo on the
CPU, NCCL on CUDA, one GPU per rank), and a :class:`~fmclassify.Trainer` made inside it trains
one run data-parallel:

* ``batch_size`` stays the global batch. Every rank draws the same seeded permutation of the
  epoch, so global step t has the same batch B_t on every rank, and rank r trains on rows
  ``B_t[r::N]`` (the rule of ``DistributedSampler``, applied to each batch): the ranks' rows
  together are exactly the batch a single process trains on at step t.
* ``DistributedDataParallel`` sums the ranks' gradients, each weighted by its share of the
  batch (``n_r / |B_t|``), which gives the gradient of the global batch's mean loss, also for
  a last batch that does not split evenly (for equal slices it is the plain mean of the
  ranks' means).
* The training loss and the evaluation are sums over each rank's rows (test rows ``r::N``),
  all-reduced, then divided by the global sizes: loss and accuracy of the whole set.
* Only rank 0 shows progress, prints, and writes the History (its metadata records
  ``world_size``) and the checkpoint; every rank reads the checkpoint to resume, under any
  number of processes (the global batch, hence the run, does not depend on it).

A single process and N processes agree within float rounding. Not reproduced across
process counts: BatchNorm (statistics of each rank's rows) and dropout (masks drawn per rank).
Callbacks run on every rank and see the same records; one that stops the run must decide
from those alone. Without torchrun's environment :func:`process_group` does nothing and a run
trains as it always does.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist

from fmclassify.exceptions import ConfigError

__all__ = ["Shard", "current_shard", "process_group", "under_torchrun"]

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class Shard:
    """A process's part of a data-parallel run: rank ``rank`` of ``world`` processes.

    ``Shard()`` (rank 0 of 1) is the whole run in one process: :meth:`split` and :meth:`sum`
    return what they are given and :meth:`wrap` the model itself.

    Parameters
    ----------
    rank, world : int
        This process's rank, and the number of processes.
    """

    def __init__(self, rank: int = 0, world: int = 1) -> None:
        if not 0 <= rank < world:
            raise ConfigError(f"rank must lie in 0..{world - 1}, got {rank}")
        self.rank, self.world = rank, world
        self.weight = 1.0 / world  # this rank's share of the current batch, for the gradients

    def __repr__(self) -> str:
        return f"Shard(rank={self.rank}, world={self.world})"

    def rows(self, t: torch.Tensor) -> torch.Tensor:
        """The rank's rows of ``t``: ``t[rank::world]``."""
        return t if self.world == 1 else t[self.rank::self.world]

    def split(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rank's rows of the global batch ``(x, y)``; its gradients weigh their share."""
        if self.world == 1:
            return x, y
        self.weight = -(-(len(y) - self.rank) // self.world) / len(y)  # ceil((m - r) / N) / m
        return self.rows(x), self.rows(y)

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` summed over the ranks (a new tensor; ``t`` itself in one process)."""
        if self.world == 1:
            return t
        total = t.clone()
        dist.all_reduce(total)
        return total

    def check_batches(self, train_size: int, batch_size: int) -> None:
        """Refuse a split that leaves some rank a batch without rows.

        Raises
        ------
        ConfigError
            ``batch_size`` smaller than the number of processes, or a last batch that is.
        """
        last = train_size % batch_size
        if batch_size < self.world or 0 < last < self.world:
            raise ConfigError(
                f"batch_size {batch_size} over {train_size} training images leaves batches of "
                f"{min(batch_size, last or batch_size)} rows, fewer than the {self.world} "
                "processes; choose a batch size (and subset) that gives every process rows")

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in DistributedDataParallel with the weighted gradient sum (itself alone)."""
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device = next(model.parameters()).device
        ddp = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
        ddp.register_comm_hook(self, _weighted_sum)
        return ddp


def _weighted_sum(shard: Shard, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """DDP's gradient communication: each rank's gradients times its share, summed."""
    buffer = bucket.buffer()
    buffer.mul_(shard.weight)
    future = dist.all_reduce(buffer, async_op=True).get_future()  # type: ignore[union-attr]
    return future.then(lambda f: f.value()[0])


# DDP checks a hook's annotations as objects; this module's are strings (future annotations)
_weighted_sum.__annotations__ = {"shard": Shard, "bucket": dist.GradBucket,
                                 "return": torch.futures.Future[torch.Tensor]}


def current_shard() -> Shard:
    """The Shard of this process: from the joined process group, else the whole run."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return Shard(dist.get_rank(), dist.get_world_size())
    return Shard()


def under_torchrun() -> bool:
    """Whether torchrun (or another launcher) set this process's rank environment."""
    return all(k in os.environ for k in _ENV)


@contextmanager
def process_group(device: str = "auto", *, timeout: float = 600.0) -> Iterator[Shard]:
    """Join torchrun's processes for the block (nothing outside torchrun); yield the Shard.

    Parameters
    ----------
    device : str, default "auto"
        ``"cpu"`` joins over gloo; ``"cuda"`` (or ``"auto"`` with a GPU) over NCCL, and makes
        GPU ``LOCAL_RANK`` this process's ``"cuda"``.
    timeout : float, default 600
        Seconds a collective waits for the other processes before failing.

    Examples
    --------
    >>> from fmclassify import distributed
    >>> with distributed.process_group("cpu") as shard:   # doctest: +SKIP
    ...     history = fmc.Trainer(model, lr=0.1, epochs=10).fit(train, test)
    ...     if shard.rank == 0:
    ...         history.to_json("history.json")
    """
    if not under_torchrun() or int(os.environ["WORLD_SIZE"]) < 2 or dist.is_initialized():
        yield current_shard()
        return
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if cuda else "gloo",
                            timeout=datetime.timedelta(seconds=timeout))
    try:
        yield current_shard()
    finally:
        dist.destroy_process_group()
