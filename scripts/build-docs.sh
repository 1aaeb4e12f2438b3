#!/usr/bin/env bash
# Build the HTML documentation into docs/_build/html, with every warning an error.
# The gallery examples run at build time on the real Fashion-MNIST; FMCLASSIFY_DOCS_BUDGET
# picks their budget: quick (the default, minutes on a laptop CPU) or full (the course's).
#
#   bash scripts/build-docs.sh                              # from a fresh clone: one command
#   FMCLASSIFY_DOCS_BUDGET=full bash scripts/build-docs.sh
#   bash scripts/build-docs.sh -v                           # extra arguments go to sphinx-build
set -euo pipefail
cd "$(dirname "$0")/.."

# A fresh clone has no .venv, or one without the docs tools (sphinx-mathjax-offline: the
# pages' local MathJax, added later to the docs extra): set it up (safe to rerun).
if [ ! -x .venv/bin/sphinx-build ] \
   || ! .venv/bin/python -c 'import importlib.metadata as m; m.distribution("sphinx-mathjax-offline")' 2>/dev/null; then
  bash scripts/setup.sh docs
fi

export MPLBACKEND=Agg
.venv/bin/sphinx-build -W --keep-going -b html "$@" docs docs/_build/html
# The pages must work offline: no script or style from the network (fails on a regression).
.venv/bin/python scripts/check-offline-docs.py docs/_build/html
