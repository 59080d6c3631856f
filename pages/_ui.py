"""Streamlit glue shared by app.py and the pages: context, caching, error fence.

Not a page (app.py lists pages explicitly with st.Page). Everything that computes lives in
roastcore or in the streamlit-free helpers beside this file (pages/_state.py, _runs.py,
_format.py, the _*_tables.py and _*_form.py modules); this module only caches roastcore calls
and carries the sidebar's selection.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st
from streamlit.runtime.scriptrunner import RerunException, StopException

from pages._state import Selection, default_data_spec, path_mtime, runs_dir_from_env
from roastcore import inspect_run
from roastcore.plotting import split_panels

log = logging.getLogger("roastcore.app")
CTX_KEY = "_roast_ctx"


@dataclass
class Ctx:
    """What the sidebar decided for this script run."""

    runs_dir: Path
    data_key: str
    data_spec: str
    data_label: str
    runs: list  # [pages._runs.RunChoice], picker order
    selection: Selection
    colors: dict = field(default_factory=dict)

    def run(self, name: str):
        return next((r for r in self.runs if r.name == name), None)

    @property
    def primary(self):
        return self.run(self.selection.run) if self.selection.run else None

    @property
    def selected(self) -> list:
        """Primary first, then comparisons (RunChoice objects that still exist)."""
        return [r for r in (self.run(n) for n in self.selection.runs()) if r is not None]


def ctx() -> Ctx:
    value = st.session_state.get(CTX_KEY)
    if value is None:  # a page run without app.py (should not happen with st.navigation)
        runs_dir = runs_dir_from_env()
        spec = default_data_spec()
        value = Ctx(runs_dir=runs_dir, data_key=spec, data_spec=spec, data_label=spec, runs=[],
                    selection=Selection(data=spec))
    return value


@contextlib.contextmanager
def guard(what: str = "this page"):
    """Turn any exception into a plain st.error (no traceback); keep Streamlit's control flow."""
    try:
        yield
    except (StopException, RerunException):
        raise
    except Exception as exc:  # noqa: BLE001 - the UI fence: everything becomes a message
        log.exception("error while rendering %s", what)
        st.error(f"Could not render {what}: {plain_message(exc)}")


def plain_message(exc: BaseException) -> str:
    msg = str(exc).strip() or type(exc).__name__
    if isinstance(exc, (ModuleNotFoundError, ImportError)):
        return f"a roastcore module is missing ({msg})"
    if isinstance(exc, FileNotFoundError):
        return f"file not found: {getattr(exc, 'filename', None) or msg}"
    if isinstance(exc, MemoryError):
        return "out of memory"
    return msg.splitlines()[0][:400]


def empty_state(message: str, page: str | None = None, label: str | None = None) -> None:
    """The 'nothing here yet, do this next' box, with a link to the page that fixes it."""
    st.info(message)
    if page:
        with contextlib.suppress(Exception):  # page_link needs the page to be registered
            st.page_link(page, label=label or "Go there", icon=":material/arrow_forward:")


# ---------------------------------------------------------------------------- cached loaders
# Datasets, loaded runs and single generated curves live in process-wide caches of this module
# (not st.cache_*): the background prefetch (below) fills them from a thread that has no script
# run context. Keys hold the files' mtimes, so a rewritten run or dataset is read again.
_LOCK = threading.Lock()
_DATASETS: OrderedDict = OrderedDict()  # (spec, mtime) -> ImportReport
_RUNS: OrderedDict = OrderedDict()  # (run path, mtime) -> checkpoints.LoadedRun
_CURVES: OrderedDict = OrderedDict()  # curve key -> Future of a 1 s curve
_GENERATE = threading.Lock()  # one model computation at a time (torch's thread count is global)
_POOL: ThreadPoolExecutor | None = None
_PREFETCHED: set = set()  # selections already prefetched
_PENDING: list = []  # prefetch tasks waiting for no script to run
_ACTIVE = 0  # script runs in progress (all sessions)
PREFETCH_DELAY_S = 0.75


def _remember(cache: OrderedDict, key, value, limit: int):
    with _LOCK:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > limit:
            cache.popitem(last=False)
    return value


def _recall(cache: OrderedDict, key):
    with _LOCK:
        value = cache.get(key)
        if value is not None:
            cache.move_to_end(key)
        return value


