"""The walk over a module tree that a parameter count is, and the rows it makes.

Private to :func:`fmclassify.count_parameters`; :class:`ParameterRow` is re-exported by
:mod:`fmclassify.parameters`, which documents the row statuses. :class:`ParameterWalk` visits
each module once, without a forward pass: it applies the module's rule (from
:mod:`fmclassify._rules`), counts a tied parameter once (the later row says where it is shared
from), marks frozen ones, and gives a parameter no rule covers a row of its own. Its
:meth:`~ParameterWalk.notes` are the conventions and findings printed under the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn
from torch.nn.parameter import UninitializedParameter

from fmclassify._rules import Formula, find_parameter_rule, shape_formula
from fmclassify.exceptions import ParameterCountError

__all__ = ["ParameterRow", "ParameterWalk", "RowStatus", "Trainability"]

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
        How the count was established; see :mod:`fmclassify.parameters`.
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
        The layer's multiply-adds in that pass (see :mod:`fmclassify.parameters`); None
        likewise.

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



class ParameterWalk:
    """The state of one count: parameters seen so far (for ties), rows, rules used.

    Call :meth:`visit` on every ``(name, module)`` of ``model.named_modules(remove_duplicate=
    False)`` in order; :attr:`rows` and :attr:`symbols` are then the table and its legend.
    """

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
        """Add the row of ``params`` (qualified name, tensor); a tied tensor adds nothing."""
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
        """Give each of ``params``, held directly and covered by no rule, a row by its shape."""
        for local, p in params.items():
            q = prefix + local
            self.add_row(q, "Parameter", shape_formula(tuple(p.shape)), "tensor", [(q, p)])

    def visit(self, name: str, module: nn.Module) -> None:
        """Add the rows of the parameters ``module`` holds directly (its children add theirs)."""
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

    def notes(self, model: nn.Module, rows: Iterable[ParameterRow]) -> list[str]:
        """The notes under ``model``'s table of ``rows``: conventions, and what was not checked."""
        rows = list(rows)
        notes: list[str] = list(self.reparametrized.values())
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
            notes.append("Layers without parameters count 0 and have no row: "
                         f"{', '.join(dict.fromkeys(empty))}.")
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine for m in modules):
            notes.append(_BN_NOTE)
        if any(isinstance(m, nn.RNNBase) and m.bias for m in modules):
            notes.append(_RNN_NOTE)
        missing = [r for r in rows if r.status == "no rule" and r.name not in self.reparametrized]
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
