"""Hostile and broken input: every reader returns a Profile or raises ImportFailure, nothing else."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roastcore.io import ImportFailure, read_profile
from roastcore.io.alog import parse_alog, to_alog_dict
from roastcore.io.base import guarded
from roastcore.io.csv import parse_csv, to_csv_text
from roastcore.io.onyx import parse_onyx, to_onyx_dict
from roastcore.profile import Profile

PARSERS = {".alog": parse_alog, ".json": parse_onyx, ".csv": parse_csv}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sample_profile() -> Profile:
    t = np.arange(601.0)
    bt = 160 + 260 * np.exp(-t / 25.0) + 250 * (1 - (1 - t / 600) ** 1.6)
    return Profile(bt=bt, et=bt + 70, events={"FCs": 480.0})


VALID = {
    ".alog": repr(to_alog_dict(sample_profile())).encode(),
    ".json": json.dumps(to_onyx_dict(sample_profile())).encode(),
    ".csv": to_csv_text(sample_profile()).encode(),
}


def outcome(suffix: str, data: bytes):
    """Parse through the same fence the readers use; anything but ImportFailure fails the test."""
    name = f"fuzz{suffix}"
    try:
        profile = guarded(name, lambda: PARSERS[suffix](data, name))
    except ImportFailure as exc:
        assert exc.path == name and exc.reason and exc.code
        return exc
    assert isinstance(profile, Profile)
    profile.validate()
    return profile


def test_valid_samples_parse():
    for suffix, data in VALID.items():
        assert isinstance(outcome(suffix, data), Profile)


@FUZZ
@given(suffix=st.sampled_from(sorted(PARSERS)), data=st.binary(max_size=2000))
def test_random_bytes(suffix, data):
    outcome(suffix, data)


@FUZZ
@given(suffix=st.sampled_from(sorted(PARSERS)), cut=st.floats(0, 1))
def test_truncated_files(suffix, cut):
    data = VALID[suffix]
    outcome(suffix, data[: int(len(data) * cut)])


@FUZZ
@given(suffix=st.sampled_from(sorted(PARSERS)), where=st.floats(0, 1), junk=st.binary(min_size=1, max_size=40))
def test_corrupted_files(suffix, where, junk):
    data = VALID[suffix]
    i = int(len(data) * where)
    outcome(suffix, data[:i] + junk + data[i + len(junk):])


@FUZZ
@given(st.binary(min_size=1, max_size=200).filter(lambda b: not _is_utf8(b)))
def test_non_utf8_bytes_are_named(data):
    for suffix in PARSERS:
        result = outcome(suffix, data)
        assert isinstance(result, ImportFailure) and result.code == "not_text"


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_weird_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**400, 10**400), st.just(-1), st.just(0),
    st.just(1e308), st.none(), st.text(max_size=5), st.booleans(), st.lists(st.integers(), max_size=2),
)


@FUZZ
@given(
    n=st.integers(0, 400),
    bt=_weird_numbers, et=_weird_numbers, t_step=_weird_numbers,
    mode=st.sampled_from(["C", "F", "K", None, 1, ""]),
    timeindex=st.one_of(st.lists(_weird_numbers, max_size=9), st.none(), st.text(max_size=3)),
    drop_keys=st.lists(st.sampled_from(["timex", "temp1", "temp2", "mode", "timeindex"]), max_size=3),
)
def test_alog_with_wrong_types_and_huge_or_missing_values(n, bt, et, t_step, mode, timeindex, drop_keys):
    doc = to_alog_dict(sample_profile())
    doc["timex"] = [i * 2.0 for i in range(n)]
    doc["temp2"] = [bt if i % 7 == 3 else 300.0 + 0.2 * i for i in range(n)]
    doc["temp1"] = [et] * n
    if n > 5:
        doc["timex"][5] = t_step
    doc["mode"], doc["timeindex"] = mode, timeindex
    for key in drop_keys:
        doc.pop(key, None)
    try:
        text = repr(doc)
    except ValueError:  # an int too long to print
        return
    outcome(".alog", text.encode())


@FUZZ
@given(
    values=st.lists(_weird_numbers, max_size=50),
    times=st.lists(_weird_numbers, max_size=5),
    meta=st.dictionaries(st.sampled_from(["origin", "process", "roast_level", "product_name", "roaster_machine",
                                          "roast_info", "flavor_notes_parsed", "altitude", "target_finish_temp"]),
                         _weird_numbers, max_size=6),
)
def test_onyx_with_wrong_types_nan_and_huge_numbers(values, times, meta):
    doc = to_onyx_dict(sample_profile())
    points = doc["roast_profile"]["bean_temp"]
    for i, v in enumerate(values):
        points[(i * 37) % len(points)]["value"] = v
    for i, t in enumerate(times):
        points[(i * 53) % len(points)]["time"] = t
    doc["metadata"].update(meta)
    try:
        text = json.dumps(doc, allow_nan=True)
    except ValueError:
        return
    outcome(".json", text.encode())


@FUZZ
@given(st.lists(st.lists(st.text(max_size=8), max_size=4), max_size=30))
def test_csv_with_random_cells(rows):
    text = "time_s,bt_f,et_f\n" + "\n".join(",".join(r) for r in rows)
    outcome(".csv", text.encode())


@pytest.mark.parametrize("suffix", sorted(PARSERS))
def test_deep_nesting_and_empty_structures(suffix):
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    for data in (deep, b"{" + deep + b"}", b"{}", b"[]", b"{'timex': []}", b'{"roast_profile": {}}', b"\x00" * 10):
        result = outcome(suffix, data)
        assert isinstance(result, ImportFailure)


def test_huge_integer_literal():
    digits = "9" * 5000
    for text in (f"{{'timex': [{digits}], 'temp2': [1]}}", f'{{"roast_profile": {{"bean_temp": [{{"time": 0, "value": {digits}}}]}}}}'):
        for suffix in (".alog", ".json"):
            assert isinstance(outcome(suffix, text.encode()), ImportFailure)


def test_read_profile_through_real_files():
    """The file-level entry point, for a handful of hostile files (bytes above go through the parsers)."""
    with tempfile.TemporaryDirectory() as tmp:
        cases = {
            "a.alog": b"{'timex': " + b"[" * 5000, "b.json": b'{"roast_profile": {"bean_temp": [{"time": NaN, "value": 1}]}}',
            "c.csv": b"time_s,bt_f\n" + b"1e999,1e999\n" * 3, "d.alog": VALID[".alog"][:-1], "e.json": b"\xff\xfe{}",
            "f.xyz": b"whatever", "g": b"",
        }
        for fname, data in cases.items():
            path = Path(tmp) / fname
            path.write_bytes(data)
            with pytest.raises(ImportFailure) as err:
                read_profile(path)
            assert err.value.path == str(path) and fname in str(err.value)
