"""Altair charts of a sweep: the suite's comparison, a grid's parallel coordinates, the curves.

    from roastcore.jobs import JobRunner, chart_records, get_sweep, sweep_runs
    from roastcore.sweep_charts import CHART_METRICS, suite_chart
    runs = sweep_runs(get_sweep(JobRunner("checkpoints"), "s1a2b3c4"))
    suite_chart(chart_records(runs, CHART_METRICS), "free_mae_f")  # displays in a notebook

Every chart reads long-form rows: `roastcore.jobs.chart_records` (one per scored run and figure,
with `grid.<key>` columns) or, for learning curves, one per run and epoch. The two selectable
charts carry one point selection named SELECTION on `job_id`; Streamlit's
`st.altair_chart(..., on_select="rerun")` hands the clicked runs back, so a page can filter its
tables and highlight the same runs in the other charts. Runs are labelled by what tells them
apart (`run_labels`): the preset when there are several, and the grid values that vary.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import altair as alt

SELECTION = "runs"  # the point selection (on job_id) of suite_chart and parallel_chart
# The figures a page asks chart_records for: each model figure and the baseline beside it.
CHART_METRICS = ("tf_mae_f", "persistence_mae_f", "free_mae_f", "aligned_knn_mae_f",
                 "finish_mae_f", "physics_valid_pct", "time_s")
# A model figure and its baseline on the same roasts (persistence at the same step, the
# aligned kNN on the same validation roasts).
BASELINE_OF = {"tf_mae_f": "persistence_mae_f", "free_mae_f": "aligned_knn_mae_f"}
# The figures a suite chart compares, and the parallel-coordinates axes after the grid's keys.
SUITE_METRICS = ("tf_mae_f", "free_mae_f", "finish_mae_f", "physics_valid_pct", "time_s")
PARALLEL_METRICS = ("tf_mae_f", "free_mae_f", "finish_mae_f", "time_s")
# Short axis names: parallel-coordinates axes sit side by side and cut long titles.
AXIS_NAMES = {"tf_mae_f": "TF MAE °F", "free_mae_f": "free-run MAE °F",
              "finish_mae_f": "finish MAE °F", "physics_valid_pct": "physics valid %",
              "time_s": "job time s"}
FADED = 0.25  # opacity of runs outside a selection


def _name(names: Mapping[str, str] | None, key: str) -> str:
    return (names or {}).get(key, key)


def _grid_keys(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    return sorted({k for r in rows for k in r if k.startswith("grid.")})


def _show(value: Any) -> str:
    """A grid value as the sweep table writes it (JSON: 0.001, 32, "gru")."""
    return json.dumps(value, sort_keys=True)


def varying_keys(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The grid keys (without 'grid.') whose values differ between the rows' runs."""
    runs = {r["job_id"]: r for r in rows}.values()
    return [k.removeprefix("grid.") for k in _grid_keys(runs)
            if len({_show(r.get(k)) for r in runs}) > 1]


