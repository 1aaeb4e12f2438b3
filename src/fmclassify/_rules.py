"""Analytic parameter rules: one short function per layer type, and the registry that holds them.

Each rule receives a module and returns a :class:`Formula` for the parameters the module holds
*directly* (its children get rows of their own). The first line of a rule's docstring states the
formula in the course's symbols; :func:`fmclassify.count_parameters` shows it as the table's
legend. The public names are re-exported by :mod:`fmclassify.parameters`.

Sources: the shapes are those the PyTorch modules allocate (``torch.nn`` documentation, the
"Variables" section of each layer); the conv, batch-norm and linear symbols are the course's
(Q1.5): conv ``((m*n*d)+1)*k``, batch norm ``2*C``, linear ``(n+1)*m``.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

__all__ = [
    "Formula",
    "ParameterRule",
    "find_parameter_rule",
    "register_parameter_rule",
    "shape_formula",
]

#: A rule: takes the module, returns the formula for its direct parameters.
ParameterRule = Callable[[Any], "Formula"]
R = TypeVar("R", bound=ParameterRule)

_RULES: dict[type[nn.Module], ParameterRule] = {}


@dataclass(frozen=True)
class Formula:
    """An analytic parameter count: the formula in symbols, with numbers, and its value.

    Parameters
    ----------
    symbolic : str
        The formula in the layer's symbols, e.g. ``"((m*n*d)+1)*k"``.
    substituted : str
        The same formula with the layer's own numbers, e.g. ``"((3*3*1)+1)*32"``.
    count : int
        Its value, e.g. 320.
    params : tuple of str, optional
        The names of the module's direct parameters the formula accounts for (``("weight",
        "bias")``). ``None``, the default, means all of them; any others get rows of their own.

    Examples
    --------
    >>> Formula.build("(({m}*{n}*{d})+1)*{k}", {"m": 3, "n": 3, "d": 1, "k": 32}).text
    '((m*n*d)+1)*k = ((3*3*1)+1)*32 = 320'
    """

    symbolic: str
    substituted: str
    count: int
    params: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 0:
            raise TypeError(f"Formula.count must be a non-negative int, got {self.count!r}")

    @property
    def text(self) -> str:
        """The formula as one line: symbols, then numbers, then the value (with separators)."""
        parts = [self.symbolic]
        if self.substituted != self.symbolic:
            parts.append(self.substituted)
        if parts[-1] not in (str(self.count), f"{self.count:,}"):
            parts.append(f"{self.count:,}")
        return " = ".join(parts)

    @classmethod
    def build(
        cls,
        template: str,
        values: Mapping[str, int | str],
        params: Iterable[str] | None = None,
    ) -> Formula:
        """Make a formula from a template whose ``{placeholders}`` are the symbols.

        Parameters
        ----------
        template : str
            Arithmetic (``+ - * /`` and parentheses) over integers and ``{symbol}`` fields.
        values : mapping of str to int or str
            Each symbol's value; a string value is an arithmetic expression (``"4*5"``).
        params : iterable of str, optional
            The direct parameters the formula accounts for; see :class:`Formula`.

        Returns
        -------
        Formula
            With ``count`` evaluated from the substituted text, so the text and the number
            cannot disagree.
        """
        numbers = {k: _operand(v) for k, v in values.items()}
        substituted = template.format(**numbers)
        return cls(
            symbolic=template.format(**{k: k for k in values}),
            substituted=substituted,
            count=_evaluate(substituted),
            params=None if params is None else tuple(params),
        )


def _operand(value: int | str) -> str:
    text = str(value)
    return f"({text})" if any(op in text for op in "+-*/") else text


def _evaluate(expression: str) -> int:
    """Evaluate integer arithmetic (``+ - * /``, exact division only) without ``eval``."""

    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.BinOp):
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            if isinstance(node.op, ast.Div) and right and left % right == 0:
                return left // right
        raise ValueError(f"formula {expression!r} is not exact integer arithmetic")

    return walk(ast.parse(expression, mode="eval"))


def register_parameter_rule(
    module_type: type[nn.Module], *, override: bool = False
) -> Callable[[R], R]:
    """Register an analytic parameter rule for a module type; use as a decorator.

    The rule applies to ``module_type`` and its subclasses (the lookup walks the MRO, so a
    more specific registration wins). It accounts only for the parameters the module holds
    directly; its docstring's first line is shown as the table's legend.

    Parameters
    ----------
    module_type : type
        A subclass of ``torch.nn.Module``.
    override : bool, default False
        Replace a rule already registered for exactly this type instead of raising.

    Returns
    -------
    callable
        A decorator that registers the rule and returns it unchanged.

    Raises
    ------
    TypeError
        If ``module_type`` is not an ``nn.Module`` subclass, or the rule is not callable.
    ValueError
        If a rule is already registered for ``module_type`` and ``override`` is false.

    Examples
    --------
    >>> import torch
    >>> class Scale(torch.nn.Module):
    ...     def __init__(self, channels):
    ...         super().__init__()
    ...         self.channels = channels
    ...         self.gamma = torch.nn.Parameter(torch.ones(channels))
    >>> @register_parameter_rule(Scale)
    ... def scale_rule(module):
    ...     '''Scale: C, one factor per channel.'''
    ...     return Formula.build("{C}", {"C": module.channels})
    >>> scale_rule(Scale(8)).text
    'C = 8'
    """
    if not (isinstance(module_type, type) and issubclass(module_type, nn.Module)):
        raise TypeError(
            f"register_parameter_rule needs a torch.nn.Module subclass, got {module_type!r}"
        )

    def decorator(rule: R) -> R:
        if not callable(rule):
            raise TypeError(f"a parameter rule must be callable, got {rule!r}")
        if module_type in _RULES and not override:
            existing = getattr(_RULES[module_type], "__qualname__", repr(_RULES[module_type]))
            raise ValueError(
                f"a parameter rule for {module_type.__qualname__} is already registered "
                f"({existing}); pass override=True to replace it"
            )
        _RULES[module_type] = rule
        return rule

    return decorator


def find_parameter_rule(module_type: type[nn.Module]) -> ParameterRule | None:
    """Return the rule for ``module_type`` or its nearest registered base class, else None."""
    for klass in module_type.__mro__:
        rule = _RULES.get(klass)
        if rule is not None:
            return rule
    return None


# ----------------------------------------------------------------------------- built-in rules


@register_parameter_rule(nn.Linear)
def _linear(module: nn.Linear) -> Formula:
    """Linear: (n+1)*m for n inputs and m outputs (n*m without bias)."""
    values = {"n": module.in_features, "m": module.out_features}
    if module.bias is None:
        return Formula.build("{n}*{m}", values, ("weight",))
    return Formula.build("({n}+1)*{m}", values, ("weight", "bias"))


@register_parameter_rule(nn.Bilinear)
def _bilinear(module: nn.Bilinear) -> Formula:
    """Bilinear: (n1*n2+1)*m for inputs of n1 and n2 features and m outputs."""
    values = {"n1": module.in1_features, "n2": module.in2_features, "m": module.out_features}
    if module.bias is None:
        return Formula.build("{n1}*{n2}*{m}", values, ("weight",))
    return Formula.build("({n1}*{n2}+1)*{m}", values, ("weight", "bias"))


_KERNEL_SYMBOLS = {1: ("m",), 2: ("m", "n"), 3: ("t", "m", "n")}


@register_parameter_rule(nn.Conv1d)
@register_parameter_rule(nn.Conv2d)
@register_parameter_rule(nn.Conv3d)
@register_parameter_rule(nn.ConvTranspose1d)
@register_parameter_rule(nn.ConvTranspose2d)
@register_parameter_rule(nn.ConvTranspose3d)
def _conv(module: nn.modules.conv._ConvNd) -> Formula:
    """Conv: ((m*n*d)+1)*k for an m x n kernel, d input channels, k filters; d/g with g groups.

    A 1-D kernel has m alone and a 3-D kernel t*m*n. A transposed convolution allocates its
    weight as (d, k/g, m, n): the same count.
    """
    symbols = _KERNEL_SYMBOLS[len(module.kernel_size)]
    values: dict[str, int | str] = dict(zip(symbols, module.kernel_size, strict=True))
    values.update(d=module.in_channels, k=module.out_channels)
    inner = "*".join("{" + s + "}" for s in symbols) + "*{d}"
    if module.groups > 1:
        values["g"] = module.groups
        inner = inner[: -len("{d}")] + "({d}/{g})"
    if module.bias is None:
        return Formula.build("(" + inner + ")*{k}", values, ("weight",))
    return Formula.build("((" + inner + ")+1)*{k}", values, ("weight", "bias"))


@register_parameter_rule(nn.BatchNorm1d)
@register_parameter_rule(nn.BatchNorm2d)
@register_parameter_rule(nn.BatchNorm3d)
@register_parameter_rule(nn.SyncBatchNorm)
@register_parameter_rule(nn.InstanceNorm1d)
@register_parameter_rule(nn.InstanceNorm2d)
@register_parameter_rule(nn.InstanceNorm3d)
def _batch_norm(module: nn.modules.batchnorm._NormBase) -> Formula:
    """BatchNorm/InstanceNorm: 2*C, a scale gamma and a shift beta for each of C channels."""
    return Formula.build("2*{C}", {"C": module.num_features}, ("weight", "bias"))


@register_parameter_rule(nn.GroupNorm)
def _group_norm(module: nn.GroupNorm) -> Formula:
    """GroupNorm: 2*C, a scale and a shift for each of C channels (whatever the groups)."""
    return Formula.build("2*{C}", {"C": module.num_channels}, ("weight", "bias"))


def _normalized_size(shape: tuple[int, ...]) -> int | str:
    return shape[0] if len(shape) == 1 else "*".join(map(str, shape))


@register_parameter_rule(nn.LayerNorm)
def _layer_norm(module: nn.LayerNorm) -> Formula:
    """LayerNorm: 2*P, a scale and a shift per normalized element, P = prod(normalized_shape)."""
    values = {"P": _normalized_size(tuple(module.normalized_shape))}
    if module.bias is None:
        return Formula.build("{P}", values, ("weight",))
    return Formula.build("2*{P}", values, ("weight", "bias"))


if hasattr(nn, "RMSNorm"):  # torch >= 2.4

    @register_parameter_rule(nn.RMSNorm)
    def _rms_norm(module: nn.RMSNorm) -> Formula:
        """RMSNorm: P, one scale per normalized element, P = prod(normalized_shape)."""
        return Formula.build(
            "{P}", {"P": _normalized_size(tuple(module.normalized_shape))}, ("weight",)
        )


@register_parameter_rule(nn.Embedding)
@register_parameter_rule(nn.EmbeddingBag)
def _embedding(module: nn.Embedding | nn.EmbeddingBag) -> Formula:
    """Embedding: V*D, one D-dimensional vector for each of V tokens."""
    values = {"V": module.num_embeddings, "D": module.embedding_dim}
    return Formula.build("{V}*{D}", values, ("weight",))


@register_parameter_rule(nn.PReLU)
def _prelu(module: nn.PReLU) -> Formula:
    """PReLU: a, one negative slope per channel (a = 1 when shared)."""
    return Formula.build("{a}", {"a": module.num_parameters}, ("weight",))


_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}


@register_parameter_rule(nn.RNN)
@register_parameter_rule(nn.LSTM)
@register_parameter_rule(nn.GRU)
def _rnn(module: nn.RNNBase) -> Formula:
    """RNN/GRU/LSTM: G*h*(n+h+2) per layer and direction; G gates, n inputs, h hidden units.

    G is 1 (RNN), 3 (GRU) or 4 (LSTM); the 2 is PyTorch's two bias vectors (b_ih, b_hh).
    With D directions, layers after the first take D*h inputs; with a projection of size p,
    the recurrent input is p and each layer adds p*h.
    """
    values: dict[str, int | str] = {"G": _GATES[module.mode], "h": module.hidden_size}
    values.update(n=module.input_size, L=module.num_layers)
    r = "{p}" if module.proj_size > 0 else "{h}"
    bias = "+2" if module.bias else ""

    def layer(inputs: str, factor: str) -> str:  # one layer, all directions
        body = "{G}*{h}*(" + inputs + "+" + r + bias + ")"
        if module.proj_size > 0:
            body = "(" + body + "+{p}*{h})" if factor else body + "+{p}*{h}"
        return factor + body

    directions = ""
    if module.bidirectional:
        values["D"] = 2
        directions = "{D}*"
    if module.proj_size > 0:
        values["p"] = module.proj_size
    template = layer("{n}", directions)
    if module.num_layers > 1:
        template += " + " + layer(directions + r, "({L}-1)*" + directions)
    return Formula.build(template, values)


@register_parameter_rule(nn.MultiheadAttention)
def _multihead_attention(module: nn.MultiheadAttention) -> Formula:
    """MultiheadAttention: 3*(E+1)*E for the q, k, v projections of embed_dim E.

    With other key/value sizes: E*(E+kdim+vdim)+3*E; add_bias_kv adds 2*E. The output
    projection out_proj is a Linear child with its own row.
    """
    values: dict[str, int | str] = {"E": module.embed_dim}
    if module._qkv_same_embed_dim:
        template = "3*{E}*{E}"
    else:
        values.update(kdim=module.kdim, vdim=module.vdim)
        template = "{E}*({E}+{kdim}+{vdim})"
    if module.in_proj_bias is not None:
        template = "3*({E}+1)*{E}" if module._qkv_same_embed_dim else template + "+3*{E}"
    if module.bias_k is not None:
        template += "+2*{E}"
    return Formula.build(template, values)


def shape_formula(shape: tuple[int, ...]) -> Formula:
    """Count a free-standing tensor: the product of its shape (1 for a scalar)."""
    text = "*".join(str(s) for s in shape) or "1"
    return Formula(symbolic=text, substituted=text, count=math.prod(shape))
