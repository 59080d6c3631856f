"""Vega-Lite charts of roasts: curves, overlays, the grid, step traces, forecasts; the shared
blocks (time axes, colours, layers) that roastcore.score_charts (losses, teacher forcing,
health bands) builds on.

    from roastcore.plotting import curves_figure, to_altair
    spec = curves_figure(profiles)     # a Vega-Lite spec (dict); st.vega_lite_chart(spec) draws it
    to_altair(spec)                    # an Altair chart: displays in a notebook, .save("c.html")

Charts are built from what profile.py, evaluate.py, diagnose.py and the job store return; nothing
here runs a model. Time axes read m:ss from CHARGE; temperatures are °F. The dashboard draws the
same charts (pages/), and so can a notebook. Vega-Lite, not Plotly: a browser draws a Vega chart
0.5-0.9 s sooner in a new tab (benchmarks/probe_plotly_floor.py, issue 14).

Specs are plain dicts, not Altair objects: building and serialising an Altair layer chart
(deep copies, schema validation) cost 0.1-0.4 s a chart on two busy cores, on every render;
the dicts cost milliseconds, and tests/test_plotting.py validates every kind against the
Vega-Lite schema. Data are long-form DataFrames in the spec's `datasets` (Streamlit sends them
as Arrow): curves are rows (t, y, series, style, w) with `series` the legend's full name; a hover
layer holds one row per time with its m:ss label and each curve's value (v0, v1, ... in legend
order), so the tooltip lists every curve at the pointer. Charts render with Vega's SVG renderer
(`usermeta`): legend and label texts stay in the page, which the browser tests read.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from roastcore.forecast_bands import ConformalBands
from roastcore.model import DEFAULT_CLAMP_F
from roastcore.profile import EVENT_NAMES, Profile, rate_of_rise

# One colour per checkpoint, stable across pages (colour-blind friendlier than matplotlib's
# tab10 for the first few).
PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
)
# The real curve and reference marks: a mid grey with about 4.4:1 contrast on a white and on
# Streamlit's dark background (#0e1117) alike. A Vega mark cannot follow the theme the way
# st.plotly_chart's placeholder colours did, so the colour itself has to read on both.
INK = "#777777"
REAL_COLOR = INK
EVENT_COLORS = {"TP": "#6c757d", "DRY_END": "#b8860b", "FCs": "#c0392b", "FCe": "#e67e22",
                "DROP": "#8e44ad"}
# Line styles (Vega strokeDash) by name.
DASHES = {"solid": [1, 0], "dash": [7, 4], "dot": [2, 3], "dashdot": [7, 3, 2, 3]}
# Vega's SVG renderer: texts stay in the page (tests, benchmarks, screen readers); Streamlit
# would pick canvas for the larger charts.
USERMETA = {"embedOptions": {"renderer": "svg"}}
# m:ss labels of a time axis in seconds, in the browser.
MMSS_EXPR = ("(datum.value < 0 ? '-' : '') + floor(abs(datum.value) / 60) + ':' + "
             "format(floor(abs(datum.value) % 60), '02d')")
HOVER_RULE = "rgba(128,128,128,0.6)"
HOVER_ROWS = 200  # hover points a chart holds at most (see Curves.hover)
LINE_POINTS = 200  # points a drawn curve or band holds at most (see thin)


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
SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"


@functools.lru_cache(maxsize=64)
def _hover_labels(raw: bytes) -> np.ndarray:
    labels = np.array([fmt_mmss(t) for t in np.frombuffer(raw, dtype=float)], dtype=object)
    labels.flags.writeable = False  # shared between charts
    return labels


def _mmss(times) -> np.ndarray:
    """m:ss labels of the times (curves of a chart share their grid: computed once)."""
    return _hover_labels(np.ascontiguousarray(times, dtype=float).tobytes())


def thin(t: np.ndarray, *ys: np.ndarray, limit: int = LINE_POINTS) -> np.ndarray:
    """Indices of at most ~`limit` points, evenly spread, plus each curve's lowest and highest
    point (the turning point, a peak): what a line drawn a few hundred pixels wide can show.
    Vega builds one scene item per point, so a 900-point roast costs the browser three times a
    300-point one that looks the same."""
    n = len(t)
    if n <= limit:
        return np.arange(n)
    keep = [np.linspace(0, n - 1, limit).round().astype(int)]
    for y in ys:
        finite = np.isfinite(y)
        if finite.any():
            idx = np.flatnonzero(finite)
            keep.append(idx[[np.argmin(y[finite]), np.argmax(y[finite])]])
    return np.unique(np.concatenate(keep))


class Curves:
    """The lines of one chart panel, in legend order: name -> (t, y, colour, style, width)."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[np.ndarray, np.ndarray, str, str, float]] = {}

    def add(self, name: str, t, y, color: str, style: str = "solid", width: float = 2.0) -> None:
        self.items[name] = (np.asarray(t, dtype=float), np.asarray(y, dtype=float), color, style, width)

    def frame(self) -> pd.DataFrame:
        """Long form: one row per point (t, y, series, style, w)."""
        parts = []
        for name, (t, y, _, style, width) in self.items.items():
            if t.size:
                keep = thin(t, y)
                parts.append(pd.DataFrame({"t": t[keep], "y": y[keep], "series": name, "style": style, "w": width}))
        if not parts:
            return pd.DataFrame({"t": [], "y": [], "series": [], "style": [], "w": []})
        return pd.concat(parts, ignore_index=True)

    def hover(self, extra: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None) -> pd.DataFrame:
        """One row per hover time: its m:ss and each curve's value there (v0, v1, ... in legend
        order), then the `extra` columns (name -> (t, values)); NaN outside a curve's span. At
        most HOVER_ROWS times, evenly spread: each becomes SVG elements (a rule, a Voronoi cell)
        the browser builds, and a roast read every few seconds loses nothing."""
        series = [(t, y) for t, y, *_ in self.items.values() if t.size] + list((extra or {}).values())
        if not series:
            return pd.DataFrame({"t": [], "time": []})
        t_all = np.unique(np.concatenate([t for t, _ in series]))
        t_all = t_all[::-(-t_all.size // HOVER_ROWS)]
        out = {"t": t_all, "time": _mmss(t_all)}
        for i, (t, y) in enumerate(series):
            out[f"v{i}"] = np.interp(t_all, t, y, left=np.nan, right=np.nan)
        return pd.DataFrame(out)

    def scale(self) -> dict:
        return {"domain": list(self.items), "range": [c for _, _, c, _, _ in self.items.values()]}


# Encoding blocks, shared with roastcore.score_charts.
def quantitative(field: str, **kw) -> dict:
    """A quantitative field channel (`kw`: title, scale, axis, format, ...)."""
    return {"field": field, "type": "quantitative", **kw}


def nominal(field: str, **kw) -> dict:
    """A nominal field channel."""
    return {"field": field, "type": "nominal", **kw}


def literal(field: str) -> dict:
    """A channel whose values are the colours (or shapes) themselves."""
    return {"field": field, "type": "nominal", "scale": None}


def _time_x(max_s: float, title: str | None = "time (m:ss)", domain: Sequence[float] | None = None) -> dict:
    domain = [float(v) for v in (domain or [0.0, max_s])]
    vals, _ = time_ticks(domain[1])
    return quantitative("t", title=title, scale={"domain": domain, "nice": False},
              axis={"values": vals, "labelExpr": MMSS_EXPR})


def _bt_y(title: str | None = "BT (°F)", domain: Sequence[float] | None = None) -> dict:
    scale = {"zero": False, **({"domain": [float(v) for v in domain]} if domain is not None else {})}
    return quantitative("y", title=title, scale=scale)


def legend_spec(n: int) -> dict:
    """The legend of `n` curves above the plot."""
    # Full run names (labelLimit 0: no cut), up to 4 entries a row above the plot.
    # Line symbols at full opacity: the first layer (a translucent band) would set a pale disc.
    return {"title": None, "orient": "top", "labelLimit": 0, "columns": min(max(n, 1), 4), "symbolType": "stroke",
            "symbolStrokeWidth": 3, "symbolOpacity": 1}


def _lines(data: str, curves: Curves, x: dict, y: dict, legend: bool = True, scale: dict | None = None) -> dict:
    """The panel's curves: colour by series (the legend), dash and width per curve."""
    return {"data": {"name": data}, "mark": {"type": "line", "clip": True}, "encoding": {
        "x": x, "y": y,
        "color": nominal("series", scale=scale or curves.scale(), legend=legend_spec(len(curves.items)) if legend else None),
        "strokeDash": nominal("style", scale={"domain": list(DASHES), "range": list(DASHES.values())}, legend=None),
        "strokeWidth": quantitative("w", scale=None), "detail": nominal("series")}}


def _band_layer(data: str, curves: Curves, x: dict, opacity: float) -> dict:
    """80% bands (rows t, lo, hi, series) as translucent areas in their curve's colour."""
    return {"data": {"name": data}, "mark": {"type": "area", "fillOpacity": opacity, "clip": True},
            "encoding": {"x": x, "y": quantitative("lo"), "y2": {"field": "hi"},
                         "color": nominal("series", scale=curves.scale()), "detail": nominal("series")}}


def _hover(data: str, curves: Curves, x: dict, param: str, unit: str = "°F", fmt: str = ".1f",
           extra: Mapping[str, str] | None = None) -> dict:
    """A rule at the time nearest the pointer whose tooltip lists every curve's value there (the
    m:ss time first); `extra`: further columns after the curves' (title -> Vega format)."""
    names = [n for n, item in curves.items.items() if item[0].size]
    tips = [nominal("time", title="time")]
    tips += [quantitative(f"v{i}", title=f"{n} ({unit})", format=fmt) for i, n in enumerate(names)]
    tips += [quantitative(f"v{len(names) + j}", title=title, format=f) for j, (title, f) in enumerate((extra or {}).items())]
    # aria off: no screen-reader label built for each of its hundreds of invisible items.
    return {"data": {"name": data}, "mark": {"type": "rule", "color": HOVER_RULE, "strokeWidth": 1, "aria": False},
            "params": [{"name": param, "select": {"type": "point", "nearest": True, "on": "pointerover",
                                                   "fields": ["t"], "clear": "pointerout"}}],
            "encoding": {"x": x, "tooltip": tips,
                         "opacity": {"condition": {"param": param, "empty": False, "value": 1.0}, "value": 0.0}}}


def _event_rows(profile: Profile, names=EVENT_NAMES, color: str | None = None, shape: str = "diamond",
                labels: bool = True, series: str = "events") -> list[dict]:
    """A row per event of the profile among `names` on its BT curve (t, y, event, time, fill,
    shape, label, series)."""
    rows = []
    for name in names:
        t = profile.event_time(name)
        if t is None:
            continue
        rows.append({"t": float(t), "y": float(np.interp(t, profile.times_s, profile.bt)), "event": name,
                     "time": fmt_mmss(t), "fill": color or EVENT_COLORS.get(name, INK), "shape": shape,
                     "label": name if labels else "", "series": series})
    return rows


EVENT_COLUMNS = ["t", "y", "event", "time", "fill", "shape", "label", "series"]


def _events(data: str, x: dict, y: dict) -> list[dict]:
    """Event markers (fill and shape per row; hover: event, m:ss, °F, whose) and labels above."""
    tips = [nominal("event", title="event"), nominal("time", title="at"), quantitative("y", title="BT (°F)", format=".1f"),
            nominal("series", title="of")]
    return [{"data": {"name": data}, "mark": {"type": "point", "filled": True, "size": 90, "opacity": 1, "clip": True},
             "encoding": {"x": x, "y": y, "fill": literal("fill"), "shape": literal("shape"), "tooltip": tips}},
            {"data": {"name": data}, "mark": {"type": "text", "dy": -12, "fontSize": 11, "clip": True},
             "encoding": {"x": x, "y": y, "text": nominal("label"), "fill": literal("fill")}}]


def chart_spec(datasets: Mapping[str, pd.DataFrame], **body) -> dict:
    """A top-level spec: its datasets (DataFrames), SVG rendering, then `body`."""
    return {"$schema": SCHEMA, "usermeta": USERMETA, "datasets": dict(datasets), **body}


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


def split_panels(spec: Mapping) -> list[dict]:
    """A spec's panels as specs of their own (a vconcat's parts, each with the datasets it
    reads; any other spec alone). Streamlit stretches a single view to the page's width but not
    a vconcat of layers, so the dashboard draws BT and its RoR panel one under the other."""
    if "vconcat" not in spec:
        return [dict(spec)]
    out = []
    for part in spec["vconcat"]:
        used = {name for name in spec["datasets"] if f'"name": "{name}"' in json.dumps(part, default=str)}
        out.append({"$schema": SCHEMA, "usermeta": spec.get("usermeta", USERMETA),
                    "datasets": {k: v for k, v in spec["datasets"].items() if k in used}, **part})
    return out


def to_altair(spec: Mapping):
    """The spec as an Altair chart (validated), for a notebook: its DataFrames become inline
    rows. Slow (schema validation): the dashboard draws the dict itself."""
    import altair as alt

    kind = next((k for k in ("layer", "vconcat", "concat") if k in spec), None)
    cls = {"layer": alt.LayerChart, "vconcat": alt.VConcatChart, "concat": alt.ConcatChart}.get(kind, alt.Chart)
    return cls.from_dict(inline(spec))


def inline(spec: Mapping) -> dict:
    """The spec with its DataFrames as JSON rows (None for NaN), as a browser or a schema reads it."""
    def rows(df: pd.DataFrame) -> list[dict]:
        return json.loads(df.to_json(orient="records"))

    return json.loads(json.dumps({**spec, "datasets": {k: rows(v) for k, v in spec.get("datasets", {}).items()}}))


# ---------------------------------------------------------------------------- roast curves
def curves_figure(profiles: Sequence[Profile], show_ror: bool = True, show_events: bool = True,
                  height: int = 520) -> dict:
    """BT curves of real profiles with their events, over an RoR panel (a vconcat: BT, RoR)."""
    bt, ror, events = Curves(), Curves(), []
    max_s = 1.0
    for i, p in enumerate(profiles):
        color = PALETTE[i % len(PALETTE)]
        bt.add(p.id, p.times_s, p.bt, color)
        ror.add(p.id, p.times_s, p.ror(), color, width=1.4)
        if show_events:
            events += _event_rows(p, labels=i == 0, series=p.id)
        max_s = max(max_s, p.duration_s)
    return _bt_ror(bt, ror if show_ror else None, events, max_s, height, [(p.bt, p.interval_s) for p in profiles])


def _bt_ror(bt: Curves, ror: Curves | None, events: list[dict], max_s: float, height: int, ror_basis,
            title: str | None = None, bands: pd.DataFrame | None = None) -> dict:
    bt_height = int(height * 0.68) if ror is not None else height
    x, y = _time_x(max_s, title=None if ror is not None else "time (m:ss)"), _bt_y()
    # One hover layer, on BT, whose tooltip also lists each curve's RoR: a hover layer is a rule
    # and a Voronoi cell per time the browser builds, the RoR panel's would double that cost.
    ror_tips = {f"{name} RoR": (t, y) for name, (t, y, *_) in ror.items.items() if t.size} if ror else {}
    data = {"bt": bt.frame(), "bt_hover": bt.hover(ror_tips)}
    layers = []
    if bands is not None and not bands.empty:
        data["bands"] = bands
        layers.append(_band_layer("bands", bt, x, 0.16))
    layers.append(_lines("bt", bt, x, y))
    if events:
        data["events"] = pd.DataFrame(events, columns=EVENT_COLUMNS)
        layers += _events("events", x, y)
    layers.append(_hover("bt_hover", bt, x, "hover_bt", extra={f"{k} (°F/min)": ".1f" for k in ror_tips}))
    top = {"layer": layers, "height": bt_height, **({"title": title} if title else {})}
    if ror is None:
        return chart_spec(data, **top)
    data["ror"] = ror.frame()
    x2 = _time_x(max_s)
    y2 = quantitative("y", title="RoR (°F/min)", scale={"domain": ror_range(ror_basis), "zero": False})
    bottom = {"layer": [_lines("ror", ror, x2, y2, legend=False)],
              "height": max(height - bt_height - 40, 100)}
    return chart_spec(data, vconcat=[top, bottom], spacing=6)


def overlay_figure(real: Profile | None, generated: Mapping[str, np.ndarray], step_s: float,
                   colors: Mapping[str, str] | None = None, show_ror: bool = True,
                   show_events: bool = True, height: int = 560, title: str | None = None,
                   bands: Mapping[str, dict] | None = None) -> dict:
    """The real curve against each checkpoint's generated curve (same time grid `step_s`),
    with an RoR panel and event markers (real: diamonds; generated: detected TP, DROP, circles).
    `bands`: a run's 80% band (evaluate.charge_band, a ConformalBands dict) drawn around its
    curve as an area."""
    bt, ror, events, band_rows = Curves(), Curves(), [], []
    max_s = 1.0
    if real is not None:
        bt.add("real", real.times_s, real.bt, REAL_COLOR, width=2.6)
        ror.add("real", real.times_s, real.ror(), REAL_COLOR, width=1.6)
        if show_events:
            events += _event_rows(real, series="real")
        max_s = real.duration_s
    for name, curve in generated.items():
        curve = np.asarray(curve, dtype=float)
        curve = curve[np.isfinite(curve)]
        if curve.size < 2:
            continue
        t = np.arange(curve.size) * float(step_s)
        color = color_for(name, colors)
        bt.add(name, t, curve, color, style="dash")
        ror.add(name, t, rate_of_rise(curve, float(step_s)), color, style="dash", width=1.3)
        if (band := (bands or {}).get(name)) is not None:
            band_rows.append(charge_band_rows(t, curve, band, name))
        if show_events and curve.size >= 3:
            try:
                events += _event_rows(Profile(bt=curve, interval_s=float(step_s), id=name), names=("TP", "DROP"),
                                      color=color, shape="circle", series=name)
            except ValueError:
                pass  # an implausible generated curve: draw it, skip its markers
        max_s = max(max_s, float(t[-1]))
    basis = [(real.bt, real.interval_s)] if real is not None else [
        (np.asarray(c, dtype=float), float(step_s)) for c in generated.values()]
    band_frame = pd.concat(band_rows, ignore_index=True) if band_rows else None
    return _bt_ror(bt, ror if show_ror else None, events, max_s, height, basis, title=title, bands=band_frame)


def charge_band_rows(t: np.ndarray, curve: np.ndarray, band: dict, name: str) -> pd.DataFrame:
    """A generated curve's 80% band after its start: rows (t, lo, hi, series)."""
    bands = ConformalBands(**band)
    cut = bands.cuts_s[0]
    after = t > cut
    if after.sum() < 2:
        return pd.DataFrame({"t": [], "lo": [], "hi": [], "series": []})
    lo, hi = bands.offsets(cut, t[after] - cut)
    t, lo, hi = t[after], curve[after] + lo, curve[after] + hi
    keep = thin(t, lo, hi)
    return pd.DataFrame({"t": t[keep], "lo": lo[keep], "hi": hi[keep], "series": name})


def grid_figure(panels: Sequence[tuple[str, Profile | None, Mapping[str, np.ndarray]]], step_s: float,
                colors: Mapping[str, str] | None = None, cols: int = 2, height_per_row: int = 260,
                width: int = 960) -> dict:
    """Small multiples: one panel per profile (title, real profile, generated curves by run),
    `cols` to a row within about `width` pixels; one legend for all."""
    prepared, max_s = [], 1.0
    for title, real, generated in panels:
        curves = Curves()
        if real is not None:
            curves.add("real", real.times_s, real.bt, REAL_COLOR, width=2.2)
            max_s = max(max_s, real.duration_s)
        for name, curve in generated.items():
            curve = np.asarray(curve, dtype=float)
            curve = curve[np.isfinite(curve)]
            t = np.arange(curve.size) * float(step_s)
            curves.add(name, t, curve, color_for(name, colors), style="dash")
            if t.size:
                max_s = max(max_s, float(t[-1]))
        prepared.append((str(title), curves))
    # One colour scale over every panel's names, so the legend lists each curve once.
    names: dict[str, str] = {}
    for _, curves in prepared:
        names.update({n: item[2] for n, item in curves.items.items()})
    scale = {"domain": list(names), "range": list(names.values())}
    x = _time_x(max_s, title=None)
    data, charts = {}, []
    for k, (title, curves) in enumerate(prepared):
        data[f"p{k}"], data[f"p{k}_hover"] = curves.frame(), curves.hover()
        lines = _lines(f"p{k}", curves, x, _bt_y("°F" if k % cols == 0 else None), scale=scale)
        lines["encoding"]["color"]["legend"] = legend_spec(len(names)) if k == 0 else None
        charts.append({"title": title, "height": height_per_row - 60, "width": max(int(width / max(cols, 1)) - 70, 150),
                       "layer": [lines, _hover(f"p{k}_hover", curves, x, f"hover_{k}")]})
    return chart_spec(data, concat=charts, columns=max(cols, 1))


def step_trace_arrays(trace: Mapping) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(time_s, raw_f, clamped_f, real_f) arrays of a diagnose.StepTrace.to_dict()."""
    rows = trace.get("rows") or []
    arr = {k: np.array([r[k] for r in rows], dtype=float) for k in ("time_s", "raw_f", "clamped_f", "real_f")}
    return arr["time_s"], arr["raw_f"], arr["clamped_f"], arr["real_f"]


def step_trace_figure(times_s, raw_f, clamped_f, real_f, clamp: tuple[float, float] | None = DEFAULT_CLAMP_F,
                      height: int = 460, name: str = "model") -> dict:
    """Raw vs clamped vs real per generation step with the clamp band shaded."""
    t = np.asarray(times_s, dtype=float)
    curves = Curves()
    curves.add("real", t, real_f, REAL_COLOR, width=2.6)
    curves.add(f"{name} raw", t, raw_f, "#d62728", style="dot")
    curves.add(f"{name} clamped", t, clamped_f, "#1f77b4")
    x = _time_x(float(t[-1]) if t.size else 1.0)
    data = {"curves": curves.frame(), "hover": curves.hover()}
    # The y axis follows the curves (the clamp band, 100-500 °F, would squash them): the band is
    # drawn within it.
    values = data["curves"]["y"].to_numpy(float)
    values = values[np.isfinite(values)]
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    pad = max((hi - lo) * 0.08, 5.0)
    y = _bt_y(domain=[lo - pad, hi + pad])
    layers = []
    if clamp is not None:
        data["clamp"] = pd.DataFrame({"lo": [max(float(clamp[0]), lo - pad)], "hi": [min(float(clamp[1]), hi + pad)],
                                      "label": [f"clamp {clamp[0]:.0f}–{clamp[1]:.0f} °F"]})
        layers += [{"data": {"name": "clamp"}, "mark": {"type": "rect", "color": "rgba(13,110,253,0.12)"},
                    "encoding": {"y": quantitative("lo", scale=y["scale"]), "y2": {"field": "hi"}}},
                   {"data": {"name": "clamp"}, "mark": {"type": "text", "align": "left", "baseline": "top", "x": 4,
                                                        "dy": 4, "color": INK},
                    "encoding": {"y": quantitative("hi", scale=y["scale"]), "text": nominal("label")}}]
    layers += [_lines("curves", curves, x, y), _hover("hover", curves, x, "hover")]
    return chart_spec(data, layer=layers, height=height)


# ---------------------------------------------------------------------------- forecasts (issue 16)
# One colour per forecast method (roastcore.forecast_eval.METHODS), the same on every frame and page.
FORECAST_COLORS = {"prefix_knn": "#1f77b4", "linear_projection": "#ff7f0e", "ror_decay": "#2ca02c",
                   "model": "#d62728", "model_prefix_prior": "#9467bd", "forecast": "#8c564b",
                   "knn_residual": "#e377c2"}
# The real rest of a replayed roast, greyed in and dotted: lighter than the observed part.
REST_COLOR = "rgba(150,150,150,0.6)"


def _time_band(t, lo, hi) -> str:
    lo_text = "?" if lo is None else fmt_mmss(lo)
    hi_text = "later" if hi is None else fmt_mmss(hi)
    return f"{fmt_mmss(t)} ({lo_text}–{hi_text})"


def moment_rows(method: str, f, color: str) -> list[dict]:
    """The predicted first crack (▲) and DROP (■) of a forecast with their time bands (lo, hi:
    the moment itself where a band is unknown)."""
    t = np.asarray(f.times_s, dtype=float)
    points = []
    if f.fcs_s is not None:
        points.append(("FCs", "triangle-up", f.fcs_s, f.fcs_lo_s, f.fcs_hi_s, float(np.interp(f.fcs_s, t, f.bt_f))))
    lo = hi = None
    if f.horizon == "target" and f.time_to_target_s is not None:
        lo = None if f.time_to_target_lo_s is None else f.at_s + f.time_to_target_lo_s
        hi = None if f.time_to_target_hi_s is None else f.at_s + f.time_to_target_hi_s
    points.append(("DROP", "square", float(t[-1]), lo, hi, float(f.bt_f[-1])))
    return [{"series": method, "event": name, "shape": shape, "t": float(x), "y": y, "fill": color,
             "lo": float(x if a is None else min(a, x)), "hi": float(x if b is None else max(b, x)),
             "when": _time_band(x, a, b)} for name, shape, x, a, b, y in points]


def forecast_figure(profile: Profile, at_s: float, forecasts: Mapping[str, object],
                    colors: Mapping[str, str] | None = None, show_rest: bool = True,
                    x_max: float | None = None, y_range: Sequence[float] | None = None,
                    height: int = 540) -> dict:
    """A roast replayed to `at_s`: the observed part, each method's forecast (dashed) inside its
    80% band, its predicted FCs (▲) and DROP (■) with their time bands as bars, the real rest
    greyed in for comparison and a 'now' line.

    `forecasts` maps a method name to a `roastcore.forecast.Forecast` (times_s, bt_f, lo_f, hi_f,
    fcs_s/fcs_lo_s/fcs_hi_s, horizon, time_to_target_s/_lo_s/_hi_s, at_s). Fixed axes
    (`x_max`, `y_range`) keep the view still while a replay plays.
    """
    times, bt = profile.times_s, profile.bt
    seen = times <= at_s + 1e-9
    curves, bands, moments, widths = Curves(), [], [], {}
    curves.add("observed", times[seen], bt[seen], REAL_COLOR, width=2.8)
    if show_rest and np.any(~seen):
        # From the last observed sample, so the grey continues the observed line without a gap.
        start = max(int(np.sum(seen)) - 1, 0)
        curves.add("real rest", times[start:], bt[start:], REST_COLOR, style="dot", width=2.2)
    shown = [n for n in EVENT_NAMES if profile.event_time(n) is not None and profile.event_time(n) <= at_s]
    events = _event_rows(profile, shown, series="observed")
    if show_rest:
        events += _event_rows(profile, [n for n in EVENT_NAMES if n not in shown], REST_COLOR, series="real rest")
    end = float(profile.duration_s)
    for method, f in forecasts.items():
        t = np.asarray(f.times_s, dtype=float)
        if t.size == 0:
            continue
        color = (colors or {}).get(method) or FORECAST_COLORS.get(method) or color_for(method)
        lo, hi = np.asarray(f.lo_f, dtype=float), np.asarray(f.hi_f, dtype=float)
        curves.add(method, t, f.bt_f, color, style="dash", width=2.2)
        keep = thin(t, lo, hi)
        bands.append(pd.DataFrame({"t": t[keep], "lo": lo[keep], "hi": hi[keep], "series": method}))
        widths[f"{method} 80% band width (°F)"] = (t, hi - lo)
        rows = moment_rows(method, f, color)
        moments += rows
        end = max([end, float(t[-1])] + [r["hi"] for r in rows])
    x_max = float(x_max) if x_max is not None else end * 1.05
    x = _time_x(x_max)
    y = _bt_y(domain=y_range)
    data = {"curves": curves.frame(), "hover": curves.hover(widths),
            "now": pd.DataFrame({"t": [float(at_s)], "label": [f"now {fmt_mmss(at_s)}"]})}
    layers = []
    if bands:
        data["bands"] = pd.concat(bands, ignore_index=True)
        layers.append(_band_layer("bands", curves, x, 0.18))
    layers.append(_lines("curves", curves, x, y))
    if events:
        data["events"] = pd.DataFrame(events, columns=EVENT_COLUMNS)
        layers += _events("events", x, y)
    if moments:
        data["moments"] = pd.DataFrame(moments)
        tips = [nominal("series", title="method"), nominal("event", title="predicted"), nominal("when", title="at (80% band)"),
                quantitative("y", title="BT (°F)", format=".1f")]
        layers += [{"data": {"name": "moments"}, "mark": {"type": "rule", "strokeWidth": 2, "clip": True},
                    "encoding": {"x": quantitative("lo", scale=x["scale"]), "x2": {"field": "hi"}, "y": y,
                                 "stroke": literal("fill"), "tooltip": tips}},
                   {"data": {"name": "moments"}, "mark": {"type": "point", "filled": True, "size": 110, "opacity": 1,
                                                          "clip": True},
                    "encoding": {"x": x, "y": y, "fill": literal("fill"), "shape": literal("shape"), "tooltip": tips}}]
    layers += [{"data": {"name": "now"}, "mark": {"type": "rule", "strokeDash": [2, 3], "color": INK},
                "encoding": {"x": x}},
               {"data": {"name": "now"}, "mark": {"type": "text", "align": "right", "baseline": "top", "dx": -4, "y": 4,
                                                  "color": INK},
                "encoding": {"x": x, "text": nominal("label")}},
               _hover("hover", curves, x, "hover", extra={k: ".0f" for k in widths})]
    return chart_spec(data, layer=layers, height=height)
