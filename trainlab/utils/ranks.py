"""Which process of a data-parallel run this is, from the variables torchrun sets (no torch import: the CLI asks
before it loads anything)."""

from __future__ import annotations

import os

# Set by torchrun (and `trainlab run --nproc N`) for every process it starts.
RANK, WORLD_SIZE, LOCAL_RANK = "RANK", "WORLD_SIZE", "LOCAL_RANK"


def started_by_torchrun() -> bool:
    return WORLD_SIZE in os.environ and RANK in os.environ


def env_world_size() -> int:
    return int(os.environ.get(WORLD_SIZE, "1"))


def env_rank() -> int:
    return int(os.environ.get(RANK, "0"))
