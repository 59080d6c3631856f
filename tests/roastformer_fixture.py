"""Test fixtures in the original RoastFormer research code's formats, all written here.

- `write_package`: a `preprocessed_data/` package (train/val profile lists of Onyx-style roast
  objects, metadata CSVs with the research code's columns, dataset_stats.json), as a folder or
  as the research code's Colab zip (the package one folder down, with other files beside it).
- `ReferenceRoastFormer`: the original architecture assembled from torch's own
  nn.TransformerDecoder with the original parameter names, and its forward pass written from
  the published description; `reference_inputs` builds its inputs the way each research loader
  did (pandas for the CSVs). Independent of roastcore.roastformer_v1 on purpose: the tests hold
  our implementation to it.
- `original_checkpoint`: the dict train_transformer.py saves, with a real AdamW and cosine
  scheduler state.
"""

from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

ORIGINS = ["Colombia", "Ethiopia", "Kenya", "Brazil", "Guatemala", "Colombia, Ethiopia", "Costa Rica"]
PROCESSES = ["Washed", "Natural", "Honey", "Anaerobic Natural"]
LEVELS = ["Light", "Moderate", "Medium", "Dark"]
VARIETIES = ["Caturra", "Bourbon", "Heirloom", "Gesha", "Pink Bourbon", "SL28"]
FLAVORS = ["COCOA", "DATES", "BROWN SUGAR", "STONE FRUIT", "CREAMY", "CHERRY", "JASMINE", "LEMON", "HONEY"]
CSV_COLUMNS = ["batch_id", "product_name", "origin", "process", "roast_level", "variety",
               "target_finish_temp", "flavor_notes", "directory"]


def _products(rng, n_products: int, missing_variety: bool = True) -> list[dict]:
    products = []
    for k in range(n_products):
        notes = list(rng.choice(FLAVORS, size=int(rng.integers(2, 5)), replace=False))
        products.append({
            "product_name": f"Product {k:02d}",
            "origin": ORIGINS[k % len(ORIGINS)],
            "process": PROCESSES[(k * 3) % len(PROCESSES)],
            "roast_level": LEVELS[(k * 5) % len(LEVELS)],
            "variety": VARIETIES[(k * 7) % len(VARIETIES)] if k % 11 or not missing_variety else None,
            "target_finish_temp": float(400 + (k * 3) % 26),
            "flavor_notes_parsed": None if k % 9 == 4 else notes,
            "altitude": ["1950 MASL", None, 1800, None, None][k % 5],
            "bean_density_proxy": [0.71, None, None, 0.7475][k % 4],
        })
    return products


def roast_curve(rng, duration_s: int, charge: float, finish: float) -> list[float]:
    """A drum-roast-shaped curve at 1 s: a fall to the turning point, then a slowing rise."""
    t = np.arange(duration_s + 1, dtype=float)
    tp = 145.0 + rng.uniform(0, 25)
    rise = np.clip(t - 35.0, 0, None) / (duration_s - 35.0)
    bt = tp + (charge - tp) * np.exp(-t / 22.0) + (finish - tp) * rise ** 0.78
    bt += rng.normal(0, 0.15, bt.size)
    return [round(float(v), 1) for v in bt]


