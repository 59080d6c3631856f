"""roastcore.views: formatting, selection state, upload staging, tables and figures (no browser)."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from roastcore import views
from roastcore.profile import Profile, ProfileMeta


def _profile(n=600, charge=420.0, pid=""):
    t = np.arange(n, dtype=float)
    bt = 200 + 0.3 * t + 40 * np.exp(-t / 20) + (charge - 240)  # a dip then a rise
    return Profile(bt=bt, interval_s=1.0, events={"FCs": 450.0},
                   meta=ProfileMeta(origin="Kenya", process="washed", roast_level="light"), id=pid)


def test_fmt_mmss_and_duration():
    assert views.fmt_mmss(0) == "0:00"
    assert views.fmt_mmss(59.6) == "1:00"
    assert views.fmt_mmss(615) == "10:15"
    assert views.fmt_mmss(-75) == "-1:15"
    assert views.fmt_mmss(None) == "–"
    assert views.fmt_mmss(float("nan")) == "–"
    assert views.fmt_duration(3725) == "1:02:05"
    assert views.fmt_duration(-1) == "–"


def test_time_ticks_are_mmss_and_cover_the_range():
    vals, text = views.time_ticks(720)
    assert vals[0] == 0 and vals[-1] <= 720 and len(vals) <= 13
    assert text[1] == views.fmt_mmss(vals[1]) and all(":" in t for t in text)


@pytest.mark.parametrize("mae,band", [(5, "excellent"), (10, "good"), (49.9, "good"), (120, "moderate"),
                                      (150, "poor"), (None, "n/a")])
def test_tf_band(mae, band):
    assert views.tf_band(mae) == band


def test_selection_round_trip_and_untrusted_values():
    sel = views.Selection(data="ds:my_roasts", run="demo_a", compare=("demo_b", "demo_a", "run_c"))
    params = views.encode_selection(sel)
    assert params == {"data": "ds:my_roasts", "run": "demo_a", "cmp": "demo_b,run_c"}
    back = views.decode_selection(params)
    assert back.run == "demo_a" and back.compare == ("demo_b", "run_c") and back.data == "ds:my_roasts"
    assert back.runs() == ["demo_a", "demo_b", "run_c"]
    # Unknown runs are dropped when the picker's list is given; paths and junk never pass.
    back = views.decode_selection(params, known_runs=["demo_a", "run_c"], known_data=["synthetic"])
    assert back.compare == ("run_c",) and back.data == ""
    hostile = views.decode_selection({"data": "/etc/passwd", "run": "../x", "cmp": "a/b,ok_1"})
    assert hostile.data == "" and hostile.run == "" and hostile.compare == ("ok_1",)
    assert views.decode_selection({"data": ["synthetic:30"]}).data == "synthetic:30"


def test_env_defaults(tmp_path):
    assert views.runs_dir_from_env({}) == views.DEFAULT_RUNS_DIR
    assert views.runs_dir_from_env({"ROASTCORE_RUNS": str(tmp_path)}) == tmp_path
    assert views.default_data_spec({"ROASTCORE_DEFAULT_DATA": "synthetic:30"}) == "synthetic:30"
    assert views.default_data_spec({"ROASTCORE_DEFAULT_DATA": "/some/path"}) == "synthetic"


def test_sanitize_filename():
    assert views.sanitize_filename("../../etc/passwd") == "passwd"
    assert views.sanitize_filename("C:\\Users\\x\\roast 1.alog") == "roast_1.alog"
    assert views.sanitize_filename(".hidden") == "hidden"
    assert views.sanitize_filename("") == "file"


def test_stage_uploads_sanitises_dedupes_and_limits(tmp_path):
    dest = views.stage_uploads([("../a.alog", b"x"), ("a.alog", b"y"), ("dir/b.csv", b"z")], tmp_path / "s")
    assert sorted(p.name for p in dest.iterdir()) == ["a.alog", "a_2.alog", "b.csv"]
    with pytest.raises(views.UploadError, match="only"):
        views.stage_uploads([("evil.sh", b"x")], tmp_path / "t")
    with pytest.raises(views.UploadError, match="limit"):
        views.stage_uploads([("a.csv", b"x" * 100)], tmp_path / "u", max_total_bytes=10)
    with pytest.raises(views.UploadError, match="zip"):
        views.stage_uploads([("a.zip", b"not a zip")], tmp_path / "v")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("r.csv", "1,2\n")
    views.stage_uploads([("ok.zip", buf.getvalue())], tmp_path / "w")
    assert (tmp_path / "w" / "ok.zip").is_file()


def test_dataset_registry(tmp_path):
    assert views.list_datasets(tmp_path) == []
    e = views.register_dataset(tmp_path, "my roasts!", str(tmp_path / "x"), "upload", 12)
    assert e.name == "my_roasts" and e.key == "ds:my_roasts"
    assert [d.name for d in views.list_datasets(tmp_path)] == ["my_roasts"]
    assert views.unique_dataset_name(tmp_path, "my roasts") == "my_roasts_2"
    (views.datasets_dir(tmp_path) / views.DATASET_INDEX).write_text("{not json")
    assert views.list_datasets(tmp_path) == []


def test_color_map_is_stable_per_name():
    colors = views.color_map(["a", "b", "c"])
    assert len(set(colors.values())) == 3
    assert views.color_for("b", colors) == colors["b"]
    assert views.color_for("zzz") == views.color_for("zzz")


def test_spread_indices():
    assert views.spread_indices(30, 3) == [0, 14, 29] or views.spread_indices(30, 3) == [0, 15, 29]
    assert views.spread_indices(2, 3) == [0, 1] and views.spread_indices(0) == [] and views.spread_indices(1) == [0]


def test_profile_tables():
    ps = [_profile(pid="p1"), _profile(700, pid="p2")]
    table = views.profiles_table(ps)
    assert list(table["id"]) == ["p1", "p2"] and table.loc[0, "duration"] == "9:59"
    stats = views.summary_stats(ps).set_index("quantity")
    assert stats.loc["duration (s)", "count"] == 2
    assert stats.loc["duration (s)", "max"] == pytest.approx(699.0)
    counts = views.categorical_counts(ps, "origin")
    assert counts.iloc[0].tolist() == ["Kenya", 2]


def test_curves_and_overlay_figures_use_mmss_axes_and_events():
    p = _profile(pid="p1")
    fig = views.curves_figure([p])
    assert any(tr.name == "p1" for tr in fig.data)
    assert fig.layout.xaxis2.ticktext[1].count(":") == 1
    events = [tr for tr in fig.data if tr.mode == "markers+text"]
    assert events and "FCs" in list(events[0].text) and "DROP" in list(events[0].text)
    gen = {"run_a": p.bt + 5, "run_b": np.full(p.n, 300.0)}
    fig = views.overlay_figure(p, gen, 1.0, colors={"run_a": "#000001"})
    names = [tr.name for tr in fig.data]
    assert "real" in names and "run_a" in names and "run_b" in names
    assert next(tr for tr in fig.data if tr.name == "run_a").line.color == "#000001"


def test_tf_table_conclusion_and_figure():
    entries = [
        {"run": "big", "teacher_forcing": {"mae_f": 80.0, "persistence_mae_f": 2.0}, "free_run": {"mae_f": 90.0},
         "model": {"d_model": 256, "n_layers": 6}, "n_params": 4_000_000},
        {"run": "tiny", "teacher_forcing": {"mae_f": 3.0, "persistence_mae_f": 2.0}, "free_run": {"mae_f": 120.0},
         "model": {"d_model": 32, "n_layers": 2}, "n_params": 20_000},
    ]
    table = views.tf_table(entries)
    assert list(table["run"]) == ["tiny", "big"] and table.loc[0, "best"] == "★"
    assert table.loc[0, "band"] == "excellent" and table.loc[1, "band"] == "moderate"
    kind, text = views.tf_conclusion(table)
    assert kind == "scheduled_sampling" and "scheduled sampling" in text
    entries[1]["free_run"] = {"mae_f": 6.0}
    assert views.tf_conclusion(views.tf_table(entries))[0] == "ok"
    entries[1]["free_run"] = None
    assert views.tf_conclusion(views.tf_table(entries))[0] == "needs_free_run"
    entries[1]["teacher_forcing"]["mae_f"] = 200.0
    kind, text = views.tf_conclusion(views.tf_table(entries))
    assert kind == "struggles" and "even with teacher forcing" in text
    fig = views.tf_comparison_figure(views.tf_table(entries), baseline_mae=2.0)
    assert list(fig.data[0].y)[-1] == "big"  # best drawn on top
    assert any("persistence" in (a.text or "") for a in fig.layout.annotations)


def test_jobs_table_and_history():
    class J:
        def __init__(self, id, state, created):
            self.id, self.state, self.created_at, self.preset = id, state, created, "micro_model"
            self.epochs, self.started_at, self.ended_at = 10, 100.0, None
            self.device_used, self.device_assigned, self.device_requested = None, "cpu", "auto"
            self.best_val_loss, self.run_name = None, f"run_{id}"

    class P:
        epoch, epochs, elapsed_s, eta_s, train_loss, val_loss, best_val_loss, stalled = 3, 10, 65.0, 130.0, 0.5, 0.7, 0.6, False

    table = views.jobs_table([J("a", "running", 1.0), J("b", "queued", 2.0)], {"a": P()}, now=200.0)
    assert list(table["job"]) == ["b", "a"]
    row = table.set_index("job").loc["a"]
    assert row["epoch"] == "3/10" and row["elapsed"] == "1:05" and row["ETA"] == "2:10" and row["device"] == "cpu"
    hist = views.history_frame({"r": [{"epoch": 1, "train_loss": 1.0, "val_loss": 2.0, "tf_ratio": 1.0},
                                      {"epoch": 2, "train_loss": 0.5, "val_loss": 1.0, "tf_ratio": 0.8},
                                      {"status": "succeeded"}]})
    assert len(hist) == 2
    fig = views.loss_figure(hist)
    assert {tr.name for tr in fig.data} == {"r train", "r val", "r teacher forcing"}


def test_free_run_and_physics_tables():
    models = {"m": {"mae_f": 30.0, "physics_valid_pct": 50.0}}
    base = {"mean_curve": {"mae_f": 20.0}, "knn": {"mae_f": 10.0}}
    table = views.free_run_table(models, base)
    assert list(table["curve from"]) == ["m", "baseline: kNN", "baseline: mean curve"]
    from roastcore.physics import check_curve

    p = _profile()
    t = views.physics_table({"flat": check_curve(np.full(600, 300.0), 1.0), "real": check_curve(p.bt, 1.0)})
    assert set(t["curve"]) == {"flat", "real"} and "why" in t.columns


def test_diff_table():
    d = views.diff_table({"model": {"d_model": 256, "dropout": 0.1}, "lr": 1e-3},
                         {"model": {"d_model": 64, "dropout": 0.1}, "lr": 1e-3})
    assert d.to_dict("records") == [{"field": "model.d_model", "preset": "256", "current": "64"}]
    assert views.diff_table({"a": 1}, {"a": 1}).empty


def test_registry_json_is_readable_by_other_processes(tmp_path):
    views.register_dataset(tmp_path, "x", "/abs/path", "path", 3)
    raw = json.loads((views.datasets_dir(tmp_path) / views.DATASET_INDEX).read_text())
    assert raw["x"]["spec"] == "/abs/path"
    assert isinstance(views.jobs_table([], {}), pd.DataFrame)
