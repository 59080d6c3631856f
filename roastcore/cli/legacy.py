"""`python -m roastcore import-checkpoint`: the original RoastFormer research code's checkpoints.

    import-checkpoint FILE.pt|FOLDER [...] --data PACKAGE --out RUN_OR_DIR [--units auto|normalized|raw] [--json]

Each `.pt` (a folder means every .pt under it) becomes a normal run directory: the original
architecture (`model_type roastformer_v1`) with its weights, the inputs rebuilt from the dataset
package it was trained on, and its loss history. See roastcore.roastformer_import.
"""

from __future__ import annotations

import json
from pathlib import Path

from roastcore.cli import CliError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "import-checkpoint", help="import the original RoastFormer's .pt checkpoints as runs",
        description="Import checkpoints written by the RoastFormer research code's train_transformer.py "
                    "(best_transformer_model.pt) together with the dataset package they were trained on "
                    "(preprocessed_data/ as a folder or zip). Only tensors are loaded; a file that needs "
                    "pickle code execution is refused. With one file --out is the run directory; with "
                    "several (or when it is a folder of other runs) it is a folder that receives one run per file, "
                    "named after the experiment.")
    p.add_argument("files", nargs="+", metavar="FILE.pt", help="checkpoint files, or folders holding them")
    p.add_argument("--data", required=True, metavar="PACKAGE", help="the preprocessed_data/ folder or zip")
    p.add_argument("--out", required=True, metavar="RUN_OR_DIR")
    p.add_argument("--units", choices=("auto", "normalized", "raw"), default="auto",
                   help="temperature convention: raw °F (the research code's first loader) or (T-100)/400 "
                        "(its NORMALIZED loader); auto picks the one with the lower teacher-forcing error "
                        "on the package's validation roasts (default)")
    p.add_argument("--json", action="store_true", help="print one JSON list of the imported runs")
    p.set_defaults(handler=_import)


def checkpoint_files(args: list[str]) -> list[Path]:
    """The .pt files named, folders expanded to every .pt under them (sorted)."""
    files: list[Path] = []
    for arg in args:
        path = Path(arg).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.pt") if p.is_file())
            if not found:
                raise CliError(f"{path}: no .pt files in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise CliError(f"{arg}: no such file or folder")
    return files


def _import(args) -> int:
    # deferred: torch-heavy, and `roastcore --help` stays fast
    from roastcore.roastformer_import import import_checkpoints

    results = import_checkpoints(checkpoint_files(args.files), args.data, args.out, units=args.units)
    if args.json:
        print(json.dumps([r.to_dict() for r in results]))
        return 0
    for r in results:
        figures = ", ".join(f"{c} {'n/a' if v is None else f'{v:.2f} °F'}" for c, v in r.tf_mae_f.items())
        loss = "n/a" if r.best_val_loss is None else f"{r.best_val_loss:.4g}"
        print(f"{r.source} -> {r.run_dir}")
        print(f"  units {r.units} ({'picked: lower' if r.units_choice == 'auto' else 'given;'} teacher-forcing "
              f"MAE on the package's validation roasts: {figures})")
        print(f"  epoch {r.epoch}, best val loss {loss} (original units)")
        for note in r.notes:
            print(f"  note: {note}")
    first = results[0].run_dir
    print(f"\nnext: python -m roastcore evaluate --checkpoint {first} --data {args.data}")
    return 0
