"""The "Roast in progress" page's logic: what to fit on, fitting and scoring beside the page, one
frame of a replay, and the methods table. No streamlit import (tests/test_roast_view.py).

A replay cuts a roast at a moment, forecasts the rest with each fitted method
(`roastcore.forecast`) and draws it with `plotting.forecast_figure`. Fitting a method takes
seconds to a minute (the prefix kNN tunes and cross-calibrates itself), so it runs once per
method, training roasts and run, in a background thread (`Task`) the page caches; every frame
then only calls `forecast` (milliseconds; ~200 ms for a model). The methods table is
`forecast_eval` (CPU-minutes): read from `RUNS/forecast_eval/*.json` when stored, else computed
on a small sample in a thread, or in full by a detached `python -m roastcore forecast-eval`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from roastcore.forecast import MIN_AT_S, MIN_REST_S, Forecast, Forecaster, Horizon, make_request
from roastcore.forecast_eval import forecast_eval, make_forecaster
from roastcore.fsutil import atomic_write_json
from roastcore.plotting import fmt_mmss

log = logging.getLogger(__name__)

METHOD_HELP = {
    "prefix_knn": "past roasts matched on this roast's first minutes, continued and averaged",
    "linear_projection": "Artisan's projection line: the last 30 s rate of rise, straight on",
    "ror_decay": "the rate of rise decaying exponentially, as fitted on the last minutes",
    "model": ("the checkpoint's model generating from the real prefix; a run of the preset 'forecast' "
              "corrects the prefix kNN, as it was trained to (~200 ms a frame)"),
    "model_prefix_prior": "the checkpoint's prior model correcting the prefix kNN (~200 ms a frame)",
}
DEFAULT_METHODS = ("prefix_knn", "linear_projection")  # milliseconds a frame: a smooth replay
SLOW_METHODS = ("model", "model_prefix_prior")  # a generation per frame: a slower replay
STEP_S = 5  # the time slider's step
DEFAULT_AT_S = 240  # where a replay starts: 4 minutes, the reference cut
SPEEDS = (10, 30, 60)  # roast seconds per wall second while playing
TICK_S = 0.5  # wall seconds between frames while playing
POLL_S = 2.0  # how often the page looks whether a fit, a sample or the background table is done
MIN_TRAIN_GROUPS = 5  # fewer products than this: fit on other roasts by default
SOURCES = {"dataset": "this dataset (the replayed roast's product left out)",
           "run": "the checkpoint's training roasts",
           "builtin": "the built-in simulator set"}
HORIZONS = {"target": "a temperature", "drop_time": "a time", "expected_end": "own end"}
EVAL_DIR = "forecast_eval"
EVAL_CUTS_S = tuple(range(60, 601, 60))  # the page's table: a cut within 30 s of most moments
SAMPLE_ROASTS = 16
SAMPLE_FOLDS = 3


# ---------------------------------------------------------------------------- choices
def available_methods(has_run: bool, has_prior: bool) -> list[str]:
    """Methods the page offers: the non-learned three, the run's model, its prefix-prior variant."""
    out = ["prefix_knn", "linear_projection", "ror_decay"]
    if has_run:
        out.append("model")
    if has_prior:
        out.append("model_prefix_prior")
    return out


def training_sources(n_groups: int, has_library: bool, is_builtin: bool) -> list[str]:
    """Where the methods learn from, the default first: the dataset itself when it holds enough
    products, else the run's training roasts (prior models carry them), else the built-in set."""
    others = (["run"] if has_library else []) + ([] if is_builtin else ["builtin"])
    return ["dataset", *others] if n_groups >= MIN_TRAIN_GROUPS or not others else [*others, "dataset"]


def slider_times(duration_s: float) -> list[int]:
    """Moments a replay can stop at: from MIN_AT_S (one RoR window) to MIN_REST_S before DROP."""
    last = int(duration_s) - MIN_REST_S
    return list(range(MIN_AT_S, last + 1, STEP_S)) if last >= MIN_AT_S else []


def default_time(times: Sequence[int]) -> int:
    return min(times, key=lambda t: abs(t - DEFAULT_AT_S))


def advance(t: int, times: Sequence[int], speed: int, tick_s: float = TICK_S) -> tuple[int, bool]:
    """The next moment of a replay playing at `speed`x (on the slider's grid); True when at the end."""
    target = t + speed * tick_s
    nxt = next((x for x in times if x >= target), times[-1])
    return nxt, nxt >= times[-1]


