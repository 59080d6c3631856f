"""The original RoastFormer research code's dataset package (`preprocessed_data/`).

Layout (facts from the research code's prepare_training_data.py and its loaders):

    preprocessed_data/
        train_profiles.json   JSON list of Onyx-style roast objects (metadata / roast_profile / summary)
        val_profiles.json     the same, for its validation roasts
        train_metadata.csv    batch_id, product_name, origin, process, roast_level, variety,
        val_metadata.csv      target_finish_temp, flavor_notes, directory
        dataset_stats.json    counts and ranges

It arrives as a folder or a zip, often with more files beside it (the research code's Colab zips
carry `src/` and scripts too) and sometimes one folder further down. `find_package` locates it;
`import_package` turns every roast into a Profile or a Rejection and keeps the package's own
train/val membership (`PackageReport.membership`, profile id -> "train" / "val"); `read_package`
returns the raw objects and metadata tables that roastcore.roastformer_v1 needs to rebuild the
original model's inputs exactly.

Roasts keep the usual curve-fingerprint ids (the same roast has the same id whichever way it
was imported); `meta.batch_id` carries the batch number, so profiles are addressable by it.
"""

from __future__ import annotations

import io
import json
import logging
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from roastcore.io.base import ImportFailure, guarded
from roastcore.io.folder import ImportReport, Rejection, safe_member_name
from roastcore.io.normalize import clean_text
from roastcore.io.onyx import parse_onyx

log = logging.getLogger(__name__)

SPLITS = ("train", "val")
PROFILE_FILES = {"train": "train_profiles.json", "val": "val_profiles.json"}
METADATA_FILES = {"train": "train_metadata.csv", "val": "val_metadata.csv"}
STATS_FILE = "dataset_stats.json"
METADATA_COLUMNS = ("product_name", "origin", "process", "roast_level", "variety")
MAX_DEPTH = 2  # the package folder may sit at most this many folders below the root given
# A package's profile lists hold every roast in one file (~0.1 MB per roast with indent=2).
MAX_PACKAGE_FILE_BYTES = 512 * 1024 * 1024
MAX_ZIP_SCAN = 50_000


@dataclass(frozen=True)
class PackageLocation:
    """Where a package lives: `path` (a folder or a .zip), and inside it the folder `root`
    ("" or "preprocessed_data/" ...). `inner_zip` is set when `path` is a folder that holds the
    zip with the package (an upload folder)."""

    path: Path
    root: str
    inner_zip: str | None = None

    def describe(self) -> str:
        where = self.path / self.inner_zip if self.inner_zip else self.path
        return f"{where}{'/' + self.root.rstrip('/') if self.root else ''}"


@dataclass
class PackageRoast:
    """One roast object of the package with its split, position and resolved batch id."""

    split: str
    index: int
    raw: dict
    batch_id: str

    @property
    def name(self) -> str:
        return f"{PROFILE_FILES[self.split]}[{self.index}]"


@dataclass
class RoastformerPackage:
    """The package's raw content: roast objects per split, metadata CSV bytes and stats."""

    location: PackageLocation
    roasts: list[PackageRoast]
    metadata_csv: dict[str, bytes]  # split -> CSV bytes (missing splits absent)
    stats: dict | None
    problems: list[Rejection] = field(default_factory=list)  # roast objects that are not dicts

    def split_roasts(self, split: str) -> list[PackageRoast]:
        return [r for r in self.roasts if r.split == split]

    def metadata_frames(self) -> dict:
        """split -> pandas DataFrame read exactly as the research loaders read it (pd.read_csv)."""
        import pandas as pd

        frames = {}
        for split, data in self.metadata_csv.items():
            try:
                frames[split] = pd.read_csv(io.BytesIO(data))
            except Exception as exc:  # noqa: BLE001 - pandas raises many kinds for bad CSV
                raise ImportFailure(self.location.describe() + "/" + METADATA_FILES[split],
                                    f"not a readable CSV ({type(exc).__name__}: {exc})", "package") from None
        return frames

    def require_metadata(self) -> dict:
        """Both metadata frames, or ImportFailure: the original label encodings are fitted on them."""
        missing = [METADATA_FILES[s] for s in SPLITS if s not in self.metadata_csv]
        if missing:
            raise ImportFailure(self.location.describe(),
                                f"no training metadata: {' and '.join(missing)} missing; the original "
                                "model's label encodings are fitted on train_metadata.csv + val_metadata.csv",
                                "package")
        frames = self.metadata_frames()
        for split, frame in frames.items():
            lacking = [c for c in METADATA_COLUMNS if c not in frame.columns]
            if lacking:
                raise ImportFailure(self.location.describe() + "/" + METADATA_FILES[split],
                                    f"no column(s) {', '.join(lacking)}; found {', '.join(map(str, frame.columns))}",
                                    "package")
        return frames


