"""roastcore.plotting: time axes, colours and the Plotly figures (no browser)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from roastcore import plotting
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


@pytest.mark.parametrize("path", ["roastcore/plotting.py", "roastcore/inspect_run.py", "roastcore/io/registry.py"])
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


def test_tf_bands_follow_evaluate_bands():
    from roastcore.metrics import MAE_BANDS

    assert [(limit, label) for limit, label, _ in plotting.TF_BANDS[:-1]] == list(MAE_BANDS)
    assert plotting.TF_BANDS[-1][:2] == (float("inf"), "poor")


def test_curves_and_overlay_figures_use_mmss_axes_and_events():
    p = _profile(pid="p1")
    fig = plotting.curves_figure([p])
    assert any(tr.name == "p1" for tr in fig.data)
    assert fig.layout.xaxis2.ticktext[1].count(":") == 1
    events = [tr for tr in fig.data if tr.mode == "markers+text"]
    assert events and "FCs" in list(events[0].text) and "DROP" in list(events[0].text)
    gen = {"run_a": p.bt + 5, "run_b": np.full(p.n, 300.0)}
    fig = plotting.overlay_figure(p, gen, 1.0, colors={"run_a": "#000001"})
    names = [tr.name for tr in fig.data]
    assert "real" in names and "run_a" in names and "run_b" in names
    assert next(tr for tr in fig.data if tr.name == "run_a").line.color == "#000001"
    # A run's 80% band (a ConformalBands dict) is drawn around its curve, after the start only.
    band = {"cuts_s": [0.0], "h_s": [100.0, 800.0], "lo": [[-2.0, -6.0]], "hi": [[1.0, 4.0]], "n_roasts": [30]}
    fig = plotting.overlay_figure(p, gen, 1.0, colors={"run_a": "#000001"}, bands={"run_a": band}, show_ror=False)
    upper, lower = [tr for tr in fig.data if tr.name == "run_a 80% band"]
    assert lower.fill == "tonexty" and upper.fill is None and not upper.showlegend
    assert upper.x[0] > 0 and len(upper.x) == p.n - 1
    assert np.allclose(np.asarray(upper.y) - (p.bt + 5)[1:], np.interp(upper.x, [100, 800], [1.0, 4.0]))
    assert np.allclose(np.asarray(lower.y) - (p.bt + 5)[1:], np.interp(lower.x, [100, 800], [-2.0, -6.0]))
    names = [tr.name for tr in fig.data]
    assert names.index("run_a 80% band") < names.index("run_a")  # the curve is drawn over its band
    assert "run_b 80% band" not in names


def test_ror_range_ignores_the_charge_plunge():
    p = _profile()
    lo, hi = plotting.ror_range([(p.bt, 1.0)])
    assert -10 <= lo <= -5 and 30 <= hi < 60  # the -100 °F/min start is left out
    assert plotting.ror_range([]) == [-10.0, 60.0]


def test_grid_figure_one_panel_per_roast_one_legend_entry_per_curve():
    p = _profile(pid="p1")
    panels = [(f"r{i}", p, {"run_a": p.bt + i}) for i in range(3)]
    fig = plotting.grid_figure(panels, 1.0, cols=2)
    assert [tr.name for tr in fig.data].count("real") == 3
    assert sum(1 for tr in fig.data if tr.showlegend) == 2  # 'real' and 'run_a' once each
    assert [a.text for a in fig.layout.annotations][:3] == ["r0", "r1", "r2"]


def test_step_trace_figure_draws_raw_clamped_real_and_the_clamp_band():
    rows = [{"time_s": float(i), "raw_f": 90.0 + i, "clamped_f": 100.0 + i, "real_f": 300.0 + i} for i in range(5)]
    t, raw, clamped, real = plotting.step_trace_arrays({"rows": rows})
    assert raw[0] == 90.0 and clamped[0] == 100.0 and t.tolist() == [0, 1, 2, 3, 4]
    fig = plotting.step_trace_figure(t, raw, clamped, real, name="m")
    assert [tr.name for tr in fig.data] == ["real", "m raw", "m clamped"]
    assert any("clamp 100–500" in (a.text or "") for a in fig.layout.annotations)


def test_health_band_figure_marks_the_value_on_a_log_axis():
    from roastcore.experiments import HEALTH_BANDS

    fig = plotting.health_band_figure(53_000.0, HEALTH_BANDS)
    assert fig.layout.xaxis.type == "log"
    assert list(fig.data[0].x) == [53_000.0] and fig.data[0].text[0] == "53,000"
    assert {a.text for a in fig.layout.annotations} == {label for _, label in HEALTH_BANDS}


def _tf_table(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=["run", "tf_mae_f", "persistence_mae_f", "step_s", "best"])


def test_tf_figure_draws_persistence_per_step_size_on_a_log_axis():
    # A 1 s model and a 5 s model: each bar gets the persistence of its own step, in the legend by step.
    table = _tf_table([("fine", 0.5, 0.83, 1.0, "★"), ("coarse", 2.0, 4.1, 5.0, ""),
                       ("broken", 300.0, 0.83, 1.0, "")])
    fig = plotting.tf_comparison_figure(table)
    persistence = {tr.name: dict(zip(tr.y, tr.x, strict=True)) for tr in fig.data if tr.type == "scatter"}
    assert persistence == {"persistence at 1 s steps": {"fine": 0.83, "broken": 0.83},
                           "persistence at 5 s steps": {"coarse": 4.1}}
    assert not any(a.text and a.text.startswith("persistence") for a in fig.layout.annotations)
    # One run at 300 °F does not squash the others: on the log axis the 0.5 °F bar still spans a
    # fair share of the width.
    axis = fig.layout.xaxis
    assert axis.type == "log" and axis.tickformat
    lo, hi = axis.range
    assert (np.log10(0.5) - lo) / (hi - lo) > 0.1 and np.log10(300.0) < hi
    bars = fig.data[0]
    assert [t.endswith("★ best") for t in bars.text] == [r == "fine" for r in bars.y]


def test_tf_figure_marks_no_best_when_no_run_beats_its_persistence():
    table = _tf_table([("lone", 298.7, 0.83, 1.0, "")])
    fig = plotting.tf_comparison_figure(table)
    assert "★" not in fig.data[0].text[0]
    assert fig.data[0].marker.line.color[0] != plotting.INK  # no best outline
    # Without a 'best' column the figure decides the same way.
    fig = plotting.tf_comparison_figure(table.drop(columns="best"))
    assert "★" not in fig.data[0].text[0]


@pytest.mark.parametrize("maes", [(0.5, 300.0), (0.5, 11.0), (8.0, 12.0), (40.0, 60.0, 160.0), (0.2, 0.3)])
def test_tf_band_labels_do_not_overlap(maes):
    table = _tf_table([(f"r{i}", m, 1.0, 1.0, "") for i, m in enumerate(maes)])
    fig = plotting.tf_comparison_figure(table)
    lo, hi = fig.layout.xaxis.range
    xs = sorted(a.x for a in fig.layout.annotations if (a.name or "").startswith("band "))
    assert xs, "no band is labelled"
    # Labels are centred in their bands and each band spans >= BAND_LABEL_MIN_SHARE of the axis,
    # so neighbouring labels are at least that far apart (about 100 px on a 900 px chart).
    gaps = np.diff([(x - lo) / (hi - lo) for x in xs])
    assert (gaps >= plotting.BAND_LABEL_MIN_SHARE - 1e-9).all()
    assert all(lo <= x <= hi for x in xs)


def test_loss_figure_ticks_read_as_numbers_and_epochs_are_whole():
    import pandas as pd

    hist = pd.DataFrame({"run": "r", "epoch": [1, 2, 3], "train_loss": [7.0, 5.0, 4.0],
                         "val_loss": [0.9, 0.5, 0.3], "tf_ratio": [1.0, 1.0, 1.0]})
    fig = plotting.loss_figure(hist)
    # Plotly labels the minor ticks of a short log axis "3 … 9" unless a tick format is set.
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.tickformat
    assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.tickformat == "d"
    assert plotting.epoch_dtick(200) == 20 and plotting.epoch_dtick(7) == 1
    assert float(plotting.epoch_dtick(10_000)).is_integer()


def test_real_curve_and_reference_marks_use_the_theme_ink():
    """INK is Streamlit's GRAY_90 placeholder: st.plotly_chart turns it into the theme's text-like
    colour (dark on light, light on dark), so the real curve never vanishes in dark mode."""
    st_theme = pytest.importorskip("streamlit.elements.lib.streamlit_plotly_theme")
    assert plotting.INK == st_theme.GRAY_90 and plotting.BACKGROUND == st_theme.BG_COLOR
    p = _profile(pid="p1")
    fig = plotting.overlay_figure(p, {"m": p.bt + 3}, 1.0)
    assert next(tr for tr in fig.data if tr.name == "real").line.color == plotting.INK
    rows = [{"time_s": float(i), "raw_f": 300.0, "clamped_f": 300.0, "real_f": 300.0} for i in range(3)]
    fig = plotting.step_trace_figure(*plotting.step_trace_arrays({"rows": rows}))
    assert fig.data[0].name == "real" and fig.data[0].line.color == plotting.INK
    fig = plotting.grid_figure([("a", p, {"m": p.bt})], 1.0)
    assert next(tr for tr in fig.data if tr.name == "real").line.color == plotting.INK


def test_health_band_labels_sit_inside_the_log_axis():
    from roastcore.experiments import HEALTH_BANDS

    fig = plotting.health_band_figure(800.0, HEALTH_BANDS)
    lo, hi = fig.layout.xaxis.range
    assert all(lo <= a.x <= hi for a in fig.layout.annotations)  # log10 units, as Plotly wants


def _built_figures():
    import pandas as pd

    from roastcore.experiments import HEALTH_BANDS

    p = _profile(pid="p1")
    rows = [{"time_s": float(i), "raw_f": 300.0 + i, "clamped_f": 300.0, "real_f": 301.0} for i in range(5)]
    table = pd.DataFrame([("fine", 0.5, 0.83, 1.0, "★"), ("coarse", 2.0, 4.1, 5.0, "")],
                         columns=["run", "tf_mae_f", "persistence_mae_f", "step_s", "best"])
    return {
        "curves": plotting.curves_figure([p, _profile(pid="p2")]),
        "curves, no RoR": plotting.curves_figure([p], show_ror=False, show_events=False),
        "overlay": plotting.overlay_figure(p, {"m": p.bt + 3}, 1.0, title="t"),
        "overlay, no real": plotting.overlay_figure(None, {"m": p.bt + 3}, 1.0, show_ror=False),
        "step trace": plotting.step_trace_figure(*plotting.step_trace_arrays({"rows": rows}), name="m"),
        "teacher forcing": plotting.tf_comparison_figure(table),
        "teacher forcing, empty": plotting.tf_comparison_figure(table.iloc[:0]),
        "health": plotting.health_band_figure(800.0, HEALTH_BANDS),
    }


@pytest.mark.parametrize("kind", list(_built_figures()))
def test_figures_built_without_validation_still_validate(kind):
    """The dashboard's figures are built from dicts without Plotly's per-property validation
    (0.1-1 s a figure, on every render): what they hold must still pass it, unchanged."""
    import plotly.graph_objects as go
    import plotly.io as pio

    fig = _built_figures()[kind]
    checked = go.Figure(fig.to_dict())  # raises on an invalid property
    assert [t.name for t in checked.data] == [t.name for t in fig.data]
    assert checked.layout.template.layout.plot_bgcolor == "white"  # plotly_white, as validated figures
    # Nothing coerced: the browser gets what validation would have sent.
    assert json.loads(pio.to_json(checked, validate=False)) == json.loads(pio.to_json(fig, validate=False))
