"""Run the Examples sections of every module's docstrings."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import fmclassify

MODULES = sorted(m.name for m in pkgutil.iter_modules(fmclassify.__path__, "fmclassify."))


@pytest.mark.parametrize("name", ["fmclassify", *MODULES])
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # Examples may register demo models; keep them out of the other tests' registry.
    from fmclassify import registry

    monkeypatch.setattr(registry, "_models", dict(registry._models))
    monkeypatch.setattr(registry, "_aliases", dict(registry._aliases))
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, verbose=False)
    assert result.failed == 0
