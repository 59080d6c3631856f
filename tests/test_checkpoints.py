"""Run directories: exact round trip, atomic writes, listing, legacy import, pickle refusal."""

from __future__ import annotations

import json
import logging
import os
import pickle

import pytest
import torch
from safetensors.torch import load_file

from roastcore import fsutil
from roastcore.checkpoints import (
    LEGACY_WEIGHTS,
    RunError,
    delete_run,
    import_legacy_pt,
    list_runs,
    load_run,
    read_metrics,
    save_checkpoint,
    save_weights,
)
from roastcore.experiments import get_preset
from roastcore.features import FeatureEncoder, TemperatureScaler
from roastcore.model import build_model

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


# ----------------------------------------------------------------------------- legacy .pt
PRIOR_CONFIG = {"d_model": 32, "nhead": 2, "num_layers": 2, "dim_feedforward": 128, "embed_dim": 32,
                "dropout": 0.1, "positional_encoding": "sinusoidal", "max_sequence_length": 100,
                "learning_rate": 1e-4, "batch_size": 8, "num_epochs": 100, "early_stopping_patience": None,
                "checkpoint_dir": "checkpoints"}


def test_legacy_import_of_our_state_dict_is_loadable(model, profiles, tmp_path):
    cfg = dict(PRIOR_CONFIG)
    blob = {"model_state_dict": model.state_dict(), "config": cfg, "epoch": 7,
            "encoder": model.encoder.to_dict(), "scaler": model.scaler.to_dict()}
    # The prior keys map onto micro_model's d_model/n_heads/n_layers/d_ff/max_len.
    torch.save(blob, tmp_path / "best.pt")
    out = import_legacy_pt(tmp_path / "best.pt", tmp_path / "imported")
    loaded = load_run(out)
    assert (loaded.config.model.d_model, loaded.config.model.n_layers, loaded.config.model.d_ff) == (32, 2, 128)
    assert loaded.config.train.lr == 1e-4 and loaded.config.train.epochs == 100
    assert loaded.manifest["status"] == "imported" and loaded.manifest["loadable"] is True
    assert "checkpoint_dir" in loaded.manifest["legacy_unmapped_keys"]


def test_legacy_import_of_prior_architecture_archives_weights(tmp_path):
    state = {"conditioning.origin_embed.weight": torch.randn(5, 32), "output_head.bias": torch.zeros(1)}
    torch.save({"model_state_dict": state, "config": PRIOR_CONFIG, "best_val_loss": 160000.0,
                "train_losses": [1.0, 2.0]}, tmp_path / "prior.pt")
    out = import_legacy_pt(tmp_path / "prior.pt", tmp_path / "imported")
    archived = load_file(str(out / LEGACY_WEIGHTS))
    assert torch.equal(archived["conditioning.origin_embed.weight"], state["conditioning.origin_embed.weight"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["loadable"] is False and manifest["best_val_loss"] == 160000.0
    assert json.loads((out / "config.json").read_text())["model"]["n_heads"] == 2
    with pytest.raises(RunError, match="legacy"):
        load_run(out)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_pickle_that_runs_code_is_refused(tmp_path, writer):
    marker = tmp_path / "pwned"
    payload = {"model_state_dict": {"w": torch.zeros(2)}, "config": _Exploit(marker)}
    if writer == "pickle":
        with open(tmp_path / "evil.pt", "wb") as fh:
            pickle.dump(payload, fh)
    else:
        torch.save(payload, tmp_path / "evil.pt")
    assert not marker.exists()
    with pytest.raises(RunError, match="pickle code execution"):
        import_legacy_pt(tmp_path / "evil.pt", tmp_path / "out")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_legacy_import_rejects_other_shapes(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(RunError, match="model_state_dict"):
        import_legacy_pt(tmp_path / "list.pt", tmp_path / "out")
    with pytest.raises(FileNotFoundError):
        import_legacy_pt(tmp_path / "missing.pt", tmp_path / "out")


# ---------------------------------------------------------------- usable or not
def _finished(run_dir, model, status, epochs_run, with_model=True):
    """A RunWriter as train.train drives it, ending with `epochs_run` finished epochs."""
    from roastcore.checkpoints import RunWriter
    from roastcore.train import TrainResult

    writer = RunWriter(run_dir, EXP, model.encoder, model.scaler, param_count=1, device="cpu")
    writer.save_best(model, None, 1.0)  # the trainer's stand-in weights when no epoch finished
    writer.on_train_end(TrainResult(status=status, best_epoch=None, best_val_loss=1.0, reason="x", device="cpu",
                                    epochs_run=epochs_run, model=model if with_model else None))
    return run_dir


def test_a_run_cancelled_before_its_first_epoch_is_not_usable(model, tmp_path):
    from roastcore.checkpoints import run_usability

    run = _finished(tmp_path / "cancelled", model, "cancelled", epochs_run=0)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["usable"] is False and "before its first epoch finished" in manifest["unusable_reason"]
    ok = _finished(tmp_path / "cancelled_later", model, "cancelled", epochs_run=2)
    assert json.loads((ok / "manifest.json").read_text())["usable"] is True
    infos = {r.name: r for r in list_runs(tmp_path)}
    assert infos["cancelled"].usable is False and "untrained" in infos["cancelled"].unusable_reason
    assert infos["cancelled_later"].usable is True and infos["cancelled_later"].unusable_reason == ""
    assert run_usability(run) == (False, manifest["unusable_reason"])
    assert load_run(run).model is not None  # still loadable: callers decide to show or hide it


def test_runs_that_predate_the_usable_field_are_judged_by_their_epochs(model, tmp_path):
    from roastcore.checkpoints import run_usability

    run = save_checkpoint(tmp_path / "old", model, EXP)  # no metrics: no finished epoch
    manifest = json.loads((run / "manifest.json").read_text())
    assert "usable" not in manifest
    assert run_usability(run) == (True, "")  # a saved (imported) model is usable as it is
    manifest.update(status="cancelled", epochs_run=0)
    (run / "manifest.json").write_text(json.dumps(manifest))
    usable, why = run_usability(run)
    assert not usable and why == "cancelled before its first epoch finished: the weights are untrained"
    (run / "model.safetensors").unlink()
    assert run_usability(run) == (False, "no saved weights")


def test_list_runs_tf_mae_says_where_it_comes_from(model, tmp_path):
    run = save_checkpoint(tmp_path / "run", model, EXP, metrics=_metrics())
    info = list_runs(tmp_path)[0]
    assert (info.tf_mae_f, info.tf_mae_from, info.verdict) == (3.0, "last epoch", None)
    # evaluate.score_run writes scores.json with a summary; the listing then shows the evaluation's.
    (run / "scores.json").write_text(json.dumps({"summary": {"tf_mae_f": 2.25, "verdict": "healthy"}}))
    info = list_runs(tmp_path)[0]
    assert (info.tf_mae_f, info.tf_mae_from, info.verdict) == (2.25, "evaluation", "healthy")
    assert info.last_val_tf_mae_f == 3.0
