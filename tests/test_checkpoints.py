"""Run directories: exact round trip, atomic writes, listing, legacy import, pickle refusal."""

from __future__ import annotations

import json
import logging
import os

import pytest
import torch
from safetensors.torch import load_file

from roastcore import fsutil
from roastcore.architectures import build_model
from roastcore.checkpoints import (
    RunError,
    delete_run,
    list_runs,
    load_config,
    load_encoder,
    load_run,
    read_metrics,
    save_checkpoint,
    save_weights,
)
from roastcore.experiments import get_preset
from roastcore.features import FeatureEncoder, TemperatureScaler

EXP = get_preset("micro_model").experiment.with_overrides({"step_s": 10, "max_len": 100, "name": "micro"})


@pytest.fixture(scope="module")
def profiles(synthetic_profiles):
    return synthetic_profiles[:6]


@pytest.fixture
def model(profiles):
    torch.manual_seed(1)
    encoder = FeatureEncoder.fit(profiles)
    scaler = TemperatureScaler.fit(profiles, step_s=10.0)
    return build_model(EXP.model, encoder, scaler).eval()


def _metrics():
    return [{"epoch": 1, "val_loss": 0.5, "val_tf_mae_f": 4.0}, {"epoch": 2, "val_loss": 0.3, "val_tf_mae_f": 3.0}]


def test_round_trip_is_exact(model, profiles, tmp_path):
    save_checkpoint(tmp_path / "run", model, EXP, metrics=_metrics(),
                    manifest={"data_source": "synthetic:6", "split": {"val_ids": [profiles[0].id]}})
    loaded = load_run(tmp_path / "run")
    batch = model.make_batch(profiles)
    assert torch.equal(loaded.model(batch), model(batch))
    assert torch.equal(loaded.model.generate(batch).clamped_f, model.generate(batch).clamped_f)
    assert loaded.config == EXP and loaded.scaler == model.scaler
    assert loaded.encoder.to_dict() == model.encoder.to_dict()
    assert loaded.manifest["best_epoch"] == 2 and loaded.manifest["status"] == "succeeded"
    assert loaded.manifest["param_count"] == sum(p.numel() for p in model.parameters())
    assert [m["epoch"] for m in loaded.metrics] == [1, 2]
    train, val = loaded.split_profiles(profiles)
    assert [p.id for p in val] == [profiles[0].id] and len(train) == 5
    assert not loaded.model.training


def test_weights_file_is_plain_safetensors(model, tmp_path):
    save_checkpoint(tmp_path / "run", model, EXP)
    tensors = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert set(tensors) == set(model.state_dict())


def test_failed_write_keeps_previous_weights(model, tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    save_weights(path, model)
    before = load_file(str(path))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)

    def crash(fd):  # the disk fails after the new bytes were written to the temp file
        raise OSError("disk on fire")

    monkeypatch.setattr(fsutil.os, "fsync", crash)
    with pytest.raises(OSError, match="disk on fire"):
        save_weights(path, model)
    monkeypatch.undo()
    after = load_file(str(path))
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert os.listdir(tmp_path) == ["model.safetensors"]  # no temp file left behind


def test_failed_replace_keeps_previous_text(tmp_path, monkeypatch):
    path = tmp_path / "manifest.json"
    fsutil.atomic_write_text(path, '{"v": 1}')
    monkeypatch.setattr(fsutil.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("power cut")))
    with pytest.raises(OSError):
        fsutil.atomic_write_text(path, '{"v": 2}')
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"v": 1}


def test_load_errors_name_the_file(model, tmp_path):
    run = save_checkpoint(tmp_path / "run", model, EXP)
    (run / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(RunError, match="model.safetensors"):
        load_run(run)
    (run / "config.json").write_text("{not json")
    with pytest.raises(RunError, match="config.json"):
        load_run(run)


@pytest.mark.parametrize("name, content", [
    ("config.json", "{not json"),
    ("config.json", '{"name": "x", "train": {"lr": "fast"}}'),
    ("encoder.json", "[1, 2]"),
    ("encoder.json", '{"vocabs": 3}'),
])
def test_config_and_encoder_read_alone_as_load_run_reads_them(model, tmp_path, name, content):
    """What a page reads without the model (load_config, load_encoder) is what load_run builds
    it from, and a broken file is the same one error from each."""
    run = save_checkpoint(tmp_path / "run", model, EXP)
    loaded = load_run(run)
    assert load_config(run) == loaded.config
    assert load_encoder(run).to_dict() == load_encoder(run, loaded.config).to_dict() == loaded.encoder.to_dict()
    (run / name).write_text(content)
    with pytest.raises(RunError) as whole:
        load_run(run)
    alone = [load_encoder] if name == "encoder.json" else [load_config, load_encoder]
    for read in alone:
        with pytest.raises(RunError) as part:
            read(run)
        assert str(part.value) == str(whole.value)
    assert name in str(whole.value)  # the file that is wrong is named


def test_torn_metrics_line_is_skipped(model, tmp_path):
    run = save_checkpoint(tmp_path / "run", model, EXP, metrics=_metrics())
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 3, "val_lo')
    assert [m["epoch"] for m in read_metrics(run)] == [1, 2]


def test_list_runs_skips_broken_dirs(model, tmp_path, caplog):
    save_checkpoint(tmp_path / "good", model, EXP, metrics=_metrics())
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{")
    (tmp_path / "not_a_run").mkdir()
    with caplog.at_level(logging.WARNING, logger="roastcore.checkpoints"):
        runs = list_runs(tmp_path)
    assert [r.name for r in runs] == ["good"]
    info = runs[0]
    assert info.status == "succeeded" and info.preset == "micro" and info.best_epoch == 2
    assert info.last_val_tf_mae_f == 3.0 and info.epochs_run == 2 and info.param_count > 0
    assert "broken" in caplog.text
    assert list_runs(tmp_path / "missing") == []


def test_delete_run_refuses_non_runs(model, tmp_path):
    run = save_checkpoint(tmp_path / "run", model, EXP)
    other = tmp_path / "photos"
    other.mkdir()
    with pytest.raises(RunError, match="does not look like a run"):
        delete_run(other)
    delete_run(run)
    assert not run.exists() and other.exists()


@pytest.mark.parametrize("name, content, words", [
    ("config.json", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("manifest.json", "[1, 2]", "must hold a JSON object, not a list"),
    ("config.json", '{"name": "x", "model": null}', "'model' must be an object"),
    ("config.json", '{"name": "x", "train": null}', "'train' must be an object"),
    ("config.json", '{"name": "x", "train": {"lr": "fast"}}', "TrainConfig.lr"),
    ("config.json", '{"name": "x", "model": {"d_model": [64]}}', "ModelConfig.d_model"),
])
def test_hostile_run_files_are_one_clear_error(model, tmp_path, name, content, words):
    run = save_checkpoint(tmp_path / "run", model, EXP)
    (run / name).write_text(content)
    with pytest.raises(RunError) as info:
        load_run(run)
    assert words in str(info.value) and str(run) in str(info.value)
    assert "Traceback" not in str(info.value) and len(str(info.value)) < 300
    list_runs(tmp_path)  # the picker's listing never raises on it
