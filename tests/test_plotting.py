"""roastcore.plotting: time axes, colours and the Vega-Lite chart specs (no browser)."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import numpy as np
import pytest

from roastcore import plotting, score_charts
from roastcore.profile import Profile, ProfileMeta

REPO = Path(__file__).resolve().parents[1]


def _profile(n=600, charge=420.0, pid=""):
    t = np.arange(n, dtype=float)
    bt = 200 + 0.3 * t + 40 * np.exp(-t / 20) + (charge - 240)  # a dip then a rise
    return Profile(bt=bt, interval_s=1.0, events={"FCs": 450.0},
                   meta=ProfileMeta(origin="Kenya", process="washed", roast_level="light"), id=pid)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("path", ["roastcore/plotting.py", "roastcore/score_charts.py", "roastcore/inspect_run.py",
                                  "roastcore/io/registry.py"])
def test_library_modules_do_not_import_streamlit(path):
    assert "streamlit" not in _imports(REPO / path)


def test_fmt_mmss():
    assert plotting.fmt_mmss(0) == "0:00"
    assert plotting.fmt_mmss(59.6) == "1:00"
    assert plotting.fmt_mmss(-75) == "-1:15"
    assert plotting.fmt_mmss(None) == "–" and plotting.fmt_mmss("x") == "–"


def test_time_ticks_are_mmss_and_cover_the_range():
    vals, text = plotting.time_ticks(720)
    assert vals[0] == 0 and vals[-1] <= 720 and len(vals) <= 13
    assert text[1] == plotting.fmt_mmss(vals[1]) and all(":" in t for t in text)


def test_color_map_is_stable_per_name():
    colors = plotting.color_map(["a", "b", "c"])
    assert len(set(colors.values())) == 3
    assert plotting.color_for("b", colors) == colors["b"]
    assert plotting.color_for("zzz") == plotting.color_for("zzz")


def _layers(spec: dict) -> list[dict]:
    """Every unit layer of a spec (through layer, vconcat and concat)."""
    out = []
    for key in ("layer", "vconcat", "concat"):
        for part in spec.get(key, []):
            out += _layers(part) if any(k in part for k in ("layer", "vconcat", "concat")) else [part]
    return out or [spec]


def _layer(spec: dict, data: str, mark: str | None = None) -> dict:
    return next(la for la in _layers(spec) if la.get("data", {}).get("name") == data
                and (mark is None or la["mark"]["type"] == mark))


def _series(spec: dict, data: str = "bt") -> list[str]:
    return list(dict.fromkeys(spec["datasets"][data]["series"]))


def test_curves_and_overlay_figures_use_mmss_axes_and_events():
    p = _profile(pid="p1")
    spec = plotting.curves_figure([p])
    assert _series(spec) == ["p1"] and _series(spec, "ror") == ["p1"]
    bt_panel, ror_panel = spec["vconcat"]
    x = _layer(spec, "ror", "line")["encoding"]["x"]
    assert x["field"] == "t" and x["axis"]["labelExpr"] == plotting.MMSS_EXPR and x["title"] == "time (m:ss)"
    assert _layer(spec, "bt", "line")["encoding"]["y"]["title"] == "BT (°F)"
    assert _layer(spec, "ror", "line")["encoding"]["y"]["title"] == "RoR (°F/min)"
    events = spec["datasets"]["events"]
    assert {"FCs", "DROP"} <= set(events["label"]) and (events["shape"] == "diamond").all()
    # Hover: the m:ss time and each curve's value at the pointer.
    hover = spec["datasets"]["bt_hover"]
    assert len(hover) <= plotting.HOVER_ROWS and hover["t"].iloc[0] == 0 and hover["t"].iloc[-1] >= p.n - 3
    assert hover["time"].iloc[1] == plotting.fmt_mmss(hover["t"].iloc[1])
    assert np.allclose(hover["v0"], p.bt[hover["t"].to_numpy(int)])
    tips = _layer(spec, "bt_hover")["encoding"]["tooltip"]
    # One hover layer for both panels: the tooltip gives BT and RoR; the RoR panel has none.
    assert [t["title"] for t in tips] == ["time", "p1 (°F)", "p1 RoR (°F/min)"]
    assert np.allclose(hover["v1"], p.ror()[hover["t"].to_numpy(int)], equal_nan=True)
    assert not [la for la in spec["vconcat"][1]["layer"] if la["mark"]["type"] == "rule"]
    gen = {"run_a": p.bt + 5, "run_b": np.full(p.n, 300.0)}
    spec = plotting.overlay_figure(p, gen, 1.0, colors={"run_a": "#000001"})
    assert _series(spec) == ["real", "run_a", "run_b"]
    color = _layer(spec, "bt", "line")["encoding"]["color"]
    assert dict(zip(color["scale"]["domain"], color["scale"]["range"], strict=True))["run_a"] == "#000001"
    assert color["legend"]["labelLimit"] == 0  # full run names
    lines = spec["datasets"]["bt"]
    assert set(lines.loc[lines["series"] == "run_a", "style"]) == {"dash"}
    assert set(lines.loc[lines["series"] == "real", "style"]) == {"solid"}
    # A run's 80% band (a ConformalBands dict) is drawn around its curve, after the start only.
    band = {"cuts_s": [0.0], "h_s": [100.0, 800.0], "lo": [[-2.0, -6.0]], "hi": [[1.0, 4.0]], "n_roasts": [30]}
    spec = plotting.overlay_figure(p, gen, 1.0, colors={"run_a": "#000001"}, bands={"run_a": band}, show_ror=False)
    assert "vconcat" not in spec and "ror" not in spec["datasets"]
    rows = spec["datasets"]["bands"]
    assert set(rows["series"]) == {"run_a"} and rows["t"].iloc[0] > 0 and rows["t"].iloc[-1] == p.n - 1
    assert len(rows) <= plotting.LINE_POINTS + 4  # thinned for the browser (see test_thin_...)
    at = rows["t"].to_numpy(int)
    assert np.allclose(rows["hi"] - (p.bt + 5)[at], np.interp(rows["t"], [100, 800], [1.0, 4.0]))
    assert np.allclose(rows["lo"] - (p.bt + 5)[at], np.interp(rows["t"], [100, 800], [-2.0, -6.0]))
    names = [la["data"]["name"] for la in spec["layer"]]
    assert names.index("bands") < names.index("bt")  # the curve is drawn over its band
    assert _layer(spec, "bands")["mark"]["type"] == "area"


def test_thin_keeps_ends_extremes_and_few_points():
    t = np.arange(900.0)
    y = 300 + 0.1 * t - 150 * np.exp(-(((t - 77) / 20) ** 2))  # a dip (the TP) between the grid's points
    keep = plotting.thin(t, y)
    assert keep[0] == 0 and keep[-1] == 899 and len(keep) <= plotting.LINE_POINTS + 2
    assert np.argmin(y) in keep and np.argmax(y) in keep and np.all(np.diff(keep) > 0)
    assert np.array_equal(plotting.thin(t[:50], y[:50]), np.arange(50))  # short curves stay whole
    # The drawn curve is the thinned one, and the turning point is on it exactly.
    lines = plotting.curves_figure([_profile(pid="p1")])["datasets"]["bt"]
    assert len(lines) <= plotting.LINE_POINTS + 2
    p = _profile(pid="p1")
    assert lines["y"].min() == p.bt.min()


def test_split_panels_gives_each_panel_its_own_datasets():
    p = _profile(pid="p1")
    bt, ror = plotting.split_panels(plotting.overlay_figure(p, {"m": p.bt + 3}, 1.0))
    assert set(bt["datasets"]) == {"bt", "bt_hover", "events"} and set(ror["datasets"]) == {"ror"}
    assert bt["usermeta"] == plotting.USERMETA and "layer" in bt and "layer" in ror
    one = plotting.step_trace_figure(np.arange(3.0), np.ones(3), np.ones(3), np.ones(3))
    assert plotting.split_panels(one) == [one]


def test_ror_range_ignores_the_charge_plunge():
    p = _profile()
    lo, hi = plotting.ror_range([(p.bt, 1.0)])
    assert -10 <= lo <= -5 and 30 <= hi < 60  # the -100 °F/min start is left out
    assert plotting.ror_range([]) == [-10.0, 60.0]


def test_grid_figure_one_panel_per_roast_one_legend_for_all():
    p = _profile(pid="p1")
    panels = [(f"r{i}", p, {"run_a": p.bt + i}) for i in range(3)]
    spec = plotting.grid_figure(panels, 1.0, cols=2)
    assert [c["title"] for c in spec["concat"]] == ["r0", "r1", "r2"] and spec["columns"] == 2
    assert all(_series(spec, f"p{k}") == ["real", "run_a"] for k in range(3))
    legends = [c["layer"][0]["encoding"]["color"]["legend"] for c in spec["concat"]]
    assert legends[0] and not any(legends[1:])  # one legend, each curve once


def test_step_trace_figure_draws_raw_clamped_real_and_the_clamp_band():
    rows = [{"time_s": float(i), "raw_f": 90.0 + i, "clamped_f": 100.0 + i, "real_f": 300.0 + i} for i in range(5)]
    t, raw, clamped, real = plotting.step_trace_arrays({"rows": rows})
    assert raw[0] == 90.0 and clamped[0] == 100.0 and t.tolist() == [0, 1, 2, 3, 4]
    spec = plotting.step_trace_figure(t, raw, clamped, real, name="m")
    assert _series(spec, "curves") == ["real", "m raw", "m clamped"]
    clamp = spec["datasets"]["clamp"]
    assert clamp["label"].iloc[0] == "clamp 100–500 °F"
    # The band is cut to the curves' range, so it never squashes them.
    lo, hi = _layer(spec, "curves")["encoding"]["y"]["scale"]["domain"]
    assert lo < 90.0 and 304.0 < hi < 500.0 and clamp["hi"].iloc[0] == hi


def _contrast(hex_a: str, rgb_b: tuple[int, int, int]) -> float:
    def lum(rgb):
        c = [v / 255.0 for v in rgb]
        c = [v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4 for v in c]
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]

    a = lum(tuple(int(hex_a.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4)))
    b = lum(rgb_b)
    return (max(a, b) + 0.05) / (min(a, b) + 0.05)


def test_real_curve_and_reference_marks_read_on_light_and_dark_backgrounds():
    """A Vega mark keeps its colour in both themes: the real curve's INK must contrast with
    Streamlit's light (white) and dark (#0e1117) backgrounds alike."""
    assert _contrast(plotting.INK, (255, 255, 255)) >= 3.0 and _contrast(plotting.INK, (14, 17, 23)) >= 3.0
    p = _profile(pid="p1")

    def real_color(spec, data):
        color = _layer(spec, data, "line")["encoding"]["color"]["scale"]
        return dict(zip(color["domain"], color["range"], strict=True))["real"]

    assert real_color(plotting.overlay_figure(p, {"m": p.bt + 3}, 1.0), "bt") == plotting.INK
    rows = [{"time_s": float(i), "raw_f": 300.0, "clamped_f": 300.0, "real_f": 300.0} for i in range(3)]
    assert real_color(plotting.step_trace_figure(*plotting.step_trace_arrays({"rows": rows})), "curves") == plotting.INK
    assert real_color(plotting.grid_figure([("a", p, {"m": p.bt})], 1.0), "p0") == plotting.INK


