"""Batch import: a folder (recursively) or a .zip of mixed .alog / .json / .csv files.

One bad file never aborts the batch: it becomes a `Rejection` with its reason. Curves seen
before (same `Profile.fingerprint`, e.g. a renamed copy) are kept once, the first in sorted
path order, and reported in `duplicates`. Files with other suffixes, hidden files and CSV
metadata sidecars (`*.csv.json`) are not roast files: they are listed in `skipped`.

Only regular files are read: named pipes, sockets and devices are rejected unread (a pipe would
block the import forever), and so are symbolic links that lead outside the imported folder.
File names are shown with control characters escaped (`display_name`).

Zip archives are read in memory, never extracted: members with absolute or `..` paths are
rejected unread, and size limits (per member and in total) stop zip bombs. The entry count and
the central directory's size are checked from the end record, and the directory walked, before
`zipfile` parses it (a million entries would cost it a minute and half a gigabyte).
"""

from __future__ import annotations

import logging
import os
import posixpath
import stat
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from roastcore.io.alog import parse_alog, read_alog
from roastcore.io.base import (
    MAX_FILE_BYTES,
    ImportFailure,
    clean_reason,
    display_name,
    file_kind,
    format_size,
    guarded,
    load_bytes,
    open_regular,
)
from roastcore.io.csv import SIDECAR_SUFFIX, parse_csv, read_csv
from roastcore.io.onyx import parse_onyx, read_onyx
from roastcore.profile import Profile

log = logging.getLogger(__name__)

SUFFIXES = (".alog", ".json", ".csv")
MAX_ZIP_MEMBERS = 50_000
MAX_ZIP_TOTAL_BYTES = 1024 * 1024 * 1024  # uncompressed bytes read from one archive
MAX_ZIP_DIRECTORY_BYTES = 32 * 1024 * 1024  # 50,000 entries with long names need ~17 MiB
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header, or the end record of an empty zip


@dataclass(slots=True)  # a zip of 50,000 bad members makes as many
class Rejection:
    """A file that did not become a profile: where it is and why (`code` groups reasons)."""

    file: str
    reason: str
    code: str = "invalid"

    def __post_init__(self):  # fit to print, wherever the rejection was made
        self.file = display_name(self.file)
        self.reason = clean_reason(self.reason)


@dataclass
class ImportReport:
    profiles: list[Profile] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (file, duplicate_of)
    skipped: list[str] = field(default_factory=list)  # not a roast format (other suffix, sidecar)
    source: str = ""
    # Several sources in one spec ("a,b"): profile id -> the part it came from; empty otherwise.
    origins: dict[str, str] = field(default_factory=dict)

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
    report = ImportReport(source=display_name(path))
    if path.is_dir():
        entries = _folder_entries(path, report)
    elif looks_like_zip(path):
        entries = _zip_entries(path, report)
    elif not path.exists():
        raise FileNotFoundError(f"{path}: no such folder or zip archive")
    else:
        raise ImportFailure(path, "not a folder or a zip archive (use read_profile for one file)", "unsupported")

    first_by_fingerprint: dict[str, str] = {}
    reasons: dict[str, str] = {}  # one string per common reason: a zip may repeat one 50,000 times
    for name, parse in entries:
        try:
            profile = guarded(name, parse)
        except ImportFailure as exc:
            log.debug("rejected %s: %s", name, exc.reason)
            reason = reasons.get(exc.reason, exc.reason)
            if len(reasons) < 1024:
                reasons.setdefault(reason, reason)
            report.rejected.append(Rejection(name, reason, exc.code))
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
    suffix = posixpath.splitext(lower)[1]  # as PurePosixPath.suffix, without building a path
    return suffix if suffix in SUFFIXES else None


