"""The dashboard's streamlit-free helpers in pages/: formatting, selection state, the run picker,
tables and form logic (no browser, no AppTest)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # pages/ is not an installed package: import it from the clone
    sys.path.insert(0, str(REPO))

from pages import (  # noqa: E402
    _coffee_form,
    _data_tables,
    _eval_tables,
    _format,
    _job_tables,
    _runs,
    _setup_form,
    _state,
)
from roastcore.plotting import loss_figure, tf_comparison_figure  # noqa: E402
from roastcore.profile import Profile, ProfileMeta  # noqa: E402

HELPERS = ("_coffee_form", "_data_tables", "_eval_tables", "_format", "_job_tables", "_runs", "_setup_form",
           "_state")


def _profile(n=600, charge=420.0, pid=""):
    t = np.arange(n, dtype=float)
    bt = 200 + 0.3 * t + 40 * np.exp(-t / 20) + (charge - 240)  # a dip then a rise
    return Profile(bt=bt, interval_s=1.0, events={"FCs": 450.0},
                   meta=ProfileMeta(origin="Kenya", process="washed", roast_level="light"), id=pid)


@pytest.mark.parametrize("name", HELPERS)
def test_helpers_have_a_subject_line_and_no_streamlit(name):
    text = (REPO / "pages" / f"{name}.py").read_text()
    assert text.startswith('"""') and len(text.splitlines()[0]) <= 100
    assert "import streamlit" not in text and "from streamlit" not in text


def test_fmt_mmss_and_duration():
    assert _format.fmt_mmss(0) == "0:00"
    assert _format.fmt_mmss(59.6) == "1:00"
    assert _format.fmt_mmss(615) == "10:15"
    assert _format.fmt_mmss(-75) == "-1:15"
    assert _format.fmt_mmss(None) == "–"
    assert _format.fmt_mmss(float("nan")) == "–"
    assert _format.fmt_duration(3725) == "1:02:05"
    assert _format.fmt_duration(-1) == "–"


def test_fmt_count_and_float():
    assert _format.fmt_count(12345) == "12.3k" and _format.fmt_count(1234567) == "1.23M"
    assert _format.fmt_count(None) == "–" and _format.fmt_count(12) == "12"
    assert _format.fmt_float(1.234, 2) == "1.23" and _format.fmt_float(float("inf")) == "–"


@pytest.mark.parametrize("mae,band", [(5, "excellent"), (10, "good"), (49.9, "good"), (120, "moderate"),
                                      (150, "poor"), (None, "n/a")])
def test_tf_band(mae, band):
    assert _format.tf_band(mae) == band


def test_selection_round_trip_and_untrusted_values():
    sel = _state.Selection(data="ds:my_roasts", run="demo_a", compare=("demo_b", "demo_a", "run_c"))
    params = _state.encode_selection(sel)
    assert params == {"data": "ds:my_roasts", "run": "demo_a", "cmp": "demo_b,run_c"}
    back = _state.decode_selection(params)
    assert back.run == "demo_a" and back.compare == ("demo_b", "run_c") and back.data == "ds:my_roasts"
    assert back.runs() == ["demo_a", "demo_b", "run_c"]
    # Unknown runs are dropped when the picker's list is given; paths and junk never pass.
    back = _state.decode_selection(params, known_runs=["demo_a", "run_c"], known_data=["synthetic"])
    assert back.compare == ("run_c",) and back.data == ""
    hostile = _state.decode_selection({"data": "/etc/passwd", "run": "../x", "cmp": "a/b,ok_1"})
    assert hostile.data == "" and hostile.run == "" and hostile.compare == ("ok_1",)
    assert _state.decode_selection({"data": ["synthetic:30"]}).data == "synthetic:30"


def test_env_defaults(tmp_path):
    assert _state.runs_dir_from_env({}) == _state.DEFAULT_RUNS_DIR
    assert _state.runs_dir_from_env({"ROASTCORE_RUNS": str(tmp_path)}) == tmp_path
    assert _state.default_data_spec({"ROASTCORE_DEFAULT_DATA": "synthetic:30"}) == "synthetic:30"
    assert _state.default_data_spec({"ROASTCORE_DEFAULT_DATA": "/some/path"}) == "synthetic"
    assert _state.builtin_data_label("synthetic:30") == "Built-in synthetic (30 roasts)"


