"""The sweep view: roastcore.sweep_charts' Altair specs on chart_records rows, and the Sweeps
page's streamlit-free helpers (pages/_sweep_form.py: the launch form, tables, selections,
the slot line). Specs are checked against the Vega-Lite schema (Altair's to_dict validates)."""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from roastcore import sweep_charts as sc
from roastcore.jobs import NOT_SCORED, chart_records, sweep_table

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # pages/ helpers are imported from the clone, as app.py does
    sys.path.insert(0, str(REPO))

NAMES = {"tf_mae_f": "TF MAE", "persistence_mae_f": "persistence", "free_mae_f": "free MAE",
         "aligned_knn_mae_f": "aligned kNN", "time_s": "time"}


def _run(job_id, preset, seed, grid, tf=None, state="succeeded", time_s=30.0):
    """One sweep_runs record; scored when `tf` is given (free = 3 x tf)."""
    scores = None if tf is None else {
        "tf_mae_f": tf, "persistence_mae_f": 5.0, "free_mae_f": 3 * tf, "aligned_knn_mae_f": 9.0,
        "finish_mae_f": 2.0, "physics_valid_pct": 100.0, "verdict": "healthy"}
    setting = " ".join(f"{k}={v}" for k, v in sorted(grid.items()))
    return {"job_id": job_id, "state": state, "preset": preset, "setting": setting,
            "label": f"{preset} {setting}".strip(), "seed": seed, "grid": dict(grid),
            "run_dir": f"/runs/{job_id}", "time_s": time_s if state == "succeeded" else None,
            "reason": "boom\ntraceback" if state == "failed" else None, "scores": scores,
            "scored": scores is not None, "verdict": (scores or {}).get("verdict")}


@pytest.fixture
def grid_runs():
    """micro_model x lr in {1e-4, 1e-3, 1e-2} x step_s 5 (one value) x 2 seeds, one run failed."""
    runs = []
    for i, lr in enumerate((1e-4, 1e-3, 1e-2)):
        for seed in (0, 1):
            failed = lr == 1e-2 and seed == 1
            runs.append(_run(f"j{i}{seed}", "micro_model", seed, {"lr": lr, "step_s": 5.0},
                             tf=None if failed else 2.0 + i + 2 * seed,
                             state="failed" if failed else "succeeded"))
    return runs


@pytest.fixture
def suite_runs():
    """Two presets, no grid, three seeds each; tiny_model's last seed still running."""
    runs = [_run(f"m{s}", "micro_model", s, {}, tf=1.0 + s) for s in range(3)]
    runs += [_run(f"t{s}", "tiny_model", s, {}, tf=10.0 + 2 * s) for s in range(2)]
    runs.append(_run("t2", "tiny_model", 2, {}, state="running"))
    return runs


def records_of(runs):
    return chart_records(runs, metrics=sc.CHART_METRICS)


def layer_marks(spec: dict) -> list[str]:
    return [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]
            for layer in spec["layer"]]


def layer_values(spec: dict, mark: str) -> list[dict]:
    layer = next(la for la in spec["layer"] if layer_marks({"layer": [la]})[0] == mark)
    return layer["data"]["values"]


# ---------------------------------------------------------------------------- labels
def test_labels_keep_what_tells_runs_apart(grid_runs, suite_runs):
    labels = sc.run_labels(records_of(grid_runs))
    # One preset, step_s the same everywhere: only lr is said; seeds share their setting's label.
    assert labels["j00"] == labels["j01"] == "lr=0.0001" and labels["j20"] == "lr=0.01"
    assert sc.varying_keys(records_of(grid_runs)) == ["lr"]
    assert sc.run_labels(records_of(suite_runs))["t1"] == "tiny_model"
    mixed = records_of([_run("a", "micro_model", 0, {"lr": 1e-3}, tf=1.0),
                        _run("b", "tiny_model", 0, {"lr": 1e-3}, tf=2.0)])
    assert set(sc.run_labels(mixed).values()) == {"micro_model", "tiny_model"}


