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
    _pt_import,
    _runs,
    _setup_form,
    _state,
)
from roastcore.profile import Profile, ProfileMeta  # noqa: E402
from roastcore.score_charts import loss_figure, tf_comparison_figure  # noqa: E402

HELPERS = ("_coffee_form", "_data_tables", "_eval_tables", "_format", "_job_tables", "_pt_import", "_roast_view",
           "_runs", "_setup_form", "_state", "_sweep_form")
PAGE_MAX_LINES = 110  # pages read widgets, call one function and render; longer widget groups go to _*_panel.py


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


@pytest.mark.parametrize("page", sorted(p.name for p in (REPO / "pages").glob("*_page.py")))
def test_pages_stay_thin(page):
    n = len((REPO / "pages" / page).read_text().splitlines())
    assert n <= PAGE_MAX_LINES, f"pages/{page} has {n} lines: move widget groups to a pages/_*_panel.py"


def test_panels_are_streamlit_glue_with_a_subject_line():
    for path in (REPO / "pages").glob("_*_panel.py"):
        text = path.read_text()
        assert text.startswith('"""') and len(text.splitlines()[0]) <= 100, path.name
        assert "import streamlit as st" in text, path.name


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
    # The caption carries the full name: the picker's label may be cut off in the narrow sidebar.
    assert _runs.run_caption(runs[0]).startswith(f"**{runs[0].name}** · status **")


def test_run_label_shows_unfinished_status_and_the_tf_mae_with_its_source():
    run = _runs.RunChoice(name="r", path=Path("r"), status="running",
                          metrics={"tf_mae_f": 3.14159, "tf_mae_from": "last epoch", "best_val_loss": 0.5})
    assert _runs.run_label(run) == "r · [running] · TF MAE 3.14 °F (last epoch)"
    run.metrics = {"tf_mae_f": 0.2263, "tf_mae_from": "evaluation"}
    run.status = "succeeded"
    assert _runs.run_label(run) == "r · TF MAE 0.23 °F (scored)"  # the page's figure, as the page rounds it
    assert "val TF MAE 0.23 °F (scored)" in _runs.run_caption(run)
    run.metrics = {"best_val_loss": 0.5}
    assert _runs.run_label(run) == "r · val loss 0.5"
    gone = _runs.RunChoice(name="c", path=Path("c"), status="cancelled", usable=False,
                           unusable_reason="cancelled before its first epoch finished", metrics={"tf_mae_f": 9.0})
    assert _runs.run_label(gone) == "c · not usable"
    assert "**not usable**: cancelled before its first epoch finished" in _runs.run_caption(gone)


