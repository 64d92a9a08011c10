"""JSON cleaning: NumPy scalars and arrays to Python, NaN and ±inf to null."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["clean"]


def clean(obj):
    """Return a copy of ``obj`` made of plain JSON types.

    dict keys become str; tuples, lists and arrays become lists; NumPy scalars become
    Python ones; non-finite floats become None (JSON has no NaN); a Path becomes its
    string.  Anything else raises TypeError naming its type (nothing is silently
    stringified).
    """
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write a {type(obj).__name__} to JSON: {obj!r:.80}")