# ---------------------------------------------------------------------------- the suite chart
def test_summary_is_mean_and_sample_std_beside_the_baseline(suite_runs):
    rows = sc.summary_rows(records_of(suite_runs), "tf_mae_f", NAMES)
    by = {(r["label"], r["role"]): r for r in rows}
    micro = by[("micro_model", "model")]
    assert micro["mean"] == pytest.approx(2.0) and micro["std"] == pytest.approx(1.0)
    assert (micro["lo"], micro["hi"], micro["n"]) == pytest.approx((1.0, 3.0, 3))
    assert by[("tiny_model", "model")]["n"] == 2  # the running seed is not scored yet
    assert by[("tiny_model", "model")]["std"] == pytest.approx(statistics.stdev([10.0, 12.0]))
    assert by[("micro_model", "baseline")]["figure"] == "persistence"
    assert [r["label"] for r in rows] == ["micro_model"] * 2 + ["tiny_model"] * 2
    # One run: no std, a zero-length whisker; a figure without a baseline stands alone.
    single = sc.summary_rows(records_of([_run("x", "micro_model", 0, {}, tf=4.0)]), "time_s")
    assert single == [{"label": "micro_model", "figure": "time_s", "role": "model", "mean": 30.0,
                       "std": None, "lo": 30.0, "hi": 30.0, "n": 1}]


def test_suite_chart_spec(suite_runs):
    spec = sc.suite_chart(records_of(suite_runs), "free_mae_f", NAMES).to_dict()  # validates
    assert layer_marks(spec) == ["bar", "rule", "circle"]
    [param] = spec["params"]
    assert param["name"] == sc.SELECTION == "runs"
    assert param["select"] == {"type": "point", "fields": ["job_id"], "on": "click"}
    points = spec["layer"][2]
    assert points["encoding"]["xOffset"]["field"] == "figure"
    assert points["encoding"]["x"]["sort"] == ["micro_model", "tiny_model"]
    assert points["encoding"]["color"]["scale"]["domain"] == ["free MAE", "aligned kNN"]
    # Selected runs are drawn opaque and large, the rest faded.
    assert points["encoding"]["opacity"]["condition"][0]["param"] == "runs"
    assert points["encoding"]["opacity"]["value"] == sc.FADED
    values = layer_values(spec, "circle")
    assert {v["job_id"] for v in values} == {"m0", "m1", "m2", "t0", "t1"}
    assert len(values) == 10  # each scored run: its figure and its baseline
    bars = {(v["label"], v["figure"]): v["mean"] for v in layer_values(spec, "bar")}
    assert bars == pytest.approx({
        ("micro_model", "free MAE"): 6.0, ("micro_model", "aligned kNN"): 9.0,
        ("tiny_model", "free MAE"): 33.0, ("tiny_model", "aligned kNN"): 9.0})
    # Presets follow the sweep's order, settings their values (not the store's job order).
    shuffled = records_of(list(reversed(suite_runs)))
    ordered = sc.suite_chart(shuffled, presets=["tiny_model", "micro_model"]).to_dict()
    assert ordered["layer"][2]["encoding"]["x"]["sort"] == ["tiny_model", "micro_model"]
    grid = [_run(f"g{i}", "micro_model", 0, {"lr": lr}, tf=1.0)
            for i, lr in enumerate((1e-2, 1e-4, 1e-3))]
    assert sc._order(sc.run_labels(records_of(grid)), records_of(grid)) == [
        "lr=0.0001", "lr=0.001", "lr=0.01"]
    with pytest.raises(ValueError, match="no scored run has the figure 'nope'"):
        sc.suite_chart(records_of(suite_runs), "nope")


# ---------------------------------------------------------------------------- parallel coordinates
def test_parallel_rows_place_each_value_on_its_own_axis(grid_runs):
    rows = sc.parallel_rows(records_of(grid_runs), ("tf_mae_f", "time_s"), NAMES)
    axes = list(dict.fromkeys(r["axis"] for r in sorted(rows, key=lambda r: r["order"])))
    assert axes == ["lr", "TF MAE", "time"]  # step_s is the same everywhere: no axis
    lr = {r["job_id"]: r["position"] for r in rows if r["axis"] == "lr"}
    # Learning rates span two decades: a log axis puts 1e-3 in the middle.
    assert lr == pytest.approx({"j00": 0.0, "j01": 0.0, "j10": 0.5, "j11": 0.5, "j20": 1.0})
    tf = {r["job_id"]: r["position"] for r in rows if r["axis"] == "TF MAE"}
    assert tf["j00"] == 0.0 and tf["j11"] == 1.0 and tf["j01"] == pytest.approx(2 / 3)
    assert {r["position"] for r in rows if r["axis"] == "time"} == {0.5}  # constant
    assert next(r["text"] for r in rows if r["job_id"] == "j00" and r["axis"] == "lr") == "0.0001"
    assert "j21" not in {r["job_id"] for r in rows}  # failed: not scored


