"""Onyx-style roast JSON: read the scraped Onyx Coffee Lab files, write the same shape back.

Shape (see ../shared/data/README.md): `metadata` (product_name, origin, process, roast_level,
variety, roaster_machine, target_finish_temp, altitude[_numeric], flavor_notes_parsed,
roast_info{batch, charge_temp}), `roast_profile.bean_temp` = [{time, value}] in °F from CHARGE,
`summary` (turning_point_time/temp, ...). roastcore adds three optional keys that Onyx files
lack and `read_onyx` understands: `roast_profile.env_temp` (ET, same shape),
`roast_profile.events` ({name: seconds}) and `metadata.weight_g` / `metadata.density`.
"""

from __future__ import annotations

import json
import logging
import os

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
    find_origin,
    parse_altitude_m,
)
from roastcore.profile import BT_MAX_F, EVENT_NAMES, Profile, ProfileMeta, find_turning_point

log = logging.getLogger(__name__)

MAX_GAP_S = 30.0  # longer holes in a curve are fiction once interpolated
FORMAT_TAG = "roastcore-onyx/1"


def read_onyx(path: str | os.PathLike) -> Profile:
    """An Onyx-style JSON file -> Profile, or ImportFailure naming the file and the reason."""
    name = str(path)
    return guarded(name, lambda: parse_onyx(load_bytes(path), name))


def parse_onyx(data: bytes, name: str) -> Profile:
    check_utf8(data, name)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    doc = load_json(data, name, "file")  # bounded: the curve comes back as one (n, 2) array
    del data
    if not isinstance(doc, dict):
        raise ImportFailure(name, f"top level is a JSON {type(doc).__name__}, expected an object", "not_onyx")
    profile_part = doc.get("roast_profile")
    if not isinstance(profile_part, dict):
        hint = " (it looks like an Artisan profile saved as JSON)" if "timex" in doc else ""
        raise ImportFailure(name, f"no 'roast_profile' object: not an Onyx-style roast JSON{hint}", "not_onyx")

    times, bt = _series(profile_part.get("bean_temp"), name, "roast_profile.bean_temp", required=True)
    t0 = times[0]
    times = times - t0  # the first point is CHARGE
    bt[~(bt > 0)] = np.nan  # 0 and negatives are a logger's "no reading"
    if not np.isfinite(bt).any():
        raise ImportFailure(name, "roast_profile.bean_temp has no usable temperatures", "no_bt")
    bt, gap, gap_at = fill_gaps(times, bt)
    if gap > MAX_GAP_S:
        raise ImportFailure(name, f"bean_temp has a {gap:.0f} s hole starting {gap_at:.0f} s after CHARGE", "gap")

    interval, grid = sample_grid(times)
    bt = bt if grid is None else np.interp(grid, times, bt)
    et = _env_temp(profile_part.get("env_temp"), t0, times, grid, name)

    n = bt.size
    duration = (n - 1) * interval
    events = _events(doc, profile_part, t0, duration, bt, interval)
    meta = _meta(doc.get("metadata"), name)
    return build_profile(name, bt=bt, interval_s=interval, et=et, events=events, meta=meta)


def _series(points, name: str, field: str, required: bool) -> tuple[np.ndarray, np.ndarray]:
    """[{time, value}, ...] -> (times, values); values that are not numbers become NaN.

    `load_json` hands a list of numeric points over as an (n, 2) array already."""
    if not isinstance(points, (list, np.ndarray)) or len(points) == 0:
        if required:
            raise ImportFailure(name, f"{field} is missing or empty: no samples", "no_samples")
        raise ImportFailure(name, f"{field} is not a list of points", "malformed")
    check_samples(len(points), name, field)
    if isinstance(points, np.ndarray):
        if points.ndim != 2:
            raise ImportFailure(name, f"{field}[0] is a number, expected {{time, value}}", "malformed")
        times, values = points[:, 0].copy(), points[:, 1].copy()
        bad = np.flatnonzero(~np.isfinite(times))
        if bad.size:
            raise ImportFailure(name, f"{field}[{bad[0]}].time is {times[bad[0]]}, not a number", "malformed")
        values[~np.isfinite(values)] = np.nan
    else:
        times, values = _point_list(points, name, field)
    if len(times) > 1 and not np.all(np.diff(times) > 0):
        bad = int(np.flatnonzero(np.diff(times) <= 0)[0]) + 1
        raise ImportFailure(name, f"{field} times are not increasing at point {bad} ({times[bad]:g} s)", "malformed")
    return times, values


