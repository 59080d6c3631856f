"""UI-free helpers for the dashboard: formatting, selection state, tables and Plotly figures.

Nothing here imports streamlit, and nothing here computes a metric or runs a model: figures and
tables are built from what evaluate.py / diagnose.py / jobs.py / checkpoints.py return. Keeping
these pure makes them testable without a browser (tests/test_views.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from roastcore.profile import EVENT_NAMES, Profile, rate_of_rise

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUNS_DIR = REPO_ROOT / "checkpoints"
DEMO_PREFIX = "demo_"
DEFAULT_DATA_SPEC = "synthetic"

# One colour per checkpoint, stable across pages: Plotly's qualitative palette (colour-blind
# friendlier than matplotlib's tab10 for the first few). The real curve is always black.
PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
)
REAL_COLOR = "#111111"
EVENT_COLORS = {"TP": "#6c757d", "DRY_END": "#b8860b", "FCs": "#c0392b", "FCe": "#e67e22",
                "DROP": "#2c3e50"}

# Teacher-forcing MAE interpretation bands (°F), as in the prior work's report.
TF_BANDS = ((10.0, "excellent", "#d4edda"), (50.0, "good", "#e2f0d9"),
            (150.0, "moderate", "#fff3cd"), (math.inf, "poor", "#f8d7da"))

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SYNTH_SPEC = re.compile(r"^synthetic(?::(\d{1,5}))?$")


# ---------------------------------------------------------------------------- formatting
def _finite_seconds(value) -> float | None:
    try:
        s = float(value)
    except (TypeError, ValueError):
        return None
    return s if math.isfinite(s) else None


def fmt_mmss(seconds) -> str:
    """Seconds -> 'm:ss' (negative -> '-m:ss'); None/NaN -> '–'."""
    s = _finite_seconds(seconds)
    if s is None:
        return "–"
    sign = "-" if s < 0 else ""
    total = int(round(abs(s)))
    return f"{sign}{total // 60}:{total % 60:02d}"


def fmt_duration(seconds) -> str:
    """Elapsed/ETA: 'm:ss' under an hour, 'h:mm:ss' above."""
    s = _finite_seconds(seconds)
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
    if x is None:
        return "–"
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "–"
    return "–" if not math.isfinite(x) else f"{x:.{digits}f}"


def time_ticks(max_s: float) -> tuple[list[float], list[str]]:
    """Tick positions (s) and 'm:ss' labels for a time axis running 0..max_s."""
    max_s = max(float(max_s or 0.0), 1.0)
    step = next((s for s in (15, 30, 60, 120, 180, 300, 600) if max_s / s <= 12), 900)
    vals = [float(v) for v in np.arange(0.0, max_s + 1e-9, step)]
    return vals, [fmt_mmss(v) for v in vals]


def tf_band(mae_f) -> str:
    """Teacher-forcing MAE (°F) -> 'excellent' (<10) / 'good' (<50) / 'moderate' (<150) / 'poor'."""
    if mae_f is None or not math.isfinite(float(mae_f)):
        return "n/a"
    for limit, label, _ in TF_BANDS:
        if float(mae_f) < limit:
            return label
    return "poor"


# ---------------------------------------------------------------------------- names & paths
def sanitize_filename(name: str, default: str = "file") -> str:
    """A client-supplied file name reduced to a safe basename: no directories, no dot-files."""
    base = str(name or "").replace("\\", "/").split("/")[-1]
    base = _SAFE_NAME.sub("_", base).strip("._")
    return (base or default)[:120]


def sanitize_dataset_name(name: str) -> str:
    base = _SAFE_NAME.sub("_", str(name or "").strip()).strip("._-")
    return base[:60] or "dataset"


def runs_dir_from_env(environ: Mapping[str, str] | None = None) -> Path:
    """The runs directory: $ROASTCORE_RUNS, else the repository's checkpoints/."""
    environ = os.environ if environ is None else environ
    value = environ.get("ROASTCORE_RUNS", "").strip()
    return Path(value).expanduser() if value else DEFAULT_RUNS_DIR


def default_data_spec(environ: Mapping[str, str] | None = None) -> str:
    """The built-in dataset spec: $ROASTCORE_DEFAULT_DATA (e.g. 'synthetic:30'), else 'synthetic'."""
    environ = os.environ if environ is None else environ
    value = environ.get("ROASTCORE_DEFAULT_DATA", "").strip()
    return value if value and _SYNTH_SPEC.match(value) else DEFAULT_DATA_SPEC


def path_mtime(path) -> float:
    """Newest mtime of a run directory's files (cache key: changes when a run is rewritten)."""
    p = Path(path)
    try:
        if p.is_dir():  # the files, not the folder: an eval_cache/ appearing is not a new run
            files = [c.stat().st_mtime for c in p.iterdir() if c.is_file()]
            return max(files) if files else p.stat().st_mtime
        return p.stat().st_mtime
    except OSError:
        return 0.0


# ---------------------------------------------------------------------------- selection state
@dataclass
class Selection:
    """What the sidebar selected; round-trips through URL query parameters."""

    data: str = ""  # dataset key: 'synthetic[:N]' or 'ds:<imported name>'
    run: str = ""  # primary checkpoint (run name)
    compare: tuple[str, ...] = ()  # comparison checkpoints (run names)

    def runs(self) -> list[str]:
        """Primary first, then the comparisons, without duplicates."""
        out = [self.run] if self.run else []
        out += [r for r in self.compare if r and r not in out]
        return out


def _first(value) -> str:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else ""
    return str(value or "")


def valid_data_key(key: str) -> bool:
    if _SYNTH_SPEC.match(key or ""):
        return True
    return bool(key) and key.startswith("ds:") and bool(_RUN_NAME.match(key[3:]))


def encode_selection(sel: Selection) -> dict[str, str]:
    """Selection -> query parameters (empty fields left out)."""
    out = {}
    if sel.data:
        out["data"] = sel.data
    if sel.run:
        out["run"] = sel.run
    compare = [c for c in sel.compare if c and c != sel.run]
    if compare:
        out["cmp"] = ",".join(compare)
    return out


