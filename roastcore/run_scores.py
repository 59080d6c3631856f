"""RUN_DIR/scores.json read back without torch: the run lists' summary and a sweep's figures.

`evaluate.score_run` writes the file (its layout: `evaluate.SCORES_VERSION`); `evaluate.stored_report`
turns it back into a report and checks it is current. The readers here are for callers that must
stay light (`checkpoints.list_runs`, `jobs.sweep`, which never imports torch): they read JSON only
and do not check staleness.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SCORES = "scores.json"


def read_scores_doc(run_dir) -> dict | None:
    """The whole of RUN_DIR/scores.json, or None when it is absent or unreadable (logged)."""
    path = Path(run_dir) / SCORES
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s)", path, exc)
        return None
    if not isinstance(doc, dict):
        log.warning("%s: unreadable (not a JSON object)", path)
        return None
    return doc


def read_scores_summary(run_dir) -> dict | None:
    """The "summary" of RUN_DIR/scores.json (evaluate.score_run), or None. Not checked for
    staleness here (evaluate.stored_report does that) to keep listing cheap."""
    summary = (read_scores_doc(run_dir) or {}).get("summary")
    return summary if isinstance(summary, dict) else None


def read_scores(run_dir) -> dict[str, Any] | None:
    """The scores a run wrote when it finished as flat figures (a sweep's table and charts), or
    None when it has none yet (still training, cancelled, or unreadable)."""
    doc = read_scores_doc(run_dir)
    if doc is None:
        return None
    try:
        summary = doc.get("summary") or {}
        report = doc.get("report") or {}
        tf, free = report.get("teacher_forcing") or {}, report.get("free_run") or {}
        aligned = (report.get("baselines") or {}).get("aligned_knn") or {}
        figures = {
            "tf_mae_f": summary.get("tf_mae_f", tf.get("mae_f")),
            "persistence_mae_f": tf.get("persistence_mae_f"),
            "free_mae_f": summary.get("free_mae_f", free.get("mae_f")),
            "aligned_knn_mae_f": aligned.get("mae_f"),
            "finish_mae_f": free.get("finish_mae_f"),
            "physics_valid_pct": free.get("physics_valid_pct"),
        }
        out: dict[str, Any] = {k: _number(v) for k, v in figures.items()}
        out.update(verdict=summary.get("verdict"), split=summary.get("split"),
                   n_profiles=summary.get("n_profiles"), scored_at=doc.get("scored_at"))
        return out
    except (TypeError, AttributeError):
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
