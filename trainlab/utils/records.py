"""Reading back what a run folder records: nested configs and numbers written as text."""

from __future__ import annotations

import math
from typing import Any


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}: nested sections as dotted keys, leaves kept as they are."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def to_float(value: Any) -> float:
    """A number from a CSV cell or JSON value; NaN for None, "" and anything unparseable."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