def test_discover_runs_lists_runs_that_are_not_usable(tmp_path):
    import json
    import shutil

    demo = REPO / "checkpoints" / "demo_collapsed"
    if not demo.is_dir():
        pytest.skip("the shipped demo checkpoints are absent")
    shutil.copytree(demo, tmp_path / "early")
    manifest = json.loads((tmp_path / "early" / "manifest.json").read_text())
    manifest.update(status="cancelled", usable=False, unusable_reason="cancelled before its first epoch finished")
    (tmp_path / "early" / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "training").mkdir()  # a run still training, nothing saved yet: left to the jobs page
    (tmp_path / "training" / "manifest.json").write_text(json.dumps({"status": "running"}))
    (tmp_path / "training" / "config.json").write_text("{}")
    runs = {r.name: r for r in _runs.discover_runs(tmp_path, demo_dir=tmp_path / "no_demos")}
    assert set(runs) == {"early"} and not runs["early"].usable
    assert runs["early"].label == "early · not usable"


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
        {"run": "tiny", "teacher_forcing": {"mae_f": 3.0, "persistence_mae_f": 4.0}, "free_run": {"mae_f": 120.0},
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
    entries[1]["teacher_forcing"]["mae_f"] = 60.0
    entries[1]["teacher_forcing"]["persistence_mae_f"] = 80.0
    kind, text = _eval_tables.tf_conclusion(_eval_tables.tf_table(entries))
    assert kind == "struggles" and "even with teacher forcing" in text
    spec = tf_comparison_figure(_eval_tables.tf_table(entries))
    bars = next(la for la in spec["layer"] if la["mark"]["type"] == "bar")
    assert bars["encoding"]["y"]["sort"][0] == "tiny"  # best drawn on top
    persistence = spec["datasets"]["persistence"]["persistence"]
    assert len(persistence) and persistence.str.startswith("persistence").all()


def test_only_a_run_that_beats_its_persistence_is_best():
    # The walk: a lone run at 298.7 °F got "★ best" and a green row.
    lone = [{"run": "bad", "teacher_forcing": {"mae_f": 298.7, "persistence_mae_f": 0.83, "step_s": 1.0}}]
    table = _eval_tables.tf_table(lone)
    assert list(table["best"]) == [""]
    kind, text = _eval_tables.tf_conclusion(table)
    assert kind == "no_skill" and "persistence" in text
    bars = tf_comparison_figure(table)["datasets"]["bars"]
    assert "★" not in "".join(bars["text"]) and not bars["best"].any()
    # The lowest MAE does not beat its own (1 s) persistence; a 5 s run beats its own: it is the best.
    mixed = [{"run": "one_s", "teacher_forcing": {"mae_f": 0.9, "persistence_mae_f": 0.83, "step_s": 1.0}},
             {"run": "five_s", "teacher_forcing": {"mae_f": 2.5, "persistence_mae_f": 4.1, "step_s": 5.0}}]
    table = _eval_tables.tf_table(mixed)
    assert dict(zip(table["run"], table["best"], strict=True)) == {"one_s": "", "five_s": "★"}
    assert "five_s" in _eval_tables.tf_conclusion(table)[1]
    assert _eval_tables.persistence_by_step(table) == "0.83 °F at 1 s, 4.10 °F at 5 s"


def test_upload_limit_is_said_in_words():
    assert _data_tables.upload_limit_text(25, 25 * 2**20) == "at most 25 MB in all"
    assert _data_tables.upload_limit_text(10, 25 * 2**20) == "at most 10 MB per file and 25 MB in all"
    assert _data_tables.upload_limit_text(None, 25 * 2**20) == "at most 25 MB in all"


def test_link_notice_names_what_a_link_asked_for_and_was_ignored():
    params = {"run": "../../etc", "data": "ds:gone", "cmp": "demo_a,nope`x"}
    sel = _state.decode_selection(params, known_runs=["demo_a"], known_data=["synthetic"])
    notice = _state.link_notice(params, sel)
    assert "`../../etc`" in notice and "`ds:gone`" in notice and "`nopex`" in notice
    assert "demo_a" not in notice and notice.endswith("Showing the defaults instead.")
    good = {"run": "demo_a"}
    assert _state.link_notice(good, _state.decode_selection(good, known_runs=["demo_a"])) is None
    assert len(_state._shown("x" * 500)) < 70


def test_readable_run_names_are_unique_in_the_runs_dir(tmp_path):
    (tmp_path / "combined-fix-1").mkdir()
    taken = _setup_form.taken_run_names(tmp_path)
    assert _setup_form.readable_run_name("combined_fix", taken) == "combined-fix-2"
    assert _setup_form.readable_run_name("micro_model", taken) == "micro-model-1"
    assert _setup_form.check_run_name("combined-fix-2", taken) is None
    assert "taken" in _setup_form.check_run_name("combined-fix-1", taken)
    assert _setup_form.check_run_name("../etc", taken) is not None
    assert _setup_form.check_run_name("", taken) is not None
    assert "No CUDA GPU" in _setup_form.device_help(cuda_available=False)


def test_discover_studies_adds_the_shipped_demo_study(tmp_path):
    shipped = tmp_path / "shipped"
    (shipped / "studies" / "demo").mkdir(parents=True)
    (shipped / "studies" / "demo" / "results.json").write_text("{}")
    runs = tmp_path / "runs"
    assert [p.name for p in _runs.discover_studies(runs, demo_dir=shipped)] == ["demo"]
    (runs / "studies" / "mine").mkdir(parents=True)
    (runs / "studies" / "mine" / "results.json").write_text("{}")
    assert [p.name for p in _runs.discover_studies(runs, demo_dir=shipped)] == ["mine", "demo"]
    (runs / "studies" / "demo").mkdir()
    (runs / "studies" / "demo" / "results.json").write_text("{}")  # the runs dir's own wins
    found = _runs.discover_studies(runs, demo_dir=shipped)
    assert [p.parent.parent for p in found] == [runs, runs]


def test_jobs_table_and_history(tmp_path):
    class J:
        def __init__(self, id, state, created, run_dir=""):
            self.id, self.state, self.created_at, self.preset = id, state, created, "micro_model"
            self.epochs, self.started_at, self.ended_at = 10, 100.0, None
            self.device_used, self.device_assigned, self.device_requested = None, "cpu", "auto"
            self.best_val_loss, self.best_epoch, self.run_name, self.run_dir = None, None, f"run_{id}", run_dir
            self.overrides = {}

    class P:
        epoch, epochs, elapsed_s, eta_s = 3, 10, 65.0, 130.0
        train_loss, val_loss, best_val_loss, best_epoch, stalled = 0.5, 0.7, 0.6, 2, False

    table = _job_tables.jobs_table([J("a", "running", 1.0), J("b", "queued", 2.0)], {"a": P()}, now=200.0,
                                   last_metrics={"a": {"val_tf_mae_f": 0.42}})
    assert list(table["job"]) == ["b", "a"]
    row = table.set_index("job").loc["a"]
    assert row["epoch"] == "3/10" and row["elapsed"] == "1:05" and row["ETA"] == "2:10" and row["device"] == "cpu"
    # Figures say what they are: the best is named after the preset's selection metric.
    assert row["best"] == "0.6 val loss (epoch 2)" and row["val TF MAE °F"] == 0.42
    assert set(_job_tables.JOB_COLUMN_HELP) <= set(table.columns)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text('{"train": {"select_on": "val_free_mae"}}')
    row = _job_tables.jobs_table([J("c", "succeeded", 3.0, str(run_dir))], {"c": P()}).iloc[0]
    assert row["best"] == "0.60 °F val free-run MAE (epoch 2)"
    assert _job_tables.selection_metric(J("d", "queued", 1.0)) == "val_loss"  # micro_model's
    hist = _job_tables.history_frame({"r": [{"epoch": 1, "train_loss": 1.0, "val_loss": 2.0, "tf_ratio": 1.0},
                                            {"epoch": 2, "train_loss": 0.5, "val_loss": 1.0, "tf_ratio": 0.8},
                                            {"status": "succeeded"}]})
    assert len(hist) == 2
    spec = loss_figure(hist)
    series = set(spec["datasets"]["losses"]["series"]) | set(spec["datasets"]["tf_ratio"]["series"])
    assert series == {"r train objective", "r val loss", "r teacher forcing"}
    assert isinstance(_job_tables.jobs_table([], {}), pd.DataFrame)
    line = _job_tables.job_line(J("a", "running", 1.0), P())
    assert line == ("micro_model · a · running · epoch 3/10 · train objective 0.5 · val loss 0.7 · elapsed 1:05 "
                    "· ETA 2:10")
    assert _job_tables.job_fraction(P()) == pytest.approx(0.3) and _job_tables.job_fraction(None) == 0.0


def test_progress_inside_an_epoch_batches_and_eta():
    """The walk: the first epoch showed "No epochs recorded yet" for ~70 s. progress.json's
    batches now move the bar, and the ETA comes from the time per batch so far."""
    class J:
        id, state, preset, epochs, created_at, run_name = "a", "running", "micro_model", 4, 1.0, "r"
        started_at, ended_at, device_used, device_assigned, device_requested = 100.0, None, None, "cpu", "auto"
        best_val_loss = best_epoch = None
        run_dir, overrides = "", {}

    class P:
        epoch, epochs, batch, n_batches, elapsed_s, eta_s = 1, 4, 2, 8, 10.0, None
        train_loss = val_loss = best_val_loss = best_epoch = None
        stalled = False

    assert _job_tables.epochs_done(P()) == pytest.approx(0.25)
    assert _job_tables.job_fraction(P()) == pytest.approx(0.25 / 4)
    assert _job_tables.job_eta(P()) == pytest.approx(10.0 / 0.25 * 3.75)
    line = _job_tables.job_line(J(), P())
    assert "epoch 1/4 · batch 2/8" in line and "ETA 2:30" in line
    row = _job_tables.jobs_table([J()], {"a": P()}).iloc[0]
    assert row["epoch"] == "1/4 · batch 2/8" and row["ETA"] == "2:30"
    P.batch = 8  # the epoch's last batch: a whole epoch, the trainer's own estimate
    P.eta_s = 33.0
    assert _job_tables.epoch_text(P()) == "1/4" and _job_tables.job_eta(P()) == 33.0
    P.epoch = None
    assert "starting" in _job_tables.job_line(J(), P())


def test_task_jobs_show_their_stage():
    from roastcore.jobs import TaskProgress

    class J:
        id, state, preset, run_name, created_at, started_at, ended_at = "t", "running", "score", "score-r", 1.0, 1.0, None
        device_used, device_assigned, device_requested, epochs = None, "cpu", "cpu", None

    task = TaskProgress(done=2, total=5, stage="teacher forcing")
    assert task.fraction == pytest.approx(0.4)
    assert _job_tables.job_line(J(), task=task) == "score score-r · t · running · 2/5 teacher forcing"
    row = _job_tables.jobs_table([J()], {}, tasks={"t": task}, now=11.0).iloc[0]
    assert row["preset"] == "score (task)" and row["epoch"] == "2/5 teacher forcing" and row["elapsed"] == "0:10"


def test_pt_files_found_named_and_checked(tmp_path):
    import json

    torch = pytest.importorskip("torch")
    runs = tmp_path / "runs"
    (runs / "exp1").mkdir(parents=True)
    (runs / "datasets" / "x").mkdir(parents=True)
    (runs / ".upload-1-x").mkdir()
    for where in ("a.pt", "exp1/best_transformer_model.pt", "datasets/x/skip.pt", ".upload-1-x/skip.pt"):
        (runs / where).write_bytes(b"")
    found = _pt_import.find_pt_files(runs)
    assert [p.relative_to(runs).as_posix() for p in found] == ["a.pt", "exp1/best_transformer_model.pt"]
    # Imported ones (a run's manifest names its source) are no longer pending.
    (runs / "imported").mkdir()
    (runs / "imported" / "manifest.json").write_text(json.dumps({"legacy": {"source": str(runs / "a.pt")}}))
    assert _pt_import.pending_pt_files(runs, [runs / "imported"]) == [runs / "exp1" / "best_transformer_model.pt"]
    assert _pt_import.run_name_for(runs / "exp1" / "best_transformer_model.pt") == "exp1"
    assert _pt_import.run_name_for(Path("x/my exp.pt"), {"experiment_name": "tiny model!"}) == "tiny_model"
    assert _pt_import.unique_run_name(runs, "exp1") == "exp1-2"
    # What each needs: an unreadable file says why; a good one names the vocabulary it needs.
    status = _pt_import.checkpoint_status(runs / "a.pt", {})
    assert not status.importable and status.problem
    dims = {"num_origins": 3, "num_processes": 2, "num_roast_levels": 2, "num_varieties": 2, "num_flavors": 4}
    torch.save({"model_state_dict": {"w": torch.zeros(1)}, "config": {}, "feature_dims": dims}, runs / "good.pt")
    status = _pt_import.checkpoint_status(runs / "good.pt", {"ds:other": {"raw": {**dims, "num_flavors": 5}}})
    assert "origins 3, processes 2, roast levels 2, varieties 2, flavours 4" in status.problem
    status = _pt_import.checkpoint_status(runs / "good.pt", {"ds:pkg": {"normalized": dims}})
    assert status.importable and status.matches == ["ds:pkg"] and status.name == "good"
    with pytest.raises(ValueError, match="not a .pt"):
        _pt_import.stage_checkpoints(runs, [("evil.sh", b"x")])
    staging, staged = _pt_import.stage_checkpoints(runs, [("../m.pt", b"1"), ("m.pt", b"2")])
    assert [(p.parent.name, n) for p, n in staged] == [("m", "m.pt"), ("m-2", "m.pt")]
    assert staging.parent == runs and staging.name.startswith(".upload-")


def test_plot_default_keeps_a_finished_job_and_signature_tracks_states():
    class J:
        def __init__(self, id, state, created, started):
            self.id, self.state, self.created_at, self.started_at = id, state, created, started

    jobs = [J("done", "succeeded", 1.0, 1.0), J("live", "running", 2.0, 2.0), J("wait", "queued", 3.0, None)]
    assert _job_tables.plot_default(jobs) == ["live", "done"]
    assert _job_tables.plot_default([J("wait", "queued", 3.0, None)]) == ["wait"]
    picked, seen = _job_tables.plot_selection(jobs, None, None)
    assert picked == ["live", "done"]
    # Later: the user's choice is kept, and a job that started since joins it.
    jobs[2].state, jobs[2].started_at = "running", 3.0
    assert _job_tables.plot_selection(jobs, ["done"], seen)[0] == ["done", "wait"]
    before = _job_tables.job_signature(jobs)
    jobs[1].state = "succeeded"
    assert _job_tables.job_signature(jobs) != before


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


def test_the_dashboards_run_list_sees_every_change_of_a_run(tmp_path):
    """pages._ui reads each run once per change of its folder or files (not every run on every
    script run): a run scored, added, removed or rewritten in place is listed as it now is."""
    import json
    import shutil

    pytest.importorskip("streamlit")
    from pages import _ui

    demos = REPO / "checkpoints"
    shutil.copytree(demos / "demo_collapsed", tmp_path / "a")
    shutil.copytree(demos / "demo_teacher_forced", tmp_path / "b")

    def listed() -> dict:
        return {r.name: r for r in _ui.discover_runs(tmp_path) if not r.demo}

    assert set(listed()) == {"a", "b"} and "(scored)" in listed()["a"].label
    assert listed()["a"] is not listed()["a"]  # fresh RunChoice objects each time: callers cannot share state
    (tmp_path / "a" / "scores.json").unlink()
    assert "(scored)" not in listed()["a"].label
    shutil.copytree(demos / "demo_recommended", tmp_path / "c")
    shutil.rmtree(tmp_path / "b")
    assert set(listed()) == {"a", "c"}
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    manifest.update(usable=False, unusable_reason="marked by hand")
    (tmp_path / "c" / "manifest.json").write_text(json.dumps(manifest))  # in place, not renamed
    assert listed()["c"].label == "c · not usable"
