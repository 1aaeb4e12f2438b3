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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn
from torch.nn.parameter import UninitializedParameter

from fmclassify._frames import frame
from fmclassify._profile import check_input_size, profile_forward
from fmclassify._rules import Formula, find_parameter_rule, register_parameter_rule, shape_formula
from fmclassify._tables import Table, to_html, to_markdown, to_text
from fmclassify.exceptions import ParameterCountError

__all__ = [
    "Formula",
    "ParameterReport",
    "ParameterRow",
    "count_parameters",
    "register_parameter_rule",
]

RowStatus = Literal["checked", "mismatch", "no rule", "tensor"]
Trainability = Literal["yes", "no", "partial"]

_RNN_NOTE = (
    "LSTM/GRU/RNN: PyTorch keeps two bias vectors per gate (b_ih and b_hh), so its count has "
    "2*G*h biases per layer and direction where textbooks and Keras's LSTM and SimpleRNN have "
    "G*h (Keras's GRU with reset_after=True, its default, has two like PyTorch)."
)
_BN_NOTE = (
    "Batch norm: PyTorch counts gamma and beta (2*C) as parameters; its running mean and "
    "variance are buffers. Keras's summary lists those as non-trainable parameters (4*C in "
    "all), so Keras shows 2*C more per batch-norm layer."
)


