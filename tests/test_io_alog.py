"""Artisan .alog: real logs import or are rejected with a reason; writing round-trips."""

from __future__ import annotations

import ast
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roastcore.io import ImportFailure, import_folder, read_alog, write_alog
from roastcore.io.alog import parse_alog, to_alog_dict
from roastcore.io.literal import parse_literal
from roastcore.profile import Profile, ProfileMeta, c_to_f, f_to_c

# What ../shared/data/artisan holds (396 files); see docs/importers.md.
EXPECTED_IMPORTED = 357  # 346 distinct curves + 11 renamed copies
EXPECTED_DISTINCT = 346
EXPECTED_REJECTED = {"too_short": 10, "no_samples": 9, "implausible": 7, "no_bt": 7, "json_template": 3,
                     "unfinished": 2, "gap": 1}


def make_profile(duration_s: int = 600, charge_f: float = 420.0, tp_f: float = 160.0, drop_f: float = 410.0,
                 interval_s: float = 1.0, et: bool = True, seed: int = 0, **meta) -> Profile:
    """A plausible drum roast with ET, marked events and a little logger noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, duration_s + interval_s / 2, interval_s)
    bt = tp_f + (charge_f - tp_f) * np.exp(-t / 25.0) + (drop_f - tp_f) * (1 - (1 - t / duration_s) ** 1.6)
    bt = bt + rng.normal(0, 0.05, t.size)
    events = {"DRY_END": 0.45 * duration_s, "FCs": 0.8 * duration_s + 0.3, "FCe": 0.9 * duration_s}
    return Profile(bt=bt, interval_s=interval_s, et=bt + 80.0 - 0.05 * t if et else None, events=events,
                   meta=ProfileMeta(**meta))


def alog_text(**overrides) -> str:
    """A small valid Artisan-style dict as repr() text, with fields replaced by `overrides`."""
    n = 300
    t = [round(2.0 * i + 3.0, 2) for i in range(n)]  # 2 s sampling, recording starts 3 s in
    bt = [round(100 + 115 * (i / n) ** 0.8, 2) for i in range(n)]  # °C, 212..419 °F
    doc = {"version": "2.10.6", "mode": "C", "timex": t, "temp1": [v + 30 for v in bt], "temp2": bt,
           "timeindex": [5, 120, 240, 270, 0, 0, 290, 0], "title": "Roaster Scope", "beans": "",
           "roastertype": "Hottop 2K+", "weight": [200.0, 170.0, "g"]}
    doc.update(overrides)
    return repr(doc)


def parse(text: str) -> Profile:
    return parse_alog(text.encode(), "test.alog")


# ------------------------------------------------------------------ parsing rules
def test_crops_charge_to_drop_and_resamples_to_one_second():
    p = parse(alog_text())
    # CHARGE index 5 (t=13 s) .. DROP index 290 (t=583 s): 570 s on a 1 s grid
    assert p.interval_s == 1.0 and p.duration_s == 570.0 and p.n == 571
    bt_c = 100 + 115 * (5 / 300) ** 0.8
    assert p.bt[0] == pytest.approx(c_to_f(bt_c), abs=0.01)
    assert p.events["DRY_END"] == pytest.approx(230.0) and p.events["FCs"] == pytest.approx(470.0)
    assert p.events["DROP"] == 570.0
    assert p.et is not None and np.allclose(p.et - p.bt, 54.0, atol=0.01)  # 30 °C apart
    assert p.meta.roaster == "Hottop 2K+" and p.meta.weight_g == 200.0


def test_fahrenheit_files_are_not_converted():
    text = alog_text(mode="F", temp2=[300.0 + i for i in range(300)], temp1=[-1] * 300)
    p = parse(text)
    assert p.bt[0] == pytest.approx(305.0) and p.et is None  # ET all -1: not usable


def test_missing_mode_is_guessed_from_the_values():
    doc = ast.literal_eval(alog_text())
    del doc["mode"]
    p = parse(repr(doc))
    assert p.bt[0] == pytest.approx(c_to_f(doc["temp2"][5]), abs=0.01)  # °C values (< 260)
    assert np.allclose(p.et - p.bt, 54.0, atol=0.01)  # ET converted with the same unit


def test_sensor_gaps_are_interpolated():
    bt = [round(100 + 0.4 * i, 2) for i in range(300)]
    bt[100:105] = [-1] * 5
    p = parse(alog_text(temp2=bt))
    assert np.all(np.diff(p.bt) > 0)  # straight line through the gap, no dip to -1


def test_long_gap_is_rejected():
    bt = [round(100 + 0.4 * i, 2) for i in range(300)]
    bt[100:130] = [-1] * 30  # 60 s without readings
    with pytest.raises(ImportFailure, match="missing for 6[0-9] s") as err:
        parse(alog_text(temp2=bt))
    assert err.value.code == "gap"


def test_unset_charge_uses_the_bt_fall_or_the_recording_start():
    n = 300
    # preheat at 400 °F for 60 s, then beans go in: BT falls to 180 and climbs to 420
    t = [2.0 * i for i in range(n)]
    bt = [400.0] * 30 + [180 + 240 * (i / (n - 30)) ** 0.9 for i in range(n - 30)]
    p = parse(alog_text(mode="F", timex=t, temp2=bt, temp1=[-1] * n, timeindex=[-1, 0, 200, 0, 0, 0, 290, 0]))
    assert p.charge_f == 400.0 and p.duration_s == pytest.approx(580 - 58)
    # an air roaster (no fall): CHARGE is the recording start
    bt_air = [80 + 340 * (i / n) ** 0.8 for i in range(n)]
    p = parse(alog_text(mode="F", timex=t, temp2=bt_air, temp1=[-1] * n, timeindex=[-1, 0, 200, 0, 0, 0, 290, 0]))
    assert p.charge_f == 80.0 and p.duration_s == 580.0 and "TP" not in p.events


def test_unset_drop_uses_the_peak_before_cooling_or_rejects_an_unfinished_roast():
    n = 400
    t = [2.0 * i for i in range(n)]
    bt = [200 + 220 * (i / 300) ** 0.8 for i in range(300)] + [420 - 2.5 * i for i in range(100)]  # cooling
    p = parse(alog_text(mode="F", timex=t, temp2=bt, temp1=[-1] * n, timeindex=[0, 0, 0, 0, 0, 0, 0, 0]))
    assert p.duration_s == 600.0 and p.finish_f == pytest.approx(max(bt), abs=0.5)
    stopped = [200 + 150 * (i / n) for i in range(n)]  # logger stopped at 350 °F, no FCs, no cooling
    with pytest.raises(ImportFailure, match="unfinished") as err:
        parse(alog_text(mode="F", timex=t, temp2=stopped, temp1=[-1] * n, timeindex=[0, 0, 0, 0, 0, 0, 0, 0]))
    assert err.value.code == "unfinished"


def test_old_format_startend_and_cracks():
    text = alog_text(timeindex=None, mode="C")
    doc = ast.literal_eval(text)
    del doc["timeindex"]
    doc.update(startend=[13.0, 201.0, 583.0, 380.0], cracks=[483.0, 360.0, 0, 0, 0, 0, 0, 0], dryend=[243.0, 300.0])
    p = parse(repr(doc))
    assert p.duration_s == 570.0
    assert p.events["FCs"] == pytest.approx(470.0) and p.events["DRY_END"] == pytest.approx(230.0)
    doc["startend"] = "garbage"
    with pytest.raises(ImportFailure, match="startend"):
        parse(repr(doc))


@pytest.mark.parametrize(
    "text, code, words",
    [
        (alog_text(timex=[], temp1=[], temp2=[]), "no_samples", "no samples"),
        (alog_text(temp2=[-1] * 300), "no_bt", "no usable BT"),
        (alog_text(temp2=[0.0] * 300), "no_bt", "no usable BT"),
        (alog_text(timeindex=[5, 0, 0, 0, 0, 0, 30, 0]), "too_short", "shorter than 120 s"),
        (alog_text(temp2=[400.0] * 300), "implausible", "outside the plausible"),  # 752 °F
        (alog_text(temp2=[40.0] * 300), "implausible", "below the 300"),
        (alog_text(temp2=[100 + 0.35 * i if i < 200 else 140 + 0.35 * i for i in range(300)]), "implausible", "jumps"),
        (alog_text(mode="K"), "malformed", "neither 'C' nor 'F'"),
        (alog_text(timex=[5.0 - i for i in range(300)]), "malformed", "backwards"),
        (alog_text(timeindex=[200, 0, 0, 0, 0, 0, 100, 0]), "bad_events", "not after CHARGE"),
        (" " + alog_text(), "not_alog", "does not start with"),
        ("\ufeff" + alog_text(), "not_alog", "byte-order mark"),
        ("[1, 2, 3]", "not_alog", "does not start with"),
        ("{'timex': [1, 2,", "malformed", "Python-literal"),
        ("{'timex': 5}", "malformed", "'timex'"),
        ('{"timex": [1, 2], "temp2": [true, null]}', "json_template", "JSON template"),
        (json.dumps({"timex": [0, 1, 2], "temp2": [400, 300, 200]}), "json_template", "JSON template"),
    ],
)
def test_rejections_carry_specific_reasons(text, code, words):
    with pytest.raises(ImportFailure) as err:
        parse(text)
    assert err.value.code == code
    assert words in err.value.reason
    assert str(err.value).startswith("test.alog: ")


def test_not_utf8_and_size_limit(tmp_path):
    bad = tmp_path / "latin1.alog"
    bad.write_bytes(alog_text(title="caf\xe9").encode("latin-1"))
    with pytest.raises(ImportFailure, match="UTF-8") as err:
        read_alog(bad)
    assert err.value.path == str(bad)
    huge = tmp_path / "huge.alog"
    with open(huge, "wb") as fh:
        fh.truncate(21 * 1024 * 1024)  # sparse: the size check must refuse it before reading
    with pytest.raises(ImportFailure, match="larger than the 20 MiB limit"):
        read_alog(huge)
    with pytest.raises(ImportFailure, match="not found"):
        read_alog(tmp_path / "missing.alog")


def test_strings_are_unicode_escape_decoded():
    p = parse(alog_text(beans="Ethiopia Guji \\u7119\\u714e\\nnatural", roastertype="Aillio Bullet R1\\n"))
    assert p.meta.origin == "Ethiopia" and p.meta.process == "natural"
    assert p.meta.product == "Ethiopia Guji \u7119\u714e" and p.meta.roaster == "Aillio Bullet R1"


# ------------------------------------------------------------------ the literal parser
_literals = st.recursive(
    st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    | st.tuples(inner, inner),
    max_leaves=20,
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(_literals)
def test_fast_literal_parser_equals_literal_eval(value):
    text = repr(value)
    expected = ast.literal_eval(text)
    assert parse_literal(text) == expected


def test_an_unknown_escape_stays_as_written_without_a_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Python's decoder warned about the \\h of a roast's notes
        assert parse_literal(r"{'notes': 'C:\\home\h and \n é\h'}") == {"notes": "C:\\home\\h and \n é\\h"}


def test_fast_literal_parser_refuses_what_literal_eval_refuses():
    for text in ("{'a': true}", "{'a': null}", "{'a': NaN}", "{'a': Infinity}", "{'a': x}", "__import__('os')"):
        with pytest.raises((ValueError, SyntaxError)):
            parse_literal(text)


def _python_shapes(value, rng):
    """repr(value) with the Python-only shapes Artisan's fast path used to hand to literal_eval:
    trailing commas, tuples for lists, single and double quotes, u/r prefixes."""
    if isinstance(value, dict):
        items = [f"{_python_shapes(k, rng)}: {_python_shapes(v, rng)}" for k, v in value.items()]
        return "{" + ", ".join(items) + ("," if items and rng.random() < 0.5 else "") + "}"
    if isinstance(value, (list, tuple)):
        items = [_python_shapes(v, rng) for v in value]
        tail = "," if items and (rng.random() < 0.5 or (isinstance(value, tuple) and len(items) == 1)) else ""
        open_, close = ("(", ")") if isinstance(value, tuple) else ("[", "]")
        return open_ + ", ".join(items) + tail + close
    if isinstance(value, str) and rng.random() < 0.3 and "\\" not in value and '"' not in value:
        return "u" + repr(value) if rng.random() < 0.5 else '"' + repr(value)[1:-1].replace("\\'", "'") + '"'
    return repr(value)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(_literals, st.integers(0, 2**32 - 1))
def test_literal_parser_reads_trailing_commas_tuples_and_quotes_itself(value, seed):
    """These shapes no longer fall back to ast.literal_eval: the bounded parser reads them."""
    from roastcore.io.literal import read_literal

    text = _python_shapes(value, np.random.default_rng(seed))
    expected = ast.literal_eval(text)
    assert read_literal(text.encode()).value == expected


def test_long_number_lists_become_arrays_with_literal_eval_values():
    from roastcore.io.literal import read_literal

    numbers = [0, -1, 2.5, 1e-3, 1e300, -0.0, 7, 123456789012, .5, 3.] * 50
    text = "{'timex': [" + ", ".join(map(repr, numbers)) + ",], 'mixed': (" + ", ".join(map(repr, numbers)) + ", 'x')}"
    doc = read_literal(text.encode()).value
    expected = ast.literal_eval(text)
    assert isinstance(doc["timex"], np.ndarray) and doc["timex"].tolist() == [float(x) for x in expected["timex"]]
    assert doc["mixed"] == tuple(float(x) for x in expected["mixed"][:-1]) + ("x",)


def _alog_with_python_shapes(n: int) -> bytes:
    """An .alog of ~3n bytes that the old JSON fast path refused (a trailing comma in a tuple)."""
    return b"{'timex': (" + b"0, " * n + b"), 'temp2': [" + b"3, " * (n // 10) + b"]}"


def test_python_shaped_alog_parses_in_bounded_memory():
    """Case 1 of issue 13: the literal_eval fallback cost ~320x the file size (6.4 GB for 20 MB).
    Its time per MiB: benchmarks/bench_import.py (alog_tuples)."""
    import tracemalloc

    data = _alog_with_python_shapes(400_000)  # 1.3 MB
    tracemalloc.start()
    try:
        with pytest.raises(ImportFailure) as err:
            parse_alog(data, "big.alog")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.value.code == "too_large" and "400,000 samples" in err.value.reason
    assert peak < 10 * len(data), f"{peak / len(data):.1f}x the file size"


def test_hostile_literals_are_stopped_by_the_parser_limits():
    from roastcore.io.literal import FALLBACK_MAX_BYTES, MAX_DEPTH

    deep = b"{'a': " + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(ImportFailure) as err:
        parse_alog(deep, "deep.alog")
    assert f"nested more than {MAX_DEPTH} levels deep" in err.value.reason and "MemoryError" not in err.value.reason
    many = b"{'a': [" + b"[], " * 400_000 + b"]}"  # 56 bytes of list per 4 bytes of text
    with pytest.raises(ImportFailure, match="separate values") as err:
        parse_alog(many, "many.alog")
    # a Python literal this parser does not read, over the literal_eval size: refused, not evaluated
    big_set = b"{'a': {" + b"1, " * FALLBACK_MAX_BYTES + b"}}"
    with pytest.raises(ImportFailure, match="expected ':'"):
        parse_alog(big_set, "set.alog")
    assert parse_literal("{'a': {1, 2}}") == {"a": {1, 2}}  # small: ast.literal_eval decides


@pytest.mark.parametrize("text, words", [
    ("{'timex': foo(1)}", "unexpected name 'foo' at byte 10"),
    ("{'timex': __import__('os').system('x')}", "unexpected name '__import__'"),
    ("{'timex': [1, 2] + [3]}", "found '+'"),
    ("{'timex': [1, 2}", "unexpected '}'"),
    ("{'a': 'unterminated}", "unterminated string"),
])
def test_reasons_name_the_token_not_a_parser_object(text, words):
    """Case 10: reasons read `<ast.Call object at 0x...>` when literal_eval had the last word."""
    with pytest.raises(ImportFailure) as err:
        parse(text)
    assert words in err.value.reason and "object at 0x" not in err.value.reason and "ast." not in err.value.reason
    assert err.value.code == "malformed" and len(err.value.reason) <= 200


def test_charge_detection_is_linear_in_the_number_of_samples():
    """Case 3: equal timestamps made every CHARGE window span the whole recording (O(n^2): ~6 s
    here). The time is measured by benchmarks/bench_import.py (alog_equal_times); here, the
    answers on the shape that was quadratic."""
    from roastcore.io.alog import _detect_charge

    n = 190_000
    timex, bt = np.zeros(n), np.full(n, 300.0)
    assert _detect_charge(timex, bt, n - 1) is None
    bt[150_000] = 250.0  # a 50 °F fall inside the (zero-width in time) window of every sample
    assert _detect_charge(timex, bt, n - 1) == 149_999


# ------------------------------------------------------------------ writing
@pytest.mark.parametrize("mode", ["F", "C"])
def test_write_read_round_trip(tmp_path, mode):
    p = make_profile(origin="Colombia", process="washed", roaster="Diedrich CR-35", weight_g=12000.0,
                     batch_id="93174", product="ColdBrew", flavors=("cocoa", "dates"), density=700.0)
    path = tmp_path / f"rt_{mode}.alog"
    write_alog(p, path, mode=mode)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("{'") and not text.endswith("\n")
    q = read_alog(path)
    assert q.n == p.n and q.interval_s == 1.0
    assert np.max(np.abs(q.bt - p.bt)) < 0.1
    assert np.max(np.abs(q.et - p.et)) < 0.1
    assert set(p.events) <= set(q.events)
    for name, t in p.events.items():
        assert q.events[name] == pytest.approx(t, abs=1e-3)
    for field in ("origin", "process", "roaster", "weight_g", "batch_id", "product", "flavors", "density"):
        assert getattr(q.meta, field) == getattr(p.meta, field)


def test_written_file_is_a_minimal_artisan_background_profile(tmp_path):
    p = make_profile(et=False, batch_id="42")
    doc = to_alog_dict(p, mode="C")
    required = {"timex", "temp1", "temp2", "specialevents", "specialeventstype", "specialeventsvalue",
                "specialeventsStrings", "flavors", "title", "mode", "timeindex"}
    assert required <= set(doc) and "version" not in doc and "hash" not in doc
    assert doc["flavors"] and doc["mode"] == "C"
    assert len(doc["timex"]) == len(doc["temp1"]) == len(doc["temp2"]) == p.n
    assert doc["timeindex"][0] == 0 and doc["timeindex"][6] == p.n - 1
    assert doc["roastbatchnr"] == 42 and doc["roastbatchprefix"] == ""
    assert doc["temp2"][0] == pytest.approx(f_to_c(p.bt[0]), abs=1e-3)
    path = tmp_path / "bg.alog"
    write_alog(p, path, mode="C")
    assert ast.literal_eval(path.read_text()) == doc  # exactly what Artisan's loader will see


def test_round_trip_of_a_coarser_grid_resamples_to_one_second(tmp_path):
    p = make_profile(interval_s=2.0)
    write_alog(p, tmp_path / "two.alog")
    q = read_alog(tmp_path / "two.alog")
    assert np.max(np.abs(q.bt - p.resample(1.0).bt)) < 0.1
    assert q.events["FCs"] == pytest.approx(p.events["FCs"], abs=1e-3)


# ------------------------------------------------------------------ the real files
@pytest.fixture(scope="module")
def artisan_report(artisan_dir):
    return import_folder(artisan_dir)


@pytest.mark.slow
def test_every_real_file_is_imported_or_rejected_with_a_reason(artisan_report, artisan_dir):
    report = artisan_report
    files = sorted(p.relative_to(artisan_dir).as_posix() for p in artisan_dir.rglob("*.alog"))
    assert len(files) == 396
    accounted = [p.meta.source_file for p in report.profiles] + [r.file for r in report.rejected] \
        + [d for d, _ in report.duplicates]
    assert sorted(accounted) == files
    for r in report.rejected:
        assert r.reason and r.code != "malformed", r  # no generic fence messages on real data


@pytest.mark.slow
def test_real_file_counts(artisan_report):
    report = artisan_report
    assert len(report.profiles) == EXPECTED_DISTINCT
    assert len(report.profiles) + len(report.duplicates) == EXPECTED_IMPORTED
    assert report.rejected_by_code() == EXPECTED_REJECTED


@pytest.mark.slow
def test_json_templates_are_rejected(artisan_report):
    report = artisan_report
    templates = {r.file: r for r in report.rejected if "SYNTHETIC_JSON__" in r.file}
    assert len(templates) == 3
    assert all(r.code == "json_template" and "JSON template" in r.reason for r in templates.values())


@pytest.mark.slow
def test_marked_files_with_plausible_values_all_import(artisan_report, artisan_dir):
    """A file with CHARGE and DROP marked is only ever rejected for what its values show."""
    report = artisan_report
    value_codes = {"too_short", "implausible", "gap", "json_template", "no_samples", "no_bt"}
    for r in report.rejected:
        text = (artisan_dir / r.file).read_text(encoding="utf-8")
        try:
            index = ast.literal_eval(text).get("timeindex", [-1, 0, 0, 0, 0, 0, 0])
        except ValueError:
            continue  # the JSON templates
        if index[0] >= 0 and index[6] > 0:
            assert r.code in value_codes, r


@pytest.mark.slow
def test_real_profiles_are_plausible(artisan_report):
    report = artisan_report
    durations = np.array([p.duration_s for p in report.profiles])
    assert durations.min() >= 120 and durations.max() <= 1200
    assert all(p.interval_s == 1.0 and p.events["DROP"] == p.duration_s for p in report.profiles)
    assert all(300 <= p.finish_f <= 650 for p in report.profiles)
    modes = Counter(p.et is not None for p in report.profiles)
    assert modes[True] > 200  # most loggers record ET
    assert sum("FCs" in p.events for p in report.profiles) > 300


def test_real_files_round_trip(artisan_dir, tmp_path):
    for name in ("HyperSprite__artisan-roasts/profiles__20-08-04_1907.alog",
                 "scottjames__coffee-roasting/logs__roast_25-10-05_1708.alog"):
        p = read_alog(artisan_dir / name)
        for mode in ("F", "C"):
            out = tmp_path / f"{Path(name).stem}_{mode}.alog"
            write_alog(p, out, mode=mode)
            q = read_alog(out)
            assert np.max(np.abs(q.bt - p.bt)) < 0.1
            assert q.events == pytest.approx(p.events, abs=1e-3)


def test_stored_metadata_line_is_bounded_like_imported_text():
    stored = {"origin": "Kenya " + " " * 100_000 + "x" * 1000, "flavors": [f"note {i}" for i in range(5000)],
              "product": ["not", "text"], "weight_g": 200.0}
    p = parse(alog_text(roastingnotes="roastcore-meta: " + json.dumps(stored)))
    assert p.meta.origin == ("Kenya " + "x" * 1000)[:200] and len(p.meta.flavors) == 32
    assert p.meta.product is None and p.meta.weight_g == 200.0
