"""``python -m fmclassify``: the command line (also what ``torchrun -m fmclassify`` starts)."""

from __future__ import annotations

from fmclassify.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
