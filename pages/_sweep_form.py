"""The Sweeps page's logic: the launch form (a small grid, seeds), its tables, the charts'
selections, and the jobs page's slot line.

No streamlit import: unit-tested in tests/test_dashboard_helpers.py. Reads roastcore.jobs'
sweep records (`sweep_runs`, `sweep_table`) as plain dicts and Sweep/Job objects by attribute.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from pages._format import finite_or_none, fmt_duration
from pages._setup_form import slider_options
from roastcore.jobs.sweep import METRICS, NOT_SCORED

# The settings the form offers a few values of (every other setting comes from the preset, or
# from Experiment setup when the form was opened from there).
DROPOUT_CHOICES = tuple(round(0.05 * i, 2) for i in range(13))  # the setup slider's 0..0.6
GRID_CHOICES: dict[str, tuple] = {"d_model": tuple(slider_options("d_model")),
                                  "lr": tuple(slider_options("lr")), "dropout": DROPOUT_CHOICES}
GRID_LABELS = {"d_model": "d_model values", "lr": "Learning rates", "dropout": "Dropout values"}
SWEEP_OPTIONS = ("epochs", "seed", "device")  # the sweep's own arguments, never grid keys
SUITE_SEEDS = 3  # the jobs page's one-click sweep: the recovery suite x this many seeds
# Session key: Experiment setup's values, handed to the Sweeps page. The form starts from the
# latest one (once per token, so the user's edits stand) until another is sent.
DRAFT = "_sweep_draft"


def draft_from_setup(preset: str, overrides: Mapping[str, Any], experiment,
                     device: str = "auto") -> dict[str, Any]:
    """What Experiment setup hands the Sweeps form: its preset, its changed settings and its
    experiment's epochs. A grid key the user had moved starts with that value; the rest stay
    fixed (seeds are the sweep's own)."""
    base = {k: v for k, v in overrides.items() if k not in SWEEP_OPTIONS}
    return {"presets": [preset], "base": base, "epochs": int(experiment.train.epochs),
            "device": device or "auto", "token": time.time_ns()}


def form_defaults(draft: Mapping[str, Any] | None,
                  default_presets: Sequence[str]) -> dict[str, Any]:
    """The form's starting values: from a setup draft, else the given presets as they are."""
    draft = draft or {}
    base = dict(draft.get("base") or {})
    return {"presets": list(draft.get("presets") or default_presets),
            "grid": {k: [base.pop(k)] if k in base else [] for k in GRID_CHOICES},
            "base": base, "epochs": draft.get("epochs"), "device": draft.get("device") or "auto"}


def sweep_request(presets: Sequence[str], base: Mapping[str, Any],
                  grid_choices: Mapping[str, Sequence[Any]], seeds: int, epochs: int | None,
                  device: str = "auto") -> dict[str, Any]:
    """launch_sweep's keyword arguments. Fixed settings (`base`) ride as one-value grid keys;
    a grid key with no values chosen keeps each preset's own setting."""
    grid: dict[str, list[Any]] = {k: [v] for k, v in base.items() if k not in SWEEP_OPTIONS}
    for key, values in grid_choices.items():
        if values:
            grid[key] = sorted(dict.fromkeys(values))
    return {"presets": list(presets), "grid": grid, "seeds": int(seeds),
            "epochs": None if epochs is None else int(epochs), "device": device or "auto"}


def sweep_name(request: Mapping[str, Any]) -> str:
    """'micro_model, tiny_model x lr x 2 seeds (step_s=5.0)': the grid keys that vary, then
    the settings fixed for every run."""
    grid, n = request["grid"], int(request["seeds"])
    fixed = ", ".join(f"{k}={v[0]}" for k, v in grid.items() if len(v) == 1)
    varying = "".join(f" x {k}" for k, v in grid.items() if len(v) > 1)
    return (", ".join(request["presets"]) + varying
            + f" x {n} seed{'s' * (n > 1)}" + (f" ({fixed})" if fixed else ""))


def job_count(request: Mapping[str, Any]) -> int:
    """How many jobs a request launches: presets x settings x seeds."""
    settings = math.prod(len(v) for v in request["grid"].values()) if request["grid"] else 1
    return len(request["presets"]) * settings * int(request["seeds"])


def launch_message(sweep) -> str:
    return f"Sweep **{sweep.id}** queued: {len(sweep.jobs)} jobs ({sweep.name})."


def launch_suite(runner, presets: Sequence[str], data: str,
                 seeds: int = SUITE_SEEDS) -> tuple[bool, str]:
    """The jobs page's one click: the presets x `seeds` as one sweep. (launched, message)."""
    from roastcore.jobs import JobError, SweepTooLarge, launch_sweep  # only when clicked

    try:
        return True, launch_message(launch_sweep(runner, presets, data, seeds=seeds))
    except SweepTooLarge as exc:
        return False, f"{str(exc).split(';')[0]}: launch it on the Sweeps page ('Launch anyway')."
    except JobError as exc:
        return False, str(exc)


def sweep_label(sweep) -> str:
    """The sweep picker's entry: name · id · state (counts)."""
    counts = ", ".join(f"{n} {state}" for state, n in sorted(sweep.counts.items()))
    return f"{sweep.name} · {sweep.id} · {sweep.state} ({counts})"


def sweep_caption(sweep) -> str:
    """What a sweep ran on: backend, data, epochs and seeds."""
    spec = sweep.spec
    return (f"Backend **{sweep.backend}** · data `{spec.get('data')}` · epochs "
            f"{spec.get('epochs') or 'each preset’s own'} · seeds {spec.get('seeds')}")


def fixed_text(base: Mapping[str, Any]) -> str:
    return "Fixed from Experiment setup: " + ", ".join(f"{k}={v}" for k, v in base.items())


def sweep_signature(sweep) -> tuple:
    """(id, state) of its jobs: when it changes, the page reruns in full."""
    return tuple(sorted((j.id, j.state) for j in sweep.jobs))


# ---------------------------------------------------------------------------- selections
def selected_job_ids(selection: Any, param: str) -> list[str]:
    """The job ids of an st.altair_chart selection state ({param: [{"job_id": ...}, ...]});
    `param` is the chart's selection (sweep_charts.SELECTION)."""
    try:
        points = selection[param]
    except (KeyError, TypeError, IndexError):
        return []
    if not isinstance(points, Sequence) or isinstance(points, str):
        return []
    ids = [p.get("job_id") for p in points if isinstance(p, Mapping)]
    return list(dict.fromkeys(str(i) for i in ids if i))


def chart_selection(state: Mapping[str, Any], keys: Mapping[str, str], last: str | None,
                    param: str) -> list[str]:
    """The selected job ids, from the session state of the charts `keys` ({chart: widget key})
    as Streamlit keeps them ({"selection": {param: [...]}}), following the chart clicked
    `last`."""
    return pick_selection({chart: selected_job_ids((state.get(key) or {}).get("selection"), param)
                           for chart, key in keys.items()}, last)


def pick_selection(selections: Mapping[str, Sequence[str]], last: str | None) -> list[str]:
    """The runs the page follows: those of the chart clicked last, while it has any; else those
    of any chart that still holds a selection."""
    if last in selections and selections[last]:
        return list(selections[last])
    return list(dict.fromkeys(i for ids in selections.values() for i in ids))


# ---------------------------------------------------------------------------- tables
def _pm(mean: Any, std: Any, digits: int) -> str | None:
    m = finite_or_none(mean)
    if m is None:
        return None
    s = finite_or_none(std)
    return f"{m:.{digits}f}" + ("" if s is None else f" ± {s:.{digits}f}")


def _sortable(value: Any) -> tuple:
    number = finite_or_none(value) if not isinstance(value, (bool, str)) else None
    return (0, number, "") if number is not None else (1, 0.0, str(value))


def results_frame(table: Sequence[Mapping[str, Any]], runs: Sequence[Mapping[str, Any]],
                  selected: Sequence[str] = (), presets: Sequence[str] = ()) -> pd.DataFrame:
    """sweep_table rows as text: per preset/setting the mean ± std over seeds of each figure
    (METRICS' labels, each beside its baseline), in the order of `presets` (the sweep's) and
    of the settings' values. With `selected` job ids, only their settings."""
    keep = {(r["preset"], r["setting"]) for r in runs if r["job_id"] in set(selected)}
    presets = list(dict.fromkeys([*presets, *(r["preset"] for r in runs)]))
    grids = {(r["preset"], r["setting"]): r["grid"] or {} for r in runs}

    def place(row: Mapping[str, Any]) -> tuple:
        grid = grids.get((row["preset"], row["setting"]), {})
        return (presets.index(row["preset"]) if row["preset"] in presets else len(presets),
                [_sortable(grid[k]) for k in sorted(grid)])

    rows = []
    for row in sorted(table, key=place):
        if selected and (row["preset"], row["setting"]) not in keep:
            continue
        out: dict[str, Any] = {"preset": row["preset"], "setting": row["setting"] or "–",
                               "scored": f"{row['n_scored']}/{row['n_runs']}"}
        for key, label in METRICS:
            digits = 0 if key in ("physics_valid_pct", "time_s") else 2
            out[label] = _pm(row.get(f"{key}_mean"), row.get(f"{key}_std"), digits)
        out["verdicts"] = row["status"] or ", ".join(row["verdicts"]) or "–"
        rows.append(out)
    cols = ["preset", "setting", "scored", *(label for _, label in METRICS), "verdicts"]
    return pd.DataFrame(rows, columns=cols)


def runs_frame(runs: Sequence[Mapping[str, Any]], selected: Sequence[str] = ()) -> pd.DataFrame:
    """One row per job of the sweep (only `selected` ones when given): its state, setting,
    seed, time, the two MAEs and the verdict, or why it has none."""
    rows = []
    for r in runs:
        if selected and r["job_id"] not in set(selected):
            continue
        scores = r["scores"] or {}
        note = r["verdict"] or (r["reason"] or "").split("\n")[0][:120] or (
            NOT_SCORED if r["state"] not in ("queued", "running") else "")
        rows.append({"job": r["job_id"], "state": r["state"], "preset": r["preset"],
                     "setting": r["setting"] or "–", "seed": r["seed"],
                     "time": fmt_duration(r["time_s"]),
                     "TF MAE °F": finite_or_none(scores.get("tf_mae_f")),
                     "free-run MAE °F": finite_or_none(scores.get("free_mae_f")),
                     "verdict / reason": note})
    cols = ["job", "state", "preset", "setting", "seed", "time", "TF MAE °F", "free-run MAE °F",
            "verdict / reason"]
    df = pd.DataFrame(rows, columns=cols)
    for col in ("TF MAE °F", "free-run MAE °F"):
        df[col] = pd.to_numeric(df[col], errors="coerce")  # None -> a blank cell
    return df


def history_records(runs: Sequence[Mapping[str, Any]],
                    read_metrics: Callable[[str], Sequence[Mapping[str, Any]]],
                    key: str = "val_tf_mae_f") -> list[dict[str, Any]]:
    """Learning-curve rows for sweep_charts.curves_chart: one per run and epoch with a finite
    `key` (metrics.jsonl's validation TF MAE, °F), carrying the run's grid values."""
    out = []
    for r in runs:
        if r["state"] == "queued":
            continue
        for m in read_metrics(r["run_dir"]):
            value = finite_or_none(m.get(key))
            if m.get("epoch") is None or value is None or value <= 0:
                continue
            out.append({"job_id": r["job_id"], "preset": r["preset"], "seed": r["seed"],
                        "epoch": m["epoch"], "value": value,
                        **{f"grid.{k}": v for k, v in (r["grid"] or {}).items()}})
    return out


# ---------------------------------------------------------------------------- slots
def slots_text(usage: Mapping[str, Any]) -> str:
    """JobRunner.slot_usage() in one line: CPU threads and each GPU in use and free, jobs
    running and queued, and a Ray cluster's figures when jobs go there."""
    cpu = usage.get("cpu") or {}
    bits = [f"CPU threads: {cpu.get('threads_used', 0)} of {cpu.get('threads_total', 0)} in use, "
            f"{cpu.get('threads_free', 0)} free"]
    for gpu in usage.get("gpus") or ():
        mem = ""
        if gpu.get("mem_total_mb"):
            mem = f", ~{gpu['mem_est_mb'] / 1024:.1f} of {gpu['mem_total_mb'] / 1024:.0f} GB"
        bits.append(f"GPU {gpu['index']}: {gpu['jobs']} of {gpu['max_jobs']} jobs{mem}")
    bits.append(f"{usage.get('running', 0)} running, {usage.get('queued', 0)} queued")
    cluster = usage.get("cluster")
    if cluster:
        ray = f"Ray at {cluster.get('address')}: {cluster.get('running', 0)} running, " \
              f"{cluster.get('pending', 0)} pending"
        if cluster.get("error"):
            ray += f" (cannot read its capacity: {str(cluster['error']).splitlines()[0]})"
        elif cluster.get("cpus") is not None:
            ray += f", {cluster.get('cpus_used', 0)} of {cluster['cpus']} CPUs"
        bits.append(ray)
    return "Slots · " + " · ".join(bits)
