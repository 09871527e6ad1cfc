#!/usr/bin/env bash
# Create .venv and install trainlab into it. torch goes first, pinned, so that pip takes
# the CPU build instead of resolving a multi-GB CUDA build for it (DEVELOPERS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,notebook,text,tables,pretrained,explain,vision-pretrained,export,serve]"
