"""Peak memory and time of every importer on its worst inputs (issue 13's bounds).

    python benchmarks/bench_import.py [--sizes 1 19.5] [--cases alog_numbers,zip_entries] [--json out.json]

Each case writes one hostile (or merely huge) file of about the given size in MiB, then imports
it with `roastcore.io.load_source` in a fresh Python process. That process imports numpy and
roastcore.io first, then resets the kernel's peak-RSS mark (/proc/self/clear_refs) and takes its
RSS as the baseline; the figure reported is the growth of the peak RSS (VmHWM) over that
baseline while the file is read and parsed, so the ~35 MiB of the interpreter, numpy and
roastcore are not counted. A zip bomb's size is taken as what it unpacks to (20 MiB).
Targets: growth <= 10x the file size and <= 2 s per MiB, judged on the process's CPU time
(wall time is printed too) so that other load on a shared machine does not decide the verdict.
Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

MIB = 1024 * 1024
# Cases whose file does not depend on --sizes (fixed shapes; json *_at_limit: the largest file
# the JSON count limits let json.loads parse), run once.
SINGLE = {"alog_equal_times", "zip_entries", "zip_bomb_member", "json_floats_at_limit", "json_strings_at_limit"}
MAX_GROWTH_X = 10.0
MAX_S_PER_MIB = 2.0


def _repeat(head: bytes, unit: bytes, tail: bytes, size: float) -> bytes:
    n = max(1, int((size * MIB - len(head) - len(tail)) // len(unit)))
    return head + unit * n + tail


def _numbers(values, fmt: str) -> bytes:
    return ", ".join(fmt % v for v in values).encode()


def alog_valid(size: float) -> bytes:
    """A real-shaped log at 10 samples/s with 15-digit numbers, CHARGE..DROP marked: imports."""
    n = min(int(size * MIB / 52), 199_000)
    t = [i * 0.1 for i in range(n)]
    bt = [300.0 + 100.0 * (i / n) + 0.123456789 for i in range(n)]
    return (b"{'mode': 'F', 'timex': [" + _numbers(t, "%.12f") + b"], 'temp2': [" + _numbers(bt, "%.12f")
            + b"], 'temp1': [" + _numbers([v + 80 for v in bt], "%.12f") + b"], 'timeindex': [0, 0, 0, 0, 0, 0, "
            + str(min(n - 1, 6000)).encode() + b", 0]}")


CASES: dict[str, tuple[str, str, Callable[[float], bytes]]] = {
    # name: (importer, file name, generator)
    "alog_numbers": (".alog", "z.alog", lambda s: _repeat(b"{'timex': [", b"0, ", b"]}", s)),  # issue case 1
    "alog_tuples": (".alog", "t.alog", lambda s: _repeat(b"{'timex': (", b"1.5, ", b"), 'temp2': (1,)}", s)),
    "alog_valid": (".alog", "v.alog", alog_valid),
    "alog_equal_times": (".alog", "q.alog", lambda s: (  # issue case 3, below the sample limit
        b"{'timex': [" + b"0, " * 190_000 + b"], 'temp2': [" + b"300, " * 190_000
        + b"], 'timeindex': [-1, 0, 0, 0, 0, 0, 0, 0]}")),
    "alog_strings": (".alog", "s.alog", lambda s: _repeat(b"{'x': [", b"'ab', ", b"]}", s)),
    "alog_lists": (".alog", "l.alog", lambda s: _repeat(b"{'x': [", b"[], ", b"]}", s)),
    "alog_dicts": (".alog", "d.alog", lambda s: _repeat(b"{'x': [", b"{1: 2}, ", b"]}", s)),
    "alog_mixed": (".alog", "m.alog", lambda s: _repeat(b"{'x': [", b"7, ", b"'x']}", s)),
    "alog_deep": (".alog", "n.alog", lambda s: _repeat(b"{'x': ", b"[", b"}", s)),
    "csv_rows": (".csv", "r.csv", lambda s: _repeat(b"time_s,bt_f\n", b"1,1\n", b"", s)),
    "csv_valid": (".csv", "v.csv", lambda s: b"time_s,bt_f,et_f\n" + "".join(
        f"{i * 0.015 + (i % 3) * 0.001:.4f},{300 + i * 0.0005:.4f},{380 + i * 0.0005:.4f}\n"
        for i in range(min(int(size_rows(s, 26)), 199_000))).encode()),
    "csv_blank_lines": (".csv", "b.csv", lambda s: _repeat(b"", b"\n", b"time_s,bt_f\n0,1\n", s)),
    "csv_header_keys": (".csv", "k.csv", lambda s: b"".join(f"#k{i}:{i}\n".encode()
                                                          for i in range(int(size_rows(s, 16))))),
    "csv_flavor_spaces": (".csv", "f.csv", lambda s: _repeat(b"# flavors: a", b" ", b"b\ntime_s,bt_f\n" + "".join(
        f"{i},{300 + i * 0.2:.1f}\n" for i in range(601)).encode(), s)),  # issue case 2
    "json_points": (".json", "p.json", lambda s: (b'{"roast_profile": {"bean_temp": [' + b",".join(
        b'{"time":%.3f,"value":%.1f}' % (i * 0.03 + (i % 2) * 0.001, 300 + i * 0.002)
        for i in range(min(int(size_rows(s, 28)), 99_990))) + b"]}}")),
    "json_lists": (".json", "l.json", lambda s: _repeat(b"[", b"[],", b"[]]", s)),
    "json_floats": (".json", "f.json", lambda s: _repeat(b'{"x": [', b"1.5,", b"1]}", s)),
    "json_floats_at_limit": (".json", "g.json", lambda s: _repeat(b'{"x": [', b"1.5,", b"1]}", 3.8)),
    "json_strings": (".json", "s.json", lambda s: _repeat(b'{"x": [', b'"abc",', b'"x"]}', s)),
    "json_strings_at_limit": (".json", "t.json", lambda s: _repeat(b'{"x": [', b'"abc",', b'"x"]}', 1.1)),
    "zip_entries": (".zip", "e.zip", lambda s: zip_directory(1_000_000)),  # issue case 7
    "zip_lying_count": (".zip", "y.zip", lambda s: zip_directory(min(int(s * MIB / 58), 300_000), claimed=3)),
    "zip_bomb_member": (".zip", "b.zip", lambda s: zip_bytes({"big.alog": b"{" + b" " * (20 * MIB - 2) + b"}"})),
    "zip_many_members": (".zip", "m.zip", lambda s: zip_bytes({f"r{i}.alog": b"{'timex': [1, 2]}"
                                                                for i in range(min(int(size_rows(s, 130)), 49_999))})),
}


def size_rows(size: float, bytes_per_row: int) -> float:
    return size * MIB / bytes_per_row


def zip_directory(entries: int, claimed: int | None = None) -> bytes:
    """A zip of only a central directory (zip64 end records): what the entry check reads."""
    claimed = entries if claimed is None else claimed
    directory = b"".join(
        struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0, 0)
        + name for name in (b"r%07d.alog" % i for i in range(entries)))
    return (directory
            + struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, claimed, claimed, len(directory), 0)
            + struct.pack("<4sIQI", b"PK\x06\x07", 0, len(directory), 1)
            + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))


def zip_bytes(members: dict[str, bytes]) -> bytes:
    with tempfile.TemporaryFile() as fh:
        with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        fh.seek(0)
        return fh.read()


CHILD = r"""
import gc, json, resource, sys, time
import numpy  # noqa: F401  (part of the baseline)
from roastcore.io import load_source
from roastcore.io.base import ImportFailure


