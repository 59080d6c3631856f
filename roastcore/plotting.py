"""Plotly figures of roasts and model results: curves, overlays, losses, teacher forcing, traces.

    from roastcore.plotting import curves_figure, overlay_figure
    curves_figure(profiles).show()

Figures are built from what profile.py, evaluate.py, diagnose.py and the job store return; nothing
here runs a model. Time axes read m:ss from CHARGE; temperatures are °F. The dashboard draws the
same figures (pages/), and so can a notebook.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from roastcore.forecast_bands import ConformalBands
from roastcore.metrics import MAE_BANDS
from roastcore.model import DEFAULT_CLAMP_F
from roastcore.profile import EVENT_NAMES, Profile, rate_of_rise

# One colour per checkpoint, stable across pages: Plotly's qualitative palette (colour-blind
# friendlier than matplotlib's tab10 for the first few).
PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
)
# Theme-following colours. Streamlit's st.plotly_chart (theme="streamlit", its default) rewrites
# these placeholder colours in the figure to the current theme's: INK becomes the theme's
# near-black (light theme) or near-white (dark theme), BACKGROUND the page background. Anywhere
# else (a notebook, a PNG) they read as near-black and near-black-blue, fine on plotly_white.
# The real curve, reference lines and outlines use INK so they stay visible in both themes.
INK = "#000037"  # streamlit_plotly_theme.GRAY_90
BACKGROUND = "#000038"  # streamlit_plotly_theme.BG_COLOR
REAL_COLOR = INK
EVENT_COLORS = {"TP": "#6c757d", "DRY_END": "#b8860b", "FCs": "#c0392b", "FCe": "#e67e22",
                "DROP": "#8e44ad"}
# Fills are translucent so bands read on a white and on a near-black background alike.
HEALTH_COLORS = {"healthy": "rgba(40,167,69,0.30)", "high": "rgba(255,193,7,0.30)",
                 "severe": "rgba(253,126,20,0.35)", "extreme": "rgba(220,53,69,0.35)"}

# Teacher-forcing MAE bands (evaluate.MAE_BANDS) as (upper limit °F, label, fill colour).
BAND_FILLS = {"excellent": "rgba(40,167,69,0.22)", "good": "rgba(140,200,90,0.20)",
              "moderate": "rgba(255,193,7,0.22)", "poor": "rgba(220,53,69,0.22)"}
TF_BANDS = tuple((limit, label, BAND_FILLS[label]) for limit, label in MAE_BANDS) + (
    (math.inf, "poor", BAND_FILLS["poor"]),)
# A band is labelled only when it spans at least this share of the (log) axis, so labels of
# narrow bands never overlap their neighbours'.
BAND_LABEL_MIN_SHARE = 0.12


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


def _layout_values(height: int = 420, title: str | None = None) -> dict:
    values = dict(height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                  hovermode="x unified", legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
                  template=_white())
    if title is not None:
        values["title"] = dict(text=title)
    return values


def _figure(data: list[dict], layout: dict) -> go.Figure:
    """A figure from plain trace and layout dicts, without Plotly's per-property validation:
    validating cost 0.1-0.2 s a figure on an idle core and 0.3-1 s on two busy ones, on every
    render of a dashboard page (issue 14's "any page <= 1 s"). The dicts carry only what Plotly
    accepts (tests/test_plotting.py validates every figure this module builds) and
    layout['template'] is the plotly_white object (_white), which validation would resolve."""
    return go.Figure(data=[_without_none(t) for t in data], layout=_without_none(layout), _validate=False)


def _without_none(value):
    """Dicts (and lists of dicts) without their None entries, as validation leaves them."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [_without_none(v) for v in value]
    return value


def _layout(fig: go.Figure, height: int = 420, title: str | None = None) -> go.Figure:
    fig.update_layout(**_layout_values(height, title))
    return fig


def _hover_t(times: np.ndarray) -> np.ndarray:
    """m:ss labels of the times (every curve of a figure shares its grid: computed once)."""
    times = np.asarray(times, dtype=float)
    return _hover_labels(times.tobytes())


@functools.lru_cache(maxsize=32)
def _hover_labels(raw: bytes) -> np.ndarray:
    labels = np.array([fmt_mmss(t) for t in np.frombuffer(raw, dtype=float)], dtype=object)
    labels.flags.writeable = False  # shared between figures
    return labels


def curve_trace(times_s, temps_f, name: str, color: str, dash: str | None = None, width: float = 2.0,
                showlegend: bool = True, legendgroup: str | None = None, unit: str = "°F") -> dict:
    """One temperature (or RoR) line with an m:ss hover, as a Plotly trace dict."""
    times_s = np.asarray(times_s, dtype=float)
    temps_f = np.asarray(temps_f, dtype=float)
    return dict(type="scatter", x=times_s, y=temps_f, name=name, mode="lines", customdata=_hover_t(times_s),
                line=dict(color=color, dash=dash, width=width), showlegend=showlegend,
                legendgroup=legendgroup or name,
                hovertemplate=f"%{{customdata}} · %{{y:.1f}} {unit}<extra>{name}</extra>")


def add_curve(fig: go.Figure, times_s, temps_f, name: str, color: str, row=None, col=None,
              dash: str | None = None, width: float = 2.0, showlegend: bool = True,
              legendgroup: str | None = None, unit: str = "°F") -> None:
    """One temperature (or RoR) line with an m:ss hover."""
    kw = {} if row is None else {"row": row, "col": col}
    fig.add_trace(go.Scatter(curve_trace(times_s, temps_f, name, color, dash, width, showlegend, legendgroup,
                                         unit)), **kw)


def event_trace(profile: Profile, names=EVENT_NAMES, color: str | None = None, symbol: str = "diamond",
                label_suffix: str = "", labels: bool = True) -> dict | None:
    """Markers for the profile's events (TP / DRY_END / FCs / FCe / DROP) on its BT curve, as a
    Plotly trace dict (None without events)."""
    show_text = labels
    xs, ys, labels, colors = [], [], [], []
    for name in names:
        t = profile.event_time(name)
        if t is None:
            continue
        xs.append(t)
        ys.append(float(np.interp(t, profile.times_s, profile.bt)))
        labels.append(name)
        colors.append(color or EVENT_COLORS.get(name, INK))
    if not xs:
        return None
    return dict(
        type="scatter", x=xs, y=ys, mode="markers+text" if show_text else "markers", text=labels,
        textposition="top center",
        marker=dict(size=9, color=colors, symbol=symbol, line=dict(width=1, color=BACKGROUND)),
        name=f"events{label_suffix}", showlegend=False,
        customdata=np.array([[lab, fmt_mmss(x)] for lab, x in zip(labels, xs, strict=True)], dtype=object),
        hovertemplate="%{customdata[0]} at %{customdata[1]} · %{y:.1f} °F<extra></extra>")


def add_event_markers(fig: go.Figure, profile: Profile, row=None, col=None, names=EVENT_NAMES,
                      color: str | None = None, symbol: str = "diamond", label_suffix: str = "",
                      labels: bool = True) -> None:
    """Markers for the profile's events (TP / DRY_END / FCs / FCe / DROP) on its BT curve."""
    trace = event_trace(profile, names, color, symbol, label_suffix, labels)
    if trace is not None:
        fig.add_trace(go.Scatter(trace), **({} if row is None else {"row": row, "col": col}))


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
    bt_axes, ror_axes = dict(xaxis="x", yaxis="y"), dict(xaxis="x2", yaxis="y2")
    traces: list[dict] = []
    max_s = 1.0
    for i, p in enumerate(profiles):
        color = PALETTE[i % len(PALETTE)]
        label = p.id
        traces.append({**curve_trace(p.times_s, p.bt, label, color), **bt_axes})
        if show_ror:
            traces.append({**curve_trace(p.times_s, p.ror(), f"{label} RoR", color, width=1.2, showlegend=False,
                                         legendgroup=label, unit="°F/min"), **ror_axes})
        if show_events and (events := event_trace(p, labels=i == 0)) is not None:
            traces.append({**events, **bt_axes})
        max_s = max(max_s, p.duration_s)
    layout = {**json.loads(_stack_layout(rows)), **_layout_values(height)}
    layout["yaxis"]["title"] = dict(text="BT (°F)")
    layout[f"xaxis{rows if rows > 1 else ''}"].update(_time_axis_dict(max_s))
    if show_ror:
        layout["yaxis2"].update(title=dict(text="RoR (°F/min)"),
                                range=ror_range((p.bt, p.interval_s) for p in profiles))
        layout["xaxis"].update(_time_axis_dict(max_s, title=""))
    return _figure(traces, layout)


@functools.lru_cache(maxsize=4)
def _stack_layout(rows: int) -> str:
    """make_subplots' layout for `rows` stacked plots sharing x (BT over RoR), as JSON: building
    it with make_subplots and add_trace(row=...) on every render cost ~0.1 s (seconds on a busy
    machine), the figure built from dicts a few ms."""
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        row_heights=[0.68, 0.32] if rows == 2 else [1.0])
    layout = fig.layout.to_plotly_json()
    layout.pop("template", None)  # set once by the caller: validating a template costs ~30 ms
    return json.dumps(layout)


