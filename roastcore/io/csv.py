"""Plain CSV profiles: `time_s, bt_f[, et_f]` (or `bt_c`/`et_c`), metadata in `# key: value` lines.

    # roastcore profile
    # origin: "Colombia"
    # flavors: ["cocoa", "dates"]
    # events: {"TP": 95.0, "FCs": 512.0, "DROP": 700.0}
    time_s,bt_f,et_f
    0,426.9,
    1,426.6,

Header values are JSON when they parse as JSON, else plain text, so hand-written headers
(`# origin: Colombia`) work. Metadata may instead (or also) live in a sidecar `<file>.csv.json`
holding one JSON object with the same keys; the sidecar wins where both give a key.
`import_folder` skips `*.csv.json` files for that reason. The first row is CHARGE; times are
shifted to start at 0. A regular time grid is kept as is, an irregular one is resampled to 1 s.
Empty cells are gaps (interpolated when shorter than 30 s).

Bounded for any input: lines are read one at a time into float arrays, at most MAX_SAMPLES
rows; header values are kept only for the keys read (HEADER_KEYS); JSON goes through
`load_json`'s limits.
"""

from __future__ import annotations

import csv as _csv  # the standard library module (absolute import), not this file
import json
import logging
import os
import re
from array import array
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from roastcore.fsutil import atomic_write_text
from roastcore.io.base import (
    MAX_SAMPLES,
    ImportFailure,
    build_profile,
    decode_text,
    fill_gaps,
    guarded,
    load_bytes,
    load_json,
    quote,
    sample_grid,
    to_float,
)
from roastcore.io.normalize import (
    canonical_flavors,
    canonical_origin,
    canonical_process,
    canonical_product,
    canonical_roast_level,
    canonical_roaster,
    canonical_variety,
    clean_text,
)
from roastcore.profile import EVENT_NAMES, Profile, ProfileMeta, c_to_f, f_to_c

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".json"  # appended to the full CSV name: roast.csv -> roast.csv.json
MAX_GAP_S = 30.0
_TIME_COLUMNS = ("time_s", "time", "seconds", "t_s", "t")
_NUMERIC_META = ("charge_temp_f", "target_finish_f", "altitude_m", "density", "weight_g")
HEADER_KEYS = frozenset(("origin", "process", "variety", "roast_level", "flavors", "roaster", "batch_id",
                         "product", "events", "interval_s") + _NUMERIC_META)
_LINE = re.compile("[^\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+")  # between str.splitlines()'s line ends


def sidecar_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def read_csv(path: str | os.PathLike) -> Profile:
    """A CSV profile (+ optional sidecar) -> Profile, or ImportFailure with the reason."""
    name = str(path)

    def parse() -> Profile:
        sidecar = None
        side = sidecar_path(path)
        if side.is_file():
            sidecar = load_bytes(side)
        return parse_csv(load_bytes(path), name, sidecar)

    return guarded(name, parse)


