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

# A fresh clone has no .venv, or one without the docs tools: set it up (safe to rerun).
[ -x .venv/bin/sphinx-build ] || bash scripts/setup.sh docs

export MPLBACKEND=Agg
exec .venv/bin/sphinx-build -W --keep-going -b html "$@" docs docs/_build/html
