"""Streamlit glue shared by app.py and the pages: context, caching, error fence.

Not a page (app.py lists pages explicitly with st.Page). Everything that computes lives in
roastcore or in the streamlit-free helpers beside this file (pages/_state.py, _runs.py,
_format.py, the _*_tables.py and _*_form.py modules); this module only caches roastcore calls
and carries the sidebar's selection.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st
from streamlit.runtime.scriptrunner import RerunException, StopException

from pages._state import Selection, default_data_spec, path_mtime, runs_dir_from_env
from roastcore import inspect_run

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
@st.cache_resource(show_spinner=False, max_entries=8)
def _load_source_cached(spec: str, mtime: float):
    from roastcore.io import load_source

    return load_source(spec)


def load_report(spec: str):
    """The ImportReport of a dataset spec, cached on (spec, mtime of the path)."""
    return _load_source_cached(spec, _data_mtime(spec))


def _data_mtime(spec: str) -> float:
    return 0.0 if spec.startswith("synthetic") else path_mtime(spec)


def load_profiles(spec: str) -> list:
    return list(load_report(spec).profiles)


@st.cache_resource(show_spinner=False, max_entries=16)
def _load_run_cached(path: str, mtime: float):
    from roastcore.checkpoints import load_run

    return load_run(path)


def load_run(run) -> object:
    """checkpoints.load_run, cached on the run path + mtime."""
    path = str(run.path)
    return _load_run_cached(path, path_mtime(path))


PENDING_DATA = "_pending_data"
PENDING_RUN = "_pending_run"


def select_dataset(key: str) -> None:
    """Ask the sidebar to select dataset `key` on the next run (its widget already exists now)."""
    st.session_state[PENDING_DATA] = key


def select_run(name: str) -> None:
    st.session_state[PENDING_RUN] = name


@st.cache_data(show_spinner=False, max_entries=64)
def _evaluate_cached(run_path: str, run_mtime: float, spec: str, data_mtime: float, split: str,
                     prefix_s: float) -> dict:
    from roastcore.evaluate import evaluate_run

    report = evaluate_run(run_path, load_profiles(spec), split=split, prefix_s=prefix_s)
    return report.to_dict()


def evaluate(run, spec: str, split: str = "val", prefix_s: float = 0.0) -> dict:
    """evaluate.evaluate_run(...).to_dict(), cached on run path + mtime and the dataset."""
    return _evaluate_cached(str(run.path), path_mtime(run.path), spec, _data_mtime(spec), split,
                            float(prefix_s))


def evaluation_ready(run, spec: str, split: str = "val") -> bool:
    """Whether the full evaluation of `run` on `spec` is already computed (instant to show)."""
    return inspect_run.evaluation_is_cached(run.path, load_profiles(spec), split)


def report_if_ready(run, spec: str, split: str = "val") -> dict | None:
    return evaluate(run, spec, split) if evaluation_ready(run, spec, split) else None


def run_evaluations(runs, spec: str, split: str = "val") -> dict:
    """evaluate.evaluate_run for each run with a progress bar (stage by stage); fills the
    on-disk cache that report_if_ready reads. Returns {name: report dict}; errors are shown."""
    from roastcore.evaluate import evaluate_run

    profiles = load_profiles(spec)
    bar = st.progress(0.0, text="Scoring…")
    out = {}
    for i, run in enumerate(runs):
        def progress(done, total, stage, i=i, run=run):
            bar.progress(min((i + done / max(total, 1)) / len(runs), 1.0),
                         text=f"Scoring {run.name}: {stage} ({i + 1}/{len(runs)})")
        try:
            out[run.name] = evaluate_run(run.path, profiles, split=split, progress=progress).to_dict()
        except Exception as exc:  # noqa: BLE001 - one broken run must not hide the others
            st.error(f"{run.name}: {plain_message(exc)}")
    bar.empty()
    return out


@st.cache_data(show_spinner=False, max_entries=64)
def _tf_cached(run_path: str, run_mtime: float, spec: str, data_mtime: float) -> dict:
    return inspect_run.teacher_forcing_result(_load_run_cached(run_path, run_mtime), load_profiles(spec))


def teacher_forcing(run, spec: str) -> dict:
    """Teacher-forcing result of `run` on its validation roasts (cached; about a second)."""
    return _tf_cached(str(run.path), path_mtime(run.path), spec, _data_mtime(spec))


@st.cache_data(show_spinner=False, max_entries=128)
def _generated_cached(run_path: str, run_mtime: float, spec: str, data_mtime: float,
                      profile_ids: tuple[str, ...], prefix_s: float) -> list:
    by_id = {p.id: p for p in load_profiles(spec)}
    profiles = [by_id[i] for i in profile_ids if i in by_id]
    loaded = _load_run_cached(run_path, run_mtime)
    return inspect_run.generate_curves(loaded, profiles, prefix_s=prefix_s)


def generated(run, spec: str, profile_ids, prefix_s: float = 0.0) -> list:
    """Free-running 1 s curves of `run` for the given profile ids (cached)."""
    return _generated_cached(str(run.path), path_mtime(run.path), spec, _data_mtime(spec),
                             tuple(profile_ids), float(prefix_s))


def validation_profiles(run, spec: str) -> tuple[list, str]:
    return inspect_run.validation_profiles(load_run(run), load_profiles(spec))


@st.cache_data(show_spinner=False, max_entries=64)
def _trace_cached(run_path: str, run_mtime: float, spec: str, profile_id: str, steps: int) -> dict:
    from roastcore.diagnose import step_trace

    loaded = _load_run_cached(run_path, run_mtime)
    profile = next(p for p in load_profiles(spec) if p.id == profile_id)
    return step_trace(loaded.model, profile, steps=steps).to_dict()


def step_trace(run, spec: str, profile_id: str, steps: int) -> dict:
    """diagnose.step_trace(...).to_dict() of `run` on one roast of `spec` (cached)."""
    return _trace_cached(str(run.path), path_mtime(run.path), spec, profile_id, int(steps))


@st.cache_resource(show_spinner=False)
def clean_leftovers_once(runs_dir: str) -> int:
    """roastcore.io.clean_leftovers once per server process and runs directory: staging and
    partial dataset folders of imports killed before this server started."""
    from roastcore.io import clean_leftovers

    return len(clean_leftovers(runs_dir))


def plotly(fig, key: str, filename: str = "roast_lab") -> None:
    """st.plotly_chart with the toolbar's PNG export (the camera button) configured."""
    st.plotly_chart(fig, key=key, config={
        "displaylogo": False,
        "toImageButtonOptions": {"format": "png", "filename": filename, "scale": 2},
    })


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
