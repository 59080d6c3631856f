"""RUN_DIR/generated.json: what the dashboard draws first for a run, generated when it is scored.

A page that shows a run generates from its model: Compare curves one free-running curve per
run (its first validation roast), the Generation diagnostic a step trace of that roast. On two
CPU cores that is most of a page's server time, so `evaluate.score_run` generates both once,
when the run is scored (at the end of training, or by `python -m roastcore score`), and writes
them here; the pages read them (`load_generated`) instead of loading the model.

A stored result is only ever returned for exactly the request it was generated for: the same
run files (weights, config, encoder, scaler, prior; `run_digest`), the same roast (its curve,
events and metadata, not its name or dataset; `request_digest`), the same options (prefix,
steps) and the same GENERATION_VERSION. Anything else is None and the caller generates, as it
does for a run scored before this file existed. Torch-free: JSON and hashes only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from roastcore import fsutil
from roastcore.profile import Profile

log = logging.getLogger(__name__)

GENERATED = "generated.json"
# Bump when generation (model.generate, generate.ModelGenerator, diagnose.step_trace) changes
# what it produces for the same run and roast: every stored result then stops matching.
GENERATION_VERSION = 1
# The files load_run builds the model from: a change to any of them is another model.
RUN_FILES = ("model.safetensors", "config.json", "encoder.json", "scaler.json", "prior.json", "prior.safetensors")


def run_digest(run_dir) -> str:
    """sha256 over the contents of the run files a model is built from (RUN_FILES present)."""
    h = hashlib.sha256()
    for name in RUN_FILES:
        path = Path(run_dir) / name
        if not path.is_file():
            continue
        h.update(name.encode() + b"\0")
        fsutil.hash_file(h, path)
        h.update(b"\0")
    return h.hexdigest()


def request_digest(profile: Profile, prefix_s: float = 0.0) -> str:
    """sha256 of everything about a roast that generation reads, exactly: the curve (float64
    bytes, not the 0.01 °F fingerprint), its grid, events and metadata (the source file's name
    aside), and the prefix."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(profile.bt, dtype=np.float64).tobytes())
    if profile.et is not None:
        h.update(b"et" + np.ascontiguousarray(profile.et, dtype=np.float64).tobytes())
    meta = dataclasses.asdict(dataclasses.replace(profile.meta, source_file=None))
    rest = {"interval_s": float(profile.interval_s), "events": profile.events, "meta": meta,
            "prefix_s": float(prefix_s)}
    h.update(json.dumps(rest, sort_keys=True, default=str).encode())
    return h.hexdigest()


def curve_entry(profile: Profile, curve, prefix_s: float = 0.0) -> dict:
    """A free-running 1 s curve of `profile` as stored (exact float64 values)."""
    return {"profile_id": profile.id, "request_sha256": request_digest(profile, prefix_s),
            "prefix_s": float(prefix_s), "bt": [float(v) for v in np.asarray(curve, dtype=float)]}


def trace_entry(profile: Profile, steps: int, trace: dict) -> dict:
    """A step trace (diagnose.StepTrace.to_dict()) of `profile` over `steps` steps as stored."""
    return {"profile_id": profile.id, "request_sha256": request_digest(profile), "steps": int(steps),
            "trace": trace}


def write_generated(run_dir, run_sha256: str, curves: list[dict], traces: list[dict]) -> Path:
    """Store the entries atomically in RUN_DIR/generated.json (a page never reads half a file)."""
    doc = {"version": GENERATION_VERSION, "run_sha256": run_sha256, "curves": curves, "traces": traces}
    return fsutil.atomic_write_text(Path(run_dir) / GENERATED, fsutil.to_json(doc))


@dataclass
class StoredViews:
    """A run's generated.json, checked against the run's current files (`load_generated`)."""

    curves: list[dict] = field(default_factory=list)
    traces: list[dict] = field(default_factory=list)

    def curve(self, profile: Profile, prefix_s: float = 0.0) -> np.ndarray | None:
        """The stored free-running curve for exactly this roast and prefix, else None."""
        want = request_digest(profile, prefix_s)
        for entry in self.curves:
            if entry.get("request_sha256") == want and entry.get("profile_id") == profile.id:
                return np.asarray(entry["bt"], dtype=float)
        return None

    def trace(self, profile: Profile, steps: int) -> dict | None:
        """The stored step trace of exactly this roast over `steps` steps, else None."""
        want = request_digest(profile)
        for entry in self.traces:
            if (entry.get("request_sha256") == want and entry.get("profile_id") == profile.id
                    and entry.get("steps") == int(steps)):
                return entry["trace"]
        return None


def load_generated(run_dir) -> StoredViews | None:
    """RUN_DIR/generated.json when it was generated by this GENERATION_VERSION from the run's
    current files, else None (absent, unreadable, or stale: logged)."""
    path = Path(run_dir) / GENERATED
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("version") != GENERATION_VERSION:
            log.info("%s: generated by version %s, now %s; stale", path, doc.get("version"), GENERATION_VERSION)
            return None
        if doc.get("run_sha256") != run_digest(run_dir):
            log.info("%s: the run's files changed since it was generated; stale", path)
            return None
        return StoredViews(curves=list(doc.get("curves") or []), traces=list(doc.get("traces") or []))
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None
