"""Run status tells the truth: a run whose training process is gone reads `interrupted`."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from roastcore import liveness
from roastcore.checkpoints import (
    UNMARKED_STALE_S,
    RunError,
    RunWriter,
    list_runs,
    load_run,
    run_status,
)
from roastcore.experiments import get_preset
from roastcore.features import FeatureEncoder, TemperatureScaler

REPO_ROOT = Path(__file__).resolve().parents[1]
EXP = get_preset("micro_model").experiment.with_overrides({"step_s": 10, "max_len": 100, "name": "micro"})
TINY_SET = ["--set", "d_model=16", "--set", "n_layers=1", "--set", "d_ff=32", "--set", "step_s=5"]


def _status_on_disk(run_dir: Path) -> str:
    return json.loads((run_dir / "manifest.json").read_text())["status"]


def _writer(run_dir: Path, profiles) -> RunWriter:
    encoder = FeatureEncoder.fit(profiles)
    scaler = TemperatureScaler.fit(profiles, step_s=10.0)
    return RunWriter(run_dir, EXP, encoder, scaler, param_count=1, device="cpu")


@pytest.mark.slow
def test_a_killed_training_reads_interrupted_and_its_weights_stay_usable(tmp_path):
    run_dir = tmp_path / "k"
    proc = subprocess.Popen(
        [sys.executable, "-m", "roastcore", "train", "--preset", "micro_model", *TINY_SET,
         "--data", "synthetic:24", "--epochs", "400", "--out", str(run_dir), "--quiet"],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "model.safetensors").is_file():
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.1)
        # Alive: reads as running, and nothing is rewritten.
        assert [r.status for r in list_runs(tmp_path)] == ["running"]
        assert _status_on_disk(run_dir) == "running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    assert _status_on_disk(run_dir) == "running"  # what the dead process left behind
    [info] = list_runs(tmp_path)
    assert info.status == "interrupted"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and "are saved and usable" in manifest["reason"]
    loaded = load_run(run_dir)
    assert loaded.manifest["status"] == "interrupted" and loaded.model is not None


def test_a_writer_holds_its_run_until_it_finishes_or_is_dropped(tmp_path, synthetic_profiles):
    profiles = synthetic_profiles[:6]
    done = tmp_path / "done"
    writer = _writer(done, profiles)
    # Held by this very process (another open file): still running, and not rewritten.
    assert run_status(done) == "running" and _status_on_disk(done) == "running"
    with pytest.raises(RunError, match="another process is writing"):
        _writer(done, profiles)
    writer.finish("succeeded")
    assert run_status(done) == "succeeded" and not (done / "run.lock").exists()

    dropped = tmp_path / "dropped"
    writer = _writer(dropped, profiles)
    assert {r.name: r.status for r in list_runs(tmp_path)} == {
        "done": "succeeded", "dropped": "running"}
    del writer  # a crash that never reached finish(): the lock goes with the writer
    gc.collect()
    assert {r.name: r.status for r in list_runs(tmp_path)} == {
        "done": "succeeded", "dropped": "interrupted"}
    manifest = json.loads((dropped / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and "no weights were saved" in manifest["reason"]
    assert run_status(dropped) == "interrupted"


def test_a_run_from_before_the_lock_is_interrupted_once_silent(tmp_path, synthetic_profiles):
    run_dir = tmp_path / "old"
    writer = _writer(run_dir, synthetic_profiles[:6])
    writer._marker.release(unlink=True)  # as written by a version without run.lock
    assert run_status(run_dir) == "running"  # it wrote just now: it may be alive
    old = time.time() - UNMARKED_STALE_S - 60
    for name in os.listdir(run_dir):
        os.utime(run_dir / name, (old, old))
    assert run_status(run_dir) == "interrupted"


@pytest.mark.slow
def test_liveness_marker_follows_its_holder(tmp_path):
    marker = tmp_path / "m.lock"
    assert liveness.is_held(marker) is None
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from roastcore import liveness; "
         "m = liveness.hold(sys.argv[1]); print('held', flush=True); time.sleep(60)", str(marker)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert liveness.is_held(marker) is True
        assert liveness.hold(marker) is None  # exclusive
    finally:
        holder.kill()
        holder.wait()
    assert liveness.is_held(marker) is False
    taken = liveness.hold(marker)
    assert taken is not None
    taken.release(unlink=True)
    assert not marker.exists()
