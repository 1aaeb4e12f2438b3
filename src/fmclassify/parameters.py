"""Count a model's parameters layer by layer, with the formula, and prove it against PyTorch.

:func:`count_parameters` walks the module tree (no forward pass). Every module that holds
parameters gets a row: its analytic formula with the layer's own numbers (course Q1.5:
conv ``((m*n*d)+1)*k``, batch norm ``2*C``, linear ``(n+1)*m``), the count the formula gives,
what PyTorch allocated (``numel``), and how much of it trains. A formula that disagrees with
``numel`` is a bug in the rule and an error (or, with ``strict=False``, a marked row).

Row statuses
------------
``"checked"``
    A rule gave the count and it equals ``numel``.
``"mismatch"``
    A rule gave a count that differs from ``numel`` (only with ``strict=False``).
``"no rule"``
    No rule is registered for the layer type; counted from ``numel``. Add one with
    :func:`register_parameter_rule`.
``"tensor"``
    A parameter held directly by a module that no rule covers (a class token, a position
    embedding, a layer-scale vector); its count is the product of its shape.

Tied parameters are counted once: the later row says where each is shared from and adds
nothing to the totals. Frozen parameters count in ``total`` and ``non_trainable``. Buffers
(batch-norm running statistics) are not parameters and are never counted.

Shapes and multiply-adds
------------------------
With ``input_size`` (batch first, e.g. ``(1, 1, 28, 28)``), one forward pass on zeros adds each
row's output shape and multiply-adds, and the pass's total. Multiply-adds are FLOPs / 2 as
:class:`torch.utils.flop_counter.FlopCounterMode` counts them: matrix products, convolutions
and attention only (``Linear(n, m)``: ``n*m`` per sample; ``Conv2d``: ``H'*W'*k*m*n*(d/g)``);
bias additions, batch norm, activations and pooling count 0. They grow with the batch size.
Without ``input_size`` there is no forward pass and the table is the static one.

Several models
--------------
:func:`compare_parameters` counts several models in one call (registered names, or a mapping of
names to modules) and shows their totals side by side, one row per model; each model's full
report is kept in :attr:`ParameterComparison.reports`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from fmclassify._frames import frame
from fmclassify._parameter_walk import ParameterRow, ParameterWalk
from fmclassify._profile import check_input_size, profile_forward
from fmclassify._rules import Formula, register_parameter_rule
from fmclassify._tables import Table, to_html, to_markdown, to_text
from fmclassify.exceptions import ConfigError, ParameterCountError
from fmclassify.registry import build_model

__all__ = [
    "Formula",
    "ParameterComparison",
    "ParameterReport",
    "ParameterRow",
    "compare_parameters",
    "count_parameters",
    "register_parameter_rule",
]


@dataclass(frozen=True)
class ParameterReport:
    """The per-layer parameter table of a model and its totals.

    Parameters
    ----------
    rows : tuple of ParameterRow
        One per parameter-owning module, in registration order.
    total, trainable, non_trainable : int
        Unique parameter elements: all, those that require gradients, and the rest.
    notes : tuple of str
        Conventions that matter for this model (buffers, batch norm, RNN biases), layers
        without rules and rule mismatches.
    symbols : tuple of str
        The legend: the first docstring line of every rule used, in order of first use.
    model_name : str
        The model's registered name, or its class name.
    model_type : str
        The model's class name (shown in the title when it differs from ``model_name``).
    input_size : tuple of int or None
        The input shape of the measuring forward pass; None (the default) when there was none.
    total_mult_adds : int or None
        Multiply-adds of that whole pass (parameter-free layers included); None without one.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> report = fmc.count_parameters(fmc.build_model("wider"))
    >>> report.trainable, report.non_trainable
    (1557330, 0)
    >>> print(report.to_markdown().splitlines()[2])
    | Layer | Type | Formula | Analytic | numel | Trainable | Check |
    """

    rows: tuple[ParameterRow, ...]
    total: int
    trainable: int
    non_trainable: int
    notes: tuple[str, ...] = ()
    symbols: tuple[str, ...] = ()
    model_name: str = ""
    model_type: str = field(default="", repr=False)
    input_size: tuple[int, ...] | None = None
    total_mult_adds: int | None = None

    @property
    def all_checked(self) -> bool:
        """True when every row's count comes from an analytic rule that matches ``numel``."""
        return all(row.status == "checked" for row in self.rows)

    def _title(self) -> str:
        kind = (
            f" ({self.model_type})"
            if self.model_type and self.model_type != self.model_name
            else ""
        )
        shape = "" if self.input_size is None else f", input {_shape_text(self.input_size)}"
        return f"Parameters of {self.model_name}{kind}{shape}"

    def _table(self) -> Table:
        header = ["Layer", "Type", "Formula", "Analytic", "numel", "Trainable", "Check"]
        right = {3, 4, 5}  # numbers align right
        if self.input_size is not None:
            header[6:6] = ["Output shape", "Mult-adds"]
            right.add(7)
        return Table(
            title=self._title(),
            header=header,
            rows=[self._cells(row) for row in self.rows],
            right=frozenset(right),
            code=frozenset({0, 2}),  # Markdown shows the layer name and the formula as code
            totals=self._totals(),
            symbols=self.symbols,
            notes=self.notes,
            empty="(no parameters)",
            framed=True,  # a sheet of its own: rules, the title as a heading, listed notes
        )

    def _cells(self, row: ParameterRow) -> list[str]:
        cells = [
            row.name or "(model)",
            row.layer_type,
            row.formula_text,
            "-" if row.analytic is None else f"{row.analytic:,}",
            f"{row.numel:,}",
            f"{row.trainable:,}",
            row.check,
        ]
        if self.input_size is not None:
            cells[6:6] = [
                "-" if row.output_shape is None else _shape_text(row.output_shape),
                "-" if row.mult_adds is None else f"{row.mult_adds:,}",
            ]
        return cells

    def _totals(self) -> list[tuple[str, str]]:
        totals = [
            ("Total parameters", f"{self.total:,}"),
            ("Trainable", f"{self.trainable:,}"),
            ("Non-trainable", f"{self.non_trainable:,}"),
        ]
        if self.total_mult_adds is not None:
            totals.append(("Total mult-adds", f"{self.total_mult_adds:,}"))
        return totals

    def __str__(self) -> str:
        return to_text(self._table()) + "\n"  # as it always has (and the golden files)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's plain-text display: the text of ``str(report)``, less its final newline."""
        printer.text(str(self).rstrip("\n"))

    def to_markdown(self) -> str:
        """Return the table as GitHub-flavoured Markdown, with totals, symbols and notes."""
        return to_markdown(self._table()) + "\n"  # as it always has

    def _repr_html_(self) -> str:
        """The table as HTML, formula column included (how a notebook shows the report)."""
        return to_html(self._table())

    def to_dataframe(self) -> Any:
        """The per-layer table as a :class:`pandas.DataFrame`, one row per :attr:`rows` entry.

        Needs pandas, the optional extra ``fmclassify[pandas]``. Columns: ``layer`` (the
        qualified name, ``""`` for the model itself), ``type``, ``formula`` (the formula line;
        None without a rule), ``analytic`` (``Int64``: the rule's count, ``<NA>`` without
        one), ``numel``, ``counted``, ``trainable`` (int64 element counts, as
        :class:`ParameterRow`), ``requires_grad`` and ``status``; with ``input_size``, also
        ``output_shape`` (a tuple, None if the layer was not called) and ``mult_adds``
        (``Int64``). The totals are :attr:`total`, :attr:`trainable` and
        :attr:`non_trainable`; ``frame["counted"].sum() == report.total``.

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        ImportError
            If pandas is not installed; the message says ``pip install "fmclassify[pandas]"``.
        """
        columns: dict[str, str | None] = {
            "layer": None, "type": None, "formula": None, "analytic": "Int64", "numel": "int64",
            "counted": "int64", "trainable": "int64", "requires_grad": None, "status": None}
        if self.input_size is not None:
            columns.update(output_shape=None, mult_adds="Int64")
        rows = [{**row.to_dict(), "layer": row.name, "output_shape": row.output_shape,
                 "mult_adds": row.mult_adds} for row in self.rows]
        return frame(rows, columns, what="ParameterReport.to_dataframe")

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready plain data.

        With ``input_size``, it also has ``"input_size"`` and ``"total_mult_adds"``, and each
        row ``"output_shape"`` and ``"mult_adds"``; without, the keys are those of a static count.
        """
        rows = [row.to_dict() for row in self.rows]
        extra: dict[str, Any] = {}
        if self.input_size is not None:
            for data, row in zip(rows, self.rows, strict=True):
                shape = row.output_shape
                data.update(output_shape=None if shape is None else list(shape),
                            mult_adds=row.mult_adds)  # fmt: skip
            extra = {"input_size": list(self.input_size), "total_mult_adds": self.total_mult_adds}
        return {
            "model": self.model_name,
            "model_type": self.model_type,
            "total": self.total,
            "trainable": self.trainable,
            "non_trainable": self.non_trainable,
            "all_checked": self.all_checked,
            "rows": rows,
            "symbols": list(self.symbols),
            "notes": list(self.notes),
            **extra,
        }


def _shape_text(shape: Sequence[int]) -> str:
    """``(1, 32, 28, 28)``; a one-dimensional shape without the trailing comma: ``(10)``."""
    return "(" + ", ".join(str(d) for d in shape) + ")"


def count_parameters(
    model: nn.Module,
    *,
    strict: bool = True,
    name: str | None = None,
    input_size: Sequence[int] | None = None,
) -> ParameterReport:
    """Count a model's parameters per layer, each with its analytic formula checked by numel.

    Parameters
    ----------
    model : torch.nn.Module
        Any model; counted statically from its module tree, no forward pass.
    strict : bool, default True
        Raise when a rule's count differs from what PyTorch allocated; with False, mark the
        row as ``"mismatch"`` and add a note instead.
    name : str, optional
        The name shown in the title; defaults to the registered name
        (``model.fmclassify_name``) or the class name.
    input_size : sequence of int, optional
        An input shape, batch first (``(1, 1, 28, 28)``: one Fashion-MNIST image). With it,
        one forward pass on zeros (``torch.no_grad()``, eval mode, every module's training flag
        restored) adds each row's output shape and multiply-adds and their total (see the
        module documentation). Without it (the default) there is no forward pass.

    Returns
    -------
    ParameterReport
        Rows in registration order and the totals; ``str(report)`` is the table.

    Raises
    ------
    TypeError
        If ``model`` is not an ``nn.Module``.
    ParameterCountError
        If a lazy module is not initialized yet, if a rule fails, (with ``strict``) if a
        rule disagrees with ``numel``, or if the forward pass on ``input_size`` fails.
    ConfigError
        If ``input_size`` is not a sequence of positive integers.

    Examples
    --------
    >>> import torch
    >>> report = count_parameters(torch.nn.Sequential(torch.nn.Conv2d(1, 32, 3)))
    >>> report.rows[0].formula_text
    '((m*n*d)+1)*k = ((3*3*1)+1)*32 = 320'
    >>> report.total, report.trainable
    (320, 320)
    >>> shaped = count_parameters(torch.nn.Sequential(torch.nn.Conv2d(1, 32, 3)),
    ...                           input_size=(1, 1, 28, 28))
    >>> shaped.rows[0].output_shape, shaped.rows[0].mult_adds  # 26*26*32 * 3*3*1
    ((1, 32, 26, 26), 194688)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_parameters needs a torch.nn.Module, got {type(model).__name__}")
    shape = None if input_size is None else check_input_size(input_size)
    walk = ParameterWalk()
    for module_name, module in model.named_modules(remove_duplicate=False):
        walk.visit(module_name, module)
    rows = tuple(walk.rows)
    bad = [r for r in rows if r.status == "mismatch"]
    if strict and bad:
        details = "; ".join(
            f"layer {r.name or '(model)'!r} ({r.layer_type}): rule {r.formula_text} but numel "
            f"{r.numel:,}"
            for r in bad
        )
        raise ParameterCountError(
            f"analytic parameter rule disagrees with PyTorch: {details}. The rule is wrong for "
            f"this layer: replace it with register_parameter_rule({bad[0].layer_type}, "
            "override=True), or pass strict=False to mark the rows instead"
        )
    total = sum(r.counted for r in rows)
    trainable = sum(r.trainable for r in rows)
    total_mult_adds = None
    if shape is not None:
        profile = profile_forward(model, shape, (r.name for r in rows if r.status != "tensor"))
        rows = tuple(
            dataclasses.replace(
                r,
                output_shape=profile.shapes.get(r.name),
                mult_adds=profile.mult_adds.get(r.name) if r.name in profile.shapes else None,
            )
            for r in rows
        )
        total_mult_adds = profile.total
    return ParameterReport(
        rows=rows,
        total=total,
        trainable=trainable,
        non_trainable=total - trainable,
        notes=tuple(walk.notes(model, rows)),
        symbols=tuple(walk.symbols),
        model_name=name or str(getattr(model, "fmclassify_name", "") or type(model).__name__),
        model_type=type(model).__name__,
        input_size=shape,
        total_mult_adds=total_mult_adds,
    )


