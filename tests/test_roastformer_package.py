"""The RoastFormer research code's dataset package: every roast imports, with its own split."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile

import pytest
from roastformer_fixture import package_files, write_package

from roastcore.cli import main
from roastcore.evaluate import select_split
from roastcore.io import ImportFailure, load_source
from roastcore.io.roastformer_package import (
    PackageReport,
    find_package,
    import_package,
    read_package,
    split_by_membership,
)
from roastcore.io.sources import import_tree
from roastcore.predict import find_profile


@pytest.fixture(scope="module")
def files():
    return package_files()


@pytest.fixture(scope="module")
def package_zip(files, tmp_path_factory):
    return write_package(tmp_path_factory.mktemp("pkg") / "roastformer_data.zip", files=files)


def _val_batches(files) -> set[str]:
    return {r["metadata"]["roast_info"]["batch"] for r in json.loads(files["val_profiles.json"])}


def test_the_144_roast_zip_imports_144_with_its_own_split(package_zip, files):
    report = load_source(package_zip)
    assert isinstance(report, PackageReport)
    assert len(report.profiles) == 144 and not report.rejected and not report.duplicates
    assert report.package_root == "roastformer_data_20251118_090504/preprocessed_data/"
    # the stand-in scripts beside the package are listed, not imported
    assert sorted(report.skipped) == ["roastformer_data_20251118_090504/src/model/transformer_adapter.py",
                                      "roastformer_data_20251118_090504/train_transformer.py"]
    train, val = split_by_membership(report.profiles, report.membership)
    assert (len(train), len(val)) == (123, 21)
    assert {p.meta.batch_id for p in val} == _val_batches(files)
    # the membership reaches evaluate.select_split as a manifest's val ids
    chosen, rest, label, _ = select_split(report.profiles, {"split": {"val_ids": report.split_ids("val")}}, "val")
    assert label == "val" and {p.id for p in chosen} == {p.id for p in val} and len(rest) == 123


def test_profiles_are_addressable_by_batch_id_and_keep_onyx_metadata(package_zip, files):
    report = import_tree(package_zip)  # the folder/zip importer routes packages here
    first_val = json.loads(files["val_profiles.json"])[0]
    batch = first_val["metadata"]["roast_info"]["batch"]
    profile = find_profile(report.profiles, batch)
    assert profile.meta.batch_id == batch and report.membership[profile.id] == "val"
    assert profile.meta.source_file.endswith("val_profiles.json[0]")
    assert profile.bt[:5].tolist() == [pt["value"] for pt in first_val["roast_profile"]["bean_temp"][:5]]
    assert profile.meta.origin is not None and profile.meta.product == first_val["metadata"]["product_name"]
    assert find_profile(report.profiles, profile.id) is profile


@pytest.mark.slow
def test_folder_layout_and_data_summary_cli(files, tmp_path, capsys):
    folder = write_package(tmp_path / "upload", layout="folder", files=files)
    assert find_package(folder).root == "preprocessed_data/"
    assert main(["data", "summary", str(folder), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profiles"] == 144 and out["roastformer_package"] == {
        "root": "preprocessed_data/", "train": 123, "val": 21}
    # the package folder itself, and a folder holding the zip (an upload), work alike
    assert len(load_source(folder / "preprocessed_data").profiles) == 144
    shutil.rmtree(folder)
    holder = tmp_path / "holder"
    holder.mkdir()
    write_package(holder / "upload.zip", files=files)
    assert len(import_tree(holder).profiles) == 144


def test_bad_roasts_are_rejected_with_a_reason_and_the_rest_import(files, tmp_path):
    train = json.loads(files["train_profiles.json"])
    del train[3]["roast_profile"]
    train[5]["roast_profile"]["bean_temp"] = train[5]["roast_profile"]["bean_temp"][:10]  # 9 s "roast"
    train[7] = "not a roast"
    del train[8]["metadata"]["roast_info"]  # no batch number: the CSV's batch_id (same row) is used
    broken = {**files, "train_profiles.json": json.dumps(train).encode()}
    report = import_package(write_package(tmp_path / "p.zip", files=broken))
    assert len(report.profiles) == 141
    reasons = {r.file.rsplit("/", 1)[-1]: r.reason for r in report.rejected}
    assert "no 'roast_profile' object" in reasons["train_profiles.json[3]"]
    assert "implausible roast" in reasons["train_profiles.json[5]"]
    assert "expected a roast object" in reasons["train_profiles.json[7]"]
    csv_batch = files["train_metadata.csv"].decode().splitlines()[9].split(",")[0]
    assert find_profile(report.profiles, csv_batch).meta.source_file.endswith("train_profiles.json[8]")


def test_structural_problems_are_clear_errors(files, tmp_path):
    with pytest.raises(ImportFailure, match="no training metadata: train_metadata.csv missing"):
        load_source(write_package(tmp_path / "a.zip", files=files, drop=("train_metadata.csv",)))
    as_object = {**files, "val_profiles.json": b'{"roasts": []}'}
    with pytest.raises(ImportFailure, match="top level is a JSON dict; a package's profile list is a JSON list"):
        load_source(write_package(tmp_path / "b.zip", files=as_object))
    bad_csv = {**files, "val_metadata.csv": b"batch_id,product\n1,x\n"}
    with pytest.raises(ImportFailure, match="val_metadata.csv: no column"):
        import_package(write_package(tmp_path / "c.zip", files=bad_csv))
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as zf:
        for top in ("a/preprocessed_data/", "b/preprocessed_data/"):
            for name, data in files.items():
                zf.writestr(top + name, data)
    with pytest.raises(ImportFailure, match="more than one RoastFormer package"):
        load_source(tmp_path / "two.zip")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportFailure, match="no RoastFormer package here"):
        read_package(tmp_path / "empty")
    # a folder of ordinary roast files is not a package: the usual importer runs
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "r.json").write_bytes(json.dumps(json.loads(files["val_profiles.json"])[0]).encode())
    assert find_package(plain) is None and len(load_source(plain).profiles) == 1


@pytest.mark.slow
def test_a_package_of_real_onyx_roasts_imports_like_the_files_themselves(onyx_dir, tmp_path):
    """Built in tmp from the real scraped roasts (never copied into the repo): the package route
    and the plain-folder route give the same curves, ids and batch numbers."""
    roasts = [json.loads(p.read_text()) for p in sorted(onyx_dir.glob("*.json"))]
    header = "batch_id,product_name,origin,process,roast_level,variety,target_finish_temp,flavor_notes,directory\n"
    package = tmp_path / "preprocessed_data"
    package.mkdir()
    (package / "train_profiles.json").write_text(json.dumps(roasts[10:]))
    (package / "val_profiles.json").write_text(json.dumps(roasts[:10]))
    for split in ("train", "val"):
        (package / f"{split}_metadata.csv").write_text(header)
    via_package = load_source(package)
    via_files = load_source(onyx_dir)
    assert sorted(p.id for p in via_package.profiles) == sorted(p.id for p in via_files.profiles)
    assert len(via_package.split_ids("val")) == 10
    by_id = {p.id: p for p in via_files.profiles}
    assert all(by_id[p.id].meta.batch_id == p.meta.batch_id for p in via_package.profiles)


@pytest.mark.slow
def test_data_summary_subprocess_on_the_zip(package_zip):
    out = subprocess.run([sys.executable, "-m", "roastcore", "data", "summary", str(package_zip)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "profiles:    144" in out.stdout and "rejected:    0" in out.stdout
