"""The conformal 80% band of a forecast: residual quantiles by cut point and horizon (issue 16).

Split conformal, cross-fitted: `Forecaster.fit` (roastcore/forecast.py) collects signed
residuals (real - forecast) of training roasts forecast by copies of the method fitted without
their product group, at the cuts `forecast.CAL_CUTS_S` with the real DROP time as horizon. For
each cut and horizon bucket (seconds after the cut) the band is the 10th..90th percentile of
the residuals, widened to contain 0 so that lo <= forecast <= hi; `offsets` interpolates it
between cuts and bucket centres. docs/forecasting.md ("The band") states the rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.8  # the band's nominal coverage
# Horizon buckets (seconds after the cut) for the conformal quantiles.
H_EDGES_S = (0, 15, 30, 60, 90, 120, 180, 240, 300, 420, 600, 900, 3600)
MIN_BUCKET_ROASTS = 8  # a horizon bucket needs residuals from this many roasts


def _band_quantiles(r: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """(lo, hi) offsets holding `level` of the signed residuals r and containing 0."""
    tail = (1.0 - level) / 2.0
    below = float(np.mean(r < 0))
    a, b = tail, 1.0 - tail
    if below < a:  # nearly all residuals positive: the band starts at the forecast
        a, b = below, below + level
    elif below > b:
        a, b = below - level, below
    lo, hi = np.quantile(r, [a, b])
    return min(float(lo), 0.0), max(float(hi), 0.0)


@dataclass
class ConformalBands:
    """Residual quantiles by cut (rows, `cuts_s`) and horizon bucket (columns, centres `h_s`)."""

    cuts_s: list[float]
    h_s: list[float]
    lo: list[list[float]]
    hi: list[list[float]]
    n_roasts: list[int]
    level: float = LEVEL

    @classmethod
    def from_residuals(cls, residuals: Sequence[tuple[int, np.ndarray, np.ndarray]],
                       level: float = LEVEL) -> ConformalBands:
        """`residuals`: (cut_s, horizons_s, real - forecast) per roast and cut."""
        if not residuals:
            raise ValueError("conformal bands: no calibration residuals")
        edges = np.asarray(H_EDGES_S, dtype=float)
        centres = (edges[:-1] + edges[1:]) / 2.0
        cuts = sorted({int(c) for c, _, _ in residuals})
        lo_rows, hi_rows, counts = [], [], []
        for c in cuts:
            rows = [(h, r) for cc, h, r in residuals if cc == c]
            r_all = np.concatenate([r for _, r in rows])
            buckets = [np.clip(np.searchsorted(edges, h, side="left") - 1, 0, len(centres) - 1)
                       for h, _ in rows]
            lo_row, hi_row = [], []
            for b in range(len(centres)):
                parts = [r[k == b] for (_, r), k in zip(rows, buckets, strict=True) if np.any(k == b)]
                if len(parts) >= MIN_BUCKET_ROASTS:
                    lo_b, hi_b = _band_quantiles(np.concatenate(parts), level)
                elif lo_row:  # too few roasts last this long: keep the previous bucket's band
                    lo_b, hi_b = lo_row[-1], hi_row[-1]
                else:
                    lo_b, hi_b = _band_quantiles(r_all, level)
                lo_row.append(lo_b)
                hi_row.append(hi_b)
            # Errors of a forecast grow with the horizon; a thin far bucket must not narrow the band.
            lo_rows.append(np.minimum.accumulate(lo_row).tolist())
            hi_rows.append(np.maximum.accumulate(hi_row).tolist())
            counts.append(len(rows))
        return cls(cuts_s=[float(c) for c in cuts], h_s=[float(x) for x in centres], lo=lo_rows,
                   hi=hi_rows, n_roasts=counts, level=level)

    def offsets(self, at_s: float, h_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper offsets (°F) for points `h_s` seconds after a cut at `at_s`."""
        cuts = np.asarray(self.cuts_s)
        lo_tab, hi_tab = np.asarray(self.lo), np.asarray(self.hi)
        h = np.asarray(h_s, dtype=float)

        def row(table, i):
            return np.interp(h, self.h_s, table[i])

        if at_s <= cuts[0] or cuts.size == 1:
            return row(lo_tab, 0), row(hi_tab, 0)
        if at_s >= cuts[-1]:
            return row(lo_tab, -1), row(hi_tab, -1)
        j = int(np.searchsorted(cuts, at_s))
        w = (at_s - cuts[j - 1]) / (cuts[j] - cuts[j - 1])
        return ((1 - w) * row(lo_tab, j - 1) + w * row(lo_tab, j),
                (1 - w) * row(hi_tab, j - 1) + w * row(hi_tab, j))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
