"""Artisan .alog profiles: read real logs into Profiles, write Profiles Artisan loads as background.

Format: ../shared/docs/artisan-alog-format.md. An .alog is `repr(dict)`; it is parsed as a Python
literal, never with `eval`: by `roastcore.io.literal` (linear time, bounded memory), with
`ast.literal_eval` deciding only for small files that parser does not read. It must start with
'{'. Times in `timex` count from the start of the recording, not from CHARGE, so the curve is
cropped CHARGE..DROP via `timeindex` and resampled onto a 1 s grid (loggers sample every
0.5-3 s, not always evenly).

Missing marks have fallbacks, each a documented guess rather than a silent one:
* CHARGE unset (-1): the sudden BT fall when cold beans meet the hot probe (Artisan's
  autoCHARGE idea) in the first half of the recording; without one, the recording start.
* DROP unset (0): the BT peak after the turning point when the probe cools after it (the
  beans left); without a cooling tail, the last sample.
The result must still look like a roast (length, temperatures, no jumps) or the file is
rejected with the reason.
"""

from __future__ import annotations

import ast
import codecs
import json
import logging
import os
import re
from collections import deque

import numpy as np

from roastcore.fsutil import atomic_write_text
from roastcore.io.base import (
    ImportFailure,
    build_profile,
    check_samples,
    check_utf8,
    fill_gaps,
    guarded,
    load_bytes,
    load_json,
    numeric_array,
    quote,
    to_float,
)
from roastcore.io.literal import LiteralError, fallback_small, read_literal
from roastcore.io.normalize import (
    canonical_flavors,
    canonical_product,
    canonical_roaster,
    clean_text,
    find_origin,
    find_process,
)
from roastcore.profile import (
    BT_MAX_F,
    BT_MIN_F,
    ET_MAX_F,
    ET_MIN_F,
    MAX_DURATION_S,
    MIN_DURATION_S,
    Profile,
    ProfileMeta,
    c_to_f,
    f_to_c,
    find_turning_point,
)

log = logging.getLogger(__name__)

# timeindex slots (Artisan): CHARGE, DRY END, FCs, FCe, SCs, SCe, DROP, COOL
CHARGE, DRY, FCS, FCE, SCS, SCE, DROP, COOL = range(8)
_EVENT_SLOTS = (("DRY_END", DRY, "DRY"), ("FCs", FCS, "FCs"), ("FCe", FCE, "FCe"))

MAX_GAP_S = 30.0  # a longer stretch without BT readings is not a curve any more
MIN_FINISH_F = 300.0  # below this at DROP nothing was roasted: aborted or test recording
MAX_STEP_F = 25.0  # °F per second; beans cannot do this once the charge transient is over
CHARGE_TRANSIENT_S = 60.0  # right after CHARGE the probe may fall 100+ °F/s
CHARGE_FALL_F = 40.0  # auto-CHARGE: this fall of BT ...
CHARGE_FALL_WINDOW_S = 20.0  # ... within this many seconds ...
CHARGE_MIN_PROBE_F = 200.0  # ... from a probe at least this hot (a preheated drum)
COOLING_FALL_F = 30.0  # auto-DROP: BT falls this far after its peak -> the beans are out
FIRST_CRACK_F = 380.0  # an unmarked recording that stops cooler than this never reached FCs
_LAST_SAMPLE = "using the last sample"
META_MARKER = "roastcore-meta: "  # roastingnotes line carrying our metadata on write/read


def read_alog(path: str | os.PathLike) -> Profile:
    """An Artisan .alog -> Profile (°F, 1 s grid, CHARGE..DROP), or ImportFailure with the reason."""
    name = str(path)
    return guarded(name, lambda: parse_alog(load_bytes(path), name))