def decode_selection(params: Mapping, known_runs: Iterable[str] | None = None,
                     known_data: Iterable[str] | None = None) -> Selection:
    """Query parameters -> Selection. Unknown or malformed values are dropped, never trusted:
    a URL can only select runs and datasets that the picker lists."""
    runs = None if known_runs is None else set(known_runs)
    datas = None if known_data is None else set(known_data)
    data = _first(params.get("data"))
    if not valid_data_key(data) or (datas is not None and data not in datas):
        data = ""
    run = _first(params.get("run"))
    if not _RUN_NAME.match(run) or (runs is not None and run not in runs):
        run = ""
    raw = params.get("cmp", "")
    if isinstance(raw, (list, tuple)):
        raw = ",".join(str(r) for r in raw)
    compare = []
    for name in str(raw or "").split(","):
        name = name.strip()
        if name and _RUN_NAME.match(name) and name != run and name not in compare:
            if runs is None or name in runs:
                compare.append(name)
    return Selection(data=data, run=run, compare=tuple(compare[:8]))


# ---------------------------------------------------------------------------- colours
def color_map(names: Sequence[str]) -> dict[str, str]:
    """A colour per run name; the order of `names` (the picker's list) fixes the assignment, so
    a checkpoint keeps its colour on every page."""
    out = {}
    for i, name in enumerate(names):
        out[name] = PALETTE[i % len(PALETTE)]
    return out


def color_for(name: str, colors: Mapping[str, str] | None = None) -> str:
    if colors and name in colors:
        return colors[name]
    digest = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16)
    return PALETTE[digest % len(PALETTE)]


# ---------------------------------------------------------------------------- imported datasets
DATASETS_DIRNAME = "datasets"
DATASET_INDEX = "index.json"


@dataclass
class DatasetEntry:
    name: str
    spec: str  # what load_source / a job's --data understands
    kind: str  # 'upload' or 'path'
    n_profiles: int = 0
    created: float = 0.0

    @property
    def key(self) -> str:
        return f"ds:{self.name}"


def datasets_dir(runs_dir) -> Path:
    return Path(runs_dir) / DATASETS_DIRNAME


def list_datasets(runs_dir) -> list[DatasetEntry]:
    """Imported datasets registered under RUNS/datasets/index.json, newest first."""
    index = datasets_dir(runs_dir) / DATASET_INDEX
    try:
        raw = json.loads(index.read_text())
    except (OSError, ValueError):
        return []
    out = []
    for name, d in (raw or {}).items():
        if not isinstance(d, dict) or not _RUN_NAME.match(str(name)):
            continue
        try:
            out.append(DatasetEntry(name=str(name), spec=str(d["spec"]), kind=str(d.get("kind", "path")),
                                    n_profiles=int(d.get("n_profiles", 0)), created=float(d.get("created", 0))))
        except (KeyError, TypeError, ValueError):
            continue
    return sorted(out, key=lambda e: -e.created)


def register_dataset(runs_dir, name: str, spec: str, kind: str, n_profiles: int) -> DatasetEntry:
    """Add (or replace) an imported dataset in the registry; returns the entry."""
    from roastcore.fsutil import atomic_write_json

    folder = datasets_dir(runs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    index = folder / DATASET_INDEX
    try:
        raw = json.loads(index.read_text())
        if not isinstance(raw, dict):
            raw = {}
    except (OSError, ValueError):
        raw = {}
    name = sanitize_dataset_name(name)
    raw[name] = {"spec": str(spec), "kind": kind, "n_profiles": int(n_profiles), "created": time.time()}
    atomic_write_json(index, raw)
    return DatasetEntry(name=name, spec=str(spec), kind=kind, n_profiles=int(n_profiles),
                        created=raw[name]["created"])


def unique_dataset_name(runs_dir, name: str) -> str:
    base = sanitize_dataset_name(name)
    taken = {e.name for e in list_datasets(runs_dir)}
    folder = datasets_dir(runs_dir)
    candidate, i = base, 2
    while candidate in taken or (folder / candidate).exists():
        candidate, i = f"{base}_{i}", i + 1
    return candidate


class UploadError(ValueError):
    """An upload that is refused before any parsing (too big, wrong type)."""


UPLOAD_SUFFIXES = (".alog", ".csv", ".json", ".zip")
MAX_UPLOAD_FILES = 2000
MAX_UPLOAD_TOTAL_BYTES = 25 * 1024 * 1024
MAX_ZIP_UNCOMPRESSED_BYTES = 200 * 1024 * 1024


def stage_uploads(files: Sequence[tuple[str, bytes]], dest, max_total_bytes: int = MAX_UPLOAD_TOTAL_BYTES) -> Path:
    """Write uploaded (name, bytes) pairs into `dest` under sanitised, unique names.

    Only .alog/.csv/.json/.zip are accepted; the total size is capped; a zip is checked for its
    declared uncompressed size (zip bombs) before the importer opens it. Returns `dest`.
    """
    if not files:
        raise UploadError("no files were uploaded")
    if len(files) > MAX_UPLOAD_FILES:
        raise UploadError(f"{len(files)} files: at most {MAX_UPLOAD_FILES} per import")
    total = sum(len(b) for _, b in files)
    if total > max_total_bytes:
        raise UploadError(f"upload is {total / 1e6:.1f} MB; the limit is {max_total_bytes / 1e6:.0f} MB")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for name, data in files:
        safe = sanitize_filename(name)
        suffix = Path(safe).suffix.lower()
        if suffix not in UPLOAD_SUFFIXES:
            raise UploadError(f"{sanitize_filename(name)}: only {', '.join(UPLOAD_SUFFIXES)} files can be imported")
        stem, k = Path(safe).stem, 1
        while safe.lower() in used:
            k += 1
            safe = f"{stem}_{k}{suffix}"
        used.add(safe.lower())
        target = dest / safe
        if suffix == ".zip":
            _check_zip(name, data)
        target.write_bytes(data)
    return dest


def _check_zip(name: str, data: bytes) -> None:
    import io as _io

    try:
        with zipfile.ZipFile(_io.BytesIO(data)) as zf:
            size = sum(i.file_size for i in zf.infolist())
    except zipfile.BadZipFile:
        raise UploadError(f"{sanitize_filename(name)}: not a valid zip archive") from None
    if size > MAX_ZIP_UNCOMPRESSED_BYTES:
        raise UploadError(f"{sanitize_filename(name)}: unpacks to {size / 1e6:.0f} MB; the limit is "
                          f"{MAX_ZIP_UNCOMPRESSED_BYTES / 1e6:.0f} MB")


# ---------------------------------------------------------------------------- profiles
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


# ---------------------------------------------------------------------------- figures
def _time_axis(fig: go.Figure, max_s: float, row=None, col=None, title: str = "time (m:ss)") -> None:
    vals, text = time_ticks(max_s)
    kw = {} if row is None else {"row": row, "col": col}
    fig.update_xaxes(tickmode="array", tickvals=vals, ticktext=text, title_text=title, **kw)


def _layout(fig: go.Figure, height: int = 420, title: str | None = None) -> go.Figure:
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
        title=title, hovermode="x unified", legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        template="plotly_white",
    )
    return fig


