"""Benchmark: evaluating tiny_model on 30 profiles (teacher forcing + free running) on CPU.

    python benchmarks/bench_evaluate.py [--data SOURCE] [--n 30] [--threads 2] [--repeat 3]

Target: under 10 s on 2 CPU cores. The weights are untrained (timing does not depend on them);
the architecture is experiments.PRESETS['tiny_model'] when that preset exists. Also times the
three free-running baselines and the physics checks on the same profiles, and, with
--cv, the 5-fold grouped baseline cross-validation recorded in docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from roastcore.architectures import build_model  # noqa: E402
from roastcore.evaluate import teacher_forcing  # noqa: E402
from roastcore.features import FeatureEncoder, TemperatureScaler  # noqa: E402
from roastcore.generate import ModelGenerator  # noqa: E402
from roastcore.metrics import free_run_metrics, score_baselines  # noqa: E402
from roastcore.model import ModelConfig  # noqa: E402


def tiny_config() -> tuple[ModelConfig, str]:
    try:
        from roastcore.experiments import PRESETS

        return PRESETS["tiny_model"].experiment.model, "experiments.PRESETS['tiny_model']"
    except (ImportError, KeyError, AttributeError, TypeError):
        # Until the preset exists: a small transformer at a 5 s step.
        cfg = ModelConfig(d_model=64, n_layers=2, n_heads=4, d_ff=128, embed_dim=8, step_s=5.0, max_len=400)
        return cfg, "fallback ModelConfig(d_model=64, n_layers=2, step_s=5)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="synthetic:60")
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cv", action="store_true", help="also time grouped 5-fold baseline CV (score_baselines) on --data")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from roastcore.io import load_source

    profiles = load_source(args.data).profiles
    val = profiles[: args.n]
    train = profiles[args.n:] or profiles
    cfg, origin = tiny_config()
    torch.manual_seed(0)
    model = build_model(cfg, FeatureEncoder.fit(train), TemperatureScaler.fit(train, cfg.step_s, cfg.normalize))
    model.eval()

    timings = {"teacher_forcing_s": [], "free_running_s": [], "total_s": []}
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        teacher_forcing(model, val, model.encoder, cfg.step_s, max_len=cfg.max_len)
        t1 = time.perf_counter()
        curves = ModelGenerator(model).generate_many(val)
        free_run_metrics(val, curves)
        t2 = time.perf_counter()
        timings["teacher_forcing_s"].append(t1 - t0)
        timings["free_running_s"].append(t2 - t1)
        timings["total_s"].append(t2 - t0)
    t0 = time.perf_counter()
    score_baselines(train, val)
    baselines_s = time.perf_counter() - t0
    result = {
        "data": args.data, "n_profiles": len(val), "model": origin, "step_s": cfg.step_s,
        "threads": args.threads, "cpu": platform.processor() or platform.machine(),
        "teacher_forcing_s": min(timings["teacher_forcing_s"]),
        "free_running_s": min(timings["free_running_s"]),
        "total_s": min(timings["total_s"]),
        "baselines_s": baselines_s,
    }
    if args.cv:
        t0 = time.perf_counter()
        cv = score_baselines(None, profiles, folds=5, seed=0, physics=False)
        result["cv_s"] = time.perf_counter() - t0
        result["cv_mae_f"] = {name: round(v["mae_f"], 2) for name, v in cv.items()}
        result["cv_rmse_f"] = {name: round(v["rmse_f"], 2) for name, v in cv.items()}
    print(json.dumps(result, indent=2))
    return 0 if result["total_s"] < 10.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
