"""roastcore.plotting: time axes, colours and the Plotly figures (no browser)."""

from __future__ import annotations

import ast
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
