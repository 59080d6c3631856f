"""What the dashboard asks of a loaded run: its validation roasts, scores, curves and exports.

Thin compositions of the public APIs of checkpoints, evaluate, generate and model, for callers
that hold a `checkpoints.LoadedRun` (the dashboard caches one per run). Each function answers
one question a page asks; none writes to the run directory.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from roastcore.evaluate import evaluated_set
from roastcore.generate import ModelGenerator, export_profile
from roastcore.io.registry import sanitize_filename
from roastcore.model import count_parameters
from roastcore.profile import Profile

# The request fields a model is conditioned on by vocabulary (features.FeatureEncoder.vocabs).
REQUEST_FIELDS = ("origin", "process", "variety", "roast_level", "roaster")
DEFAULT_CHARGE_F = 420.0


def as_dict(obj) -> dict:
    """A dataclass (or anything with to_dict) as a plain dict."""
    if obj is None:
        return {}
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    return {}


def run_model_info(loaded) -> dict:
    """{'model': ModelConfig dict, 'n_params': int} of a checkpoints.LoadedRun."""
    cfg = getattr(loaded, "config", None)
    model_cfg = getattr(cfg, "model", None) or getattr(getattr(loaded, "model", None), "config", None) or cfg
    info = {"model": as_dict(model_cfg)}
    model = getattr(loaded, "model", None)
    if model is not None:
        info["n_params"] = int(count_parameters(model))
    return info


def manifest_validation_profiles(manifest: Mapping, profiles: Sequence[Profile]) -> tuple[list[Profile], str]:
    """The run's validation roasts found in `profiles` (evaluate.evaluated_set) and the split
    label, from the run's manifest alone (no model is built)."""
    manifest = dict(manifest)
    try:
        val, label, _ = evaluated_set(list(profiles), manifest, "val")
    except ValueError:
        return list(profiles), "all"
    return val, label


def generate_curves(loaded, profiles: Sequence[Profile], prefix_s: float = 0.0) -> list[np.ndarray]:
    """Free-running 1 s curves for `profiles` from a loaded run (generate.ModelGenerator)."""
    return ModelGenerator(loaded.model).generate_many(list(profiles), prefix_s=prefix_s)


@dataclass
class RequestChoices:
    """What a run's encoder knows, for a new-coffee request: the vocabulary of each field
    (REQUEST_FIELDS), the flavour vocabulary and the training mean charge temperature."""

    vocabs: dict[str, list[str]] = field(default_factory=dict)
    flavors: list[str] = field(default_factory=list)
    default_charge_f: float = DEFAULT_CHARGE_F


def request_choices(source) -> RequestChoices:
    """The choices of a checkpoints.LoadedRun, or of its encoder alone (checkpoints.load_encoder:
    a form can offer them without building the model)."""
    enc = source.model.encoder if hasattr(source, "model") else source
    vocab = getattr(enc, "vocabs", {})
    charge = getattr(enc, "cont_mean", {}).get("charge_temp_f")
    return RequestChoices(vocabs={f: list(vocab.get(f, [])) for f in REQUEST_FIELDS},
                          flavors=list(getattr(enc, "flavor_vocab", [])),
                          default_charge_f=float(charge or DEFAULT_CHARGE_F))


def curve_profile(curve, name: str, like: Profile | None = None) -> Profile:
    """A generated 1 s curve as a Profile (for export), carrying the real roast's metadata."""
    meta = dataclasses.replace(like.meta, source_file=None) if like is not None else None
    kw = {"meta": meta} if meta is not None else {}
    return Profile(bt=np.asarray(curve, dtype=float), interval_s=1.0, id=sanitize_filename(name, "generated"), **kw)


def export_bytes(profile: Profile, suffix: str, provenance=None) -> bytes:
    """generate.export_profile to a temporary file, returned as bytes (for a download button).
    A generated curve passes `provenance` (generate.Provenance.for_roast / for_request), so the
    file says it is generated, by which run, for which request."""
    with tempfile.TemporaryDirectory() as tmp:
        path = export_profile(profile, Path(tmp) / f"curve{suffix}", provenance=provenance)
        return path.read_bytes()
