"""The original RoastFormer architecture (`model_type="roastformer_v1"`) and its inputs.

Facts taken from the research code (CKraiss18/roastformer: src/model/transformer_adapter.py,
src/dataset/preprocessed_data_loader*.py); the code here is our own.

Model (AdaptedRoastFormer). Conditioning: embeddings of origin, process, roast level and
variety, a Linear of the flavour multi-hot and a Linear of three continuous features, each of
size embed_dim, concatenated (6 * embed_dim) and projected to d_model. Token t is
temp_embed(T_t) (a Linear from one number), then positions (sinusoidal or learned: added; RoPE:
the token itself is rotated, half-split form, over all of d_model), then the conditioning added.
A post-norm nn.TransformerDecoder (ReLU, causal self-attention) cross-attends to the
conditioning as a one-token memory; a final LayerNorm and a Linear give the next temperature.
Parameter and buffer names are the original's, so an original `model_state_dict` loads with
strict=True.

Cross-attention to ONE memory token has softmax weight 1, so it is the same vector at every
position: out_proj(W_v m + b_v). We compute it once per call instead of attending.

Inputs (the research loaders). Two conventions, tied to the loader each run used:
- "raw": preprocessed_data_loader.py. Temperatures in raw °F. Label encoders fitted on
  train+val metadata CSVs with missing values filled ('Unknown'; roast level 'Medium'); the
  flavour vocabulary from the CSVs' `flavor_notes`; each split's rows looked up in its own CSV.
  Its generate() clamped to [250, 450] °F.
- "normalized": preprocessed_data_loader_NORMALIZED.py. Temperatures (T - 100) / 400; encoders
  fitted on the non-missing CSV values; flavours from the profiles' `flavor_notes_parsed`; rows
  looked up in train+val metadata together. Its generate() clamped to [0, 1] = [100, 500] °F.
Both: categories are LabelEncoder indices (sorted classes; an unseen value maps to 0, which is
also the first class); a roast's row is the first CSV row with its product_name (else defaults
origin/process/variety 'Unknown', roast level 'Medium', target 395); continuous features are
target_finish_temp / 425 (from the row), altitude / 2500 (profile metadata, default 1500) and
bean_density_proxy / 0.80 (default 0.68); flavours are a multi-hot of the profile's
`flavor_notes_parsed`, stripped and lower-cased.

Because those inputs depend on raw package strings our importers canonicalise, `V1Encoder`
keeps the package's encoded inputs per batch id; other roasts (a new request) are encoded from
their ProfileMeta the same way, as closely as canonical metadata allows.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from roastcore.batch import Batch
from roastcore.features import EncodedFeatures, TemperatureScaler
from roastcore.model import KVCache, ModelConfig, RoastModel

log = logging.getLogger(__name__)

MODEL_TYPE = "roastformer_v1"
CONVENTIONS = ("raw", "normalized")
CAT_FIELDS = ("origin", "process", "roast_level", "variety")  # the original's order
RAW_FILL = {"origin": "Unknown", "process": "Unknown", "roast_level": "Medium", "variety": "Unknown"}
DEFAULT_ROW = {"origin": "Unknown", "process": "Unknown", "roast_level": "Medium", "variety": "Unknown",
               "target_finish_temp": 395}
TARGET_SCALE, ALTITUDE_SCALE, DENSITY_SCALE = 425.0, 2500.0, 0.80
TARGET_DEFAULT, ALTITUDE_DEFAULT, DENSITY_DEFAULT = 395.0, 1500.0, 0.68
NORM_MIN_F, NORM_MAX_F = 100.0, 500.0
ORIGINAL_CLAMP_F = {"raw": (250.0, 450.0), "normalized": (NORM_MIN_F, NORM_MAX_F)}
# The research code's defaults for config keys a checkpoint may lack (train_transformer.py).
ORIGINAL_DEFAULTS = {"d_model": 256, "nhead": 8, "num_layers": 6, "dim_feedforward": 1024, "embed_dim": 32,
                     "dropout": 0.1, "positional_encoding": "sinusoidal", "max_sequence_length": 1000}
FEATURE_DIM_KEYS = ("num_origins", "num_processes", "num_roast_levels", "num_varieties", "num_flavors")


def scaler_for(convention: str) -> TemperatureScaler:
    """The temperature convention as a TemperatureScaler: identity (raw °F) or (T - 100) / 400."""
    if convention not in CONVENTIONS:
        raise ValueError(f"temperature convention {convention!r} is not one of {CONVENTIONS}")
    if convention == "raw":
        return TemperatureScaler(enabled=False)
    return TemperatureScaler(enabled=True, center=NORM_MIN_F, scale=NORM_MAX_F - NORM_MIN_F, delta_scale=1.0)


# ----------------------------------------------------------------------------- inputs
@dataclass
class V1Encoder:
    """The original model's inputs: 4 label-encoded categories, a flavour multi-hot, and 3
    scaled continuous features. Duck-types features.FeatureEncoder (encode, encode_profile,
    cat_sizes, n_flavors, n_cont, vocabs, flavor_vocab, cont_mean, to_dict/from_dict)."""

    convention: str
    classes: dict[str, list] = field(default_factory=lambda: {f: [] for f in CAT_FIELDS})
    flavor_vocab: list[str] = field(default_factory=list)
    table: dict[str, dict] = field(default_factory=dict)  # batch id -> {"cat", "flavors", "cont"}
    charge_mean_f: float | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.convention not in CONVENTIONS:
            raise ValueError(f"V1Encoder.convention: {self.convention!r} is not one of {CONVENTIONS}")

    # -- sizes (the checkpoint's feature_dims) ---------------------------------------------
    @property
    def cat_sizes(self) -> list[int]:
        return [len(self.classes[f]) for f in CAT_FIELDS]

    @property
    def n_flavors(self) -> int:
        return len(self.flavor_vocab)

    @property
    def n_cont(self) -> int:
        return 3

    @property
    def feature_dims(self) -> dict[str, int]:
        return dict(zip(FEATURE_DIM_KEYS, [*self.cat_sizes, self.n_flavors], strict=True))

    @property
    def vocabs(self) -> dict[str, list[str]]:
        """Category names for pickers (the dashboard's generation form)."""
        return {**{f: [str(c) for c in self.classes[f]] for f in CAT_FIELDS}, "roaster": []}

    @property
    def cont_mean(self) -> dict[str, float]:
        return {} if self.charge_mean_f is None else {"charge_temp_f": self.charge_mean_f}

    # -- building ----------------------------------------------------------------------
    @classmethod
    def from_package(cls, package, convention: str, frames: dict | None = None) -> V1Encoder:
        """Rebuild the research loader's encoders and every roast's inputs from the package
        (roastcore.io.roastformer_package.RoastformerPackage)."""
        import pandas as pd

        frames = frames if frames is not None else package.require_metadata()
        both = pd.concat([frames["train"], frames["val"]], ignore_index=True)
        classes = {}
        for name in CAT_FIELDS:
            column = both[name].fillna(RAW_FILL[name]) if convention == "raw" else both[name].dropna()
            classes[name] = _label_classes(list(column.unique()), name, package.location.describe())
        if convention == "raw":
            flavors = set()
            for text in both["flavor_notes"].dropna() if "flavor_notes" in both.columns else []:
                if isinstance(text, str):
                    flavors.update(f.strip().lower() for f in text.split(","))
        else:
            flavors = set()
            for roast in package.roasts:
                flavors.update(_profile_flavors(roast.raw, skip_empty=True))
        enc = cls(convention=convention, classes=classes, flavor_vocab=sorted(flavors))
        vocab_index = {f: i for i, f in enumerate(enc.flavor_vocab)}
        defaulted = 0
        charges = []
        for roast in package.roasts:
            meta = roast.raw.get("metadata") if isinstance(roast.raw.get("metadata"), dict) else {}
            lookup = both if convention == "normalized" else frames[roast.split]
            row = _first_row(lookup, meta.get("product_name", "Unknown"))
            cat = [_label_index(row.get(n, meta.get(n, "Unknown")), classes[n]) for n in CAT_FIELDS]
            cont, fixed = _continuous(row.get("target_finish_temp", meta.get("target_finish_temp", 395)),
                                      meta.get("altitude", ALTITUDE_DEFAULT),
                                      meta.get("bean_density_proxy", DENSITY_DEFAULT))
            defaulted += fixed
            hot = sorted({vocab_index[f] for f in _profile_flavors(roast.raw, skip_empty=False) if f in vocab_index})
            enc.table.setdefault(roast.batch_id, {"cat": cat, "flavors": hot, "cont": cont})
            if roast.split == "train":
                charges.append(_first_temp(roast.raw))
        charges = [c for c in charges if c is not None]
        enc.charge_mean_f = float(np.mean(charges)) if charges else None
        if defaulted:
            enc.notes.append(f"{defaulted} roasts have a missing or non-numeric continuous feature the research "
                             "code would have fed as NaN; they get the loader's default instead")
        return enc

    @classmethod
    def from_feature_encoder(cls, encoder, convention: str) -> V1Encoder:
        """The same vocabularies as one of our FeatureEncoders (e.g. experiments' reference
        encoder for parameter counts); roasts are encoded from their ProfileMeta."""
        charge = getattr(encoder, "cont_mean", {}).get("charge_temp_f")
        return cls(convention=convention, classes={n: list(encoder.vocabs.get(n, [])) for n in CAT_FIELDS},
                   flavor_vocab=list(encoder.flavor_vocab), charge_mean_f=charge)

    @classmethod
    def fit(cls, profiles, convention: str = "normalized") -> V1Encoder:
        """Vocabularies from our own profiles' (canonical) metadata, for training the original
        architecture on any dataset; every roast is then encoded from its ProfileMeta."""
        if not profiles:
            raise ValueError("V1Encoder.fit: no profiles to fit on")
        classes = {n: sorted({v for p in profiles if (v := getattr(p.meta, n)) is not None}) for n in CAT_FIELDS}
        flavors = sorted({f.strip().lower() for p in profiles for f in p.meta.flavors if f.strip()})
        return cls(convention=convention, classes=classes, flavor_vocab=flavors,
                   charge_mean_f=float(np.mean([p.charge_f for p in profiles])))

    # -- encoding ----------------------------------------------------------------------
    def encode(self, meta, duration_s: float | None = None) -> EncodedFeatures:
        """The inputs of one roast: the package's own when its batch id is known, else from meta."""
        row = self.table.get(meta.batch_id) if meta.batch_id else None
        if row is None:
            row = self._from_meta(meta)
        flavors = np.zeros(self.n_flavors, dtype=np.float32)
        flavors[list(row["flavors"])] = 1.0
        return EncodedFeatures(cat=np.asarray(row["cat"], dtype=np.int64), flavors=flavors,
                               cont=np.asarray(row["cont"], dtype=np.float32))

    def encode_profile(self, profile) -> EncodedFeatures:
        return self.encode(profile.meta, profile.duration_s)

    def _from_meta(self, meta) -> dict:
        cat = []
        for name in CAT_FIELDS:
            value = getattr(meta, name)
            folded = [" ".join(str(c).split()).lower() for c in self.classes[name]]
            key = None if value is None else " ".join(str(value).split()).lower()
            cat.append(self.classes[name].index(value) if value in self.classes[name]
                       else folded.index(key) if key in folded else 0)
        density = DENSITY_DEFAULT if meta.density is None else meta.density / 1000.0  # g/l -> the proxy's g/ml
        cont = [(meta.target_finish_f or TARGET_DEFAULT) / TARGET_SCALE,
                (meta.altitude_m or ALTITUDE_DEFAULT) / ALTITUDE_SCALE, density / DENSITY_SCALE]
        index = {f: i for i, f in enumerate(self.flavor_vocab)}
        return {"cat": cat, "flavors": sorted({index[f.lower()] for f in meta.flavors if f.lower() in index}),
                "cont": cont}

    # -- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"kind": MODEL_TYPE, "convention": self.convention, "classes": self.classes,
                "flavor_vocab": self.flavor_vocab, "table": self.table, "charge_mean_f": self.charge_mean_f,
                "notes": self.notes}

    @classmethod
    def from_dict(cls, d: dict) -> V1Encoder:
        try:
            if d.get("kind") != MODEL_TYPE:
                raise ValueError(f"kind is {d.get('kind')!r}, not {MODEL_TYPE!r}")
            table = {str(k): {"cat": [int(x) for x in v["cat"]], "flavors": [int(x) for x in v["flavors"]],
                              "cont": [float(x) for x in v["cont"]]} for k, v in d["table"].items()}
            charge = d.get("charge_mean_f")
            return cls(convention=d["convention"], classes={n: list(d["classes"][n]) for n in CAT_FIELDS},
                       flavor_vocab=[str(f) for f in d["flavor_vocab"]], table=table,
                       charge_mean_f=None if charge is None else float(charge), notes=list(d.get("notes", [])))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"roastformer_v1 encoder JSON is malformed: {exc!r}") from None


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _label_classes(values: list, name: str, where: str) -> list:
    """sklearn LabelEncoder's classes_: the sorted distinct values (numbers or strings)."""
    values = [_plain(v) for v in values]
    try:
        return sorted(set(values))
    except TypeError:
        raise ValueError(f"{where}: metadata column {name!r} mixes numbers and text; the research code's "
                         "LabelEncoder cannot fit it either") from None