def default_drop_f(profile) -> float:
    """The roast's own target drop temperature, else the temperature it was dropped at."""
    value = profile.meta.target_finish_f or profile.finish_f
    return float(np.clip(round(value), 150.0, 500.0))


def horizon(kind: str, value: float | None) -> Horizon:
    if kind == "target":
        return Horizon.target(float(value))
    if kind == "drop_time":
        return Horizon.drop_at(float(value))
    return Horizon.expected_end()


# ---------------------------------------------------------------------------- fitting
class Task:
    """`fn()` run once in a daemon thread. Streamlit reruns its scripts and must not wait for
    minutes, so fits and samples run beside it and the page polls `done`."""

    def __init__(self, fn: Callable[[], object], label: str):
        self.label = label
        self.result = None
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self.finished: float | None = None
        self._fn = fn
        self._thread = threading.Thread(target=self._run, name=f"roast-view: {label}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result = self._fn()
        except Exception as exc:  # noqa: BLE001 - shown on the page, not raised in a thread
            log.exception("%s failed", self.label)
            self.error = exc
        finally:
            self.finished = time.monotonic()

    @property
    def done(self) -> bool:
        return self.finished is not None

    def wait(self, timeout_s: float) -> bool:
        self._thread.join(max(timeout_s, 0.0))
        return self.done

    @property
    def elapsed_s(self) -> float:
        return (self.finished or time.monotonic()) - self.started


def fit_forecaster(method: str, train: Sequence, model=None) -> Forecaster:
    """`make_forecaster(method, model).fit(train)`: the point forecaster and its calibrated band."""
    return make_forecaster(method, model).fit(list(train))


# ---------------------------------------------------------------------------- one frame
@dataclass
class Frame:
    """A roast cut at `at_s`: each method's forecast, its cost and any error."""

    at_s: int
    forecasts: dict[str, Forecast] = field(default_factory=dict)
    ms: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def exclusion(fc: Forecaster, profile) -> str | None:
    """What the method's library must leave out: the replayed roast's product (it may be among
    the training roasts); the run's model says itself which roasts its prior holds."""
    return fc.replay_exclusion(profile, profile.group)


def frame(fitted: Mapping[str, Forecaster], profile, at_s: float, hz: Horizon) -> Frame:
    """Forecast `profile` cut at `at_s` with every fitted method (nothing after the cut is seen)."""
    out = Frame(at_s=int(at_s))
    for method, fc in fitted.items():
        started = time.perf_counter()
        try:
            req = make_request(profile, at_s=at_s, exclude_group=exclusion(fc, profile))
            out.forecasts[method] = fc.forecast_requests([req], [hz])[0]
        except ValueError as exc:  # a horizon behind the cut, a roast too short: said, not raised
            out.errors[method] = str(exc)
        out.ms[method] = 1000.0 * (time.perf_counter() - started)
    return out


def axes(profile) -> tuple[float, list[float]]:
    """Fixed axes for a whole replay (x to 1.3x the roast, y around its curve), so frames do not jump."""
    bt = np.asarray(profile.bt, dtype=float)
    return float(profile.duration_s) * 1.3, [float(bt.min()) - 10.0, float(bt.max()) + 60.0]


def _when(t, lo, hi) -> str:
    if t is None:
        return "not within the horizon"
    return f"{fmt_mmss(t)} ({'?' if lo is None else fmt_mmss(lo)}–{'later' if hi is None else fmt_mmss(hi)})"


FRAME_HELP = {
    "method": "the forecasting method (roastcore.forecast); 'real' is what happened",
    "FCs": "predicted first crack, m:ss from CHARGE, with its 80% band",
    "DROP": "predicted DROP (the target temperature reached, or the forecast's end), with its band",
    "BT at DROP °F": "the forecast at its end, with its 80% band",
    "physics": "physics.check_curve on the observed part plus the forecast",
    "ms": "time this forecast took on the server",
}


def frame_rows(fr: Frame, profile) -> list[dict]:
    """The frame as a table: predicted FCs, DROP and the temperature there, per method; then real."""
    rows = []
    for method, f in fr.forecasts.items():
        fcs = "already happened" if f.fcs_happened else _when(f.fcs_s, f.fcs_lo_s, f.fcs_hi_s)
        if f.horizon == "target":
            drop = _when(*(None if x is None else f.at_s + x for x in
                           (f.time_to_target_s, f.time_to_target_lo_s, f.time_to_target_hi_s)))
        else:
            drop = fmt_mmss(f.end_s) + (" (given)" if f.horizon == "drop_time" else "")
        end = (f"{f.bt_f[-1]:.0f} ({f.lo_f[-1]:.0f}–{f.hi_f[-1]:.0f})" if f.bt_f.size else "–")
        rows.append({"method": method, "FCs": fcs, "DROP": drop, "BT at DROP °F": end,
                     "physics": "; ".join(f.physics_failures) or "ok", "ms": round(fr.ms[method], 1)})
    for method, err in fr.errors.items():
        rows.append({"method": method, "FCs": "–", "DROP": "–", "BT at DROP °F": "–", "physics": err,
                     "ms": round(fr.ms[method], 1)})
    fcs_real = profile.event_time("FCs")
    rows.append({"method": "real", "FCs": "not marked" if fcs_real is None else fmt_mmss(fcs_real),
                 "DROP": fmt_mmss(profile.duration_s), "BT at DROP °F": f"{profile.finish_f:.0f}",
                 "physics": "", "ms": None})
    return rows


# ---------------------------------------------------------------------------- the methods table
TABLE_HELP = {
    "method": "the forecasting method",
    "cut": "where each roast was cut (m:ss from CHARGE)",
    "roasts": "roasts scored at this cut (at least 30 s left after it)",
    "curve MAE °F": "mean absolute error of the forecast over the unseen rest, DROP time given",
    "finish MAE °F": "|forecast at the real DROP time - real drop temperature|",
    "DROP time MAE s": "|when the forecast reaches the real drop temperature - real DROP|, capped at 120 s",
    "FCs time MAE s": "|predicted - real first crack| on roasts whose FCs is marked and after the cut",
    "coverage %": "share of the unseen points inside the 80% band (about 80 is calibrated)",
    "band width °F": "mean width of the 80% band",
    "physics valid %": "share of forecasts passing the physics checks",
}


def _r(x, digits: int = 1):
    return None if x is None else round(float(x), digits)


def nearest_cut(cuts: Sequence[int], at_s: float) -> int | None:
    return min(cuts, key=lambda c: (abs(c - at_s), c)) if cuts else None


def methods_table(result: Mapping, at_s: float) -> tuple[int | None, list[dict]]:
    """forecast_eval's rows at the stored cut nearest `at_s`: (that cut, table rows)."""
    rows = list(result.get("results") or [])
    cut = nearest_cut(sorted({int(r["cut_s"]) for r in rows}), at_s)
    table = [{"method": r["method"], "cut": fmt_mmss(r["cut_s"]), "roasts": r["n_profiles"],
              "curve MAE °F": _r(r["mae_f"], 2), "finish MAE °F": _r(r["finish_mae_f"], 2),
              "DROP time MAE s": _r(r["drop_time_mae_s"]), "FCs time MAE s": _r(r.get("fcs_time_mae_s")),
              "coverage %": _r(r["coverage_pct"]), "band width °F": _r(r["band_width_f"]),
              "physics valid %": _r(r.get("physics_valid_pct"))}
             for r in rows if int(r["cut_s"]) == cut]
    return cut, sorted(table, key=lambda row: (row["curve MAE °F"] is None, row["curve MAE °F"]))


def eval_dir(runs_dir) -> Path:
    return Path(runs_dir) / EVAL_DIR


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "x"


def table_stem(data_key: str, run_name: str | None) -> str:
    """File stem of the page's stored table for a dataset and run (`RUNS/forecast_eval/<stem>.json`)."""
    return f"{_slug(data_key)}__{_slug(run_name) if run_name else 'no-run'}"


def _same_path(a, b) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, TypeError, ValueError):
        return False


