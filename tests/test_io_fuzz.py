"""Hostile and broken input: every reader returns a Profile or raises ImportFailure, nothing else."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roastcore.io import ImportFailure, import_folder, read_profile
from roastcore.io.alog import parse_alog, to_alog_dict
from roastcore.io.base import display_name, guarded
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


@pytest.mark.slow
@FUZZ
@given(suffix=st.sampled_from(sorted(PARSERS)), data=st.binary(max_size=2000))
def test_random_bytes(suffix, data):
    outcome(suffix, data)


@pytest.mark.slow
@FUZZ
@given(suffix=st.sampled_from(sorted(PARSERS)), cut=st.floats(0, 1))
def test_truncated_files(suffix, cut):
    data = VALID[suffix]
    outcome(suffix, data[: int(len(data) * cut)])


@pytest.mark.slow
@FUZZ
@given(suffix=st.sampled_from(sorted(PARSERS)), where=st.floats(0, 1), junk=st.binary(min_size=1, max_size=40))
def test_corrupted_files(suffix, where, junk):
    data = VALID[suffix]
    i = int(len(data) * where)
    outcome(suffix, data[:i] + junk + data[i + len(junk):])


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


# ------------------------------------------------------------------ issue 13's failure shapes
# Each shape once cost super-linear time or memory, or hung. The generators make many variants
# of it. Their time and memory per MiB are measured by benchmarks/bench_import.py (no timing
# assertions in tests): here each must end with a result or a reason, never a crash or a hang.
QUICK = settings(max_examples=25, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def within_bound(suffix: str, data: bytes):
    return outcome(suffix, data)


_space_runs = st.lists(
    st.tuples(st.text("abc ,;/&+-\t", min_size=0, max_size=3), st.integers(0, 40_000),
              st.sampled_from([" ", "\t", "\u00a0", " \n"])),
    min_size=1, max_size=6,
).map(lambda parts: "".join(word + space * n for word, n, space in parts))


@pytest.mark.slow
@QUICK
@given(field=st.sampled_from(["flavors", "origin", "process", "variety", "roaster", "product", "roast_level",
                              "events", "altitude_m"]),
       value=_space_runs, as_json=st.booleans())
def test_long_whitespace_runs_in_csv_headers(field, value, as_json):
    header = json.dumps(value) if as_json else value.replace("\n", " ")
    text = f"# {field}: {header}\n" + to_csv_text(sample_profile()).split("\n", 1)[1]
    within_bound(".csv", text.encode())


@pytest.mark.slow
@QUICK
@given(field=st.sampled_from(["beans", "title", "roastertype", "roastingnotes", "mode"]), value=_space_runs)
def test_long_whitespace_runs_in_alog_strings(field, value):
    doc = to_alog_dict(sample_profile())
    doc[field] = value
    within_bound(".alog", repr(doc).encode())


@pytest.mark.slow
@QUICK
@given(field=st.sampled_from(["origin", "process", "variety", "product_name", "roaster_machine", "altitude",
                              "flavor_notes_parsed", "roast_level"]), value=_space_runs)
def test_long_whitespace_runs_in_onyx_metadata(field, value):
    doc = to_onyx_dict(sample_profile())
    doc["metadata"][field] = value
    within_bound(".json", json.dumps(doc).encode())


def _reshape(value, draw_bits):
    """repr() with lists turned into tuples and trailing commas added where the bits say."""
    if isinstance(value, dict):
        items = [f"{_reshape(k, draw_bits)}: {_reshape(v, draw_bits)}" for k, v in value.items()]
        return "{" + ", ".join(items) + ("," if items and draw_bits() else "") + "}"
    if isinstance(value, list):
        items = [_reshape(v, draw_bits) for v in value]
        as_tuple = draw_bits()
        comma = "," if items and (draw_bits() or (as_tuple and len(items) == 1)) else ""
        return ("(" if as_tuple else "[") + ", ".join(items) + comma + (")" if as_tuple else "]")
    return repr(value)


@pytest.mark.slow
@QUICK
@given(bits=st.lists(st.booleans(), min_size=1, max_size=64), scale=st.sampled_from([1, 40]))
def test_trailing_commas_and_tuples_read_like_the_plain_file(bits, scale):
    """Tuples and trailing commas once sent .alog files to ast.literal_eval at ~320x their size.
    Now they are read by the bounded parser and give exactly the profile the plain file gives;
    `scale` pads the file past the literal_eval size with a long extra list."""
    doc = to_alog_dict(sample_profile())
    doc["extratemp1"] = [[float(i % 97) for i in range(2000 * scale)]]
    cycle = iter(bits * 10_000)
    text = _reshape(doc, lambda: next(cycle)).encode()
    expected = outcome(".alog", repr(doc).encode())
    got = within_bound(".alog", text)
    assert isinstance(got, Profile) and got.fingerprint() == expected.fingerprint()
    assert got.meta == expected.meta


@pytest.mark.slow
@QUICK
@given(kind=st.sampled_from(["numbers", "tuple", "strings", "lists", "mixed", "deep", "dicts"]),
       n=st.integers(1, 200_000), trailing=st.booleans())
def test_hostile_literal_shapes_stay_bounded(kind, n, trailing):
    """Time here; memory per shape is measured by benchmarks/bench_import.py (RSS of a process)
    and by the tracemalloc tests in test_io_alog.py (tracemalloc slows object-heavy parsing 25x)."""
    comma = b"," if trailing else b""
    body = {
        "numbers": b"[" + b"0, " * n + comma + b"]",
        "tuple": b"(" + b"1.5, " * n + comma + b")",
        "strings": b"[" + b"'ab', " * n + comma + b"]",
        "lists": b"[" + b"[], " * n + comma + b"]",
        "mixed": b"[" + b"7, " * n + b"'x'" + comma + b"]",
        "deep": b"[" * n + b"]" * n,
        "dicts": b"[" + b"{1: 2}, " * n + comma + b"]",
    }[kind]
    result = within_bound(".alog", b"{'timex': " + body + b", 'temp2': [300]}")
    assert isinstance(result, ImportFailure) and len(result.reason) <= 200
    assert "Error" not in result.reason and "object at" not in result.reason


_names = st.text(st.characters(blacklist_characters="/\x00.", blacklist_categories=("Cs",)), min_size=1, max_size=8)


@pytest.mark.slow
@QUICK
@given(files=st.dictionaries(_names, st.sampled_from(["good", "broken", "fifo", "socket", "outside", "inside",
                                                      "dangling", "folder"]), min_size=1, max_size=6),
       suffix=st.sampled_from([".alog", ".csv", ".json", ".zip"]))
def test_special_files_and_links_in_a_folder(files, suffix):
    """FIFOs hung the import; links led out of the folder; names carried terminal escapes."""
    import os
    import socket
    import threading

    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        root = Path(tmp) / "r"
        root.mkdir()
        secret = Path(tmp) / "secret"
        secret.write_bytes(VALID[".csv"])
        (root / "zz_target.alog").write_bytes(VALID[".alog"])
        sockets, expected = [], {}
        for i, (stem, kind) in enumerate(files.items()):
            path = root / f"{i}{stem}{suffix}"
            if kind == "good" and suffix != ".zip":
                path.write_bytes(VALID[suffix])
            elif kind in ("good", "broken"):
                path.write_bytes(b"PK\x03\x04 broken" if suffix == ".zip" else b"{[")
            elif kind == "fifo":
                os.mkfifo(path)
            elif kind == "socket":
                sockets.append(socket.socket(socket.AF_UNIX))
                sockets[-1].bind(str(path))
            elif kind == "folder":
                path.mkdir()
                continue
            else:
                path.symlink_to({"outside": secret, "inside": root / "zz_target.alog",
                                 "dangling": Path(tmp) / "missing"}[kind])
            expected[path.name] = {"fifo": "special_file", "socket": "special_file", "outside": "unsafe_path",
                                   "dangling": "unsafe_path"}.get(kind)
        result: dict = {}
        worker = threading.Thread(target=lambda: result.setdefault("report", import_folder(root)), daemon=True)
        worker.start()
        worker.join(20)
        for fifo in (root / name for name, code in expected.items() if code == "special_file"):
            try:  # never leave a reader blocked behind a failed test
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        for sock in sockets:
            sock.close()
        assert not worker.is_alive(), "the import blocked"
        report = result["report"]
        codes = {r.file: r.code for r in report.rejected}
        for name, code in expected.items():
            if code is not None:
                assert codes[display_name(name)] == code, (name, report.rejected)
        text = json.dumps(report.to_dict(), ensure_ascii=False)
        assert "root:" not in text and "secret" not in text
        for entry in [r.file for r in report.rejected] + report.skipped + [p.meta.source_file for p in report.profiles]:
            assert entry.isprintable()


@pytest.mark.slow
@QUICK
@given(entries=st.integers(0, 80), claimed=st.one_of(st.none(), st.integers(0, 200_000)),
       zip64=st.booleans(), cut=st.one_of(st.none(), st.floats(0, 1)))
def test_big_or_lying_central_directories(entries, claimed, zip64, cut, monkeypatch):
    """Entry counts are checked from the end record and the directory walked before zipfile
    parses it; limits are lowered here so the generated archives stay small."""
    import struct

    from roastcore.io import folder

    monkeypatch.setattr(folder, "MAX_ZIP_MEMBERS", 40)
    directory = b"".join(
        struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0, 0)
        + name for name in (f"r{i}.alog".encode() for i in range(entries)))
    count = entries if claimed is None else claimed
    if zip64:
        tail = (struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(directory), 0)
                + struct.pack("<4sIQI", b"PK\x06\x07", 0, len(directory), 1)
                + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
    else:
        tail = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count & 0xFFFF, count & 0xFFFF, len(directory), 0, 0)
    data = directory + tail
    if cut is not None:
        data = data[: int(len(data) * cut)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.zip"
        path.write_bytes(data)
        try:
            report = import_folder(path)
        except ImportFailure as exc:
            assert exc.code in ("too_large", "bad_zip") and len(exc.reason) <= 200
            claimed_count = count if zip64 else count & 0xFFFF
            if cut is None and (entries > 40 or claimed_count > 40):
                assert exc.code == "too_large"
        else:
            assert cut is None or len(data) == len(directory + tail)
            assert entries <= 40 and not report.profiles


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(st.text(max_size=3000) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_reasons_are_fit_to_show(text):
    """One place sanitises every reason: one line, no control characters, no parser reprs."""
    from roastcore.io.base import MAX_REASON_CHARS, clean_reason

    for raw in (text, f"malformed node or string: <ast.Call object at 0x7f3a2b1c> {text}"):
        reason = clean_reason(raw)
        assert reason.isprintable() and len(reason) <= MAX_REASON_CHARS and "object at 0x" not in reason
        assert clean_reason(reason) == reason
        err = ImportFailure(f"dir/{text[:20]}.alog", raw)
        assert err.reason == reason and str(err).isprintable()
