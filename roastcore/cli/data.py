"""`python -m roastcore data ...`: look at a data source before training on it."""

from __future__ import annotations

import argparse
import json

from roastcore.io import dataset_fingerprint, dataset_stats, load_source
from roastcore.io.sources import STAT_FIELDS


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="inspect roast data sources")
    sub = data.add_subparsers(dest="data_command", required=True)
    summary = sub.add_parser(
        "summary",
        help="profile count, rejected files with reasons, curve statistics",
        description="Import SOURCE ('synthetic[:N]', a .alog/.json/.csv file, a folder or a .zip) and "
                    "summarise it: how many profiles, which files were rejected and why, and "
                    "min/median/max of charge, turning point, first crack, drop and duration.",
    )
    summary.add_argument("source", help="'synthetic', 'synthetic:N', a file, a folder or a .zip")
    summary.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    summary.set_defaults(handler=cmd_summary)


def cmd_summary(args: argparse.Namespace) -> int:
    report = load_source(args.source)
    stats = dataset_stats(report.profiles)
    if args.json:
        out = report.to_dict()
        out["fingerprint"] = dataset_fingerprint(report.profiles)
        out["stats"] = stats
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    print(format_summary(report, stats))
    return 0


def format_summary(report, stats: dict) -> str:
    lines = [
        f"source:      {report.source}",
        f"profiles:    {len(report.profiles)}",
        f"rejected:    {len(report.rejected)}"
        + (f"  ({', '.join(f'{code} {n}' for code, n in report.rejected_by_code().items())})" if report.rejected else ""),
        f"duplicates:  {len(report.duplicates)} (kept once)",
        *([f"package:     RoastFormer research package in {report.package_root or './'}: "
           f"{len(report.split_ids('train'))} train, {len(report.split_ids('val'))} val (its own split)"]
          if getattr(report, "membership", None) else []),
        f"skipped:     {len(report.skipped)} (not .alog/.json/.csv)",
        f"fingerprint: {dataset_fingerprint(report.profiles)}",
    ]
    if report.rejected:
        lines += ["", "rejected files:"]
        width = min(70, max(len(r.file) for r in report.rejected))
        lines += [f"  {r.file:<{width}}  {r.reason}" for r in report.rejected]
    if report.duplicates:
        lines += ["", "duplicates:"]
        lines += [f"  {f}  = {d}" for f, d in report.duplicates]
    lines += ["", f"{'':<16}{'n':>6}{'min':>10}{'median':>10}{'max':>10}"]
    for key, label, unit in STAT_FIELDS:
        s = stats[key]
        name = f"{label} ({unit})" if unit else label
        cells = ["-" if s[k] is None else (f"{s[k]:.2f}" if key == "dtr" else f"{s[k]:.1f}") for k in ("min", "median", "max")]
        lines.append(f"{name:<16}{s['n']:>6}{cells[0]:>10}{cells[1]:>10}{cells[2]:>10}")
    return "\n".join(lines)