def _label_index(value, classes: list) -> int:
    value = _plain(value)
    if isinstance(value, float) and math.isnan(value):
        return 0
    try:
        return classes.index(value) if value in classes else 0
    except TypeError:
        return 0


def _first_row(frame, product_name):
    """The first metadata row whose product_name equals the profile's, else the loader's defaults."""
    try:
        matching = frame[frame["product_name"] == product_name]
    except (TypeError, ValueError):
        matching = frame.iloc[0:0]
    return DEFAULT_ROW if matching.empty else matching.iloc[0]


def _continuous(target, altitude, density) -> tuple[list[float], int]:
    """The three scaled continuous features, and 1 when one fell back from NaN to its default."""
    try:
        target = float(target) if target else TARGET_DEFAULT  # NaN is truthy: the research code kept it
    except (ValueError, TypeError):
        target = TARGET_DEFAULT
    values = [target]
    for value, default in ((altitude, ALTITUDE_DEFAULT), (density, DENSITY_DEFAULT)):
        if _missing(value):
            value = default
        try:
            value = float(value)
        except (ValueError, TypeError):
            value = default
        values.append(value)
    out, fixed = [], 0
    for value, default, scale in zip(values, (TARGET_DEFAULT, ALTITUDE_DEFAULT, DENSITY_DEFAULT),
                                     (TARGET_SCALE, ALTITUDE_SCALE, DENSITY_SCALE), strict=True):
        if not math.isfinite(value):  # the research code fed NaN here, and its loss went NaN
            value, fixed = default, 1
        out.append(value / scale)
    return out, fixed