def run_labels(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """job_id -> a short label shared by a setting's seeds: the preset (when the rows hold
    several, or nothing else varies) and the grid values that vary. A grid key with one value
    is in every run's settings, so it tells nothing apart and is left out."""
    runs = {r["job_id"]: r for r in rows}
    keys = varying_keys(rows)
    several = len({r["preset"] for r in runs.values()}) > 1
    out = {}
    for job_id, r in runs.items():
        bits = [r["preset"]] if several or not keys else []
        bits += [f"{k}={_show(r.get('grid.' + k))}" for k in keys]
        out[job_id] = " ".join(bits)
    return out


def _sortable(value: Any) -> tuple:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return (0, float(value), "")
    return (1, 0.0, _show(value))


def _order(labels: Mapping[str, str], rows: Sequence[Mapping[str, Any]],
           presets: Sequence[str] = ()) -> list[str]:
    """Labels by preset (in the order of `presets`, e.g. the sweep's; others by name), then by
    the values of the grid keys that vary."""
    runs = {r["job_id"]: r for r in rows}
    keys = varying_keys(rows)
    rank = {p: i for i, p in enumerate(presets)}

    def place(job_id: str) -> tuple:
        run = runs[job_id]
        return (rank.get(run["preset"], len(rank)), run["preset"],
                [_sortable(run.get("grid." + k)) for k in keys])

    return list(dict.fromkeys(labels[j] for j in sorted(runs, key=place)))


# ---------------------------------------------------------------------------- the suite chart
def summary_rows(records: Sequence[Mapping[str, Any]], metric: str,
                 names: Mapping[str, str] | None = None,
                 presets: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Per label, the mean and std over its runs of `metric` and of its baseline (BASELINE_OF):
    rows {label, figure, role, mean, std, lo, hi, n}. The std is the sample std, as in the
    sweep table; one run has none (lo = hi = mean)."""
    labels = run_labels(records)
    keys = [metric] + ([BASELINE_OF[metric]] if metric in BASELINE_OF else [])
    groups: dict[tuple[str, str], list[float]] = {}
    for r in records:
        if r["metric"] in keys:
            groups.setdefault((labels[r["job_id"]], r["metric"]), []).append(float(r["value"]))
    rows = []
    for label in _order(labels, records, presets):
        for key in keys:
            values = groups.get((label, key))
            if not values:
                continue
            mean = statistics.fmean(values)
            std = statistics.stdev(values) if len(values) > 1 else None
            spread = std or 0.0
            rows.append({"label": label, "figure": _name(names, key),
                         "role": "model" if key == metric else "baseline", "mean": mean,
                         "std": std, "lo": mean - spread, "hi": mean + spread, "n": len(values)})
    return rows


def suite_chart(records: Sequence[Mapping[str, Any]], metric: str = "tf_mae_f",
                names: Mapping[str, str] | None = None, presets: Sequence[str] = (),
                height: int = 320) -> alt.LayerChart:
    """Mean ± std over seeds per preset or setting of one figure, its baseline beside it (TF MAE
    beside persistence, free-running MAE beside the aligned kNN), and every run as a point;
    presets in the order of `presets`. Clicking a run's point selects it (shift-click adds;
    double-click clears)."""
    labels = run_labels(records)
    keys = [metric] + ([BASELINE_OF[metric]] if metric in BASELINE_OF else [])
    figures = [_name(names, k) for k in keys]
    runs = [{"job_id": r["job_id"], "label": labels[r["job_id"]], "seed": r["seed"],
             "figure": _name(names, r["metric"]), "value": float(r["value"])}
            for r in records if r["metric"] in keys]
    if not any(r["figure"] == figures[0] for r in runs):
        raise ValueError(f"suite chart: no scored run has the figure {metric!r}")
    summary = summary_rows(records, metric, names, presets)
    order = _order(labels, records, presets)
    x = alt.X("label:N", sort=order, title=None, axis=alt.Axis(labelAngle=0, labelLimit=220))
    offset = alt.XOffset("figure:N", sort=figures)
    color = alt.Color("figure:N", sort=figures, scale=alt.Scale(domain=figures),
                      legend=alt.Legend(title=None, orient="top"))
    y_title = _name(names, metric)
    picked = alt.selection_point(name=SELECTION, fields=["job_id"], on="click")
    bars = alt.Chart(alt.Data(values=summary)).mark_bar(opacity=0.35).encode(
        x=x, xOffset=offset, color=color, y=alt.Y("mean:Q", title=y_title),
        tooltip=[alt.Tooltip("label:N", title="preset / setting"), alt.Tooltip("figure:N"),
                 alt.Tooltip("mean:Q", format=".2f"), alt.Tooltip("std:Q", format=".2f"),
                 alt.Tooltip("n:Q", title="runs")])
    spread = alt.Chart(alt.Data(values=summary)).mark_rule(strokeWidth=2).encode(
        x=x, xOffset=offset, color=color, y="lo:Q", y2="hi:Q")
    points = alt.Chart(alt.Data(values=runs)).mark_circle(stroke="white", strokeWidth=0.5).encode(
        x=x, xOffset=offset, color=color, y=alt.Y("value:Q", title=y_title),
        size=alt.when(picked).then(alt.value(110)).otherwise(alt.value(45)),
        opacity=alt.when(picked).then(alt.value(1.0)).otherwise(alt.value(FADED)),
        tooltip=[alt.Tooltip("label:N", title="preset / setting"), alt.Tooltip("seed:Q"),
                 alt.Tooltip("figure:N"), alt.Tooltip("value:Q", format=".2f"),
                 alt.Tooltip("job_id:N", title="job")],
    ).add_params(picked)
    return alt.layer(bars, spread, points).properties(height=height)


# ---------------------------------------------------------------------------- parallel coordinates
def _positions(values: Sequence[Any]) -> list[float]:
    """Each value's place on its axis, 0..1: numbers linearly (logarithmically when all are
    positive and span a factor of 10 or more, as learning rates do), anything else by its
    sorted position. A constant axis puts everything in the middle."""
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
               and math.isfinite(v)]
    if len(numbers) == len(values) and values:
        lo, hi = min(numbers), max(numbers)
        if hi == lo:
            return [0.5] * len(values)
        if lo > 0 and hi / lo >= 10:
            return [(math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo)) for v in numbers]
        return [(v - lo) / (hi - lo) for v in numbers]
    levels = sorted({_show(v) for v in values})
    if len(levels) == 1:
        return [0.5] * len(values)
    return [levels.index(_show(v)) / (len(levels) - 1) for v in values]


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-2 or abs(value) >= 1e4 else f"{value:.4g}"
    return _show(value) if not isinstance(value, str) else value


def parallel_rows(records: Sequence[Mapping[str, Any]],
                  metrics: Sequence[str] = PARALLEL_METRICS,
                  names: Mapping[str, str] | None = AXIS_NAMES) -> list[dict[str, Any]]:
    """Rows {job_id, label, seed, axis, order, value, text, position} for parallel coordinates:
    one per run and axis. The axes are the grid keys that vary, then each figure in `metrics`
    that some run has; `position` is the value's place on its own axis, 0..1 (`_positions`)."""
    labels = run_labels(records)
    runs: dict[str, dict[str, Any]] = {}
    for r in records:
        run = runs.setdefault(r["job_id"], {"job_id": r["job_id"], "seed": r["seed"],
                                            **{k: r[k] for k in r if k.startswith("grid.")}})
        run[r["metric"]] = r["value"]
    axes = [("grid." + k, k) for k in varying_keys(records)]
    axes += [(m, _name(names, m)) for m in metrics if any(m in run for run in runs.values())]
    rows = []
    for order, (field, axis) in enumerate(axes):
        members = [run for run in runs.values() if run.get(field) is not None]
        for run, position in zip(members, _positions([run[field] for run in members]), strict=True):
            rows.append({"job_id": run["job_id"], "label": labels[run["job_id"]],
                         "seed": run["seed"], "axis": axis, "order": order, "value": run[field],
                         "text": _text(run[field]), "position": position})
    return rows