# ------------------------------------------------------------------ parsing
def parse_alog(data: bytes, name: str) -> Profile:
    check_utf8(data, name)
    if not data.startswith(b"{"):
        bom = " (it starts with a byte-order mark)" if data.startswith(b"\xef\xbb\xbf") else ""
        raise ImportFailure(name, f"does not start with '{{'{bom}: not an Artisan profile", "not_alog")
    doc = _literal(data, name)
    del data  # the parsed arrays are all that is needed from here on
    if not isinstance(doc, dict):
        raise ImportFailure(name, f"top level is a {type(doc).__name__}, expected a dict", "not_alog")

    mode = _mode(doc, name)
    for field in ("timex", "temp2"):
        values = doc.get(field)
        if isinstance(values, (list, tuple, np.ndarray)):
            check_samples(len(values), name, field)
    timex = numeric_array(doc.get("timex", []), name, "timex")
    temp2 = numeric_array(doc.get("temp2", []), name, "temp2")
    n = min(timex.size, temp2.size)  # Artisan truncates to the shorter list as well
    if n == 0:
        raise ImportFailure(name, "no samples: timex/temp2 are empty (the recording never started)", "no_samples")
    timex, temp2 = timex[:n], temp2[:n]
    if not np.isfinite(timex).all():
        raise ImportFailure(name, "timex holds values that are not numbers", "malformed")
    if np.any(np.diff(timex) < 0):
        bad = int(np.flatnonzero(np.diff(timex) < 0)[0]) + 1
        raise ImportFailure(name, f"timex runs backwards at sample {bad}", "malformed")
    temp2[~(temp2 > 0)] = np.nan  # -1 is Artisan's "no reading"; 0 is an unplugged probe
    if not np.isfinite(temp2).any():
        raise ImportFailure(name, "no usable BT: temp2 holds only -1/0 (no probe reading)", "no_bt")
    if mode is None:  # no unit recorded (Artisan would assume its own): a °C roast never passes 260
        mode = "C" if np.nanmax(temp2) < 260 else "F"
    bt_f = _to_f(temp2, mode)

    index = _timeindex(doc, timex, name)
    valid = np.isfinite(bt_f)
    bt_all, _, _ = fill_gaps(timex, bt_f)  # for the detectors only; the crop is checked below
    charge, charge_note = _resolve_charge(index, timex, bt_all)
    drop, drop_note = _resolve_drop(index, timex, bt_all, charge, name)
    for note in (charge_note, drop_note):
        if note:
            log.debug("%s: %s", name, note)

    # crop CHARGE..DROP, times from CHARGE
    t = timex[charge:drop + 1] - timex[charge]
    span = float(t[-1])
    fallback = "" if not (charge_note or drop_note) else f" ({'; '.join(x for x in (charge_note, drop_note) if x)})"
    if span < MIN_DURATION_S:
        raise ImportFailure(name, f"CHARGE..DROP spans {span:.1f} s, shorter than {MIN_DURATION_S:.0f} s: "
                                  f"an aborted or test recording{fallback}", "too_short")
    if span > MAX_DURATION_S:
        raise ImportFailure(name, f"CHARGE..DROP spans {span:.0f} s, longer than {MAX_DURATION_S:.0f} s{fallback}", "too_long")
    keep = np.concatenate(([True], np.diff(t) > 0))  # repeated timestamps: keep the first reading
    t, bt_crop = t[keep], bt_f[charge:drop + 1][keep]
    if not valid[charge:drop + 1].any():
        raise ImportFailure(name, "no usable BT between CHARGE and DROP", "no_bt")
    bt_crop, gap, gap_at = fill_gaps(t, bt_crop)
    if gap > MAX_GAP_S:
        raise ImportFailure(name, f"BT is missing for {gap:.0f} s from {gap_at:.0f} s after CHARGE", "gap")

    grid = np.arange(int(round(span)) + 1, dtype=float)  # DROP lands on the last whole second
    bt = np.interp(grid, t, bt_crop)
    _check_curve(bt, name, fallback)
    if drop_note.endswith(_LAST_SAMPLE) and not charge < index[FCS] <= drop and bt[-1] < FIRST_CRACK_F:
        # the logger was stopped mid-roast: no DROP, no first crack, no cooling, still cool beans
        raise ImportFailure(name, f"DROP unset and the recording stops at {bt[-1]:.0f} °F without first crack: "
                                  "an unfinished roast", "unfinished")
    et = _env_temp(doc.get("temp1"), n, mode, charge, drop, keep, t, grid, name)

    duration = float(grid[-1])
    events = _events(doc, index, timex, charge, drop, duration, bt)
    meta = _meta(doc, name)
    return build_profile(name, bt=bt, interval_s=1.0, et=et, events=events, meta=meta)


