"""Forecast speed: one forecast of one roast per method (what the replay page asks per frame).

    python benchmarks/bench_forecast.py [--data ../shared/data/onyx-dev] [--checkpoint checkpoints/demo_recommended]
                                        [--threads 2] [--repeats 20] [--at 240] [--methods model,...]

Fits each method on every roast but one (fitting and calibration are timed once, apart), then
times `forecast` on the held-out roast for each horizon kind: median and best of --repeats.
The model's memo is cleared before every call so each one really generates.

Then the "Roast in progress" page's frames: the held-out roast replayed from 0:30 to its end in
30 s steps with the page's default horizon (its drop temperature), each frame being what the
page computes: `pages/_roast_view.frame` (the forecasts, the replayed roast's product left out),
the frame table, `plotting.forecast_figure` and its spec and Arrow datasets as
st.vega_lite_chart makes them.
Timed for the page's default methods (prefix_knn and Artisan's line), prefix_knn alone and with
the model: median and worst frame.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from roastcore.baselines import curve_1s
from roastcore.forecast import Horizon
from roastcore.forecast_eval import make_forecaster
from roastcore.forecast_model import ModelForecaster
from roastcore.io import load_source

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data" / "onyx-dev"
    parser.add_argument("--data", default=str(default_data) if default_data.is_dir() else "synthetic:120")
    parser.add_argument("--checkpoint", default="checkpoints/demo_recommended")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--at", type=int, default=240)
    parser.add_argument("--methods", default="", help="comma-separated subset (default: all); "
                        "e.g. `model` alone to compare two commits quickly")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    profiles = load_source(args.data).profiles
    roast, train = profiles[0], profiles[1:]
    real = curve_1s(roast)
    horizons = {"drop_time": Horizon.drop_at(real.size - 1), "target": Horizon.target(float(real[-1])),
                "expected_end": Horizon.expected_end()}
    methods = ["linear_projection", "ror_decay", "prefix_knn", "knn_residual"]
    model = None
    if args.checkpoint and (Path(args.checkpoint) / "model.safetensors").is_file():
        from roastcore.checkpoints import load_run  # only when a run is given

        model = load_run(args.checkpoint).model
        methods.append("model")
    if args.methods:
        methods = [m for m in methods if m in args.methods.split(",")]
    results = {"data": args.data, "n_train": len(train), "threads": args.threads, "at_s": args.at,
               "roast_s": real.size - 1, "methods": {}}
    fitted = {}
    for name in methods:
        started = time.perf_counter()
        fc = fitted[name] = make_forecaster(name, model).fit(train)
        fit_s = time.perf_counter() - started
        entry = {"fit_and_calibrate_s": round(fit_s, 2)}
        for kind, horizon in horizons.items():
            times = []
            for _ in range(args.repeats):
                if isinstance(fc, ModelForecaster):
                    fc._memo.clear()
                t0 = time.perf_counter()
                fc.forecast(roast, at_s=args.at, horizon=horizon)
                times.append(time.perf_counter() - t0)
            entry[f"{kind}_ms_median"] = round(1000 * statistics.median(times), 1)
            entry[f"{kind}_ms_best"] = round(1000 * min(times), 1)
        results["methods"][name] = entry
        print(f"{name:<18} fit+calibrate {fit_s:6.2f} s | one forecast (median/best ms): "
              + ", ".join(f"{k} {entry[f'{k}_ms_median']}/{entry[f'{k}_ms_best']}" for k in horizons), flush=True)
    results["page_frames"] = page_frames(fitted, roast)
    print(json.dumps(results))


def page_frames(fitted: dict, roast) -> dict:
    """Per-frame cost of the replay page (see the module docstring)."""
    if str(REPO) not in sys.path:  # the page's helpers live in pages/, beside roastcore
        sys.path.insert(0, str(REPO))
    from streamlit.elements.vega_charts import _marshall_chart_data, _prepare_vega_lite_spec
    from streamlit.proto.VegaLiteChart_pb2 import VegaLiteChart

    from pages import _roast_view as view
    from roastcore.plotting import forecast_figure

    sets = {"prefix_knn + linear_projection (page default)": ["prefix_knn", "linear_projection"],
            "prefix_knn": ["prefix_knn"]}
    if "model" in fitted:
        sets["prefix_knn + model"] = ["prefix_knn", "model"]
    sets = {label: names for label, names in sets.items() if all(n in fitted for n in names)}
    horizon = view.horizon("target", view.default_drop_f(roast))
    moments = view.slider_times(roast.duration_s)[::6]
    x_max, y_range = view.axes(roast)
    out = {}
    for label, names in sets.items():
        chosen = {n: fitted[n] for n in names}
        times = []
        for at in moments:
            for fc in chosen.values():
                if hasattr(fc, "_memo"):
                    fc._memo.clear()  # a new moment always generates afresh on the page
            t0 = time.perf_counter()
            fr = view.frame(chosen, roast, at, horizon)
            view.frame_rows(fr, roast)
            spec = forecast_figure(roast, at, fr.forecasts, x_max=x_max, y_range=y_range)
            # what st.vega_lite_chart does with a spec (streamlit/elements/vega_charts.py)
            spec = _prepare_vega_lite_spec(spec, True)
            _marshall_chart_data(VegaLiteChart(), spec)
            json.dumps(spec)
            times.append(time.perf_counter() - t0)
        out[label] = {"frames": len(times), "ms_median": round(1000 * statistics.median(times), 1),
                      "ms_worst": round(1000 * max(times), 1)}
        print(f"page frame, {label:<46} median {out[label]['ms_median']} ms, worst {out[label]['ms_worst']} ms "
              f"over {len(times)} moments", flush=True)
    return out


if __name__ == "__main__":
    main()