def _missing(value) -> bool:
    """pd.isna for one value, or '' (the loaders' defaults apply); containers count as missing."""
    if value is None or isinstance(value, (list, dict, tuple)) or (isinstance(value, str) and value == ""):
        return True
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return True


def _profile_flavors(raw: dict, skip_empty: bool) -> list[str]:
    meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    notes = meta.get("flavor_notes_parsed", [])
    if isinstance(notes, list):
        items = [f for f in notes if isinstance(f, str)]
    elif isinstance(notes, str):
        items = notes.split(",")
    else:
        items = []
    out = [f.strip().lower() for f in items]
    return [f for f in out if f] if skip_empty else out


def _first_temp(raw: dict) -> float | None:
    try:
        return float(raw["roast_profile"]["bean_temp"][0]["value"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------- modules (original names)
class ConditioningModule(nn.Module):
    """origin/process/roast_level/variety embeddings, flavor_proj, continuous_proj -> [B, 6E]."""

    def __init__(self, cat_sizes: list[int], n_flavors: int, embed_dim: int):
        super().__init__()
        self.origin_embed = nn.Embedding(cat_sizes[0], embed_dim)
        self.process_embed = nn.Embedding(cat_sizes[1], embed_dim)
        self.roast_level_embed = nn.Embedding(cat_sizes[2], embed_dim)
        self.variety_embed = nn.Embedding(cat_sizes[3], embed_dim)
        self.flavor_proj = nn.Linear(n_flavors, embed_dim)
        self.continuous_proj = nn.Linear(3, embed_dim)
        self.condition_dim = 6 * embed_dim

    def forward(self, batch: Batch, use_flavors: bool = True) -> torch.Tensor:
        cat = batch.cat
        flavors = batch.flavors if use_flavors else torch.zeros_like(batch.flavors)  # an all-empty multi-hot
        return torch.cat((self.origin_embed(cat[:, 0]), self.process_embed(cat[:, 1]),
                          self.roast_level_embed(cat[:, 2]), self.variety_embed(cat[:, 3]),
                          self.flavor_proj(flavors), self.continuous_proj(batch.cont)), dim=-1)


class Positions(nn.Module):
    """The original's positional encodings, with its buffer names (all persistent)."""

    def __init__(self, kind: str, d_model: int, max_len: int):
        super().__init__()
        self.kind = kind
        if kind == "sinusoidal":
            pe = torch.zeros(max_len, d_model)
            position = torch.arange(max_len, dtype=torch.float32)[:, None]
            div = torch.exp(torch.arange(0, d_model, 2).float() * (-torch.log(torch.tensor(10000.0)) / d_model))
            pe[:, 0::2] = torch.sin(position * div)
            pe[:, 1::2] = torch.cos(position * div)
            self.register_buffer("pe", pe)
        elif kind == "learned":
            self.pos_embedding = nn.Embedding(max_len, d_model)
        else:  # rope: rotates the token embedding itself, half-split pairs over all of d_model
            inv_freq = 1.0 / (10000.0 ** (torch.arange(0, d_model, 2).float() / d_model))
            angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
            self.register_buffer("inv_freq", inv_freq)
            self.register_buffer("cos_cached", torch.cat((angles.cos(), angles.cos()), dim=-1))
            self.register_buffer("sin_cached", torch.cat((angles.sin(), angles.sin()), dim=-1))

    def forward(self, x: torch.Tensor, start_pos: int) -> torch.Tensor:  # [B, T, D]
        T = x.shape[1]
        if self.kind == "sinusoidal":
            return x + self.pe[start_pos:start_pos + T]
        if self.kind == "learned":
            return x + self.pos_embedding(torch.arange(start_pos, start_pos + T, device=x.device))
        cos, sin = self.cos_cached[start_pos:start_pos + T], self.sin_cached[start_pos:start_pos + T]
        x1, x2 = x.chunk(2, dim=-1)
        return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class MultiheadAttention(nn.Module):
    """nn.MultiheadAttention's parameters (in_proj_weight/bias, out_proj), our own forward."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)  # as torch initialises it
        nn.init.zeros_(self.out_proj.bias)

    def causal(self, x: torch.Tensor, start_pos: int, cache: KVCache | None) -> torch.Tensor:
        B, T, D = x.shape
        H = self.n_heads
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).split(D, dim=-1)
        q, k, v = (z.view(B, T, H, D // H).transpose(1, 2) for z in (q, k, v))  # [B, H, T, Hd]
        if cache is not None:
            k, v = cache.append(k, v)
        S = k.shape[2]
        p = self.dropout if self.training else 0.0  # torch drops attention weights in training
        if T == S:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:  # positions after cached ones: query i (at start_pos + i) sees keys <= start_pos + i
            allowed = torch.arange(S, device=x.device)[None, :] <= (start_pos + torch.arange(T, device=x.device))[:, None]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, D))

    def to_one_token(self, memory: torch.Tensor, T: int) -> torch.Tensor:
        """Cross-attention to a single memory token [B, D]: its value, the same at every query."""
        B, D = memory.shape
        v = F.linear(memory, self.in_proj_weight[2 * D:], self.in_proj_bias[2 * D:])  # [B, D]
        if self.training and self.dropout:  # dropout on the (all-ones) attention weights, per head
            H = self.n_heads
            keep = F.dropout(torch.ones(B, T, H, 1, device=memory.device, dtype=v.dtype), self.dropout, True)
            return self.out_proj((v.view(B, 1, H, D // H) * keep).reshape(B, T, D))
        return self.out_proj(v)[:, None, :]


class DecoderLayer(nn.Module):
    """nn.TransformerDecoderLayer's parameters and math: post-norm, ReLU feed-forward."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, n_heads, dropout)
        self.multihead_attn = MultiheadAttention(d_model, n_heads, dropout)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.dropout = dropout

    def _drop(self, x):
        return F.dropout(x, self.dropout, True) if self.training and self.dropout else x

    def forward(self, x, memory, start_pos, cache):
        x = self.norm1(x + self._drop(self.self_attn.causal(x, start_pos, cache)))
        x = self.norm2(x + self._drop(self.multihead_attn.to_one_token(memory, x.shape[1])))
        return self.norm3(x + self._drop(self.linear2(self._drop(F.relu(self.linear1(x))))))


class Decoder(nn.Module):
    """Holds `layers` like nn.TransformerDecoder (norm=None), which deep-copies ONE initialised
    layer: every layer starts with the same weights, as in the research code."""

    def __init__(self, layer: DecoderLayer, n_layers: int):
        super().__init__()
        import copy

        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(n_layers))


# ----------------------------------------------------------------------------- the model
class RoastFormerV1(RoastModel):
    """AdaptedRoastFormer behind our RoastModel interface (teacher forcing, generate with
    raw/clamped, rollout, evaluation, export). Its state dict is the original's."""

    def __init__(self, cfg: ModelConfig, encoder: V1Encoder, scaler: TemperatureScaler):
        nn.Module.__init__(self)  # not RoastModel.__init__: the original has none of our layers
        convention = "normalized" if cfg.normalize else "raw"
        if not isinstance(encoder, V1Encoder):  # e.g. a FeatureEncoder for counting parameters
            encoder = V1Encoder.from_feature_encoder(encoder, convention)
        _check_config(cfg, encoder, scaler)
        self.config = cfg
        self.encoder = encoder
        # The research code's fixed conventions, whatever scaler was fitted: raw °F or (T-100)/400.
        self.scaler = scaler_for(convention)
        self.prior_library = None
        self.n_inputs = 1
        self.conditioning_module = ConditioningModule(encoder.cat_sizes, encoder.n_flavors, cfg.embed_dim)
        self.condition_proj = nn.Linear(self.conditioning_module.condition_dim, cfg.d_model)
        self.temp_embed = nn.Linear(1, cfg.d_model)
        self.pos_encoding = Positions(cfg.pos_encoding, cfg.d_model, cfg.max_len)
        self.transformer = Decoder(DecoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout), cfg.n_layers)
        self.output_proj = nn.Linear(cfg.d_model, 1)
        self.layer_norm = nn.LayerNorm(cfg.d_model)

    def conditioning(self, batch: Batch) -> torch.Tensor:
        """[B, D]: added to every token and the decoder's one-token memory."""
        return self.condition_proj(self.conditioning_module(batch, self.config.use_flavors))

    def new_state(self, batch_size, capacity):
        return [KVCache(capacity) for _ in self.transformer.layers]

    def _units(self, inputs_f, start_pos, cond, lengths, state, prior_f=None) -> torch.Tensor:
        """[B, T] °F -> [B, T] outputs in the convention's units (output t predicts step t+1)."""
        x = self.temp_embed(self.scaler.encode(inputs_f)[..., None])
        x = self.pos_encoding(x, start_pos) + cond[:, None, :]
        for layer, cache in zip(self.transformer.layers, state, strict=True):
            x = layer(x, cond, start_pos, cache)
        return self.output_proj(self.layer_norm(x)).squeeze(-1)

    def _core(self, tokens, start_pos, cond, state):  # not used: _units is the whole network
        raise NotImplementedError