def stored_tables(runs_dir, spec: str, run_path=None) -> list[tuple[Path, dict]]:
    """forecast-eval JSON files under RUNS/forecast_eval/ scored on `spec`: the selected run's
    first, then newest first. A file that does not parse is skipped (and logged)."""
    found = []
    folder = eval_dir(runs_dir)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if path.name.endswith(".job.json"):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("skipping forecast table %s: %s", path, exc)
            continue
        if isinstance(data, dict) and data.get("data") == spec and isinstance(data.get("results"), list):
            found.append((path, data))

    def rank(item):
        path, data = item
        mine = run_path is not None and data.get("checkpoint") and _same_path(data["checkpoint"], run_path)
        return (not mine, -path.stat().st_mtime)

    return sorted(found, key=rank)


def table_caption(name: str, result: Mapping, cut: int | None, at_s: float) -> str:
    run = result.get("checkpoint")
    bits = [f"`{name}`", f"{result.get('n_folds', '?')}-fold grouped CV",
            f"scored: {result.get('split', 'all')}"] + ([f"run `{Path(run).name}`"] if run else [])
    if result.get("sample"):
        bits.insert(1, f"a sample of {result['sample']} roasts")
    near = "" if cut is None or cut == int(at_s) else f" (nearest scored cut to {fmt_mmss(at_s)})"
    notes = [n for n in result.get("notes") or [] if isinstance(n, str)]
    return f"At {fmt_mmss(cut)}{near}; " + ", ".join(bits + notes) + "."