def _parser(suffix: str, data_fn: Callable[[], bytes], name: str,
            sidecar_fn: Callable[[], bytes | None]) -> Callable[[], Profile]:
    if suffix == ".alog":
        return lambda: parse_alog(data_fn(), name)
    if suffix == ".json":
        return lambda: parse_onyx(data_fn(), name)
    return lambda: parse_csv(data_fn(), name, sidecar_fn())


def looks_like_zip(path: Path) -> bool:
    """A regular file named .zip or starting like one (damaged ones too, so they are reported
    as damaged zips rather than as an unsupported file type)."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return False
        if path.suffix.lower() == ".zip":
            return True
        with open_regular(path) as fh:
            return fh.read(4) in _ZIP_MAGIC or zipfile.is_zipfile(fh)
    except (OSError, ImportFailure):
        return False


def _unreadable_kind(full: Path, root: Path) -> tuple[str, str] | None:
    """(reason, code) when `full` must not be read: not a regular file, or a symbolic link that
    leads out of the imported folder (a link to /etc/passwd is not the user's roast log)."""
    try:
        st = os.lstat(full)
        if stat.S_ISLNK(st.st_mode):
            target = Path(os.path.realpath(full))
            if not target.is_relative_to(root):
                return "symbolic link to a file outside the imported folder: not read", "unsafe_path"
            st = os.stat(full)
    except OSError as exc:
        return f"cannot read file ({exc.strerror or exc})", "unreadable"
    if not stat.S_ISREG(st.st_mode):
        return f"{file_kind(st.st_mode)}, not a regular file: not read", "special_file"
    return None


def _folder_entries(root: Path, report: ImportReport) -> Iterator[tuple[str, Callable[[], Profile]]]:
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root, followlinks=False):  # no symlinked folders: no loops
        dirs[:] = sorted(d for d in dirs if not _is_hidden(d))
        for fname in files:
            if _is_hidden(fname):
                continue
            full = Path(folder) / fname
            found.append((full.relative_to(root).as_posix(), full))
    real_root = Path(os.path.realpath(root))
    for rel, full in sorted(found):
        name = display_name(rel)
        is_zip = rel.lower().endswith(".zip")
        suffix = _classify(rel)
        if suffix is None and not is_zip:
            if not rel.lower().endswith(".csv" + SIDECAR_SUFFIX):
                report.skipped.append(name)
            continue
        refused = _unreadable_kind(full, real_root)
        if refused is not None:
            report.rejected.append(Rejection(name, *refused))
            continue
        if is_zip:
            # A zip beside loose files (e.g. an upload): its members join the same report, so
            # duplicates are found across both. A broken zip is one rejection, not an abort.
            try:
                yield from _zip_entries(full, report, prefix=name + "/")
            except ImportFailure as exc:
                report.rejected.append(Rejection(name, exc.reason, exc.code))
            continue
        side = full.with_name(full.name + SIDECAR_SUFFIX)
        yield name, _parser(suffix, lambda full=full: load_bytes(full), name,
                            lambda side=side: _sidecar_bytes(side, real_root))


def _sidecar_bytes(side: Path, root: Path) -> bytes | None:
    """A CSV's metadata sidecar when it is there and may be read (same rules as roast files)."""
    if not os.path.lexists(side):
        return None
    refused = _unreadable_kind(side, root)
    if refused is not None:
        raise ImportFailure(side, f"metadata sidecar: {refused[0]}", refused[1])
    return load_bytes(side)