def test_discover_runs_lists_demos_first_with_labels():
    demos = sorted(p.name for p in (REPO / "checkpoints").glob("demo_*") if (p / "model.safetensors").is_file())
    if not demos:
        pytest.skip("the shipped demo checkpoints are absent")
    runs = _runs.discover_runs(REPO / "missing_runs_dir")
    assert sorted(r.name for r in runs) == demos and all(r.demo for r in runs)
    assert all(r.label.startswith(r.name) for r in runs)
    assert _runs.run_caption(runs[0]).startswith("status **")


def test_run_label_shows_unfinished_status_and_the_best_figure():
    run = _runs.RunChoice(name="r", path=Path("r"), status="running",
                          metrics={"val_tf_mae_f": 3.14, "best_val_loss": 0.5})
    assert _runs.run_label(run) == "r · [running] · TF MAE 3.1 °F"
    run.metrics = {"best_val_loss": 0.5}
    run.status = "succeeded"
    assert _runs.run_label(run) == "r · val loss 0.5"


def test_spread_indices():
    assert _data_tables.spread_indices(30, 3) == [0, 14, 29] or _data_tables.spread_indices(30, 3) == [0, 15, 29]
    assert _data_tables.spread_indices(2, 3) == [0, 1] and _data_tables.spread_indices(0) == []
    assert _data_tables.spread_indices(1) == [0]


def test_profile_tables():
    ps = [_profile(pid="p1"), _profile(700, pid="p2")]
    table = _data_tables.profiles_table(ps)
    assert list(table["id"]) == ["p1", "p2"] and table.loc[0, "duration"] == "9:59"
    stats = _data_tables.summary_stats(ps).set_index("quantity")
    assert stats.loc["duration (s)", "count"] == 2
    assert stats.loc["duration (s)", "max"] == pytest.approx(699.0)
    counts = _data_tables.categorical_counts(ps, "origin")
    assert counts.iloc[0].tolist() == ["Kenya", 2]


def test_import_summary_lists_rejections_and_duplicates():
    from roastcore.io import ImportReport, Rejection

    report = ImportReport(profiles=[_profile()], rejected=[Rejection("/x/bad.alog", "not a roast")],
                          duplicates=[("/x/b.csv", "/x/a.csv")])
    s = _data_tables.import_summary(report, "done")
    assert s["n_ok"] == 1 and s["message"] == "done"
    assert s["rejected"].to_dict("records") == [{"file": "bad.alog", "reason": "not a roast"}]
    assert s["duplicates"].to_dict("records") == [{"file": "b.csv", "duplicate of": "a.csv"}]


def test_tf_table_conclusion_and_figure():
    entries = [
        {"run": "big", "teacher_forcing": {"mae_f": 80.0, "persistence_mae_f": 2.0}, "free_run": {"mae_f": 90.0},
         "model": {"d_model": 256, "n_layers": 6}, "n_params": 4_000_000},
        {"run": "tiny", "teacher_forcing": {"mae_f": 3.0, "persistence_mae_f": 2.0}, "free_run": {"mae_f": 120.0},
         "model": {"d_model": 32, "n_layers": 2}, "n_params": 20_000},
    ]
    table = _eval_tables.tf_table(entries)
    assert list(table["run"]) == ["tiny", "big"] and table.loc[0, "best"] == "★"
    assert table.loc[0, "band"] == "excellent" and table.loc[1, "band"] == "moderate"
    kind, text = _eval_tables.tf_conclusion(table)
    assert kind == "scheduled_sampling" and "scheduled sampling" in text
    entries[1]["free_run"] = {"mae_f": 6.0}
    assert _eval_tables.tf_conclusion(_eval_tables.tf_table(entries))[0] == "ok"
    entries[1]["free_run"] = None
    assert _eval_tables.tf_conclusion(_eval_tables.tf_table(entries))[0] == "needs_free_run"
    entries[1]["teacher_forcing"]["mae_f"] = 200.0
    kind, text = _eval_tables.tf_conclusion(_eval_tables.tf_table(entries))
    assert kind == "struggles" and "even with teacher forcing" in text
    fig = tf_comparison_figure(_eval_tables.tf_table(entries), baseline_mae=2.0)
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
        epoch, epochs, elapsed_s, eta_s = 3, 10, 65.0, 130.0
        train_loss, val_loss, best_val_loss, stalled = 0.5, 0.7, 0.6, False

    table = _job_tables.jobs_table([J("a", "running", 1.0), J("b", "queued", 2.0)], {"a": P()}, now=200.0)
    assert list(table["job"]) == ["b", "a"]
    row = table.set_index("job").loc["a"]
    assert row["epoch"] == "3/10" and row["elapsed"] == "1:05" and row["ETA"] == "2:10" and row["device"] == "cpu"
    hist = _job_tables.history_frame({"r": [{"epoch": 1, "train_loss": 1.0, "val_loss": 2.0, "tf_ratio": 1.0},
                                            {"epoch": 2, "train_loss": 0.5, "val_loss": 1.0, "tf_ratio": 0.8},
                                            {"status": "succeeded"}]})
    assert len(hist) == 2
    fig = loss_figure(hist)
    assert {tr.name for tr in fig.data} == {"r train", "r val", "r teacher forcing"}
    assert isinstance(_job_tables.jobs_table([], {}), pd.DataFrame)
    line = _job_tables.job_line(J("a", "running", 1.0), P())
    assert line == "micro_model · a · running · epoch 3/10 · train 0.5 · val 0.7 · elapsed 1:05 · ETA 2:10"
    assert _job_tables.job_fraction(P()) == pytest.approx(0.3) and _job_tables.job_fraction(None) == 0.0