def _point_list(points: list, name: str, field: str) -> tuple[np.ndarray, np.ndarray]:
    times = np.empty(len(points))
    values = np.empty(len(points))
    for i, point in enumerate(points):
        if not isinstance(point, dict):
            raise ImportFailure(name, f"{field}[{i}] is a {type(point).__name__}, expected {{time, value}}", "malformed")
        t = to_float(point.get("time"))
        if t is None:
            raise ImportFailure(name, f"{field}[{i}].time is {_show(point.get('time'))}, not a number", "malformed")
        v = to_float(point.get("value"))
        times[i] = t
        values[i] = np.nan if v is None else v
    return times, values


def _env_temp(points, t0: float, times: np.ndarray, grid, name: str) -> np.ndarray | None:
    """ET (roastcore extension) on the BT grid when usable, else None. Never rejects the file."""
    if (points.size == 0) if isinstance(points, np.ndarray) else not points:
        return None
    try:
        et_times, et = _series(points, name, "roast_profile.env_temp", required=False)
    except ImportFailure as exc:
        log.info("%s: ignoring ET: %s", name, exc.reason)
        return None
    et[~(et > -40)] = np.nan
    if np.isfinite(et).sum() < 0.8 * et.size:
        return None
    et, gap, _ = fill_gaps(et_times - t0, et)
    if gap > MAX_GAP_S:
        return None
    target = times if grid is None else grid
    return np.interp(target, et_times - t0, et)


def _events(doc: dict, profile_part: dict, t0: float, duration: float, bt: np.ndarray,
            interval: float) -> dict[str, float]:
    events: dict[str, float] = {}
    extra = profile_part.get("events")
    if isinstance(extra, dict):  # roastcore extension: every marked event
        for key, value in extra.items():
            t = to_float(value)
            if key in EVENT_NAMES and t is not None and 0 < t - t0 <= duration + 1e-6:
                events[key] = t - t0
    summary = doc.get("summary")
    if "TP" not in events and isinstance(summary, dict):
        tp = to_float(summary.get("turning_point_time"))
        if tp is not None and 0 < tp - t0 < duration:
            events["TP"] = tp - t0
    if "TP" not in events:
        found = find_turning_point(bt, interval)
        if found is not None:
            events["TP"] = found[0]
    events["DROP"] = duration
    return events


def _shifted_layout(meta: dict) -> bool:
    """The older product-page layout the scraper misread: a letter-spaced product name
    ("C\\n\\n\\no\\n\\n\\ns...") and every field one slot off (variety in `origin`, harvest month
    in `variety`, the process in `harvest_season`, a constant "Washed" in `process`)."""
    product = meta.get("product_name")
    return isinstance(product, str) and "\n" in product and find_origin(meta.get("origin")) is None


def _show(value) -> str:
    """A value from the file for a reason: a short quoted token, or its type."""
    if isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return quote(value)
    return "null" if value is None else f"a {type(value).__name__}"


