"""Plotly figures of roasts and model results: curves, overlays, losses, teacher forcing, traces.

    from roastcore.plotting import curves_figure, overlay_figure
    curves_figure(profiles).show()

Figures are built from what profile.py, evaluate.py, diagnose.py and the job store return; nothing
here runs a model. Time axes read m:ss from CHARGE; temperatures are °F. The dashboard draws the
same figures (pages/), and so can a notebook.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from roastcore.metrics import MAE_BANDS
from roastcore.model import DEFAULT_CLAMP_F
from roastcore.profile import EVENT_NAMES, Profile, rate_of_rise

# One colour per checkpoint, stable across pages: Plotly's qualitative palette (colour-blind
# friendlier than matplotlib's tab10 for the first few). The real curve is always black.
PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
)
REAL_COLOR = "#111111"
EVENT_COLORS = {"TP": "#6c757d", "DRY_END": "#b8860b", "FCs": "#c0392b", "FCe": "#e67e22",
                "DROP": "#2c3e50"}
HEALTH_COLORS = {"healthy": "#d4edda", "high": "#fff3cd", "severe": "#ffd8b5", "extreme": "#f8d7da"}

# Teacher-forcing MAE bands (evaluate.MAE_BANDS) as (upper limit °F, label, fill colour).
BAND_FILLS = {"excellent": "#d4edda", "good": "#e2f0d9", "moderate": "#fff3cd", "poor": "#f8d7da"}
TF_BANDS = tuple((limit, label, BAND_FILLS[label]) for limit, label in MAE_BANDS) + (
    (math.inf, "poor", BAND_FILLS["poor"]),)


# ---------------------------------------------------------------------------- time axis
def fmt_mmss(seconds) -> str:
    """Seconds -> 'm:ss' (negative -> '-m:ss'); None/NaN -> '–'."""
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(s):
        return "–"
    sign = "-" if s < 0 else ""
    total = int(round(abs(s)))
    return f"{sign}{total // 60}:{total % 60:02d}"


def time_ticks(max_s: float) -> tuple[list[float], list[str]]:
    """Tick positions (s) and 'm:ss' labels for a time axis running 0..max_s."""
    max_s = max(float(max_s or 0.0), 1.0)
    step = next((s for s in (15, 30, 60, 120, 180, 300, 600) if max_s / s <= 12), 900)
    vals = [float(v) for v in np.arange(0.0, max_s + 1e-9, step)]
    return vals, [fmt_mmss(v) for v in vals]


# ---------------------------------------------------------------------------- colours
def color_map(names: Sequence[str]) -> dict[str, str]:
    """A colour per run name; the order of `names` (the picker's list) fixes the assignment, so
    a checkpoint keeps its colour on every page."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def color_for(name: str, colors: Mapping[str, str] | None = None) -> str:
    """The colour `colors` gives `name`, else one derived from the name (stable across runs)."""
    if colors and name in colors:
        return colors[name]
    digest = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16)
    return PALETTE[digest % len(PALETTE)]


# ---------------------------------------------------------------------------- building blocks
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
    """One temperature (or RoR) line with an m:ss hover."""
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


# ---------------------------------------------------------------------------- roast curves
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


# ---------------------------------------------------------------------------- training and scoring
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
        text=[f"{v:.1f} °F" + ("  ★ best" if r == best else "")
              for r, v in zip(df["run"], df["tf_mae_f"], strict=True)],
        textposition="outside", hovertemplate="%{y}: %{x:.2f} °F<extra></extra>",
    ))
    if baseline_mae is not None and math.isfinite(baseline_mae):
        fig.add_vline(x=float(baseline_mae), line=dict(color="#333", dash="dash"),
                      annotation_text=f"persistence {baseline_mae:.1f} °F", annotation_position="bottom right")
    fig.update_xaxes(title_text="teacher-forcing MAE (°F, lower is better)", range=[0, max_x])
    fig.update_layout(showlegend=False)
    return _layout(fig, max(height, 120 + 40 * len(df)))


def step_trace_arrays(trace: Mapping) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(time_s, raw_f, clamped_f, real_f) arrays of a diagnose.StepTrace.to_dict()."""
    rows = trace.get("rows") or []
    arr = {k: np.array([r[k] for r in rows], dtype=float) for k in ("time_s", "raw_f", "clamped_f", "real_f")}
    return arr["time_s"], arr["raw_f"], arr["clamped_f"], arr["real_f"]


def step_trace_figure(times_s, raw_f, clamped_f, real_f, clamp: tuple[float, float] | None = DEFAULT_CLAMP_F,
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


def health_band_figure(per_sample: float, bands: Sequence[tuple[float, str]], height: int = 150) -> go.Figure:
    """The params-per-training-sample health bands (log axis) with the current value marked.
    `bands`: (upper limit, label) pairs, as experiments.HEALTH_BANDS."""
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
