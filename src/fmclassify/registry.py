"""The model registry: names to builders, with plugins from other packages.

Register a builder (a function or an ``nn.Module`` class) under a name with
:func:`register_model`, build it with :func:`build_model`, list names with :func:`list_models`.
Third-party packages add models through the entry-point group ``fmclassify.models``: each entry
point names a module (or a callable) that registers its models when imported. Plugins load
lazily, on the first lookup; one that fails to import is reported with a warning naming it, and
the rest of the registry keeps working. Set ``FMCLASSIFY_NO_PLUGINS=1`` to skip them.

Examples
--------
A plugin package declares, in its ``pyproject.toml``::

    [project.entry-points."fmclassify.models"]
    tiny = "my_course_models"

and ``my_course_models`` does::

    import fmclassify as fmc

    @fmc.register_model("tiny", description="784-32-10 MLP")
    def tiny(*, num_classes=10, in_channels=1, image_size=28):
        return fmc.MLP(in_features=in_channels * image_size**2, hidden=(32,),
                       num_classes=num_classes)
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import os
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, TypeVar

import torch

from fmclassify._checks import check_int
from fmclassify.exceptions import UnknownModelError

__all__ = [
    "ENTRY_POINT_GROUP",
    "ModelSpec",
    "build_model",
    "get_model_spec",
    "list_models",
    "register_model",
]

#: The entry-point group plugins use to register models.
ENTRY_POINT_GROUP = "fmclassify.models"

_BUILTIN = "built-in"

Builder = Callable[..., torch.nn.Module]
B = TypeVar("B", bound=Callable[..., Any])


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    Parameters
    ----------
    name : str
        The registered name.
    builder : callable
        The function or ``nn.Module`` class that builds it.
    description : str
        One line shown by ``fmclassify models``.
    aliases : tuple of str
        Other names that resolve to this model.
    source : str
        ``"built-in"``, or the distribution name of the plugin that registered it.

    Examples
    --------
    >>> spec = get_model_spec("deeper")
    >>> spec.name, spec.aliases, spec.source
    ('deeper', ('cnn',), 'built-in')
    """

    name: str
    builder: Builder
    description: str = ""
    aliases: tuple[str, ...] = ()
    source: str = _BUILTIN


_models: dict[str, ModelSpec] = {}
_aliases: dict[str, str] = {}
_lock = threading.RLock()
_plugins_loaded = False
_current_source = _BUILTIN


def register_model(
    name: str | None = None,
    *,
    aliases: Iterable[str] = (),
    description: str = "",
    override: bool = False,
) -> Callable[[B], B]:
    """Register a model builder under ``name``; use as a decorator.

    Parameters
    ----------
    name : str, optional
        The name users type; defaults to the builder's ``__name__``.
    aliases : iterable of str, optional
        Other names for the same model.
    description : str, optional
        One line for listings; defaults to the first line of the builder's docstring.
    override : bool, default False
        Replace an existing registration instead of raising.

    Returns
    -------
    callable
        A decorator that registers the builder and returns it unchanged.

    Raises
    ------
    ValueError
        If the name or an alias is already registered and ``override`` is false.

    Examples
    --------
    >>> import torch
    >>> @register_model("two-layer-demo", description="tiny demo", override=True)
    ... def two_layer(*, num_classes=10, in_channels=1, image_size=28):
    ...     return torch.nn.Sequential(torch.nn.Flatten(),
    ...                                torch.nn.Linear(in_channels * image_size**2, num_classes))
    >>> build_model("two-layer-demo").__class__.__name__
    'Sequential'
    """
    alias_tuple = tuple(aliases)

    def decorator(builder: B) -> B:
        if not callable(builder):
            raise TypeError(f"register_model needs a function or class, got {builder!r}")
        key = name or builder.__name__
        doc = inspect.getdoc(builder) or ""
        spec = ModelSpec(
            name=key,
            builder=builder,
            description=description or (doc.splitlines()[0] if doc else ""),
            aliases=alias_tuple,
            source=_current_source,
        )
        with _lock:
            for label in (key, *alias_tuple):
                taken = label in _models or label in _aliases
                if taken and not override:
                    owner = _aliases.get(label, label)
                    raise ValueError(
                        f"model name {label!r} is already registered (by {_models[owner].source} "
                        f"model {owner!r}); pick another name or pass override=True"
                    )
            if override:
                _unregister(key)
            _models[key] = spec
            for alias in alias_tuple:
                _aliases[alias] = key
        return builder

    return decorator