def _literal(data: bytes, name: str):
    """The parsed literal, with JSON look-alikes (templates, not Artisan output) named as such."""
    looks_like_json = data[1:2] != b"'"  # Artisan's repr() always starts "{'"
    try:
        parsed = read_literal(data)
    except LiteralError as exc:
        try:
            return fallback_small(data, exc, ast.literal_eval)
        except LiteralError as final:
            # MemoryError/RecursionError never reach the user as such: depth is a LiteralError
            raise ImportFailure(name, f"not a Python-literal Artisan profile ({final})", "malformed") from None
    if parsed.json_words:
        raise ImportFailure(name, "JSON template, not an Artisan profile: Artisan reads .alog files as "
                                  "Python literals and refuses JSON", "json_template")
    doc = parsed.value
    if looks_like_json and not parsed.python_syntax and isinstance(doc, dict) and doc:
        raise ImportFailure(name, "JSON template, not an Artisan profile (JSON syntax, not Artisan's repr output)",
                            "json_template")
    return doc


def _mode(doc: dict, name: str) -> str | None:
    mode = doc.get("mode")
    if isinstance(mode, str) and mode in ("C", "F"):
        return mode
    if mode is None:
        return None  # guessed from the BT values by the caller
    shown = quote(mode) if isinstance(mode, str) else f"a {type(mode).__name__}"
    raise ImportFailure(name, f"mode {shown} is neither 'C' nor 'F'", "malformed")


def _to_f(values: np.ndarray, mode: str) -> np.ndarray:
    return c_to_f(values) if mode == "C" else values.astype(float, copy=False)


def _timeindex(doc: dict, timex: np.ndarray, name: str) -> list[int]:
    """[CHARGE, DRY, FCs, FCe, SCs, SCe, DROP, COOL], clamped like Artisan (CHARGE -1 = unset)."""
    n = timex.size
    raw = doc.get("timeindex")
    if raw is None and "startend" in doc:
        raw = _old_format_index(doc, timex, name)
    if not isinstance(raw, (list, tuple, np.ndarray)):
        raw = []
    index = [-1] + [0] * 7
    for i, value in enumerate(raw[:8]):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            continue
        value = int(value)
        index[i] = max(-1, min(value, n - 1)) if i == CHARGE else max(0, min(value, n - 1))
    return index


def _old_format_index(doc: dict, timex: np.ndarray, name: str) -> list[int]:
    """Artisan < 0.5: 'startend' [chargeT, chargeBT, dropT, dropBT], 'dryend' [t, bt] and
    'cracks' [FCsT, FCsBT, FCeT, FCeBT, ...], times in seconds from the recording start."""

    def seconds(key: str, pos: int) -> float | None:
        values = doc.get(key)
        if not isinstance(values, (list, tuple, np.ndarray)) or len(values) <= pos:
            return None
        return to_float(values[pos])

    def to_index(t: float | None) -> int:
        return 0 if t is None or t <= 0 else int(np.argmin(np.abs(timex - (timex[0] + t))))

    charge_t, drop_t = seconds("startend", 0), seconds("startend", 2)
    if charge_t is None or drop_t is None:
        raise ImportFailure(name, "old-format file (<0.5) with a malformed 'startend' list", "old_format")
    charge = 0 if charge_t <= 0 else to_index(charge_t)
    return [charge, to_index(seconds("dryend", 0)), to_index(seconds("cracks", 0)), to_index(seconds("cracks", 2)),
            0, 0, to_index(drop_t), 0]


def _resolve_charge(index: list[int], timex: np.ndarray, bt: np.ndarray) -> tuple[int, str]:
    if index[CHARGE] >= 0:
        return index[CHARGE], ""
    marked = [i for i in index[DRY:COOL] if i > 0]
    stop = min(marked) if marked else timex.size - 1
    found = _detect_charge(timex, bt, stop)
    if found is None:
        return 0, "CHARGE unset: using the start of the recording"
    return found, f"CHARGE unset: detected from the BT fall at {timex[found] - timex[0]:.0f} s"