def _time_axis_dict(max_s: float, title: str = "time (m:ss)") -> dict:
    vals, text = time_ticks(max_s)
    return dict(tickmode="array", tickvals=vals, ticktext=text, title=dict(text=title))


def overlay_figure(real: Profile | None, generated: Mapping[str, np.ndarray], step_s: float,
                   colors: Mapping[str, str] | None = None, show_ror: bool = True,
                   show_events: bool = True, height: int = 560, title: str | None = None,
                   bands: Mapping[str, dict] | None = None) -> go.Figure:
    """The real curve against each checkpoint's generated curve (same time grid `step_s`),
    with an RoR subplot and event markers (real: diamonds; generated: detected TP, DROP).
    `bands`: a run's 80% band (evaluate.charge_band, a ConformalBands dict) drawn around its
    curve."""
    rows = 2 if show_ror else 1
    bt_axes, ror_axes = dict(xaxis="x", yaxis="y"), dict(xaxis="x2", yaxis="y2")
    traces: list[dict] = []
    max_s = 1.0
    if real is not None:
        traces.append({**curve_trace(real.times_s, real.bt, "real", REAL_COLOR, width=2.6), **bt_axes})
        if show_ror:
            traces.append({**curve_trace(real.times_s, real.ror(), "real RoR", REAL_COLOR, width=1.4,
                                         showlegend=False, legendgroup="real", unit="°F/min"), **ror_axes})
        if show_events and (events := event_trace(real)) is not None:
            traces.append({**events, **bt_axes})
        max_s = real.duration_s
    for name, curve in generated.items():
        curve = np.asarray(curve, dtype=float)
        curve = curve[np.isfinite(curve)]
        if curve.size < 2:
            continue
        t = np.arange(curve.size) * float(step_s)
        color = color_for(name, colors)
        if (band := (bands or {}).get(name)) is not None:
            traces += [{**edge, **bt_axes} for edge in _charge_band_traces(t, curve, band, name, color)]
        traces.append({**curve_trace(t, curve, name, color, dash="dash"), **bt_axes})
        if show_ror:
            traces.append({**curve_trace(t, rate_of_rise(curve, float(step_s)), f"{name} RoR", color, width=1.2,
                                         dash="dash", showlegend=False, legendgroup=name, unit="°F/min"),
                           **ror_axes})
        if show_events and curve.size >= 3:
            try:
                events = event_trace(Profile(bt=curve, interval_s=float(step_s), id=name), names=("TP", "DROP"),
                                     color=color, symbol="circle", label_suffix=f" {name}")
            except ValueError:
                events = None  # an implausible generated curve: draw it, skip its markers
            if events is not None:
                traces.append({**events, **bt_axes})
        max_s = max(max_s, t[-1])
    layout = {**json.loads(_stack_layout(rows)), **_layout_values(height, title)}
    layout["yaxis"]["title"] = dict(text="BT (°F)")
    layout[f"xaxis{rows if rows > 1 else ''}"].update(_time_axis_dict(max_s))
    if show_ror:
        basis = [(real.bt, real.interval_s)] if real is not None else [
            (np.asarray(c, dtype=float), float(step_s)) for c in generated.values()]
        layout["yaxis2"].update(title=dict(text="RoR (°F/min)"), range=ror_range(basis))
        layout["xaxis"].update(_time_axis_dict(max_s, title=""))
    return _figure(traces, layout)


