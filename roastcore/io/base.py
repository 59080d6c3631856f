"""What every importer shares: the one import error, the size guard and the exception fence.

Each format module parses `bytes` (so a zip member never touches the disk) and exposes
`read_<format>(path)`, which is `load_bytes` + the parser inside `guarded`: whatever goes wrong
comes out as an `ImportFailure` that names the file and the reason.
"""

from __future__ import annotations

import codecs
import logging
import math
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np

from roastcore.io.literal import LiteralError, parse_json
from roastcore.profile import Profile, ProfileError

log = logging.getLogger(__name__)

# Real profiles are well under 1 MiB (the largest Artisan log here is 0.4 MiB); anything past
# this is not a roast log and parsing it would only cost memory. Sizes are binary units
# everywhere (`format_size`), so the limit reads "20 MiB" in every message and document.
MAX_FILE_BYTES = 20 * 1024 * 1024
# A 1 h roast logged 10 times a second has 36,000 samples; a series far longer than any
# recording is refused before the numerics (which hold several copies of it) run.
MAX_SAMPLES = 200_000
MAX_REASON_CHARS = 200
T = TypeVar("T")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}+(?:,\d{3})++(?:\.\d++)?+$")
_OBJECT_REPR = re.compile(r"<([\w.]{1,80}) object at 0x[0-9A-Fa-f]{1,16}>")
_UTF8_CHUNK = 1 << 20


def format_size(n_bytes: float) -> str:
    """Bytes in binary units, the one way sizes and limits are written: '20 MiB', '3.4 MiB'."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n_bytes >= scale:
            value = n_bytes / scale
            return f"{value:.0f} {unit}" if value == int(value) or value >= 100 else f"{value:.1f} {unit}"
    return f"{int(n_bytes)} bytes"


def display_name(text) -> str:
    """`text` safe to print on a terminal: control, format and separator characters (escape
    sequences, bidi overrides, undecodable bytes) are shown as \\x.. escapes."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def quote(value, max_len: int = 24) -> str:
    """A short quoted token of file content for a reason: never more than `max_len` characters."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > max_len:
        text = text[:max_len] + "..."
    return repr(text)


def clean_reason(text) -> str:
    """The one place a reason is made fit to show: one line, no parser object reprs, no control
    characters, at most MAX_REASON_CHARS characters."""
    text = str(text)
    if len(text) <= MAX_REASON_CHARS and text.isprintable() and "  " not in text and " at 0x" not in text \
            and text == text.strip():
        return text  # already clean (the common case): the same object, so equal reasons share memory
    text = text[:4 * MAX_REASON_CHARS]
    text = _OBJECT_REPR.sub(lambda m: "<" + m.group(1).rsplit(".", 1)[-1] + ">", text)
    text = display_name(" ".join(text.split()))
    if len(text) > MAX_REASON_CHARS:
        text = text[:MAX_REASON_CHARS - 3] + "..."
    return text


class ImportFailure(ValueError):
    """A file that cannot become a Profile. `path` names the file, `reason` says why.

    `code` is a short machine-readable category (e.g. "too_short", "json_template") used to
    count rejections; the reason is the human sentence and always carries the specifics,
    sanitised by `clean_reason`.
    """

    def __init__(self, path, reason: str, code: str = "invalid"):
        self.path = str(path)
        self.reason = clean_reason(reason)
        self.code = code
        super().__init__(f"{display_name(self.path)}: {self.reason}")

    def __reduce__(self):  # keep pickling (multiprocessing) working with the 3-arg constructor
        return (type(self), (self.path, self.reason, self.code))


def file_kind(mode: int) -> str:
    """What a stat mode is, in words, for "not a regular file" reasons."""
    for test, words in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                        (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                        (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return words
    return "not a regular file"


def open_regular(path: str | os.PathLike, max_bytes: int | None = None) -> BinaryIO:
    """The file opened for binary reading, when it is a regular file (of at most `max_bytes`).

    A FIFO would block forever and a device never ends, so the mode is checked before opening,
    and again on the descriptor (opened non-blocking): a file swapped for a pipe in between is
    refused too. Raises ImportFailure (codes unreadable, special_file, too_large).
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImportFailure(path, "file not found", "unreadable") from None
    except OSError as exc:
        raise ImportFailure(path, f"cannot read file ({exc.strerror or exc})", "unreadable") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImportFailure(path, "is a folder, not a file (use import_folder)", "unreadable")
    if not stat.S_ISREG(st.st_mode):
        raise ImportFailure(path, f"{file_kind(st.st_mode)}, not a regular file: not read", "special_file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise ImportFailure(path, f"file is {format_size(st.st_size)}, larger than the {format_size(max_bytes)} limit",
                            "too_large")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ImportFailure(path, f"cannot read file ({exc.strerror or exc})", "unreadable") from None
    fh = open(fd, "rb", closefd=True)  # noqa: SIM115 -- the caller closes it
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        fh.close()
        raise ImportFailure(path, f"{file_kind(mode)}, not a regular file: not read", "special_file")
    return fh


