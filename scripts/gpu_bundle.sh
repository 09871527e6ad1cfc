#!/usr/bin/env bash
# Prepare .gpu/ for benchmarks/gpu_check.sh on a lent GPU machine (the `device` tool), which can download nothing:
# the wheels its image lacks (Python 3.12, x86-64) and MNIST (11 MB; CIFAR-10 is over the 64 MiB that travels).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
mkdir -p .gpu/wheels .gpu/data
.venv/bin/python -m pip download --quiet --only-binary=:all: --no-deps --python-version 3.12 --platform manylinux2014_x86_64 \
  --platform manylinux_2_17_x86_64 --implementation cp -d .gpu/wheels \
  pydantic==2.14.3 "pydantic-core==$(.venv/bin/python -c 'import pydantic_core; print(pydantic_core.__version__)')" \
  annotated-types typing-inspection nltk optuna==5.0.0 alembic sqlalchemy colorlog mako
cp -r "${TRAINLAB_DATA:-../shared/data}/mnist" .gpu/data/
du -sh .gpu
