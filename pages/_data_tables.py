"""Tables and labels of a dataset's roasts and of an import report, as the Data page shows them.

No streamlit import: unit-tested in tests/test_dashboard_helpers.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pages._format import fmt_mmss
from roastcore.profile import Profile


def profile_label(p: Profile, i: int | None = None) -> str:
    m = p.meta
    bits = [b for b in (m.origin, m.process, m.roast_level) if b]
    head = f"#{i} " if i is not None else ""
    return f"{head}{p.id} · {' / '.join(bits) or 'no metadata'} · {fmt_mmss(p.duration_s)}"


def spread_indices(n: int, k: int = 3) -> list[int]:
    """k indices spread evenly over 0..n-1 (a default pick that is not k near-identical roasts)."""
    if n <= 0:
        return []
    k = min(k, n)
    return sorted({int(round(i * (n - 1) / max(k - 1, 1))) for i in range(k)}) if k > 1 else [0]


def profiles_table(profiles: Sequence[Profile]) -> pd.DataFrame:
    """One row per profile: id, metadata, duration (m:ss), charge/finish °F, event times, DTR."""
    rows = []
    for p in profiles:
        m = p.meta
        dtr = p.dtr()
        rows.append({
            "id": p.id,
            "origin": m.origin or "",
            "process": m.process or "",
            "roast level": m.roast_level or "",
            "roaster": m.roaster or "",
            "duration": fmt_mmss(p.duration_s),
            "charge °F": round(p.charge_f, 1),
            "finish °F": round(p.finish_f, 1),
            "TP": fmt_mmss(p.event_time("TP")),
            "FCs": fmt_mmss(p.event_time("FCs")),
            "DTR %": None if dtr is None else round(100 * dtr, 1),
            "flavours": ", ".join(m.flavors),
            "source": Path(m.source_file).name if m.source_file else "",
        })
    return pd.DataFrame(rows)


def summary_stats(profiles: Sequence[Profile]) -> pd.DataFrame:
    """count / mean / std / min / median / max of duration, charge, finish, TP, FCs, DTR."""
    cols = {
        "duration (s)": [p.duration_s for p in profiles],
        "charge °F": [p.charge_f for p in profiles],
        "finish °F": [p.finish_f for p in profiles],
        "TP (s)": [p.event_time("TP") for p in profiles],
        "FCs (s)": [p.event_time("FCs") for p in profiles],
        "DTR %": [None if p.dtr() is None else 100 * p.dtr() for p in profiles],
    }
    rows = []
    for name, values in cols.items():
        xs = np.array([v for v in values if v is not None], dtype=float)
        rows.append({
            "quantity": name, "count": int(xs.size),
            "mean": float(xs.mean()) if xs.size else np.nan,
            "std": float(xs.std()) if xs.size > 1 else np.nan,
            "min": float(xs.min()) if xs.size else np.nan,
            "median": float(np.median(xs)) if xs.size else np.nan,
            "max": float(xs.max()) if xs.size else np.nan,
        })
    return pd.DataFrame(rows).round(1)


def categorical_counts(profiles: Sequence[Profile], field_name: str) -> pd.DataFrame:
    counts: dict[str, int] = {}
    for p in profiles:
        v = getattr(p.meta, field_name, None) or "unknown"
        counts[v] = counts.get(v, 0) + 1
    return pd.DataFrame(sorted(counts.items(), key=lambda kv: -kv[1]), columns=[field_name, "count"])


# ---------------------------------------------------------------------------- import reports
def upload_limit_text(per_file_mb, total_bytes: int) -> str:
    """'at most 25 MB per file and 25 MB in all': the uploader's limits, said up front."""
    total_mb = total_bytes / 2**20
    try:
        per_file = float(per_file_mb)
    except (TypeError, ValueError):
        per_file = total_mb
    if per_file >= total_mb:
        return f"at most {total_mb:g} MB in all"
    return f"at most {per_file:g} MB per file and {total_mb:g} MB in all"



def rejected_table(report) -> pd.DataFrame:
    rows = []
    for r in getattr(report, "rejected", None) or ():
        file = getattr(r, "file", None) or getattr(r, "path", None) or (r[0] if isinstance(r, (tuple, list)) else "")
        reason = getattr(r, "reason", None) or (r[1] if isinstance(r, (tuple, list)) and len(r) > 1 else str(r))
        rows.append({"file": Path(str(file)).name, "reason": str(reason)})
    return pd.DataFrame(rows, columns=["file", "reason"])


def duplicates_table(report) -> pd.DataFrame:
    rows = []
    for d in getattr(report, "duplicates", None) or ():
        if isinstance(d, (tuple, list)):
            file, dup = d[0], d[1]
        else:
            file, dup = getattr(d, "file", d), getattr(d, "duplicate_of", "")
        rows.append({"file": Path(str(file)).name, "duplicate of": Path(str(dup)).name})
    return pd.DataFrame(rows, columns=["file", "duplicate of"])


def import_summary(report, message: str) -> dict:
    """What the Data page keeps of an import to show it after the rerun: counts, the rejected
    files and why, the duplicates, and the one-line outcome."""
    return {"n_ok": len(report.profiles), "rejected": rejected_table(report),
            "duplicates": duplicates_table(report), "message": message}
