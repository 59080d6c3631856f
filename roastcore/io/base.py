"""What every importer shares: the one import error, the size guard and the exception fence.

Each format module parses `bytes` (so a zip member never touches the disk) and exposes
`read_<format>(path)`, which is `load_bytes` + the parser inside `guarded`: whatever goes wrong
comes out as an `ImportFailure` that names the file and the reason.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from roastcore.profile import Profile, ProfileError

log = logging.getLogger(__name__)

# Real profiles are well under 1 MB (the largest Artisan log here is 0.4 MB); anything past this
# is not a roast log and parsing it would only cost memory.
MAX_FILE_BYTES = 20 * 1024 * 1024

T = TypeVar("T")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")


class ImportFailure(ValueError):
    """A file that cannot become a Profile. `path` names the file, `reason` says why.

    `code` is a short machine-readable category (e.g. "too_short", "json_template") used to
    count rejections; the reason is the human sentence and always carries the specifics.
    """

    def __init__(self, path, reason: str, code: str = "invalid"):
        self.path = str(path)
        self.reason = str(reason)
        self.code = code
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self):  # keep pickling (multiprocessing) working with the 3-arg constructor
        return (type(self), (self.path, self.reason, self.code))


def load_bytes(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The file's bytes, refusing anything larger than `max_bytes` before reading it."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImportFailure(path, "file not found", "unreadable") from None
    except OSError as exc:
        raise ImportFailure(path, f"cannot read file ({exc.strerror or exc})", "unreadable") from None
    if path.is_dir():
        raise ImportFailure(path, "is a folder, not a file (use import_folder)", "unreadable")
    if size > max_bytes:
        raise ImportFailure(path, f"file is {size / 1e6:.1f} MB, larger than the {max_bytes / 1e6:.0f} MB limit", "too_large")
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)  # the file may have grown since stat()
    except OSError as exc:
        raise ImportFailure(path, f"cannot read file ({exc.strerror or exc})", "unreadable") from None
    if len(data) > max_bytes:
        raise ImportFailure(path, f"file is larger than the {max_bytes / 1e6:.0f} MB limit", "too_large")
    return data


def guarded(name: str, parse: Callable[[], T]) -> T:
    """Run `parse()`; turn every failure into an ImportFailure naming `name`.

    The contract is "a Profile or an ImportFailure, never anything else", so this fence also
    catches the exotic ones a hostile file can provoke (RecursionError from deep nesting,
    MemoryError, OverflowError from huge integers, TypeError from wrong types).
    """
    try:
        return parse()
    except ImportFailure as exc:
        if exc.path != name:  # parsers raise with the display name already; keep it consistent
            raise ImportFailure(name, exc.reason, exc.code) from None
        raise
    except ProfileError as exc:
        raise ImportFailure(name, f"implausible roast: {exc}", "implausible") from None
    except UnicodeDecodeError as exc:
        raise ImportFailure(name, f"not UTF-8 text (byte {exc.start}: {exc.reason})", "not_text") from None
    except RecursionError:
        raise ImportFailure(name, "nested too deeply to be a roast profile", "malformed") from None
    except MemoryError:
        raise ImportFailure(name, "too large to parse", "too_large") from None
    except Exception as exc:  # noqa: BLE001 -- the fence is the point
        log.debug("unexpected error importing %s", name, exc_info=True)
        raise ImportFailure(name, f"malformed content ({type(exc).__name__}: {exc})", "malformed") from None


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 text (a leading BOM is tolerated by callers that want it, not here)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImportFailure(name, f"not UTF-8 text (invalid byte at offset {exc.start})", "not_text") from None


def to_float(value) -> float | None:
    """A finite float from a number or a numeric string; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        if _THOUSANDS.match(value):  # "1,950" as scraped from a web page
            value = value.replace(",", "")
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return out if np.isfinite(out) else None


def numeric_array(values, name: str, field: str) -> np.ndarray:
    """A 1-D float array from a list of numbers; non-numbers (None, strings, NaN) become NaN."""
    if not isinstance(values, (list, tuple)):
        raise ImportFailure(name, f"field {field!r} is {type(values).__name__}, expected a list of numbers", "malformed")
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            try:
                out[i] = float(v)
            except OverflowError:  # an int too large for a float
                out[i] = np.inf
    out[~np.isfinite(out)] = np.nan
    return out


def fill_gaps(times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Linearly interpolate NaN readings over time.

    Returns (filled, longest gap in seconds, time where that gap starts). A gap at either end is
    held at the nearest reading and measured from the recording edge; a pause in the
    logger's clock counts as a gap too. Callers decide how long a
    gap may be before the curve is fiction. Needs at least one finite value.
    """
    ok = np.isfinite(values)
    idx = np.flatnonzero(ok)
    filled = values.astype(float, copy=True) if ok.all() else np.interp(times, times[idx], values[idx])
    # the span a gap leaves uncovered: between the readings around it, or from an edge
    edges = np.concatenate(([times[0]], times[idx], [times[-1]]))
    spans = np.diff(edges)
    k = int(np.argmax(spans))
    return filled, float(spans[k]), float(edges[k])


def build_profile(name: str, **kwargs) -> Profile:
    """Profile(...) with validation errors reported against the file."""
    try:
        return Profile(**kwargs)
    except ProfileError as exc:
        raise ImportFailure(name, f"implausible roast: {exc}", "implausible") from None
