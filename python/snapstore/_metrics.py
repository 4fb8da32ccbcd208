"""Turning a framework's metric values (floats, numpy or torch scalars)
into the plain floats a snapshot stores."""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional


def as_float(value: Any) -> Optional[float]:
    """`value` as a finite float, or None when it is not a finite scalar."""
    try:
        if hasattr(value, "item"):
            value = value.item()
        f = float(value)
    except (TypeError, ValueError, RuntimeError):
        return None
    return f if math.isfinite(f) else None


def scalars(values: Mapping[str, Any]) -> Dict[str, float]:
    """The entries of `values` that are finite scalars, as floats."""
    out = {}
    for k, v in values.items():
        f = as_float(v)
        if f is not None and not isinstance(v, bool):
            out[str(k)] = f
    return out


def improves(value: float, best: Optional[float], mode: str) -> bool:
    """Whether `value` beats `best` in `mode` ("min" or "max")."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
    if best is None:
        return True
    return value < best if mode == "min" else value > best


def default_session(prefix: str) -> str:
    """`PREFIX-YYYYMMDD-HHMMSS`, like `snap run`'s default session name."""
    import time

    return time.strftime(f"{prefix}-%Y%m%d-%H%M%S")