def _charge_band_traces(t: np.ndarray, curve: np.ndarray, band: dict, name: str, color: str) -> list[dict]:
    """The upper edge, then the lower edge filled up to it ('tonexty'), of a generated curve's band."""
    bands = ConformalBands(**band)
    cut = bands.cuts_s[0]
    after = t > cut
    if after.sum() < 2:
        return []
    lo, hi = bands.offsets(cut, t[after] - cut)
    edge = dict(type="scatter", x=t[after], mode="lines", line=dict(width=0, color=color),
                name=f"{name} 80% band", legendgroup=name, showlegend=False, hoverinfo="skip")
    return [edge | dict(y=curve[after] + hi),
            edge | dict(y=curve[after] + lo, fill="tonexty", fillcolor=_rgba(color, 0.14))]


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
    scheduled sampling) on a secondary axis. Epoch ticks are whole numbers; log-axis ticks read
    as numbers (0.3, 0.5, 1), never as Plotly's bare mantissas (3, 5).

    `history` columns: run, epoch, train_loss, val_loss and optionally tf_ratio. Losses are in
    model units; the train loss is the training objective (it may add rollout or scheduled-
    sampling terms), so it need not be comparable with the validation loss.
    """
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if history is None or history.empty:
        return _layout(fig, height)
    for run, df in history.groupby("run", sort=False):
        color = color_for(str(run), colors)
        df = df.sort_values("epoch")
        if "train_loss" in df and df["train_loss"].notna().any():
            fig.add_trace(go.Scatter(x=df["epoch"], y=df["train_loss"], name=f"{run} train objective",
                                     mode="lines", line=dict(color=color, dash="dot"),
                                     hovertemplate="epoch %{x} · train objective %{y:.4g}<extra></extra>"),
                          secondary_y=False)
        if "val_loss" in df and df["val_loss"].notna().any():
            fig.add_trace(go.Scatter(x=df["epoch"], y=df["val_loss"], name=f"{run} val loss", mode="lines+markers",
                                     line=dict(color=color), marker=dict(size=4),
                                     hovertemplate="epoch %{x} · val loss %{y:.4g}<extra></extra>"),
                          secondary_y=False)
        if "tf_ratio" in df and df["tf_ratio"].notna().any() and df["tf_ratio"].nunique() > 1:
            fig.add_trace(go.Scatter(x=df["epoch"], y=df["tf_ratio"], name=f"{run} teacher forcing",
                                     mode="lines", line=dict(color=color, dash="dashdot", width=1)),
                          secondary_y=True)
    max_epoch = float(pd.to_numeric(history["epoch"], errors="coerce").max())
    fig.update_xaxes(title_text="epoch", tickmode="linear", tick0=0, dtick=epoch_dtick(max_epoch),
                     tickformat="d")
    fig.update_yaxes(title_text="loss (model units)", type="log" if log_y else "linear", tickformat="~g",
                     secondary_y=False)
    fig.update_yaxes(title_text="teacher-forcing ratio", range=[0, 1.05], secondary_y=True, showgrid=False)
    return _layout(fig, height)


def epoch_dtick(max_epoch: float, max_ticks: int = 12) -> int:
    """A whole-number tick step for an epoch axis running to `max_epoch` (1, 2, 5, 10, 20, ...)."""
    if not math.isfinite(max_epoch) or max_epoch <= max_ticks:
        return 1
    for step in (2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000):
        if max_epoch / step <= max_ticks:
            return step
    return int(10 ** math.ceil(math.log10(max_epoch / max_ticks)))


def _tf_best(df: pd.DataFrame) -> str | None:
    """The run marked best: the table's own 'best' mark, else the lowest MAE that beats its
    persistence. None when no run beats persistence (then nothing is marked)."""
    if "best" in df:
        marked = df.loc[df["best"].astype(str).str.len() > 0, "run"]
        return str(marked.iloc[0]) if len(marked) else None
    ok = df[df["tf_mae_f"] < df["persistence_mae_f"]]
    return None if ok.empty else str(ok.sort_values("tf_mae_f").iloc[0]["run"])


def tf_comparison_figure(table: pd.DataFrame, baseline_mae: float | None = None,
                         colors: Mapping[str, str] | None = None, height: int = 420) -> go.Figure:
    """Horizontal bars of teacher-forcing MAE per checkpoint (sorted, best on top) on a log axis
    (one run at 300 °F does not squash the rest), each with its own persistence mark: the
    persistence MAE at that run's step size (a 5 s persistence is never drawn against a 1 s
    model). The interpretation bands are shaded; only a run that beats its persistence is
    marked "★ best".

    `table` columns: run, tf_mae_f, and persistence_mae_f, step_s, best where known (as
    pages/_eval_tables.tf_table makes them). `baseline_mae` stands in for a missing
    persistence_mae_f.
    """
    empty = _figure([], _layout_values(height))
    if table is None or table.empty:
        return empty
    df = table.copy()
    df["tf_mae_f"] = pd.to_numeric(df["tf_mae_f"], errors="coerce")
    df = df[df["tf_mae_f"].notna() & (df["tf_mae_f"] > 0)]
    if df.empty:
        return empty
    if "persistence_mae_f" not in df:
        df["persistence_mae_f"] = np.nan
    df["persistence_mae_f"] = pd.to_numeric(df["persistence_mae_f"], errors="coerce")
    if baseline_mae is not None and math.isfinite(baseline_mae):
        df["persistence_mae_f"] = df["persistence_mae_f"].fillna(float(baseline_mae))
    if "step_s" not in df:
        df["step_s"] = np.nan
    df = df.sort_values("tf_mae_f", ascending=False)
    best = _tf_best(df)
    values = np.concatenate([df["tf_mae_f"].to_numpy(float), df["persistence_mae_f"].dropna().to_numpy(float)])
    values = values[values > 0]
    lo, hi = math.log10(values.min() / 3.0), math.log10(values.max() * 1.5)
    lo, hi = min(lo, math.log10(0.5)), max(hi, math.log10(20.0))
    shapes, notes = _log_band_parts(TF_BANDS, lo, hi)
    runs = [str(r) for r in df["run"]]
    texts = [_tf_bar_text(row, best) for row in df.itertuples()]
    data = [dict(
        type="bar", y=np.asarray(runs, dtype=object), x=df["tf_mae_f"].to_numpy(float), orientation="h",
        name="teacher-forcing MAE",
        marker=dict(color=[color_for(r, colors) for r in runs],
                    line=dict(color=[INK if r == best else "rgba(0,0,0,0)" for r in runs], width=2)),
        text=texts, textposition="none", showlegend=False, hovertemplate="%{y}: %{text}<extra></extra>",
    )]
    # The figures in a column right of the plot: beside the bars they would cross the marks.
    notes += [dict(x=1.0, xref="paper", xanchor="left", xshift=8, y=run, yref="y", text=text, showarrow=False,
                   align="left", font=dict(size=12), name=f"value {run}") for run, text in zip(runs, texts, strict=True)]
    for step, part in df[df["persistence_mae_f"].notna()].groupby(df["step_s"].fillna(-1.0), sort=True):
        label = "persistence" + (f" at {step:g} s steps" if step > 0 else "")
        data.append(dict(
            type="scatter", y=np.asarray([str(r) for r in part["run"]], dtype=object),
            x=part["persistence_mae_f"].to_numpy(float), mode="markers", name=label,
            marker=dict(symbol="line-ns", size=26, line=dict(width=3, color=INK)),
            hovertemplate="%{y}: " + label + " %{x:.2f} °F<extra></extra>",
        ))
    layout = _layout_values(max(height, 140 + 44 * len(df)))
    layout["margin"]["r"] = 250
    layout.update(shapes=shapes, annotations=notes, showlegend=True, bargap=0.35,
                  xaxis=dict(title=dict(text="teacher-forcing MAE (°F, log scale, lower is better)"), type="log",
                             range=[lo, hi], tickformat="~g"))
    return _figure(data, layout)


def _tf_bar_text(row, best: str | None) -> str:
    text = f"{row.tf_mae_f:.2f} °F"
    persistence = getattr(row, "persistence_mae_f", float("nan"))
    if persistence and math.isfinite(persistence) and persistence > 0:
        ratio = row.tf_mae_f / persistence
        text += f" · {ratio:.2g}× persistence" if ratio < 10 else f" · {ratio:,.0f}× persistence"
    return text + ("  ★ best" if row.run == best else "")


def _log_band_parts(bands: Sequence[tuple[float, str, str]], lo: float, hi: float,
                    font_size: int = 11) -> tuple[list[dict], list[dict]]:
    """(shapes, annotations) shading (upper limit, label, fill) bands over a log axis showing
    [lo, hi] (log10 units); each band spanning at least BAND_LABEL_MIN_SHARE of the axis is
    labelled, centred in it, so no two labels overlap. Shapes take data units on a log axis,
    annotations log10 units. Plain dicts: add_vrect costs ~25 ms a band."""
    start = 10.0 ** lo
    shapes, notes = [], []
    for limit, label, fill in bands:
        x0, x1 = max(start, 10.0 ** lo), min(float(limit), 10.0 ** hi)
        start = float(limit)
        if x1 <= x0:
            continue
        shapes.append(dict(type="rect", xref="x", yref="paper", x0=x0, x1=x1, y0=0, y1=1, fillcolor=fill,
                           opacity=1.0, line=dict(width=0), layer="below"))
        share = (math.log10(x1) - math.log10(x0)) / (hi - lo)
        if share >= BAND_LABEL_MIN_SHARE:
            notes.append(dict(x=(math.log10(x0) + math.log10(x1)) / 2, xref="x", y=1.0, yref="paper",
                              yanchor="top", text=label, showarrow=False, font=dict(size=font_size),
                              name=f"band {label}"))
        if limit >= 10.0 ** hi:
            break
    return shapes, notes


def step_trace_arrays(trace: Mapping) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(time_s, raw_f, clamped_f, real_f) arrays of a diagnose.StepTrace.to_dict()."""
    rows = trace.get("rows") or []
    arr = {k: np.array([r[k] for r in rows], dtype=float) for k in ("time_s", "raw_f", "clamped_f", "real_f")}
    return arr["time_s"], arr["raw_f"], arr["clamped_f"], arr["real_f"]