def roast_object(rng, product: dict, batch: int) -> dict:
    duration = int(rng.integers(560, 760))
    charge = float(rng.uniform(400, 445))
    finish = product["target_finish_temp"] + rng.uniform(-6, 6)
    bt = roast_curve(rng, duration, charge, finish)
    meta = {k: v for k, v in product.items()}
    meta.update({"url": f"https://example.invalid/{batch}", "roast_level_agtron": 80,
                 "roaster_machine": "Diedrich CR-70",
                 "roast_info": {"batch": str(batch), "roast_date": "Today", "charge_temp": f"{charge:.1f}",
                                "duration": str(duration // 60)}})
    return {
        "metadata": meta,
        "roast_profile": {"bean_temp": [{"time": i, "value": v} for i, v in enumerate(bt)]},
        "summary": {"duration_seconds": duration, "data_points": len(bt), "start_temp": bt[0],
                    "finish_temp": bt[-1], "min_temp": min(bt), "max_temp": max(bt)},
    }


def package_files(n: int = 144, n_val: int = 21, seed: int = 0, n_products: int = 40,
                  missing_variety: bool = True) -> dict[str, bytes]:
    """name -> bytes of the five package files, as prepare_training_data.py writes them. A
    missing variety makes the two research loaders' vocabularies differ in size."""
    rng = np.random.default_rng(seed)
    products = _products(rng, n_products, missing_variety)
    roasts, rows = [], []
    for i in range(n):
        product = products[int(rng.integers(n_products))] if i >= n_products else products[i]
        batch = 90000 + 7 * i
        roasts.append(roast_object(rng, product, batch))
        notes = product["flavor_notes_parsed"]
        rows.append({"batch_id": str(batch), "product_name": product["product_name"], "origin": product["origin"],
                     "process": product["process"], "roast_level": product["roast_level"],
                     "variety": product["variety"], "target_finish_temp": product["target_finish_temp"],
                     "flavor_notes": ", ".join(notes) if isinstance(notes, list) else "",
                     "directory": "onyx_dataset_2025_10_30"})
    order = rng.permutation(n)
    val_idx, train_idx = sorted(order[:n_val]), sorted(order[n_val:])

    def csv_bytes(idx):
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for i in idx:
            writer.writerow({k: ("" if v is None else v) for k, v in rows[i].items()})
        return buf.getvalue().encode()

    stats = {"total_profiles": n, "train_size": len(train_idx), "val_size": len(val_idx),
             "val_ratio": len(val_idx) / n}
    return {
        "train_profiles.json": json.dumps([roasts[i] for i in train_idx], indent=2).encode(),
        "val_profiles.json": json.dumps([roasts[i] for i in val_idx], indent=2).encode(),
        "train_metadata.csv": csv_bytes(train_idx),
        "val_metadata.csv": csv_bytes(val_idx),
        "dataset_stats.json": json.dumps(stats, indent=2).encode(),
    }


def write_package(dest: Path, layout: str = "zip", files: dict[str, bytes] | None = None,
                  drop: tuple[str, ...] = (), **kw) -> Path:
    """The package as `dest` (a .zip in the Colab layout, or a folder holding preprocessed_data/)."""
    files = dict(files or package_files(**kw))
    for name in drop:
        files.pop(name, None)
    if layout == "zip":
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
            top = "roastformer_data_20251118_090504/"
            for name, data in files.items():
                zf.writestr(top + "preprocessed_data/" + name, data)
            zf.writestr(top + "src/model/transformer_adapter.py", "# not the research code: a stand-in file\n")
            zf.writestr(top + "train_transformer.py", "# a stand-in file beside the package\n")
        return dest
    root = dest / "preprocessed_data"
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    (dest / "README.txt").write_text("other files beside the package\n")
    return dest


# ----------------------------------------------------------------------------- the reference
class _Conditioning(nn.Module):
    def __init__(self, dims: dict, embed_dim: int):
        super().__init__()
        self.origin_embed = nn.Embedding(dims["num_origins"], embed_dim)
        self.process_embed = nn.Embedding(dims["num_processes"], embed_dim)
        self.roast_level_embed = nn.Embedding(dims["num_roast_levels"], embed_dim)
        self.variety_embed = nn.Embedding(dims["num_varieties"], embed_dim)
        self.flavor_proj = nn.Linear(dims["num_flavors"], embed_dim)
        self.continuous_proj = nn.Linear(3, embed_dim)


class _Sinusoidal(nn.Module):
    def __init__(self, d, max_len):
        super().__init__()
        pe = torch.zeros(max_len, d)
        pos = torch.arange(max_len, dtype=torch.float)[:, None]
        div = torch.exp(torch.arange(0, d, 2).float() * (-math.log(10000.0) / d))
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        self.register_buffer("pe", pe)

    def forward(self, x):
        return x + self.pe[: x.shape[1]][None]


class _Learned(nn.Module):
    def __init__(self, d, max_len):
        super().__init__()
        self.pos_embedding = nn.Embedding(max_len, d)

    def forward(self, x):
        return x + self.pos_embedding(torch.arange(x.shape[1]))[None]


class _Rope(nn.Module):
    def __init__(self, d, max_len):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (10000.0 ** (torch.arange(0, d, 2).float() / d)))
        freqs = torch.outer(torch.arange(max_len, dtype=torch.float), self.inv_freq)
        self.register_buffer("cos_cached", torch.cat([freqs.cos(), freqs.cos()], -1))
        self.register_buffer("sin_cached", torch.cat([freqs.sin(), freqs.sin()], -1))

    def forward(self, x):
        n, half = x.shape[1], x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
        return x * self.cos_cached[:n][None] + rotated * self.sin_cached[:n][None]


class ReferenceRoastFormer(nn.Module):
    """The original architecture on torch's nn.TransformerDecoder, original parameter names."""

    def __init__(self, config: dict, dims: dict):
        super().__init__()
        d, e, max_len = config["d_model"], config["embed_dim"], config["max_sequence_length"]
        self.conditioning_module = _Conditioning(dims, e)
        self.condition_proj = nn.Linear(6 * e, d)
        self.temp_embed = nn.Linear(1, d)
        self.pos_encoding = {"sinusoidal": _Sinusoidal, "learned": _Learned, "rope": _Rope}[
            config["positional_encoding"]](d, max_len)
        layer = nn.TransformerDecoderLayer(d_model=d, nhead=config["nhead"], dim_feedforward=config["dim_feedforward"],
                                           dropout=config["dropout"], batch_first=True)
        self.transformer = nn.TransformerDecoder(layer, config["num_layers"])
        self.output_proj = nn.Linear(d, 1)
        self.layer_norm = nn.LayerNorm(d)

    def forward(self, temps, cat, flavors, cont):  # temps [B, L] in the model's units
        c = self.conditioning_module
        cond = torch.cat([c.origin_embed(cat[:, 0]), c.process_embed(cat[:, 1]), c.roast_level_embed(cat[:, 2]),
                          c.variety_embed(cat[:, 3]), c.flavor_proj(flavors), c.continuous_proj(cont)], 1)
        memory = self.condition_proj(cond)[:, None, :]
        x = self.pos_encoding(self.temp_embed(temps[..., None])) + memory
        mask = nn.Transformer.generate_square_subsequent_mask(temps.shape[1])
        out = self.transformer(tgt=x, memory=memory, tgt_mask=mask)
        return self.output_proj(self.layer_norm(out))[..., 0]


def reference_inputs(files: dict[str, bytes], convention: str):
    """Per split: (batch ids, temps [list of lists, °F], cat [N,4], flavors [N,F], cont [N,3]),
    built as the research loader of that convention built them."""
    import pandas as pd

    train_meta = pd.read_csv(io.BytesIO(files["train_metadata.csv"]))
    val_meta = pd.read_csv(io.BytesIO(files["val_metadata.csv"]))
    both = pd.concat([train_meta, val_meta], ignore_index=True)
    profiles = {s: json.loads(files[f"{s}_profiles.json"]) for s in ("train", "val")}
    fields = ["origin", "process", "roast_level", "variety"]
    if convention == "raw":
        fill = {"origin": "Unknown", "process": "Unknown", "roast_level": "Medium", "variety": "Unknown"}
        classes = {f: sorted(set(both[f].fillna(fill[f]).unique())) for f in fields}
        flavors = set()
        for text in both["flavor_notes"].dropna():
            flavors.update(x.strip().lower() for x in text.split(","))
    else:
        classes = {f: sorted(set(both[f].dropna().unique())) for f in fields}
        flavors = set()
        for p in profiles["train"] + profiles["val"]:
            notes = p["metadata"].get("flavor_notes_parsed", [])
            if isinstance(notes, list):
                flavors.update(x.strip().lower() for x in notes if x)
    vocab = {f: i for i, f in enumerate(sorted(flavors))}
    out = {}
    for split in ("train", "val"):
        table = both if convention == "normalized" else (train_meta if split == "train" else val_meta)
        ids, temps, cats, flavs, conts = [], [], [], [], []
        for p in profiles[split]:
            meta = p["metadata"]
            rows = table[table["product_name"] == meta.get("product_name", "Unknown")]
            row = rows.iloc[0]
            cats.append([classes[f].index(row[f]) if row[f] in classes[f] else 0 for f in fields])
            altitude = meta.get("altitude")
            try:
                altitude = float(altitude) if altitude not in (None, "") else 1500.0
            except ValueError:
                altitude = 1500.0
            density = meta.get("bean_density_proxy")
            density = 0.68 if density is None else float(density)
            conts.append([float(row["target_finish_temp"]) / 425.0, altitude / 2500.0, density / 0.80])
            hot = [0.0] * len(vocab)
            notes = meta.get("flavor_notes_parsed") if isinstance(meta.get("flavor_notes_parsed"), list) else []
            for x in notes:
                if x.strip().lower() in vocab:
                    hot[vocab[x.strip().lower()]] = 1.0
            flavs.append(hot)
            temps.append([pt["value"] for pt in p["roast_profile"]["bean_temp"]])
            ids.append(meta["roast_info"]["batch"])
        out[split] = (ids, temps, torch.tensor(cats), torch.tensor(flavs), torch.tensor(conts))
    dims = {"num_origins": len(classes["origin"]), "num_processes": len(classes["process"]),
            "num_roast_levels": len(classes["roast_level"]), "num_varieties": len(classes["variety"]),
            "num_flavors": len(vocab)}
    return out, dims


def reference_generate(model: ReferenceRoastFormer, split_inputs, row: int, convention: str, steps: int):
    """The research code's generate(): re-run the whole sequence each step, clamp the newest
    value ([0, 1] normalized; [250, 450] °F in the raw-°F version), feed it back. °F out."""
    ids, temps, cat, flavors, cont = split_inputs
    lo, hi = (0.0, 1.0) if convention == "normalized" else (250.0, 450.0)
    start = temps[row][0]
    seq = torch.tensor([[(start - 100.0) / 400.0 if convention == "normalized" else start]])
    model.eval()
    with torch.no_grad():
        for _ in range(1, steps):
            nxt = model(seq, cat[row:row + 1], flavors[row:row + 1], cont[row:row + 1])[0, -1].clamp(lo, hi)
            seq = torch.cat([seq, nxt.view(1, 1)], dim=1)
    out = seq[0]
    return out * 400.0 + 100.0 if convention == "normalized" else out


def reference_predictions(model: ReferenceRoastFormer, split_inputs, convention: str, max_len: int):
    """Teacher-forced next-step predictions in °F per roast, as the research training loop fed
    them: each sequence padded with its last value to max_len, inputs temps[:, :-1]."""
    ids, temps, cat, flavors, cont = split_inputs
    padded = torch.tensor([(t[:max_len] + [t[:max_len][-1]] * (max_len - len(t[:max_len]))) for t in temps],
                          dtype=torch.float32)
    units = (padded - 100.0) / 400.0 if convention == "normalized" else padded
    model.eval()
    with torch.no_grad():
        pred = model(units[:, :-1], cat, flavors, cont)
    pred_f = pred * 400.0 + 100.0 if convention == "normalized" else pred
    return {i: pred_f[r, : min(len(t), max_len) - 1] for r, (i, t) in enumerate(zip(ids, temps, strict=True))}


def original_checkpoint(model: ReferenceRoastFormer, config: dict, dims: dict, epochs: int = 3) -> dict:
    """What train_transformer.py's save_checkpoint writes (a real optimizer and scheduler)."""
    opt = torch.optim.AdamW(model.parameters(), lr=config["learning_rate"], weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config["num_epochs"], eta_min=1e-6)
    model.train()
    loss = sum(p.float().pow(2).mean() for p in model.parameters()) * 0.0 + model.output_proj.bias.sum()
    loss.backward()
    opt.step()
    sched.step()
    opt.zero_grad()
    train_losses = [0.9 / (i + 1) for i in range(epochs)]
    val_losses = [1.0 / (i + 1) for i in range(epochs)]
    return {"epoch": epochs, "model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(),
            "scheduler_state_dict": sched.state_dict(), "train_losses": train_losses, "val_losses": val_losses,
            "best_val_loss": min(val_losses), "config": dict(config), "feature_dims": {**dims, "num_continuous": 3}}


def tiny_config(**changes) -> dict:
    """A small config in the research code's keys (argparse names)."""
    config = {"d_model": 32, "nhead": 4, "num_layers": 2, "dim_feedforward": 64, "embed_dim": 8, "dropout": 0.1,
              "positional_encoding": "sinusoidal", "max_sequence_length": 800, "batch_size": 8,
              "num_epochs": 20, "learning_rate": 1e-4, "weight_decay": 0.01, "grad_clip": 1.0,
              "early_stopping_patience": None, "save_every": 10, "device": "cpu",
              "checkpoint_dir": "checkpoints", "results_dir": "results", "preprocessed_dir": "preprocessed_data"}
    config.update(changes)
    return config