@dataclass(frozen=True)
class ParameterComparison:
    """Several models' parameter totals side by side, as :func:`compare_parameters` returns.

    Parameters
    ----------
    reports : dict of str to ParameterReport
        Model name -> its full per-layer report, in the order the models were given.
    input_size : tuple of int or None
        The input shape the multiply-adds were measured with; None (no Mult-adds column).

    Examples
    --------
    >>> table = compare_parameters(["base", "wider"])
    >>> table.reports["wider"].trainable
    1557330
    """

    reports: dict[str, ParameterReport]
    input_size: tuple[int, ...] | None = None

    def _table(self) -> Table:
        header = ["Model", "Trainable", "Total"]
        rows = [[name, f"{r.trainable:,}", f"{r.total:,}"] for name, r in self.reports.items()]
        if self.input_size is not None:
            header.append("Mult-adds")
            for row, report in zip(rows, self.reports.values(), strict=True):
                mult_adds = report.total_mult_adds
                row.append("-" if mult_adds is None else f"{mult_adds:,}")
        shape = "" if self.input_size is None else f", input {_shape_text(self.input_size)}"
        return Table(header, rows, right=frozenset(range(1, len(header))),
                     title=f"Parameters per model{shape}")

    def __str__(self) -> str:
        return to_text(self._table())

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        return to_html(self._table())

    def to_markdown(self) -> str:
        """Return the table as GitHub-flavoured Markdown."""
        return to_markdown(self._table())

    def to_dataframe(self) -> Any:
        """The table as a :class:`pandas.DataFrame`, one row per model, in the order given.

        Needs pandas, the optional extra ``fmclassify[pandas]``. Columns: ``model``, then
        ``trainable`` and ``total`` (int64 element counts, as :class:`ParameterReport`); with
        ``input_size``, also ``mult_adds`` (int64, the whole forward pass's).

        Raises
        ------
        ImportError
            If pandas is not installed; the message says ``pip install "fmclassify[pandas]"``.
        """
        columns: dict[str, str | None] = {"model": None, "trainable": "int64", "total": "int64"}
        if self.input_size is not None:
            columns["mult_adds"] = "int64"
        rows = [{"model": name, "trainable": r.trainable, "total": r.total,
                 "mult_adds": r.total_mult_adds} for name, r in self.reports.items()]
        return frame(rows, columns, what="ParameterComparison.to_dataframe")


