"""ActivationStats: what the activations of each layer look like, and how many units are dead.

A ReLU unit whose input is negative for every sample passes no gradient, so its weights stop
learning: it is *dead*. Too large a learning rate (lr 1 on the base MLP) kills many at once.
:class:`ActivationStats` watches the output of every activation module (``nn.ReLU``,
``nn.LeakyReLU``, ``nn.GELU``, ... : :data:`ACTIVATIONS`) during the training forward passes of
the epochs it records, and keeps per layer and epoch:

``"mean"``, ``"std"``
    Mean and (population) standard deviation of every output value of the epoch, all units,
    samples and positions pooled.
``"units"``, ``"dead"``, ``"dead_fraction"``
    A *unit* is one feature of a ``(B, F)`` output or one channel of a ``(B, C, H, W)`` one
    (dimension 1, PyTorch's ``(N, C, *)`` layout). It is dead over the epoch when its output
    was never > 0, for any sample of any training step of the epoch (and any position). The
    count is exact: one flag per unit, or-ed at every step.
``"count"``
    How many output values the mean pools.

Layers are named by the activation module's qualified name (``"linear_relu_stack.1"`` is the
ReLU after ``linear_relu_stack.0`` in :class:`~fmclassify.MLP`). A module called more than
once per forward pass (one ``self.relu`` reused after every layer) gets one entry per call,
``"relu"``, ``"relu#2"``, ...; :class:`~fmclassify.CourseCNN` applies each block's ReLU after
its max-pool (equal values, a quarter as many; the dead fraction is the same).

Evaluation passes (``module.training`` False) are never counted. The sums stay on the model's
device during the epoch; they are read back once, at the epoch's end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from fmclassify._checks import check_choice, check_int
from fmclassify._tables import Table, to_html, to_text
from fmclassify.callbacks import CallbackBase, RunContext
from fmclassify.exceptions import ConfigError

if TYPE_CHECKING:
    from torch.utils.hooks import RemovableHandle

    from fmclassify.history import EpochRecord, History

__all__ = ["ACTIVATIONS", "ActivationStats"]

#: The module types watched by default: the rectifier-like activations.
ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU,
    nn.SiLU, nn.Mish, nn.Hardswish,
)  # fmt: skip
_KEYS = ("epoch", "units", "dead", "dead_fraction", "mean", "std", "count")


@dataclass
class _Sums:
    """One layer's running sums over an epoch, on the device."""

    count: int
    total: torch.Tensor  # sum of the outputs, 0-d
    squares: torch.Tensor  # sum of their squares, 0-d
    active: torch.Tensor  # (units,) bool: ever > 0