def _unregister(name: str) -> None:
    old = _models.pop(name, None)
    if old is not None:
        for alias in old.aliases:
            _aliases.pop(alias, None)
    _aliases.pop(name, None)


def _load_plugins() -> None:
    """Import every ``fmclassify.models`` entry point once; warn for each that fails."""
    global _plugins_loaded, _current_source
    with _lock:
        if _plugins_loaded:
            return
        _plugins_loaded = True
        if os.environ.get("FMCLASSIFY_NO_PLUGINS", "") not in ("", "0"):
            return
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else ep.value
            _current_source = dist
            try:
                loaded = ep.load()
                if callable(loaded) and not isinstance(loaded, type):
                    loaded()  # a plugin may expose a register() function instead of a module
            except Exception as exc:
                warnings.warn(
                    f"fmclassify plugin {ep.name!r} from {dist!r} failed to load and was "
                    f"skipped: {type(exc).__name__}: {exc}",
                    RuntimeWarning,
                    stacklevel=3,
                )
            finally:
                _current_source = _BUILTIN


def get_model_spec(name: str) -> ModelSpec:
    """Return the :class:`ModelSpec` registered under ``name`` or one of its aliases.

    Raises
    ------
    UnknownModelError
        If nothing is registered under ``name``; the message suggests the closest names.
    """
    _load_plugins()
    with _lock:
        key = _aliases.get(name, name)
        if key in _models:
            return _models[key]
        known = sorted(_models)
        aliases = dict(_aliases)
    # an alias is offered with the name it stands for, as `fmclassify models` lists it
    close = difflib.get_close_matches(name, [*known, *aliases], n=3, cutoff=0.5)
    offers = [repr(c) if c not in aliases else f"{c!r} (another name for {aliases[c]!r})"
              for c in close]
    hint = f"did you mean {', '.join(offers)}? " if offers else ""
    raise UnknownModelError(
        f"unknown model {name!r}; {hint}registered: {', '.join(known)} "
        "(see `fmclassify models`, or register your own with @fmclassify.register_model)"
    )


def list_models(pattern: str = "*") -> list[ModelSpec]:
    """The registered models whose name matches the shell-style ``pattern``, sorted by name.

    Parameters
    ----------
    pattern : str, default "*"
        An :mod:`fnmatch` pattern, e.g. ``"w*"``.

    Returns
    -------
    list of ModelSpec
        Each with its name, description, aliases and source (built in or the plugin's
        distribution).

    Examples
    --------
    >>> [spec.name for spec in list_models("w*")]
    ['wider']
    """
    _load_plugins()
    with _lock:
        return [_models[n] for n in sorted(_models) if fnmatch.fnmatchcase(n, pattern)]


def build_model(
    name: str,
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    image_size: int = 28,
    seed: int | None = None,
    **kwargs: Any,
) -> torch.nn.Module:
    """Build the model registered under ``name``.

    Parameters
    ----------
    name : str
        A registered name or alias (``"base"``, ``"deeper"``, ``"wider"``, a plugin's name).
    num_classes, in_channels, image_size : int
        The data's shape: 10, 1, 28 for Fashion-MNIST; 10, 3, 32 for CIFAR-10.
    seed : int, optional
        When given, the weights are initialised from this seed without disturbing the global
        random state, so the same seed always gives the same weights.
    **kwargs
        Passed to the builder.

    Returns
    -------
    torch.nn.Module
        The model, on the CPU, in training mode. Its registered name is kept in
        ``model.fmclassify_name``.

    Raises
    ------
    UnknownModelError
        If ``name`` is not registered.
    ConfigError
        If a shape argument is not a positive integer.

    Examples
    --------
    >>> model = build_model("base", seed=0)
    >>> sum(p.numel() for p in model.parameters())
    669706
    """
    spec = get_model_spec(name)
    check_int("num_classes", num_classes, minimum=2)
    check_int("in_channels", in_channels)
    check_int("image_size", image_size)
    shape = {"num_classes": num_classes, "in_channels": in_channels, "image_size": image_size}
    if seed is None:
        model = spec.builder(**shape, **kwargs)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = spec.builder(**shape, **kwargs)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"builder of model {spec.name!r} ({spec.source}) returned "
            f"{type(model).__name__}, not a torch.nn.Module"
        )
    model.fmclassify_name = spec.name  # type: ignore[assignment]
    return model
