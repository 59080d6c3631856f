"""Folder and zip import, duplicates, data sources, dataset fingerprints and `data summary`."""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import zipfile

import numpy as np
import pytest

from roastcore.cli import main as cli_main
from roastcore.io import (
    ImportFailure,
    dataset_fingerprint,
    import_folder,
    is_multi_source,
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


def test_several_sources_in_one_spec(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    write_csv(make_profile(duration_s=600), first / "a.csv")
    write_csv(make_profile(duration_s=650), first / "b.csv")
    write_csv(make_profile(duration_s=700), second / "c.csv")
    write_csv(make_profile(duration_s=600), second / "a_again.csv")  # the same curve as first/a.csv
    report = load_source(f"{first}, {second}")
    assert [round(p.duration_s) for p in report.profiles] == [600, 650, 700]  # in order, once each
    assert report.source == f"{first},{second}"
    assert [report.origins[p.id] for p in report.profiles] == [str(first), str(first), str(second)]
    assert report.duplicates == [(f"{second}: a_again.csv", f"{first}: a.csv")]
    assert load_source(str(first)).origins == {}  # one source: nothing to tell apart
    with pytest.raises(ValueError, match="empty part"):
        load_source(f"{first},,{second}")
    with pytest.raises(ValueError, match="twice"):
        load_source(f"{first},{first}")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_source(f"{first},{tmp_path / 'nowhere'}")
    odd = tmp_path / "a,b.csv"  # a real path with a comma is that path
    write_csv(make_profile(duration_s=620), odd)
    assert len(load_source(str(odd)).profiles) == 1
    assert is_multi_source(f"{first}, {second}") and is_multi_source("synthetic:3,synthetic:4")
    assert not is_multi_source(str(odd)) and not is_multi_source(str(first)) and not is_multi_source(first)


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


@pytest.mark.slow
def test_cli_summary_over_the_real_artisan_folder(artisan_dir, capsys):
    assert cli_main(["data", "summary", str(artisan_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profiles"] == 346 and len(out["rejected"]) == 39 and len(out["duplicates"]) == 11
    assert all(r["reason"] for r in out["rejected"])
    assert 380 <= out["stats"]["drop_f"]["median"] <= 440


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


# ------------------------------------------------------------------ special files, links, names
def _without_hanging(fn, fifo=None, seconds: float = 20.0):
    """fn() in a daemon thread: a regression that blocks on a FIFO fails instead of hanging."""
    result: dict = {}
    worker = threading.Thread(target=lambda: result.setdefault("value", fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive() and fifo is not None:
        try:  # release the blocked reader so the thread can end
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    assert not worker.is_alive(), "the import blocked"
    return result["value"]


def test_fifos_sockets_and_outside_links_are_rejected_unread(tmp_path):
    """Case 4 of issue 13: a FIFO named x.alog hung the import forever. Case 10: a CSV linked to
    /etc/passwd had its first line printed in the reason."""
    root = tmp_path / "ff"
    root.mkdir()
    os.mkfifo(root / "x.alog")
    os.mkfifo(root / "y.zip")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "s.csv"))
    outside = tmp_path / "secret.txt"
    outside.write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "passwd.csv").symlink_to(outside)
    write_alog(make_profile(), root / "good.alog")
    (root / "inside_link.alog").symlink_to(root / "good.alog")  # inside the folder: read
    try:
        report = _without_hanging(lambda: import_folder(root), fifo=root / "x.alog")
        single = _without_hanging(lambda: load_source(str(root / "x.alog")), fifo=root / "x.alog")
    finally:
        sock.close()
    rejected = {r.file: (r.code, r.reason) for r in report.rejected}
    assert rejected["x.alog"] == ("special_file", "a named pipe (FIFO), not a regular file: not read")
    assert rejected["y.zip"][0] == "special_file" and rejected["s.csv"][0] == "special_file"
    assert rejected["s.csv"][1].startswith("a socket")
    assert rejected["passwd.csv"] == ("unsafe_path", "symbolic link to a file outside the imported folder: not read")
    assert [p.meta.source_file for p in report.profiles] == ["good.alog"]
    assert report.duplicates == [("inside_link.alog", "good.alog")]
    assert [(r.file, r.code) for r in single.rejected] == [("x.alog", "special_file")]
    assert "root:" not in json.dumps(report.to_dict())


def test_terminal_escapes_in_file_names_are_neutralised(tmp_path, capsys):
    root = tmp_path / "esc"
    root.mkdir()
    (root / "evil\x1b[2J\x1b[31mred.alog").write_text("{'timex': [1,")
    (root / "bidi\u202eroast.csv").write_text("time_s,bt_f\n0,1\n")
    assert cli_main(["data", "summary", str(root)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out
    assert "evil\\x1b[2J\\x1b[31mred.alog" in out and "bidi\\u202eroast.csv" in out
    report = import_folder(root)
    assert all(r.file.isprintable() and r.reason.isprintable() for r in report.rejected)


# ------------------------------------------------------------------ zip central directories
def _zip_directory_only(entries: int, claimed: int | None = None, zip64: bool = False,
                        directory_size: int | None = None) -> bytes:
    """A zip holding only a central directory of `entries` empty members (no data: the check
    must refuse it from the directory alone), with the end record claiming `claimed` entries."""
    claimed = entries if claimed is None else claimed
    directory = b"".join(
        struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0, 0)
        + name for name in (f"r{i:07d}.alog".encode() for i in range(entries)))
    size = len(directory) if directory_size is None else directory_size
    if not zip64:
        return directory + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, claimed, claimed, size, 0, 0)
    record = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, claimed, claimed, size, 0)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, len(directory), 1)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return directory + record + locator + end


def test_zip_entry_count_is_checked_before_zipfile_parses_the_directory(tmp_path):
    """Case 7: a 1M-entry zip was parsed in full (41 s, 593 MB) before the limit applied (its time:
    benchmarks/bench_import.py, zip_entries)."""
    big = tmp_path / "big.zip"
    big.write_bytes(_zip_directory_only(200_000, zip64=True))
    with pytest.raises(ImportFailure, match="zip holds 200,000 entries, more than the 50,000 limit") as err:
        import_folder(big)
    assert err.value.code == "too_large"
    lying = tmp_path / "lying.zip"  # the end record says 3; the directory holds 60,000
    lying.write_bytes(_zip_directory_only(60_000, claimed=3))
    with pytest.raises(ImportFailure, match="more than the 50,000 entries allowed"):
        import_folder(lying)
    huge_dir = tmp_path / "huge_dir.zip"
    huge_dir.write_bytes(_zip_directory_only(2, directory_size=40 * 1024 * 1024))
    with pytest.raises(ImportFailure, match="central directory is 40 MiB, more than the 32 MiB limit"):
        import_folder(huge_dir)


def test_truncated_zip_is_called_truncated(tmp_path):
    """Case 10: a truncated zip was reported as "unsupported file type '.zip'"."""
    whole = tmp_path / "whole.zip"
    with zipfile.ZipFile(whole, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(3):
            zf.writestr(f"r{i}.alog", repr(to_alog_dict(make_profile(duration_s=600 + 10 * i))))
    data = whole.read_bytes()
    for name in ("cut.zip", "cut.bin"):
        (tmp_path / name).write_bytes(data[: len(data) // 2])
        with pytest.raises(ImportFailure, match="truncated or damaged zip archive") as err:
            load_source(str(tmp_path / name))
        assert err.value.code == "bad_zip"
    folder = tmp_path / "upload"
    folder.mkdir()
    (folder / "cut.zip").write_bytes(data[: len(data) // 2])
    assert [(r.file, r.code) for r in import_folder(folder).rejected] == [("cut.zip", "bad_zip")]
    assert len(import_folder(whole).profiles) == 3
