"""Folder and zip import, duplicates, data sources, dataset fingerprints and `data summary`."""

from __future__ import annotations

import json
import time
import zipfile

import numpy as np
import pytest

from roastcore.cli import main as cli_main
from roastcore.io import (
    ImportFailure,
    dataset_fingerprint,
    import_folder,
    load_source,
    write_alog,
    write_csv,
    write_json,
)
from roastcore.io.alog import to_alog_dict
from roastcore.io.csv import to_csv_text
from roastcore.io.folder import safe_member_name
from roastcore.io.onyx import to_onyx_dict
from roastcore.profile import Profile, ProfileMeta


def make_profile(duration_s: int = 600, drop_f: float = 410.0, **meta) -> Profile:
    t = np.arange(duration_s + 1.0)
    bt = 160 + 260 * np.exp(-t / 25.0) + (drop_f - 160) * (1 - (1 - t / duration_s) ** 1.6)
    return Profile(bt=bt, et=bt + 70, events={"FCs": 0.8 * duration_s}, meta=ProfileMeta(**meta))


@pytest.fixture
def mixed_folder(tmp_path):
    """Three good roasts in three formats, a renamed copy, a broken file and some non-roast files."""
    root = tmp_path / "roasts"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".hidden").mkdir()
    write_alog(make_profile(origin="Kenya"), root / "a_kenya.alog")
    write_alog(make_profile(origin="Kenya"), root / "sub" / "z_copy_of_kenya.alog")  # same curve
    write_json(make_profile(duration_s=650), root / "sub" / "b.json")
    write_csv(make_profile(duration_s=700), root / "sub" / "deeper" / "c.csv")
    (root / "sub" / "deeper" / "c.csv.json").write_text(json.dumps({"origin": "Peru"}))
    (root / "broken.alog").write_text("{'timex': [")
    (root / "notes.txt").write_text("not a roast")
    write_alog(make_profile(duration_s=800), root / ".hidden" / "ignored.alog")
    return root


def test_folder_import_keeps_going_and_reports_everything(mixed_folder):
    report = import_folder(mixed_folder)
    assert [p.meta.source_file for p in report.profiles] == ["a_kenya.alog", "sub/b.json", "sub/deeper/c.csv"]
    assert report.duplicates == [("sub/z_copy_of_kenya.alog", "a_kenya.alog")]
    assert [(r.file, r.code) for r in report.rejected] == [("broken.alog", "malformed")]
    assert report.skipped == ["notes.txt"]
    assert report.profiles[2].meta.origin == "Peru"  # the sidecar was read with its CSV
    d = report.to_dict()
    assert d["profiles"] == 3 and d["rejected"][0]["file"] == "broken.alog" and d["rejected"][0]["reason"]


def test_duplicates_are_reported_once_and_the_first_is_kept(tmp_path):
    for name in ("c.alog", "a.alog", "b.alog"):
        write_alog(make_profile(), tmp_path / name)
    report = import_folder(tmp_path)
    assert len(report.profiles) == 1 and report.profiles[0].meta.source_file == "a.alog"
    assert report.duplicates == [("b.alog", "a.alog"), ("c.alog", "a.alog")]


def _zip_with_everything(path):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("roasts/", "")  # a directory entry
        zf.writestr("roasts/one.alog", repr(to_alog_dict(make_profile())))
        zf.writestr("roasts/one_again.alog", repr(to_alog_dict(make_profile())))
        zf.writestr("roasts/two.json", json.dumps(to_onyx_dict(make_profile(duration_s=660))))
        zf.writestr("roasts/three.csv", to_csv_text(make_profile(duration_s=720)))
        zf.writestr("roasts/three.csv.json", json.dumps({"process": "Natural"}))
        zf.writestr("../../evil.alog", repr(to_alog_dict(make_profile(duration_s=800))))
        zf.writestr("/abs/evil.alog", repr(to_alog_dict(make_profile(duration_s=810))))
        zf.writestr("roasts/..\\..\\win_evil.alog", "x")
        zf.writestr("__MACOSX/roasts/._one.alog", "junk")
        zf.writestr("roasts/readme.md", "hello")
        zf.writestr("roasts/bad.json", "[]")


def test_zip_import_is_safe(tmp_path):
    archive = tmp_path / "inbox" / "batch.zip"
    archive.parent.mkdir()
    _zip_with_everything(archive)
    report = import_folder(archive)
    assert [p.meta.source_file for p in report.profiles] == ["roasts/one.alog", "roasts/three.csv", "roasts/two.json"]
    assert report.profiles[1].meta.process == "natural"
    assert report.duplicates == [("roasts/one_again.alog", "roasts/one.alog")]
    unsafe = sorted(r.file for r in report.rejected if r.code == "unsafe_path")
    assert unsafe == ["../../evil.alog", "/abs/evil.alog", "roasts/..\\..\\win_evil.alog"]
    assert [r.file for r in report.rejected if r.code != "unsafe_path"] == ["roasts/bad.json"]
    assert report.skipped == ["roasts/readme.md"]
    assert not list(tmp_path.rglob("evil.alog")) and not (tmp_path.parent / "evil.alog").exists()
    assert load_source(str(archive)).to_dict() == report.to_dict()


