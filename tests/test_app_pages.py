"""AppTests for every dashboard page: app.py (sidebar + navigation) runs, then switch_page.

Each test runs the real app in-process against a temporary runs directory holding copies of the
shipped demo checkpoints, on the small built-in dataset (ROASTCORE_DEFAULT_DATA=synthetic:30).
No roastcore code is mocked.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

# Each AppTest runs the whole app script in-process (seconds each): the full lane, not the quick one.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
if str(REPO) not in sys.path:  # pages/ helpers are imported from the clone, as app.py does
    sys.path.insert(0, str(REPO))
DEMOS = sorted(p for p in (REPO / "checkpoints").glob("demo_*") if (p / "model.safetensors").is_file())
TIMEOUT = 120


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    assert len(DEMOS) >= 2, "the shipped demo checkpoints (checkpoints/demo_*) are missing"
    runs = tmp_path_factory.mktemp("app_runs")
    for demo in DEMOS:
        shutil.copytree(demo, runs / demo.name, ignore=shutil.ignore_patterns("eval_cache"))
    saved = {k: os.environ.get(k) for k in ("ROASTCORE_RUNS", "ROASTCORE_DEFAULT_DATA")}
    os.environ["ROASTCORE_RUNS"] = str(runs)
    os.environ["ROASTCORE_DEFAULT_DATA"] = "synthetic:30"
    yield runs
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def open_page(page: str | None, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if query:
        at.query_params.update(query)
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert not errors, errors
    return at


class Chart:
    """A roastcore.plotting chart as the page sent it: its Vega-Lite spec and its datasets
    (Arrow bytes, decoded to DataFrames)."""

    def __init__(self, element) -> None:
        from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

        self.spec = json.loads(element.proto.spec)
        self.data = {d.name: convert_arrow_bytes_to_pandas_df(d.data.data) for d in element.proto.datasets}

    def lines(self):
        """Every curve's points (t or epoch, y, series): the datasets of line marks."""
        import pandas as pd

        names = {la["data"]["name"] for la in self.spec.get("layer", []) if la.get("mark", {}).get("type") == "line"}
        return pd.concat([self.data[n] for n in sorted(names)], ignore_index=True)

    def curve(self, name: str):
        lines = self.lines()
        return lines[lines["series"] == name]

    def layer(self, mark: str) -> dict:
        return next(la for la in self.spec["layer"] if la["mark"]["type"] == mark)


def charts(at: AppTest) -> list[Chart]:
    """The roastcore.plotting charts on the page (SVG-rendered Vega-Lite: the Sweeps page's
    Altair charts are not among them)."""
    return [Chart(c) for c in at.get("vega_lite_chart")
            if json.loads(c.proto.spec).get("usermeta", {}).get("embedOptions", {}).get("renderer") == "svg"]


def trace_names(chart: Chart) -> list[str]:
    """The chart's curves by legend name, in order."""
    return list(dict.fromkeys(chart.lines()["series"]))


def sidebar_box(at: AppTest, label: str):
    return next(w for w in at.sidebar.selectbox if w.label == label)


def demo_names() -> list[str]:
    return [d.name for d in DEMOS]


def test_sidebar_lists_demos_and_round_trips_query_params(runs_dir):
    at = open_page(None)
    run_box = sidebar_box(at, "Checkpoint")
    assert all(any(o.startswith(n) for o in run_box.options) for n in demo_names())
    first = run_box.options[0].split(" · ")[0]
    assert run_box.value == first  # the first listed run is the default
    # The URL carries the selection...
    second = next(n for n in demo_names() if n != first)
    run_box.set_value(second).run()
    assert at.query_params.get("run") in (second, [second])
    # ...and a fresh session opened on that URL restores it.
    at2 = open_page(None, {"run": second, "cmp": first, "data": "synthetic:30"})
    assert sidebar_box(at2, "Checkpoint").value == second
    assert next(w for w in at2.sidebar.multiselect if w.label == "Compare with").value == [first]
    # A URL naming a run that does not exist falls back to the first listed one, and says so.
    at3 = open_page(None, {"run": "../../etc", "data": "ds:gone"})
    assert sidebar_box(at3, "Checkpoint").value == first
    notice = " ".join(w.value for w in at3.sidebar.warning)
    assert "`../../etc`" in notice and "`ds:gone`" in notice
    # Until the user picks something else.
    sidebar_box(at3, "Checkpoint").set_value(second).run()
    assert not [w for w in at3.sidebar.warning if "Ignored from the link" in w.value]
    assert not [w for w in at2.sidebar.warning if "Ignored from the link" in w.value]  # a good link


def test_sidebar_gives_full_names_on_hover_and_in_the_caption(runs_dir):
    at = open_page(None)
    run_box = sidebar_box(at, "Checkpoint")
    assert run_box.value in run_box.help and run_box.value in " ".join(c.value for c in at.sidebar.caption)
    assert "Selected:" in sidebar_box(at, "Dataset").help


def test_data_page_browses_the_dataset(runs_dir):
    at = open_page("pages/data_page.py")
    assert at.header[0].value == "Data"
    pick = next(w for w in at.multiselect if w.label == "Roasts to draw")
    assert len(pick.value) == 3
    assert len(_roast_curves(charts(at)[0])) >= 3
    assert any(df.value.shape[0] >= 5 for df in at.dataframe)  # summary statistics
    # Fewer roasts picked -> fewer curves drawn.
    pick.set_value(pick.value[:1]).run()
    assert len(_roast_curves(charts(at)[0])) == 1
    assert any(w.label == "Roasts" for w in at.number_input) and any(w.label == "Seed" for w in at.number_input)


def _roast_curves(chart) -> list[str]:
    assert "BT (°F)" in json.dumps(chart.spec, ensure_ascii=False)  # the BT panel (its RoR panel is the next chart)
    return trace_names(chart)


def test_data_page_switching_datasets_draws_the_new_datasets_roasts(runs_dir):
    """The walk: artisan_ten -> hypersprite -> built-in kept the previous dataset's picks (its
    labels, and 1 roast drawn instead of 3); the browser then failed with 'bad argument type'."""
    from roastcore.io import load_source, registry
    from roastcore.simulate import generate_dataset

    ten = registry.save_dataset(runs_dir, "switch_ten", generate_dataset(n=10, seed=11), "generated")
    four = registry.save_dataset(runs_dir, "switch_four", generate_dataset(n=4, seed=12), "generated")
    at = open_page("pages/data_page.py")
    for key, spec in ((ten.key, ten.spec), (four.key, four.spec), ("synthetic:30", "synthetic:30"),
                      (ten.key, ten.spec)):
        sidebar_box(at, "Dataset").set_value(key).run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        ids = {p.id for p in load_source(spec).profiles}
        pick = next(w for w in at.multiselect if w.label == "Roasts to draw")
        assert set(pick.options) == {pick.format_func(i) for i in ids}  # this dataset's labels only
        assert len(pick.value) == 3 and set(pick.value) <= ids
        assert sorted(_roast_curves(charts(at)[0])) == sorted(pick.value)