@functools.lru_cache(maxsize=1)
def _replayed():
    """A simulated roast cut at 4:00 and its linear-projection forecast (fitted once)."""
    from roastcore.forecast import Horizon
    from roastcore.forecast_eval import make_forecaster
    from roastcore.simulate import generate_dataset

    roasts = generate_dataset(n=8, seed=1)
    forecast = make_forecaster("linear_projection").fit(roasts).forecast(
        roasts[0].bt[:241], horizon=Horizon.drop_at(roasts[0].n - 1))
    return roasts[0], forecast


def _built_charts():
    import pandas as pd

    from roastcore.experiments import HEALTH_BANDS

    p = _profile(pid="p1")
    rows = [{"time_s": float(i), "raw_f": 300.0 + i, "clamped_f": 300.0, "real_f": 301.0} for i in range(5)]
    table = pd.DataFrame([("fine", 0.5, 0.83, 1.0, "★"), ("coarse", 2.0, 4.1, 5.0, "")],
                         columns=["run", "tf_mae_f", "persistence_mae_f", "step_s", "best"])
    band = {"cuts_s": [0.0], "h_s": [100.0, 800.0], "lo": [[-2.0, -6.0]], "hi": [[1.0, 4.0]], "n_roasts": [30]}
    hist = pd.DataFrame({"run": "r", "epoch": [1, 2], "train_loss": [7.0, 5.0], "val_loss": [0.9, 0.5],
                         "tf_ratio": [1.0, 0.5]})
    return {
        "curves": plotting.curves_figure([p, _profile(pid="p2")]),
        "curves, no RoR": plotting.curves_figure([p], show_ror=False, show_events=False),
        "overlay": plotting.overlay_figure(p, {"m": p.bt + 3}, 1.0, title="t", bands={"m": band}),
        "overlay, no real": plotting.overlay_figure(None, {"m": p.bt + 3}, 1.0, show_ror=False),
        "grid": plotting.grid_figure([("a", p, {"m": p.bt}), ("b", p, {"m": p.bt})], 1.0),
        "step trace": plotting.step_trace_figure(*plotting.step_trace_arrays({"rows": rows}), name="m"),
        "teacher forcing": score_charts.tf_comparison_figure(table),
        "teacher forcing, empty": score_charts.tf_comparison_figure(table.iloc[:0]),
        "losses": score_charts.loss_figure(hist),
        "losses, empty": score_charts.loss_figure(hist.iloc[:0]),
        "health": score_charts.health_band_figure(800.0, HEALTH_BANDS),
        "forecast": plotting.forecast_figure(_replayed()[0], 240, {"linear_projection": _replayed()[1]}),
    }


