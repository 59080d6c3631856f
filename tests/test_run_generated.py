"""RUN_DIR/generated.json (roastcore.run_generated): a stored curve or trace is returned only for
exactly the request it was generated for, and goes stale with the run's files.

The run folders here hold stand-in files (the digest reads bytes only); the shipped demo runs
are checked for real at the end. Nothing of roastcore is mocked.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from roastcore import run_generated as rg
from roastcore.profile import Profile, ProfileMeta

REPO = Path(__file__).resolve().parents[1]


def roast(seed: int, origin: str = "Ethiopia", rid: str | None = None) -> Profile:
    rng = np.random.default_rng(seed)
    t = np.arange(601.0)
    bt = 420.0 - 200.0 * np.exp(-t / 40.0) + 0.3 * t + rng.normal(0, 0.05, t.size)
    return Profile(bt=bt, interval_s=1.0, events={"DROP": 600.0}, id=rid or f"roast-{seed}",
                   meta=ProfileMeta(origin=origin, process="washed", product=f"p{seed}"))


@pytest.fixture
def run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(b"weights-1")
    (run / "config.json").write_text('{"model": {}}')
    (run / "encoder.json").write_text("{}")
    (run / "manifest.json").write_text("{}")
    return run


def store(run: Path, profile: Profile, curve, trace: dict | None = None, steps: int = 60) -> None:
    traces = [rg.trace_entry(profile, steps, trace)] if trace is not None else []
    rg.write_generated(run, rg.run_digest(run), [rg.curve_entry(profile, curve)], traces)


def test_a_stored_curve_is_returned_only_for_exactly_its_roast_and_prefix(run):
    first = roast(0)
    planted = first.bt + 7.25
    store(run, first, planted, {"variance_f2": 1.5}, steps=60)
    views = rg.load_generated(run)
    assert views is not None
    assert np.array_equal(views.curve(first), planted)  # exact float64 values, not rounded
    assert views.trace(first, 60) == {"variance_f2": 1.5}
    # Anything else about the request is another request: None, and the caller generates.
    assert views.curve(roast(1)) is None  # another roast
    assert views.curve(first, prefix_s=30.0) is None  # another prefix
    assert views.trace(first, 61) is None  # another number of steps
    nudged = dataclasses.replace(first, bt=first.bt + np.r_[0.001, np.zeros(first.bt.size - 1)])
    assert views.curve(nudged) is None  # a 0.001 °F change of the charge (the 0.01 °F fingerprint would miss it)
    assert views.curve(dataclasses.replace(first, meta=dataclasses.replace(first.meta, origin="Kenya"))) is None
    assert views.curve(dataclasses.replace(first, events={"DROP": 590.0})) is None
    assert views.curve(dataclasses.replace(first, id="renamed")) is None
    # The file it was read from does not matter: the same roast imported again is the same request.
    moved = dataclasses.replace(first, meta=dataclasses.replace(first.meta, source_file="/elsewhere/a.alog"))
    assert np.array_equal(views.curve(moved), planted)


def test_stored_views_go_stale_with_the_runs_files_or_the_generation_version(run):
    first = roast(0)
    store(run, first, first.bt)
    assert rg.load_generated(run) is not None
    (run / "model.safetensors").write_bytes(b"weights-2")  # retrained
    assert rg.load_generated(run) is None
    (run / "model.safetensors").write_bytes(b"weights-1")
    assert rg.load_generated(run) is not None
    (run / "prior.json").write_text("{}")  # a file the model is built from appears
    assert rg.load_generated(run) is None
    (run / "prior.json").unlink()
    (run / "manifest.json").write_text('{"status": "succeeded"}')  # not a model file: still current
    assert rg.load_generated(run) is not None
    doc = json.loads((run / rg.GENERATED).read_text())
    (run / rg.GENERATED).write_text(json.dumps(dict(doc, version=rg.GENERATION_VERSION + 1)))
    assert rg.load_generated(run) is None
    (run / rg.GENERATED).write_text("{not json")
    assert rg.load_generated(run) is None
    (run / rg.GENERATED).unlink()
    assert rg.load_generated(run) is None  # a run scored before the file existed


def test_the_file_is_written_atomically(run, monkeypatch):
    first = roast(0)
    store(run, first, first.bt)
    before = (run / rg.GENERATED).read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", fail)  # the rename that publishes the new file
    with pytest.raises(OSError):
        store(run, first, first.bt + 1.0)
    assert (run / rg.GENERATED).read_bytes() == before
    assert [p.name for p in run.iterdir() if rg.GENERATED in p.name and p.name != rg.GENERATED] == []


def test_the_shipped_demo_runs_carry_current_generated_views(tmp_path):
    """Each demo run's generated.json matches its files and the roast Compare draws first on the
    built-in data: a demo retrained without `python -m roastcore score` fails here."""
    from roastcore.checkpoints import read_json
    from roastcore.inspect_run import manifest_validation_profiles
    from roastcore.io import load_source

    profiles = load_source("synthetic").profiles
    demos = sorted(p for p in (REPO / "checkpoints").glob("demo_*") if (p / "model.safetensors").is_file())
    assert len(demos) >= 3
    for demo in demos:
        views = rg.load_generated(demo)
        assert views is not None, f"{demo.name}: generated.json absent or stale; re-score it"
        val, _ = manifest_validation_profiles(read_json(demo / "manifest.json"), profiles)
        assert views.curve(val[0]) is not None and views.trace(val[0], 60) is not None, demo.name
        copy = shutil.copytree(demo, tmp_path / demo.name)  # a copy (the dashboard's runs directory)
        assert rg.load_generated(copy).curve(val[0]) is not None