def test_parallel_positions_of_categories_and_small_ranges():
    assert sc._positions(["gru", "transformer", "gru"]) == [0.0, 1.0, 0.0]
    assert sc._positions([16, 32, 64]) == pytest.approx([0.0, 1 / 3, 1.0])  # a factor 4: linear
    assert sc._positions([0.0, 0.1, 0.2]) == pytest.approx([0.0, 0.5, 1.0])  # zero: linear


def test_parallel_chart_spec(grid_runs):
    spec = sc.parallel_chart(records_of(grid_runs), names=NAMES).to_dict()
    assert sc.parallel_rows(records_of(grid_runs))[-1]["axis"] == "job time s"  # short names
    assert layer_marks(spec) == ["rule", "line", "circle", "text"]
    [param] = spec["params"]
    assert param["name"] == "runs" and param["select"]["fields"] == ["job_id"]
    line = spec["layer"][1]
    assert line["encoding"]["detail"]["field"] == "job_id"
    assert line["encoding"]["opacity"]["condition"][0]["param"] == "runs"
    assert line["encoding"]["x"]["sort"] == ["lr", "TF MAE", "free MAE", "finish_mae_f", "time"]
    ends = {(v["axis"], v["position"]): v["text"] for v in layer_values(spec, "text")}
    assert ends[("lr", 0.0)] == "0.0001" and ends[("lr", 1.0)] == "0.01"
    assert ends[("time", 0.5)] == "30" and ("time", 1.0) not in ends  # constant: one value
    with pytest.raises(ValueError, match="no scored run"):
        sc.parallel_chart([])


# ---------------------------------------------------------------------------- curves
def test_curves_chart_highlights_the_selected_runs(grid_runs):
    from pages._sweep_form import history_records

    metrics = {f"/runs/{r['job_id']}": [{"epoch": e, "val_tf_mae_f": 10.0 / e} for e in (1, 2)]
               + [{"summary": True}, {"epoch": 3, "val_tf_mae_f": float("nan")}]
               for r in grid_runs}
    history = history_records(grid_runs, lambda run_dir: metrics[run_dir])
    assert len(history) == 12 and history[0]["grid.lr"] == 1e-4
    spec = sc.curves_chart(history, ["j10", "j11"]).to_dict()
    rows = spec["data"]["values"]
    assert {r["job_id"] for r in rows if r["selected"]} == {"j10", "j11"}
    assert spec["mark"] == {"type": "line", "point": True}
    assert spec["encoding"]["y"]["scale"]["type"] == "log"
    assert all(r["selected"] for r in sc.curves_chart(history).to_dict()["data"]["values"])
    with pytest.raises(ValueError, match="no epochs"):
        sc.curves_chart([])


# ---------------------------------------------------------------------------- the page's helpers
def test_the_form_from_setup_to_launch_sweeps_arguments():
    from pages import _sweep_form as sf

    experiment = SimpleNamespace(train=SimpleNamespace(epochs=12))
    draft = sf.draft_from_setup("micro_model", {"d_model": 64, "step_s": 5.0, "epochs": 12,
                                                "seed": 3}, experiment, "cpu")
    start = sf.form_defaults(draft, ("tiny_model", "low_lr"))
    assert start["presets"] == ["micro_model"] and start["epochs"] == 12
    assert start["grid"] == {"d_model": [64], "lr": [], "dropout": []}
    assert start["base"] == {"step_s": 5.0} and start["device"] == "cpu"
    assert sf.form_defaults(None, ("tiny_model", "low_lr"))["presets"] == ["tiny_model", "low_lr"]
    request = sf.sweep_request(["micro_model", "tiny_model"], start["base"],
                               {"d_model": [64, 32, 64], "lr": [1e-3, 2e-3], "dropout": []}, 2, 12)
    assert request == {"presets": ["micro_model", "tiny_model"], "seeds": 2, "epochs": 12,
                       "device": "auto",
                       "grid": {"step_s": [5.0], "d_model": [32, 64], "lr": [1e-3, 2e-3]}}
    assert sf.job_count(request) == 2 * 4 * 2
    assert sf.job_count(sf.sweep_request(["a"], {}, {}, 3, None)) == 3
    assert set(sf.DROPOUT_CHOICES) >= {0.0, 0.1, 0.6} and 0.15 in sf.DROPOUT_CHOICES


