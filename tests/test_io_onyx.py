"""Onyx-style JSON: all 121 real files import with normalised metadata; write_json round-trips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from roastcore.io import ImportFailure, import_folder, read_onyx, read_profile, write_json
from roastcore.io.normalize import PROCESSES, ROAST_LEVELS
from roastcore.io.onyx import parse_onyx, to_onyx_dict
from roastcore.profile import Profile, ProfileMeta


def make_profile(duration_s: int = 600, interval_s: float = 1.0, et: bool = True, **meta) -> Profile:
    t = np.arange(0.0, duration_s + interval_s / 2, interval_s)
    bt = 160 + 260 * np.exp(-t / 25.0) + 250 * (1 - (1 - t / duration_s) ** 1.6)
    return Profile(bt=bt, interval_s=interval_s, et=bt + 70 if et else None,
                   events={"DRY_END": 270.0, "FCs": 480.5, "FCe": 540.0}, meta=ProfileMeta(**meta))


def onyx_doc(**metadata) -> dict:
    points = [{"time": i, "value": round(420 - 2.5 * i if i < 100 else 170 + 0.5 * (i - 100), 1)} for i in range(600)]
    meta = {"product_name": "Geometry", "origin": "Colombia, Ethiopia", "process": "Washed",
            "roast_level": "Expressive Light", "roaster_machine": "Loring S70 Peregrine",
            "roast_info": {"batch": "93187", "charge_temp": "420.0"}}
    meta.update(metadata)
    return {"metadata": meta, "roast_profile": {"bean_temp": points},
            "summary": {"turning_point_time": 100, "turning_point_temp": 170.0}}


def parse(doc) -> Profile:
    return parse_onyx(json.dumps(doc).encode(), "test.json")


# ------------------------------------------------------------------ real files
@pytest.fixture(scope="module")
def onyx_report(onyx_dir):
    return import_folder(onyx_dir)


def test_all_121_onyx_files_import(onyx_report):
    assert len(onyx_report.profiles) == 121
    assert not onyx_report.rejected and not onyx_report.duplicates
    for p in onyx_report.profiles:
        assert p.interval_s == 1.0 and 560 <= p.duration_s <= 905
        assert set(p.events) == {"TP", "DROP"} and 37 <= p.events["TP"] <= 104


def test_onyx_metadata_is_normalised(onyx_report):
    metas = [p.meta for p in onyx_report.profiles]
    assert {m.roast_level for m in metas} <= set(ROAST_LEVELS)
    assert {m.process for m in metas} <= set(PROCESSES)
    assert {m.roaster for m in metas} == {"Diedrich CR-35", "Diedrich CR-70", "Diedrich CR", "Loring S70 Peregrine"}
    assert all(m.product and "\n" not in m.product and " " not in m.product for m in metas)
    assert all(m.batch_id and m.batch_id.isdigit() for m in metas)
    assert all(all(f == f.lower() for f in m.flavors) for m in metas)
    assert all(m.charge_temp_f is not None and 350 <= m.charge_temp_f <= 475 for m in metas)
    assert {m.target_finish_f for m in metas} == {395.0, 405.0, 410.0, 415.0}
    origins = {m.origin for m in metas}
    assert "Colombia, Ethiopia" in origins and "Colombia, Ethiopia, Honduras" in origins
    assert not origins & {"Landrace", "Catuai", "Gesha", "Pacamara", "Mixed"}  # varieties in the wrong slot
    # batches of one product share the grouping key even when the page layout differed
    by_product = {}
    for m in metas:
        by_product.setdefault(m.product, set()).add(m.batch_id)
    assert len(by_product["Geometry"]) == 7 and len(by_product["CostaRicaLasLajasNatural"]) == 4


def test_shifted_page_layout_is_repaired(onyx_dir):
    p = read_onyx(onyx_dir / "costa-rica-las-lajas-natural-25_batch93059.json")
    assert p.meta.product == "CostaRicaLasLajasNatural"
    assert (p.meta.origin, p.meta.process, p.meta.variety) == ("Costa Rica", "natural", "Catuai")
    assert p.meta.altitude_m == 1600.0 and p.meta.charge_temp_f == 420.6
    g = read_onyx(onyx_dir / "geometry_batch93103.json")
    assert (g.meta.product, g.meta.roaster, g.meta.process, g.meta.variety) == (
        "Geometry", "Loring S70 Peregrine", "washed", "Mixed")
    assert g.meta.origin is None  # the page did not say


def test_onyx_curve_matches_the_file(onyx_dir):
    path = onyx_dir / "cold-brew_batch93174.json"
    raw = json.loads(path.read_text())
    p = read_profile(path)
    assert np.array_equal(p.bt, [pt["value"] for pt in raw["roast_profile"]["bean_temp"]])
    assert p.events["TP"] == raw["summary"]["turning_point_time"]
    assert p.meta.flavors == ("cocoa", "dates", "brown sugar", "stone fruit", "creamy")
    assert p.meta.origin == "Colombia" and p.meta.roast_level == "moderate" and p.meta.process == "washed"


def test_real_onyx_file_round_trips(onyx_dir, tmp_path):
    p = read_onyx(onyx_dir / "telos_batch93083.json")
    write_json(p, tmp_path / "telos.json")
    q = read_onyx(tmp_path / "telos.json")
    assert np.max(np.abs(q.bt - p.bt)) < 0.1 and q.events == p.events
    assert q.meta.to_dict() | {"source_file": None} == p.meta.to_dict() | {"source_file": None}


# ------------------------------------------------------------------ round trip
@pytest.mark.parametrize("interval_s", [1.0, 2.0])
def test_write_json_round_trip(tmp_path, interval_s):
    p = make_profile(interval_s=interval_s, origin="Kenya", process="washed", roast_level="light",
                     flavors=("plum", "black tea"), roaster="Diedrich CR-35", target_finish_f=405.0,
                     altitude_m=1800.0, batch_id="B-7", product="Kenya AA", weight_g=12000.0, density=710.0)
    path = tmp_path / "rt.json"
    write_json(p, path)
    q = read_onyx(path)
    assert q.interval_s == interval_s and q.n == p.n
    assert np.max(np.abs(q.bt - p.bt)) < 0.1 and np.max(np.abs(q.et - p.et)) < 0.1
    for name, t in p.events.items():
        assert q.events[name] == pytest.approx(t, abs=1e-3)
    for field in ("origin", "process", "roast_level", "flavors", "roaster", "target_finish_f", "altitude_m",
                  "batch_id", "product", "weight_g", "density", "charge_temp_f"):
        assert getattr(q.meta, field) == getattr(p.meta, field), field


def test_written_json_has_the_onyx_shape():
    doc = to_onyx_dict(make_profile(et=False, product="X"))
    assert doc["roast_profile"]["bean_temp"][0] == {"time": 0, "value": pytest.approx(420.0, abs=0.1)}
    assert doc["metadata"]["product_name"] == "X" and "env_temp" not in doc["roast_profile"]
    assert doc["summary"]["data_points"] == 601 and doc["summary"]["duration_seconds"] == 600.0


# ------------------------------------------------------------------ messy input
def test_messy_metadata():
    p = parse(onyx_doc(product_name="G\n\n\ne\n\n\no", origin="Ethiopia, Colombia", process="Culture-Innoculated Washed",
                       roast_level="medium", roaster_machine="Loring S70 Peregrine\nPRODUCTION ROASTER\n\n   Raised",
                       roast_info={"batch": 93187, "charge_temp": "410.2"}, flavor_notes_parsed=["COCOA", " Cocoa ", "PLUM"],
                       altitude="1,800 - 2,000 MASL"))
    m = p.meta
    assert m.product == "Geo" and m.origin == "Colombia, Ethiopia" and m.process == "washed"
    assert m.roast_level == "moderate" and m.roaster == "Loring S70 Peregrine"
    assert m.batch_id == "93187" and m.charge_temp_f == 410.2 and m.flavors == ("cocoa", "plum")
    assert m.altitude_m == 1900.0


def test_missing_and_wrongly_typed_metadata_is_ignored():
    doc = onyx_doc()
    doc["metadata"] = {"origin": 5, "process": ["x"], "roast_info": "none", "target_finish_temp": "hot"}
    p = parse(doc)
    assert p.meta.origin == "5" and p.meta.process is None and p.meta.target_finish_f is None
    del doc["metadata"], doc["summary"]
    p = parse(doc)
    assert p.meta.product is None and p.events["TP"] == pytest.approx(100.0)  # detected instead


@pytest.mark.parametrize(
    "doc, code, words",
    [
        ([1, 2], "not_onyx", "expected an object"),
        ({"timex": [1, 2]}, "not_onyx", "Artisan"),
        ({"roast_profile": {"bean_temp": []}}, "no_samples", "missing or empty"),
        ({"roast_profile": {"bean_temp": [1, 2, 3]}}, "malformed", "expected {time, value}"),
        ({"roast_profile": {"bean_temp": [{"time": "x", "value": 1}]}}, "malformed", "not a number"),
        ({"roast_profile": {"bean_temp": [{"time": 2, "value": 400}, {"time": 1, "value": 390}]}}, "malformed", "not increasing"),
        ({"roast_profile": {"bean_temp": [{"time": i, "value": None} for i in range(300)]}}, "no_bt", "no usable"),
        ({"roast_profile": {"bean_temp": [{"time": i, "value": 400.0} for i in range(60)]}}, "implausible", "duration"),
    ],
)
def test_rejections(doc, code, words):
    with pytest.raises(ImportFailure) as err:
        parse(doc)
    assert err.value.code == code and words in err.value.reason


def test_not_json_is_rejected(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"metadata": ')
    with pytest.raises(ImportFailure, match="not valid JSON") as err:
        read_onyx(path)
    assert err.value.path == str(path) and str(path) in str(err.value)


def test_json_is_read_compactly_and_hostile_shapes_are_refused():
    """json.loads built ~250 bytes of dict per 25-byte point and ~20x the text for `[[],...]`."""
    import tracemalloc

    points = ",".join(f'{{"time":{i * 0.03 + (i % 2) * 0.001:.3f},"value":{300 + i * 0.001:.1f}}}'
                      for i in range(100_000))
    floats = ",".join(["1.5"] * 500_000)
    for text in ('{"roast_profile": {"bean_temp": [' + points + "]}}", '{"roast_profile": {"bean_temp": [{"time": 0, '
                 '"value": 1}], "env_temp": [' + floats + "]}}"):
        tracemalloc.start()
        try:
            result = outcome_of(text)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 6 * len(text), f"{peak / len(text):.1f}x"
    assert isinstance(outcome_of('{"roast_profile": {"bean_temp": [' + points + "]}}"), Profile)
    assert result.code == "implausible"  # one point: too short, but read
    for text, words in [
        ('{"roast_profile": {"bean_temp": [' + "[]," * 200_000 + "[]]}}", "separate values"),
        ('{"x": [' + '"ab",' * 300_000 + '"ab"]}', "separate values"),
        ('{"x": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested more than 64 levels"),
    ]:
        result = outcome_of(text)  # its time: benchmarks/bench_import.py (json_lists, json_strings)
        assert result.code == "too_large" if "values" in words else result.code == "not_json"
        assert words in result.reason


def outcome_of(text: str):
    try:
        return parse_onyx(text.encode(), "hostile.json")
    except ImportFailure as exc:
        return exc


def test_reasons_quote_short_tokens_only():
    with pytest.raises(ImportFailure) as err:
        parse({"roast_profile": {"bean_temp": [{"time": "x" * 10_000, "value": 1}]}})
    assert err.value.reason == "roast_profile.bean_temp[0].time is 'xxxxxxxxxxxxxxxxxxxxxxxx...', not a number"
    with pytest.raises(ImportFailure) as err:
        parse({"roast_profile": {"bean_temp": [{"time": {"a": 1}, "value": 1}]}})
    assert err.value.reason == "roast_profile.bean_temp[0].time is a dict, not a number"
