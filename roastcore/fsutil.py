"""Crash-safe file writes: a reader sees the old file or the new one, never half of either.

Also the one JSON sanitiser (`json_safe`), so every file and every `--json` output is strict JSON,
and the one strict reader of a config object (`dataclass_from_dict`: unknown keys are refused).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from pathlib import Path


def hash_file(h, path: str | os.PathLike):
    """Feed a file's bytes to the hash object `h` in 1 MiB chunks (weights can be large); returns h."""
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` via a temp file in the same folder, fsync, then os.replace.

    os.replace is atomic on POSIX and Windows when source and target share a filesystem, which
    is why the temp file lives next to the target rather than in /tmp.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    return atomic_write_bytes(path, text.encode(encoding))


def json_safe(obj):
    """NaN/inf -> None, numpy scalars -> Python, tuples -> lists: strict JSON for any result."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    kind = getattr(obj, "dtype", None)  # numpy scalars, without importing numpy here
    if kind is not None and getattr(obj, "shape", None) == ():
        return json_safe(obj.item())
    return obj


def to_json(obj, indent: int | None = None) -> str:
    """Strict JSON text of `obj` (see json_safe)."""
    return json.dumps(json_safe(obj), indent=indent, allow_nan=False)


def atomic_write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> Path:
    return atomic_write_text(path, to_json(obj, indent=indent) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The object lines of a JSON-lines file (e.g. a run's metrics.jsonl); a missing file is empty,
    and a torn last line (a writer mid-append, or a crash) or a non-object line is skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict):
            rows.append(obj)
    return rows


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def dataclass_from_dict(cls, d, key: str):
    """`cls(**d)` for a config dataclass read from JSON (the `key` object of a file), refusing a
    non-object or unknown keys by name: a typo never silently falls back to a default."""
    if not isinstance(d, dict):
        raise ValueError(f"{cls.__name__}: '{key}' must be an object, got {type(d).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {unknown}; valid keys are {sorted(known)}")
    return cls(**d)