def parse_csv(data: bytes, name: str, sidecar: bytes | None = None) -> Profile:
    text = decode_text(data, name).lstrip("\ufeff")
    del data
    header: dict[str, object] = {}
    body = _body_lines(text, header, name)
    try:
        reader = _csv.reader(body)
        columns = [c.strip().lower() for c in next(reader, [])]
        if not columns:
            raise ImportFailure(name, "no column header and no rows: empty CSV", "no_samples")
        time_col = next((columns.index(c) for c in _TIME_COLUMNS if c in columns), None)
        if time_col is None:
            raise ImportFailure(name, f"no time column (expected one of {', '.join(_TIME_COLUMNS)}); "
                                      f"{_found(columns)}", "malformed")
        bt_col, bt_unit = _temp_column(columns, "bt")
        if bt_col is None:
            raise ImportFailure(name, f"no bean-temperature column (expected bt_f or bt_c); {_found(columns)}", "malformed")
        et_col, et_unit = _temp_column(columns, "et")
        # array('d'): 8 bytes a value, however many rows a hostile file has (up to MAX_SAMPLES)
        times, bt, et = array("d"), array("d"), array("d")
        for line_no, row in enumerate(reader, start=2):
            if line_no > MAX_SAMPLES + 1:
                raise ImportFailure(name, f"more than {MAX_SAMPLES:,} data rows: more than a roast recording has",
                                    "too_large")
            cell = row[time_col] if time_col < len(row) else ""
            t = to_float(cell)
            if t is None:
                raise ImportFailure(name, f"data row {line_no}: time {quote(cell)} is not a number", "malformed")
            times.append(t)
            bt.append(_cell(row, bt_col))
            if et_col is not None:
                et.append(_cell(row, et_col))
    except _csv.Error as exc:  # e.g. an unterminated quote swallowing the file into one cell
        raise ImportFailure(name, f"not a readable CSV ({exc})", "malformed") from None
    del text
    if sidecar is not None:
        header.update(_sidecar(sidecar, name))
    if len(times) < 2:
        raise ImportFailure(name, f"{len(times)} data row(s): a roast needs many", "no_samples")

    times_a = np.frombuffer(times, dtype=float)
    if not np.all(np.diff(times_a) > 0):
        bad = int(np.flatnonzero(np.diff(times_a) <= 0)[0]) + 2
        raise ImportFailure(name, f"times are not increasing at data row {bad}", "malformed")
    times_a = times_a - times_a[0]

    bt_a = _to_f(np.frombuffer(bt, dtype=float), bt_unit)
    if not np.isfinite(bt_a).any():
        raise ImportFailure(name, "the BT column holds no numbers", "no_bt")
    bt_a, gap, gap_at = fill_gaps(times_a, bt_a)
    if gap > MAX_GAP_S:
        raise ImportFailure(name, f"BT is missing for {gap:.0f} s from {gap_at:.0f} s", "gap")
    et_a = None
    if et_col is not None:
        et_a = _to_f(np.frombuffer(et, dtype=float), et_unit)
        if np.isfinite(et_a).sum() >= 0.8 * et_a.size:
            et_a, et_gap, _ = fill_gaps(times_a, et_a)
            et_a = et_a if et_gap <= MAX_GAP_S else None
        else:
            et_a = None

    interval, grid = sample_grid(times_a)
    if grid is not None:
        bt_a = np.interp(grid, times_a, bt_a)
        et_a = None if et_a is None else np.interp(grid, times_a, et_a)
    duration = (bt_a.size - 1) * interval
    header.pop("interval_s", None)  # informative only: the time column decides the grid
    events = _events(header.pop("events", None), duration)
    meta = _meta(header, name)
    return build_profile(name, bt=bt_a, interval_s=interval, et=et_a, events=events, meta=meta)


def _body_lines(text: str, header: dict, name: str) -> Iterator[str]:
    """The CSV's non-blank, non-'#' lines, one at a time (no list of every line: a file of
    empty lines would cost ~50 bytes a byte); `# key: value` lines for known keys fill `header`."""
    for match in _LINE.finditer(text):  # runs of line breaks are skipped inside the regex engine
        line = match.group()
        stripped = line.strip()
        if stripped.startswith("#"):
            key, sep, value = stripped[1:].partition(":")
            key = key.strip().lower()
            if sep and key in HEADER_KEYS:
                header[key] = _header_value(value.strip(), name)
        elif stripped:
            yield line


def _header_value(raw: str, name: str):
    try:
        return load_json(raw, name, "a header value")
    except ImportFailure:
        return raw  # plain text, as hand-written headers are


def _found(columns: list[str]) -> str:
    """The header row, shown as its first column only (it may be any file's first line)."""
    more = f" and {len(columns) - 1} more" if len(columns) > 1 else ""
    return f"the first column is {quote(columns[0], 20)}{more}"


