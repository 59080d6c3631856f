"""Vega-Lite charts of training and scores: loss curves, the teacher-forcing comparison, the
model-size health bands.

    from roastcore.score_charts import tf_comparison_figure
    spec = tf_comparison_figure(table)     # st.vega_lite_chart(spec), or plotting.to_altair(spec)

Specs are plain dicts with DataFrames as datasets, built with roastcore.plotting's blocks (see
its docstring for why not Altair objects). Log axes keep one collapsed run at 300 °F from
squashing the rest; shaded bands say how to read a figure.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from roastcore.metrics import MAE_BANDS
from roastcore.plotting import (
    DASHES,
    INK,
    chart_spec,
    color_for,
    legend_spec,
    literal,
    nominal,
    quantitative,
)

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

def loss_figure(history: pd.DataFrame, colors: Mapping[str, str] | None = None, height: int = 380,
                log_y: bool = True) -> dict:
    """Train/val loss per epoch for one or more runs; the teacher-forcing ratio (when the run uses
    scheduled sampling) on a second axis at the right. Epoch ticks are whole numbers; log-axis
    ticks read as numbers (0.3, 0.5, 1).

    `history` columns: run, epoch, train_loss, val_loss and optionally tf_ratio. Losses are in
    model units; the train loss is the training objective (it may add rollout or scheduled-
    sampling terms), so it need not be comparable with the validation loss.
    """
    rows, ratio_rows, domain, rng = [], [], [], []
    for run, df in (history.groupby("run", sort=False) if history is not None and not history.empty else ()):
        color = color_for(str(run), colors)
        df = df.sort_values("epoch")
        for col, label, style in (("train_loss", "train objective", "dot"), ("val_loss", "val loss", "solid")):
            values = pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(dtype=float)
            keep = values.notna() & ((values > 0) if log_y else True)
            if keep.any():
                rows.append(pd.DataFrame({"epoch": df["epoch"][keep].to_numpy(float), "y": values[keep].to_numpy(float),
                                          "series": f"{run} {label}", "style": style}))
                domain.append(f"{run} {label}")
                rng.append(color)
        if "tf_ratio" in df and df["tf_ratio"].notna().any() and df["tf_ratio"].nunique() > 1:
            part = df[df["tf_ratio"].notna()]
            ratio_rows.append(pd.DataFrame({"epoch": part["epoch"].to_numpy(float), "y": part["tf_ratio"].to_numpy(float),
                                            "series": f"{run} teacher forcing", "style": "dashdot"}))
            domain.append(f"{run} teacher forcing")
            rng.append(color)
    columns = ["epoch", "y", "series", "style"]
    losses = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)
    max_epoch = float(losses["epoch"].max()) if rows else 1.0
    step = epoch_dtick(max_epoch)
    x = quantitative("epoch", title="epoch", scale={"nice": False},
           axis={"values": list(range(0, int(max_epoch) + step, step)), "format": "d"})
    color = nominal("series", scale={"domain": domain, "range": rng}, legend=legend_spec(len(domain)))
    dash = nominal("style", scale={"domain": list(DASHES), "range": list(DASHES.values())}, legend=None)
    tips = [nominal("series", title="curve"), quantitative("epoch", title="epoch", format="d"), quantitative("y", title="value", format=".4g")]
    layers = [{"data": {"name": "losses"}, "mark": {"type": "line", "point": {"size": 18, "filled": True}, "clip": True},
               "encoding": {"x": x, "y": quantitative("y", title="loss (model units)", axis={"format": "~g"},
                                            scale={"type": "log" if log_y else "linear", "zero": False}),
                            "color": color, "strokeDash": dash, "tooltip": tips}}]
    data = {"losses": losses}
    if ratio_rows:
        data["tf_ratio"] = pd.concat(ratio_rows, ignore_index=True)
        layers.append({"data": {"name": "tf_ratio"}, "mark": {"type": "line", "strokeWidth": 1},
                       "encoding": {"x": x, "y": quantitative("y", title="teacher-forcing ratio", scale={"domain": [0, 1.05]},
                                                    axis={"orient": "right", "grid": False}),
                                    "color": color, "strokeDash": dash, "tooltip": tips}})
    return chart_spec(data, layer=layers, height=height, **({"resolve": {"scale": {"y": "independent"}}} if ratio_rows else {}))


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


def _note(text: str, height: int = 120) -> dict:
    """A chart holding only a note (nothing to draw)."""
    return chart_spec({"note": pd.DataFrame({"note": [text]})}, data={"name": "note"},
                 mark={"type": "text", "fontSize": 13, "color": INK}, encoding={"text": nominal("note")}, height=height)


def tf_comparison_figure(table: pd.DataFrame, baseline_mae: float | None = None,
                         colors: Mapping[str, str] | None = None, height: int = 420) -> dict:
    """Horizontal bars of teacher-forcing MAE per checkpoint (sorted, best on top) on a log axis
    (one run at 300 °F does not squash the rest), each with its own persistence mark: the
    persistence MAE at that run's step size (a 5 s persistence is never drawn against a 1 s
    model). The interpretation bands are shaded; only a run that beats its persistence is
    marked "★ best" (outlined, and in its figures, which an axis at the right lists).

    `table` columns: run, tf_mae_f, and persistence_mae_f, step_s, best where known (as
    pages/_eval_tables.tf_table makes them). `baseline_mae` stands in for a missing
    persistence_mae_f.
    """
    empty = "No teacher-forcing MAE to draw."
    if table is None or table.empty:
        return _note(empty)
    df = table.copy()
    df["tf_mae_f"] = pd.to_numeric(df["tf_mae_f"], errors="coerce")
    df = df[df["tf_mae_f"].notna() & (df["tf_mae_f"] > 0)]
    if df.empty:
        return _note(empty)
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
    runs = [str(r) for r in df["run"]]
    bars = pd.DataFrame({
        "run": runs, "tf_mae_f": df["tf_mae_f"].to_numpy(float), "x0": 10.0 ** lo,
        "fill": [color_for(r, colors) for r in runs], "best": [r == best for r in runs],
        "text": [_tf_bar_text(row, best) for row in df.itertuples()]})
    scale = {"type": "log", "domain": [10.0 ** lo, 10.0 ** hi], "nice": False}
    y = nominal("run", sort=runs[::-1], title=None, axis={"labelLimit": 0})  # best (lowest) on top
    data = {"bands": log_band_rows(TF_BANDS, lo, hi), "bars": bars}
    layers = _log_bands("bands", scale)
    layers.append({"data": {"name": "bars"}, "mark": {"type": "bar", "height": {"band": 0.65}}, "encoding": {
        "x": quantitative("x0", scale=scale, title="teacher-forcing MAE (°F, log scale, lower is better)",
                axis={"format": "~g"}),
        "x2": {"field": "tf_mae_f"}, "y": y, "fill": literal("fill"),
        # The best run's outline: only a run that beats its persistence is marked.
        "stroke": {"condition": {"test": "datum.best", "value": INK}, "value": None},
        "strokeWidth": {"condition": {"test": "datum.best", "value": 2.5}, "value": 0},
        "tooltip": [nominal("run", title="run"), nominal("text", title="teacher-forcing MAE")]}})
    persistence = df[df["persistence_mae_f"].notna()]
    if not persistence.empty:
        labels = ["persistence" + (f" at {s:g} s steps" if s > 0 else "")
                  for s in persistence["step_s"].fillna(-1.0).to_numpy(float)]
        data["persistence"] = pd.DataFrame({"run": [str(r) for r in persistence["run"]], "persistence": labels,
                                            "persistence_mae_f": persistence["persistence_mae_f"].to_numpy(float)})
        domain = list(dict.fromkeys(labels))
        shades = [INK, "#b8860b", "#8e44ad", "#17becf", "#bcbd22"]
        layers.append({"data": {"name": "persistence"}, "mark": {"type": "tick", "thickness": 3, "size": 26},
                       "encoding": {
                           "x": quantitative("persistence_mae_f", scale=scale), "y": {**y, "axis": None},
                           "color": nominal("persistence", legend={"title": None, "orient": "top", "labelLimit": 0},
                                       scale={"domain": domain, "range": [shades[i % len(shades)]
                                                                          for i in range(len(domain))]}),
                           "tooltip": [nominal("run", title="run"), nominal("persistence", title="baseline"),
                                       quantitative("persistence_mae_f", title="MAE (°F)", format=".2f")]}})
    # The figures on an axis at the right: beside the bars they would cross the marks.
    lookup = json.dumps(dict(zip(runs, bars["text"], strict=True)), ensure_ascii=False)
    layers.append({"data": {"name": "bars"}, "mark": {"type": "point", "opacity": 0}, "encoding": {
        "y": nominal("run", sort=runs[::-1], title=None, axis={
            "orient": "right", "labelExpr": f"{lookup}[datum.value]", "labelLimit": 0, "ticks": False,
            "domain": False})}})
    return chart_spec(data, layer=layers, height=max(height, 100 + 44 * len(df)) - 80,
                 resolve={"axis": {"y": "independent"}})


def _tf_bar_text(row, best: str | None) -> str:
    text = f"{row.tf_mae_f:.2f} °F"
    persistence = getattr(row, "persistence_mae_f", float("nan"))
    if persistence and math.isfinite(persistence) and persistence > 0:
        ratio = row.tf_mae_f / persistence
        text += f" · {ratio:.2g}× persistence" if ratio < 10 else f" · {ratio:,.0f}× persistence"
    return text + ("  ★ best" if row.run == best else "")


def log_band_rows(bands: Sequence[tuple[float, str, str]], lo: float, hi: float) -> pd.DataFrame:
    """(upper limit, label, fill) bands over a log axis showing [lo, hi] (log10 units) as rows
    (x0, x1, label, fill, labelled, mid): each band spanning at least BAND_LABEL_MIN_SHARE of
    the axis is labelled at its (log) centre `mid`, so no two labels overlap."""
    start = 10.0 ** lo
    rows = []
    for limit, label, fill in bands:
        x0, x1 = max(start, 10.0 ** lo), min(float(limit), 10.0 ** hi)
        start = float(limit)
        if x1 <= x0:
            continue
        share = (math.log10(x1) - math.log10(x0)) / (hi - lo)
        rows.append({"x0": x0, "x1": x1, "label": label, "fill": fill, "labelled": share >= BAND_LABEL_MIN_SHARE,
                     "mid": 10.0 ** ((math.log10(x0) + math.log10(x1)) / 2)})
        if limit >= 10.0 ** hi:
            break
    return pd.DataFrame(rows, columns=["x0", "x1", "label", "fill", "labelled", "mid"])


def _log_bands(data: str, scale: dict) -> list[dict]:
    """Shaded bands over the log x axis and, for the wide ones, their labels at the top."""
    return [{"data": {"name": data}, "mark": {"type": "rect"},
             "encoding": {"x": quantitative("x0", scale=scale), "x2": {"field": "x1"}, "fill": literal("fill"),
                          "tooltip": [nominal("label", title="band")]}},
            {"data": {"name": data}, "transform": [{"filter": "datum.labelled"}],
             "mark": {"type": "text", "baseline": "top", "y": 4, "fontSize": 11, "color": INK},
             "encoding": {"x": quantitative("mid", scale=scale), "text": nominal("label")}}]



def health_band_figure(per_sample: float, bands: Sequence[tuple[float, str]], height: int = 150) -> dict:
    """The params-per-training-sample health bands (log axis) with the current value marked.
    `bands`: (upper limit, label) pairs, as experiments.HEALTH_BANDS."""
    top = max(float(per_sample or 1.0) * 3, bands[-2][0] * 10 if len(bands) > 1 else 1e5)
    fills = [(limit, label, HEALTH_COLORS.get(label, "rgba(128,128,128,0.3)")) for limit, label in bands]
    scale = {"type": "log", "domain": [1.0, top], "nice": False}
    x = quantitative("x", scale=scale, title="parameters per training roast", axis={"format": "~s"})
    data = {"bands": log_band_rows(fills, 0.0, math.log10(top)),
            "value": pd.DataFrame({"x": [max(float(per_sample or 1.0), 1.0)], "text": [f"{per_sample:,.0f}"]})}
    layers = _log_bands("bands", scale) + [
        {"data": {"name": "value"}, "mark": {"type": "point", "shape": "diamond", "filled": True, "size": 220,
                                             "color": INK},
         "encoding": {"x": x, "tooltip": [nominal("text", title="params per training roast")]}},
        {"data": {"name": "value"}, "mark": {"type": "text", "dy": 22, "color": INK, "fontWeight": "bold"},
         "encoding": {"x": quantitative("x", scale=scale), "text": nominal("text")}}]
    return chart_spec(data, layer=layers, height=height - 50)