def load_bytes(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file, refusing one larger than `max_bytes` before reading it."""
    with open_regular(path, max_bytes) as fh:
        try:
            data = fh.read(max_bytes + 1)  # the file may have grown since stat()
        except OSError as exc:
            raise ImportFailure(path, f"cannot read file ({exc.strerror or exc})", "unreadable") from None
    if len(data) > max_bytes:
        raise ImportFailure(path, f"file is larger than the {format_size(max_bytes)} limit", "too_large")
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
        raise ImportFailure(name, f"not UTF-8 text (invalid byte at offset {exc.start})", "not_text") from None
    except RecursionError:
        raise ImportFailure(name, "nested too deeply to be a roast profile", "malformed") from None
    except MemoryError:
        raise ImportFailure(name, "too large to parse", "too_large") from None
    except Exception as exc:  # noqa: BLE001 -- the fence is the point
        # The message of an unexpected error may quote file content; the type is enough here.
        log.debug("unexpected error importing %s", name, exc_info=True)
        raise ImportFailure(name, f"malformed content ({type(exc).__name__})", "malformed") from None


def check_utf8(data: bytes, name: str) -> None:
    """Raise ImportFailure unless `data` is UTF-8, without holding a decoded copy of it all."""
    view = memoryview(data)
    pos, n = 0, len(data)
    try:
        while pos < n:
            _, used = codecs.utf_8_decode(view[pos:pos + _UTF8_CHUNK], "strict", pos + _UTF8_CHUNK >= n)
            pos += used
    except UnicodeDecodeError as exc:
        raise ImportFailure(name, f"not UTF-8 text (invalid byte at offset {pos + exc.start})", "not_text") from None


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 text (a leading BOM is tolerated by callers that want it, not here)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImportFailure(name, f"not UTF-8 text (invalid byte at offset {exc.start})", "not_text") from None


def load_json(data: bytes | str, name: str, what: str = "file"):
    """JSON in bounded memory and linear time (`roastcore.io.literal.parse_json`): long number
    lists come back as float64 arrays and lists of {time, value} points as (n, 2) arrays.
    Raises ImportFailure (codes not_json, too_large)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    try:
        return parse_json(data)
    except LiteralError as exc:
        line = data.count(b"\n", 0, exc.offset) + 1
        column = exc.offset - (data.rfind(b"\n", 0, exc.offset) + 1) + 1
        code = "too_large" if exc.definite and "values" in exc.message else "not_json"
        raise ImportFailure(name, f"{what} is not valid JSON (line {line}, column {column}: {exc.message})"
                            if code == "not_json" else f"{what}: {exc.message}", code) from None


def check_samples(count: int, name: str, field: str) -> None:
    if count > MAX_SAMPLES:
        raise ImportFailure(name, f"{field} holds {count:,} samples, more than the {MAX_SAMPLES:,} a roast "
                                  "recording has", "too_large")


def to_float(value) -> float | None:
    """A finite float from a number or a numeric string; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        if "," in value and _THOUSANDS.match(value):  # "1,950" as scraped from a web page
            value = value.replace(",", "")
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return out if math.isfinite(out) else None


def numeric_array(values, name: str, field: str) -> np.ndarray:
    """A 1-D float array from a list of numbers; non-numbers (None, strings, NaN) become NaN.

    A float array (a long number list as the .alog parser returns it) is used as it is: its
    non-finite values are set to NaN in place.
    """
    if isinstance(values, np.ndarray) and values.dtype == np.float64 and values.ndim == 1:
        values[~np.isfinite(values)] = np.nan
        return values
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
    if ok.all():  # the common case, without index arrays as long as the recording
        steps = np.diff(times)
        k = int(np.argmax(steps)) if steps.size else 0
        gap = float(steps[k]) if steps.size and steps[k] > 0 else 0.0
        return values.astype(float, copy=True), gap, float(times[k if gap > 0 else 0])
    idx = np.flatnonzero(ok)
    filled = np.interp(times, times[idx], values[idx])
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


def sample_grid(times: np.ndarray) -> tuple[float, np.ndarray | None]:
    """(interval, None) when the sample times already sit on a regular grid (within 1% of their
    median step), else (1.0, the 1 s grid from 0 to the last time) to interpolate onto."""
    if times.size >= 2:
        steps = np.diff(times)
        step = float(np.median(steps))
        if step > 0 and np.all(np.abs(steps - step) <= 0.01 * step):
            return step, None
    return 1.0, np.arange(int(round(times[-1])) + 1, dtype=float)