def _hover_t(times: np.ndarray) -> np.ndarray:
    return np.array([fmt_mmss(t) for t in times], dtype=object)


def add_curve(fig: go.Figure, times_s, temps_f, name: str, color: str, row=None, col=None,
              dash: str | None = None, width: float = 2.0, showlegend: bool = True,
              legendgroup: str | None = None, unit: str = "°F") -> None:
    times_s = np.asarray(times_s, dtype=float)
    temps_f = np.asarray(temps_f, dtype=float)
    kw = {} if row is None else {"row": row, "col": col}
    fig.add_trace(go.Scatter(
        x=times_s, y=temps_f, name=name, mode="lines", customdata=_hover_t(times_s),
        line=dict(color=color, dash=dash, width=width), showlegend=showlegend,
        legendgroup=legendgroup or name,
        hovertemplate=f"%{{customdata}} · %{{y:.1f}} {unit}<extra>{name}</extra>",
    ), **kw)


def add_event_markers(fig: go.Figure, profile: Profile, row=None, col=None, names=EVENT_NAMES,
                      color: str | None = None, symbol: str = "diamond", label_suffix: str = "",
                      labels: bool = True) -> None:
    """Markers for the profile's events (TP / DRY_END / FCs / FCe / DROP) on its BT curve."""
    show_text = labels
    xs, ys, labels, colors = [], [], [], []
    for name in names:
        t = profile.event_time(name)
        if t is None:
            continue
        xs.append(t)
        ys.append(float(np.interp(t, profile.times_s, profile.bt)))
        labels.append(name)
        colors.append(color or EVENT_COLORS.get(name, "#333"))
    if not xs:
        return
    kw = {} if row is None else {"row": row, "col": col}
    fig.add_trace(go.Scatter(
        x=xs, y=ys, mode="markers+text" if show_text else "markers", text=labels, textposition="top center",
        marker=dict(size=9, color=colors, symbol=symbol, line=dict(width=1, color="white")),
        name=f"events{label_suffix}", showlegend=False,
        customdata=np.array([[lab, fmt_mmss(x)] for lab, x in zip(labels, xs, strict=True)], dtype=object),
        hovertemplate="%{customdata[0]} at %{customdata[1]} · %{y:.1f} °F<extra></extra>",
    ), **kw)


def ror_range(curves: Iterable[tuple[np.ndarray, float]], skip_s: float = 90.0) -> list[float]:
    """A y-range for RoR plots that ignores the charge plunge (the first `skip_s`), so the part a
    roaster reads (0-40 °F/min) is not squashed by a -1000 °F/min spike. `curves`: (bt, step_s)."""
    values = []
    for bt, step_s in curves:
        bt = np.asarray(bt, dtype=float)
        if bt.size < 3:
            continue
        r = rate_of_rise(bt, step_s)[int(skip_s / step_s):]
        values.append(r[np.isfinite(r)])
    values = np.concatenate(values) if values else np.array([])
    if values.size == 0:
        return [-10.0, 60.0]
    lo, hi = np.percentile(values, [1, 99])
    return [float(min(-5.0, lo - 5.0)), float(max(30.0, hi * 1.15 + 2.0))]


def curves_figure(profiles: Sequence[Profile], show_ror: bool = True, show_events: bool = True,
                  height: int = 520) -> go.Figure:
    """BT curves (and an RoR subplot) of real profiles, with their events."""
    rows = 2 if show_ror else 1
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        row_heights=[0.68, 0.32] if show_ror else [1.0])
    max_s = 1.0
    for i, p in enumerate(profiles):
        color = PALETTE[i % len(PALETTE)]
        label = p.id
        add_curve(fig, p.times_s, p.bt, label, color, row=1, col=1)
        if show_ror:
            add_curve(fig, p.times_s, p.ror(), f"{label} RoR", color, row=2, col=1, width=1.2,
                      showlegend=False, legendgroup=label, unit="°F/min")
        if show_events:
            add_event_markers(fig, p, row=1, col=1, labels=i == 0)
        max_s = max(max_s, p.duration_s)
    fig.update_yaxes(title_text="BT (°F)", row=1, col=1)
    if show_ror:
        fig.update_yaxes(title_text="RoR (°F/min)", row=2, col=1,
                         range=ror_range((p.bt, p.interval_s) for p in profiles))
    _time_axis(fig, max_s, row=rows, col=1)
    if show_ror:
        _time_axis(fig, max_s, row=1, col=1, title="")
    return _layout(fig, height)