def _check_config(cfg: ModelConfig, encoder: V1Encoder, scaler: TemperatureScaler) -> None:
    def bad(name, why):
        raise ValueError(f"ModelConfig.{name}: {getattr(cfg, name)!r} {why} (model_type {MODEL_TYPE!r})")

    if cfg.d_model % cfg.n_heads:
        bad("n_heads", f"must divide d_model={cfg.d_model}")
    if cfg.pos_encoding in ("sinusoidal", "rope") and cfg.d_model % 2:
        bad("d_model", f"must be even for {cfg.pos_encoding} positions")
    for name, want in (("target_mode", "absolute"), ("prior", "none"), ("time_conditioning", False),
                       ("use_categoricals", True), ("step_s", 1.0)):
        if getattr(cfg, name) != want:
            bad(name, f"is not supported; the original architecture has {name}={want!r}")
    if scaler.enabled != cfg.normalize:
        raise ValueError(f"scaler.enabled={scaler.enabled} contradicts ModelConfig.normalize={cfg.normalize}")
    if encoder.convention != ("normalized" if cfg.normalize else "raw"):
        raise ValueError(f"model_type {MODEL_TYPE!r}: encoder convention {encoder.convention!r} contradicts "
                         f"ModelConfig.normalize={cfg.normalize}")


def fit_inputs(cfg: ModelConfig, train_profiles) -> tuple[V1Encoder, TemperatureScaler]:
    """The encoder and temperature convention for training the original architecture here:
    vocabularies from the training profiles, raw °F (normalize=False) or (T-100)/400."""
    convention = "normalized" if cfg.normalize else "raw"
    return V1Encoder.fit(train_profiles, convention), scaler_for(convention)


def model_config(original: dict, convention: str, dropout: float | None = None) -> ModelConfig:
    """Our ModelConfig for an original checkpoint's `config` (its defaults where keys are missing)."""
    c = {**ORIGINAL_DEFAULTS, **{k: v for k, v in original.items() if k in ORIGINAL_DEFAULTS and v is not None}}
    return ModelConfig(model_type=MODEL_TYPE, d_model=c["d_model"], n_layers=c["num_layers"], n_heads=c["nhead"],
                       d_ff=c["dim_feedforward"], embed_dim=c["embed_dim"],
                       dropout=c["dropout"] if dropout is None else dropout,
                       pos_encoding=c["positional_encoding"], normalize=convention == "normalized",
                       target_mode="absolute", step_s=1.0, max_len=c["max_sequence_length"])
