"""Generation speed: KV-cached vs naive re-forward, 800 steps at 1 s, batch 1 and 32.

    python benchmarks/bench_generation.py [--threads 2] [--preset tiny_model] [--naive-steps 800]

Prints one line per measurement and a JSON summary. Weights are untrained (speed does not
depend on them); the clamp is widened so every step does the same work.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from roastcore.architectures import build_model
from roastcore.experiments import get_preset
from roastcore.features import FeatureEncoder, TemperatureScaler
from roastcore.model import count_parameters
from roastcore.profile import Profile, ProfileMeta


def profiles(n: int, steps: int) -> list[Profile]:
    t = np.arange(steps, dtype=float)
    return [Profile(bt=400 - 200 * np.exp(-t / 40) * (1 - np.exp(-t / 8)) + 0.2 * t, id=f"b{i}",
                    meta=ProfileMeta(origin="Kenya", process="washed")) for i in range(n)]


def timed(fn, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--preset", default="tiny_model")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--naive-steps", type=int, default=800, help="naive path length (it is O(L^2))")
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 32])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    exp = get_preset(args.preset).experiment.with_overrides({"max_len": max(args.steps, 800), "dropout": 0.0})
    data = profiles(32, args.steps)
    model = build_model(exp.model, FeatureEncoder.fit(data), TemperatureScaler.fit(data, enabled=exp.model.normalize)).eval()
    wide = (-1e9, 1e9)
    results = {"preset": args.preset, "params": count_parameters(model), "threads": args.threads, "steps": args.steps}
    model.generate(model.make_batch(data[:1]), clamp=wide)  # warm-up
    for batch_size in args.batches:
        batch = model.make_batch(data[:batch_size])
        cached = timed(lambda b=batch: model.generate(b, clamp=wide), repeats=3 if batch_size == 1 else 1)
        short = model.make_batch(profiles(batch_size, args.naive_steps))
        naive = timed(lambda b=short: model.generate(b, clamp=wide, use_cache=False))
        cached_short = cached if args.naive_steps == args.steps else timed(lambda b=short: model.generate(b, clamp=wide))
        results[f"b{batch_size}"] = {f"cached_{args.steps}_s": round(cached, 3),
                                     f"cached_{args.naive_steps}_s": round(cached_short, 3),
                                     f"naive_{args.naive_steps}_s": round(naive, 3),
                                     f"speedup_at_{args.naive_steps}": round(naive / cached_short, 1)}
        print(f"batch {batch_size:>2}: KV-cached {args.steps} steps {cached:7.3f} s | at {args.naive_steps} steps: "
              f"cached {cached_short:7.3f} s, naive {naive:7.3f} s, speed-up {naive / cached_short:6.1f}x", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