def step_trace_figure(times_s, raw_f, clamped_f, real_f, clamp: tuple[float, float] | None = DEFAULT_CLAMP_F,
                      height: int = 460, name: str = "model") -> go.Figure:
    """Raw vs clamped vs real per generation step with the clamp band shaded."""
    t = np.asarray(times_s, dtype=float)
    layout = _layout_values(height)
    layout.update(yaxis=dict(title=dict(text="BT (°F)")), xaxis=_time_axis_dict(float(t[-1]) if t.size else 1.0))
    if clamp is not None:
        layout.update(
            shapes=[dict(type="rect", xref="paper", yref="y", x0=0, x1=1, y0=clamp[0], y1=clamp[1],
                         fillcolor="rgba(13,110,253,0.15)", opacity=1.0, line=dict(width=0), layer="below")],
            annotations=[dict(xref="paper", yref="y", x=0, y=clamp[1], xanchor="left", yanchor="top",
                              text=f"clamp {clamp[0]:.0f}–{clamp[1]:.0f} °F", showarrow=False)])
    return _figure([curve_trace(t, real_f, "real", REAL_COLOR, width=2.6),
                    curve_trace(t, raw_f, f"{name} raw", "#d62728", dash="dot"),
                    curve_trace(t, clamped_f, f"{name} clamped", "#1f77b4")], layout)