class ActivationStats(CallbackBase):
    """Record activation mean, std and dead units per layer, every ``every``-th epoch.

    Parameters
    ----------
    every : int, default 1
        Record epochs 1, 1 + every, 1 + 2*every, ... (every epoch by default). The epochs in
        between skip the hooks' work, and let the trainer use its fused step.
    types : sequence of nn.Module subclasses, default :data:`ACTIVATIONS`
        The modules to watch, found by ``isinstance`` in ``model.named_modules()``.

    Raises
    ------
    ConfigError
        If ``every`` is not a positive integer or ``types`` is not a non-empty sequence of
        module classes; at fit start, if the model has no module of those types.

    Notes
    -----
    Forward hooks are installed at ``on_fit_start`` and removed at ``on_fit_end`` (which the
    trainer calls however the run ends) or by :meth:`remove`. ``needs_gradients`` is True in
    the epochs it records, so the model's own modules run and the hooks fire.

    Examples
    --------
    >>> stats = ActivationStats(every=1)
    >>> # Trainer(build_model("base"), lr=1.0, epochs=3, callbacks=[stats]).fit(train, test)
    >>> # stats.dead_fraction("linear_relu_stack.1") -> [0.42, 0.57, 0.61]; stats.plot()
    """

    def __init__(self, every: int = 1, *, types: Sequence[type[nn.Module]] = ACTIVATIONS) -> None:
        every = check_int("every", every)
        types = tuple(types) if isinstance(types, Sequence) else ()
        if not types or not all(isinstance(t, type) and issubclass(t, nn.Module) for t in types):
            raise ConfigError(
                "types must be a non-empty sequence of torch.nn.Module subclasses, e.g. "
                "(torch.nn.ReLU,)"
            )
        self.every, self.types = every, types
        self._handles: list[RemovableHandle] = []
        self._records: dict[str, list[dict[str, Any]]] = {}
        self._dead_units: dict[str, list[int]] = {}
        self._sums: dict[str, _Sums] = {}
        self._calls: dict[str, int] = {}  # calls per module in the forward pass in progress
        self._recording = False
        self.needs_gradients = True

    def config(self) -> dict[str, Any]:
        """The constructor's ``every`` (``ActivationStats(**s.config())`` is a fresh twin)."""
        return {"every": self.every}

    # -- the hooks ----------------------------------------------------------------------------

    def on_fit_start(self, run: RunContext) -> None:
        """Install the forward hooks; start afresh unless the run resumes from a checkpoint.

        Raises
        ------
        ConfigError
            If the model has no activation module of the watched types.
        """
        self.remove()  # a fit that ended without on_fit_end must not leave its hooks behind
        if run.history.epochs_trained == 0:
            self._records, self._dead_units = {}, {}
        watched = [(n, m) for n, m in run.model.named_modules() if isinstance(m, self.types)]
        if not watched:
            names = ", ".join(t.__name__ for t in self.types)
            raise ConfigError(
                f"ActivationStats found no activation module in {type(run.model).__name__} "
                f"(looked for {names}); pass ActivationStats(types=(...)) with its types"
            )
        try:
            self._handles.append(run.model.register_forward_pre_hook(self._new_forward))
            for name, module in watched:
                self._handles.append(module.register_forward_hook(self._hook(name)))
        except BaseException:
            self.remove()
            raise
        self._begin_epoch(run.history.epochs_trained + 1)

    def on_after_backward(self, run: RunContext) -> None:
        """Start counting calls afresh for the next forward pass (nothing else to do)."""
        self._calls.clear()

    def on_epoch_end(self, run: RunContext, record: EpochRecord) -> None:
        """Turn the epoch's sums into one record per layer (one host transfer)."""
        if self._recording and self._sums:
            self._finish_epoch(record.epoch)
        self._begin_epoch(record.epoch + 1)

    def on_fit_end(self, run: RunContext, history: History) -> None:
        """Remove the hooks and drop sums of an unfinished epoch."""
        self.remove()

    def remove(self) -> None:
        """Remove every hook this callback installed (safe to call at any time, and again)."""
        while self._handles:
            self._handles.pop().remove()
        self._sums, self._calls, self._recording = {}, {}, False

    def _begin_epoch(self, epoch: int) -> None:
        self._sums, self._calls = {}, {}
        self._recording = bool(self._handles) and (epoch - 1) % self.every == 0
        self.needs_gradients = self._recording

    def _new_forward(self, module: nn.Module, inputs: Any) -> None:
        self._calls.clear()

    def _hook(self, name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if not (self._recording and module.training and isinstance(output, torch.Tensor)):
                return
            calls = self._calls.get(name, 0) + 1
            self._calls[name] = calls
            self._accumulate(name if calls == 1 else f"{name}#{calls}", output.detach())

        return hook

    def _accumulate(self, key: str, x: torch.Tensor) -> None:
        """Add one output to the layer's sums (device work only: no host sync)."""
        # (units,): each unit's largest value over batch (and positions)
        peak = x.amax(dim=(0, *range(2, x.dim()))) if x.dim() >= 2 else x.reshape(-1)
        sums = self._sums.get(key)
        dtype = torch.float32 if x.device.type == "mps" else torch.float64  # MPS: no float64
        if sums is None:
            zero = torch.zeros((), dtype=dtype, device=x.device)
            active = torch.zeros(peak.shape, dtype=torch.bool, device=x.device)
            sums = self._sums[key] = _Sums(0, zero, zero.clone(), active)
        elif sums.active.shape != peak.shape:
            return  # another width at the same place: not the same units; keep the first
        sums.count += x.numel()
        sums.total += x.sum(dtype=dtype)
        sums.squares += torch.linalg.vector_norm(x, ord=2, dtype=dtype).square()
        sums.active |= peak > 0

    def _finish_epoch(self, epoch: int) -> None:
        keys = list(self._sums)
        sums = [self._sums[k] for k in keys]
        device = sums[0].total.device
        flat = torch.cat(
            [torch.stack([s.total, s.squares]).to(device) for s in sums]
            + [s.active.to(device=device, dtype=sums[0].total.dtype) for s in sums]
        ).cpu()  # the epoch's one host transfer
        totals, flags = flat[: 2 * len(sums)].tolist(), flat[2 * len(sums) :]
        offset = 0
        for i, (key, s) in enumerate(zip(keys, sums, strict=True)):
            units = s.active.numel()
            active = flags[offset : offset + units]
            offset += units
            dead = (active == 0).nonzero().flatten().tolist()
            mean = totals[2 * i] / s.count
            std = math.sqrt(max(totals[2 * i + 1] / s.count - mean * mean, 0.0))
            record = {"epoch": epoch, "units": units, "dead": len(dead),
                      "dead_fraction": len(dead) / units if units else math.nan,
                      "mean": mean, "std": std, "count": s.count}  # fmt: skip
            self._records.setdefault(key, []).append(record)
            self._dead_units[key] = dead
        self._sums = {}

    # -- reading the statistics ---------------------------------------------------------------

    @property
    def layers(self) -> list[str]:
        """The recorded layers, in the order of the forward pass."""
        return list(self._records)

    @property
    def history(self) -> dict[str, list[dict[str, Any]]]:
        """Layer -> one dict per recorded epoch, with the keys of the module documentation."""
        return {k: [dict(r) for r in rs] for k, rs in self._records.items()}

    def column(self, layer: str, key: str) -> list[Any]:
        """One value per recorded epoch of ``layer``, e.g. ``column("relu", "std")``.

        Raises
        ------
        ConfigError
            If ``layer`` was not recorded or ``key`` is unknown.
        """
        check_choice("key", key, _KEYS)
        return [r[key] for r in self._layer(layer)]

    def dead_fraction(self, layer: str) -> list[float]:
        """The fraction of ``layer``'s units dead over each recorded epoch (0 to 1)."""
        return self.column(layer, "dead_fraction")

    def dead_units(self, layer: str) -> list[int]:
        """Indices of ``layer``'s units dead over the last recorded epoch."""
        self._layer(layer)
        return list(self._dead_units.get(layer, []))

    def _layer(self, layer: str) -> list[dict[str, Any]]:
        if not self._records:
            raise ConfigError(f"unknown layer {layer!r}; recorded: none yet")
        check_choice("layer", layer, list(self._records))  # the recorded layers' names
        return self._records[layer]

    def state_dict(self) -> dict[str, Any]:
        """The records so far as plain, JSON-ready data (what a checkpoint saves)."""
        return {
            "every": self.every,
            "records": {k: [_json_ready(r) for r in rs] for k, rs in self._records.items()},
            "dead_units": {k: list(v) for k, v in self._dead_units.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore records written by :meth:`state_dict` (a resumed run continues them).

        Raises
        ------
        ConfigError
            If the state is not an ActivationStats state, or has another ``every``.
        """
        missing = [k for k in ("every", "records", "dead_units") if k not in state]
        if missing:
            raise ConfigError(
                f"ActivationStats state is missing {', '.join(missing)}; "
                "pass a dict written by ActivationStats.state_dict()"
            )
        if state["every"] != self.every:
            raise ConfigError(
                f"ActivationStats state has every={state['every']!r} but this callback has "
                f"every={self.every!r}; build it with the same settings"
            )
        self._records = {
            k: [{key: math.nan if v is None else v for key, v in r.items()} for r in rs]
            for k, rs in state["records"].items()
        }
        self._dead_units = {k: [int(i) for i in v] for k, v in state["dead_units"].items()}

    def to_dict(self) -> dict[str, Any]:
        """Return the records as a JSON-ready dict; non-finite values become None."""
        return {"format": "fmclassify.activations/1", **self.state_dict()}

    def plot(self, *, title: str | None = None) -> Any:
        """Draw dead fraction and mean +- std per layer over the recorded epochs.

        Returns
        -------
        matplotlib.figure.Figure
            See :func:`fmclassify.plotting.plot_activation_stats`.
        """
        from fmclassify.plotting import plot_activation_stats  # lazy: matplotlib when plotting

        return plot_activation_stats(self.history, title=title)

    def _table(self) -> Table:
        cells = [
            [layer, str(r["epoch"]), str(r["units"]), str(r["dead"]),
             f"{100 * r['dead_fraction']:.1f}", f"{r['mean']:.4g}", f"{r['std']:.4g}"]
            for layer, r in ((k, rs[-1]) for k, rs in self._records.items())
        ]  # fmt: skip
        return Table(
            title="Activations (the last recorded epoch of each layer)",
            header=["Layer", "Epoch", "Units", "Dead", "Dead %", "Mean", "Std"],
            rows=cells,
            right=frozenset(range(1, 7)),
            empty="(nothing recorded yet)",
            framed=True,
        )

    def __str__(self) -> str:
        """The last recorded epoch of each layer as an aligned text table."""
        return to_text(self._table())

    def _repr_html_(self) -> str:
        """The same table as HTML (how a notebook shows the callback)."""
        return to_html(self._table())


def _json_ready(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()
    }
