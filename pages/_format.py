"""Text formatting for the dashboard: times, durations, counts, numbers and MAE bands.

No streamlit import: unit-tested in tests/test_dashboard_helpers.py. Times on chart axes use
roastcore.plotting's m:ss, re-exported here so pages format every time the same way.
"""

from __future__ import annotations

import math

from roastcore.metrics import mae_band
from roastcore.plotting import fmt_mmss, time_ticks

__all__ = ["finite_or_none", "fmt_count", "fmt_duration", "fmt_float", "fmt_mmss", "tf_band",
           "time_ticks"]


def finite_or_none(x) -> float | None:
    """`x` as a finite float, else None (None, NaN, inf, text)."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def fmt_duration(seconds) -> str:
    """Elapsed/ETA: 'm:ss' under an hour, 'h:mm:ss' above."""
    s = finite_or_none(seconds)
    if s is None or s < 0:
        return "–"
    total = int(round(s))
    if total >= 3600:
        return f"{total // 3600}:{(total % 3600) // 60:02d}:{total % 60:02d}"
    return fmt_mmss(total)


def fmt_count(n) -> str:
    """12345 -> '12.3k', 1234567 -> '1.23M'."""
    if n is None:
        return "–"
    n = float(n)
    if abs(n) >= 1e6:
        return f"{n / 1e6:.2f}M"
    if abs(n) >= 1e3:
        return f"{n / 1e3:.1f}k"
    return f"{n:.0f}"


def fmt_float(x, digits: int = 1) -> str:
    x = finite_or_none(x)
    return "–" if x is None else f"{x:.{digits}f}"


def tf_band(mae_f) -> str:
    """Teacher-forcing MAE (°F) -> 'excellent' (<10) / 'good' (<50) / 'moderate' (<150) / 'poor'
    (evaluate.mae_band); 'n/a' when there is no finite value."""
    mae = finite_or_none(mae_f)
    return "n/a" if mae is None else mae_band(mae)
