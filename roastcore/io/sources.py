"""Where a dataset comes from: the built-in simulator, or files the user brings."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from roastcore.io.base import ImportFailure, display_name
from roastcore.io.folder import ImportReport, Rejection, import_folder, looks_like_zip, read_profile
from roastcore.io.roastformer_package import find_package, import_package
from roastcore.profile import Profile

SYNTHETIC = "synthetic"
DEFAULT_SYNTHETIC_N = 200


def load_source(spec: str | os.PathLike) -> ImportReport:
    """`synthetic` / `synthetic:N` (simulate.generate_dataset(n=N, seed=0)), or a path to one
    file, a folder or a .zip, or several of those separated by commas (`onyx-dev,artisan`: all
    their profiles in order, `origins` saying which part each came from). Bad files become
    rejections in the report; a missing path raises FileNotFoundError. A folder literally named
    "synthetic" needs "./synthetic"; a path with a comma in its name is read as that path."""
    if is_multi_source(spec):
        return load_sources(split_sources(spec))
    if isinstance(spec, str):
        text = spec.strip()
        head, sep, count = text.partition(":")
        if head.lower() == SYNTHETIC:
            n = DEFAULT_SYNTHETIC_N
            if sep:
                try:
                    n = int(count)
                except ValueError:
                    n = 0
                if n < 1:
                    raise ValueError(f"{spec!r}: synthetic:N needs a whole number N >= 1")
            from roastcore.simulate import generate_dataset  # heavy; only when asked for

            return ImportReport(profiles=list(generate_dataset(n=n, seed=0)), source=f"{SYNTHETIC}:{n}")
    path = Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"data source {str(spec)!r} not found: give a .alog/.json/.csv file, a folder, "
                                "a .zip, or 'synthetic[:N]'")
    if path.is_dir() or looks_like_zip(path):  # a damaged zip too: reported as one, not as a file type
        return import_tree(path)
    report = ImportReport(source=display_name(path))
    try:
        report.profiles.append(read_profile(path))  # a pipe or device is refused unread
    except ImportFailure as exc:
        report.rejected.append(Rejection(path.name, exc.reason, exc.code))
    return report


def is_multi_source(spec) -> bool:
    """Whether `spec` names several sources separated by commas (`onyx-dev,artisan`). An existing
    path with a comma in its name is one source: the file system is asked before the comma."""
    return isinstance(spec, str) and "," in spec and not Path(spec).expanduser().exists()


def split_sources(spec: str) -> list[str]:
    """The parts of a comma-separated source spec; an empty part or a repeated one is an error."""
    parts = [part.strip() for part in spec.split(",")]
    if any(not part for part in parts):
        raise ValueError(f"data source {spec!r}: an empty part between commas")
    if len(set(parts)) != len(parts):
        raise ValueError(f"data source {spec!r}: a part is given twice")
    return parts


def load_sources(parts: list[str]) -> ImportReport:
    """Every part's profiles in order; a curve already read from an earlier part is a duplicate
    (kept once), so no roast is counted, or split, twice."""
    report = ImportReport(source=",".join(parts))
    seen: dict[str, str] = {}  # curves of the earlier parts (a part's own are its importer's business)
    for part in parts:
        sub = load_source(part)
        mine: dict[str, str] = {}
        for p in sub.profiles:
            key, name = p.fingerprint(), f"{part}: {p.meta.source_file or p.id}"
            if key in seen:
                report.duplicates.append((name, seen[key]))
                continue
            mine.setdefault(key, name)
            report.profiles.append(p)
            report.origins[p.id] = part
        seen.update(mine)
        report.rejected.extend(sub.rejected)
        report.duplicates.extend(sub.duplicates)
        report.skipped.extend(sub.skipped)
    return report


def import_tree(path) -> ImportReport:
    """A folder or zip of roast files; a RoastFormer research package in it (alone, or the zip
    in an uploaded folder) imports as that package, with its own train/val membership."""
    if (package := find_package(path)) is not None:
        return import_package(package)
    return import_folder(path)


def dataset_fingerprint(profiles: Iterable[Profile]) -> str:
    """16 hex digits identifying the set of curves (order-independent, metadata-blind)."""
    digest = hashlib.sha256()
    for fp in sorted(p.fingerprint() for p in profiles):
        digest.update(fp.encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]


# What `data summary` tabulates: name -> (label, unit, value of one profile or None)
STAT_FIELDS = (
    ("charge_f", "charge", "°F"),
    ("tp_f", "TP temp", "°F"),
    ("tp_s", "TP time", "s"),
    ("fcs_s", "FCs time", "s"),
    ("drop_f", "drop temp", "°F"),
    ("duration_s", "duration", "s"),
    ("dtr", "DTR", ""),
)


def _stat_values(profile: Profile) -> dict[str, float | None]:
    tp = profile.turning_point()
    return {
        "charge_f": profile.charge_f,
        "tp_f": None if tp is None else tp[1],
        "tp_s": None if tp is None else tp[0],
        "fcs_s": profile.events.get("FCs"),
        "drop_f": profile.finish_f,
        "duration_s": profile.duration_s,
        "dtr": profile.dtr(),
    }


def dataset_stats(profiles: Iterable[Profile]) -> dict[str, dict[str, float | int | None]]:
    """Per STAT_FIELDS: n (profiles that have the value), min, median, max."""
    import numpy as np

    rows = [_stat_values(p) for p in profiles]
    out: dict[str, dict[str, float | int | None]] = {}
    for key, _label, _unit in STAT_FIELDS:
        values = np.array([r[key] for r in rows if r[key] is not None], dtype=float)
        if values.size:
            out[key] = {"n": int(values.size), "min": float(values.min()),
                        "median": float(np.median(values)), "max": float(values.max())}
        else:
            out[key] = {"n": 0, "min": None, "median": None, "max": None}
    return out