@pytest.mark.parametrize("kind", list(_built_charts()))
def test_specs_are_valid_vega_lite(kind):
    """The specs are dicts built without Altair (its deep copies and validation cost 0.1-0.4 s a
    chart): what they hold must still pass the Vega-Lite schema, and Altair must read them."""
    import jsonschema
    from altair.vegalite.v6.schema.core import load_schema

    def few_rows(spec):  # validating thousands of data rows takes seconds and says nothing more
        return plotting.inline({**spec, "datasets": {k: v.head(3) for k, v in spec["datasets"].items()}})

    spec = _built_charts()[kind]
    jsonschema.validate(few_rows(spec), load_schema())
    assert spec["usermeta"] == plotting.USERMETA
    for part in plotting.split_panels(spec):
        jsonschema.validate(few_rows(part), load_schema())
        # Every dataset a layer names is there (Streamlit sends the datasets beside the spec).
        assert {la["data"]["name"] for la in _layers(part) if "data" in la} <= set(part["datasets"])


def test_to_altair_gives_a_notebook_chart():
    import altair as alt

    rows = [{"time_s": float(i), "raw_f": 300.0 + i, "clamped_f": 300.0, "real_f": 301.0} for i in range(5)]
    chart = plotting.to_altair(plotting.step_trace_figure(*plotting.step_trace_arrays({"rows": rows})))
    assert isinstance(chart, alt.LayerChart)
    assert chart.to_dict()["datasets"]  # validated by Altair, data inline
