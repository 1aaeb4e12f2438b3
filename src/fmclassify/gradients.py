r"""GradientTracer: one number per training step that sums up the gradient of the loss.

The course (Q1.7) asks for "the mean gradient of the loss over all trainable parameters" for each
of the first 100 training steps, plotted. :class:`GradientTracer` records it at the moment the
gradients are complete and not yet used: after ``loss.backward()`` and before
``optimizer.step()`` (the hook :meth:`~fmclassify.callbacks.CallbackBase.on_after_backward`).

Statistics
----------
Let :math:`g_1, \dots, g_N` be every entry of the ``.grad`` of every trainable parameter
(``requires_grad=True``) that has a gradient at this step, pooled over all tensors.

``"mean"`` (the course's definition)
    :math:`\frac{1}{N}\sum_i g_i`: element-weighted, so a 512x784 weight counts 401,408 times
    as much as a bias entry. It is *not* the mean of the per-tensor means.
``"mean_abs"``
    :math:`\frac{1}{N}\sum_i |g_i|`, the typical size of a gradient entry.
``"l2_norm"``
    :math:`\sqrt{\sum_i g_i^2}`, the length of the whole gradient vector.

The signed mean lets positive and negative entries cancel, so it says little about how large
the gradient is. The signed mean and the size of the gradient can move in opposite directions
over the first steps (positive and negative entries cancel more and more while each grows), so
the tracer measures and builds in no expected shape ("it should decrease"); the Q1.7 tutorial
page measures both statistics and discusses what the curves show.

Parameters without a gradient at a step (frozen ones, or ones the loss does not reach) are
skipped and counted in :attr:`GradientTracer.skipped_parameters`. A NaN or infinite gradient is
recorded as it is and listed in :attr:`GradientTracer.nonfinite_steps`; the tracer never raises
during a run.

Per layer
---------
``GradientTracer(per_layer=True)`` also records, for every trainable parameter tensor :math:`w`
(by its name in ``named_parameters()``) with gradient :math:`g` of :math:`n` entries, at every
recorded step, read as ``tracer.per_layer[name][stat]`` (one float per step):

``"mean"``, ``"mean_abs"``
    :math:`\frac{1}{n}\sum_i g_i` and :math:`\frac{1}{n}\sum_i |g_i|`.
``"norm"``, ``"weight_norm"``
    :math:`\|g\|_2` and :math:`\|w\|_2`, the weights as the step is about to change them.
``"update_ratio"``
    :math:`\eta\,\|g\|_2/\|w\|_2`, with :math:`\eta` the learning rate of the tensor's
    parameter group at that step (``run.optimizer``; a schedule changes it per step): the size
    of a plain SGD step relative to the weight. Momentum, Adam and weight decay change the
    actual update; the ratio stays the gradient's push relative to the weight.

:meth:`GradientTracer.plot_flow` and :meth:`GradientTracer.plot_heatmap` draw them. The signed
sum is accumulated in float64, the three sizes in float32 (about 1e-6 relative; a third of the
cost on the CPU). The whole-model statistic is computed as without ``per_layer`` (for
``"mean"`` it is the flow's own signed sum), so it is the same number with or without.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import torch

from fmclassify._checks import check_choice, check_int, check_lr
from fmclassify._flow import LayerFlow, select_statistic
from fmclassify._gradient_trace import (
    check_state,
    json_floats,
    read_trace,
    reduce_gradient,
    skipped_counts,
)
from fmclassify.callbacks import CallbackBase, RunContext
from fmclassify.exceptions import ConfigError

if TYPE_CHECKING:
    from fmclassify.history import History

__all__ = ["FlowStatistic", "GradientTracer", "Statistic"]

Statistic = Literal["mean", "mean_abs", "l2_norm"]
FlowStatistic = Literal["mean", "mean_abs", "norm", "weight_norm", "update_ratio"]

_STATISTICS = ("mean", "mean_abs", "l2_norm")


class GradientTracer(CallbackBase):
    """Record one statistic of the whole gradient for each of the first ``steps`` steps.

    Parameters
    ----------
    steps : int, default 100
        Training steps to record, from the first; after them the hook returns at once and
        :attr:`needs_gradients` turns False, so the trainer may use its fused step.
    statistic : {"mean", "mean_abs", "l2_norm"}, default "mean"
        What to record; the formulas are in the module documentation.
    per_layer : bool, default False
        Also keep the statistic of each parameter tensor (:attr:`per_layer_values`) and the
        five gradient flow statistics of each tensor (:attr:`per_layer`).
    lr : float, optional
        The learning rate for ``"update_ratio"`` when the run has no optimizer
        (``RunContext.optimizer`` is None, e.g. a hand-written loop). With an optimizer, the
        learning rate of each tensor's parameter group at each step is used and ``lr`` is
        ignored. With neither, ``"update_ratio"`` is left out of :attr:`per_layer`.

    Raises
    ------
    ConfigError
        If ``steps`` is not a positive integer, ``statistic`` is unknown or ``lr`` is not a
        finite number > 0.

    Notes
    -----
    During recording the per-tensor sums stay on the model's device, written into a tensor
    allocated once: reading a float with ``.item()`` would force the host to wait for the GPU at
    every step. The floats are read once, when the run ends or when a property is first read.
    The sums are accumulated in float64 (float32 on Apple's MPS, which has no float64), so the
    pooled mean of ~670,000 entries keeps its small value exactly enough to be compared.

    Examples
    --------
    >>> tracer = GradientTracer(steps=100, statistic="mean")
    >>> # Trainer(model, lr=0.1, epochs=1, callbacks=[tracer]).fit(train, test)
    >>> # len(tracer.values) == 100; tracer.plot()
    >>> flow = GradientTracer(steps=100, per_layer=True)
    >>> # flow.per_layer["linear_relu_stack.0.weight"]["update_ratio"]; flow.plot_heatmap()
    """

    def __init__(
        self,
        steps: int = 100,
        statistic: Statistic = "mean",
        *,
        per_layer: bool = False,
        lr: float | None = None,
    ) -> None:
        self.steps = check_int("steps", steps)
        check_choice("statistic", statistic, _STATISTICS)
        self.statistic: Statistic = statistic
        self._per_layer = bool(per_layer)
        self.lr = None if lr is None else check_lr(lr)  # the optimizer's, for update ratios
        self._reset()

    def config(self) -> dict[str, Any]:
        """The constructor arguments, so ``GradientTracer(**t.config())`` is a fresh twin."""
        config: dict[str, Any] = {
            "steps": self.steps,
            "statistic": self.statistic,
            "per_layer": self._per_layer,
        }
        if self.lr is not None:  # only when given: configs without it keep their old keys
            config["lr"] = self.lr
        return config

    def _reset(self) -> None:
        self.needs_gradients = True
        self._names: list[str] = []  # trainable parameters, in model order
        self._params: list[torch.nn.Parameter] | None = None  # set at the first step
        self._numels: list[int] = []
        self._frozen: list[str] = []
        self._buffer: torch.Tensor | None = None  # (steps, n_params) per-tensor sums; tiny
        self._present: list[tuple[int, ...] | None] = []  # None: every parameter had a grad
        self._recorded = 0
        self._flow: LayerFlow | None = None  # per-tensor flow statistics (per_layer=True)
        self._cache: _Trace | None = None

    # -- the hooks ----------------------------------------------------------------------------

    def on_fit_start(self, run: RunContext) -> None:
        """Start a fresh trace, unless the run resumes from a checkpoint.

        Each fit records its own first ``steps`` steps. A resumed run (its History already
        holds trained epochs) keeps the trace restored with :meth:`load_state_dict`.
        """
        if run.history.epochs_trained == 0:
            self._reset()
        self.needs_gradients = self._recorded < self.steps

    def on_after_backward(self, run: RunContext) -> None:
        """Reduce the gradients of this step into the buffer (no host synchronisation)."""
        if self._recorded >= self.steps:
            return
        if self._params is None or self._buffer is None:
            self._params, self._buffer = self._setup(run.model)  # once per fit
        params, row = self._params, self._buffer[self._recorded]
        present = [i for i, p in enumerate(params) if p.grad is not None]
        flow = None
        if self._flow is not None:  # per_layer; for "mean" it also gives the whole-model sums
            lrs = self._flow.learning_rates(run.optimizer, params, self.lr)
            flow = self._flow.record(self._recorded, params, present, lrs)
        if present:
            if flow is not None and self.statistic == "mean":
                sums = flow  # the flow's signed sums: the very reduction reduce_gradient makes
            else:
                grads = [g for g in (params[i].grad for i in present) if g is not None]
                sums = torch.stack(
                    [reduce_gradient(g, self.statistic, row.dtype).to(row.device) for g in grads]
                )
            if len(present) == len(params):
                row.copy_(sums)
            else:
                row[present] = sums
        self._present.append(None if len(present) == len(params) else tuple(present))
        self._recorded += 1
        self._cache = None
        if self._recorded >= self.steps:
            self.needs_gradients = False

    def on_fit_end(self, run: RunContext, history: History) -> None:
        """Read the trace back to the host once and let go of the model's parameters."""
        self._materialize()
        self._params = None

    def _setup(self, model: torch.nn.Module) -> tuple[list[torch.nn.Parameter], torch.Tensor]:
        """List the trainable parameters; allocate the buffer, keeping rows already recorded."""
        named = list(model.named_parameters())
        params = [p for _, p in named if p.requires_grad]
        device = params[0].device if params else torch.device("cpu")
        dtype = torch.float32 if device.type == "mps" else torch.float64
        buffer = torch.zeros((self.steps, len(params)), dtype=dtype, device=device)
        old = self._buffer  # rows restored from a checkpoint, or from an earlier fit_end
        if old is not None and old.shape[1] == len(params):
            buffer[: self._recorded] = old[: self._recorded].to(device=device, dtype=dtype)
        else:
            self._recorded, self._present = 0, []
        self._names = [n for n, p in named if p.requires_grad]
        self._frozen = [n for n, p in named if not p.requires_grad]
        self._numels = [p.numel() for p in params]
        if self._per_layer:
            old_flow = self._flow if self._recorded else None
            self._flow = (
                old_flow.moved(self._recorded, device, dtype)
                if old_flow is not None and old_flow.names == self._names
                else LayerFlow(self.steps, self._names, self._numels, device=device, dtype=dtype)
            )
        return params, buffer

    # -- reading the trace --------------------------------------------------------------------

    def _materialize(self) -> _Trace:
        if self._cache is not None:
            return self._cache
        rows: list[list[float]] = []
        if self._buffer is not None:
            rows = self._buffer[: self._recorded].cpu().tolist()  # the one host sync
        names = self._names if self._per_layer else None
        values, per_layer = read_trace(rows, self._present, self._numels, self.statistic, names)
        flow = self._flow.read(self._recorded) if self._flow is not None else {}
        self._cache = (values, per_layer, rows, flow)
        return self._cache

    @property
    def values(self) -> list[float]:
        """The statistic at each recorded step, in step order (one float per step)."""
        return list(self._materialize()[0])

    @property
    def steps_recorded(self) -> int:
        """How many steps have been recorded (at most ``steps``)."""
        return self._recorded

    @property
    def per_layer_values(self) -> dict[str, list[float]]:
        """Parameter name -> the statistic of that tensor per step (NaN where it had no grad).

        Empty unless the tracer was built with ``per_layer=True``.
        """
        return {k: list(v) for k, v in self._materialize()[1].items()}

    @property
    def per_layer(self) -> dict[str, dict[str, list[float]]]:
        """Parameter name -> flow statistic -> one float per recorded step (per_layer=True).

        The statistics are ``"mean"``, ``"mean_abs"``, ``"norm"``, ``"weight_norm"`` and
        ``"update_ratio"`` (see the module documentation); NaN where the tensor had no gradient.
        ``"update_ratio"`` is absent when no learning rate was known (no optimizer in the run
        and no ``lr`` given). Empty unless the tracer was built with ``per_layer=True``.

        Examples
        --------
        >>> tracer = GradientTracer(steps=3, per_layer=True)
        >>> tracer.per_layer  # nothing recorded yet
        {}
        """
        return {k: {s: list(v) for s, v in d.items()} for k, d in self._materialize()[3].items()}

    @property
    def nonfinite_steps(self) -> list[int]:
        """0-based indices into :attr:`values` where the statistic is NaN or infinite."""
        return [i for i, v in enumerate(self.values) if not math.isfinite(v)]

    @property
    def skipped_parameters(self) -> dict[str, int]:
        """Parameter name -> recorded steps it contributed nothing to (frozen or no grad)."""
        return skipped_counts(self._names, self._frozen, self._present, self._recorded)

    @property
    def trainable_entries(self) -> int:
        """Number of entries of all trainable parameters (the N of the mean when none skip)."""
        return sum(self._numels)

    def state_dict(self) -> dict[str, Any]:
        """Return the trace so far as plain data (what a checkpoint saves).

        With ``per_layer=True`` it also holds the per-tensor flow sums and learning rates
        (under ``"flow"``, non-finite values as None, so the dict is JSON-ready).
        """
        rows = self._materialize()[2]
        flow = None if self._flow is None else self._flow.state_dict(self._recorded)
        return {
            "per_layer": self._per_layer,
            "flow": flow,
            "statistic": self.statistic,
            "steps": self.steps,
            "recorded": self._recorded,
            "names": list(self._names),
            "numels": list(self._numels),
            "frozen": list(self._frozen),
            "present": [None if p is None else list(p) for p in self._present],
            "rows": rows,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a trace written by :meth:`state_dict` (a resumed run continues it).

        Raises
        ------
        ConfigError
            If the state belongs to a tracer with another ``statistic`` or ``steps``, or is
            not a GradientTracer state.
        """
        check_state(state, self.config())
        self._reset()
        self._names, self._frozen = list(state["names"]), list(state["frozen"])
        self._numels = [int(n) for n in state["numels"]]
        self._present = [None if p is None else tuple(p) for p in state["present"]]
        self._recorded = int(state["recorded"])
        self._buffer = torch.zeros((self.steps, len(self._names)), dtype=torch.float64)
        if self._recorded:
            self._buffer[: self._recorded] = torch.tensor(state["rows"], dtype=torch.float64)
        if self._per_layer:
            flow = state.get("flow") or {"sums": [], "lrs": []}
            if len(flow["sums"]) != self._recorded:
                raise ConfigError(
                    f"GradientTracer state has {len(flow['sums'])} per-layer rows for "
                    f"{self._recorded} recorded steps; pass a dict written by "
                    "GradientTracer(per_layer=True).state_dict()"
                )
            self._flow = LayerFlow.from_state(flow, self.steps, self._names, self._numels)
        self.needs_gradients = self._recorded < self.steps

    def to_dict(self) -> dict[str, Any]:
        """Return the trace as a JSON-ready dict; non-finite values become None."""
        return {
            "format": "fmclassify.gradients/1",
            "statistic": self.statistic,
            "steps": self.steps,
            "steps_recorded": self.steps_recorded,
            "values": json_floats(self.values),
            "nonfinite_steps": self.nonfinite_steps,
            "skipped_parameters": self.skipped_parameters,
            "trainable_entries": self.trainable_entries,
            "per_layer": json_floats(self.per_layer_values) if self._per_layer else None,
            "per_layer_stats": json_floats(self.per_layer) if self._per_layer else None,
        }

    def plot(self, *, title: str | None = None) -> Any:
        """Draw the trace as a matplotlib Figure (:func:`fmclassify.plotting.plot_gradients`)."""
        from fmclassify.plotting import plot_gradients  # lazy: matplotlib only when plotting

        per_layer = self.per_layer_values if self._per_layer else None
        return plot_gradients(
            self.values, statistic=self.statistic, title=title, per_layer=per_layer
        )

    def plot_flow(self, stat: FlowStatistic = "mean_abs", *, title: str | None = None) -> Any:
        """Draw one flow statistic per step, one line per tensor, on a log axis.

        Parameters
        ----------
        stat : {"mean_abs", "norm", "weight_norm", "update_ratio", "mean"}, default "mean_abs"
            The statistic (:attr:`per_layer`). The default, the mean size of a gradient entry,
            compares tensors of different sizes fairly (a norm grows with the tensor's size),
            so a layer whose gradients vanish or explode stands out.
        title : str, optional
            The figure title.

        Returns
        -------
        matplotlib.figure.Figure
            See :func:`fmclassify.plotting.plot_gradient_flow`.

        Raises
        ------
        ConfigError
            If the tracer was built without ``per_layer=True``, ``stat`` is unknown, or
            ``"update_ratio"`` was asked for but no learning rate was known.
        """
        from fmclassify.plotting import plot_gradient_flow  # lazy: matplotlib only when plotting

        return plot_gradient_flow(self._flow_for_plot(stat), stat=stat, title=title)

    def plot_heatmap(
        self, stat: FlowStatistic = "update_ratio", *, title: str | None = None
    ) -> Any:
        """Draw one flow statistic as a tensor-by-step image with a log colour scale.

        Parameters
        ----------
        stat : {"update_ratio", "mean_abs", "norm", "weight_norm", "mean"}, default "update_ratio"
            The statistic (:attr:`per_layer`); the default shows at a glance which layers
            move fast (a ratio near 1e-3 is a common rule of thumb for plain SGD).
        title : str, optional
            The figure title.

        Returns
        -------
        matplotlib.figure.Figure
            See :func:`fmclassify.plotting.plot_gradient_heatmap`.

        Raises
        ------
        ConfigError
            As :meth:`plot_flow`.
        """
        from fmclassify.plotting import plot_gradient_heatmap  # lazy: matplotlib when plotting

        return plot_gradient_heatmap(self._flow_for_plot(stat), stat=stat, title=title)

    def _flow_for_plot(self, stat: str) -> dict[str, list[float]]:
        if not self._per_layer:
            raise ConfigError(
                "this GradientTracer has no per-layer statistics; build it with "
                "GradientTracer(..., per_layer=True)"
            )
        return select_statistic(self.per_layer, stat)


#: (whole-model values, per-tensor values, raw rows, per-tensor flow statistics)
_Trace = tuple[
    list[float], dict[str, list[float]], list[list[float]], dict[str, dict[str, list[float]]]
]