def health_band_figure(per_sample: float, bands: Sequence[tuple[float, str]], height: int = 150) -> go.Figure:
    """The params-per-training-sample health bands (log axis) with the current value marked.
    `bands`: (upper limit, label) pairs, as experiments.HEALTH_BANDS."""
    top = max(float(per_sample or 1.0) * 3, bands[-2][0] * 10 if len(bands) > 1 else 1e5)
    fills = [(limit, label, HEALTH_COLORS.get(label, "rgba(128,128,128,0.3)")) for limit, label in bands]
    shapes, notes = _log_band_parts(fills, 0.0, math.log10(top))
    x = max(float(per_sample or 1.0), 1.0)
    marker = dict(type="scatter", x=[x], y=[0.45], mode="markers+text", text=[f"{per_sample:,.0f}"],
                  textposition="bottom center", marker=dict(size=16, color=INK, symbol="diamond"),
                  hovertemplate="%{x:,.0f} params per training roast<extra></extra>", showlegend=False)
    layout = dict(height=height, margin=dict(l=10, r=10, t=10, b=10), template=_white(), shapes=shapes,
                  annotations=notes, yaxis=dict(visible=False, range=[0, 1]),
                  xaxis=dict(type="log", range=[0, math.log10(top)], title=dict(text="parameters per training roast"),
                             tickformat="~s"))
    return _figure([marker], layout)


