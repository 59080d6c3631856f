"""The original RoastFormer architecture (model_type roastformer_v1) and its checkpoint import.

Checkpoints here are written by the tests in the research code's format (the dict
train_transformer.py saves). Fidelity is established against `ReferenceRoastFormer`: the
original layer stack assembled from torch's own nn.TransformerDecoder with the original
parameter names, fed inputs built the way each research loader built them (tests/roastformer_fixture.py).
Our implementation shares no code with it.
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from roastformer_fixture import (
    ReferenceRoastFormer,
    original_checkpoint,
    package_files,
    reference_generate,
    reference_inputs,
    reference_predictions,
    tiny_config,
    write_package,
)

from roastcore.architectures import build_model
from roastcore.checkpoints import load_run, read_metrics
from roastcore.cli import main
from roastcore.diagnose import diagnose_metrics
from roastcore.evaluate import evaluate_run
from roastcore.generate import RoastRequest, export_profile, generate_profile
from roastcore.io import ImportFailure, load_source
from roastcore.roastformer_import import CheckpointImportError, import_checkpoints
from roastcore.roastformer_v1 import V1Encoder, model_config, scaler_for

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOL_F = 1e-3
POSITIONS = ("sinusoidal", "learned", "rope")


@pytest.fixture(scope="module")
def files():
    return package_files()


@pytest.fixture(scope="module")
def package_zip(files, tmp_path_factory):
    return write_package(tmp_path_factory.mktemp("pkg") / "roastformer_data.zip", files=files)


@pytest.fixture(scope="module")
def profiles_by_batch(package_zip):
    return {p.meta.batch_id: p for p in load_source(package_zip).profiles}


def make_checkpoint(files, tmp_path: Path, convention: str, seed: int = 0, name: str = "best_transformer_model.pt",
                    **config_changes):
    """(path, reference model, inputs) for a research-format checkpoint over the package `files`."""
    inputs, dims = reference_inputs(files, convention)
    torch.manual_seed(seed)
    config = tiny_config(**config_changes)
    ref = ReferenceRoastFormer(config, dims)
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(original_checkpoint(ref, config, dims), path)
    return path, ref, inputs


# ----------------------------------------------------------------------------- fidelity
@pytest.mark.parametrize("pos", POSITIONS)
def test_the_original_state_dict_loads_strictly(files, pos):
    inputs, dims = reference_inputs(files, "normalized")
    ref = ReferenceRoastFormer(tiny_config(positional_encoding=pos), dims)
    enc = V1Encoder(convention="normalized",
                    classes={f: list(range(n)) for f, n in zip(("origin", "process", "roast_level", "variety"),
                                                                 list(dims.values())[:4], strict=True)},
                    flavor_vocab=[f"f{i}" for i in range(dims["num_flavors"])])
    ours = build_model(model_config(tiny_config(positional_encoding=pos), "normalized"), enc, scaler_for("normalized"))
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    ours.load_state_dict(ref.state_dict(), strict=True)


@pytest.mark.slow
@pytest.mark.parametrize("convention", ("raw", "normalized"))
@pytest.mark.parametrize("pos", POSITIONS)
def test_imported_predictions_equal_the_original_computation(files, package_zip, profiles_by_batch, tmp_path,
                                                             convention, pos):
    path, ref, inputs = make_checkpoint(files, tmp_path, convention, seed=POSITIONS.index(pos),
                                        positional_encoding=pos)
    [result] = import_checkpoints([path], package_zip, tmp_path / "run", units="auto")
    assert result.units == convention  # the two loaders' vocabularies differ in size here
    model = load_run(tmp_path / "run").model
    assert model.config.model_type == "roastformer_v1" and model.config.pos_encoding == pos
    # teacher forcing: every validation roast, every step, against the reference
    expected = reference_predictions(ref, inputs["val"], convention, max_len=800)
    ids = inputs["val"][0]
    batch = model.make_batch([profiles_by_batch[i] for i in ids])
    with torch.no_grad():
        ours = model.predict_next_f(batch)
    for row, batch_id in enumerate(ids):
        n = expected[batch_id].numel()
        assert int(batch.lengths[row]) - 1 == n
        assert torch.allclose(ours[row, :n], expected[batch_id], rtol=0, atol=TOL_F), batch_id
    # free running with the research code's own clamp, against its generate() re-run per step
    lo_hi = (100.0, 500.0) if convention == "normalized" else (250.0, 450.0)
    first = replace(batch, **{k: getattr(batch, k)[:1] for k in ("mask", "lengths", "cat", "flavors", "cont", "index")})
    first = replace(first, temps_f=batch.temps_f[:1, :40], mask=batch.mask[:1, :40], lengths=torch.tensor([40]))
    gen = model.generate(first, clamp=lo_hi)
    reference = reference_generate(ref, inputs["val"], 0, convention, steps=40)
    assert torch.allclose(gen.clamped_f[0], reference, rtol=0, atol=TOL_F)


@pytest.mark.slow
def test_predict_cli_prints_the_original_predictions(files, package_zip, tmp_path, capsys):
    path, ref, inputs = make_checkpoint(files, tmp_path, "normalized", seed=3)
    assert main(["import-checkpoint", str(path), "--data", str(package_zip), "--out", str(tmp_path / "run"),
                 "--json"]) == 0
    [imported] = json.loads(capsys.readouterr().out)
    assert imported["units"] == "normalized" and imported["units_choice"] == "auto"
    batch_id = inputs["val"][0][2]
    assert main(["predict", "--checkpoint", str(tmp_path / "run"), "--data", str(package_zip),
                 "--profile", batch_id, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"profile_id", "step_s", "real_f", "teacher_forced_f", "free_run_raw_f", "free_run_clamped_f"}
    real = inputs["val"][1][2]
    assert out["real_f"] == pytest.approx(real, abs=1e-3) and out["step_s"] == 1.0
    expected = reference_predictions(ref, inputs["val"], "normalized", max_len=800)[batch_id]
    assert len(out["teacher_forced_f"]) == len(real) - 1  # [i] predicts real_f[i + 1]
    assert out["teacher_forced_f"] == pytest.approx(expected.tolist(), abs=TOL_F)
    assert len(out["free_run_raw_f"]) == len(out["free_run_clamped_f"]) == len(real)
    assert out["free_run_clamped_f"][:30] == pytest.approx(
        reference_generate(ref, inputs["val"], 2, "normalized", steps=30).tolist(), abs=TOL_F)
    assert all(100.0 <= v <= 500.0 for v in out["free_run_clamped_f"])


# ----------------------------------------------------------------------------- the run directory
@pytest.mark.slow
def test_import_writes_a_normal_run(files, package_zip, tmp_path):
    path, _, inputs = make_checkpoint(files, tmp_path / "recovery_tiny", "raw", seed=5,
                                      experiment_name="recovery_tiny_d64", learning_rate=5e-5)
    [result] = import_checkpoints([path], package_zip, tmp_path / "run")
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "encoder.json", "manifest.json", "metrics.jsonl",
                                                     "model.safetensors", "scaler.json"]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "imported" and manifest["model_type"] == "roastformer_v1"
    assert manifest["best_epoch"] == 3 and manifest["best_val_loss"] == pytest.approx(1 / 3)
    assert "°F²" in manifest["best_val_loss_units"]
    legacy = manifest["legacy"]
    assert legacy["original_config"]["learning_rate"] == 5e-5 and legacy["epoch"] == 3
    assert legacy["feature_dims"]["num_varieties"] == 7 and legacy["original_clamp_f"] == [250.0, 450.0]
    assert set(legacy["tf_mae_f"]) == {"raw", "normalized"} and legacy["tf_mae_f"]["normalized"] is None
    assert sorted(manifest["split"]["val_ids"]) == sorted(
        p.id for p in load_source(package_zip).profiles if p.meta.batch_id in set(inputs["val"][0]))
    assert [m["val_loss"] for m in read_metrics(run)] == pytest.approx([1.0, 0.5, 1 / 3])
    loaded = load_run(run)
    assert loaded.config.name == "recovery_tiny_d64" and loaded.config.train.lr == 5e-5
    assert loaded.scaler.enabled is False and loaded.model.encoder.convention == "raw"
    # export: a generated roast for a new request, written as an Artisan profile
    vocab = loaded.model.encoder.vocabs
    request = RoastRequest(origin=vocab["origin"][1], roast_level=vocab["roast_level"][0], flavors=("cocoa",),
                           duration_s=600.0)
    profile = generate_profile(loaded.model, request)
    assert profile.n == 601
    exported = export_profile(profile, tmp_path / "curve.alog")  # a collapsed curve, but a valid file
    assert exported.is_file() and "timex" in exported.read_text()


@pytest.mark.slow
def test_auto_picks_the_convention_with_the_lower_teacher_forcing_error(tmp_path):
    same = package_files(missing_variety=False)  # both loaders give the same vocabulary sizes
    package = write_package(tmp_path / "same.zip", files=same)
    paths = []
    for folder, bias in (("recovery_norm", 0.75), ("recovery_raw", 300.0)):
        path, ref, _ = make_checkpoint(same, tmp_path / folder, "normalized")
        blob = torch.load(path, weights_only=True)
        # A constant output: 0.75 is 400 °F in (T-100)/400 units, 0.75 °F read as raw °F;
        # 300 is 300 °F raw, 120,100 °F normalized.
        blob["model_state_dict"]["output_proj.weight"].zero_()
        blob["model_state_dict"]["output_proj.bias"].fill_(bias)
        torch.save(blob, path)
        paths.append(path)
    results = import_checkpoints(paths, package, tmp_path / "runs")
    assert [Path(r.run_dir).name for r in results] == ["recovery_norm", "recovery_raw"]
    norm, raw = results
    assert norm.units == "normalized" and raw.units == "raw"
    for r in results:
        assert all(v is not None for v in r.tf_mae_f.values())
        assert r.tf_mae_f[r.units] == min(r.tf_mae_f.values())
        manifest = json.loads((Path(r.run_dir) / "manifest.json").read_text())
        assert manifest["legacy"]["tf_mae_f"] == pytest.approx(r.tf_mae_f)
    # the flat-400 °F model misses the roasts by ~|T - 400|, the 0.75 °F reading by ~|T|
    assert norm.tf_mae_f["normalized"] < 200 < norm.tf_mae_f["raw"]
    # --units overrides the choice
    [given] = import_checkpoints(paths[:1], package, tmp_path / "given", units="raw")
    assert given.units == "raw" and given.units_choice == "raw" and given.tf_mae_f["normalized"] is None


# ----------------------------------------------------------------------------- bad input
class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_pickle_payload_is_refused_without_running_it(package_zip, tmp_path):
    marker = tmp_path / "pwned"
    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"model_state_dict": {"w": torch.zeros(1)}, "config": _Exploit(marker)}, fh)
    torch.save({"model_state_dict": {"w": torch.zeros(1)}, "config": _Exploit(marker)}, tmp_path / "evil2.pt")
    for name in ("evil.pt", "evil2.pt"):
        with pytest.raises(CheckpointImportError, match="pickle code execution"):
            import_checkpoints([tmp_path / name], package_zip, tmp_path / "out")
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_bad_checkpoints_and_packages_get_clear_errors(files, package_zip, tmp_path):
    path, _, _ = make_checkpoint(files, tmp_path / "ok", "normalized")
    blob = torch.load(path, weights_only=True)

    def save(name, **changes):
        torch.save({**blob, **changes}, tmp_path / name)
        return tmp_path / name

    state = dict(blob["model_state_dict"])
    state["transformer.layers.1.linear1.weight"] = torch.zeros(48, 32)
    with pytest.raises(CheckpointImportError, match=r"model_state_dict\['transformer.layers.1.linear1.weight'\] "
                                                    r"has shape \(48, 32\), but .* needs \(64, 32\)"):
        import_checkpoints([save("shape.pt", model_state_dict=state)], package_zip, tmp_path / "out")
    no_dims = {k: v for k, v in blob.items() if k != "feature_dims"}
    torch.save(no_dims, tmp_path / "nodims.pt")
    with pytest.raises(CheckpointImportError, match="no feature_dims in the checkpoint"):
        import_checkpoints([tmp_path / "nodims.pt"], package_zip, tmp_path / "out")
    dims = {**blob["feature_dims"], "num_flavors": blob["feature_dims"]["num_flavors"] + 3}
    with pytest.raises(CheckpointImportError, match="does not match the checkpoint's vocabulary sizes.*num_flavors=12"):
        import_checkpoints([save("dims.pt", feature_dims=dims)], package_zip, tmp_path / "out")
    with pytest.raises(CheckpointImportError, match="--units raw: .*num_varieties=7"):
        import_checkpoints([path], package_zip, tmp_path / "out", units="raw")
    no_meta = write_package(tmp_path / "nometa.zip", files=files, drop=("train_metadata.csv", "val_metadata.csv"))
    with pytest.raises(ImportFailure, match="no training metadata"):
        import_checkpoints([path], no_meta, tmp_path / "out")
    # all or nothing: a good file beside a bad one leaves no run and no temporary folder
    with pytest.raises(CheckpointImportError):
        import_checkpoints([path, tmp_path / "shape.pt"], package_zip, tmp_path / "both")
    assert not (tmp_path / "both").exists()
    assert not (tmp_path / "out").exists()
    # an existing run is never overwritten; a folder of other things receives the run by name
    import_checkpoints([path], package_zip, tmp_path / "runs" / "ok")
    with pytest.raises(CheckpointImportError, match="already exists"):
        import_checkpoints([path], package_zip, tmp_path / "runs" / "ok")
    with pytest.raises(CheckpointImportError, match="already exists"):
        import_checkpoints([path], package_zip, tmp_path / "runs")  # would be runs/ok again
    assert main(["import-checkpoint", str(tmp_path / "nodims.pt"), "--data", str(package_zip),
                 "--out", str(tmp_path / "cli")]) == 2
    # a config with an unusable max_sequence_length: one line naming the field, no traceback
    for bad in (float("inf"), float("nan"), -5, "long"):
        config = {**blob["config"], "max_sequence_length": bad}
        with pytest.raises((CheckpointImportError, ValueError), match="max_len|max_sequence_length"):
            import_checkpoints([save("len.pt", config=config)], package_zip, tmp_path / "len")
        assert not (tmp_path / "len").exists()


# ----------------------------------------------------------------------------- the diagnosis
def _recomputed_verdict(report) -> str:
    fr = report.free_run
    return diagnose_metrics(report.teacher_forcing, fr, report.baselines["aligned_knn"]["mae_f"],
                            raw_std_f=fr["raw_std_f"], clamp_active_pct=fr["clamp_active_pct"],
                            fed_std_f=fr["fed_std_f"]).verdict


@pytest.mark.slow
def test_an_unnormalized_original_checkpoint_is_diagnosed_collapsed(files, package_zip, tmp_path):
    path, _, _ = make_checkpoint(files, tmp_path, "raw", seed=1)
    blob = torch.load(path, weights_only=True)
    blob["model_state_dict"]["output_proj.bias"].fill_(16.0)  # the research runs sat near 16 °F
    torch.save(blob, path)
    import_checkpoints([path], package_zip, tmp_path / "run")
    report = evaluate_run(tmp_path / "run", load_source(package_zip).profiles, split="val", use_cache=False)
    assert report.split == "val" and report.n_profiles == 21
    assert report.diagnosis["verdict"] == "collapsed" == _recomputed_verdict(report)
    assert any("raw °F" in e for e in report.diagnosis["evidence"])


@pytest.mark.slow
def test_a_normalized_original_checkpoint_gets_the_verdict_of_the_same_rules(files, package_zip, tmp_path):
    """A briefly trained normalized checkpoint (the research recipe, 40 steps): whatever it
    is, its verdict is the one the shared rules give its numbers, without the raw-°F note."""
    inputs, dims = reference_inputs(files, "normalized")
    torch.manual_seed(0)
    config = tiny_config(dropout=0.0)
    ref = ReferenceRoastFormer(config, dims)
    _, temps, cat, flavors, cont = inputs["train"]
    padded = torch.tensor([t + [t[-1]] * (800 - len(t)) for t in temps], dtype=torch.float32)
    units = (padded - 100.0) / 400.0
    opt = torch.optim.AdamW(ref.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        idx = torch.randint(0, len(temps), (8,), generator=gen)
        loss = (ref(units[idx, :-1], cat[idx], flavors[idx], cont[idx]) - units[idx, 1:]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save(original_checkpoint(ref, config, dims), tmp_path / "trained.pt")
    [result] = import_checkpoints([tmp_path / "trained.pt"], package_zip, tmp_path / "run")
    assert result.units == "normalized" and result.tf_mae_f["normalized"] < 100
    report = evaluate_run(tmp_path / "run", load_source(package_zip).profiles, split="val", use_cache=False)
    assert report.diagnosis["verdict"] == _recomputed_verdict(report)
    assert report.diagnosis["verdict"] != "collapsed"
    assert not any("raw °F" in e for e in report.diagnosis["evidence"])


# ----------------------------------------------------------------------------- training it here
ORIGINAL_TIERS = ("original", "recovery")


def test_every_original_and_recovery_preset_runs_in_the_original_architecture():
    from roastcore.experiments import PRESETS, preset_parameter_count

    names = [n for n, p in PRESETS.items() if p.tier in ORIGINAL_TIERS]
    assert len(names) == 10
    counts = {n: preset_parameter_count(PRESETS[n].experiment.with_overrides({"model_type": "roastformer_v1"}))
              for n in names}
    # the research code's own figures: ~6.4M parameters for its baseline, ~218K for its tiny model
    assert 6.2e6 < counts["baseline_sinusoidal"] < 6.5e6 and 2.0e5 < counts["tiny_model"] < 2.3e5
    assert counts["micro_model"] < counts["tiny_model"] < counts["small_model"] < counts["baseline_sinusoidal"]


@pytest.mark.slow
def test_training_the_original_architecture_on_the_package_split(package_zip, tmp_path):
    from roastcore.experiments import get_preset
    from roastcore.io.roastformer_package import split_by_membership
    from roastcore.train import train

    report = load_source(package_zip)
    train_profiles, val_profiles = split_by_membership(report.profiles, report.membership)
    experiment = get_preset("micro_model").experiment.with_overrides(
        {"model_type": "roastformer_v1", "epochs": 1, "max_len": 120, "batch_size": 16})
    result = train(experiment, train_profiles, val_profiles, run_dir=tmp_path / "run", device="cpu",
                   split={"val_ids": report.split_ids("val")})
    assert result.status == "succeeded"
    loaded = load_run(tmp_path / "run")
    assert isinstance(loaded.model.encoder, V1Encoder) and loaded.scaler.to_dict() == scaler_for("normalized").to_dict()
    state = loaded.model.state_dict()
    assert "transformer.layers.1.multihead_attn.in_proj_weight" in state and "conditioning_module.flavor_proj.bias" in state
    report_val = evaluate_run(tmp_path / "run", report.profiles, split="val", use_cache=False)
    assert report_val.split == "val" and report_val.n_profiles == 21
