"""CSV profiles: round trips in °F and °C, header and sidecar metadata, malformed input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from roastcore.io import ImportFailure, read_csv, read_profile, write_csv
from roastcore.io.csv import parse_csv, sidecar_path
from roastcore.profile import Profile, ProfileMeta, c_to_f


def make_profile(duration_s: int = 600, interval_s: float = 1.0, et: bool = True, **meta) -> Profile:
    t = np.arange(0.0, duration_s + interval_s / 2, interval_s)
    bt = 160 + 260 * np.exp(-t / 25.0) + 250 * (1 - (1 - t / duration_s) ** 1.6)
    return Profile(bt=bt, interval_s=interval_s, et=bt + 70 if et else None,
                   events={"TP": 75.0, "DRY_END": 270.0, "FCs": 480.5}, meta=ProfileMeta(**meta))


@pytest.mark.parametrize("unit", ["F", "C"])
@pytest.mark.parametrize("interval_s", [1.0, 0.5])
def test_round_trip(tmp_path, unit, interval_s):
    p = make_profile(interval_s=interval_s, origin="Kenya", process="natural", flavors=("plum", "tea"),
                     weight_g=250.0, batch_id="R12", product="Kenya Nyeri AB", roast_level="light")
    path = tmp_path / "roast.csv"
    write_csv(p, path, unit=unit)
    header = [line for line in path.read_text().splitlines() if not line.startswith("#")][0]
    assert header == ("time_s,bt_f,et_f" if unit == "F" else "time_s,bt_c,et_c")
    q = read_csv(path)
    assert q.interval_s == interval_s and q.n == p.n
    assert np.max(np.abs(q.bt - p.bt)) < 0.1 and np.max(np.abs(q.et - p.et)) < 0.1
    assert {k: q.events[k] for k in p.events} == pytest.approx(p.events)
    assert q.events["DROP"] == q.duration_s  # DROP is the end, always
    for field in ("origin", "process", "flavors", "weight_g", "batch_id", "product", "roast_level"):
        assert getattr(q.meta, field) == getattr(p.meta, field)


def test_hand_written_csv_with_plain_headers_and_irregular_times():
    text = "# origin: Colombia, Ethiopia\n# process: Red Honey\n# events: {\"FCs\": 500}\n" \
           "Time_s, BT_C\n" + "\n".join(f"{10 + 1.5 * i + 0.3 * (i % 2):.1f}, {100 + 0.3 * i:.2f}" for i in range(400))
    p = parse_csv(text.encode(), "hand.csv")
    assert p.meta.origin == "Colombia, Ethiopia" and p.meta.process == "honey"
    assert p.interval_s == 1.0 and p.duration_s == 599.0  # uneven steps -> 1 s grid
    assert p.bt[0] == pytest.approx(c_to_f(100.0)) and p.events["FCs"] == 500.0 and p.et is None


def test_sidecar_metadata_wins_over_header(tmp_path):
    p = make_profile(origin="Peru")
    path = tmp_path / "r.csv"
    write_csv(p, path)
    sidecar_path(path).write_text(json.dumps({"origin": "Brazil", "roaster": "Probat LG3\nsecond line"}))
    q = read_profile(path)
    assert q.meta.origin == "Brazil" and q.meta.roaster == "Probat LG3"


def test_gaps_are_interpolated_and_long_gaps_rejected():
    rows = [f"{i},{300 + 0.2 * i:.1f}" for i in range(600)]
    rows[200:205] = [f"{i}," for i in range(200, 205)]
    p = parse_csv(("time_s,bt_f\n" + "\n".join(rows)).encode(), "g.csv")
    assert np.all(np.diff(p.bt) > 0)
    rows[200:260] = [f"{i},-1" for i in range(200, 260)]
    with pytest.raises(ImportFailure, match="missing for 6[01] s") as err:
        parse_csv(("time_s,bt_f\n" + "\n".join(rows)).encode(), "g.csv")
    assert err.value.code == "gap"


@pytest.mark.parametrize(
    "text, words",
    [
        ("", "empty CSV"),
        ("# only: comments\n", "empty CSV"),
        ("a,b\n1,2\n3,4\n", "no time column"),
        ("time_s,temp\n1,2\n3,4\n", "no bean-temperature column"),
        ("time_s,bt_f\n0,400\n", "data row"),
        ("time_s,bt_f\n0,400\nx,300\n2,200\n", "not a number"),
        ("time_s,bt_f\n0,400\n0,300\n2,200\n", "not increasing"),
        ("time_s,bt_f\n0,\n1,\n2,\n", "no numbers"),
        ("time_s,bt_f\n0,400\n1,300\n2,200\n", "duration"),
    ],
)
def test_rejections(text, words):
    with pytest.raises(ImportFailure, match=words):
        parse_csv(text.encode(), "bad.csv")


def _rows(n: int = 601) -> str:
    return "time_s,bt_f\n" + "".join(f"{i},{300 + 0.2 * i:.1f}\n" for i in range(n))


def test_flavour_header_with_a_long_space_run_is_linear():
    """Case 2 of issue 13: `\\s*[,;]\\s*` took 27 s on 60 kB of spaces (and hours on 1 MB). Its
    time per MiB is measured by benchmarks/bench_import.py (csv_flavor_spaces), not asserted here."""
    text = "# flavors: a" + " " * 1_000_000 + "b, c;  d\n" + _rows()
    p = parse_csv(text.encode(), "f.csv")
    assert p.meta.flavors == ("a b", "c", "d")


def test_reasons_never_copy_cells_or_a_linked_files_first_line():
    """Case 10: reasons copied whole CSV cells (up to 30 kB) and the header row of any file."""
    with pytest.raises(ImportFailure) as err:
        parse_csv(("time_s,bt_f\n0,400\n" + "x" * 30_000 + ",300\n2,200\n").encode(), "cell.csv")
    assert "'xxxxxxxxxxxxxxxxxxxxxxxx...'" in err.value.reason and len(err.value.reason) <= 200
    with pytest.raises(ImportFailure) as err:
        parse_csv(b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n", "pw.csv")
    assert "/bin/bash" not in err.value.reason and "daemon" not in err.value.reason
    assert "no time column" in err.value.reason


@pytest.mark.slow
def test_hostile_csv_shapes_are_bounded():
    from roastcore.io.base import MAX_SAMPLES

    with pytest.raises(ImportFailure, match=f"more than {MAX_SAMPLES:,} data rows"):
        parse_csv(_rows(MAX_SAMPLES + 5).encode(), "rows.csv")
    # unknown header keys are not kept, so any number of them costs nothing
    text = "".join(f"# k{i}: {i}\n" for i in range(100_000)) + "\n" * 100_000 + _rows()
    assert parse_csv(text.encode(), "keys.csv").n == 601
    side = json.dumps({"flavors": [[]] * (200_000)}).encode()  # a sidecar of 200k empty lists
    with pytest.raises(ImportFailure, match="metadata sidecar: more than 50,000 separate values"):
        parse_csv(_rows().encode(), "side.csv", side)
