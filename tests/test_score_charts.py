"""roastcore.score_charts: the loss, teacher-forcing and health-band chart specs (no browser)."""

from __future__ import annotations

import numpy as np
import pytest

from roastcore import score_charts


def _layer(spec: dict, data: str, mark: str | None = None) -> dict:
    return next(la for la in spec["layer"] if la.get("data", {}).get("name") == data
                and (mark is None or la["mark"]["type"] == mark))


def test_tf_bands_follow_evaluate_bands():
    from roastcore.metrics import MAE_BANDS

    assert [(limit, label) for limit, label, _ in score_charts.TF_BANDS[:-1]] == list(MAE_BANDS)
    assert score_charts.TF_BANDS[-1][:2] == (float("inf"), "poor")


def test_health_band_figure_marks_the_value_on_a_log_axis():
    from roastcore.experiments import HEALTH_BANDS

    spec = score_charts.health_band_figure(53_000.0, HEALTH_BANDS)
    marker = _layer(spec, "value", "point")
    assert marker["encoding"]["x"]["scale"]["type"] == "log"
    assert spec["datasets"]["value"]["x"].tolist() == [53_000.0] and spec["datasets"]["value"]["text"][0] == "53,000"
    assert list(spec["datasets"]["bands"]["label"]) == [label for _, label in HEALTH_BANDS]


def _tf_table(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=["run", "tf_mae_f", "persistence_mae_f", "step_s", "best"])


def test_tf_figure_draws_persistence_per_step_size_on_a_log_axis():
    # A 1 s model and a 5 s model: each bar gets the persistence of its own step, in the legend by step.
    table = _tf_table([("fine", 0.5, 0.83, 1.0, "★"), ("coarse", 2.0, 4.1, 5.0, ""),
                       ("broken", 300.0, 0.83, 1.0, "")])
    spec = score_charts.tf_comparison_figure(table)
    marks = spec["datasets"]["persistence"]
    persistence = {label: dict(zip(part["run"], part["persistence_mae_f"], strict=True))
                   for label, part in marks.groupby("persistence")}
    assert persistence == {"persistence at 1 s steps": {"fine": 0.83, "broken": 0.83},
                           "persistence at 5 s steps": {"coarse": 4.1}}
    assert _layer(spec, "persistence")["encoding"]["color"]["legend"] is not None
    # One run at 300 °F does not squash the others: on the log axis the 0.5 °F bar still spans a
    # fair share of the width.
    bar = _layer(spec, "bars", "bar")
    scale = bar["encoding"]["x"]["scale"]
    assert scale["type"] == "log" and bar["encoding"]["x"]["axis"]["format"]
    lo, hi = np.log10(scale["domain"])
    assert (np.log10(0.5) - lo) / (hi - lo) > 0.1 and np.log10(300.0) < hi
    bars = spec["datasets"]["bars"]
    assert [t.endswith("★ best") for t in bars["text"]] == [r == "fine" for r in bars["run"]]
    assert bars.set_index("run")["best"].to_dict() == {"fine": True, "coarse": False, "broken": False}
    assert bar["encoding"]["y"]["sort"][0] == "fine"  # best on top
    # The figures on the right axis, by run.
    right = _layer(spec, "bars", "point")["encoding"]["y"]["axis"]
    assert right["orient"] == "right" and "0.6× persistence  ★ best" in right["labelExpr"]


def test_tf_figure_marks_no_best_when_no_run_beats_its_persistence():
    table = _tf_table([("lone", 298.7, 0.83, 1.0, "")])
    spec = score_charts.tf_comparison_figure(table)
    bars = spec["datasets"]["bars"]
    assert "★" not in bars["text"][0] and not bars["best"].any()  # no star, no outline
    # Without a 'best' column the chart decides the same way.
    bars = score_charts.tf_comparison_figure(table.drop(columns="best"))["datasets"]["bars"]
    assert "★" not in bars["text"][0] and not bars["best"].any()
    table = _tf_table([("good", 0.5, 0.83, 1.0, "")]).drop(columns="best")
    assert score_charts.tf_comparison_figure(table)["datasets"]["bars"]["best"].tolist() == [True]


@pytest.mark.parametrize("maes", [(0.5, 300.0), (0.5, 11.0), (8.0, 12.0), (40.0, 60.0, 160.0), (0.2, 0.3)])
def test_tf_band_labels_do_not_overlap(maes):
    table = _tf_table([(f"r{i}", m, 1.0, 1.0, "") for i, m in enumerate(maes)])
    spec = score_charts.tf_comparison_figure(table)
    lo, hi = np.log10(_layer(spec, "bars", "bar")["encoding"]["x"]["scale"]["domain"])
    bands = spec["datasets"]["bands"]
    xs = sorted(np.log10(bands.loc[bands["labelled"], "mid"]))
    assert xs, "no band is labelled"
    # Labels are centred in their bands and each band spans >= BAND_LABEL_MIN_SHARE of the axis,
    # so neighbouring labels are at least that far apart (about 100 px on a 900 px chart).
    gaps = np.diff([(x - lo) / (hi - lo) for x in xs])
    assert (gaps >= score_charts.BAND_LABEL_MIN_SHARE - 1e-9).all()
    assert all(lo <= x <= hi for x in xs)
    assert _layer(spec, "bands", "text")["transform"] == [{"filter": "datum.labelled"}]


def test_loss_figure_ticks_read_as_numbers_and_epochs_are_whole():
    import pandas as pd

    hist = pd.DataFrame({"run": "r", "epoch": [1, 2, 3], "train_loss": [7.0, 5.0, 4.0],
                         "val_loss": [0.9, 0.5, 0.3], "tf_ratio": [1.0, 0.8, 0.6]})
    spec = score_charts.loss_figure(hist)
    enc = _layer(spec, "losses")["encoding"]
    assert enc["y"]["scale"]["type"] == "log" and enc["y"]["axis"]["format"] == "~g"
    assert enc["x"]["axis"] == {"values": [0, 1, 2, 3], "format": "d"}
    assert set(spec["datasets"]["losses"]["series"]) == {"r train objective", "r val loss"}
    assert _layer(spec, "tf_ratio")["encoding"]["y"]["axis"]["orient"] == "right"
    assert spec["resolve"] == {"scale": {"y": "independent"}}
    assert score_charts.epoch_dtick(200) == 20 and score_charts.epoch_dtick(7) == 1
    assert float(score_charts.epoch_dtick(10_000)).is_integer()


def test_health_band_labels_sit_inside_the_log_axis():
    from roastcore.experiments import HEALTH_BANDS

    spec = score_charts.health_band_figure(800.0, HEALTH_BANDS)
    lo, hi = _layer(spec, "value", "point")["encoding"]["x"]["scale"]["domain"]
    bands = spec["datasets"]["bands"]
    assert bands["labelled"].any()
    assert all(lo <= m <= hi for m in bands.loc[bands["labelled"], "mid"])