def test_selections_from_streamlit_and_which_chart_wins():
    from pages._sweep_form import chart_selection, pick_selection, selected_job_ids

    clicked = {"runs": [{"job_id": "a"}, {"job_id": "b"}, {"job_id": "a"}]}
    assert selected_job_ids(clicked, sc.SELECTION) == ["a", "b"]
    assert selected_job_ids(clicked, "other") == []
    # Streamlit's empty state ({"runs": {}}), nothing yet, or another shape: no runs.
    for empty in ({"runs": {}}, None, {}, {"runs": "a"}, {"runs": [{"seed": 1}]}):
        assert selected_job_ids(empty, sc.SELECTION) == []
    assert pick_selection({"suite": ["a"], "grid": ["b", "c"]}, "grid") == ["b", "c"]
    assert pick_selection({"suite": ["a"], "grid": []}, "grid") == ["a"]  # cleared: the other's
    assert pick_selection({"suite": [], "grid": []}, None) == []
    # From the session state as Streamlit keeps the charts' (a chart not drawn yet: no key).
    state = {"k1": {"selection": {"runs": [{"job_id": "a"}]}}, "k2": {"selection": {"runs": {}}}}
    keys = {"suite": "k1", "grid": "k2", "other": "k3"}
    assert chart_selection(state, keys, "grid", sc.SELECTION) == ["a"]


def test_results_and_runs_tables(grid_runs):
    from pages._sweep_form import results_frame, runs_frame

    grid_runs.append(_run("q0", "micro_model", 0, {"lr": 3e-3, "step_s": 5.0}, state="queued"))
    table = results_frame(sweep_table(grid_runs), grid_runs, presets=["micro_model"])
    assert list(table["setting"]) == ["lr=0.0001 step_s=5.0", "lr=0.001 step_s=5.0",
                                      "lr=0.003 step_s=5.0", "lr=0.01 step_s=5.0"]  # by value
    first = table.iloc[0]
    assert first["scored"] == "2/2" and first["teacher-forcing MAE °F"] == "3.00 ± 1.41"
    assert first["persistence MAE °F (same step)"] == "5.00 ± 0.00"
    assert first["physically valid %"] == "100 ± 0" and first["verdicts"] == "healthy"
    assert table.iloc[2]["verdicts"] == NOT_SCORED
    assert pd.isna(table.iloc[2]["teacher-forcing MAE °F"])
    assert table.iloc[3]["scored"] == "1/2" and table.iloc[3]["teacher-forcing MAE °F"] == "4.00"
    # A selection keeps the settings of the selected runs.
    only = results_frame(sweep_table(grid_runs), grid_runs, ["j11"])
    assert list(only["setting"]) == ["lr=0.001 step_s=5.0"]
    runs = runs_frame(grid_runs)
    notes = dict(zip(runs["job"], runs["verdict / reason"], strict=True))
    assert notes["j00"] == "healthy" and notes["j21"] == "boom" and notes["q0"] == ""
    assert math.isnan(runs.set_index("job").loc["j21", "TF MAE °F"])
    assert list(runs_frame(grid_runs, ["j00", "q0"])["job"]) == ["j00", "q0"]


def test_slot_line():
    from pages._sweep_form import slots_text

    local = {"cpu": {"threads_total": 2, "threads_used": 1, "threads_free": 1}, "gpus": [],
             "running": 1, "queued": 3, "backend": "local"}
    assert slots_text(local) == ("Slots · CPU threads: 1 of 2 in use, 1 free · 1 running, "
                                 "3 queued")
    gpu = dict(local, gpus=[{"index": 0, "jobs": 2, "max_jobs": 8, "free_jobs": 6,
                             "mem_est_mb": 1536.0, "mem_total_mb": 81920.0}])
    assert "GPU 0: 2 of 8 jobs, ~1.5 of 80 GB" in slots_text(gpu)
    ray = dict(local, cluster={"address": "http://h:8265", "running": 2, "pending": 1,
                               "cpus_used": 2, "cpus": 16, "gpus": 0})
    assert slots_text(ray).endswith("Ray at http://h:8265: 2 running, 1 pending, 2 of 16 CPUs")
    down = dict(local, cluster={"address": "http://h:8265", "error": "cannot reach it\nmore"})
    assert slots_text(down).endswith("(cannot read its capacity: cannot reach it)")
