"""roastcore.io.registry: upload staging and limits, the dataset registry, crash-safe imports."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from roastcore.io import registry
from roastcore.io.registry import (
    DATASET_INDEX,
    UploadError,
    clean_leftovers,
    datasets_dir,
    import_path,
    import_uploads,
    list_datasets,
    register_dataset,
    sanitize_filename,
    save_dataset,
    stage_uploads,
    unique_dataset_name,
)

REPO = Path(__file__).resolve().parents[1]


def _leftovers(runs: Path) -> list[str]:
    """Temporary import folders (staging and partial datasets) under a runs directory."""
    found = [p.name for p in runs.glob(".upload-*")]
    found += [p.name for p in datasets_dir(runs).glob(".partial-*")] if datasets_dir(runs).is_dir() else []
    return found


def _upload_files(folder: Path, n: int, seed: int = 5) -> list[tuple[str, bytes]]:
    from roastcore.simulate import generate_dataset

    registry.save_profiles_json(generate_dataset(n=n, seed=seed), folder)
    return [(p.name, p.read_bytes()) for p in sorted(folder.iterdir())]


def test_sanitize_filename():
    assert sanitize_filename("../../etc/passwd") == "passwd"
    assert sanitize_filename("C:\\Users\\x\\roast 1.alog") == "roast_1.alog"
    assert sanitize_filename(".hidden") == "hidden"
    assert sanitize_filename("") == "file"


def test_stage_uploads_sanitises_dedupes_and_limits(tmp_path):
    dest = stage_uploads([("../a.alog", b"x"), ("a.alog", b"y"), ("dir/b.csv", b"z")], tmp_path / "s")
    assert sorted(p.name for p in dest.iterdir()) == ["a.alog", "a_2.alog", "b.csv"]
    with pytest.raises(UploadError, match="only"):
        stage_uploads([("evil.sh", b"x")], tmp_path / "t")
    with pytest.raises(UploadError, match="limit"):
        stage_uploads([("a.csv", b"x" * 100)], tmp_path / "u", max_total_bytes=10)
    with pytest.raises(UploadError, match="zip"):
        stage_uploads([("a.zip", b"not a zip")], tmp_path / "v")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("r.csv", "1,2\n")
    stage_uploads([("ok.zip", buf.getvalue())], tmp_path / "w")
    assert (tmp_path / "w" / "ok.zip").is_file()


def test_dataset_registry(tmp_path):
    assert list_datasets(tmp_path) == []
    e = register_dataset(tmp_path, "my roasts!", str(tmp_path / "x"), "upload", 12)
    assert e.name == "my_roasts" and e.key == "ds:my_roasts"
    assert [d.name for d in list_datasets(tmp_path)] == ["my_roasts"]
    assert unique_dataset_name(tmp_path, "my roasts") == "my_roasts_2"
    (datasets_dir(tmp_path) / DATASET_INDEX).write_text("{not json")
    assert list_datasets(tmp_path) == []


def test_registry_json_is_readable_by_other_processes(tmp_path):
    register_dataset(tmp_path, "x", "/abs/path", "path", 3)
    raw = json.loads((datasets_dir(tmp_path) / DATASET_INDEX).read_text())
    assert raw["x"]["spec"] == "/abs/path"


def test_import_uploads_saves_a_loadable_dataset_and_leaves_no_temporary_folder(tmp_path):
    from roastcore.io import load_source

    runs = tmp_path / "runs"
    files = _upload_files(tmp_path / "src", 3) + [("broken.alog", b"not a roast")]
    report, entry = import_uploads(runs, "my set", files)
    assert entry is not None and entry.name == "my_set" and entry.kind == "upload"
    assert len(report.profiles) == 3 and [r.file for r in report.rejected] == ["broken.alog"]
    assert Path(entry.spec) == (datasets_dir(runs) / "my_set").resolve()
    assert len(load_source(entry.spec).profiles) == 3
    assert _leftovers(runs) == []
    # Nothing importable: nothing saved, nothing registered, nothing left.
    report, entry = import_uploads(runs, "junk", [("a.csv", b"no,roast\n")])
    assert entry is None and len(report.rejected) == 1
    assert [e.name for e in list_datasets(runs)] == ["my_set"] and _leftovers(runs) == []
    assert sorted(p.name for p in datasets_dir(runs).iterdir()) == [DATASET_INDEX, "my_set"]
    # A refused upload leaves nothing either.
    with pytest.raises(UploadError, match="only"):
        import_uploads(runs, "evil", [("evil.sh", b"x")])
    assert _leftovers(runs) == []


def test_save_dataset_takes_a_free_name_and_import_path_references_in_place(tmp_path):
    from roastcore.simulate import generate_dataset

    runs = tmp_path / "runs"
    profiles = generate_dataset(n=2, seed=1)
    first = save_dataset(runs, "set", profiles, "generated")
    (datasets_dir(runs) / "set_2").mkdir()  # a folder nobody registered still blocks its name
    second = save_dataset(runs, "set", profiles, "generated")
    assert (first.name, second.name) == ("set", "set_3")
    assert len(list((datasets_dir(runs) / "set").iterdir())) == 2
    report, entry = import_path(runs, "server", Path(first.spec))
    assert entry.kind == "path" and entry.spec == first.spec and len(report.profiles) == 2
    with pytest.raises(UploadError, match="does not exist on the server"):
        import_path(runs, "gone", tmp_path / "missing")


def test_clean_leftovers_removes_dead_owners_and_old_folders_but_keeps_live_ones(tmp_path):
    runs = tmp_path / "runs"
    datasets_dir(runs).mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its pid is free (and unlikely to be reused within this test)
    planted = {
        runs / f".upload-{dead.pid}-abc": True,  # owner gone
        datasets_dir(runs) / f".partial-{dead.pid}-abc": True,
        runs / ".upload-k3j2h1": True,  # old-style name, no pid: stale by age
        runs / f".upload-{os.getpid()}-live": False,  # this process is importing right now
        datasets_dir(runs) / f".partial-{os.getpid()}-live": False,
        datasets_dir(runs) / "kept": False,  # a dataset folder is never touched
    }
    for folder in planted:
        folder.mkdir()
        (folder / "00000_r.json").write_text("{}")
    old = time.time() - registry.STALE_AFTER_S - 60
    os.utime(runs / ".upload-k3j2h1", (old, old))
    removed = clean_leftovers(runs)
    assert sorted(removed) == sorted(p for p, gone in planted.items() if gone)
    assert all(p.exists() != gone for p, gone in planted.items())
    assert clean_leftovers(tmp_path / "missing") == []


KILLED_IMPORT = """
import sys
from pathlib import Path
from roastcore.io.registry import import_uploads
files = [(p.name, p.read_bytes()) for p in sorted(Path(sys.argv[1]).iterdir())]
import_uploads(sys.argv[2], "big", files)
"""


@pytest.mark.slow
@pytest.mark.parametrize("phase", [".upload-", ".partial-"])
def test_an_import_killed_mid_way_leaves_only_what_the_next_import_cleans(tmp_path, phase):
    runs = tmp_path / "runs"
    runs.mkdir()
    src = tmp_path / "src"
    _upload_files(src, 120)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", KILLED_IMPORT, str(src), str(runs)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not any(n.startswith(phase) for n in _leftovers(runs)):
            assert proc.poll() is None, "the import finished before it could be killed"
            assert time.monotonic() < deadline, "the import never reached the phase"
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert any(n.startswith(phase) for n in _leftovers(runs))
    assert list_datasets(runs) == []  # nothing half-imported is listed...
    if datasets_dir(runs).is_dir():  # ...and no dataset folder exists under a real name
        assert [p.name for p in datasets_dir(runs).iterdir() if not p.name.startswith(".")] == []
    # The import that follows (another process: the killed one is gone) cleans up and works.
    report, entry = import_uploads(runs, "next", _upload_files(tmp_path / "small", 2, seed=9))
    assert entry is not None and len(report.profiles) == 2
    assert _leftovers(runs) == []
