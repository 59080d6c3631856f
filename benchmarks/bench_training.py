"""Training throughput and peak memory per preset on CPU.

    python benchmarks/bench_training.py [--threads 2] [--profiles 120] [--steps 700]
        [--presets micro_model tiny_model ...] [--memory-batches 3] [--device cpu|cuda]

Throughput: one full epoch (teacher forcing, AdamW, clipping) over `--profiles` curves of
`--steps` 1 s steps, batch 8. Peak memory: each preset trains `--memory-batches` batches in a
fresh subprocess and reports its ru_maxrss (the whole process, torch included) minus the
same process's maxrss before the first batch (CPU only); this runs `train.train` for one epoch, so
each preset trains as it really does (its step, rollouts, scheduled sampling, prior). With --device cuda the epoch runs
on the GPU with bf16 autocast, as the trainer does there.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from roastcore.architectures import build_model
from roastcore.batch import collate
from roastcore.dataset import RoastDataset
from roastcore.experiments import PRESETS, get_preset
from roastcore.features import FeatureEncoder, TemperatureScaler
from roastcore.model import count_parameters
from roastcore.profile import Profile, ProfileMeta


def profiles(n: int, steps: int, seed: int = 0) -> list[Profile]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        length = int(steps + rng.integers(-60, 60))
        t = np.arange(length, dtype=float)
        out.append(Profile(bt=400 - 200 * np.exp(-t / 40) * (1 - np.exp(-t / 8)) + 0.2 * t + rng.normal(0, 1),
                           id=f"b{i}", meta=ProfileMeta(origin=["Kenya", "Peru"][i % 2], process="washed")))
    return out


def epoch_seconds(preset: str, data, batch_size: int = 8, batches: int | None = None,
                  device: str = "cpu") -> tuple[float, int, int]:
    exp = get_preset(preset).experiment.with_overrides({"max_len": 800})
    torch.manual_seed(0)
    model = build_model(exp.model, FeatureEncoder.fit(data), TemperatureScaler.fit(data, enabled=exp.model.normalize))
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=exp.train.lr)
    # As the trainer does: bf16 autocast on CUDA, plain fp32 on CPU.
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda")
    ds = RoastDataset(data, model.encoder, 1.0, 800)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, collate_fn=collate)
    model.train()
    start, seen = time.perf_counter(), 0
    for i, batch in enumerate(loader):
        if batches is not None and i >= batches:
            break
        with autocast:
            loss = model.loss(batch.to(device))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        seen += batch.batch_size
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, seen, count_parameters(model)


def _peak_rss_mb() -> float:
    """VmHWM (Linux), else ru_maxrss."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> None:
    try:  # Linux: "5" resets VmHWM to the current RSS, so the peak below is the training's own
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def memory_child(preset: str, n_batches: int, steps: int) -> None:
    """One real training epoch of the preset (its own step, losses, rollouts and prior) over
    n_batches batches of 8, plus its validation on 4 profiles."""
    from roastcore.train import train

    data = profiles(8 * n_batches + 4, steps)
    exp = get_preset(preset).experiment.with_overrides({"epochs": 1, "batch_size": 8, "device": "cpu",
                                                        "max_len": 800 if get_preset(preset).experiment.model.step_s == 1 else 400})
    _reset_peak()
    base = _peak_rss_mb()
    result = train(exp, data[:8 * n_batches], data[8 * n_batches:])
    if result.status != "succeeded":
        raise SystemExit(f"{preset}: {result.status} {result.reason}")
    peak = _peak_rss_mb()
    print(json.dumps({"preset": preset, "peak_mb": round(peak, 1), "training_mb": round(peak - base, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profiles", type=int, default=120)
    parser.add_argument("--steps", type=int, default=700)
    parser.add_argument("--presets", nargs="*", default=["micro_model", "tiny_model"])
    parser.add_argument("--memory-batches", type=int, default=3)
    parser.add_argument("--memory-presets", nargs="*", default=list(PRESETS))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args._child:
        memory_child(args._child, args.memory_batches, args.steps)
        return
    data = profiles(args.profiles, args.steps)
    summary = {"threads": args.threads, "device": args.device, "profiles": args.profiles, "steps": args.steps,
               "throughput": {}, "memory": {}}
    if args.device == "cuda":
        epoch_seconds(args.presets[0], data, batches=2, device="cuda")  # CUDA context and kernels
    for preset in args.presets:
        seconds, seen, params = epoch_seconds(preset, data, device=args.device)
        summary["throughput"][preset] = {"epoch_s": round(seconds, 2), "profiles_per_s": round(seen / seconds, 1),
                                         "params": params}
        print(f"{preset:<20} {params:>10,} params  epoch {seconds:6.2f} s  {seen / seconds:7.1f} profiles/s", flush=True)
    for preset in args.memory_presets if args.device == "cpu" else []:
        out = subprocess.run([sys.executable, __file__, "--threads", str(args.threads), "--steps", str(args.steps),
                              "--memory-batches", str(args.memory_batches), "--_child", preset],
                             capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        summary["memory"][preset] = row
        print(f"{preset:<20} peak RSS {row['peak_mb']:8.1f} MB  (+{row['training_mb']:.1f} MB for "
              f"{args.memory_batches} batches of 8)", flush=True)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
