"""What a submission asks for, checked: overrides, data fingerprint and the job's identity.

Two submissions with the same preset, overrides, epochs, seed and data fingerprint are one job
(`JobRunner.submit` returns the queued or running one), so normalising them lives here once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from roastcore.jobs.store import JobError


def normalize_overrides(overrides: Mapping[str, Any] | list[str] | None) -> dict[str, Any]:
    """Overrides as {key: JSON value}. `"k=v"` strings (the CLI's --set) are JSON-decoded when
    they parse (so `lr=0.001` from the CLI and {"lr": 0.001} from the dashboard are one job)."""
    if overrides is None:
        return {}
    items: list[tuple[str, Any]] = []
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    elif isinstance(overrides, (list, tuple)):
        for entry in overrides:
            if not isinstance(entry, str) or "=" not in entry:
                raise JobError(f"overrides: expected 'key=value', got {entry!r}")
            key, value = entry.split("=", 1)
            items.append((key.strip(), _decode_value(value.strip())))
    else:
        raise JobError("overrides must be a mapping or a list of 'key=value', "
                       f"got {type(overrides).__name__}")
    out: dict[str, Any] = {}
    for key, value in items:
        if not isinstance(key, str) or not key:
            raise JobError(f"overrides: keys must be non-empty strings, got {key!r}")
        if isinstance(value, str):
            value = _decode_value(value)
        try:
            json.dumps(value)
        except TypeError:
            raise JobError(f"overrides: value of {key!r} is not JSON-serialisable: "
                           f"{value!r}") from None
        out[key] = value
    return dict(sorted(out.items()))


def _decode_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def format_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def data_fingerprint(data: str) -> str:
    """A cheap identity for a data source, for duplicate detection only.

    `synthetic[:N]` is its own fingerprint. For a path we hash relative names, sizes and
    mtimes (not the contents): loading and parsing a folder at submit time would block the
    UI, and a changed file changes its mtime anyway.
    """
    if not isinstance(data, str) or not data.strip():
        raise JobError("data: expected 'synthetic', 'synthetic:N' or a path, got an empty value")
    data = data.strip()
    if data == "synthetic" or data.startswith("synthetic:"):
        if data != "synthetic":
            count = data.split(":", 1)[1]
            if not count.isdigit() or int(count) < 1:
                raise JobError(f"data: 'synthetic:N' needs a positive integer N, got {data!r}")
        return data
    path = Path(data).expanduser()
    if not path.exists():
        raise JobError(f"data: {data!r} does not exist")
    digest = hashlib.sha256()
    if path.is_file():
        files = [path]
        base = path.parent
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file())
        base = path
        if not files:
            raise JobError(f"data: folder {data!r} contains no files")
    for file in files:
        st = file.stat()
        name = file.relative_to(base).as_posix()
        digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return "files:" + digest.hexdigest()[:16]


def config_key(preset: str, overrides: dict[str, Any], epochs: int | None,
                seed: int | None) -> str:
    canonical = json.dumps(
        {"preset": preset, "overrides": overrides, "epochs": epochs, "seed": seed},
        sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def validate_config(preset: str, overrides: dict[str, Any]) -> Any:
    """Reject an unknown preset or a bad override now rather than as a failed job later;
    return the job's ExperimentConfig (what its resources are estimated from)."""
    # Here, not at the top: experiments imports torch (seconds), which `jobs list` must not pay.
    from roastcore.experiments import PRESETS

    if preset not in PRESETS:
        raise JobError(f"preset: unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    try:
        return PRESETS[preset].experiment.with_overrides(dict(overrides))
    except (ValueError, TypeError) as exc:
        raise JobError(f"overrides: {exc}") from exc


_RUN_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def check_run_name(name: str) -> None:
    """JobError unless `name` is a plain folder name (no path, no dots-only, no spaces)."""
    if (not isinstance(name, str) or not 1 <= len(name) <= 80 or not set(name) <= _RUN_NAME_CHARS
            or not name[0].isalnum()):
        raise JobError(f"name: {name!r} is not a run name (1-80 letters, digits, '.', '_' or '-', "
                       "starting with a letter or digit)")