def status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])


gc.collect()
try:  # reset the kernel's peak-RSS mark to the current RSS, so the peak of the import is measured
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    base, peak_of = status_kib("VmRSS"), lambda: status_kib("VmHWM")
except OSError:  # not Linux: ru_maxrss, which may hide a peak below the import's own
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_of = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start, cpu = time.perf_counter(), time.process_time()
try:
    report = load_source(sys.argv[1])
    outcome = (f"{len(report.profiles)} imported" if report.profiles else
               f"rejected: {report.rejected[0].reason}" if report.rejected else "nothing")
except ImportFailure as exc:
    outcome = f"refused: {exc.reason}"
seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "growth_kib": peak_of() - base, "base_kib": base,
                  "outcome": outcome}))
"""


def run_case(name: str, size: float, tmp: Path) -> dict:
    importer, fname, make = CASES[name]
    path = tmp / fname
    path.write_bytes(make(size))
    # a zip bomb is measured against what it unpacks to, other files against their own size
    file_bytes = 20 * MIB if name == "zip_bomb_member" else path.stat().st_size
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, env=env,
                          timeout=600, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    path.unlink()
    mib = file_bytes / MIB
    growth_mib = result["growth_kib"] / 1024
    return {"case": name, "importer": importer, "file_mib": mib, "seconds": result["seconds"],
            "cpu_seconds": result["cpu_seconds"], "s_per_mib": result["cpu_seconds"] / mib, "growth_mib": growth_mib, "growth_x": growth_mib / mib,
            "base_mib": result["base_kib"] / 1024, "outcome": result["outcome"]}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1.0, 19.5], help="file sizes in MiB")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases.split(","):
            sizes = [args.sizes[-1]] if name in SINGLE else args.sizes
            for size in sizes:
                row = run_case(name, size, Path(tmp))
                rows.append(row)
                print(f"{name} {row['file_mib']:.2f} MiB: {row['seconds']:.2f} s, +{row['growth_mib']:.1f} MiB "
                      f"({row['growth_x']:.1f}x) {row['outcome'][:70]}", file=sys.stderr, flush=True)
    print(f"\n{os.cpu_count()} CPUs, {cpu_model()}, Python {platform.python_version()}; "
          f"baseline RSS of the measuring process {rows[0]['base_mib']:.0f} MiB (not counted)\n")
    print("| case | file | wall | CPU | CPU s/MiB | peak RSS growth | x file | within bounds | outcome |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ok = r["growth_x"] <= MAX_GROWTH_X and r["s_per_mib"] <= MAX_S_PER_MIB
        outcome = r["outcome"].replace("|", "/")
        outcome = outcome if len(outcome) <= 60 else outcome[:57] + "..."
        print(f"| {r['case']} | {r['file_mib']:.2f} MiB | {r['seconds']:.2f} s | {r['cpu_seconds']:.2f} s | "
              f"{r['s_per_mib']:.2f} | "
              f"{r['growth_mib']:.1f} MiB | {r['growth_x']:.1f} | {'yes' if ok else 'NO'} | {outcome} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