@dataclass
class PackageReport(ImportReport):
    """An ImportReport plus the package's own split: `membership[profile.id]` is "train" or "val"."""

    membership: dict[str, str] = field(default_factory=dict)
    package_root: str = ""

    def split_ids(self, split: str) -> list[str]:
        return [pid for pid, s in self.membership.items() if s == split]

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["roastformer_package"] = {"root": self.package_root,
                                      "train": len(self.split_ids("train")), "val": len(self.split_ids("val"))}
        return out


# ----------------------------------------------------------------------------- finding it
def find_package(path: str | os.PathLike) -> PackageLocation | None:
    """The package inside a folder or zip (at most MAX_DEPTH folders down), or None.

    A folder counts when it holds train_profiles.json or val_profiles.json. A folder given may
    also hold the package inside a .zip directly in it (an upload). Two packages at the same
    shallowest depth are ambiguous: ImportFailure.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        roots = _package_roots(_folder_names(path))
        if roots:
            return PackageLocation(path, _pick_root(path, roots))
        for zpath in sorted(path.iterdir()):
            if zpath.is_file() and zpath.suffix.lower() == ".zip" and not zpath.name.startswith("."):
                roots = _package_roots(_zip_names(zpath))
                if roots:
                    return PackageLocation(path, _pick_root(zpath, roots), inner_zip=zpath.name)
        return None
    if path.is_file() and zipfile.is_zipfile(path):
        roots = _package_roots(_zip_names(path))
        return PackageLocation(path, _pick_root(path, roots)) if roots else None
    return None


def _folder_names(root: Path) -> list[str]:
    names = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        rel = Path(folder).relative_to(root)
        depth = 0 if str(rel) == "." else len(rel.parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX") if depth < MAX_DEPTH else []
        names += [(rel / f).as_posix() if depth else f for f in files]
    return names


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()[:MAX_ZIP_SCAN]
    except (zipfile.BadZipFile, OSError, ValueError):
        return []  # the generic folder importer reports the broken zip
    names = []
    for info in infos:
        safe = safe_member_name(info.filename)
        if safe and not info.is_dir() and not any(p.startswith(".") or p == "__MACOSX" for p in safe.split("/")):
            names.append(safe)
    return names


def _package_roots(names: list[str]) -> list[str]:
    targets = set(PROFILE_FILES.values())
    roots = set()
    for name in names:
        p = PurePosixPath(name)
        if p.name in targets and len(p.parts) - 1 <= MAX_DEPTH:
            roots.add("" if len(p.parts) == 1 else str(p.parent) + "/")
    return sorted(roots, key=lambda r: (r.count("/"), r))


def _pick_root(where: Path, roots: list[str]) -> str:
    shallow = [r for r in roots if r.count("/") == roots[0].count("/")]
    if len(shallow) > 1:
        raise ImportFailure(where, "holds more than one RoastFormer package ("
                            + ", ".join(r or "./" for r in shallow) + "); give one of them", "package")
    return roots[0]


# ----------------------------------------------------------------------------- reading it
class _Files:
    """Reads the package's files from a folder or a zip, with size limits."""

    def __init__(self, loc: PackageLocation):
        self.loc = loc
        self.archive = None
        if loc.inner_zip:
            self.archive = zipfile.ZipFile(loc.path / loc.inner_zip)
        elif loc.path.is_file():
            self.archive = zipfile.ZipFile(loc.path)

    def close(self):
        if self.archive is not None:
            self.archive.close()

    def read(self, name: str) -> bytes | None:
        """The bytes of ROOT/name, or None when the package lacks it."""
        member = self.loc.root + name
        shown = self.loc.describe() + "/" + name
        if self.archive is None:
            full = self.loc.path / member
            if not full.is_file():
                return None
            if full.stat().st_size > MAX_PACKAGE_FILE_BYTES:
                raise ImportFailure(shown, f"larger than the {MAX_PACKAGE_FILE_BYTES >> 20} MB limit", "too_large")
            return full.read_bytes()
        try:
            info = self.archive.getinfo(member)
        except KeyError:
            return None
        if info.file_size > MAX_PACKAGE_FILE_BYTES:
            raise ImportFailure(shown, f"larger than the {MAX_PACKAGE_FILE_BYTES >> 20} MB limit", "too_large")
        try:
            with self.archive.open(info) as fh:
                data = fh.read(MAX_PACKAGE_FILE_BYTES + 1)  # the header's size may lie
        except (RuntimeError, NotImplementedError, zipfile.BadZipFile, OSError, EOFError) as exc:
            raise ImportFailure(shown, f"cannot extract from the zip ({exc})", "bad_zip") from None
        if len(data) > MAX_PACKAGE_FILE_BYTES:
            raise ImportFailure(shown, "uncompresses past the size limit (zip bomb?)", "too_large")
        return data

    def others(self) -> list[str]:
        """Everything beside the package's own files (listed as skipped)."""
        own = {self.loc.root + n for n in (*PROFILE_FILES.values(), *METADATA_FILES.values(), STATS_FILE)}
        if self.archive is not None:
            names = [n for n in (safe_member_name(i.filename) for i in self.archive.infolist() if not i.is_dir()) if n]
        else:
            names = _folder_names(self.loc.path)
        return sorted(n for n in names if n not in own)