# ---------------------------------------------------------------------------- forecasts (issue 16)
# One colour per forecast method (roastcore.forecast_eval.METHODS), the same on every frame and page.
FORECAST_COLORS = {"prefix_knn": "#1f77b4", "linear_projection": "#ff7f0e", "ror_decay": "#2ca02c",
                   "model": "#d62728", "model_prefix_prior": "#9467bd", "forecast": "#8c564b",
                   "knn_residual": "#e377c2"}
# The real rest of a replayed roast, greyed in: a mid grey reads on the light and the dark theme.
REST_COLOR = "rgba(128,128,128,0.65)"


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


def _time_band(t, lo, hi) -> str:
    lo_text = "?" if lo is None else fmt_mmss(lo)
    hi_text = "later" if hi is None else fmt_mmss(hi)
    return f"{fmt_mmss(t)} ({lo_text}–{hi_text})"


def _line(x, y, name: str, color: str, dash: str | None = None, width: float = 2.0, **kw) -> dict:
    """A temperature line as a plain trace dict with an m:ss hover."""
    x = np.asarray(x, dtype=float)
    return dict(type="scatter", x=x, y=np.asarray(y, dtype=float), name=name, mode="lines",
                line=dict(color=color, dash=dash, width=width), customdata=_hover_t(x), legendgroup=name,
                hovertemplate=f"%{{customdata}} · %{{y:.1f}} °F<extra>{name}</extra>") | kw