def _axis_ends(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The lowest and highest value written at each axis's bottom and top."""
    out = []
    for axis in dict.fromkeys(r["axis"] for r in rows):
        members = [r for r in rows if r["axis"] == axis]
        low = min(members, key=lambda r: r["position"])
        high = max(members, key=lambda r: r["position"])
        out.append({"axis": axis, "position": low["position"], "text": low["text"]})
        if high["position"] > low["position"]:  # a constant axis has its one value, mid-height
            out.append({"axis": axis, "position": high["position"], "text": high["text"]})
    return out


def parallel_chart(records: Sequence[Mapping[str, Any]],
                   metrics: Sequence[str] = PARALLEL_METRICS,
                   names: Mapping[str, str] | None = AXIS_NAMES, presets: Sequence[str] = (),
                   height: int = 340) -> alt.LayerChart:
    """Parallel coordinates of a grid: one line per run across the varying grid keys and the
    figures, each axis scaled to its own range (its lowest and highest value are written at its
    ends). Clicking a run's point on any axis selects the run and highlights its line."""
    rows = parallel_rows(records, metrics, names)
    if not rows:
        raise ValueError("parallel chart: no scored run to draw")
    order = list(dict.fromkeys(r["axis"] for r in sorted(rows, key=lambda r: r["order"])))
    labels = _order(run_labels(records), records, presets)
    x = alt.X("axis:N", sort=order, title=None,
              axis=alt.Axis(labelAngle=0, orient="top", domain=False, ticks=False))
    y = alt.Y("position:Q", axis=None, scale=alt.Scale(domain=[-0.06, 1.06]))
    color = alt.Color("label:N", sort=labels, legend=alt.Legend(title=None, orient="bottom"))
    picked = alt.selection_point(name=SELECTION, fields=["job_id"], on="click")
    tooltip = [alt.Tooltip("label:N", title="run"), alt.Tooltip("seed:Q"),
               alt.Tooltip("axis:N"), alt.Tooltip("text:N", title="value"),
               alt.Tooltip("job_id:N", title="job")]
    base = alt.Chart(alt.Data(values=rows))
    axes = alt.Chart(alt.Data(values=[{"axis": a} for a in order])).mark_rule(
        color="gray", opacity=0.5).encode(x=x)
    lines = base.mark_line(strokeWidth=2).encode(
        x=x, y=y, color=color, detail="job_id:N",
        opacity=alt.when(picked).then(alt.value(0.95)).otherwise(alt.value(FADED * 0.6)))
    points = base.mark_circle(size=70).encode(
        x=x, y=y, color=color, tooltip=tooltip,
        opacity=alt.when(picked).then(alt.value(1.0)).otherwise(alt.value(FADED)),
    ).add_params(picked)
    ends = alt.Chart(alt.Data(values=_axis_ends(rows))).mark_text(
        dx=6, align="left", fontSize=11, color="gray").encode(x=x, y=y, text="text:N")
    return alt.layer(axes, lines, points, ends).properties(height=height)


# ---------------------------------------------------------------------------- learning curves
def curves_chart(history: Sequence[Mapping[str, Any]], selected: Iterable[str] = (),
                 title: str = "val TF MAE °F", presets: Sequence[str] = (),
                 height: int = 280) -> alt.Chart:
    """One line per run over epochs (rows {job_id, preset, seed, epoch, value, grid.<key>...}),
    coloured by its label; with `selected` job ids, those runs are drawn bold and the others
    faded. Points mark each epoch, so a one-epoch run still shows."""
    if not history:
        raise ValueError("curves chart: no epochs recorded yet")
    labels = run_labels(history)
    chosen = set(selected)
    rows = [{"job_id": r["job_id"], "label": labels[r["job_id"]], "seed": r["seed"],
             "epoch": r["epoch"], "value": r["value"],
             "selected": not chosen or r["job_id"] in chosen} for r in history]
    names = _order(labels, history, presets)
    return alt.Chart(alt.Data(values=rows)).mark_line(point=True).encode(
        x=alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y("value:Q", title=title, scale=alt.Scale(type="log")),
        color=alt.Color("label:N", sort=names, legend=alt.Legend(title=None, orient="bottom")),
        detail="job_id:N",
        opacity=alt.when(selected=True).then(alt.value(1.0)).otherwise(alt.value(0.15)),
        strokeWidth=alt.when(selected=True).then(alt.value(2.5)).otherwise(alt.value(1.0)),
        tooltip=[alt.Tooltip("label:N", title="run"), alt.Tooltip("seed:Q"),
                 alt.Tooltip("epoch:Q"), alt.Tooltip("value:Q", format=".2f", title=title),
                 alt.Tooltip("job_id:N", title="job")],
    ).properties(height=height)