def _detect_charge(timex: np.ndarray, bt: np.ndarray, stop: int) -> int | None:
    """Index of the BT peak right before a sudden fall (cold beans hit a hot probe), searched in
    the first half of the recording up to `stop`; None when the probe never falls like that.

    The fall is looked for in the window of CHARGE_FALL_WINDOW_S after each sample. A sliding
    minimum (a deque of indices with rising BT) makes that O(n) whatever the timestamps: with
    many equal times every window would hold the whole recording.
    """
    horizon = timex[0] + 0.5 * (timex[stop] - timex[0])
    limit = min(stop, int(np.searchsorted(timex, horizon, side="right")))
    values = memoryview(np.ascontiguousarray(bt, dtype=np.float64))  # Python floats one by one, no copy
    window: deque[int] = deque()
    j = 0
    for first in range(0, limit, _CHUNK):  # in chunks: no full-length index arrays
        starts = np.flatnonzero(bt[first:min(limit, first + _CHUNK)] >= CHARGE_MIN_PROBE_F) + first
        if starts.size == 0:
            continue
        ends = np.searchsorted(timex, timex[starts] + CHARGE_FALL_WINDOW_S, side="right")
        j = max(j, int(starts[0]))
        for i, end in zip(starts.tolist(), ends.tolist(), strict=True):
            while j < end:
                while window and values[window[-1]] >= values[j]:
                    window.pop()
                window.append(j)
                j += 1
            while window[0] < i:
                window.popleft()
            if end - i > 1 and values[i] - values[window[0]] >= CHARGE_FALL_F:
                segment = bt[i:end]
                before_fall = segment[: int(np.argmin(segment)) + 1]
                peak = i + before_fall.size - 1 - int(np.argmax(before_fall[::-1]))  # last sample at the peak
                return peak if peak < stop else None
    return None


_CHUNK = 4096  # samples per chunk: small lists, and numpy still does the bulk