@dataclass(frozen=True)
class ParameterRow:
    """One module that owns parameters (or one parameter held directly), as a table row.

    Parameters
    ----------
    name : str
        Qualified name (``"layer1.0"``, ``"encoder.pos_embedding"``); ``""`` for the model
        itself.
    layer_type : str
        The module's class name, or ``"Parameter"`` for a directly held tensor.
    formula : Formula or None
        The analytic formula; ``None`` when no rule covers the layer.
    numel : int
        Elements PyTorch allocated for the parameters this row covers (tied ones included).
    counted : int
        Elements this row adds to the report's ``total`` (tied parameters add nothing again).
    trainable : int
        Elements this row adds to the report's ``trainable``.
    requires_grad : {"yes", "no", "partial"}
        Whether the row's parameters train: all, none, or some.
    status : {"checked", "mismatch", "no rule", "tensor"}
        How the count was established; see the module documentation.
    params : tuple of str
        Qualified names of the parameters the row covers.
    shared : tuple of (str, str)
        ``(parameter, first owner)`` for each parameter tied to one counted earlier.
    frozen : tuple of str
        Qualified names of the row's parameters that do not require gradients.
    output_shape : tuple of int or None
        The shape of the layer's output in the forward pass of ``count_parameters(...,
        input_size=...)`` (batch first); None without one, or if the layer was not called.
    mult_adds : int or None
        The layer's multiply-adds in that pass (see the module documentation); None likewise.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> row = fmc.count_parameters(fmc.build_model("deeper")).rows[0]
    >>> row.name, row.layer_type, row.numel
    ('layer1.0', 'Conv2d', 320)
    """

    name: str
    layer_type: str
    formula: Formula | None
    numel: int
    counted: int
    trainable: int
    requires_grad: Trainability
    status: RowStatus
    params: tuple[str, ...] = ()
    shared: tuple[tuple[str, str], ...] = ()
    frozen: tuple[str, ...] = ()
    output_shape: tuple[int, ...] | None = None
    mult_adds: int | None = None

    @property
    def analytic(self) -> int | None:
        """The count the formula gives, or ``None`` without one."""
        return None if self.formula is None else self.formula.count

    @property
    def formula_text(self) -> str:
        """The formula line, e.g. ``((m*n*d)+1)*k = ((3*3*1)+1)*32 = 320``."""
        return "(no analytic rule)" if self.formula is None else self.formula.text

    @property
    def check(self) -> str:
        """A short verdict for the table: ok, mismatch, no rule, tied and frozen parts."""
        words = {"checked": "ok", "tensor": "tensor (shape)", "no rule": "no rule"}
        parts = [words.get(self.status, f"MISMATCH: rule {self.analytic} != numel {self.numel}")]
        parts += [f"{p.rsplit('.', 1)[-1]} shared with {first}" for p, first in self.shared]
        if self.requires_grad == "no":
            parts.append("frozen")
        elif self.requires_grad == "partial":
            parts.append(
                "partial: " + ", ".join(p.rsplit(".", 1)[-1] for p in self.frozen) + " frozen"
            )
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Return the row as JSON-ready plain data."""
        return {
            "name": self.name,
            "type": self.layer_type,
            "formula": self.formula_text if self.formula is not None else None,
            "symbolic": None if self.formula is None else self.formula.symbolic,
            "substituted": None if self.formula is None else self.formula.substituted,
            "analytic": self.analytic,
            "numel": self.numel,
            "counted": self.counted,
            "trainable": self.trainable,
            "requires_grad": self.requires_grad,
            "status": self.status,
            "params": list(self.params),
            "shared": {p: first for p, first in self.shared},
        }


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


class _Walk:
    """The state of one count: parameters seen so far (for ties), rows, rules used."""

    def __init__(self) -> None:
        self.first_owner: dict[int, str] = {}
        self.rows: list[ParameterRow] = []
        self.symbols: list[str] = []
        self.reparametrized: dict[str, str] = {}  # layer name -> why its rule could not apply

    def add_row(
        self,
        name: str,
        layer_type: str,
        formula: Formula | None,
        status: RowStatus,
        params: list[tuple[str, nn.Parameter]],
    ) -> None:
        counted = trainable = 0
        shared: list[tuple[str, str]] = []
        for qualified, p in params:
            first = self.first_owner.setdefault(id(p), qualified)
            if first != qualified:
                shared.append((qualified, first))
                continue
            counted += p.numel()
            trainable += p.numel() if p.requires_grad else 0
        frozen = tuple(q for q, p in params if not p.requires_grad)
        grad: Trainability = (
            "no" if len(frozen) == len(params) else ("partial" if frozen else "yes")
        )
        numel = sum(p.numel() for _, p in params)
        if formula is not None and status == "checked" and formula.count != numel:
            status = "mismatch"
        self.rows.append(
            ParameterRow(
                name=name,
                layer_type=layer_type,
                formula=formula,
                numel=numel,
                counted=counted,
                trainable=trainable,
                requires_grad=grad,
                status=status,
                params=tuple(q for q, _ in params),
                shared=tuple(shared),
                frozen=frozen,
            )
        )

    def add_tensors(self, prefix: str, params: dict[str, nn.Parameter]) -> None:
        for local, p in params.items():
            q = prefix + local
            self.add_row(q, "Parameter", shape_formula(tuple(p.shape)), "tensor", [(q, p)])

    def visit(self, name: str, module: nn.Module) -> None:
        direct = dict(module.named_parameters(recurse=False, remove_duplicate=False))
        if not direct:
            return
        _require_initialized(name, module, direct)
        prefix, kind = (f"{name}." if name else ""), type(module).__name__
        rule = find_parameter_rule(type(module))
        formula = None if rule is None else _apply(rule, name, module)
        if formula is not None and not set(formula.params or ()) <= direct.keys():
            # Reparametrized (weight_norm, spectral_norm): the tensors the rule counts are gone.
            absent = ", ".join(sorted(set(formula.params or ()) - direct.keys()))
            self.reparametrized[name] = (
                f"Layer {name or '(model)'!r} ({kind}) is reparametrized (e.g. by weight_norm): "
                f"it holds no parameter {absent}, so its rule does not apply and its tensors "
                "are counted from numel."
            )
            formula = None
        if formula is None:
            if any(True for _ in module.children()):  # a container: its own tensors are free
                self.add_tensors(prefix, direct)
            else:
                qualified = [(prefix + k, p) for k, p in direct.items()]
                self.add_row(name, kind, None, "no rule", qualified)
            return
        summary = _summary_line(rule)
        if summary and summary not in self.symbols:
            self.symbols.append(summary)
        covered = set(direct if formula.params is None else formula.params)
        owned = [(prefix + k, p) for k, p in direct.items() if k in covered]
        self.add_row(name, kind, formula, "checked", owned)
        # Tensors the rule does not know of, e.g. a subclass of Linear that adds its own.
        self.add_tensors(prefix, {k: p for k, p in direct.items() if k not in covered})


def _require_initialized(name: str, module: nn.Module, direct: dict[str, nn.Parameter]) -> None:
    for local, p in direct.items():
        if isinstance(p, UninitializedParameter):
            raise ParameterCountError(
                f"layer {name or '(model)'!r} ({type(module).__name__}) is a lazy module "
                f"whose parameter {local!r} is not initialized yet; run one forward pass "
                "with a sample batch first (e.g. model(torch.zeros(1, 1, 28, 28))), "
                "then count again"
            )


def _apply(rule: Any, name: str, module: nn.Module) -> Formula:
    kind = type(module).__name__
    try:
        formula = rule(module)
    except Exception as exc:  # a broken rule must say which rule and which layer
        raise ParameterCountError(
            f"the parameter rule {getattr(rule, '__qualname__', rule)!r} failed on layer "
            f"{name or '(model)'!r} ({kind}): {type(exc).__name__}: {exc}; fix it, or replace "
            f"it with register_parameter_rule({kind}, override=True)"
        ) from exc
    if not isinstance(formula, Formula):
        raise ParameterCountError(
            f"the parameter rule for {kind} returned {type(formula).__name__}, not a Formula"
        )
    return formula


def _summary_line(rule: Any) -> str:
    doc = getattr(rule, "__doc__", None) or ""
    return doc.strip().splitlines()[0].strip() if doc.strip() else ""


def _notes(model: nn.Module, rows: Iterable[ParameterRow], walk: _Walk) -> list[str]:
    rows = list(rows)
    notes: list[str] = list(walk.reparametrized.values())
    buffers = list(model.named_buffers())
    if buffers:
        kinds = sorted({n.rsplit(".", 1)[-1] for n, _ in buffers})
        values = sum(b.numel() for _, b in buffers)
        notes.append(
            f"Buffers are not parameters and are not counted: {len(buffers)} buffers, "
            f"{values:,} values ({', '.join(kinds)})."
        )
    modules = list(model.modules())
    empty = [
        type(m).__name__
        for m in modules
        if not any(True for _ in m.children()) and not any(True for _ in m.parameters())
    ]
    if empty:
        notes.append(
            f"Layers without parameters count 0 and have no row: {', '.join(dict.fromkeys(empty))}."
        )
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine for m in modules):
        notes.append(_BN_NOTE)
    if any(isinstance(m, nn.RNNBase) and m.bias for m in modules):
        notes.append(_RNN_NOTE)
    missing = [r for r in rows if r.status == "no rule" and r.name not in walk.reparametrized]
    if missing:
        types = sorted({r.layer_type for r in missing})
        notes.append(
            f"{len(missing)} layer(s) have no analytic rule and were counted from numel: "
            f"{', '.join(r.name or '(model)' for r in missing)}; add one with "
            f"@register_parameter_rule({types[0]})."
        )
    for r in rows:
        if r.status == "mismatch":
            notes.append(
                f"MISMATCH in layer {r.name or '(model)'!r} ({r.layer_type}): the rule gives "
                f"{r.analytic:,} ({r.formula_text}) but PyTorch allocated {r.numel:,}."
            )
    return notes


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
    walk = _Walk()
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
        notes=tuple(_notes(model, rows, walk)),
        symbols=tuple(walk.symbols),
        model_name=name or str(getattr(model, "fmclassify_name", "") or type(model).__name__),
        model_type=type(model).__name__,
        input_size=shape,
        total_mult_adds=total_mult_adds,
    )