def safe_member_name(name: str) -> str | None:
    """The member's relative POSIX path, or None when it could escape (absolute, drive, '..')."""
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        return None
    parts = [p for p in normalised.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        return None
    return "/".join(parts)


def check_zip_directory(fh: BinaryIO, path) -> None:
    """Refuse a zip whose central directory is too big to parse, before `zipfile` parses it.

    The end-of-central-directory record (zip64 too) gives the entry count and the directory's
    size; the directory is then walked header by header, since the count in the end record may
    lie (zipfile itself reads entries until the directory's size is used up).
    """
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    tail_len = min(size, 22 + 0xFFFF)  # the end record plus the longest comment
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        fh.seek(0)
        damaged = fh.read(4) in _ZIP_MAGIC
        raise ImportFailure(path, "truncated or damaged zip archive (its end-of-central-directory record is missing)"
                            if damaged else "not a zip archive", "bad_zip")
    entries, dir_size = struct.unpack("<HI", tail[at + 10:at + 16])
    end_record = size - tail_len + at
    if end_record >= 76:  # zip64: a locator right before the end record, its own record before that
        fh.seek(end_record - 76)
        zip64 = fh.read(76)
        if zip64[56:60] == b"PK\x06\x07" and zip64[:4] == b"PK\x06\x06":
            entries, dir_size = struct.unpack("<QQ", zip64[32:48])
            end_record -= 76
    if entries > MAX_ZIP_MEMBERS:
        raise ImportFailure(path, f"zip holds {entries:,} entries, more than the {MAX_ZIP_MEMBERS:,} limit", "too_large")
    if dir_size > MAX_ZIP_DIRECTORY_BYTES:
        raise ImportFailure(path, f"zip's central directory is {format_size(dir_size)}, more than the "
                                  f"{format_size(MAX_ZIP_DIRECTORY_BYTES)} limit", "too_large")
    start = end_record - dir_size
    if start < 0:
        raise ImportFailure(path, "truncated or damaged zip archive (its central directory lies before the start)",
                            "bad_zip")
    fh.seek(start)
    directory = fh.read(dir_size)
    pos = count = 0
    while pos + 46 <= len(directory) and directory[pos:pos + 4] == b"PK\x01\x02":
        count += 1
        if count > MAX_ZIP_MEMBERS:
            raise ImportFailure(path, f"zip holds more than the {MAX_ZIP_MEMBERS:,} entries allowed", "too_large")
        name_len, extra_len, comment_len = struct.unpack("<HHH", directory[pos + 28:pos + 34])
        pos += 46 + name_len + extra_len + comment_len
    fh.seek(0)


def _zip_entries(path: Path, report: ImportReport,
                 prefix: str = "") -> Iterator[tuple[str, Callable[[], Profile]]]:
    fh = open_regular(path)
    try:
        check_zip_directory(fh, path)
        try:
            archive = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise ImportFailure(path, f"damaged zip archive ({exc})", "bad_zip") from None
        with archive:
            yield from _zip_members(archive, path, report, prefix)
    finally:
        fh.close()


def _zip_members(archive: zipfile.ZipFile, path: Path, report: ImportReport,
                 prefix: str) -> Iterator[tuple[str, Callable[[], Profile]]]:
    infos = archive.infolist()
    if len(infos) > MAX_ZIP_MEMBERS:
        raise ImportFailure(path, f"zip holds {len(infos):,} entries, more than the {MAX_ZIP_MEMBERS:,} limit",
                            "too_large")
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
            raise ImportFailure(name, f"{what} size limit exceeded ({format_size(info.file_size)} uncompressed, "
                                      f"the limit is {format_size(limit)})", "too_large")
        try:
            with archive.open(info) as fh:
                data = fh.read(limit + 1)  # the header's size may lie; the cap may not
        except (RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise ImportFailure(name, f"cannot extract from the zip ({exc})", "bad_zip") from None
        if len(data) > limit:
            raise ImportFailure(name, f"uncompresses past the {format_size(limit)} size limit (zip bomb?)", "too_large")
        budget[0] -= len(data)
        return data

    for member in sorted(members):
        name = display_name(prefix + member)
        suffix = _classify(member)
        if suffix is None:
            if not member.lower().endswith(".csv" + SIDECAR_SUFFIX):
                report.skipped.append(name)
            continue
        info = members[member]
        side = members.get(member + SIDECAR_SUFFIX)
        yield name, _parser(suffix, lambda info=info, name=name: read(info, name), name,
                            lambda side=side, name=name: None if side is None else read(side, name))
