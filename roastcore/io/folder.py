"""Batch import: a folder (recursively) or a .zip of mixed .alog / .json / .csv files.

One bad file never aborts the batch: it becomes a `Rejection` with its reason. Curves seen
before (same `Profile.fingerprint`, e.g. a renamed copy) are kept once, the first in sorted
path order, and reported in `duplicates`. Files with other suffixes, hidden files and CSV
metadata sidecars (`*.csv.json`) are not roast files: they are listed in `skipped`.

Zip archives are read in memory, never extracted: members with absolute or `..` paths are
rejected unread, and size limits (per member and in total) stop zip bombs.
"""

from __future__ import annotations

import logging
import os
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from roastcore.io.alog import parse_alog, read_alog
from roastcore.io.base import MAX_FILE_BYTES, ImportFailure, guarded, load_bytes
from roastcore.io.csv import SIDECAR_SUFFIX, parse_csv, read_csv
from roastcore.io.onyx import parse_onyx, read_onyx
from roastcore.profile import Profile

log = logging.getLogger(__name__)

SUFFIXES = (".alog", ".json", ".csv")
MAX_ZIP_MEMBERS = 50_000
MAX_ZIP_TOTAL_BYTES = 1024 * 1024 * 1024  # uncompressed bytes read from one archive


@dataclass
class Rejection:
    """A file that did not become a profile: where it is and why (`code` groups reasons)."""

    file: str
    reason: str
    code: str = "invalid"


@dataclass
class ImportReport:
    profiles: list[Profile] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (file, duplicate_of)
    skipped: list[str] = field(default_factory=list)  # not a roast format (other suffix, sidecar)
    source: str = ""

    def rejected_by_code(self) -> dict[str, int]:
        return dict(Counter(r.code for r in self.rejected).most_common())

    def to_dict(self) -> dict:
        """JSON-friendly summary (profiles as a count)."""
        return {
            "source": self.source,
            "profiles": len(self.profiles),
            "rejected": [{"file": r.file, "reason": r.reason, "code": r.code} for r in self.rejected],
            "rejected_by_code": self.rejected_by_code(),
            "duplicates": [{"file": f, "duplicate_of": d} for f, d in self.duplicates],
            "skipped": list(self.skipped),
        }

    def summary(self) -> str:
        return (f"{self.source}: {len(self.profiles)} profiles, {len(self.rejected)} rejected, "
                f"{len(self.duplicates)} duplicates, {len(self.skipped)} skipped")


def read_profile(path: str | os.PathLike) -> Profile:
    """Read one file by its suffix: .alog (Artisan), .json (Onyx-style), .csv."""
    readers: dict[str, Callable[[str | os.PathLike], Profile]] = {
        ".alog": read_alog, ".json": read_onyx, ".csv": read_csv,
    }
    suffix = Path(path).suffix.lower()
    if suffix not in readers:
        raise ImportFailure(path, f"unsupported file type {suffix or '(none)'!r}; expected one of {', '.join(SUFFIXES)}",
                            "unsupported")
    return readers[suffix](path)


def import_folder(path: str | os.PathLike) -> ImportReport:
    """Import every roast file under a folder, or inside a .zip, into one ImportReport."""
    path = Path(path).expanduser()
    from roastcore.io.roastformer_package import find_package, import_package  # imports this module

    if (package := find_package(path)) is not None:  # the RoastFormer research code's package
        return import_package(package)
    report = ImportReport(source=str(path))
    if path.is_dir():
        entries = _folder_entries(path, report)
    elif path.is_file() and (path.suffix.lower() == ".zip" or zipfile.is_zipfile(path)):
        entries = _zip_entries(path, report)
    elif not path.exists():
        raise FileNotFoundError(f"{path}: no such folder or zip archive")
    else:
        raise ImportFailure(path, "not a folder or a zip archive (use read_profile for one file)", "unsupported")

    first_by_fingerprint: dict[str, str] = {}
    for name, parse in entries:
        try:
            profile = guarded(name, parse)
        except ImportFailure as exc:
            log.debug("rejected %s: %s", name, exc.reason)
            report.rejected.append(Rejection(name, exc.reason, exc.code))
            continue
        fingerprint = profile.fingerprint()
        if fingerprint in first_by_fingerprint:
            report.duplicates.append((name, first_by_fingerprint[fingerprint]))
            continue
        first_by_fingerprint[fingerprint] = name
        profile.meta.source_file = name
        report.profiles.append(profile)
    log.info(report.summary())
    return report