def sample_profiles(profiles: Sequence, n: int = SAMPLE_ROASTS, seed: int = 0) -> list:
    """`n` roasts of the dataset (all when fewer), drawn once per seed, in dataset order."""
    profiles = list(profiles)
    if len(profiles) <= n:
        return profiles
    idx = np.sort(np.random.default_rng(seed).choice(len(profiles), n, replace=False))
    return [profiles[i] for i in idx]


def run_sample(methods: Sequence[str], profiles: Sequence, model=None, run_path=None,
               n: int = SAMPLE_ROASTS) -> dict:
    """forecast_eval on a sample of the dataset (SAMPLE_FOLDS grouped folds, EVAL_CUTS_S)."""
    sample = sample_profiles(profiles, n)
    if len({p.group for p in sample}) < 2:
        raise ValueError("the methods table needs roasts of at least 2 products")
    model = model if set(methods) & set(SLOW_METHODS) else None
    out = forecast_eval(list(methods), sample, cuts=EVAL_CUTS_S, folds=SAMPLE_FOLDS, model=model)
    out.update(sample=len(sample), split="every sampled roast",
               checkpoint=None if model is None else str(run_path), notes=[])
    library = getattr(model, "prior_library", None)
    if library is not None:
        held = sum(bool(library.holds(p)) for p in sample)
        if held:  # its weights saw them: the model's figures are optimistic there
            out["notes"].append(f"{held} of the sampled roasts trained the run's model")
    return out


# ---------------------------------------------------------------------------- the full table, in the background
def eval_argv(spec: str, out: Path, methods: Sequence[str], run_path=None) -> list[str]:
    argv = [sys.executable, "-m", "roastcore", "forecast-eval", "--data", spec,
            "--cuts", ",".join(str(c) for c in EVAL_CUTS_S), "--methods", ",".join(methods),
            "--json", "--out", str(out)]
    return argv + (["--checkpoint", str(run_path)] if run_path is not None else [])


def eval_command(spec: str, out: Path, methods: Sequence[str], run_path=None) -> str:
    """The same, for a terminal."""
    return " ".join(["python"] + eval_argv(spec, out, methods, run_path)[1:])


def start_eval_job(runs_dir, stem: str, spec: str, methods: Sequence[str], run_path=None) -> dict:
    """Start `python -m roastcore forecast-eval ... --out RUNS/forecast_eval/<stem>.json` detached
    (it outlives the page); its pid and start time go to `<stem>.job.json`."""
    # deferred: the jobs package is only needed when someone starts a table
    from roastcore.jobs import process_start_time
    from roastcore.jobs.backends import start_detached

    status = eval_job_status(runs_dir, stem)
    if status and status["state"] == "running":
        return status
    folder = eval_dir(runs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    repo = str(Path(__file__).resolve().parents[1])  # the subprocess imports this clone's roastcore
    env = {"PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    argv = eval_argv(spec, folder / f"{stem}.json", methods, run_path)
    log_path = folder / f"{stem}.log"
    log_path.unlink(missing_ok=True)
    proc = start_detached(argv, log_path, env)
    atomic_write_json(folder / f"{stem}.job.json", {"pid": proc.pid, "start": process_start_time(proc.pid),
                                                    "started_at": time.time(), "argv": argv})
    return eval_job_status(runs_dir, stem) or {}


def eval_job_status(runs_dir, stem: str) -> dict | None:
    """The background table's state: running, done or failed (with the log's last lines); None
    when none was started here."""
    # deferred: as above
    from roastcore.jobs import pid_alive

    folder = eval_dir(runs_dir)
    marker = folder / f"{stem}.job.json"
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    out, log_path = folder / f"{stem}.json", folder / f"{stem}.log"
    started = float(info.get("started_at", 0.0))
    status = {"started_at": started, "log": str(log_path)}
    if out.is_file() and out.stat().st_mtime >= started - 1.0:
        return {**status, "state": "done"}
    if pid_alive(int(info["pid"]), info.get("start")):
        return {**status, "state": "running", "elapsed_s": time.time() - started}
    try:
        tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
    except OSError:
        tail = []
    return {**status, "state": "failed", "reason": " | ".join(tail) or "no output"}