def overlay_figure(real: Profile | None, generated: Mapping[str, np.ndarray], step_s: float,
                   colors: Mapping[str, str] | None = None, show_ror: bool = True,
                   show_events: bool = True, height: int = 560, title: str | None = None) -> go.Figure:
    """The real curve against each checkpoint's generated curve (same time grid `step_s`),
    with an RoR subplot and event markers (real: diamonds; generated: detected TP, DROP)."""
    rows = 2 if show_ror else 1
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        row_heights=[0.68, 0.32] if show_ror else [1.0])
    max_s = 1.0
    if real is not None:
        add_curve(fig, real.times_s, real.bt, "real", REAL_COLOR, row=1, col=1, width=2.6)
        if show_ror:
            add_curve(fig, real.times_s, real.ror(), "real RoR", REAL_COLOR, row=2, col=1, width=1.4,
                      showlegend=False, legendgroup="real", unit="°F/min")
        if show_events:
            add_event_markers(fig, real, row=1, col=1)
        max_s = real.duration_s
    for name, curve in generated.items():
        curve = np.asarray(curve, dtype=float)
        curve = curve[np.isfinite(curve)]
        if curve.size < 2:
            continue
        t = np.arange(curve.size) * float(step_s)
        color = color_for(name, colors)
        add_curve(fig, t, curve, name, color, row=1, col=1, dash="dash")
        if show_ror:
            add_curve(fig, t, rate_of_rise(curve, float(step_s)), f"{name} RoR", color, row=2, col=1,
                      width=1.2, dash="dash", showlegend=False, legendgroup=name, unit="°F/min")
        if show_events and curve.size >= 3:
            try:
                gp = Profile(bt=curve, interval_s=float(step_s), id=name)
                add_event_markers(fig, gp, row=1, col=1, names=("TP", "DROP"), color=color,
                                  symbol="circle", label_suffix=f" {name}")
            except ValueError:
                pass  # an implausible generated curve: draw it, skip its markers
        max_s = max(max_s, t[-1])
    fig.update_yaxes(title_text="BT (°F)", row=1, col=1)
    if show_ror:
        basis = [(real.bt, real.interval_s)] if real is not None else [
            (np.asarray(c, dtype=float), float(step_s)) for c in generated.values()]
        fig.update_yaxes(title_text="RoR (°F/min)", row=2, col=1, range=ror_range(basis))
        _time_axis(fig, max_s, row=1, col=1, title="")
    _time_axis(fig, max_s, row=rows, col=1)
    return _layout(fig, height, title)


def loss_figure(history: pd.DataFrame, colors: Mapping[str, str] | None = None, height: int = 380,
                log_y: bool = True) -> go.Figure:
    """Train/val loss per epoch for one or more runs; the teacher-forcing ratio (when the run uses
    scheduled sampling) on a secondary axis.

    `history` columns: run, epoch, train_loss, val_loss and optionally tf_ratio.
    """
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if history is None or history.empty:
        return _layout(fig, height)
    for run, df in history.groupby("run", sort=False):
        color = color_for(str(run), colors)
        df = df.sort_values("epoch")
        if "train_loss" in df and df["train_loss"].notna().any():
            fig.add_trace(go.Scatter(x=df["epoch"], y=df["train_loss"], name=f"{run} train", mode="lines",
                                     line=dict(color=color, dash="dot")), secondary_y=False)
        if "val_loss" in df and df["val_loss"].notna().any():
            fig.add_trace(go.Scatter(x=df["epoch"], y=df["val_loss"], name=f"{run} val", mode="lines+markers",
                                     line=dict(color=color), marker=dict(size=4)), secondary_y=False)
        if "tf_ratio" in df and df["tf_ratio"].notna().any() and df["tf_ratio"].nunique() > 1:
            fig.add_trace(go.Scatter(x=df["epoch"], y=df["tf_ratio"], name=f"{run} teacher forcing",
                                     mode="lines", line=dict(color=color, dash="dashdot", width=1)),
                          secondary_y=True)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="loss", type="log" if log_y else "linear", secondary_y=False)
    fig.update_yaxes(title_text="teacher-forcing ratio", range=[0, 1.05], secondary_y=True, showgrid=False)
    return _layout(fig, height)


def tf_comparison_figure(table: pd.DataFrame, baseline_mae: float | None = None,
                         colors: Mapping[str, str] | None = None, height: int = 420) -> go.Figure:
    """Horizontal bars of teacher-forcing MAE per checkpoint (sorted, best on top), the
    interpretation bands shaded, and the persistence baseline as a vertical line.

    `table` columns: run, tf_mae_f.
    """
    fig = go.Figure()
    if table is None or table.empty:
        return _layout(fig, height)
    df = table.sort_values("tf_mae_f", ascending=False)
    best = table.sort_values("tf_mae_f").iloc[0]["run"]
    max_x = float(np.nanmax(df["tf_mae_f"].to_numpy(dtype=float)))
    if baseline_mae is not None and math.isfinite(baseline_mae):
        max_x = max(max_x, float(baseline_mae))
    max_x = max(max_x * 1.15, 12.0)
    lo = 0.0
    for limit, label, fill in TF_BANDS:
        hi = min(limit, max_x)
        if hi > lo:
            fig.add_vrect(x0=lo, x1=hi, fillcolor=fill, opacity=0.55, line_width=0, layer="below",
                          annotation_text=label, annotation_position="top left",
                          annotation_font_size=10)
        lo = limit
        if lo >= max_x:
            break
    fig.add_trace(go.Bar(
        y=df["run"], x=df["tf_mae_f"], orientation="h", name="teacher-forcing MAE",
        marker=dict(color=[color_for(str(r), colors) for r in df["run"]],
                    line=dict(color=["#000" if r == best else "rgba(0,0,0,0)" for r in df["run"]], width=2)),
        text=[f"{v:.1f} °F" + ("  ★ best" if r == best else "") for r, v in zip(df["run"], df["tf_mae_f"], strict=True)],
        textposition="outside", hovertemplate="%{y}: %{x:.2f} °F<extra></extra>",
    ))
    if baseline_mae is not None and math.isfinite(baseline_mae):
        fig.add_vline(x=float(baseline_mae), line=dict(color="#333", dash="dash"),
                      annotation_text=f"persistence {baseline_mae:.1f} °F", annotation_position="bottom right")
    fig.update_xaxes(title_text="teacher-forcing MAE (°F, lower is better)", range=[0, max_x])
    fig.update_layout(showlegend=False)
    return _layout(fig, max(height, 120 + 40 * len(df)))


def step_trace_figure(times_s, raw_f, clamped_f, real_f, clamp: tuple[float, float] | None = (100.0, 500.0),
                      height: int = 460, name: str = "model") -> go.Figure:
    """Raw vs clamped vs real per generation step with the clamp band shaded."""
    t = np.asarray(times_s, dtype=float)
    fig = go.Figure()
    if clamp is not None:
        fig.add_hrect(y0=clamp[0], y1=clamp[1], fillcolor="#cfe2ff", opacity=0.35, line_width=0, layer="below",
                      annotation_text=f"clamp {clamp[0]:.0f}–{clamp[1]:.0f} °F", annotation_position="top left")
    add_curve(fig, t, real_f, "real", REAL_COLOR, width=2.6)
    add_curve(fig, t, raw_f, f"{name} raw", "#d62728", dash="dot")
    add_curve(fig, t, clamped_f, f"{name} clamped", "#1f77b4")
    fig.update_yaxes(title_text="BT (°F)")
    _time_axis(fig, float(t[-1]) if t.size else 1.0)
    return _layout(fig, height)