def _is_hidden(part: str) -> bool:
    return part.startswith(".") or part == "__MACOSX"


def _classify(name: str) -> str | None:
    """The roast-format suffix of `name`, or None for files that are not roast profiles."""
    lower = name.lower()
    if lower.endswith(".csv" + SIDECAR_SUFFIX):
        return None  # a CSV's metadata sidecar, read together with its CSV
    suffix = PurePosixPath(lower).suffix
    return suffix if suffix in SUFFIXES else None


def _parser(suffix: str, data_fn: Callable[[], bytes], name: str,
            sidecar_fn: Callable[[], bytes | None]) -> Callable[[], Profile]:
    if suffix == ".alog":
        return lambda: parse_alog(data_fn(), name)
    if suffix == ".json":
        return lambda: parse_onyx(data_fn(), name)
    return lambda: parse_csv(data_fn(), name, sidecar_fn())


def _folder_entries(root: Path, report: ImportReport) -> Iterator[tuple[str, Callable[[], Profile]]]:
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root, followlinks=False):  # no symlinked folders: no loops
        dirs[:] = sorted(d for d in dirs if not _is_hidden(d))
        for fname in files:
            if _is_hidden(fname):
                continue
            full = Path(folder) / fname
            found.append((full.relative_to(root).as_posix(), full))
    for name, full in sorted(found):
        if name.lower().endswith(".zip"):
            # A zip beside loose files (e.g. an upload): its members join the same report, so
            # duplicates are found across both. A broken zip is one rejection, not an abort.
            try:
                yield from _zip_entries(full, report, prefix=name + "/")
            except ImportFailure as exc:
                report.rejected.append(Rejection(name, exc.reason, exc.code))
            continue
        suffix = _classify(name)
        if suffix is None:
            if not name.lower().endswith(".csv" + SIDECAR_SUFFIX):
                report.skipped.append(name)
            continue
        side = full.with_name(full.name + SIDECAR_SUFFIX)
        yield name, _parser(suffix, lambda full=full: load_bytes(full), name,
                            lambda side=side: load_bytes(side) if side.is_file() else None)


def safe_member_name(name: str) -> str | None:
    """The member's relative POSIX path, or None when it could escape (absolute, drive, '..')."""
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        return None
    parts = [p for p in normalised.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        return None
    return "/".join(parts)


def _zip_entries(path: Path, report: ImportReport,
                 prefix: str = "") -> Iterator[tuple[str, Callable[[], Profile]]]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ImportFailure(path, f"not a readable zip archive ({exc})", "bad_zip") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise ImportFailure(path, f"zip holds {len(infos)} entries, more than the {MAX_ZIP_MEMBERS} limit", "too_large")
        members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            if info.is_dir():
                continue
            safe = safe_member_name(info.filename)
            if safe is None:
                report.rejected.append(Rejection(prefix + info.filename, "unsafe path in zip (absolute or '..'): not read",
                                                 "unsafe_path"))
                continue
            if any(_is_hidden(p) for p in safe.split("/")):
                continue
            members.setdefault(safe, info)
        budget = [MAX_ZIP_TOTAL_BYTES]

        def read(info: zipfile.ZipInfo, name: str) -> bytes:
            limit = min(MAX_FILE_BYTES, budget[0])
            if info.file_size > limit:
                what = "file" if info.file_size > MAX_FILE_BYTES else "archive"
                raise ImportFailure(name, f"{what} size limit exceeded ({info.file_size / 1e6:.1f} MB uncompressed)", "too_large")
            try:
                with archive.open(info) as fh:
                    data = fh.read(limit + 1)  # the header's size may lie; the cap may not
            except (RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                raise ImportFailure(name, f"cannot extract from the zip ({exc})", "bad_zip") from None
            if len(data) > limit:
                raise ImportFailure(name, "uncompresses past the size limit (zip bomb?)", "too_large")
            budget[0] -= len(data)
            return data

        for member in sorted(members):
            name = prefix + member
            suffix = _classify(member)
            if suffix is None:
                if not member.lower().endswith(".csv" + SIDECAR_SUFFIX):
                    report.skipped.append(name)
                continue
            info = members[member]
            side = members.get(member + SIDECAR_SUFFIX)
            yield name, _parser(suffix, lambda info=info, name=name: read(info, name), name,
                                lambda side=side, name=name: None if side is None else read(side, name))