def read_package(path: str | os.PathLike | PackageLocation) -> RoastformerPackage:
    """The raw package at `path` (folder, zip, or a located package). ImportFailure when there
    is none, when a profile list is not a JSON list, or when neither list exists."""
    loc = path if isinstance(path, PackageLocation) else find_package(path)
    if loc is None:
        raise ImportFailure(path, "no RoastFormer package here (no train_profiles.json or val_profiles.json "
                            f"within {MAX_DEPTH} folders)", "package")
    files = _Files(loc)
    try:
        return _read(loc, files)
    finally:
        files.close()


def _read(loc: PackageLocation, files: _Files) -> RoastformerPackage:
    roasts: list[PackageRoast] = []
    problems: list[Rejection] = []
    metadata = {s: data for s in SPLITS if (data := files.read(METADATA_FILES[s])) is not None}
    frames_for_ids = _batch_ids_by_position(metadata)
    found = False
    for split in SPLITS:
        data = files.read(PROFILE_FILES[split])
        if data is None:
            continue
        found = True
        shown = loc.describe() + "/" + PROFILE_FILES[split]
        try:
            doc = json.loads(data.decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise ImportFailure(shown, f"not UTF-8 text (byte {exc.start})", "package") from None
        except (json.JSONDecodeError, ValueError, RecursionError) as exc:
            raise ImportFailure(shown, f"not valid JSON ({str(exc)[:120]})", "package") from None
        if not isinstance(doc, list):
            raise ImportFailure(shown, f"top level is a JSON {type(doc).__name__}; a package's profile "
                                "list is a JSON list of roast objects", "package")
        for i, obj in enumerate(doc):
            if not isinstance(obj, dict):
                problems.append(Rejection(f"{loc.root}{PROFILE_FILES[split]}[{i}]",
                                          f"is a JSON {type(obj).__name__}, expected a roast object", "malformed"))
                continue
            batch = _batch_id(obj) or frames_for_ids.get((split, i)) or f"{split}#{i}"
            roasts.append(PackageRoast(split, i, obj, batch))
    if not found:
        raise ImportFailure(loc.describe(), "no train_profiles.json or val_profiles.json", "package")
    stats = None
    raw_stats = files.read(STATS_FILE)
    if raw_stats is not None:
        try:
            stats = json.loads(raw_stats.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError):
            log.warning("%s/%s is not valid JSON; ignored", loc.describe(), STATS_FILE)
    return RoastformerPackage(loc, roasts, metadata, stats if isinstance(stats, dict) else None, problems)


def _batch_id(obj: dict) -> str | None:
    """The roast's batch number as read_onyx reads it (metadata.roast_info.batch), else a
    metadata.batch_id field."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    info = meta.get("roast_info") if isinstance(meta.get("roast_info"), dict) else {}
    return clean_text(info.get("batch"), max_len=60) or clean_text(meta.get("batch_id"), max_len=60)


def _batch_ids_by_position(metadata: dict[str, bytes]) -> dict[tuple[str, int], str]:
    """(split, row) -> the CSV's batch_id: a fallback for roasts without roast_info.batch
    (prepare_training_data.py writes profiles and CSV rows of one split in the same order)."""
    import csv

    out = {}
    for split, data in metadata.items():
        try:
            rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
        except (UnicodeDecodeError, csv.Error):
            continue
        for i, row in enumerate(rows):
            value = clean_text(row.get("batch_id"), max_len=60)
            if value:
                out[(split, i)] = value
    return out


# ----------------------------------------------------------------------------- importing it
def import_package(path: str | os.PathLike | PackageLocation) -> PackageReport:
    """Every roast of the package as a Profile or a Rejection, with the package's membership.

    The package must carry its metadata CSVs (ImportFailure otherwise): without them the
    original model's inputs cannot be rebuilt, and a package without them is incomplete.
    """
    package = read_package(path)
    package.require_metadata()
    return profiles_of(package)


def profiles_of(package: RoastformerPackage) -> PackageReport:
    loc = package.location
    report = PackageReport(source=str(loc.path if not loc.inner_zip else loc.path / loc.inner_zip),
                           package_root=loc.root)
    report.rejected.extend(package.problems)
    files = _Files(loc)
    try:
        report.skipped.extend(files.others())
    finally:
        files.close()
    seen_batch: dict[str, str] = {}
    seen_curve: dict[str, str] = {}
    for roast in package.roasts:
        name = f"{loc.root}{roast.name}"
        if roast.batch_id in seen_batch:
            report.duplicates.append((name, seen_batch[roast.batch_id]))
            continue
        try:
            profile = guarded(name, lambda roast=roast, name=name: parse_onyx(
                json.dumps(roast.raw, allow_nan=True).encode(), name))
        except ImportFailure as exc:
            report.rejected.append(Rejection(name, exc.reason, exc.code))
            continue
        fingerprint = profile.fingerprint()
        if fingerprint in seen_curve:  # same curve under another batch number: one id, kept once
            report.duplicates.append((name, seen_curve[fingerprint]))
            continue
        seen_batch[roast.batch_id] = seen_curve[fingerprint] = name
        profile.meta.batch_id = roast.batch_id
        profile.meta.source_file = name
        report.profiles.append(profile)
        report.membership[profile.id] = roast.split
    log.info("%s (RoastFormer package: %d train, %d val)", report.summary(),
             len(report.split_ids("train")), len(report.split_ids("val")))
    return report


def split_by_membership(profiles, membership: dict[str, str]) -> tuple[list, list]:
    """(train, val) by the package's own membership; profiles it does not list go to train."""
    train = [p for p in profiles if membership.get(p.id) != "val"]
    val = [p for p in profiles if membership.get(p.id) == "val"]
    return train, val
