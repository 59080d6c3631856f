"""Benchmark: the built-in simulator, generate_dataset(n=200) on one CPU core.

    python benchmarks/bench_simulate.py [--n 200] [--repeat 3] [--calibration ../shared/data/onyx-dev]

Target: 200 profiles in under 5 s (exit code 1 if over). Numpy is pinned to one thread (the
integration is elementwise, so more threads would not help anyway). Also times one roast on
its own (simulate_profile), which pays the per-step numpy overhead without the vectorisation,
and, with --calibration, prints the calibration table against onyx-dev as Markdown (the one
in docs/simulator.md).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from roastcore.simulate import (  # noqa: E402
    RoastParams,
    calibration_markdown,
    calibration_table,
    generate_dataset,
    simulate_profile,
)

BUDGET_S = 5.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--calibration", default=None, help="onyx-dev folder: also print the calibration table")
    args = ap.parse_args()

    generate_dataset(n=4, seed=args.seed)  # warm imports and numpy
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        profiles = generate_dataset(n=args.n, seed=args.seed)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    simulate_profile(RoastParams(), seed=0)
    single_s = time.perf_counter() - t0

    result = {
        "n_profiles": len(profiles),
        "generate_dataset_s": round(min(times), 3),
        "generate_dataset_all_s": [round(t, 3) for t in times],
        "per_profile_ms": round(1000 * min(times) / len(profiles), 2),
        "simulate_profile_single_s": round(single_s, 3),
        "mean_duration_min": round(sum(p.duration_s for p in profiles) / len(profiles) / 60, 2),
        "cpu": platform.processor() or platform.machine(),
        "budget_s": BUDGET_S,
    }
    print(json.dumps(result, indent=2))
    if args.calibration:
        from roastcore.io import read_onyx

        real = [read_onyx(path) for path in sorted(Path(args.calibration).glob("*.json"))]
        print(calibration_markdown(calibration_table(profiles, real)))
    return 0 if result["generate_dataset_s"] < BUDGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