def load_report(spec: str):
    """The ImportReport of a dataset spec, cached on (spec, mtime of the path)."""
    key = (spec, _data_mtime(spec))
    report = _recall(_DATASETS, key)
    if report is None:
        from roastcore.io import load_source

        report = _remember(_DATASETS, key, load_source(spec), 8)
    return report


def _data_mtime(spec: str) -> float:
    return 0.0 if spec.startswith("synthetic") else path_mtime(spec)


def load_profiles(spec: str) -> list:
    return list(load_report(spec).profiles)


def _loaded(path: str, mtime: float):
    run = _recall(_RUNS, (path, mtime))
    if run is None:
        from roastcore.checkpoints import load_run as load

        run = _remember(_RUNS, (path, mtime), load(path), 32)
    return run


def load_run(run) -> object:
    """checkpoints.load_run, cached on the run path + mtime."""
    path = str(run.path)
    return _loaded(path, path_mtime(path))


RUNS_TTL_S = 30.0  # a running run is read again at least this often (a killed run turns "interrupted")
_RUN_INFO: OrderedDict = OrderedDict()  # (run folder, its mtime, newest file's) -> (RunInfo or None, read at)


def _run_info(path: Path):
    """checkpoints.run_info, cached on the run folder's own mtime and its newest file's: every
    script run lists the runs, and reading each one's manifest, metrics and scores took ~0.25 s
    for 44 runs on a busy server; now only a run that changed is read again, and a run still
    'running' every RUNS_TTL_S (its process may have died, which no file shows)."""
    from roastcore.checkpoints import run_info

    try:
        key = (str(path), path.stat().st_mtime, path_mtime(path))
    except OSError:
        return None
    now = time.monotonic()
    with _LOCK:
        hit = _RUN_INFO.get(key)
    if hit is not None and (hit[0] is None or hit[0].status != "running" or now - hit[1] < RUNS_TTL_S):
        return hit[0]
    return _remember(_RUN_INFO, key, (run_info(path), now), 1024)[0]


def discover_runs(runs_dir) -> list:
    """pages._runs.discover_runs with each run read once per change (_run_info)."""
    from pages._runs import discover_runs as discover

    return discover(runs_dir, info_of=_run_info)


PENDING_DATA = "_pending_data"
PENDING_RUN = "_pending_run"


def select_dataset(key: str) -> None:
    """Ask the sidebar to select dataset `key` on the next run (its widget already exists now)."""
    st.session_state[PENDING_DATA] = key


def select_run(name: str) -> None:
    st.session_state[PENDING_RUN] = name


_SCORES: OrderedDict = OrderedDict()  # (run path, mtime) -> stored report dict, or None
_STORED: OrderedDict = OrderedDict()  # (run path, mtime) -> run_generated.StoredViews, or None
_RUN_FILES: OrderedDict = OrderedDict()  # (what, run path, mtime) -> manifest dict / config / encoder


def _cached_or(cache: OrderedDict, key, compute, limit: int = 256):
    """cache[key], else compute() remembered there (None included, unlike _recall)."""
    with _LOCK:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
    return _remember(cache, key, compute(), limit)


def _scores_of(run_path: str, run_mtime: float) -> dict | None:
    def read() -> dict | None:
        from roastcore.evaluate import stored_report

        report = stored_report(run_path)
        # Shallow (a fresh report's own dicts): to_dict's deep copy cost 0.03 s a run on a busy server.
        return None if report is None else {f.name: getattr(report, f.name) for f in dataclasses.fields(report)}

    return _cached_or(_SCORES, (run_path, run_mtime), read)


def scores(run) -> dict | None:
    """The run's stored scores (evaluate.stored_report: RUN/scores.json, written when its
    training finished or by a scoring job) as a dict, or None; cached per run and its files'
    mtime, so a scoring job that finishes is seen at once. Pages never score in the page."""
    if not getattr(run, "usable", True):
        return None
    return _scores_of(str(run.path), path_mtime(run.path))


