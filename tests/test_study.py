"""The grouped k-fold study: shared folds, baselines and presets, budget, output files, CLI."""

from __future__ import annotations

import json

import pytest

from roastcore.cli import main as cli_main
from roastcore.forecast_eval import forecast_eval
from roastcore.splits import group_kfold
from roastcore.study import (
    StudyConfig,
    extrapolation_split,
    format_markdown,
    list_studies,
    load_study,
    run_study,
    study_rows,
)

TINY = {"epochs": 1, "max_len": 200, "batch_size": 16, "patience": 0, "device": "cpu"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def study(synthetic_profiles, tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    cfg = StudyConfig(presets=("recommended", "residual_tiny"), folds=2, overrides={**TINY, "step_s": 5})
    return out, run_study(synthetic_profiles, cfg, out_dir=out, data_source="synthetic:40")


@pytest.mark.slow
def test_every_baseline_and_preset_on_every_fold(study, synthetic_profiles):
    _, res = study
    assert res["fold_sizes"] == [[len(tr), len(va)] for tr, va in group_kfold(synthetic_profiles, 2, seed=0)]
    for name in ("mean_curve", "knn", "aligned_knn"):
        assert len(res["baselines"][name]["per_fold"]) == 2
        assert res["baselines"][name]["mae_f"] > 0
    assert res["baselines"]["persistence"]["tf_mae_f"] > 0
    for name in ("recommended", "residual_tiny"):
        m = res["models"][name]
        assert m["folds_done"] == 2 and m["mae_f"] > 0 and m["tf_mae_f"] > 0
        assert m["persistence_mae_f"] == pytest.approx(res["baselines"]["persistence"]["tf_mae_f"], rel=1e-6)
        assert m["mae_f_std"] is not None
    assert res["skipped"] == []
    from roastcore.io import dataset_fingerprint  # the study records where its data came from

    assert res["data_source"] == "synthetic:40" and res["dataset_fingerprint"] == dataset_fingerprint(synthetic_profiles)


@pytest.mark.slow
def test_recommended_starts_from_the_aligned_knn(study):
    # A prior model whose best epoch may be "before training" reproduces the kNN prior, so after
    # one epoch it cannot be far from the aligned kNN; a plain tiny transformer can.
    _, res = study
    assert res["models"]["recommended"]["mae_f"] < 2.0 * res["baselines"]["aligned_knn"]["mae_f"]


@pytest.mark.slow
def test_extrapolation_holds_out_the_hottest(study, synthetic_profiles):
    _, res = study
    ex = res["extrapolation"]
    train, test, threshold = extrapolation_split(synthetic_profiles, 0.1)
    assert ex["n_test"] == len(test) == 4 and min(p.charge_f for p in test) >= max(p.charge_f for p in train) - 1e-6
    assert set(ex["rows"]) == {"aligned_knn", "recommended", "residual_tiny"}
    assert ex["rows"]["recommended"]["mae_f"] > 0


@pytest.mark.slow
def test_files_and_table(study):
    out, res = study
    assert load_study(out)["models"].keys() == res["models"].keys()
    md = (out / "results.md").read_text()
    for name in ("persistence", "mean_curve", "knn", "aligned_knn", "recommended", "residual_tiny", "Extrapolation"):
        assert name in md
    assert [r["model"] for r in study_rows(res)][:4] == ["persistence", "mean_curve", "knn", "aligned_knn"]
    assert out in list_studies(out.parent)


@pytest.mark.slow
def test_budget_skips_and_says_so(synthetic_profiles, tmp_path):
    cfg = StudyConfig(presets=("recommended",), folds=2, budget_min=1e-6, overrides=TINY)
    res = run_study(synthetic_profiles, cfg, out_dir=tmp_path)
    assert "recommended fold 0" in res["skipped"] and "recommended fold 1" in res["skipped"]
    assert "skipped" in format_markdown(res)
    assert res["models"]["recommended"]["folds_done"] == 0


def test_config_validates():
    with pytest.raises(ValueError, match="unknown preset"):
        StudyConfig(presets=("nope",))
    with pytest.raises(ValueError, match="folds"):
        StudyConfig(folds=1)
    with pytest.raises(ValueError, match="budget"):
        StudyConfig(budget_min=0)
    with pytest.raises(ValueError, match="forecast_methods"):
        StudyConfig(forecast_methods=("model",))  # needs a checkpoint: not a study's
    with pytest.raises(ValueError, match="forecast_cuts_s"):
        StudyConfig(forecast_methods=("prefix_knn",), forecast_cuts_s=(10,))


def test_the_forecast_table_uses_the_studys_folds(tmp_path):
    from roastcore.simulate import generate_dataset

    profiles = generate_dataset(n=8, seed=4)
    cfg = StudyConfig(presets=(), folds=2, extrapolation=False, forecast_methods=("linear_projection",),
                      forecast_cuts_s=(240,))
    res = run_study(profiles, cfg, out_dir=tmp_path)
    rows = res["forecast"]["results"]
    assert [(r["method"], r["cut_s"]) for r in rows] == [("linear_projection", 240)]
    assert rows[0]["n_profiles"] == len(profiles) and len(rows[0]["fold_mae_f"]) == 2
    assert "| linear_projection | 240 |" in format_markdown(res)
    assert load_study(tmp_path)["forecast"]["cuts_s"] == [240]
    # Scored on the study's own folds (those of the baselines table), passed as forecast_eval's plan.
    plan = group_kfold(profiles, 2, seed=cfg.seed)
    assert res["fold_sizes"] == [[len(tr), len(va)] for tr, va in plan]
    alone = forecast_eval(["linear_projection"], profiles, cuts=(240,), seed=cfg.seed, plan=plan)
    assert res["forecast"]["results"] == alone["results"] and res["forecast"]["folds"] == alone["folds"]


def test_load_study_names_missing_file(tmp_path):
    with pytest.raises(ValueError, match="results.json"):
        load_study(tmp_path)


@pytest.mark.slow
def test_cli(tmp_path, capsys):
    out = tmp_path / "s"
    rc = cli_main(["study", "--data", "synthetic:24", "--folds", "2", "--out", str(out), "--presets", "recommended",
                   "--no-extrapolation", "--forecast-methods", "linear_projection", *sum((["--set", f"{k}={v}"] for k, v in TINY.items()), [])])
    assert rc == 0
    assert "aligned_knn" in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    assert res["models"]["recommended"]["folds_done"] == 2 and res["extrapolation"] is None
    assert {r["method"] for r in res["forecast"]["results"]} == {"linear_projection"}