def _sidecar(data: bytes, name: str) -> dict:
    doc = load_json(decode_text(data, name), name, "metadata sidecar")
    if not isinstance(doc, dict):
        raise ImportFailure(name, "metadata sidecar must hold one JSON object", "malformed")
    return {key.lower(): v for k, v in doc.items() if (key := str(k)).lower() in HEADER_KEYS}


def _temp_column(columns: list[str], prefix: str) -> tuple[int | None, str]:
    for unit in ("f", "c"):
        for candidate in (f"{prefix}_{unit}", f"{prefix}_deg{unit}", f"{prefix}{unit}"):
            if candidate in columns:
                return columns.index(candidate), unit
    return None, "f"


def _cell(row: list[str], col: int) -> float:
    if col >= len(row):
        return np.nan
    value = to_float(row[col])
    return value if value is not None and value > 0 else np.nan  # 0/-1: no reading


def _to_f(values: np.ndarray, unit: str) -> np.ndarray:
    return c_to_f(values) if unit == "c" else values.astype(float)


def _events(raw, duration: float) -> dict[str, float]:
    events: dict[str, float] = {}
    if isinstance(raw, dict):
        for key, value in raw.items():
            t = to_float(value)
            if key in EVENT_NAMES and t is not None and 0 < t <= duration + 1e-6:
                events[key] = min(t, duration)
    events["DROP"] = duration
    return events


def _meta(header: dict, name: str) -> ProfileMeta:
    numbers = {}
    for key in _NUMERIC_META:
        value = to_float(header.get(key))
        numbers[key] = value
    return ProfileMeta(
        origin=canonical_origin(header.get("origin")),
        process=canonical_process(header.get("process")),
        variety=canonical_variety(header.get("variety")),
        roast_level=canonical_roast_level(header.get("roast_level")),
        flavors=canonical_flavors(header.get("flavors")),
        roaster=canonical_roaster(header.get("roaster")),
        batch_id=clean_text(header.get("batch_id"), max_len=60),
        product=canonical_product(header.get("product")),
        source_file=name,
        **numbers,
    )


# ------------------------------------------------------------------ writing
def to_csv_text(profile: Profile, unit: str = "F", generated: dict | None = None) -> str:
    """`generated` ({"model", "request", "created"}) marks a model's curve in the header."""
    if unit not in ("C", "F"):
        raise ValueError(f"unit must be 'C' or 'F', got {unit!r}")
    suffix = unit.lower()
    conv = f_to_c if unit == "C" else (lambda a: np.asarray(a, dtype=float))
    lines = ["# roastcore profile"]
    if generated:  # first thing in the file: this curve is a model's, not a real roast
        lines = ["# roastcore GENERATED profile (not a real roast)"] + [
            f"# generated_{key}: {json.dumps(str(generated.get(key, '?')), ensure_ascii=False)}"
            for key in ("model", "request", "created")]
    meta = profile.meta.to_dict()
    meta.pop("source_file", None)
    for key, value in meta.items():
        if value not in (None, [], ""):
            lines.append(f"# {key}: {json.dumps(value, ensure_ascii=False)}")
    lines.append(f"# interval_s: {json.dumps(profile.interval_s)}")
    lines.append(f"# events: {json.dumps({k: round(v, 4) for k, v in profile.events.items()})}")
    columns = ["time_s", f"bt_{suffix}"] + ([f"et_{suffix}"] if profile.et is not None else [])
    lines.append(",".join(columns))
    bt = conv(profile.bt)
    et = None if profile.et is None else conv(profile.et)
    for i, t in enumerate(profile.times_s):
        cells = [f"{t:.4f}".rstrip("0").rstrip("."), f"{bt[i]:.4f}"]
        if et is not None:
            cells.append(f"{et[i]:.4f}")
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def write_csv(profile: Profile, path: str | os.PathLike, unit: str = "F", generated: dict | None = None) -> None:
    """Write `time_s,bt_f[,et_f]` (or °C columns with unit="C") with `# key: value` metadata;
    `generated` names the model and request of a generated curve in the header."""
    atomic_write_text(path, to_csv_text(profile, unit, generated))