def _events(profile: Profile, names, color: str | None, name: str) -> list[dict]:
    """The profile's events (TP .. DROP) among `names` as markers on its curve."""
    ts = [(n, profile.event_time(n)) for n in names if profile.event_time(n) is not None]
    if not ts:
        return []
    x = [t for _, t in ts]
    return [dict(type="scatter", x=x, y=np.interp(x, profile.times_s, profile.bt), mode="markers+text",
                 text=[n for n, _ in ts], textposition="top center", name=name, showlegend=False,
                 marker=dict(size=9, symbol="diamond", line=dict(width=1, color=BACKGROUND),
                             color=[color or EVENT_COLORS.get(n, INK) for n, _ in ts]),
                 customdata=[[n, fmt_mmss(t)] for n, t in ts],
                 hovertemplate="%{customdata[0]} at %{customdata[1]} · %{y:.1f} °F<extra></extra>")]


def _moments(method: str, f, color: str) -> dict:
    """The predicted first crack (▲) and DROP (■) on a forecast, their bands as horizontal bars."""
    t = np.asarray(f.times_s, dtype=float)
    points = []
    if f.fcs_s is not None:
        points.append(("FCs", "triangle-up", f.fcs_s, f.fcs_lo_s, f.fcs_hi_s, float(np.interp(f.fcs_s, t, f.bt_f))))
    lo = hi = None
    if f.horizon == "target" and f.time_to_target_s is not None:
        lo = None if f.time_to_target_lo_s is None else f.at_s + f.time_to_target_lo_s
        hi = None if f.time_to_target_hi_s is None else f.at_s + f.time_to_target_hi_s
    points.append(("DROP", "square", float(t[-1]), lo, hi, float(f.bt_f[-1])))
    return dict(type="scatter", x=[p[2] for p in points], y=[p[5] for p in points], mode="markers",
                name=f"{method} FCs/DROP", legendgroup=method, showlegend=False,
                marker=dict(size=10, color=color, symbol=[p[1] for p in points],
                            line=dict(width=1, color=BACKGROUND)),
                error_x=dict(type="data", symmetric=False, color=color, thickness=2, width=6,
                             array=[0.0 if p[4] is None else max(p[4] - p[2], 0.0) for p in points],
                             arrayminus=[0.0 if p[3] is None else max(p[2] - p[3], 0.0) for p in points]),
                customdata=[[p[0], _time_band(p[2], p[3], p[4])] for p in points],
                hovertemplate=f"%{{customdata[0]}} %{{customdata[1]}} · %{{y:.1f}} °F<extra>{method}</extra>")


