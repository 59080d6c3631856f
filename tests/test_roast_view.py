"""The Roast in progress page's streamlit-free logic (pages/_roast_view.py) and its figure
(plotting.forecast_figure), on real fitted forecasters and real files."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # pages/ helpers are imported from the clone, as app.py does
    sys.path.insert(0, str(REPO))

from pages import _roast_view as view  # noqa: E402
from roastcore.forecast import Horizon  # noqa: E402
from roastcore.io import load_source  # noqa: E402
from roastcore.plotting import FORECAST_COLORS, INK, REST_COLOR, forecast_figure  # noqa: E402


@pytest.fixture(scope="module")
def profiles():
    return load_source("synthetic:12").profiles


@pytest.fixture(scope="module")
def fitted(profiles):
    # The two cheap methods (well under a second to fit); prefix_knn is covered by the AppTest.
    return {m: view.fit_forecaster(m, profiles) for m in ("linear_projection", "ror_decay")}


def test_choices_offer_what_the_run_and_data_support():
    assert view.available_methods(False, False) == ["prefix_knn", "linear_projection", "ror_decay"]
    assert view.available_methods(True, True)[-2:] == ["model", "model_prefix_prior"]
    # Enough products: the dataset itself; one imported log: the run's roasts, then the built-in set.
    assert view.training_sources(10, True, False)[0] == "dataset"
    assert view.training_sources(1, True, False) == ["run", "builtin", "dataset"]
    assert view.training_sources(1, False, False) == ["builtin", "dataset"]
    assert view.training_sources(1, False, True) == ["dataset"]
    times = view.slider_times(700.4)
    assert times[0] == 30 and times[-1] == 670 and set(np.diff(times)) == {view.STEP_S}
    assert view.slider_times(50) == []  # too short to replay
    assert view.default_time(times) == 240 and view.default_time([30, 35, 40]) == 40
    assert view.advance(240, times, 30) == (255, False)
    assert view.advance(665, times, 60) == (670, True)


def test_a_frame_sees_nothing_after_the_cut(profiles, fitted):
    p = profiles[0]
    fr = view.frame(fitted, p, 240, Horizon.drop_at(p.duration_s))
    assert set(fr.forecasts) == {"linear_projection", "ror_decay"} and not fr.errors
    for f in fr.forecasts.values():
        assert f.times_s[0] == 241 and np.all(f.lo_f <= f.bt_f + 1e-9) and np.all(f.bt_f <= f.hi_f + 1e-9)
    # The same roast with another rest forecasts the same.
    other = dataclasses.replace(p, bt=np.where(p.times_s > 240, p.bt + 25.0, p.bt))
    again = view.frame(fitted, other, 240, Horizon.drop_at(p.duration_s))
    for m, f in fr.forecasts.items():
        np.testing.assert_allclose(again.forecasts[m].bt_f, f.bt_f)
    rows = view.frame_rows(fr, p)
    assert [r["method"] for r in rows] == ["linear_projection", "ror_decay", "real"]
    assert rows[0]["DROP"].endswith("(given)") and rows[-1]["DROP"] == view.fmt_mmss(p.duration_s)
    # A DROP time behind the cut is said per method, not raised.
    late = view.frame(fitted, p, 400, Horizon.drop_at(300))
    assert not late.forecasts and "not after" in late.errors["ror_decay"]
    assert view.frame_rows(late, p)[0]["physics"] == late.errors["linear_projection"]


def test_a_target_horizon_gives_the_drop_time_with_its_band(profiles, fitted):
    p = profiles[1]
    target = view.default_drop_f(p)
    fr = view.frame(fitted, p, 360, view.horizon("target", target))
    f = fr.forecasts["ror_decay"]
    assert f.horizon == "target" and f.time_to_target_s is not None
    drop = view.frame_rows(fr, p)[1]["DROP"]
    assert drop.startswith(view.fmt_mmss(360 + f.time_to_target_s)) and "(" in drop
    assert view.horizon("expected_end", None) == Horizon.expected_end()
    with pytest.raises(ValueError, match="target"):
        view.horizon("target", 900.0)


def test_forecast_figure_draws_the_replay(profiles, fitted):
    p = profiles[0]
    fr = view.frame(fitted, p, 300, Horizon.target(view.default_drop_f(p)))
    x_max, y_range = view.axes(p)
    spec = forecast_figure(p, 300, fr.forecasts, x_max=x_max, y_range=y_range)
    lines = spec["datasets"]["curves"]
    observed, rest = lines[lines["series"] == "observed"], lines[lines["series"] == "real rest"]
    line_layer = next(la for la in spec["layer"] if la["data"]["name"] == "curves")
    colors = dict(zip(*(line_layer["encoding"]["color"]["scale"][k] for k in ("domain", "range")), strict=True))
    assert colors["observed"] == INK and observed["t"].max() == 300  # reads on both themes (plotting.INK)
    assert colors["real rest"] == REST_COLOR and rest["t"].iloc[0] <= 300 and rest["t"].max() == p.duration_s
    assert set(rest["style"]) == {"dot"}
    bands, moments = spec["datasets"]["bands"], spec["datasets"]["moments"]
    for m in fr.forecasts:
        line = lines[lines["series"] == m]
        assert colors[m] == FORECAST_COLORS[m] and line["t"].iloc[0] == 301 and set(line["style"]) == {"dash"}
        band = bands[bands["series"] == m]
        assert len(band) == len(line) and (band["lo"] <= band["hi"]).all()
        mine = moments[moments["series"] == m]  # ▲ first crack (unless it is past), ■ DROP, with bands
        assert mine["t"].iloc[-1] == line["t"].iloc[-1] and mine["shape"].iloc[-1] == "square"
        assert (mine["lo"] <= mine["t"]).all() and (mine["t"] <= mine["hi"]).all()
    x = line_layer["encoding"]["x"]
    assert x["scale"]["domain"] == [0.0, x_max] and line_layer["encoding"]["y"]["scale"]["domain"] == list(y_range)
    assert spec["datasets"]["now"]["t"].tolist() == [300.0]  # the 'now' line
    # The tooltip: m:ss, every curve, each method's band width.
    tips = [t["title"] for t in spec["layer"][-1]["encoding"]["tooltip"]]
    assert tips[0] == "time" and "observed (°F)" in tips
    assert all(f"{m} 80% band width (°F)" in tips for m in fr.forecasts)


def _result(spec: str, cuts=(120, 300), checkpoint=None) -> dict:
    rows = [{"method": m, "cut_s": c, "n_profiles": 5, "mae_f": mae + c / 100, "finish_mae_f": 1.0,
             "drop_time_mae_s": 10.0, "fcs_time_mae_s": None, "coverage_pct": 80.0, "band_width_f": 5.0,
             "physics_valid_pct": 100.0} for m, mae in (("linear_projection", 30.0), ("prefix_knn", 3.0))
            for c in cuts]
    return {"results": rows, "data": spec, "n_folds": 5, "split": "all", "checkpoint": checkpoint}


def test_stored_tables_are_found_ranked_and_read_at_the_nearest_cut(tmp_path):
    folder = view.eval_dir(tmp_path)
    folder.mkdir()
    (folder / "old.json").write_text(json.dumps(_result("synthetic:30")))
    (folder / "other_data.json").write_text(json.dumps(_result("synthetic:99")))
    (folder / "broken.json").write_text("{not json")
    (folder / "x.job.json").write_text(json.dumps({"pid": 1}))
    run = tmp_path / "run_a"
    run.mkdir()
    (folder / "mine.json").write_text(json.dumps(_result("synthetic:30", checkpoint=str(run))))
    os.utime(folder / "mine.json", (1, 1))  # older, but of the selected run: first anyway
    found = view.stored_tables(tmp_path, "synthetic:30", run)
    assert [p.name for p, _ in found] == ["mine.json", "old.json"]
    assert [p.name for p, _ in view.stored_tables(tmp_path, "synthetic:30")] == ["old.json", "mine.json"]
    cut, rows = view.methods_table(found[0][1], 260)
    assert cut == 300 and [r["method"] for r in rows] == ["prefix_knn", "linear_projection"]  # best first
    assert rows[0]["cut"] == "5:00" and rows[0]["FCs time MAE s"] is None and set(rows[0]) == set(view.TABLE_HELP)
    caption = view.table_caption("mine.json", found[0][1], cut, 260)
    assert "nearest scored cut to 4:20" in caption and "run `run_a`" in caption
    assert view.nearest_cut([120, 360], 240) == 120 and view.nearest_cut([], 10) is None
    assert view.table_stem("ds:my logs/1", "run x") == "ds_my_logs_1__run_x"
    assert view.table_stem("synthetic:30", None) == "synthetic_30__no-run"


def test_task_runs_beside_the_caller_and_keeps_its_error():
    gate = __import__("threading").Event()
    task = view.Task(lambda: gate.wait(10) and 42, "waiting")
    assert not task.wait(0.05) and not task.done
    gate.set()
    assert task.wait(10) and task.result == 42 and task.error is None
    failed = view.Task(lambda: 1 / 0, "failing")
    assert failed.wait(10) and isinstance(failed.error, ZeroDivisionError) and failed.result is None


def test_a_sample_table_scores_a_few_roasts(profiles):
    assert [p.id for p in view.sample_profiles(profiles, 5)] == [p.id for p in view.sample_profiles(profiles, 5)]
    assert len(view.sample_profiles(profiles, 50)) == len(profiles)
    out = view.run_sample(["linear_projection"], profiles, n=8)
    assert out["sample"] == 8 and out["checkpoint"] is None
    cut, rows = view.methods_table(out, 250)
    assert cut == 240 and rows[0]["roasts"] == 8
    with pytest.raises(ValueError, match="2 products"):
        view.run_sample(["linear_projection"], [profiles[0]])


@pytest.mark.slow  # starts a real forecast-eval process
def test_the_full_table_runs_in_the_background_and_is_then_stored(tmp_path):
    stem = view.table_stem("synthetic:12", None)
    assert view.eval_job_status(tmp_path, stem) is None
    status = view.start_eval_job(tmp_path, stem, "synthetic:12", ["linear_projection"])
    assert status["state"] in ("running", "done")
    deadline = time.monotonic() + 300
    while view.eval_job_status(tmp_path, stem)["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert view.eval_job_status(tmp_path, stem)["state"] == "done"
    (path, result), = view.stored_tables(tmp_path, "synthetic:12")
    assert path.name == f"{stem}.json" and {r["cut_s"] for r in result["results"]} == set(view.EVAL_CUTS_S)
    # A table that cannot be computed says why, from its log.
    bad = view.start_eval_job(tmp_path, "bad", str(tmp_path / "missing"), ["linear_projection"])
    while bad["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
        bad = view.eval_job_status(tmp_path, "bad")
    assert bad["state"] == "failed" and "missing" in bad["reason"]


def test_a_forecast_run_replays_with_the_prefix_knn_and_leaves_the_roast_s_product_out(tmp_path, profiles):
    import shutil

    from roastcore.checkpoints import load_run, read_json, write_json
    from roastcore.forecast_eval import make_forecaster

    run = tmp_path / "forecast_run"
    shutil.copytree(REPO / "checkpoints" / "demo_recommended", run)
    plain = make_forecaster("model", load_run(run).model)
    manifest = read_json(run / "manifest.json")
    write_json(run / "manifest.json", {**manifest, "forecast": {"prior": "prefix_knn", "status": "succeeded"}})
    tuned = make_forecaster("model", load_run(run).model)
    assert (plain.prior, tuned.prior) == ("run", "prefix_knn")
    roast = profiles[0]
    # The run's own aligned kNN decides for itself; a prefix kNN fitted on the page's roasts must
    # be told to leave the replayed roast's product out.
    assert view.exclusion(plain, roast) == plain.exclusion(roast)
    assert view.exclusion(tuned, roast) == roast.group and tuned.exclusion(roast) is None