@st.cache_data(show_spinner=False, max_entries=128)
def _model_facts_cached(run_path: str, run_mtime: float) -> dict:

    try:
        config = json.loads((Path(run_path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    return {"model": config.get("model") or {}}


def model_facts(run) -> dict:
    """{'model': the ModelConfig dict from config.json, 'n_params': the manifest's count}:
    what the tables show about a run, without loading its weights."""
    facts = dict(_model_facts_cached(str(run.path), path_mtime(run.path)))
    facts["n_params"] = run.metrics.get("n_params")
    return facts


def _rescore_wanted(job, run) -> bool:
    """A finished scoring job is tried again by itself only when the weights changed since it
    was submitted; a failed one waits for the user (its reason is shown), never loops."""
    try:
        weights = (Path(run.path) / "model.safetensors").stat().st_mtime
    except OSError:
        return False
    return (job.created_at or 0) < weights


def scoring_panel(runs, c: Ctx, key: str) -> None:
    """Usable runs without current scores get a background scoring job (`python -m roastcore
    score --checkpoint RUN --if-needed`, roastcore.jobs.tasks), submitted here once, shown with
    its live progress. When a job ends the whole page reruns and reads the new scores."""
    runs = [r for r in runs if getattr(r, "usable", True)]
    if not runs:
        return
    from roastcore.jobs import JobError, JobRunner, latest_job, submit_score

    runner = JobRunner(c.runs_dir)
    jobs = runner.list()
    for run in runs:
        job = latest_job(jobs, "score", run.path)
        if job is None or (not job.is_active and _rescore_wanted(job, run)):
            try:
                submit_score(runner, run.path)
            except JobError as exc:
                st.error(f"Cannot score {run.name} in the background: {plain_message(exc)}")
    watched = {r.name: r for r in runs}
    jobs = runner.list()
    polling = any(j is not None and j.is_active for j in (latest_job(jobs, "score", r.path) for r in runs))

    # Polls only while a scoring job is queued or running; when the last one ends the whole
    # page reruns once (the new scores, or the failure without polling).
    @st.fragment(run_every=2.0 if polling else None)
    def live() -> None:
        from roastcore.jobs import read_task_progress

        jobs_now = runner.list()
        active = False
        for name, run in watched.items():
            job = latest_job(jobs_now, "score", run.path)
            if job is None:
                continue
            active = active or job.is_active
            if job.is_active:
                prog = read_task_progress(job)
                where = "queued behind another job" if job.state == "queued" else (
                    f"{prog.stage or 'starting'} ({prog.done}/{prog.total or 5})")
                st.progress(prog.fraction, text=f"Scoring **{name}** in the background (job {job.id}): {where}")
            elif scores(run) is None:  # ended without current scores: say why, offer a retry
                why = (job.reason or "").splitlines()[0] if job.state != "succeeded" else \
                    "it ended without storing current scores"
                st.warning(f"Scoring **{name}** {job.state} (job {job.id}): {why or 'see its log on Training jobs'}")
                cols = st.columns(2)
                if cols[0].button("Score again", key=f"{key}_again_{name}", icon=":material/refresh:"):
                    submit_score(runner, run.path)
                    st.rerun(scope="app")
                if cols[1].button(f"Score on {c.data_label}", key=f"{key}_on_{name}",
                                  help="Score it on the sidebar's dataset instead of the data the run records."):
                    submit_score(runner, run.path, data=c.data_spec)
                    st.rerun(scope="app")
        if any(scores(r) is not None for r in watched.values()) or (polling and not active):
            st.rerun(scope="app")  # stored now (the page shows them), or polling can stop

    live()
@st.cache_data(show_spinner=False, max_entries=128)
def _generated_cached(run_path: str, run_mtime: float, spec: str, data_mtime: float,
                      profile_ids: tuple[str, ...], prefix_s: float) -> list:
    by_id = {p.id: p for p in load_profiles(spec)}
    profiles = [by_id[i] for i in profile_ids if i in by_id]
    loaded = _loaded(run_path, run_mtime)
    with _GENERATE:
        return inspect_run.generate_curves(loaded, profiles, prefix_s=prefix_s)


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="roastlab-prefetch")
        return _POOL


def _curve_key(run_path: str, run_mtime: float, spec: str, profile_id: str, prefix_s: float) -> tuple:
    return (run_path, run_mtime, spec, _data_mtime(spec), profile_id, float(prefix_s))


def _stored(run_path: str, run_mtime: float):
    """The run's generated.json (what scoring generated for the pages), checked against its
    files once per mtime; None when it has none or it is stale."""
    from roastcore.run_generated import load_generated  # torch-free; only the pages read it

    return _cached_or(_STORED, (run_path, run_mtime), lambda: load_generated(run_path))


def _compute_curve(run_path: str, run_mtime: float, profile, prefix_s: float):
    """The stored curve when it was generated for exactly this roast from these run files
    (no model is loaded), else generated now."""
    stored = _stored(run_path, run_mtime)
    curve = None if stored is None else stored.curve(profile, prefix_s)
    if curve is not None:
        return curve
    loaded = _loaded(run_path, run_mtime)
    with _GENERATE:
        return inspect_run.generate_curves(loaded, [profile], prefix_s=prefix_s)[0]


def generated(run, spec: str, profile_ids, prefix_s: float = 0.0) -> list:
    """Free-running 1 s curves of `run` for the given profile ids (cached). One roast (what
    Compare draws) goes through the per-roast cache the prefetch fills: a curve being
    generated in the background is waited for; one only queued there is taken back and
    generated here, so a page never waits behind the background queue. Several roasts are
    generated in one batch."""
    ids = tuple(profile_ids)
    if len(ids) != 1:
        return _generated_cached(str(run.path), path_mtime(run.path), spec, _data_mtime(spec), ids,
                                 float(prefix_s))
    profile = next((p for p in load_profiles(spec) if p.id == ids[0]), None)
    if profile is None:
        return []
    path, mtime = str(run.path), path_mtime(run.path)
    key = _curve_key(path, mtime, spec, profile.id, prefix_s)
    future = _recall(_CURVES, key)
    if future is not None and (future.running() or (future.done() and future.exception() is None)):
        return [future.result()]
    if future is not None:
        future.cancel()  # queued in the background: generate it here instead
    done: Future = Future()
    done.set_result(_compute_curve(path, mtime, profile, prefix_s))
    _remember(_CURVES, key, done, 256)
    return [done.result()]


def script_started() -> None:
    """app.py calls this when a script run starts: background work waits for idle moments."""
    global _ACTIVE
    with _LOCK:
        _ACTIVE += 1


def script_finished() -> None:
    """...and this when it ends: queued prefetches start once no script runs and the browser has
    had PREFETCH_DELAY_S to draw what it just received (both compete for the same 2 cores)."""
    global _ACTIVE
    with _LOCK:
        _ACTIVE = max(_ACTIVE - 1, 0)
        idle = _ACTIVE == 0 and bool(_PENDING)
    if idle:
        timer = threading.Timer(PREFETCH_DELAY_S, _start_pending)
        timer.daemon = True
        timer.start()


def _start_pending() -> None:
    with _LOCK:
        if _ACTIVE:
            return  # a script run started meanwhile; its end starts them
        tasks = list(_PENDING)
        _PENDING.clear()
    for task in tasks:
        _pool().submit(task)


def prefetch(c: Ctx) -> None:
    """Once per new selection: load the selected runs and generate, in the background when no
    page is running, the roast Compare curves draws first (the primary's first validation
    roast) for each of them, so a checkpoint picked on one page is ready when another page
    shows it."""
    runs = [r for r in c.selected if r.usable]
    if not runs or os.environ.get("ROASTCORE_PREFETCH", "1") == "0":  # 0: off (benchmarks compare)
        return
    spec = c.data_spec
    paths = tuple((str(r.path), path_mtime(r.path)) for r in runs)
    key = (paths, spec, _data_mtime(spec))
    with _LOCK:
        if key in _PREFETCHED:
            return
        _PREFETCHED.add(key)
        if len(_PREFETCHED) > 512:
            _PREFETCHED.clear()

    def task() -> None:
        started, done = time.monotonic(), 0
        try:
            for path, mtime in paths:
                _scores_of(path, mtime)
            profiles = load_profiles(spec)
            val, _ = inspect_run.manifest_validation_profiles(_manifest(*paths[0]), profiles)
            for path, mtime in paths if val else ():
                curve_key = _curve_key(path, mtime, spec, val[0].id, 0.0)
                if _recall(_CURVES, curve_key) is not None:
                    continue
                with _LOCK:
                    if _ACTIVE:
                        log.info("prefetch: a page runs; leaving %s to it", Path(path).name)
                        continue  # a page runs: it computes what it needs itself
                future: Future = Future()
                future.set_running_or_notify_cancel()
                _remember(_CURVES, curve_key, future, 256)
                try:
                    future.set_result(_compute_curve(path, mtime, val[0], 0.0))
                    done += 1
                except Exception as exc:  # noqa: BLE001 - the page asking for it gets the error
                    future.set_exception(exc)
            log.info("prefetch: %d curve(s) of %s generated in %.2f s", done,
                     ", ".join(Path(p).name for p, _ in paths), time.monotonic() - started)
        except Exception:  # noqa: BLE001 - a failed prefetch only means the page computes it
            log.exception("prefetch failed")

    with _LOCK:
        _PENDING.append(task)


def _manifest(run_path: str, run_mtime: float) -> dict:
    def read() -> dict:
        from roastcore.checkpoints import MANIFEST, RunError, read_json

        try:
            return read_json(Path(run_path) / MANIFEST)
        except RunError:
            return {}  # no or a broken manifest: the page then shows all roasts, labelled so

    return _cached_or(_RUN_FILES, ("manifest", run_path, run_mtime), read)


def validation_profiles(run, spec: str) -> tuple[list, str]:
    """The run's validation roasts in `spec`, from its manifest (cached): no model is built."""
    path = str(run.path)
    return inspect_run.manifest_validation_profiles(_manifest(path, path_mtime(path)), load_profiles(spec))


def trace_length(run, profile) -> tuple[int, float]:
    """diagnose.trace_length of `profile` from the run's config.json (cached): no model is built."""
    from roastcore.checkpoints import load_config
    from roastcore.diagnose import trace_length as length

    path = str(run.path)
    config = _cached_or(_RUN_FILES, ("config", path, path_mtime(path)), lambda: load_config(path))
    return length(config.model, profile)


def run_encoder(run):
    """The run's feature encoder (checkpoints.load_encoder, cached): a form's choices without
    building the model."""
    from roastcore.checkpoints import load_encoder

    path = str(run.path)
    return _cached_or(_RUN_FILES, ("encoder", path, path_mtime(path)), lambda: load_encoder(path))


@st.cache_data(show_spinner=False, max_entries=64)
def _trace_cached(run_path: str, run_mtime: float, spec: str, data_mtime: float, profile_id: str,
                  steps: int) -> dict:
    from roastcore.diagnose import step_trace

    loaded = _loaded(run_path, run_mtime)
    profile = next(p for p in load_profiles(spec) if p.id == profile_id)
    with _GENERATE:
        return step_trace(loaded.model, profile, steps=steps).to_dict()


def step_trace(run, spec: str, profile_id: str, steps: int) -> dict:
    """diagnose.step_trace(..., steps).to_dict() of `run` on one roast of `spec`: the stored one
    when scoring generated exactly this (no model is loaded), else generated (cached). Only the
    steps shown are generated (60 of a 1 s model's ~700 by default)."""
    path, mtime = str(run.path), path_mtime(run.path)
    stored = _stored(path, mtime)
    if stored is not None:
        profile = next((p for p in load_profiles(spec) if p.id == profile_id), None)
        trace = None if profile is None else stored.trace(profile, int(steps))
        if trace is not None:
            return trace
    return _trace_cached(path, mtime, spec, _data_mtime(spec), profile_id, int(steps))


def _warm_up() -> None:
    """What the first view of a page would otherwise pay once per server, measured in the
    browser at 2-3 s on 2 cores: roastcore's model, evaluation and generation modules; torch's
    lazily imported reference ops that building a model on the meta device pulls in (load_run,
    parameter counts); the chart specs and their Arrow encoding (each kind built once);
    pandas' Styler (jinja2); Streamlit's emoji table (the first st.success)."""
    try:
        import numpy as np
        import pandas as pd
        import streamlit.emojis  # noqa: F401 - imported to warm up
        from pandas.io.formats import style  # noqa: F401 - imported to warm up
        from streamlit import dataframe_util

        from roastcore import diagnose, evaluate, generate, plotting, score_charts  # noqa: F401 - imported to warm up
        from roastcore.experiments import PRESETS, preset_parameter_count
        from roastcore.simulate import generate_dataset

        # Not the st.cache_resource twin: this thread has no script run context.
        preset_parameter_count(PRESETS["micro_model"])
        roast = generate_dataset(n=1, seed=0)[0]
        t = np.arange(20.0)
        specs = [plotting.curves_figure([roast]), plotting.overlay_figure(roast, {"a": roast.bt}, 1.0),
                 plotting.grid_figure([("a", roast, {"a": roast.bt})], 1.0), plotting.step_trace_figure(t, t, t, t),
                 score_charts.tf_comparison_figure(pd.DataFrame({"run": ["a"], "tf_mae_f": [1.0],
                                                             "persistence_mae_f": [2.0], "step_s": [1.0],
                                                             "best": ["★"]})),
                 score_charts.loss_figure(pd.DataFrame({"run": ["a"], "epoch": [1], "train_loss": [1.0],
                                                    "val_loss": [1.0], "tf_ratio": [1.0]}))]
        for spec in specs:
            for frame in spec["datasets"].values():
                dataframe_util.convert_anything_to_arrow_bytes(frame)
        pd.DataFrame({"a": [1.0]}).style.format(precision=2).to_html()
    except Exception:  # noqa: BLE001 - a warm-up failure only costs time later
        log.exception("warm-up failed")


@st.cache_resource(show_spinner=False)
def warm_up_once() -> threading.Thread:
    """Start _warm_up in a background thread once per server process (at its first session), so
    a later deep link or checkpoint pick does not pay the imports."""
    thread = threading.Thread(target=_warm_up, name="roastlab-warm-up", daemon=True)
    thread.start()
    return thread


@st.cache_data(show_spinner=False, max_entries=64)
def _is_package_cached(spec: str, mtime: float) -> bool:
    from pages._pt_import import is_package as check

    return check(spec)


def is_package(spec: str) -> bool:
    """Whether a dataset spec is a RoastFormer research package (cached on its mtime)."""
    return _is_package_cached(spec, _data_mtime(spec))


@st.cache_data(show_spinner=False, max_entries=16)
def _package_dims_cached(spec: str, mtime: float) -> dict:
    from pages._pt_import import package_dims

    return package_dims(spec)


@st.cache_data(show_spinner=False, max_entries=64)
def _pt_status_cached(path: str, mtime: float, size: int, packages: dict):
    from pages._pt_import import checkpoint_status

    return checkpoint_status(Path(path), packages)


def pt_status(path: Path, package_keys):
    """pages._pt_import.checkpoint_status of a `.pt` against the imported package datasets
    `package_keys`, cached on the file's mtime and size and the packages' contents."""
    from roastcore.io import list_datasets

    specs = {e.key: e.spec for e in list_datasets(ctx().runs_dir) if e.key in set(package_keys)}
    dims = {key: _package_dims_cached(spec, _data_mtime(spec)) for key, spec in specs.items()}
    stat = Path(path).stat()
    return _pt_status_cached(str(path), stat.st_mtime, stat.st_size, dims)


@st.cache_resource(show_spinner=False)
def clean_leftovers_once(runs_dir: str) -> int:
    """roastcore.io.clean_leftovers once per server process and runs directory: staging and
    partial dataset folders of imports killed before this server started."""
    from roastcore.io import clean_leftovers

    return len(clean_leftovers(runs_dir))


def chart(spec: dict, key: str) -> None:
    """Draw a roastcore.plotting chart (a Vega-Lite spec): BT and its RoR panel one under the
    other (plotting.split_panels), each as wide as the page. Streamlit's chart toolbar offers
    "Download as PNG" and "Show data" (the rows, downloadable as CSV)."""
    for i, part in enumerate(split_panels(spec)):
        st.vega_lite_chart(part, key=key if i == 0 else f"{key}_{i}")


def keep_choice(key: str, options, default=None) -> None:
    """Set a keyed picker's value again before it is drawn: its value if still an option, else
    `default`. The picker's labels may have changed since the browser last saw them (a job's
    state, a run's latest figure); Streamlit matches the value the browser sends by its label, so
    an unpinned picker would silently jump to its first option."""
    value = st.session_state.get(key)
    st.session_state[key] = value if value in options else default


def column_help(helps: dict, wide=()) -> dict:
    """st.dataframe column_config giving each named column its full text on hover (help=) and
    the `wide` ones a large width, so cut-off headers and cells can still be read."""
    return {col: st.column_config.Column(col, help=text, width="large" if col in wide else None)
            for col, text in helps.items()}


def submit_button(label: str, key: str, action, disabled: bool = False, **kwargs) -> None:
    """A button that is disabled while its action runs (double-click safe on top of
    JobRunner.submit's idempotence): the click only sets a flag (on_click), the run that follows
    renders the button disabled, performs `action()`, clears the flag and reruns."""
    busy = f"_busy_{key}"

    def request() -> None:
        st.session_state[busy] = True

    st.button(label, key=key, disabled=disabled or st.session_state.get(busy, False), on_click=request, **kwargs)
    if st.session_state.get(busy):
        try:
            with st.spinner("Submitting…"):
                action()
        finally:
            st.session_state[busy] = False
        st.rerun()