def forecast_figure(profile: Profile, at_s: float, forecasts: Mapping[str, object],
                    colors: Mapping[str, str] | None = None, show_rest: bool = True,
                    x_max: float | None = None, y_range: Sequence[float] | None = None,
                    height: int = 540) -> go.Figure:
    """A roast replayed to `at_s`: the observed part, each method's forecast (dashed) inside its
    80% band, its predicted FCs (▲) and DROP (■) with their time bands as bars, the real rest
    greyed in for comparison and a 'now' line.

    `forecasts` maps a method name to a `roastcore.forecast.Forecast` (times_s, bt_f, lo_f, hi_f,
    fcs_s/fcs_lo_s/fcs_hi_s, horizon, time_to_target_s/_lo_s/_hi_s, at_s). Fixed axes
    (`x_max`, `y_range`) and `uirevision` keep the view still while a replay plays. Built from
    plain dicts without Plotly's per-property validation (a replay draws a frame every half
    second; validation costs ~100 ms a frame); tests check the result validates.
    """
    times, bt = profile.times_s, profile.bt
    seen = times <= at_s + 1e-9
    data: list[dict] = []
    if show_rest and np.any(~seen):
        # From the last observed sample, so the grey continues the observed line without a gap.
        start = max(int(np.sum(seen)) - 1, 0)
        data.append(_line(times[start:], bt[start:], "real rest", REST_COLOR, dash="dot", width=2.2))
    data.append(_line(times[seen], bt[seen], "observed", REAL_COLOR, width=2.8))
    shown = [n for n in EVENT_NAMES if profile.event_time(n) is not None and profile.event_time(n) <= at_s]
    data += _events(profile, shown, None, "events")
    if show_rest:
        data += _events(profile, [n for n in EVENT_NAMES if n not in shown], REST_COLOR, "events (real rest)")
    end = float(profile.duration_s)
    for method, f in forecasts.items():
        t = np.asarray(f.times_s, dtype=float)
        if t.size == 0:
            continue
        color = (colors or {}).get(method) or FORECAST_COLORS.get(method) or color_for(method)
        band = dict(type="scatter", x=t, mode="lines", line=dict(width=0, color=color), name=f"{method} 80% band",
                    legendgroup=method, showlegend=False, hoverinfo="skip")
        # The band: upper edge, then the lower edge filled up to it ('tonexty').
        data += [band | dict(y=np.asarray(f.hi_f, dtype=float)),
                 band | dict(y=np.asarray(f.lo_f, dtype=float), fill="tonexty", fillcolor=_rgba(color, 0.18))]
        hover = [[fmt_mmss(x), f"{lo:.0f}–{hi:.0f}"] for x, lo, hi in zip(t, f.lo_f, f.hi_f, strict=True)]
        data.append(_line(t, f.bt_f, method, color, dash="dash", width=2.2, customdata=hover,
                          hovertemplate=f"%{{customdata[0]}} · %{{y:.1f}} °F (80%: %{{customdata[1]}})"
                                        f"<extra>{method}</extra>"))
        moments = _moments(method, f, color)
        data.append(moments)
        end = max([end, float(t[-1])] + [x + e for x, e in zip(moments["x"], moments["error_x"]["array"], strict=True)])
    x_max = float(x_max) if x_max is not None else end * 1.05
    ticks, labels = time_ticks(x_max)
    layout = dict(
        template=_white(), height=height, margin=dict(l=10, r=10, t=10, b=10), hovermode="x unified",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0), uirevision=profile.id or "roast",
        xaxis=dict(range=[0.0, x_max], tickmode="array", tickvals=ticks, ticktext=labels,
                   title=dict(text="time (m:ss)")),
        yaxis=dict(title=dict(text="BT (°F)"), **({"range": list(y_range)} if y_range is not None else {})),
        shapes=[dict(type="line", x0=float(at_s), x1=float(at_s), xref="x", y0=0, y1=1, yref="paper",
                     line=dict(color=INK, dash="dot", width=1))],
        annotations=[dict(x=float(at_s), xref="x", y=1, yref="paper", text=f"now {fmt_mmss(at_s)}",
                          showarrow=False, xanchor="right", yanchor="top")])
    return go.Figure(data=data, layout=layout, _validate=False)


def _white():
    """The plotly_white template object: resolving the name validates and copies it (~50 ms)."""
    return pio.templates["plotly_white"]
