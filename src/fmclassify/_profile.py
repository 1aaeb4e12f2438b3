"""One forward pass that measures each module's output shape and multiply-adds.

Private to :func:`fmclassify.count_parameters` (``input_size=...``). Multiply-adds come from
:class:`torch.utils.flop_counter.FlopCounterMode`, which counts the FLOPs of matrix products,
convolutions and attention as 2 per multiply-add (``2*M*N*K`` for an ``(M, K) @ (K, N)``
product), so multiply-adds = FLOPs / 2: ``n*m`` per sample for ``Linear(n, m)``,
``k*H'*W'*(d/g)*m*n`` for a ``Conv2d`` with ``k`` filters of ``m x n`` over ``d`` channels in
``g`` groups and an ``H' x W'`` output. Element-wise work (bias additions, batch norm,
activations, pooling) is not counted, the convention of torchinfo's and fvcore's counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fmclassify.exceptions import ConfigError, ParameterCountError

__all__ = ["ForwardProfile", "check_input_size", "profile_forward"]


@dataclass(frozen=True)
class ForwardProfile:
    """What one forward pass measured.

    Parameters
    ----------
    shapes : dict of str to tuple of int
        Module name -> the shape of its first output tensor (first call); absent when the
        module was not called.
    mult_adds : dict of str to int
        Module name -> multiply-adds of its calls, less those of the listed modules inside it.
    total : int
        Multiply-adds of the whole pass.
    """

    shapes: dict[str, tuple[int, ...]]
    mult_adds: dict[str, int]
    total: int


def check_input_size(input_size: object) -> tuple[int, ...]:
    """``input_size`` as a tuple of positive ints, or ConfigError naming the value."""
    dims = (
        tuple(input_size)
        if isinstance(input_size, Sequence) and not isinstance(input_size, str)
        else ()
    )
    if not dims or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims):
        raise ConfigError(
            "input_size must be a non-empty sequence of integers >= 1, batch first, e.g. "
            f"(1, 1, 28, 28) for one Fashion-MNIST image; got {input_size!r}"
        )
    return dims


def profile_forward(
    model: nn.Module, input_size: tuple[int, ...], names: Iterable[str]
) -> ForwardProfile:
    """Run ``model`` once on zeros of ``input_size`` and measure the modules called ``names``.

    The pass runs under ``torch.no_grad()`` in eval mode; every module's ``training`` flag is
    restored afterwards, and every hook removed, however the pass ends.

    Raises
    ------
    ParameterCountError
        If the forward pass fails (typically: ``input_size`` is not what the model takes).
    """
    first_name: dict[int, str] = {}  # a module registered twice is measured once, by its first
    for module_name, module in model.named_modules(remove_duplicate=False):
        first_name.setdefault(id(module), module_name)
    modules = dict(model.named_modules(remove_duplicate=False))
    wanted = [n for n in dict.fromkeys(names) if n in modules and first_name[id(modules[n])] == n]
    flags = [(m, m.training) for m in model.modules()]
    first = next((p for p in model.parameters() if p.is_floating_point()), None)
    x = torch.zeros(input_size, device=None if first is None else first.device,
                    dtype=None if first is None else first.dtype)  # fmt: skip
    counter = FlopCounterMode(display=False)
    inclusive: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    handles: list[Any] = []
    try:
        for name in wanted:
            handles += _watch(modules[name], name, counter, inclusive, shapes)
        model.eval()
        with torch.no_grad(), counter:
            model(x)
    except Exception as exc:
        raise ParameterCountError(
            f"the forward pass of {type(model).__name__} on zeros of input_size "
            f"{input_size} failed: {type(exc).__name__}: {exc}; pass the input shape the model "
            "takes, batch first, e.g. input_size=(1, 1, 28, 28) for Fashion-MNIST"
        ) from exc
    finally:
        for handle in handles:
            handle.remove()
        for module, training in flags:
            module.training = training
    mult_adds = {n: _exclusive(n, inclusive) // 2 for n in wanted}
    return ForwardProfile(shapes, mult_adds, counter.get_total_flops() // 2)


def _watch(
    module: nn.Module,
    name: str,
    counter: FlopCounterMode,
    inclusive: dict[str, int],
    shapes: dict[str, tuple[int, ...]],
) -> list[Any]:
    """Hooks that add the FLOPs counted during each call of ``module`` and keep its shape."""
    start: list[int] = []

    def before(mod: nn.Module, inputs: Any) -> None:
        start.append(counter.get_total_flops())

    def after(mod: nn.Module, inputs: Any, output: Any) -> None:
        inclusive[name] = inclusive.get(name, 0) + counter.get_total_flops() - start.pop()
        tensor = _first_tensor(output)
        if tensor is not None and name not in shapes:
            shapes[name] = tuple(tensor.shape)

    return [module.register_forward_pre_hook(before), module.register_forward_hook(after)]


def _exclusive(name: str, inclusive: dict[str, int]) -> int:
    """FLOPs of ``name`` less those of the outermost measured modules inside it."""
    prefix = f"{name}." if name else ""
    inner = [n for n in inclusive if n != name and n.startswith(prefix)]
    outermost = [n for n in inner if not any(n.startswith(f"{o}.") for o in inner if o != n)]
    return inclusive.get(name, 0) - sum(inclusive[n] for n in outermost)


def _first_tensor(output: Any) -> torch.Tensor | None:
    """The first tensor in a module's output (LSTM and attention return tuples)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            found = _first_tensor(item)
            if found is not None:
                return found
    if isinstance(output, dict):
        return _first_tensor(list(output.values()))
    return None
