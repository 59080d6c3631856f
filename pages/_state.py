"""The sidebar's selection: defaults from the environment, and the round trip through the URL.

No streamlit import: unit-tested in tests/test_dashboard_helpers.py. A URL can only select runs
and datasets that the pickers list; anything else is dropped, never trusted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from roastcore.io.registry import is_dataset_name

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUNS_DIR = REPO_ROOT / "checkpoints"
DEFAULT_DATA_SPEC = "synthetic"

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SYNTH_SPEC = re.compile(r"^synthetic(?::(\d{1,5}))?$")


# ---------------------------------------------------------------------------- environment
def runs_dir_from_env(environ: Mapping[str, str] | None = None) -> Path:
    """The runs directory: $ROASTCORE_RUNS, else the repository's checkpoints/."""
    environ = os.environ if environ is None else environ
    value = environ.get("ROASTCORE_RUNS", "").strip()
    return Path(value).expanduser() if value else DEFAULT_RUNS_DIR


def default_data_spec(environ: Mapping[str, str] | None = None) -> str:
    """The built-in dataset spec: $ROASTCORE_DEFAULT_DATA (e.g. 'synthetic:30'), else 'synthetic'."""
    environ = os.environ if environ is None else environ
    value = environ.get("ROASTCORE_DEFAULT_DATA", "").strip()
    return value if value and _SYNTH_SPEC.match(value) else DEFAULT_DATA_SPEC


def builtin_data_label(spec: str) -> str:
    m = _SYNTH_SPEC.match(spec or "")
    if m and m.group(1):
        return f"Built-in synthetic ({int(m.group(1))} roasts)"
    return "Built-in synthetic (simulator)"


def path_mtime(path) -> float:
    """Newest mtime of a run directory's files (cache key: changes when a run is rewritten)."""
    p = Path(path)
    try:
        if p.is_dir():  # the files, not the folder: an eval_cache/ appearing is not a new run
            files = [c.stat().st_mtime for c in p.iterdir() if c.is_file()]
            return max(files) if files else p.stat().st_mtime
        return p.stat().st_mtime
    except OSError:
        return 0.0


# ---------------------------------------------------------------------------- selection
@dataclass
class Selection:
    """What the sidebar selected; round-trips through URL query parameters."""

    data: str = ""  # dataset key: 'synthetic[:N]' or 'ds:<imported name>'
    run: str = ""  # primary checkpoint (run name)
    compare: tuple[str, ...] = ()  # comparison checkpoints (run names)

    def runs(self) -> list[str]:
        """Primary first, then the comparisons, without duplicates."""
        out = [self.run] if self.run else []
        out += [r for r in self.compare if r and r not in out]
        return out


def _first(value) -> str:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else ""
    return str(value or "")


def valid_data_key(key: str) -> bool:
    if _SYNTH_SPEC.match(key or ""):
        return True
    return bool(key) and key.startswith("ds:") and is_dataset_name(key[3:])


def encode_selection(sel: Selection) -> dict[str, str]:
    """Selection -> query parameters (empty fields left out)."""
    out = {}
    if sel.data:
        out["data"] = sel.data
    if sel.run:
        out["run"] = sel.run
    compare = [c for c in sel.compare if c and c != sel.run]
    if compare:
        out["cmp"] = ",".join(compare)
    return out


def decode_selection(params: Mapping, known_runs: Iterable[str] | None = None,
                     known_data: Iterable[str] | None = None) -> Selection:
    """Query parameters -> Selection. Unknown or malformed values are dropped, never trusted:
    a URL can only select runs and datasets that the picker lists."""
    runs = None if known_runs is None else set(known_runs)
    datas = None if known_data is None else set(known_data)
    data = _first(params.get("data"))
    if not valid_data_key(data) or (datas is not None and data not in datas):
        data = ""
    run = _first(params.get("run"))
    if not _RUN_NAME.match(run) or (runs is not None and run not in runs):
        run = ""
    raw = params.get("cmp", "")
    if isinstance(raw, (list, tuple)):
        raw = ",".join(str(r) for r in raw)
    compare = []
    for name in str(raw or "").split(","):
        name = name.strip()
        if name and _RUN_NAME.match(name) and name != run and name not in compare:
            if runs is None or name in runs:
                compare.append(name)
    return Selection(data=data, run=run, compare=tuple(compare[:8]))


def _shown(value: str, limit: int = 60) -> str:
    """A URL value quoted for a message: no markdown or backticks, cut to `limit` characters."""
    text = "".join(ch for ch in str(value) if ch.isprintable() and ch != "`")
    return "`" + (text[:limit] + "…" if len(text) > limit else text) + "`"


def ignored_link_values(params: Mapping, sel: Selection) -> list[str]:
    """What decode_selection dropped from a link, in words (one item per dropped value)."""
    out = []
    data = _first(params.get("data"))
    if data and data != sel.data:
        out.append(f"dataset {_shown(data)} (not a dataset listed here)")
    run = _first(params.get("run"))
    if run and run != sel.run:
        out.append(f"checkpoint {_shown(run)} (no such checkpoint)")
    raw = params.get("cmp", "")
    if isinstance(raw, (list, tuple)):
        raw = ",".join(str(r) for r in raw)
    for name in str(raw or "").split(","):
        name = name.strip()
        if name and name not in sel.compare and name != sel.run:
            out.append(f"comparison checkpoint {_shown(name)} (no such checkpoint)")
    return out[:6]


def link_notice(params: Mapping, sel: Selection) -> str | None:
    """The sentence telling the user which parts of a link were ignored, or None."""
    dropped = ignored_link_values(params, sel)
    if not dropped:
        return None
    return "Ignored from the link: " + "; ".join(dropped) + ". Showing the defaults instead."