def compare_parameters(
    models: Mapping[str, nn.Module] | Sequence[str],
    *,
    input_size: Sequence[int] | None = None,
) -> ParameterComparison:
    """Count several models' parameters in one call: a table of their totals.

    Each model is counted by :func:`count_parameters`; its full report stays at hand in
    :attr:`ParameterComparison.reports`.

    Parameters
    ----------
    models : mapping of str to torch.nn.Module, or sequence of str
        Name -> model; or registered model names (``["base", "deeper", "wider"]``), each built
        with :func:`fmclassify.build_model` and its defaults (Fashion-MNIST's shape).
    input_size : sequence of int, optional
        An input shape, batch first, as :func:`count_parameters` takes it: with it the table
        has each model's multiply-adds for one forward pass of that shape.

    Returns
    -------
    ParameterComparison
        ``str(table)`` is the table: model, trainable, total (and mult-adds).

    Raises
    ------
    TypeError
        If ``models`` is neither a mapping of names to modules nor a sequence of names.
    ConfigError
        If ``models`` is empty, repeats a name, or ``input_size`` is invalid.
    UnknownModelError
        If a name is not registered.
    ParameterCountError
        As :func:`count_parameters`.

    Examples
    --------
    >>> print(compare_parameters(["base", "deeper", "wider"]))
    Parameters per model
    Model   Trainable      Total
    base      669,706    669,706
    deeper  1,475,338  1,475,338
    wider   1,557,330  1,557,330
    >>> import torch
    >>> table = compare_parameters({"tiny": torch.nn.Linear(784, 10)}, input_size=(1, 784))
    >>> table.to_markdown().splitlines()[-1]
    '| tiny | 7,850 | 7,850 | 7,840 |'
    """
    shape = None if input_size is None else check_input_size(input_size)  # before any work
    if isinstance(models, Mapping):
        if not all(isinstance(k, str) and isinstance(m, nn.Module) for k, m in models.items()):
            raise TypeError(
                "compare_parameters needs str keys and torch.nn.Module values; got "
                + ", ".join(f"{k!r}: {type(m).__name__}" for k, m in models.items())
            )
        named = dict(models)
    elif (isinstance(models, Sequence) and not isinstance(models, str)
          and all(isinstance(name, str) for name in models)):
        if len(set(models)) != len(models):
            raise ConfigError(f"compare_parameters got a model name twice: {list(models)}")
        named = {name: build_model(name) for name in models}
    else:
        raise TypeError(
            "compare_parameters needs a mapping of names to torch.nn.Module, or a list of "
            f"registered model names such as ['base', 'deeper']; got {models!r}"
        )
    if not named:
        raise ConfigError("compare_parameters needs at least one model; got none")
    reports = {name: count_parameters(model, name=name, input_size=shape)
               for name, model in named.items()}
    return ParameterComparison(reports=reports, input_size=shape)