def test_data_page_says_the_upload_limit_up_front(runs_dir):
    at = open_page("pages/data_page.py")
    uploader = at.get("file_uploader")[0]
    assert "25 MB" in uploader.proto.label and "25 MB" in uploader.proto.help


def test_data_page_imports_a_server_folder_and_the_sidebar_selects_it(runs_dir, tmp_path):
    from roastcore.io import write_json
    from roastcore.simulate import generate_dataset

    folder = tmp_path / "logs"
    folder.mkdir()
    for i, p in enumerate(generate_dataset(n=4, seed=3)):
        write_json(p, folder / f"r{i}.json")
    (folder / "broken.alog").write_text("not a roast")
    at = open_page("pages/data_page.py")
    at.radio(key="imp_how").set_value("Folder on the server").run()
    at.text_input(key="imp_name").set_value("server set").run()
    at.text_input(key="imp_path").set_value(str(folder)).run()
    at.button(key="imp_path_go").click().run()
    assert not at.exception
    data_box = sidebar_box(at, "Dataset")
    assert data_box.value.startswith("ds:server_set")
    assert any("broken.alog" in str(df.value.to_dict()) for df in at.dataframe)  # the rejection and why
    assert at.query_params.get("data") in (data_box.value, [data_box.value])


def test_data_page_upload_saves_a_dataset_jobs_can_read(runs_dir, tmp_path):
    import io
    import zipfile

    from roastcore.io import list_datasets, load_source, write_csv, write_json
    from roastcore.simulate import generate_dataset

    profiles = generate_dataset(n=3, seed=5)
    write_json(profiles[0], tmp_path / "a.json")
    write_csv(profiles[1], tmp_path / "b.csv")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(tmp_path / "b.csv", "inner/b.csv")  # a duplicate of the loose b.csv
        write_json(profiles[2], tmp_path / "c.json")
        zf.write(tmp_path / "c.json", "inner/c.json")
    at = open_page("pages/data_page.py")
    at.text_input(key="imp_name").set_value("uploaded").run()
    uploader = at.file_uploader(key="imp_files")
    uploader.set_value([("../../a.json", (tmp_path / "a.json").read_bytes(), "application/json"),
                        ("b.csv", (tmp_path / "b.csv").read_bytes(), "text/csv"),
                        ("logs.zip", buf.getvalue(), "application/zip")]).run()
    at.button(key="imp_upload_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    key = sidebar_box(at, "Dataset").value
    assert key.startswith("ds:uploaded")
    entry = next(e for e in list_datasets(runs_dir) if e.key == key)
    # Saved under RUNS/datasets/<name>/, readable by a job subprocess through load_source.
    assert Path(entry.spec).parent == runs_dir / "datasets"
    assert len(load_source(entry.spec).profiles) == 3
    assert next(m for m in at.metric if m.label == "Imported").value == "3"
    assert next(m for m in at.metric if m.label == "Duplicates skipped").value == "1"


def test_setup_page_live_params_validation_and_diff(runs_dir):
    at = open_page("pages/setup_page.py")
    assert at.selectbox(key="set_preset").value == "micro_model"
    params = next(m for m in at.metric if m.label == "Parameters").value
    assert any("parameters per training roast" in json.dumps(c.spec) for c in charts(at)), "no health-band chart"
    # A bigger model -> more parameters, and the diff lists the change.
    at.select_slider(key="set_d_model").set_value(64).run()
    assert next(m for m in at.metric if m.label == "Parameters").value != params
    assert "d_model" in at.dataframe[0].value["field"].str.cat()
    # Heads that do not divide d_model: the config's own validation error, and no launch.
    at.select_slider(key="set_n_heads").set_value(3).run()
    assert any("n_heads" in e.value for e in at.error)
    assert at.button(key="set_launch").disabled
    # Switching preset loads its values.
    at.selectbox(key="set_preset").set_value("tiny_model").run()
    assert at.select_slider(key="set_d_model").value == 64 and not at.error


def test_setup_page_offers_a_readable_run_name_device_and_seed(runs_dir):
    at = open_page("pages/setup_page.py")
    assert at.text_input(key="set_run_name").value == "micro-model-1"
    assert at.get("button_group")[-1].proto.label == "Device"
    assert at.number_input(key="set_seed").value == 0
    # The default follows the preset; a taken or malformed name is refused before launch.
    at.selectbox(key="set_preset").set_value("combined_fix").run()
    assert at.text_input(key="set_run_name").value == "combined-fix-1"
    (runs_dir / "combined-fix-1").mkdir()
    try:
        at.text_input(key="set_run_name").set_value("combined-fix-1").run()
        assert any("taken" in e.value for e in at.error) and at.button(key="set_launch").disabled
        at.text_input(key="set_run_name").set_value("../../etc").run()
        assert any("Run name" in e.value for e in at.error) and at.button(key="set_launch").disabled
    finally:
        (runs_dir / "combined-fix-1").rmdir()


@pytest.mark.slow  # starts a real job process
def test_setup_page_launches_with_the_chosen_name_device_and_seed(runs_dir):
    from roastcore.jobs import JobRunner

    runner = JobRunner(runs_dir)
    at = open_page("pages/setup_page.py")
    try:
        at.text_input(key="set_run_name").set_value("my-first-run").run()
        at.get("button_group")[-1].set_value("cpu").run()
        at.number_input(key="set_seed").set_value(7).run()
        at.number_input(key="set_epochs").set_value(300).run()
        at.button(key="set_launch").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        job = next(j for j in runner.list() if j.run_name == "my-first-run")
        assert (job.device_requested, job.seed, job.epochs) == ("cpu", 7, 300)
        assert any("my-first-run" in m.value for m in at.success)
        assert at.text_input(key="set_run_name").value == "micro-model-1"  # the next free name
    finally:
        clear_jobs(runner)


def clear_jobs(runner) -> None:
    """Cancel and delete every job (and its run): later tests expect an empty job store."""
    for job in runner.list():
        if job.is_active:
            runner.cancel(job.id, grace_s=2.0)
        runner.delete(job.id)


def test_jobs_page_empty_state_and_recovery_action(runs_dir):
    at = open_page("pages/jobs_page.py")
    assert at.header[0].value == "Training jobs"
    assert any("No training jobs yet" in i.value for i in at.info)
    assert at.button(key="jobs_suite").label == "Launch the recovery suite"


@pytest.mark.slow  # starts real job processes
def test_jobs_page_recovery_suite_queues_five_presets_and_cancel(runs_dir):
    from pages._job_tables import RECOVERY_SUITE
    from roastcore.jobs import JobRunner

    runner = JobRunner(runs_dir)
    at = open_page("pages/jobs_page.py")
    try:
        at.button(key="jobs_suite").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        jobs = [j for j in runner.list() if j.is_active]
        assert sorted(j.preset for j in jobs) == sorted(RECOVERY_SUITE)
        table = at.dataframe[0].value
        assert set(RECOVERY_SUITE) <= set(table["preset"])
        # A second click does not queue duplicates (JobRunner.submit is idempotent).
        at.button(key="jobs_suite").click().run()
        assert len([j for j in runner.list() if j.is_active]) == 5
        # Cancel the newest (queued) job from the page.
        newest = at.selectbox(key="jobs_pick").value
        at.button(key="jobs_cancel").click().run()
        assert runner.get(newest).state == "cancelled"
        assert any(f"{newest} · cancelled" in m.value for m in at.markdown)
    finally:
        for job in runner.list():
            if job.is_active:
                runner.cancel(job.id, grace_s=2.0)


@pytest.mark.slow  # trains a one-epoch job and starts a second one
def test_jobs_page_labels_figures_keeps_finished_curves_and_offers_the_run(runs_dir):
    import time

    from roastcore.jobs import JobRunner

    runner = JobRunner(runs_dir)
    try:
        quick = runner.submit("micro_model", {"step_s": 5.0}, "synthetic:30", epochs=2, name="quick-run")
        deadline = time.monotonic() + 300
        while runner.get(quick.id).is_active and time.monotonic() < deadline:
            time.sleep(1.0)
        assert runner.get(quick.id).state == "succeeded", runner.logs(quick.id)
        runner.submit("micro_model", {"step_s": 5.0}, "synthetic:30", epochs=500, name="long-run")
        at = open_page("pages/jobs_page.py")
        table = next(df.value for df in at.dataframe if "best" in df.value.columns)
        row = table.set_index("run").loc["quick-run"]
        # Figures say what they are: the objective, the TF loss, a °F figure, the best's metric.
        assert {"train objective", "val loss", "val TF MAE °F"} <= set(table.columns)
        assert row["best"].endswith("val loss (epoch 2)") or row["best"].endswith("val loss (epoch 1)")
        assert row["val TF MAE °F"] > 0
        # The finished job's curve is drawn by default, next to the running one's (once it has one).
        chart = charts(at)[-1]
        assert any(n.startswith("quick-run") for n in trace_names(chart))
        enc = chart.layer("line")["encoding"]
        assert enc["y"]["axis"]["format"] == "~g" and enc["x"]["axis"]["format"] == "d"
        # The Job selector names the run and its state; the finished run can be selected.
        at.selectbox(key="jobs_pick").set_value(quick.id).run()
        assert at.selectbox(key="jobs_pick").options[
            at.selectbox(key="jobs_pick").index] == f"quick-run · {quick.id} · succeeded"
        at.button(key="jobs_select").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert sidebar_box(at, "Checkpoint").value == "quick-run"
    finally:
        clear_jobs(runner)


def test_teacher_forcing_page_ranks_the_selected_checkpoints(runs_dir):
    names = demo_names()
    at = open_page("pages/teacher_forcing_page.py", {"run": names[0]})
    assert len(at.dataframe[0].value) == 1
    chart = charts(at)[0]
    assert list(chart.data["bars"]["run"]) == [names[0]]
    # Adding a comparison checkpoint in the sidebar adds it to the chart and the table.
    next(w for w in at.sidebar.multiselect if w.label == "Compare with").set_value(names[1:3]).run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert set(table["run"]) == set(names[:3])
    assert table["TF MAE °F"].is_monotonic_increasing
    # Only a run that beats its own persistence is starred.
    starred = table[table["best"] == "★"]
    assert len(starred) <= 1 and (starred["TF MAE °F"] < starred["persistence MAE °F"]).all()
    assert (table["step s"] > 0).all()
    chart = charts(at)[0]
    assert chart.layer("bar")["encoding"]["x"]["scale"]["type"] == "log"
    steps = {f"persistence at {s:g} s steps" for s in table["step s"]}
    assert steps == set(chart.data["persistence"]["persistence"])  # persistence per step size
    assert set(chart.data["bars"]["run"]) == set(names[:3])
    helps = json.loads(at.dataframe[0].proto.columns)
    assert helps["MAE / persistence"]["help"]  # full text on hover
    alerts = [a.value for a in list(at.warning) + list(at.success) + list(at.info)]
    conclusion = [a for a in alerts if "teacher forcing MAE" in a.replace("-", " ")]
    assert conclusion, alerts
    # Read from the stored scores (free running included), never computed in the page.
    assert table["free-run MAE °F"].notna().all()
    assert not any((runs_dir / n / "eval_cache").exists() for n in names[:3])


def test_sidebar_and_teacher_forcing_page_show_the_same_tf_mae(runs_dir):
    """The walk: the sidebar said 0.3 / 1.0 where the page said 0.2 / 0.9 for the same runs (the
    last epoch's figure against the page's own evaluation). Both now show the stored score."""
    names = demo_names()
    at = open_page("pages/teacher_forcing_page.py", {"run": names[0], "cmp": ",".join(names[1:])})
    table = at.dataframe[0].value.set_index("run")
    box = sidebar_box(at, "Checkpoint")
    for name in names:
        label = next(o for o in box.options if o.split(" · ")[0] == name)
        assert f"TF MAE {table.loc[name, 'TF MAE °F']:.2f} °F (scored)" in label, (label, table.loc[name])
    caption = " ".join(c.value for c in at.sidebar.caption)
    assert f"val TF MAE {table.loc[names[0], 'TF MAE °F']:.2f} °F (scored)" in caption


def test_diagnostic_page_traces_steps_and_follows_the_sidebar(runs_dir):
    names = demo_names()
    at = open_page("pages/diagnostic_page.py", {"run": names[0]})
    chart = charts(at)[0]
    assert {"real", f"{names[0]} raw", f"{names[0]} clamped"} <= set(trace_names(chart))
    steps = at.slider(key="diag_steps")
    assert steps.min == 10
    steps.set_value(20).run()
    assert len(charts(at)[0].curve(f"{names[0]} raw")) == 20
    # The verdict is wrapped text, not a metric that cuts "constant output (collapsed)" short.
    assert any(m.value.startswith("Variance verdict") for m in at.markdown)
    # The sidebar's checkpoint is the page's: no second "Checkpoint" selector.
    assert not [w for w in at.main.selectbox if w.label == "Checkpoint"]
    # The diagnosis is the run's stored one, shown at once with evidence and a launch button.
    assert not any(b.key == "diag_eval" for b in at.button)
    verdicts = [x.value for x in list(at.success) + list(at.info) + list(at.warning) if "Verdict:" in x.value]
    assert verdicts, "no verdict shown"
    assert any(b.key == "diag_launch" for b in at.button) or any("none needed" in c.value for c in at.caption)
    sidebar_box(at, "Checkpoint").set_value(names[1]).run()
    assert f"{names[1]} raw" in trace_names(charts(at)[0])


def test_compare_page_overlays_physics_and_exports(runs_dir):
    names = demo_names()
    at = open_page("pages/compare_page.py", {"run": names[0]})
    chart = charts(at)[0]
    assert "real" in trace_names(chart) and names[0] in trace_names(chart)
    assert "RoR (°F/min)" in json.dumps(charts(at)[1].spec, ensure_ascii=False)  # the RoR panel under it
    physics = next(df.value for df in at.dataframe if "all pass" in df.value.columns)
    assert list(physics["curve"]) == ["real", names[0]]
    # Free-running metrics come from the stored scores, at once.
    metrics = next(df.value for df in at.dataframe if "curve from" in df.value.columns)
    assert {"baseline: mean curve", "baseline: kNN"} <= set(metrics["curve from"])
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Artisan .alog" in labels and "CSV" in labels
    page_text = " ".join(str(e.value) for kind in ("caption", "markdown", "info", "warning") for e in at.get(kind))
    assert "kaleido" not in page_text.lower()  # no internal detail leaks (PNG: the chart toolbar)
    assert "PNG" in page_text
    next(w for w in at.sidebar.multiselect if w.label == "Compare with").set_value([names[1]]).run()
    assert not at.exception and not at.error
    assert names[1] in trace_names(charts(at)[0])
    # The grid view draws one panel per roast.
    at.get("button_group")[0].set_value("Grid").run()
    assert not at.exception and not at.error
    grid = charts(at)[0]
    assert len(grid.spec["concat"]) == 4
    assert all("real" in set(grid.data[f"p{k}"]["series"]) for k in range(4))


def test_compare_page_generates_for_a_new_coffee(runs_dir):
    names = demo_names()
    at = open_page("pages/compare_page.py", {"run": names[0]})
    # The form is its own view: the comparison view does not build its widgets.
    assert not [w for w in at.radio if w.key == "new_by"]
    at.get("button_group")[0].set_value("New coffee").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.radio(key="new_by").set_value("Length")
    at.slider(key="new_len").set_value(600)
    at.button(key="FormSubmitter:new_coffee-Generate").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    chart = next(f for f in charts(at) if any("new coffee" in n for n in trace_names(f)))
    curve = next(n for n in trace_names(chart) if "new coffee" in n)
    assert chart.curve(curve)["t"].iloc[-1] == 600  # 10:00
    # Only the new coffee's .alog/.csv pair: the comparison is another view.
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels.count("Artisan .alog") == 1 and labels.count("CSV") == 1


def test_study_page_shows_the_shipped_demo_study_then_the_runs_dirs_own(runs_dir):
    from roastcore.io import load_source
    from roastcore.study import StudyConfig, run_study

    assert (REPO / "checkpoints" / "studies" / "demo" / "results.json").is_file(), "the demo study is missing"
    # A fresh install (no study in the runs directory): the shipped demo study is shown.
    first = open_page("pages/study_page.py")
    assert first.selectbox(key="study_pick").value.name == "demo"
    assert "recommended" in set(first.dataframe[0].value.iloc[:, 0])
    # A real (baselines-only) study written by roastcore.study into the runs directory is listed first.
    profiles = load_source("synthetic:12").profiles
    run_study(profiles, StudyConfig(presets=(), folds=2, extrapolation=False),
              out_dir=runs_dir / "studies" / "tiny", data_source="synthetic:12")
    at = open_page("pages/study_page.py")
    assert at.selectbox(key="study_pick").options == ["tiny", "demo (shipped demo)"]
    assert at.selectbox(key="study_pick").value.name == "tiny"
    table = at.dataframe[0].value
    assert {"aligned_knn", "knn", "mean_curve"} <= set(table.iloc[:, 0])


# ---------------------------------------------------------------------------- issue 14: no waiting
@pytest.fixture
def own_runs(runs_dir, tmp_path, monkeypatch):
    """A fresh runs directory for one test (the app reads ROASTCORE_RUNS on every run); its jobs
    are cancelled and deleted afterwards."""
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("ROASTCORE_RUNS", str(runs))
    yield runs
    if (runs / "jobs.sqlite3").exists():
        from roastcore.jobs import JobRunner

        clear_jobs(JobRunner(runs))


def copy_demo(runs: Path, name: str, demo: str = "demo_teacher_forced", **manifest) -> Path:
    """A copy of a demo run under another name, without its scores, its manifest updated."""
    run = runs / name
    shutil.copytree(REPO / "checkpoints" / demo, run, ignore=shutil.ignore_patterns("eval_cache", "scores.json"))
    data = json.loads((run / "manifest.json").read_text())
    data.update(manifest)
    (run / "manifest.json").write_text(json.dumps(data))
    return run


def wait_for_job(runner, job_id: str, timeout_s: float = 300.0):
    import time

    deadline = time.monotonic() + timeout_s
    while runner.get(job_id).is_active and time.monotonic() < deadline:
        time.sleep(0.5)
    return runner.get(job_id)


def test_a_run_not_usable_is_listed_as_such_and_never_diagnosed(own_runs):
    """The walk: a run cancelled before its first epoch finished was offered and diagnosed."""
    copy_demo(own_runs, "cancelled-early", status="cancelled", usable=False,
              unusable_reason="cancelled before its first epoch finished: the weights are untrained")
    at = open_page("pages/diagnostic_page.py", {"run": "cancelled-early"})
    box = sidebar_box(at, "Checkpoint")
    assert box.value == "cancelled-early" and "cancelled-early · not usable" in box.options
    assert "not usable" in " ".join(c.value for c in at.sidebar.caption)
    assert any("not usable" in w.value and "first epoch" in w.value for w in at.warning)
    assert not charts(at) and not [x for x in at.success if "Verdict" in x.value]
    # Teacher forcing and Compare say so instead of scoring or drawing it.
    at.switch_page("pages/teacher_forcing_page.py").run()
    assert any("Not usable" in c.value for c in at.caption) and not at.dataframe
    at.switch_page("pages/compare_page.py").run()
    assert not at.exception and any("Not usable" in c.value for c in at.caption) and not charts(at)
    # A fresh session defaults to a usable run.
    assert sidebar_box(open_page(None), "Checkpoint").value != "cancelled-early"


@pytest.mark.slow  # the page starts a scoring job process
def test_an_unscored_run_is_scored_by_a_background_job_not_in_the_page(own_runs):
    """Runs that predate stored scores (or were imported) are scored in the background: the page
    shows the job's progress, never a 20 s spinner, and the verdict once the job has stored it."""
    from roastcore.jobs import JobRunner, latest_job, read_task_progress

    run = copy_demo(own_runs, "old-run", data_source="synthetic:30")
    at = open_page("pages/diagnostic_page.py", {"run": "old-run"})
    assert charts(at), "the step trace is drawn at once"
    assert not [x for x in list(at.success) + list(at.warning) if "Verdict" in x.value]
    runner = JobRunner(own_runs)
    job = latest_job(runner.list(), "score", run)
    assert job is not None and job.preset == "score"
    assert "--checkpoint" in job.overrides["argv"] and "--if-needed" in job.overrides["argv"]
    shown = " ".join(str(getattr(e, "value", "")) for e in at.get("progress")) + " ".join(
        e.proto.text for e in at.get("progress"))
    assert "Scoring **old-run** in the background" in shown
    # Another page (and a refresh) does not queue a second job while the first one runs.
    at.switch_page("pages/teacher_forcing_page.py").run()
    assert len([j for j in runner.list() if j.preset == "score"]) == 1
    done = wait_for_job(runner, job.id)
    assert done.state == "succeeded", runner.logs(job.id, tail=40)
    assert read_task_progress(done).done == 5
    at.switch_page("pages/diagnostic_page.py").run()
    assert not at.exception and not at.error
    verdicts = [x.value for x in list(at.success) + list(at.info) + list(at.warning) if "Verdict:" in x.value]
    assert verdicts, "the stored verdict is shown"
    label = sidebar_box(at, "Checkpoint").options[0]
    assert "(scored)" in next(o for o in sidebar_box(at, "Checkpoint").options if o.startswith("old-run")), label
    # The jobs page lists the scoring job with its stages.
    at.switch_page("pages/jobs_page.py").run()
    row = at.dataframe[0].value.set_index("job").loc[job.id]
    assert row["preset"] == "score (task)" and row["epoch"].startswith("5/5")


@pytest.mark.slow  # the page starts a study job process
def test_study_page_launches_a_study_as_a_background_job(own_runs):
    from roastcore.jobs import JobRunner

    at = open_page("pages/study_page.py")
    at.multiselect(key="study_presets").set_value(["micro_model"])
    at.number_input(key="study_folds").set_value(2)
    at.number_input(key="study_epochs").set_value(1)
    at.checkbox(key="study_extra").set_value(False)
    assert at.text_input(key="study_name").value == "study-1"
    at.button(key="FormSubmitter:study_form-Launch the study").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    runner = JobRunner(own_runs)
    job = next(j for j in runner.list() if j.preset == "study")
    assert job.run_name == "study-1" and "--presets" in job.overrides["argv"]
    assert wait_for_job(runner, job.id, 600).state == "succeeded", runner.logs(job.id, tail=60)
    at.run()
    assert at.selectbox(key="study_pick").value.name == "study-1"
    table = at.dataframe[0].value
    assert {"micro_model", "aligned_knn"} <= set(table.iloc[:, 0])


# ---------------------------------------------------------------------------- issue 12: bring your RoastFormer
@pytest.fixture(scope="module")
def roastformer_files(tmp_path_factory):
    """A small package in the research code's zip layout and a normalized-convention checkpoint
    trained on it (tests/roastformer_fixture.py writes both)."""
    import torch
    from roastformer_fixture import (
        ReferenceRoastFormer,
        original_checkpoint,
        package_files,
        reference_inputs,
        tiny_config,
        write_package,
    )

    folder = tmp_path_factory.mktemp("roastformer")
    files = package_files(n=40, n_val=8, n_products=12)
    package = write_package(folder / "roastformer_data.zip", files=files)
    _, dims = reference_inputs(files, "normalized")
    torch.manual_seed(0)
    config = tiny_config(max_sequence_length=800)
    torch.save(original_checkpoint(ReferenceRoastFormer(config, dims), config, dims), folder / "exp_norm.pt")
    return package, folder / "exp_norm.pt"


sys.path.insert(0, str(REPO / "tests"))  # roastformer_fixture


def test_data_page_keeps_an_uploaded_roastformer_package_whole(own_runs, roastformer_files):
    from roastcore.io import list_datasets, load_source

    package, _ = roastformer_files
    at = open_page("pages/data_page.py")
    at.text_input(key="imp_name").set_value("pkg").run()
    at.file_uploader(key="imp_files").set_value([(package.name, package.read_bytes(), "application/zip")]).run()
    at.button(key="imp_upload_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    entry = next(e for e in list_datasets(own_runs) if e.name == "pkg")
    assert entry.kind == "package" and (Path(entry.spec) / package.name).read_bytes() == package.read_bytes()
    report = load_source(entry.spec)
    assert len(report.profiles) == 40 and len(report.split_ids("val")) == 8  # its own membership


@pytest.mark.slow  # imports a checkpoint, then its scoring job process runs
def test_data_page_imports_uploaded_pt_with_its_package_into_the_sidebar(own_runs, roastformer_files):
    from roastcore.jobs import JobRunner, latest_job

    package, pt = roastformer_files
    at = open_page("pages/data_page.py")
    at.file_uploader(key="pt_files").set_value([(pt.name, pt.read_bytes(), "application/octet-stream")]).run()
    assert at.selectbox(key="pt_package").value == "_upload"  # no package imported yet
    at.file_uploader(key="pt_pkg_files").set_value([(package.name, package.read_bytes(), "application/zip")]).run()
    at.button(key="pt_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert sidebar_box(at, "Checkpoint").value == "exp_norm"
    assert sidebar_box(at, "Dataset").value.startswith("ds:roastformer_data")
    assert any("exp_norm" in s.value and "normalized" in s.value for s in at.success)
    manifest = json.loads((own_runs / "exp_norm" / "manifest.json").read_text())
    assert manifest["legacy"]["source"] == "uploaded exp_norm.pt" and Path(manifest["data_source"]).exists()
    assert not [p for p in own_runs.iterdir() if p.name.startswith(".upload-")]  # staging removed
    # Its scoring job runs in the background; the pages then show the run.
    runner = JobRunner(own_runs)
    job = latest_job(runner.list(), "score", own_runs / "exp_norm")
    assert wait_for_job(runner, job.id).state == "succeeded", runner.logs(job.id, tail=40)
    at.switch_page("pages/teacher_forcing_page.py").run()
    assert "exp_norm" in set(at.dataframe[0].value["run"])
    at.switch_page("pages/diagnostic_page.py").run()
    assert not at.exception and not at.error
    assert {"real", "exp_norm raw"} <= set(trace_names(charts(at)[0]))
    assert [x for x in list(at.success) + list(at.info) + list(at.warning) + list(at.error) if "Verdict:" in x.value]


@pytest.mark.slow  # the import queues its scoring job process
def test_a_pt_in_the_runs_directory_is_listed_with_what_it_needs_then_imported(own_runs, roastformer_files):
    from roastcore.io import registry

    package, pt = roastformer_files
    (own_runs / "exp1").mkdir()
    shutil.copy(pt, own_runs / "exp1" / "best_transformer_model.pt")
    (own_runs / "broken.pt").write_bytes(b"not a checkpoint")
    at = open_page("pages/data_page.py")
    notice = " ".join(i.value for i in at.sidebar.info)
    assert "2 RoastFormer checkpoints (.pt)" in notice and "best_transformer_model.pt" in notice
    warnings = " ".join(w.value for w in at.warning)
    broken = next(w.value for w in at.warning if w.value.startswith("`broken.pt`"))
    assert "refused" in broken or "not a readable PyTorch checkpoint" in broken  # what is wrong with it
    assert "best_transformer_model.pt" in warnings and "needs the dataset package it was trained on" in warnings
    # With its package imported, it gets a one-click import (named after its folder).
    registry.import_path(own_runs, "pkg", package)
    at.run()
    assert any("exp1/best_transformer_model.pt" in m.value and "**exp1-imported**" in m.value for m in at.markdown)
    at.button(key="pt_found_go_exp1/best_transformer_model.pt").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert sidebar_box(at, "Checkpoint").value == "exp1-imported"
    assert "1 RoastFormer checkpoint (.pt)" in " ".join(i.value for i in at.sidebar.info)  # broken.pt stays listed


def test_a_pick_prefetches_the_curve_compare_draws_first(own_runs):
    """After a checkpoint is picked (here on the Data page, which draws no curve), the roast
    Compare curves draws first is generated in the background once no page runs; Compare then
    takes it from the cache."""
    import time

    from pages import _ui
    from pages._state import path_mtime

    copy_demo(own_runs, "fetch-me", demo="demo_recommended")
    at = open_page(None, {"run": "fetch-me"})
    run = at.session_state[_ui.CTX_KEY].run("fetch-me")
    val, _ = _ui.validation_profiles(run, "synthetic:30")
    key = _ui._curve_key(str(run.path), path_mtime(run.path), "synthetic:30", val[0].id, 0.0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        future = _ui._recall(_ui._CURVES, key)
        if future is not None and future.done():
            break
        time.sleep(0.2)
    assert future is not None and future.done() and future.exception() is None
    at.switch_page("pages/compare_page.py").run()
    assert not at.exception and not at.error
    import numpy as np

    assert np.allclose(*_plotted(charts(at)[0], "fetch-me", future.result()))


def _plotted(chart, name: str, full):
    """A drawn 1 s curve as the chart's data hold it, and `full` at the same times (charts draw
    a thinned curve, plotting.thin)."""
    drawn = chart.curve(name)
    return drawn["y"].to_numpy(float), np.asarray(full, dtype=float)[drawn["t"].to_numpy(int)]


def _scored_copy(runs: Path, name: str, demo: str = "demo_teacher_forced"):
    """A copy of a demo run with its stored scores, and the roast Compare and the diagnostic
    draw first for it on the page's data (synthetic:30)."""
    from roastcore.checkpoints import read_json
    from roastcore.inspect_run import manifest_validation_profiles
    from roastcore.io import load_source

    run = Path(shutil.copytree(REPO / "checkpoints" / demo, runs / name, ignore=shutil.ignore_patterns("eval_cache")))
    val, _ = manifest_validation_profiles(read_json(run / "manifest.json"), load_source("synthetic:30").profiles)
    return run, val[0]


def _built(run: Path) -> bool:
    """Whether the dashboard built (loaded) a model of `run` in this process."""
    from pages import _ui

    return any(Path(path) == run for path, _ in list(_ui._RUNS))


def test_compare_draws_the_stored_curve_without_loading_the_model(own_runs):
    """A run whose generated.json holds the curve for exactly this roast: Compare draws that
    curve and builds no model. Stored for other run files or another roast: it generates."""
    import dataclasses

    import numpy as np

    from roastcore import run_generated as rg
    from roastcore.baselines import curve_1s
    from roastcore.checkpoints import load_run
    from roastcore.inspect_run import generate_curves

    run, first = _scored_copy(own_runs, "stored-run")
    planted = curve_1s(first) + 7.25  # not what the model generates: shows where the curve came from
    rg.write_generated(run, rg.run_digest(run), [rg.curve_entry(first, planted)], [])
    at = open_page("pages/compare_page.py", {"run": "stored-run"})
    assert np.array_equal(*_plotted(charts(at)[0], "stored-run", planted))
    assert not _built(run)

    generated = generate_curves(load_run(run), [first])[0]
    other_roast = dataclasses.replace(first, meta=dataclasses.replace(first.meta, origin="Nowhere"))
    for run_sha, entry in (("0" * 64, rg.curve_entry(first, planted)),  # stored from other run files
                           (rg.run_digest(run), rg.curve_entry(other_roast, planted))):  # for another roast
        rg.write_generated(run, run_sha, [entry], [])
        at = open_page("pages/compare_page.py", {"run": "stored-run"})
        drawn, at_planted = _plotted(charts(at)[0], "stored-run", planted)
        assert not np.allclose(drawn, at_planted) and np.allclose(*_plotted(charts(at)[0], "stored-run", generated), atol=1e-6)
    assert _built(run)


def test_diagnostic_shows_the_stored_step_trace_without_loading_the_model(own_runs):
    from roastcore import run_generated as rg
    from roastcore.checkpoints import load_run
    from roastcore.diagnose import default_trace_steps, step_trace

    run, first = _scored_copy(own_runs, "traced-run")
    model = load_run(run).model
    steps = default_trace_steps(model.config, first)
    trace = dict(step_trace(model, first, steps=steps).to_dict(), variance_f2=4321.0)  # marked as the stored one
    rg.write_generated(run, rg.run_digest(run), [], [rg.trace_entry(first, steps, trace)])
    at = open_page("pages/diagnostic_page.py", {"run": "traced-run"})
    assert "4321.0 °F²" in [m.value for m in at.metric]
    assert any("Verdict:" in x.value for x in list(at.success) + list(at.info) + list(at.warning))
    assert not _built(run)
    # Another number of steps than the stored one is generated.
    at.slider(key="diag_steps").set_value(steps + 5).run()
    assert not at.exception and not at.error
    assert "4321.0 °F²" not in [m.value for m in at.metric] and _built(run)


# ---------------------------------------------------------------------------- Sweeps (issue 15)
def _finished_sweep(runs: Path):
    """A sweep of 2 presets x lr in {1e-3, 2e-3} x 2 seeds whose jobs ended (recorded straight in
    SQLite, nothing trains): every run scored (RUN_DIR/scores.json and metrics.jsonl as a
    finished job leaves them) but one, which failed."""
    import sqlite3

    from roastcore.jobs import JobRunner, launch_sweep

    runner = JobRunner(runs, max_cpu_jobs=0)  # the store alone: nothing starts
    sweep = launch_sweep(runner, ["micro_model", "tiny_model"], "synthetic:30",
                         grid={"lr": [1e-3, 2e-3]}, seeds=2, epochs=2)
    conn = sqlite3.connect(runner.db_path)
    with conn:
        for i, job in enumerate(sweep.jobs):
            failed = job.preset == "tiny_model" and job.overrides["lr"] == 2e-3 and job.seed == 1
            conn.execute("UPDATE jobs SET state = ?, started_at = 100, ended_at = ?, reason = ? "
                         "WHERE id = ?", ("failed" if failed else "succeeded", 110.0 + i,
                                          "boom: out of memory" if failed else None, job.id))
            run_dir = Path(job.run_dir)
            run_dir.mkdir(parents=True)
            tf = 2.0 + 4 * job.seed + (job.overrides["lr"] == 2e-3) + 10 * (job.preset == "tiny_model")
            (run_dir / "metrics.jsonl").write_text("".join(
                json.dumps({"epoch": e, "val_tf_mae_f": tf * (3 - e)}) + "\n" for e in (1, 2)))
            if not failed:
                (run_dir / "scores.json").write_text(json.dumps({
                    "version": 1, "summary": {"tf_mae_f": tf, "free_mae_f": 3 * tf,
                                              "verdict": "healthy"},
                    "report": {"teacher_forcing": {"mae_f": tf, "persistence_mae_f": 5.0},
                               "free_run": {"mae_f": 3 * tf, "finish_mae_f": 4.0,
                                            "physics_valid_pct": 100.0},
                               "baselines": {"aligned_knn": {"mae_f": 9.0}}}}))
    conn.close()
    return sweep


def test_sweeps_page_shows_a_finished_sweep_its_table_and_charts(runs_dir, tmp_path, monkeypatch):
    own = tmp_path / "sweep_runs"
    monkeypatch.setenv("ROASTCORE_RUNS", str(own))  # a store of its own: other tests want theirs empty
    empty = open_page("pages/sweeps_page.py")
    assert any("No sweeps yet" in i.value for i in empty.info)
    sweep = _finished_sweep(own)
    at = open_page("pages/sweeps_page.py")
    assert at.header[0].value == "Sweeps"
    assert at.selectbox(key="sw_pick").value == sweep.id
    assert "finished" in at.selectbox(key="sw_pick").options[0]
    # Its jobs and their states.
    jobs = next(df.value for df in at.dataframe if "verdict / reason" in df.value.columns)
    assert len(jobs) == 8 and sorted(jobs["state"].unique()) == ["failed", "succeeded"]
    assert "boom: out of memory" in set(jobs["verdict / reason"])
    # The results table: mean ± std over the two seeds, each figure beside its baseline.
    table = next(df.value for df in at.dataframe if "scored" in df.value.columns)
    assert len(table) == 4 and set(table["preset"]) == {"micro_model", "tiny_model"}
    first = table.iloc[0]  # micro_model lr=0.001: seeds 0 and 1 scored TF 2 and 6 °F
    assert (first["setting"], first["scored"]) == ("lr=0.001", "2/2")
    assert first["teacher-forcing MAE °F"] == "4.00 ± 2.83"
    assert first["persistence MAE °F (same step)"] == "5.00 ± 0.00"
    assert first["free-running MAE °F"] == "12.00 ± 8.49"
    assert table.set_index("setting").loc["lr=0.002"].iloc[-1]["scored"] == "1/2"  # one failed
    # The charts: the suite comparison and, as lr varies, the parallel coordinates; the curves.
    specs = [json.loads(ch.proto.spec) for ch in at.get("vega_lite_chart")]
    assert len(specs) == 3
    suite, parallel, curves = specs
    assert [p["name"] for p in suite["params"]] == ["runs"] == [p["name"] for p in parallel["params"]]
    assert "lr" in json.dumps(parallel) and "curves" not in json.dumps(suite)
    assert curves["mark"]["type"] == "line"
    # Clicking two runs in the parallel chart filters the table to their settings and
    # highlights their curves.
    picked = [j.id for j in sweep.jobs if j.preset == "tiny_model" and j.overrides["lr"] == 1e-3]
    select_runs(at, at.get("vega_lite_chart")[1], picked)
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = next(df.value for df in at.dataframe if "scored" in df.value.columns)
    assert list(zip(table["preset"], table["setting"], strict=True)) == [("tiny_model", "lr=0.001")]
    bold = {row["job_id"] for row in _chart_rows(at.get("vega_lite_chart")[-1]) if row["selected"]}
    assert bold == set(picked)
    # Another figure: the free-running MAE beside the aligned kNN.
    at.get("button_group")[-1].set_value("free_mae_f").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    suite = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    assert "aligned kNN MAE °F (same roasts)" in json.dumps(suite, ensure_ascii=False)


def test_sweeps_launch_from_setup_and_jobs_with_the_limit_and_slots(runs_dir, tmp_path, monkeypatch):
    """Experiment setup's settings open the Sweeps form; a small grid x seeds is launched from
    there; over the limit it asks for 'Launch anyway'; the jobs page sweeps the recovery suite
    in one click and shows the slots. Nothing trains (ROASTCORE_MAX_CPU_JOBS=0: the store alone)."""
    from pages._job_tables import RECOVERY_SUITE
    from roastcore.jobs import JobRunner, list_sweeps

    own = tmp_path / "launch_runs"
    monkeypatch.setenv("ROASTCORE_RUNS", str(own))
    monkeypatch.setenv("ROASTCORE_MAX_CPU_JOBS", "0")
    monkeypatch.setenv("ROASTCORE_MAX_SWEEP_JOBS", "6")
    runner = JobRunner(own)
    at = open_page("pages/setup_page.py")
    at.select_slider(key="set_d_model").set_value(64).run()
    at.select_slider(key="set_step_s").set_value(5.0).run()
    at.number_input(key="set_epochs").set_value(3).run()
    at.button(key="set_sweep").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.header[0].value == "Sweeps"
    # The form starts from setup: its preset, d_model as the grid's first value, step fixed.
    assert at.multiselect(key="sw_presets").value == ["micro_model"]
    assert at.multiselect(key="sw_grid_d_model").value == [64]
    assert at.number_input(key="sw_epochs").value == 3
    assert any("step_s=5.0" in cap.value for cap in at.caption)
    at.switch_page("pages/sweeps_page.py").run()  # AppTest's own page stays setup's; a browser moves
    assert at.multiselect(key="sw_grid_d_model").value == [64]  # the form keeps starting from setup's
    at.multiselect(key="sw_grid_d_model").set_value([32, 64]).run()
    at.multiselect(key="sw_grid_lr").set_value([1e-3, 2e-3]).run()
    at.number_input(key="sw_seeds").set_value(2).run()
    assert any(cap.value.startswith("8 jobs") for cap in at.caption)
    # 8 jobs is over the limit of 6: refused until 'Launch anyway' is ticked.
    at.button(key="sw_launch").click().run()
    assert any("8 jobs is more than the limit of 6" in e.value for e in at.error)
    assert list_sweeps(runner) == []
    at.checkbox(key="sw_force").check().run()
    at.button(key="sw_launch").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [sweep] = list_sweeps(runner)
    assert len(sweep.jobs) == 8 and {j.epochs for j in sweep.jobs} == {3}
    assert sweep.name == "micro_model x d_model x lr x 2 seeds (step_s=5.0)"
    assert {(j.overrides["d_model"], j.overrides["lr"], j.overrides["step_s"], j.seed)
            for j in sweep.jobs} == {(d, lr, 5.0, s) for d in (32, 64) for lr in (1e-3, 2e-3)
                                     for s in (0, 1)}
    assert at.selectbox(key="sw_pick").value == sweep.id
    assert any(sweep.id in m.value for m in at.success)
    jobs = next(df.value for df in at.dataframe if "verdict / reason" in df.value.columns)
    assert set(jobs["state"]) == {"queued"}
    assert any("Not scored yet" in i.value for i in at.info)
    # Cancel it from the page: every queued job is cancelled.
    at.button(key="sw_cancel").click().run()
    assert {j.state for j in list_sweeps(runner)[0].jobs} == {"cancelled"}

    # Training jobs: slots in use and free, and the recovery suite x seeds in one click.
    jobs_page = open_page("pages/jobs_page.py")
    assert any(cap.value.startswith("Slots · CPU threads: 0 of") for cap in jobs_page.caption)
    jobs_page.button(key="jobs_sweep").click().run()  # 15 jobs: over this limit too
    assert any("15 jobs is more than the limit of 6: launch it on the Sweeps page" in e.value
               for e in jobs_page.error)
    monkeypatch.setenv("ROASTCORE_MAX_SWEEP_JOBS", "200")
    jobs_page.button(key="jobs_sweep").click().run()
    assert not jobs_page.exception and not jobs_page.error, [e.value for e in jobs_page.error]
    suite = list_sweeps(runner)[-1]
    assert len(suite.jobs) == 5 * 3 and set(suite.spec["presets"]) == set(RECOVERY_SUITE) and \
        suite.spec["seeds"] == [0, 1, 2]
    assert any(suite.id in m.value for m in jobs_page.success)


def select_runs(at: AppTest, chart, job_ids: list[str]) -> None:
    """Click runs in an Altair chart: AppTest has no Vega-Lite widget, so send the selection
    state the browser sends (Streamlit's `{"selection": {param: [points]}}`) and rerun."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    states = at._tree.get_widget_states()
    states.widgets.append(WidgetState(id=chart.proto.id, string_value=json.dumps(
        {"selection": {"runs": [{"job_id": i} for i in job_ids]}})))
    at._tree._runner._run(states, timeout=TIMEOUT)


def _chart_rows(chart) -> list[dict]:
    """The data rows of an st.altair_chart element (Streamlit sends them as Arrow bytes)."""
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    blobs = [chart.proto.data.data] + [d.data.data for d in chart.proto.datasets]
    return [row for blob in blobs if blob
            for row in convert_arrow_bytes_to_pandas_df(blob).to_dict("records")]


# ---------------------------------------------------------------------------- Roast in progress
def _fitted(at: AppTest, timeout_s: float = 300.0) -> AppTest:
    """Rerun until no fit or sample is still running beside the page (they run in threads)."""
    import time

    deadline = time.monotonic() + timeout_s
    while any("so far" in i.value for i in at.info) and time.monotonic() < deadline:
        time.sleep(1.0)
        at.run()
    assert not any("so far" in i.value for i in at.info), [i.value for i in at.info]
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def _forecast_times(at: AppTest, method: str) -> list[float]:
    """The times of a drawn curve of the forecast chart."""
    return charts(at)[0].curve(method)["t"].tolist()


def test_roast_page_replays_a_roast_and_follows_the_slider(runs_dir):
    at = _fitted(open_page("pages/roast_page.py", {"run": "demo_recommended"}))
    assert at.header[0].value == "Roast in progress"
    names = trace_names(charts(at)[0])
    assert {"observed", "real rest", "prefix_knn", "linear_projection"} <= set(names)
    moment = next(w for w in at.select_slider if w.label.startswith("Moment"))
    assert moment.value == 240
    assert _forecast_times(at, "prefix_knn")[0] == 241  # the forecast starts right after the cut
    assert set(charts(at)[0].data["bands"]["series"]) == {"prefix_knn", "linear_projection"}  # 80% bands
    frame = at.dataframe[0].value
    assert list(frame["method"]) == ["prefix_knn", "linear_projection", "real"]
    assert frame["ms"].iloc[0] < 1000
    # Scrub later: the forecast starts later and the observed part grows.
    moment.set_value(420).run()
    assert not at.exception and not at.error
    assert _forecast_times(at, "prefix_knn")[0] == 421
    assert max(_forecast_times(at, "observed")) == 420
    # Play advances the moment by itself (one frame per run here); Pause stops.
    at.button(key="rp_play").click().run()
    assert next(w for w in at.select_slider if w.label.startswith("Moment")).value > 420
    assert at.button(key="rp_play").proto.label == "Pause"
    at.button(key="rp_play").click().run()
    assert at.button(key="rp_play").proto.label == "Play"
    # Adding the checkpoint's model: it is fitted once, then drawn; the page says it is slower.
    at.multiselect(key="rp_methods").set_value(["prefix_knn", "model"]).run()
    _fitted(at)
    assert "model" in trace_names(charts(at)[0])
    assert any("200 ms" in c.value for c in at.caption)
    # No stored table for this dataset: the page offers to score a sample (in a thread) and shows it.
    assert any(b.key == "rp_job_go" for b in at.button)
    at.button(key="rp_sample_go").click().run()
    _fitted(at)
    table = at.dataframe[1].value
    assert set(table["method"]) == {"prefix_knn", "model"}
    assert set(table["cut"]) == {"7:00"}  # the scored cut nearest the moment
    assert any("a sample of 16 roasts" in c.value for c in at.caption)


def test_roast_page_reads_a_stored_methods_table(runs_dir):
    from pages import _roast_view
    from roastcore.forecast_eval import forecast_eval
    from roastcore.fsutil import atomic_write_json
    from roastcore.io import load_source

    result = forecast_eval(["linear_projection"], load_source("synthetic:12").profiles, cuts=[120, 300], folds=2)
    result.update(data="synthetic:30", split="all", checkpoint=None)
    path = _roast_view.eval_dir(runs_dir) / "cli_table.json"
    path.parent.mkdir(exist_ok=True)
    atomic_write_json(path, result)
    try:
        at = _fitted(open_page("pages/roast_page.py"))
        table = at.dataframe[1].value
        assert list(table["method"]) == ["linear_projection"] and list(table["cut"]) == ["5:00"]
        assert any("cli_table.json" in c.value and "nearest scored cut to 4:00" in c.value for c in at.caption)
        assert not any(b.key == "rp_sample_go" for b in at.button)  # nothing to compute
    finally:
        path.unlink()


def test_roast_page_replays_an_imported_artisan_log(runs_dir, tmp_path):
    from roastcore.io import import_uploads, write_alog
    from roastcore.simulate import generate_dataset

    roast = generate_dataset(n=1, seed=21)[0]
    write_alog(roast, tmp_path / "my_roast.alog")
    _, entry = import_uploads(runs_dir, "artisan log", [("my_roast.alog", (tmp_path / "my_roast.alog").read_bytes())])
    at = open_page("pages/roast_page.py", {"run": "demo_recommended"})
    sidebar_box(at, "Dataset").set_value(entry.key).run()
    _fitted(at)
    # One roast is too few to learn from: the methods fit on other roasts by default.
    assert at.selectbox(key=f"rp_src:{entry.key}:demo_recommended").value == "run"
    names = trace_names(charts(at)[0])
    assert {"observed", "real rest", "prefix_knn"} <= set(names)
    assert abs(max(_forecast_times(at, "real rest")) - roast.duration_s) <= 1.0