def _meta(raw, name: str) -> ProfileMeta:
    m = raw if isinstance(raw, dict) else {}
    info = m.get("roast_info") if isinstance(m.get("roast_info"), dict) else {}
    product_raw = m.get("product_name")
    if _shifted_layout(m):
        spaced_name = product_raw.replace("\n", "")  # "Costa Rica Las Lajas Natural"
        origin = find_origin(spaced_name)  # the origin slot holds the variety; the name may say it
        process = canonical_process(m.get("harvest_season"))
        variety = canonical_variety(m.get("origin"))
    else:
        origin = canonical_origin(m.get("origin"))
        process = canonical_process(m.get("process"))
        variety = canonical_variety(m.get("variety"))
    squash = isinstance(product_raw, str) and "\n" in product_raw
    charge = to_float(info.get("charge_temp"))
    if charge is not None and not 0 < charge <= BT_MAX_F:
        charge = None
    return ProfileMeta(
        origin=origin,
        process=process,
        variety=variety,
        roast_level=canonical_roast_level(m.get("roast_level")),
        flavors=canonical_flavors(m.get("flavor_notes_parsed")),
        roaster=canonical_roaster(m.get("roaster_machine")),
        charge_temp_f=charge,
        target_finish_f=_plausible(to_float(m.get("target_finish_temp")), 200, BT_MAX_F),
        altitude_m=parse_altitude_m(m.get("altitude_numeric")) or parse_altitude_m(m.get("altitude")),
        density=_plausible(to_float(m.get("density")), 200, 1200),
        weight_g=_plausible(to_float(m.get("weight_g")), 0, 1e6),
        batch_id=clean_text(info.get("batch"), max_len=60),
        product=canonical_product(product_raw, squash_spaces=squash),
        source_file=name,
    )


def _plausible(value: float | None, lo: float, hi: float) -> float | None:
    return value if value is not None and lo < value <= hi else None


# ------------------------------------------------------------------ writing
def write_json(profile: Profile, path: str | os.PathLike, indent: int | None = None) -> None:
    """Write `profile` as Onyx-shaped JSON that `read_onyx` reads back (atomic)."""
    atomic_write_text(path, json.dumps(to_onyx_dict(profile), indent=indent, ensure_ascii=False, allow_nan=False))


def to_onyx_dict(profile: Profile) -> dict:
    meta = profile.meta
    times = profile.times_s
    integer_grid = abs(profile.interval_s - round(profile.interval_s)) < 1e-9

    def point_list(values: np.ndarray) -> list[dict]:
        return [{"time": int(round(t)) if integer_grid else round(float(t), 6), "value": round(float(v), 3)}
                for t, v in zip(times, values, strict=True)]

    tp = profile.turning_point()
    roast_profile: dict = {"bean_temp": point_list(profile.bt)}
    if profile.et is not None:
        roast_profile["env_temp"] = point_list(profile.et)
    roast_profile["events"] = {k: round(v, 3) for k, v in profile.events.items()}
    return {
        "format": FORMAT_TAG,
        "metadata": {
            "product_name": meta.product,
            "origin": meta.origin,
            "process": meta.process,
            "roast_level": meta.roast_level,
            "variety": meta.variety,
            "roaster_machine": meta.roaster,
            "target_finish_temp": meta.target_finish_f,
            "altitude_numeric": meta.altitude_m,
            "flavor_notes_parsed": list(meta.flavors),
            "roast_info": {
                "batch": meta.batch_id,
                "charge_temp": None if meta.charge_temp_f is None else f"{meta.charge_temp_f:.1f}",
            },
            "weight_g": meta.weight_g,
            "density": meta.density,
        },
        "roast_profile": roast_profile,
        "summary": {
            "duration_seconds": profile.duration_s,
            "duration_minutes": profile.duration_s / 60.0,
            "data_points": profile.n,
            "start_temp": round(profile.charge_f, 3),
            "finish_temp": round(profile.finish_f, 3),
            "min_temp": round(float(profile.bt.min()), 3),
            "max_temp": round(float(profile.bt.max()), 3),
            "turning_point_temp": None if tp is None else round(tp[1], 3),
            "turning_point_time": None if tp is None else round(tp[0], 3),
        },
    }