def test_free_run_and_physics_tables():
    models = {"m": {"mae_f": 30.0, "physics_valid_pct": 50.0}}
    base = {"mean_curve": {"mae_f": 20.0}, "knn": {"mae_f": 10.0}}
    table = _eval_tables.free_run_table(models, base)
    assert list(table["curve from"]) == ["m", "baseline: kNN", "baseline: mean curve"]
    from roastcore.physics import check_curve

    p = _profile()
    t = _eval_tables.physics_table({"flat": check_curve(np.full(600, 300.0), 1.0), "real": check_curve(p.bt, 1.0)})
    assert set(t["curve"]) == {"flat", "real"} and "why" in t.columns


def test_physics_checks_rows_real_first_then_each_curve():
    from roastcore.simulate import generate_dataset

    real = generate_dataset(n=1, seed=0)[0]
    t = _eval_tables.physics_checks(real, {"flat": np.full(600, 300.0)})
    assert list(t["curve"]) == ["real", "flat"]
    assert t.set_index("curve").loc["flat", "all pass"] == "✗"


def test_step_table_shows_mmss():
    rows = [{"step": i, "time_s": 30.0 * i, "raw_f": 1.0, "clamped_f": 1.0, "real_f": 1.0, "error_f": 0.0,
             "clamped": False} for i in range(3)]
    t = _eval_tables.step_table({"rows": rows})
    assert list(t["time"]) == ["0:00", "0:30", "1:00"] and "fed back °F" in t.columns


def test_diff_table():
    d = _setup_form.diff_table({"model": {"d_model": 256, "dropout": 0.1}, "lr": 1e-3},
                               {"model": {"d_model": 64, "dropout": 0.1}, "lr": 1e-3})
    assert d.to_dict("records") == [{"field": "model.d_model", "preset": "256", "current": "64"}]
    assert _setup_form.diff_table({"a": 1}, {"a": 1}).empty


def test_setup_form_overrides_validation_and_health():
    from roastcore.experiments import get_preset

    base = get_preset("micro_model").experiment
    values = _setup_form.preset_values(base)
    assert _setup_form.apply_values(base, values)[0] == {}
    overrides, exp, err = _setup_form.apply_values(base, {**values, "d_model": 64, "n_heads": 4})
    assert overrides == {"d_model": 64, "n_heads": 4} and exp.model.d_model == 64 and err is None
    overrides, exp, err = _setup_form.apply_values(base, {**values, "d_model": 64, "n_heads": 3})
    assert exp is None and "n_heads" in err
    assert base.model.d_model in _setup_form.slider_options("d_model")
    assert _setup_form.training_health(53_000 * 100, 125, 0.2) == (100, 53_000.0, "extreme")


def test_coffee_form_request():
    req = _coffee_form.roast_request({"origin": "Kenya", "process": _coffee_form.UNKNOWN, "flavors": ["berry"],
                                      "charge_f": 420, "by": _coffee_form.BY_LENGTH, "length_s": 600,
                                      "drop_f": 410})
    assert req.origin == "Kenya" and req.process is None and req.flavors == ("berry",)
    assert req.duration_s == 600.0 and req.drop_temp_f is None
    req = _coffee_form.roast_request({"charge_f": 400, "by": _coffee_form.BY_DROP, "length_s": 600, "drop_f": 405})
    assert req.duration_s is None and req.drop_temp_f == 405.0
    req.validate()