def test_zip_member_size_limits(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.alog", b"{" + b" " * (21 * 1024 * 1024))  # compresses to ~20 kB
        zf.writestr("ok.alog", repr(to_alog_dict(make_profile())))
    report = import_folder(archive)
    assert len(report.profiles) == 1
    assert [(r.file, r.code) for r in report.rejected] == [("big.alog", "too_large")]


def test_bad_zip_and_missing_paths(tmp_path):
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(ImportFailure, match="zip"):
        import_folder(fake)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_source(str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError):
        import_folder(tmp_path / "nowhere")


@pytest.mark.parametrize("name, safe", [
    ("a/b.alog", "a/b.alog"), ("./a//b.alog", "a/b.alog"), ("../a.alog", None), ("a/../../b.alog", None),
    ("/etc/passwd", None), ("C:\\x.alog", None), ("a\\..\\..\\b", None), ("", None),
])
def test_safe_member_name(name, safe):
    assert safe_member_name(name) == safe


def test_load_source_single_files_and_synthetic_spec(tmp_path):
    good = tmp_path / "good.csv"
    write_csv(make_profile(), good)
    report = load_source(str(good))
    assert len(report.profiles) == 1 and not report.rejected
    bad = tmp_path / "bad.alog"
    bad.write_text("{}")
    report = load_source(bad)
    assert not report.profiles and report.rejected[0].file == "bad.alog" and "no samples" in report.rejected[0].reason
    for spec in ("synthetic:0", "synthetic:abc", "synthetic:-3"):
        with pytest.raises(ValueError, match="synthetic:N"):
            load_source(spec)


def test_dataset_fingerprint_is_stable_and_order_independent():
    profiles = [make_profile(duration_s=d) for d in (600, 650, 700)]
    fp = dataset_fingerprint(profiles)
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert dataset_fingerprint(profiles[::-1]) == fp
    assert dataset_fingerprint([make_profile(duration_s=d) for d in (600, 650, 700)]) == fp
    assert dataset_fingerprint(profiles[:2]) != fp
    assert dataset_fingerprint(profiles[:2] + [make_profile(duration_s=700, drop_f=411.0)]) != fp


# ------------------------------------------------------------------ CLI
def test_cli_data_summary_json(mixed_folder, capsys):
    assert cli_main(["data", "summary", str(mixed_folder), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profiles"] == 3
    assert out["rejected"] == [{"file": "broken.alog", "reason": out["rejected"][0]["reason"], "code": "malformed"}]
    assert out["duplicates"] == [{"file": "sub/z_copy_of_kenya.alog", "duplicate_of": "a_kenya.alog"}]
    stats = out["stats"]
    assert stats["duration_s"] == {"n": 3, "min": 600.0, "median": 650.0, "max": 700.0}
    assert stats["fcs_s"]["median"] == 520.0 and stats["charge_f"]["n"] == 3
    assert set(stats) == {"charge_f", "tp_f", "tp_s", "fcs_s", "drop_f", "duration_s", "dtr"}


def test_cli_data_summary_text_and_errors(mixed_folder, capsys):
    assert cli_main(["data", "summary", str(mixed_folder)]) == 0
    out = capsys.readouterr().out
    assert "profiles:    3" in out and "broken.alog" in out
    for label in ("charge (°F)", "TP time (s)", "FCs time (s)", "drop temp (°F)", "duration (s)"):
        assert label in out
    assert cli_main(["data", "summary", str(mixed_folder / "missing")]) == 2
    assert "not found" in capsys.readouterr().err


def test_cli_summary_over_the_real_artisan_folder(artisan_dir, capsys):
    start = time.perf_counter()
    assert cli_main(["data", "summary", str(artisan_dir), "--json"]) == 0
    seconds = time.perf_counter() - start
    out = json.loads(capsys.readouterr().out)
    assert out["profiles"] == 346 and len(out["rejected"]) == 39 and len(out["duplicates"]) == 11
    assert all(r["reason"] for r in out["rejected"])
    assert 380 <= out["stats"]["drop_f"]["median"] <= 440
    assert seconds < 60


def test_zips_inside_a_folder_join_the_same_report(tmp_path):
    """An upload folder: loose files and zips are one batch; duplicates are found across them."""
    root = tmp_path / "upload"
    root.mkdir()
    write_alog(make_profile(origin="Kenya"), root / "loose.alog")
    with zipfile.ZipFile(root / "batch.zip", "w") as zf:
        zf.writestr("copy.alog", (root / "loose.alog").read_text())  # same curve as the loose file
        zf.writestr("other.json", json.dumps(to_onyx_dict(make_profile(duration_s=650))))
        zf.writestr("../escape.alog", "{}")
    (root / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")
    report = import_folder(root)
    # Names are read in sorted order, so the zipped copy comes first and the loose file repeats it.
    assert [p.meta.source_file for p in report.profiles] == ["batch.zip/copy.alog", "batch.zip/other.json"]
    assert report.duplicates == [("loose.alog", "batch.zip/copy.alog")]
    rejected = {r.file: r.code for r in report.rejected}
    assert rejected["broken.zip"] == "bad_zip"
    assert rejected["batch.zip/../escape.alog"] == "unsafe_path"