def grid_figure(panels: Sequence[tuple[str, Profile | None, Mapping[str, np.ndarray]]], step_s: float,
                colors: Mapping[str, str] | None = None, cols: int = 2, height_per_row: int = 260) -> go.Figure:
    """Small multiples: one panel per profile (title, real profile, generated curves by run)."""
    n = max(len(panels), 1)
    rows = math.ceil(n / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[p[0] for p in panels],
                        vertical_spacing=0.12 / max(rows - 1, 1) if rows > 1 else 0.1)
    seen: set[str] = set()
    max_s = 1.0
    for k, (_, real, generated) in enumerate(panels):
        r, c = k // cols + 1, k % cols + 1
        if real is not None:
            add_curve(fig, real.times_s, real.bt, "real", REAL_COLOR, row=r, col=c, width=2.2,
                      showlegend="real" not in seen, legendgroup="real")
            seen.add("real")
            max_s = max(max_s, real.duration_s)
        for name, curve in generated.items():
            curve = np.asarray(curve, dtype=float)
            curve = curve[np.isfinite(curve)]
            t = np.arange(curve.size) * float(step_s)
            add_curve(fig, t, curve, name, color_for(name, colors), row=r, col=c, dash="dash",
                      showlegend=name not in seen, legendgroup=name)
            seen.add(name)
            if t.size:
                max_s = max(max_s, t[-1])
    for k in range(len(panels)):
        r, c = k // cols + 1, k % cols + 1
        _time_axis(fig, max_s, row=r, col=c, title="")
        fig.update_yaxes(title_text="°F" if c == 1 else "", row=r, col=c)
    return _layout(fig, max(300, rows * height_per_row))


