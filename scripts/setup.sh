#!/usr/bin/env bash
# Set up fmclassify on a fresh Debian/Ubuntu machine with Python 3.11:
#   the real Fashion-MNIST (Debian's dataset-fashion-mnist), a virtual environment in .venv,
#   and the package in it. Safe to rerun; each step is skipped when already done.
#
#   bash scripts/setup.sh            # the package, to run `fmclassify`
#   bash scripts/setup.sh test       # plus what the tests need
#   bash scripts/setup.sh test,docs  # plus what the docs build needs
set -euo pipefail
extras="${1:-}"
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then
  $sudo apt-get update
  $sudo apt-get install -y dataset-fashion-mnist
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
if [ -n "$extras" ]; then
  .venv/bin/pip install --quiet --editable ".[${extras}]"
else
  .venv/bin/pip install --quiet --editable .
fi
echo "fmclassify is set up in .venv ($(.venv/bin/python -c 'import fmclassify; print(fmclassify.__version__)'))"