def _resolve_drop(index: list[int], timex: np.ndarray, bt: np.ndarray, charge: int, name: str) -> tuple[int, str]:
    drop = index[DROP]
    if drop > 0:
        if drop <= charge:
            raise ImportFailure(name, f"DROP (sample {drop}) is not after CHARGE (sample {charge})", "bad_events")
        return drop, ""
    if charge >= timex.size - 1:
        raise ImportFailure(name, "CHARGE is the last sample and DROP is unset: no roast recorded", "too_short")
    seg = bt[charge:]
    tp = charge + int(np.argmin(seg[: max(1, seg.size // 2)]))
    peak = tp + int(np.argmax(bt[tp:]))
    if bt[peak:].min() <= bt[peak] - COOLING_FALL_F:
        return peak, f"DROP unset: using the BT peak at {timex[peak] - timex[charge]:.0f} s before the cooling"
    return timex.size - 1, "DROP unset: " + _LAST_SAMPLE


def _check_curve(bt: np.ndarray, name: str, fallback: str) -> None:
    """Reject curves no roast produces; each reason names the value and where it happens."""
    lo, hi = float(bt.min()), float(bt.max())
    if lo < BT_MIN_F or hi > BT_MAX_F:
        at = int(np.argmax(bt)) if hi > BT_MAX_F else int(np.argmin(bt))
        raise ImportFailure(name, f"BT reaches {bt[at]:.0f} °F at {at} s: outside the plausible "
                                  f"{BT_MIN_F:.0f}..{BT_MAX_F:.0f} °F", "implausible")
    if bt[-1] < MIN_FINISH_F:
        raise ImportFailure(name, f"BT at DROP is {bt[-1]:.0f} °F, below the {MIN_FINISH_F:.0f} °F any roast "
                                  f"reaches: an aborted or test recording{fallback}", "implausible")
    start = int(CHARGE_TRANSIENT_S)
    if bt.size > start + 1:
        steps = np.abs(np.diff(bt[start:]))
        k = int(np.argmax(steps))
        if steps[k] > MAX_STEP_F:
            raise ImportFailure(name, f"BT jumps {steps[k]:.0f} °F within 1 s at {start + k} s after CHARGE "
                                      "(a sensor glitch or swapped ET/BT channels)", "implausible")


def _env_temp(temp1, n: int, mode: str, charge: int, drop: int, keep: np.ndarray, t: np.ndarray,
              grid: np.ndarray, name: str) -> np.ndarray | None:
    """ET on the BT grid when temp1 is usable (mostly read, in range); otherwise None."""
    if not isinstance(temp1, (list, tuple, np.ndarray)) or len(temp1) < n:
        return None
    et = numeric_array(temp1[:n], name, "temp1")[charge:drop + 1][keep]
    et[~(et > 0)] = np.nan
    if np.isfinite(et).sum() < 0.8 * et.size:
        return None
    et, gap, _ = fill_gaps(t, _to_f(et, mode))
    et = np.interp(grid, t, et)
    if gap > MAX_GAP_S or et.min() < ET_MIN_F or et.max() > ET_MAX_F or np.ptp(et) < 1.0:
        log.debug("%s: ET ignored (gaps, range or flat)", name)
        return None
    return et


def _events(doc: dict, index: list[int], timex: np.ndarray, charge: int, drop: int, duration: float,
            bt: np.ndarray) -> dict[str, float]:
    computed = doc.get("computed") if isinstance(doc.get("computed"), dict) else {}
    charge_marked = index[CHARGE] >= 0
    # Times Artisan stored in `computed` are exact (ours are on the sample grid); trust them only
    # where they agree with the index to within a sample, i.e. they describe the same mark.
    tolerance = max(1.0, 1.5 * float(np.median(np.diff(timex)))) if timex.size > 1 else 1.0
    events: dict[str, float] = {}
    for event, slot, key in _EVENT_SLOTS:
        i = index[slot]
        if not (i > 0 and charge < i <= drop):
            continue
        at = float(timex[i] - timex[charge])
        stored = to_float(computed.get(f"{key}_time"))
        if charge_marked and stored is not None and abs(stored - at) <= tolerance:
            at = stored
        events[event] = min(max(at, 0.0), duration)
    tp = to_float(computed.get("TP_time")) if charge_marked else None
    if tp is not None and 0 < tp < duration and bt[0] - float(np.interp(tp, np.arange(bt.size), bt)) >= 15.0:
        events["TP"] = tp  # Artisan's TP, where the curve really dips (air roasters get a TP at 0)
    else:
        found = find_turning_point(bt, 1.0)
        if found is not None:
            events["TP"] = found[0]
    events["DROP"] = duration
    return events


def _decode_local(value) -> str | None:
    """Artisan stores strings unicode_escape-encoded; undo that (only on pure-ASCII text, where it
    is unambiguous; hand-edited files may carry raw UTF-8 that must stay as it is)."""
    if not isinstance(value, str):
        return None
    if "\\" in value and value.isascii():
        try:
            return codecs.unicode_escape_decode(value)[0]
        except (UnicodeDecodeError, ValueError):
            return value
    return value


_GRAMS = {"g": 1.0, "kg": 1000.0, "lb": 453.59237, "lbs": 453.59237, "oz": 28.349523}
_LITRES = {"l": 1.0, "ml": 0.001, "cl": 0.01, "dl": 0.1}
_DEFAULT_TITLE = re.compile(r"roaster\s*+scope", re.IGNORECASE)
_META_LINE = re.compile("^" + re.escape(META_MARKER) + r"([^\n\r]*+)", re.MULTILINE)


def _weight_g(doc: dict) -> float | None:
    weight = doc.get("weight")
    if not isinstance(weight, (list, tuple)) or len(weight) < 3 or not isinstance(weight[2], str):
        return None
    value, factor = to_float(weight[0]), _GRAMS.get(weight[2].strip().lower())
    if value is None or factor is None or value <= 0:
        return None
    grams = value * factor
    return grams if grams <= 1e6 else None


def _density_g_l(doc: dict) -> float | None:
    density = doc.get("density")
    if not isinstance(density, (list, tuple)) or len(density) < 4:
        return None
    w, wu, v, vu = density[:4]
    w, v = to_float(w), to_float(v)
    wf = _GRAMS.get(wu.strip().lower()) if isinstance(wu, str) else None
    vf = _LITRES.get(vu.strip().lower()) if isinstance(vu, str) else None
    if not (w and v and wf and vf) or w <= 0 or v <= 0:
        return None
    g_l = w * wf / (v * vf)
    return g_l if 200 <= g_l <= 1200 else None  # green coffee is 550-800 g/l


def _meta(doc: dict, name: str) -> ProfileMeta:
    title = _decode_local(doc.get("title"))
    beans = _decode_local(doc.get("beans"))
    notes = _decode_local(doc.get("roastingnotes")) or ""
    if not (title and not _DEFAULT_TITLE.search(title)):
        title = None  # "Roaster Scope" is Artisan's default title: no information
    batch_nr = doc.get("roastbatchnr")
    batch_id = None
    if isinstance(batch_nr, int) and not isinstance(batch_nr, bool) and batch_nr > 0:
        prefix = _decode_local(doc.get("roastbatchprefix")) or ""
        batch_id = clean_text(f"{prefix}{batch_nr}", max_len=60)
    meta = ProfileMeta(
        origin=find_origin(beans) or find_origin(title),
        process=find_process(beans) or find_process(title),
        roaster=canonical_roaster(_decode_local(doc.get("roastertype"))),
        weight_g=_weight_g(doc),
        density=_density_g_l(doc),
        batch_id=batch_id,
        product=canonical_product(beans) or canonical_product(title),
        source_file=name,
    )
    return _stored_meta(notes, meta, name) or meta


_META_TEXT_FIELDS = ("origin", "process", "variety", "roast_level", "roaster", "batch_id", "product")


def _stored_meta(notes: str, fallback: ProfileMeta, name: str) -> ProfileMeta | None:
    """The metadata write_alog stored in roastingnotes, when present and valid."""
    for match in _META_LINE.finditer(notes):
        try:
            stored = load_json(match.group(1), name, "the roastcore-meta line")
            if not isinstance(stored, dict):
                raise ValueError("not an object")
            # any file can carry such a line: text fields bounded like imported text, or dropped
            for key, value in stored.items():
                if key == "flavors":
                    stored[key] = canonical_flavors(value)
                elif key in _META_TEXT_FIELDS:
                    stored[key] = clean_text(value) if isinstance(value, str) else None
            stored["source_file"] = name
            return ProfileMeta.from_dict(stored)
        except (ValueError, TypeError) as exc:  # ImportFailure is a ValueError
            log.info("%s: ignoring unreadable %r line (%s)", name, META_MARKER.strip(), type(exc).__name__)
    return None


# ------------------------------------------------------------------ writing
def _encode_local(text: str) -> str:
    """Artisan's encodeLocal: unicode_escape so the file stays ASCII."""
    return codecs.unicode_escape_encode(text)[0].decode("ascii")


def to_alog_dict(profile: Profile, mode: str = "F", generated: dict | None = None) -> dict:
    """The dict write_alog serialises: Artisan's minimal background profile plus what we know.

    `generated` ({"model", "request", "created"}) marks a model's curve: the title and the
    roasting and cupping notes then say it is generated, by which model, for which request."""
    if mode not in ("C", "F"):
        raise ValueError(f"mode must be 'C' or 'F', got {mode!r}")

    def temps(values: np.ndarray) -> list[float]:
        values = f_to_c(values) if mode == "C" else np.asarray(values, dtype=float)
        return [round(float(v), 4) for v in values]

    n, step = profile.n, profile.interval_s
    meta = profile.meta
    bt = temps(profile.bt)
    et = temps(profile.et) if profile.et is not None else [-1.0] * n

    def slot(event: str) -> int:
        t = profile.events.get(event)
        return 0 if t is None else int(min(max(round(t / step), 1), n - 1))

    timeindex = [0, slot("DRY_END"), slot("FCs"), slot("FCe"), 0, 0, n - 1, 0]
    duration = profile.duration_s
    computed: dict = {"CHARGE_BT": bt[0], "CHARGE_ET": et[0], "DROP_time": round(duration, 4),
                      "DROP_BT": bt[-1], "DROP_ET": et[-1], "totaltime": round(duration, 4)}
    tp = profile.turning_point()
    if tp is not None:
        tp_idx = int(min(max(round(tp[0] / step), 0), n - 1))
        computed.update(TP_idx=tp_idx, TP_time=round(tp[0], 4), TP_BT=bt[tp_idx], TP_ET=et[tp_idx])
    for event, _slot, key in _EVENT_SLOTS:
        if event in profile.events:
            i = slot(event)
            computed.update({f"{key}_time": round(profile.events[event], 4), f"{key}_BT": bt[i], f"{key}_ET": et[i]})
    if "DRY_END" in profile.events:
        computed["dryphasetime"] = round(profile.events["DRY_END"], 4)
    if "FCs" in profile.events:
        computed["finishphasetime"] = round(duration - profile.events["FCs"], 4)
        if "DRY_END" in profile.events:
            computed["midphasetime"] = round(profile.events["FCs"] - profile.events["DRY_END"], 4)

    title = meta.product or meta.origin or "roastcore profile"
    beans = ", ".join(x for x in (meta.origin, meta.variety, meta.process) if x)
    doc: dict = {
        "title": _encode_local(title),
        "beans": _encode_local(beans),
        "mode": mode,
        "timex": [round(i * step, 4) for i in range(n)],
        "temp1": et,
        "temp2": bt,
        "timeindex": timeindex,
        "samplinginterval": float(step),
        "specialevents": [],
        "specialeventstype": [],
        "specialeventsvalue": [],
        "specialeventsStrings": [],
        "flavors": [5.0] * 9,  # Artisan's neutral cupping scores; the list must not be empty
        "computed": computed,
        "roastertype": _encode_local(meta.roaster or ""),
        "roastingnotes": _encode_local(META_MARKER + json.dumps(_meta_for_notes(meta), ensure_ascii=True)),
        "extradevices": [],
        "extratimex": [],
        "extratemp1": [],
        "extratemp2": [],
    }
    if generated:  # never let a model's curve pass for a real roast wherever Artisan shows text
        model, request = generated.get("model", "?"), generated.get("request", "?")
        said = (f"GENERATED curve, not a real roast: model {model}; request: {request}; "
                f"created {generated.get('created', '?')} by roastcore")
        doc["title"] = _encode_local(f"GENERATED by {model}: {request}"[:160])
        doc["roastingnotes"] = _encode_local(said + "\n" + META_MARKER + json.dumps(_meta_for_notes(meta), ensure_ascii=True))
        doc["cuppingnotes"] = _encode_local(said)
    if meta.weight_g:
        doc["weight"] = [float(meta.weight_g), 0.0, "g"]
    if meta.density:
        doc["density"] = [float(meta.density), "g", 1.0, "l"]
    if meta.batch_id and meta.batch_id.isdigit():
        doc["roastbatchnr"] = int(meta.batch_id)
        doc["roastbatchprefix"] = ""  # Artisan requires it next to roastbatchnr
    return doc


def _meta_for_notes(meta: ProfileMeta) -> dict:
    d = meta.to_dict()
    d.pop("source_file", None)
    return {k: v for k, v in d.items() if v not in (None, [], "")}


def write_alog(profile: Profile, path: str | os.PathLike, mode: str = "F", generated: dict | None = None) -> None:
    """Write an .alog Artisan 4.x loads as a background profile (°F, or °C with mode="C").

    One line of `repr(dict)`, no 'version'/'hash' (those switch on Artisan's signature
    checks). Round trip: read_alog(write_alog(p)) == p.resample(1.0) within 0.01 °F, events kept.
    `generated`: see `to_alog_dict` (a generated curve says so in its title and notes).
    """
    atomic_write_text(path, repr(to_alog_dict(profile, mode, generated)))