# ---------------------------------------------------------------------------- misc tables
def diff_table(base: Mapping, current: Mapping, prefix: str = "") -> pd.DataFrame:
    """Rows (field, preset, current) for every leaf that differs between two nested dicts."""
    rows = []

    def walk(a, b, path):
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for k in sorted(set(a) | set(b), key=str):
                walk(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
            return
        if _norm_value(a) != _norm_value(b):
            rows.append({"field": path, "preset": _show(a), "current": _show(b)})

    walk(base or {}, current or {}, prefix)
    return pd.DataFrame(rows, columns=["field", "preset", "current"])


def _norm_value(v):
    if isinstance(v, float):
        return round(v, 12)
    if isinstance(v, (list, tuple)):
        return tuple(_norm_value(x) for x in v)
    return v


def _show(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_show(x) for x in v) or "–"
    return str(v)


def as_dict(obj) -> dict:
    """A dataclass (or anything with to_dict) as a plain dict."""
    if obj is None:
        return {}
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    return {}


@dataclass
class RunChoice:
    """One entry of the checkpoint picker."""

    name: str
    path: Path
    status: str = ""
    label: str = ""
    metrics: dict = field(default_factory=dict)
    demo: bool = False


# ---------------------------------------------------------------------------- runs & datasets
def builtin_data_label(spec: str) -> str:
    m = _SYNTH_SPEC.match(spec or "")
    if m and m.group(1):
        return f"Built-in synthetic ({int(m.group(1))} roasts)"
    return "Built-in synthetic (simulator)"


def discover_runs(runs_dir, demo_dir: Path | None = None) -> list[RunChoice]:
    """Runs listed by checkpoints.list_runs in `runs_dir` that hold weights, plus the shipped
    demo runs (checkpoints/demo_*) that the runs directory does not already hold. Demo runs
    come first, then the others newest first (list_runs' order)."""
    from roastcore import checkpoints

    demo_dir = DEFAULT_RUNS_DIR if demo_dir is None else Path(demo_dir)
    sources = [Path(runs_dir)]
    if demo_dir.is_dir() and (not Path(runs_dir).exists() or demo_dir.resolve() != Path(runs_dir).resolve()):
        sources.append(demo_dir)
    found: dict[str, RunChoice] = {}
    for k, source in enumerate(sources):
        for info in checkpoints.list_runs(source):
            if k > 0 and not info.name.startswith(DEMO_PREFIX):
                continue
            if not (Path(info.path) / "model.safetensors").is_file():
                continue  # a run that has not saved a best epoch yet: nothing to load
            found.setdefault(info.name, run_choice(info))
    runs = list(found.values())
    return [r for r in runs if r.demo] + [r for r in runs if not r.demo]


def run_choice(info) -> RunChoice:
    """A checkpoints.RunInfo -> RunChoice with a picker label."""
    metrics = {"preset": info.preset or None, "n_params": info.param_count, "best_epoch": info.best_epoch,
               "best_val_loss": info.best_val_loss, "val_tf_mae_f": info.last_val_tf_mae_f,
               "epochs_run": info.epochs_run}
    choice = RunChoice(name=info.name, path=Path(info.path), status=info.status, metrics=metrics,
                       demo=info.name.startswith(DEMO_PREFIX))
    choice.label = run_label(choice)
    return choice


def run_label(run: RunChoice) -> str:
    bits = [run.name]
    if run.status and run.status not in ("succeeded", "done", "completed", "finished"):
        bits.append(f"[{run.status}]")
    mae = _finite_or_none(run.metrics.get("val_tf_mae_f"))
    val = _finite_or_none(run.metrics.get("best_val_loss"))
    if mae is not None:
        bits.append(f"TF MAE {mae:.1f} °F")
    elif val is not None:
        bits.append(f"val loss {val:.3g}")
    return " · ".join(bits)


def run_caption(run: RunChoice) -> str:
    m = run.metrics
    bits = [f"status **{run.status or 'unknown'}**"]
    if m.get("preset"):
        bits.append(f"preset `{m['preset']}`")
    if _finite_or_none(m.get("best_val_loss")) is not None:
        bits.append(f"best val loss {float(m['best_val_loss']):.4g}")
    if _finite_or_none(m.get("val_tf_mae_f")) is not None:
        bits.append(f"val TF MAE {float(m['val_tf_mae_f']):.1f} °F")
    if m.get("best_epoch") is not None:
        bits.append(f"epoch {m['best_epoch']}")
    if m.get("n_params") is not None:
        bits.append(f"{fmt_count(m['n_params'])} params")
    return " · ".join(bits)


# ---------------------------------------------------------------------------- jobs
RECOVERY_SUITE = ("tiny_model", "micro_model", "low_lr", "high_dropout", "combined_fix")


def job_device(job) -> str:
    return str(getattr(job, "device_used", None) or getattr(job, "device_assigned", None)
               or getattr(job, "device_requested", None) or "–")


def jobs_table(jobs: Sequence, progress: Mapping[str, object] | None = None, now: float | None = None) -> pd.DataFrame:
    """One row per job (newest first): id, preset, state, device, epoch, losses, elapsed, ETA."""
    progress = progress or {}
    now = time.time() if now is None else now
    rows = []
    for job in sorted(jobs, key=lambda j: -(getattr(j, "created_at", 0) or 0)):
        prog = progress.get(job.id)
        epoch = getattr(prog, "epoch", None)
        epochs = getattr(prog, "epochs", None) or getattr(job, "epochs", None)
        elapsed = getattr(prog, "elapsed_s", None)
        if elapsed is None and getattr(job, "started_at", None):
            elapsed = (getattr(job, "ended_at", None) or now) - job.started_at
        eta = getattr(prog, "eta_s", None) if job.state == "running" else None
        best = getattr(prog, "best_val_loss", None)
        if best is None:
            best = getattr(job, "best_val_loss", None)
        state = job.state + (" (stalled)" if getattr(prog, "stalled", False) else "")
        rows.append({
            "job": job.id,
            "preset": job.preset,
            "state": state,
            "device": job_device(job),
            "epoch": "–" if epoch is None else (f"{epoch}/{epochs}" if epochs else str(epoch)),
            "train loss": _finite_or_none(getattr(prog, "train_loss", None)),
            "val loss": _finite_or_none(getattr(prog, "val_loss", None)),
            "best val": _finite_or_none(best),
            "elapsed": fmt_duration(elapsed),
            "ETA": fmt_duration(eta) if eta is not None else "–",
            "run": job.run_name,
        })
    cols = ["job", "preset", "state", "device", "epoch", "train loss", "val loss", "best val",
            "elapsed", "ETA", "run"]
    return pd.DataFrame(rows, columns=cols)


def _finite_or_none(x):
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def history_frame(metrics_by_run: Mapping[str, Sequence[Mapping]]) -> pd.DataFrame:
    """metrics.jsonl rows per run -> long frame (run, epoch, train_loss, val_loss, tf_ratio).
    Rows without an epoch (e.g. a final summary line) are skipped."""
    rows = []
    for run, metrics in metrics_by_run.items():
        for m in metrics or ():
            epoch = m.get("epoch")
            if epoch is None:
                continue
            rows.append({
                "run": run, "epoch": epoch,
                "train_loss": _finite_or_none(m.get("train_loss")),
                "val_loss": _finite_or_none(m.get("val_loss")),
                "tf_ratio": _finite_or_none(m.get("tf_ratio", m.get("teacher_forcing"))),
            })
    return pd.DataFrame(rows, columns=["run", "epoch", "train_loss", "val_loss", "tf_ratio"])


# ---------------------------------------------------------------------------- import reports
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
        file, dup = (d[0], d[1]) if isinstance(d, (tuple, list)) else (getattr(d, "file", d), getattr(d, "duplicate_of", ""))
        rows.append({"file": Path(str(file)).name, "duplicate of": Path(str(dup)).name})
    return pd.DataFrame(rows, columns=["file", "duplicate of"])


def save_profiles_json(profiles: Sequence[Profile], folder) -> Path:
    """Write profiles as Onyx-shaped JSON (roastcore.io.write_json) into `folder`, one file each,
    so that a job subprocess can load the folder with load_source."""
    from roastcore.io import write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(profiles):
        write_json(p, folder / f"{i:05d}_{sanitize_filename(p.id, 'roast')}.json")
    return folder


# ---------------------------------------------------------------------------- evaluation tables
def _num(d: Mapping | None, key: str):
    if not d:
        return None
    return _finite_or_none(d.get(key))


def tf_table(entries: Sequence[Mapping]) -> pd.DataFrame:
    """Teacher-forcing comparison rows, best first.

    Each entry: run (name), teacher_forcing (EvaluationReport.teacher_forcing dict), free_run
    (dict, optional), model (ModelConfig dict, optional), n_params (optional).
    """
    rows = []
    for e in entries:
        tf = e.get("teacher_forcing") or {}
        model = e.get("model") or {}
        mae = _num(tf, "mae_f")
        rows.append({
            "run": e["run"],
            "tf_mae_f": mae,
            "band": tf.get("band") or tf_band(mae),
            "persistence_mae_f": _num(tf, "persistence_mae_f"),
            "skill_ratio": _num(tf, "skill_ratio"),
            "free_run_mae_f": _num(e.get("free_run"), "mae_f"),
            "model_type": model.get("model_type"),
            "d_model": model.get("d_model"),
            "layers": model.get("n_layers"),
            "params": e.get("n_params"),
        })
    df = pd.DataFrame(rows, columns=["run", "tf_mae_f", "band", "persistence_mae_f", "skill_ratio",
                                     "free_run_mae_f", "model_type", "d_model", "layers", "params"])
    for col in ("tf_mae_f", "persistence_mae_f", "skill_ratio", "free_run_mae_f", "d_model", "layers", "params"):
        df[col] = pd.to_numeric(df[col], errors="coerce")  # None -> NaN, shown as a dash
    df = df.sort_values("tf_mae_f", na_position="last").reset_index(drop=True)
    df.insert(1, "best", ["★" if i == 0 and pd.notna(v) else "" for i, v in enumerate(df["tf_mae_f"])])
    return df


# A model "fails autoregressively" when free running is this much worse than teacher forcing
# and worse than the moderate band; see tf_conclusion.
AUTOREGRESSIVE_GAP = 3.0


def tf_conclusion(table: pd.DataFrame) -> tuple[str, str]:
    """(kind, text) about the best checkpoint: 'struggles' when even teacher forcing is
    moderate/poor; 'scheduled_sampling' when it learns with teacher forcing but its free-running
    MAE is AUTOREGRESSIVE_GAP times worse (and above 50 °F); 'needs_free_run' when that is not
    scored yet; 'ok' otherwise. kind drives the colour; text is shown as is."""
    if table is None or table.empty or pd.isna(table.iloc[0]["tf_mae_f"]):
        return "none", "No teacher-forcing result yet."
    best = table.iloc[0]
    tf, free = float(best["tf_mae_f"]), best.get("free_run_mae_f")
    band = tf_band(tf)
    if band in ("moderate", "poor"):
        return "struggles", (f"**{best['run']}** struggles even with teacher forcing (MAE {tf:.1f} °F, {band}): "
                             "the problem is the setup, not exposure bias. Check normalisation, model size "
                             "(params per sample) and learning rate before anything else.")
    if free is not None and pd.notna(free) and float(free) > max(AUTOREGRESSIVE_GAP * tf, 50.0):
        return "scheduled_sampling", (
            f"**{best['run']}** can learn (teacher-forcing MAE {tf:.1f} °F, {band}) but fails "
            f"autoregressively (free-running MAE {float(free):.1f} °F) → train with scheduled sampling.")
    if free is None or pd.isna(free):
        return "needs_free_run", (f"**{best['run']}** learns from real history (teacher-forcing MAE {tf:.1f} °F, "
                                  f"{band}). Whether it also holds up free-running is not scored yet.")
    return "ok", (f"**{best['run']}** learns the dynamics (teacher-forcing MAE {tf:.1f} °F, {band}) and holds "
                  f"up free-running (MAE {float(free):.1f} °F).")


FREE_RUN_COLUMNS = (
    ("mae_f", "MAE °F"), ("rmse_f", "RMSE °F"), ("finish_mae_f", "finish MAE °F"),
    ("tp_time_mae_s", "TP time MAE s"), ("fcs_time_mae_s", "FCs time MAE s"),
    ("dtr_mae_pct", "DTR MAE pp"), ("ror_mae_f_per_min", "RoR MAE °F/min"),
    ("physics_valid_pct", "physics valid %"), ("gen_std_f", "curve std °F"),
)
BASELINE_LABELS = {"mean_curve": "baseline: mean curve", "knn": "baseline: kNN",
                   "aligned_knn": "baseline: aligned kNN"}


def free_run_table(models: Mapping[str, Mapping], baselines: Mapping[str, Mapping] | None = None) -> pd.DataFrame:
    """Free-running metrics per checkpoint, then the baselines, sorted by MAE within each kind."""
    rows = []
    for name, fr in models.items():
        row = {"curve from": name, "kind": "model"}
        row.update({label: _num(fr, key) for key, label in FREE_RUN_COLUMNS})
        rows.append(row)
    for name, fr in (baselines or {}).items():
        row = {"curve from": BASELINE_LABELS.get(name, f"baseline: {name}"), "kind": "baseline"}
        row.update({label: _num(fr, key) for key, label in FREE_RUN_COLUMNS})
        rows.append(row)
    cols = ["curve from", "kind"] + [label for _, label in FREE_RUN_COLUMNS]
    df = pd.DataFrame(rows, columns=cols)
    if not df.empty:
        df = df.sort_values(["kind", "MAE °F"], ascending=[False, True], na_position="last").reset_index(drop=True)
    return df.round(2)


def physics_table(results: Mapping[str, object]) -> pd.DataFrame:
    """physics.PhysicsResult per curve -> one row per curve, ✓/✗ per check, failures spelled out."""
    rows = []
    for name, res in results.items():
        checks = getattr(res, "checks", {}) or {}
        row = {"curve": name, "all pass": "✓" if getattr(res, "passed", False) else "✗"}
        for check, cr in checks.items():
            row[check] = "✓" if cr.passed else "✗"
        row["why"] = "; ".join(getattr(res, "failures", []) or []) or "–"
        rows.append(row)
    return pd.DataFrame(rows)


def run_model_info(loaded) -> dict:
    """{'model': ModelConfig dict, 'n_params': int} of a checkpoints.LoadedRun."""
    from roastcore.model import count_parameters

    cfg = getattr(loaded, "config", None)
    model_cfg = getattr(cfg, "model", None) or getattr(getattr(loaded, "model", None), "config", None) or cfg
    info = {"model": as_dict(model_cfg)}
    model = getattr(loaded, "model", None)
    if model is not None:
        info["n_params"] = int(count_parameters(model))
    return info


# ---------------------------------------------------------------------------- generation
def validation_profiles(loaded, profiles: Sequence[Profile]) -> tuple[list[Profile], str]:
    """The run's validation roasts found in `profiles` (evaluate.select_split), and the split label."""
    from roastcore.evaluate import select_split

    manifest = getattr(loaded, "manifest", None) or {}
    try:
        val, _, label, _ = select_split(list(profiles), manifest, "val")
    except ValueError:
        return list(profiles), "all"
    return val, label


def generate_curves(loaded, profiles: Sequence[Profile], prefix_s: float = 0.0) -> list[np.ndarray]:
    """Free-running 1 s curves for `profiles` from a loaded run (generate.ModelGenerator)."""
    from roastcore.generate import ModelGenerator

    return ModelGenerator(loaded.model).generate_many(list(profiles), prefix_s=prefix_s)


def curve_profile(curve, name: str, like: Profile | None = None) -> Profile:
    """A generated 1 s curve as a Profile (for export), carrying the real roast's metadata."""
    meta = dataclasses.replace(like.meta, source_file=None) if like is not None else None
    kw = {"meta": meta} if meta is not None else {}
    return Profile(bt=np.asarray(curve, dtype=float), interval_s=1.0, id=sanitize_filename(name, "generated"), **kw)


def export_bytes(profile: Profile, suffix: str) -> bytes:
    """generate.export_profile to a temporary file, returned as bytes (for a download button)."""
    import tempfile

    from roastcore.generate import export_profile

    with tempfile.TemporaryDirectory() as tmp:
        path = export_profile(profile, Path(tmp) / f"curve{suffix}")
        return path.read_bytes()


def png_bytes(fig: go.Figure) -> bytes | None:
    """PNG of a figure via kaleido, or None when kaleido is not installed."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return None
    try:
        return fig.to_image(format="png", scale=2)
    except Exception:  # noqa: BLE001 - kaleido needs a browser; no PNG rather than an error
        return None


# ---------------------------------------------------------------------------- diagnosis
def step_table(trace: Mapping) -> pd.DataFrame:
    """diagnose.StepTrace.to_dict() rows -> display table (time as m:ss)."""
    rows = trace.get("rows") or []
    df = pd.DataFrame(rows, columns=["step", "time_s", "raw_f", "clamped_f", "real_f", "error_f", "clamped"])
    df.insert(2, "time", [fmt_mmss(t) for t in df["time_s"]])
    df = df.drop(columns=["time_s"]).rename(columns={
        "raw_f": "raw °F", "clamped_f": "fed back °F", "real_f": "real °F", "error_f": "error °F",
        "clamped": "clamp active"})
    return df.round(2)


def step_trace_arrays(trace: Mapping) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rows = trace.get("rows") or []
    arr = {k: np.array([r[k] for r in rows], dtype=float) for k in ("time_s", "raw_f", "clamped_f", "real_f")}
    return arr["time_s"], arr["raw_f"], arr["clamped_f"], arr["real_f"]


VERDICT_STYLE = {"healthy": "success", "below baseline": "info", "exposure bias": "warning",
                 "did not learn": "error", "collapsed": "error"}


def job_fraction(prog) -> float:
    """Share of epochs done (0..1) from a jobs.JobProgress."""
    epoch, epochs = getattr(prog, "epoch", None), getattr(prog, "epochs", None)
    if not epoch or not epochs:
        return 0.0
    return float(min(max(epoch / epochs, 0.0), 1.0))


def job_line(job, prog=None) -> str:
    """One line per job for progress bars and logs: preset · id · state · epoch · losses · times."""
    bits = [f"{job.preset} · {job.id} · {job.state}"]
    epoch, epochs = getattr(prog, "epoch", None), getattr(prog, "epochs", None) or getattr(job, "epochs", None)
    if epoch is not None:
        bits.append(f"epoch {epoch}/{epochs}" if epochs else f"epoch {epoch}")
    for label, attr in (("train", "train_loss"), ("val", "val_loss")):
        v = _finite_or_none(getattr(prog, attr, None))
        if v is not None:
            bits.append(f"{label} {v:.4g}")
    elapsed = getattr(prog, "elapsed_s", None)
    if elapsed is not None:
        bits.append(f"elapsed {fmt_duration(elapsed)}")
    eta = getattr(prog, "eta_s", None)
    if eta is not None and job.state == "running":
        bits.append(f"ETA {fmt_duration(eta)}")
    if getattr(prog, "stalled", False):
        bits.append("stalled")
    return " · ".join(bits)


# ---------------------------------------------------------------------------- experiment setup
HEALTH_COLORS = {"healthy": "#d4edda", "high": "#fff3cd", "severe": "#ffd8b5", "extreme": "#f8d7da"}


def health_band_figure(per_sample: float, bands: Sequence[tuple[float, str]], height: int = 150) -> go.Figure:
    """The params-per-training-sample health bands (log axis) with the current value marked."""
    fig = go.Figure()
    lo = 1.0
    top = max(float(per_sample or 1.0) * 3, bands[-2][0] * 3 if len(bands) > 1 else 1e5)
    for limit, label in bands:
        hi = min(float(limit), top)
        fig.add_vrect(x0=lo, x1=hi, fillcolor=HEALTH_COLORS.get(label, "#eee"), opacity=0.9, line_width=0,
                      layer="below", annotation_text=label, annotation_position="top left",
                      annotation_font_size=11)
        lo = hi
    x = max(float(per_sample or 1.0), 1.0)
    fig.add_trace(go.Scatter(x=[x], y=[0.5], mode="markers+text", text=[f"{per_sample:,.0f}"],
                             textposition="bottom center", marker=dict(size=16, color="#111", symbol="diamond"),
                             hovertemplate="%{x:,.0f} params per training roast<extra></extra>", showlegend=False))
    fig.update_xaxes(type="log", range=[0, math.log10(top)], title_text="parameters per training roast")
    fig.update_yaxes(visible=False, range=[0, 1])
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10), template="plotly_white")
    return fig


LR_CHOICES = (1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2)


def choices_with(options: Iterable, *extra) -> list:
    """Sorted options that always include the given values (a preset's own setting)."""
    return sorted(set(options) | {e for e in extra if e is not None})


def overrides_from(base: Mapping[str, Mapping], values: Mapping[str, object]) -> dict:
    """Flat --set overrides for the fields of `values` that differ from the base experiment's
    model/train dicts."""
    out = {}
    for key, value in values.items():
        section = "model" if key in base.get("model", {}) else "train"
        old = base.get(section, {}).get(key)
        if _norm_value(old) != _norm_value(value):
            out[key] = value
    return out


# ---------------------------------------------------------------------------- evaluation access
def teacher_forcing_result(loaded, profiles: Sequence[Profile]) -> dict:
    """evaluate.teacher_forcing on the run's validation roasts (what evaluate_run does first),
    without the slower free-running and baseline stages. Adds 'split' and 'n_val'."""
    from roastcore.evaluate import teacher_forcing

    model = loaded.model
    val, split = validation_profiles(loaded, profiles)
    if not val:
        raise ValueError("the dataset holds none of this run's validation roasts")
    tf = teacher_forcing(model, val, model.encoder, float(model.config.step_s), max_len=model.config.max_len)
    out = tf.to_dict()
    out.pop("per_profile", None)
    out.update(split=split, n_val=len(val))
    return out


def evaluation_is_cached(run_dir, profiles: Sequence[Profile], split: str = "val", prefix_s: float = 0.0) -> bool:
    """True when evaluate.evaluate_run would answer from its on-disk cache
    (RUN_DIR/eval_cache/<evaluate.cache_key>.json), i.e. instantly."""
    from roastcore.evaluate import cache_key

    try:
        key = cache_key(Path(run_dir), list(profiles), split, prefix_s)
    except (OSError, ValueError):
        return False
    return (Path(run_dir) / "eval_cache" / f"{key}.json").is_file()
