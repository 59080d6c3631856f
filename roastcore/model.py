"""Autoregressive roast-curve models: a decoder-only transformer (RoastFormer) and a GRU.

Read top to bottom: ModelConfig, conditioning, transformer blocks, the shared model base
(inputs, losses, teacher forcing, generation, differentiable rollout), the two models, and
`architectures.build_model` (which also knows roastformer_v1). Shapes: B batch rows, L sequence length (steps at `step_s`), T tokens in one
call, D d_model, H heads, Hd head size.

Token t carries the scaled temperature T_t (and, with `time_conditioning`, the fraction of the
roast elapsed t/(n-1), known because the requested length n is given). Output t predicts
T_{t+1}: absolute (scaler.encode(T_{t+1})) or residual (scaler.encode_delta(T_{t+1} - T_t)).

With `prior='aligned_knn'` (roastcore.prior) every batch also carries the aligned-kNN curve P
for the same request; token t adds z(P_t), z(P_{t+1}) and the scaled gap P_{t+1} - T_t, and the
residual output corrects the prior's own step: T_{t+1} = T_t + (P_{t+1} - P_t) + delta. The head
starts at zero, so an untrained prior model reproduces the aligned kNN exactly.
The bean's conditioning vector (categoricals, flavours, continuous features incl. charge temp
and target duration) is ADDED to every token rather than prepended as a prefix token: it keeps
positions aligned with time steps, and the GRU and the KV cache need no special first step.

The TemperatureScaler lives inside the model, so callers pass and receive °F. With
`normalize=False` the scaler is the identity: raw °F in and out, which reproduces the prior
work's collapse (pre-LN normalises a ~400 °F input direction away, so every step looks alike).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from roastcore.batch import STEP_CHOICES_S, Batch
from roastcore.dataset import RoastDataset
from roastcore.features import FeatureEncoder, TemperatureScaler
from roastcore.fsutil import dataclass_from_dict

MODEL_TYPES = ("transformer", "gru", "roastformer_v1")  # v1: roastcore.roastformer_v1
POS_ENCODINGS = ("sinusoidal", "learned", "rope")
TARGET_MODES = ("absolute", "residual")
PRIORS = ("none", "aligned_knn")
DEFAULT_CLAMP_F = (100.0, 500.0)

# Resource caps: a config typo must not start a 10B-parameter run on a laptop.
MAX_D_MODEL = 1024
MAX_LAYERS = 24
MAX_HEADS = 64
MAX_D_FF = 8192
MAX_EMBED_DIM = 256
MAX_LEN = 4096
MAX_PARAMS = 50_000_000


# ----------------------------------------------------------------------------- config
@dataclass
class ModelConfig:
    model_type: str = "transformer"
    d_model: int = 256
    n_layers: int = 6
    n_heads: int = 8
    d_ff: int = 1024
    embed_dim: int = 32  # size of each categorical / flavour embedding
    dropout: float = 0.1
    pos_encoding: str = "sinusoidal"
    use_flavors: bool = True
    normalize: bool = True  # False: raw °F in and out (the collapse)
    target_mode: str = "absolute"
    step_s: float = 1.0
    max_len: int = 800  # steps at step_s; longer roasts are truncated by the dataset
    time_conditioning: bool = False  # feed t/(n-1) with every token
    prior: str = "none"  # "aligned_knn": correct the aligned-kNN curve (roastcore.prior)
    use_categoricals: bool = True  # False: condition on continuous features (and flavours) only

    def __post_init__(self):
        def bad(name, why):
            raise ValueError(f"ModelConfig.{name}: {getattr(self, name)!r} {why}")

        if self.model_type not in MODEL_TYPES:
            bad("model_type", f"is not one of {MODEL_TYPES}")
        if self.pos_encoding not in POS_ENCODINGS:
            bad("pos_encoding", f"is not one of {POS_ENCODINGS}")
        if self.target_mode not in TARGET_MODES:
            bad("target_mode", f"is not one of {TARGET_MODES}")
        if self.prior not in PRIORS:
            bad("prior", f"is not one of {PRIORS}")
        if self.prior != "none" and self.target_mode != "residual":
            bad("prior", "needs target_mode='residual' (the model corrects the prior's step)")
        for name, cap in (("d_model", MAX_D_MODEL), ("n_layers", MAX_LAYERS), ("n_heads", MAX_HEADS),
                          ("d_ff", MAX_D_FF), ("embed_dim", MAX_EMBED_DIM), ("max_len", MAX_LEN)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                bad(name, "must be an integer")
            if not 1 <= value <= cap:
                bad(name, f"must be in 1..{cap}")
        if self.max_len < 2:
            bad("max_len", "must be at least 2 (one input and one target)")
        if self.model_type == "transformer":
            if self.d_model % self.n_heads:
                bad("n_heads", f"must divide d_model={self.d_model}")
            if self.pos_encoding == "rope" and (self.d_model // self.n_heads) % 2:
                bad("n_heads", f"gives an odd head size {self.d_model // self.n_heads}; RoPE needs it even")
        if not 0.0 <= float(self.dropout) < 1.0:
            bad("dropout", "must be in [0, 1)")
        self.dropout = float(self.dropout)
        if float(self.step_s) not in STEP_CHOICES_S:
            bad("step_s", f"must be one of {STEP_CHOICES_S}")
        self.step_s = float(self.step_s)
        for name in ("use_flavors", "normalize", "time_conditioning", "use_categoricals"):
            if not isinstance(getattr(self, name), bool):
                bad(name, "must be true or false")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        return dataclass_from_dict(cls, d, "model")


@dataclass
class Generation:
    """A free-running generation in °F at the model's step_s, padded past each row's length
    with that row's last value (use `lengths` or a mask)."""

    raw_f: torch.Tensor  # [B, Lmax] what the model said, before clamping
    clamped_f: torch.Tensor  # [B, Lmax] what was fed back (the generated curve)
    clamp_active: torch.Tensor  # [B, Lmax] bool, the clamp changed the value at this step
    lengths: torch.Tensor  # [B]


@dataclass
class Rollout:
    """A differentiable free run: what was fed at each step and what the model answered."""

    inputs_f: torch.Tensor  # [B, L] °F fed at each step (real prefix, then own outputs)
    units: torch.Tensor  # [B, L-1] model-unit outputs, output t predicts step t+1
    pred_f: torch.Tensor  # [B, L] °F predictions (raw), real values on the prefix


# ----------------------------------------------------------------------------- conditioning
class Conditioning(nn.Module):
    """Bean metadata -> one [B, D] vector: categorical embeddings (slot 0 = unknown), a
    flavour projection of the multi-hot vector, and the continuous features."""

    def __init__(self, cfg: ModelConfig, cat_sizes: list[int], n_flavors: int, n_cont: int):
        super().__init__()
        # Few products and many rare categories: a small model may do better without them.
        self.cat_embeddings = nn.ModuleList(nn.Embedding(size, cfg.embed_dim)
                                            for size in (cat_sizes if cfg.use_categoricals else []))
        self.flavor_proj = (nn.Linear(n_flavors, cfg.embed_dim, bias=False)
                            if cfg.use_flavors and n_flavors > 0 else None)
        in_dim = cfg.embed_dim * len(self.cat_embeddings) + (cfg.embed_dim if self.flavor_proj else 0) + n_cont
        self.mlp = nn.Sequential(nn.Linear(in_dim, cfg.d_model), nn.GELU(), nn.Linear(cfg.d_model, cfg.d_model))

    def forward(self, batch: Batch) -> torch.Tensor:
        parts = [emb(batch.cat[:, i]) for i, emb in enumerate(self.cat_embeddings)]  # each [B, E]
        if self.flavor_proj is not None:
            parts.append(self.flavor_proj(batch.flavors))  # [B, E]
        parts.append(batch.cont)  # [B, n_cont]
        return self.mlp(torch.cat(parts, dim=-1))  # [B, D]


# ----------------------------------------------------------------------------- transformer blocks
def sinusoidal_table(max_len: int, d_model: int) -> torch.Tensor:
    """[max_len, D] the classic sin/cos position table (Vaswani et al.)."""
    position = torch.arange(max_len, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div)[:, : d_model // 2]
    return table


def rope_tables(max_len: int, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin: [max_len, Hd/2] rotary angles (Su et al. 2021)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate [B, H, T, Hd] by the angles of its T positions (cos/sin [T, Hd/2]), half-split form."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class KVCache:
    """Keys and values of the positions seen so far, for one layer.

    Generation (no grad) writes into a preallocated buffer, O(L) copying in all. Rollout
    training (grad) concatenates instead, because in-place writes would break autograd; that
    keeps O(L^2) activations for the transformer, so prefer coarse steps for rollout losses.
    """

    def __init__(self, capacity: int | None = None):
        self.capacity = capacity
        self.k = self.v = None  # [B, H, S, Hd]
        self.size = 0

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = k.shape[2]
        if self.capacity is not None and not torch.is_grad_enabled():
            if self.k is None:
                shape = (k.shape[0], k.shape[1], self.capacity, k.shape[3])
                self.k, self.v = k.new_empty(shape), v.new_empty(shape)
            self.k[:, :, self.size:self.size + t] = k
            self.v[:, :, self.size:self.size + t] = v
            self.size += t
            return self.k[:, :, :self.size], self.v[:, :, :self.size]
        self.k = k if self.k is None else torch.cat((self.k, k), dim=2)
        self.v = v if self.v is None else torch.cat((self.v, v), dim=2)
        self.size += t
        return self.k, self.v


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, start_pos: int, cache: KVCache | None,
                rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=2)
        q, k, v = (z.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2) for z in (q, k, v))  # [B,H,T,Hd]
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:
            k, v = cache.append(k, v)  # [B, H, S, Hd], S = start_pos + T
        S = k.shape[2]
        # No dropout on the attention weights: it forces SDPA's math kernel on CPU, which
        # materialises B*H*L^2 random masks (6x slower training at L=700). Dropout on the
        # embeddings, this output and the MLP output regularises instead.
        if T == S:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif T == 1:
            y = F.scaled_dot_product_attention(q, k, v)  # the newest token sees everything
        else:  # a chunk after cached positions: query i (at start_pos + i) sees keys <= start_pos + i
            allowed = torch.arange(S, device=x.device)[None, :] <= (start_pos + torch.arange(T, device=x.device))[:, None]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        y = self.proj(y.transpose(1, 2).contiguous().view(B, T, D))
        return F.dropout(y, self.dropout, training=True) if self.training and self.dropout else y


class Block(nn.Module):
    """Pre-LN transformer block. Dropout is skipped outright in eval mode: generation makes
    one call per token, so every avoided module call counts."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.fc1 = nn.Linear(cfg.d_model, cfg.d_ff)
        self.fc2 = nn.Linear(cfg.d_ff, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x, start_pos, cache, rope):
        x = x + self.attn(self.ln1(x), start_pos, cache, rope)
        h = self.fc2(F.gelu(self.fc1(self.ln2(x))))
        if self.training and self.dropout:
            h = F.dropout(h, self.dropout, training=True)
        return x + h

    def step_fn(self, cache: KVCache, rope_tables: tuple[torch.Tensor, torch.Tensor] | None):
        """`forward` for ONE new token in eval mode, fused: a function (x [B, D], t) -> [B, D].

        Generation makes one call per token per layer; at batch 1 that is ~15 tiny ops, so
        dispatch overhead is the whole cost. This path uses plain tensor ops on weights
        transposed once for addmm, writes straight into the cache's preallocated buffers, and
        skips module calls and dropout. It must match `forward` to float rounding
        (tests/test_model.py holds generation to a full re-forward).
        """
        D, H = self.ln1.normalized_shape[0], self.attn.n_heads
        Hd = D // H
        shape = (D,)
        t_ = lambda w: w.t().contiguous()  # noqa: E731 - addmm wants [in, out]
        ln1_w, ln1_b, ln1_eps = self.ln1.weight, self.ln1.bias, self.ln1.eps
        qkv_w, qkv_b = t_(self.attn.qkv.weight), self.attn.qkv.bias
        proj_w, proj_b = t_(self.attn.proj.weight), self.attn.proj.bias
        ln2_w, ln2_b, ln2_eps = self.ln2.weight, self.ln2.bias, self.ln2.eps
        fc1_w, fc1_b, fc2_w, fc2_b = t_(self.fc1.weight), self.fc1.bias, t_(self.fc2.weight), self.fc2.bias
        keys, values = cache.k, cache.v  # [B, H, Lmax, Hd], filled up to t by the prefix

        def step(x: torch.Tensor, t: int) -> torch.Tensor:
            B = x.shape[0]
            h = torch.layer_norm(x, shape, ln1_w, ln1_b, ln1_eps)
            q, k, v = torch.addmm(qkv_b, h, qkv_w).view(B, 3, H, Hd).unbind(1)  # [B, H, Hd]
            if rope_tables is not None:
                cos, sin = rope_tables[0][t], rope_tables[1][t]
                q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            keys.select(2, t).copy_(k)
            values.select(2, t).copy_(v)
            y = F.scaled_dot_product_attention(q.unsqueeze(2), keys.narrow(2, 0, t + 1),
                                               values.narrow(2, 0, t + 1))  # [B, H, 1, Hd]
            x = torch.addmm(x + proj_b, y.view(B, D), proj_w)
            h = torch.addmm(fc1_b, torch.layer_norm(x, shape, ln2_w, ln2_b, ln2_eps), fc1_w)
            return torch.addmm(x + fc2_b, torch.special.ndtr(h) * h, fc2_w)  # exact GELU: x * Phi(x)

        return step


# ----------------------------------------------------------------------------- shared model base
class RoastModel(nn.Module):
    """Everything the transformer and the GRU share. A subclass supplies `_core`, the sequence
    network from tokens to hidden states, and `new_state`, its incremental state."""

    steps_sequentially = False  # True: its training runs step by step (small ops, few threads)

    def __init__(self, cfg: ModelConfig, encoder: FeatureEncoder, scaler: TemperatureScaler):
        super().__init__()
        if scaler.enabled != cfg.normalize:
            raise ValueError(f"scaler.enabled={scaler.enabled} contradicts ModelConfig.normalize={cfg.normalize}")
        self.config = cfg
        self.encoder = encoder
        self.scaler = TemperatureScaler.from_dict(scaler.to_dict())  # our own copy of its floats
        self.conditioning = Conditioning(cfg, encoder.cat_sizes, encoder.n_flavors, encoder.n_cont)
        self.n_inputs = 1 + int(cfg.time_conditioning) + (3 if cfg.prior != "none" else 0)
        self.input_proj = nn.Linear(self.n_inputs, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, 1)
        self.prior_library = None  # prior.PriorLibrary for prior models; set by the trainer / load_run
        # The prior a forecast from a prefix corrects: "run" (its aligned kNN), or "prefix_knn" for
        # a run trained for it (preset `forecast`; set by its stage / load_run from manifest.json).
        self.forecast_prior = "run"
        self._trained_head = None  # (weight, bias) before scale_correction

    def _init_weights(self):
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        if self.config.prior != "none":  # untrained = the prior itself; training learns corrections
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    # -- tokens and units --------------------------------------------------------------
    def _features(self, inputs_f: torch.Tensor, start_pos: int, lengths: torch.Tensor,
                  prior_f: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T] °F at positions start_pos.. -> [B, T, n_inputs] per-step input features:
        z(T_t), then [t/(n-1)], then [z(P_t), z(P_{t+1}), the scaled gap P_{t+1} - T_t]."""
        feats = self.scaler.encode(inputs_f)[..., None]  # [B, T, 1]
        pos = torch.arange(start_pos, start_pos + inputs_f.shape[1], device=inputs_f.device)
        if self.config.time_conditioning:
            frac = pos[None, :] / (lengths[:, None] - 1).clamp(min=1)  # [B, T]
            feats = torch.cat((feats, frac.clamp(0.0, 1.0).to(feats.dtype)[..., None]), dim=-1)
        if self.config.prior != "none":
            last = prior_f.shape[1] - 1
            p_now, p_next = prior_f[:, pos.clamp(max=last)], prior_f[:, (pos + 1).clamp(max=last)]  # [B, T]
            extra = torch.stack((self.scaler.encode(p_now), self.scaler.encode(p_next),
                                 self.scaler.encode_delta(p_next - inputs_f)), dim=-1)
            feats = torch.cat((feats, extra.to(feats.dtype)), dim=-1)
        return feats

    def _tokens(self, inputs_f: torch.Tensor, start_pos: int, cond: torch.Tensor,
                lengths: torch.Tensor, prior_f: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T] °F at positions start_pos.. -> [B, T, D] tokens (temperature + conditioning)."""
        return self.input_proj(self._features(inputs_f, start_pos, lengths, prior_f)) + cond[:, None, :]

    def _units(self, inputs_f, start_pos, cond, lengths, state, prior_f=None) -> torch.Tensor:
        """[B, T] °F inputs -> [B, T] model-unit outputs (output t predicts step t+1)."""
        h = self._core(self._tokens(inputs_f, start_pos, cond, lengths, prior_f), start_pos, cond, state)
        return self.head(self.ln_f(h)).squeeze(-1)

    def _token_parts(self, cond: torch.Tensor, lengths: torch.Tensor, prior_f: torch.Tensor | None,
                     l_max: int) -> tuple[torch.Tensor, torch.Tensor]:
        """For the fused generation steps: tokens are linear in the features, so the token at
        step t is base[:, t] + T_t * w_eff. Returns base [B, L, D] (no positions) and w_eff [D]:
        every step's features projected once with the temperature-dependent columns (z(T) and
        the prior gap) zeroed, their weights folded into w_eff."""
        B = cond.shape[0]
        static = self._features(torch.zeros(B, l_max, device=cond.device), 0, lengths, prior_f)  # [B, L, n_in]
        static[..., 0] = 0.0
        if prior_f is not None:
            static[..., -1] = 0.0
        base = self.input_proj(static) + cond[:, None, :]  # [B, L, D]
        # With z(T) = (T - c)/s and the gap (P_{t+1} - T)/ds, a token is base'[t] + T * w_eff.
        sc = self.scaler
        w_eff = self.input_proj.weight[:, 0] / sc.scale  # [D]
        base = base - (sc.center / sc.scale) * self.input_proj.weight[:, 0]
        if prior_f is not None:
            w_gap = self.input_proj.weight[:, -1]  # [D]
            p_next = torch.cat((prior_f[:, 1:l_max], prior_f[:, l_max - 1:l_max]), 1)  # [B, L] P_{t+1}
            base = base + (p_next / sc.delta_scale)[..., None] * w_gap
            w_eff = w_eff - w_gap / sc.delta_scale
        return base, w_eff

    def _fused_head(self):
        """ln_f and the head as one function [B, D] -> [B] model units, for the fused steps."""
        ln_w, ln_b, ln_eps = self.ln_f.weight, self.ln_f.bias, self.ln_f.eps
        head_w, head_b = self.head.weight.t().contiguous(), self.head.bias
        shape = (self.config.d_model,)
        return lambda x: torch.addmm(head_b, torch.layer_norm(x, shape, ln_w, ln_b, ln_eps), head_w)[:, 0]

    def batch_prior(self, batch: Batch) -> torch.Tensor | None:
        """The batch's prior [B, L] °F for a prior model (an error when missing), else None."""
        if self.config.prior == "none":
            return None
        if batch.prior_f is None:
            raise ValueError("this model corrects an aligned-kNN prior: build its batches with "
                             "RoastDataset(..., prior=model.prior_library) or model.make_batch")
        return batch.prior_f

    def prior_delta(self, batch: Batch) -> torch.Tensor | None:
        """[B, L-1] the prior's own step P_{t+1} - P_t (None without a prior)."""
        prior = self.batch_prior(batch)
        return None if prior is None else prior[:, 1:] - prior[:, :-1]

    def units_to_f(self, units: torch.Tensor, inputs_f: torch.Tensor,
                   prior_step: torch.Tensor | None = None) -> torch.Tensor:
        """Model outputs -> predicted next temperature in °F (inputs_f: the step fed, same shape;
        prior_step: the prior's step P_{t+1} - P_t, for prior models)."""
        units = units.float()
        if self.config.target_mode == "residual":
            out = inputs_f + self.scaler.decode_delta(units)
            return out if prior_step is None else out + prior_step
        return self.scaler.decode(units)

    def targets(self, batch: Batch, inputs_f: torch.Tensor | None = None) -> torch.Tensor:
        """[B, L-1] model-unit targets for outputs 0..L-2. Residual targets are measured from
        the value actually fed (noisy or self-generated), so the model learns to steer back."""
        real = batch.temps_f
        fed = real if inputs_f is None else inputs_f
        if self.config.target_mode == "residual":
            delta = real[:, 1:] - fed[:, :-1]
            step = self.prior_delta(batch)
            return self.scaler.encode_delta(delta if step is None else delta - step)
        return self.scaler.encode(real[:, 1:])

    # -- teacher forcing -----------------------------------------------------------------
    def forward(self, batch: Batch, inputs_f: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing: inputs 0..L-2 (real, or `inputs_f` [B, L] °F) -> [B, L-1] model units."""
        fed = batch.temps_f if inputs_f is None else inputs_f
        self._check_length(fed.shape[1])
        cond = self.conditioning(batch)
        return self._units(fed[:, :-1], 0, cond, batch.lengths, self.new_state(fed.shape[0], None),
                           self.batch_prior(batch))

    def predict_next_f(self, batch: Batch, inputs_f: torch.Tensor | None = None) -> torch.Tensor:
        """[B, L-1] °F: the prediction for steps 1..L-1, each from the real (or given) past."""
        fed = batch.temps_f if inputs_f is None else inputs_f
        return self.units_to_f(self(batch, inputs_f), fed[:, :-1], self.prior_delta(batch))

    def loss(self, batch: Batch, inputs_f: torch.Tensor | None = None, kind: str = "mse",
             units: torch.Tensor | None = None) -> torch.Tensor:
        """Masked mean loss in model units over real target steps 1..len-1 (padding ignored).
        Pass `units` (e.g. a Rollout's) to score outputs computed elsewhere."""
        if units is None:
            units = self(batch, inputs_f)
        err = units.float() - self.targets(batch, inputs_f)
        per_step = err.abs() if kind == "l1" else err.square()
        if kind not in ("mse", "l1"):
            raise ValueError(f"loss kind {kind!r} is not 'mse' or 'l1'")
        weight = batch.mask[:, 1:].to(per_step.dtype)
        return (per_step * weight).sum() / weight.sum().clamp(min=1.0)

    def sampled_loss(self, batch: Batch, inputs_f: torch.Tensor, use_own: torch.Tensor,
                     kind: str = "mse") -> torch.Tensor:
        """Scheduled sampling: the loss when the inputs marked in `use_own` [B, L] bool are the
        model's own predictions instead of `inputs_f` [B, L] °F. Two passes: teacher-forced
        predictions of every step without gradients, mixed into the inputs, then the loss."""
        with torch.no_grad():
            own = self.predict_next_f(batch, inputs_f).clamp(*DEFAULT_CLAMP_F)  # [B, L-1]
        own = torch.cat((batch.temps_f[:, :1], own), dim=1)
        return self.loss(batch, torch.where(use_own, own, inputs_f), kind=kind)

    @torch.no_grad()
    def scale_correction(self, scale: float) -> None:
        """Prior models: set the learned correction (the zero-initialised head) to `scale` times
        what training left; scale 0 is the plain prior. Idempotent for a given scale."""
        if self.config.prior == "none":
            raise ValueError("scale_correction: this model has no prior to fall back to")
        if self._trained_head is None:
            self._trained_head = (self.head.weight.clone(), self.head.bias.clone())
        weight, bias = self._trained_head
        self.head.weight.copy_(weight * scale)
        self.head.bias.copy_(bias * scale)

    # -- free running ------------------------------------------------------------------
    def generate(self, batch: Batch, prefix_steps: int = 1, clamp: tuple[float, float] = DEFAULT_CLAMP_F,
                 use_cache: bool = True) -> Generation:
        """Free-run each row to its own length from its first `prefix_steps` real temperatures.

        Every step records the raw model output (°F) and the clamped value fed back. With
        `use_cache=False` the whole sequence is re-run each step (the naive O(L^2) path kept
        to check the cache against).
        """
        lo, hi = float(clamp[0]), float(clamp[1])
        if not lo < hi:
            raise ValueError(f"clamp: low {lo} must be below high {hi}")
        with torch.inference_mode():  # lighter than no_grad: no version counters on the hot path
            gen = self._generate(batch, prefix_steps, lo, hi, use_cache)
        # Plain tensors again, so callers may use them anywhere (inference tensors may not be).
        return Generation(*(t.clone() for t in (gen.raw_f, gen.clamped_f, gen.clamp_active, gen.lengths)))

    def _generate(self, batch: Batch, prefix_steps: int, lo: float, hi: float, use_cache: bool) -> Generation:
        lengths = batch.lengths
        l_max = int(lengths.max())
        self._check_length(l_max)
        if not 1 <= prefix_steps <= int(lengths.min()):
            raise ValueError(f"prefix_steps={prefix_steps} must be in 1..{int(lengths.min())} (the shortest row)")
        real = batch.temps_f[:, :l_max]
        cond = self.conditioning(batch)
        prior = self.batch_prior(batch)
        prior_steps = None if prior is None else prior[:, 1:l_max] - prior[:, :l_max - 1]  # [B, Lmax-1]
        k = prefix_steps
        fed, raw = list(real[:, :k].unbind(1)), list(real[:, :k].unbind(1))  # per step [B]
        if use_cache:
            state = self.new_state(real.shape[0], l_max)
            last = self._units(real[:, :k], 0, cond, lengths, state, prior)[:, -1]  # [B]
            decode = self._step_decoder(cond, lengths, prior, state, l_max)
        for t in range(k, l_max):
            if not use_cache:
                history = torch.stack(fed, 1)  # [B, t]
                last = self._units(history, 0, cond, lengths, self.new_state(history.shape[0], None), prior)[:, -1]
            raw.append(self.units_to_f(last, fed[-1], None if prior is None else prior_steps[:, t - 1]))
            fed.append(raw[-1].clamp(lo, hi))
            if use_cache and t + 1 < l_max:
                last = decode(fed[-1], t)
        raw, fed = torch.stack(raw, 1), torch.stack(fed, 1)  # [B, Lmax]
        active = fed != raw
        # Past a row's end: repeat its last value, as collate pads inputs.
        pad = torch.arange(l_max, device=fed.device)[None, :] >= lengths[:, None]
        last_idx = (lengths - 1)[:, None]
        raw = torch.where(pad, raw.gather(1, last_idx), raw)
        fed = torch.where(pad, fed.gather(1, last_idx), fed)
        active &= ~pad
        return Generation(raw_f=raw, clamped_f=fed, clamp_active=active, lengths=lengths.clone())

    def _step_decoder(self, cond, lengths, prior, state, l_max):
        """A function (T_t [B] °F, t) -> model units [B] for one new step, after the prefix
        filled `state`. This generic one re-uses `_units`; RoastFormer fuses it."""
        return lambda fed_t, t: self._units(fed_t[:, None], t, cond, lengths, state, prior)[:, 0]

    def rollout(self, batch: Batch, prefix_steps: int = 1, clamp: tuple[float, float] | None = DEFAULT_CLAMP_F,
                feed_real: torch.Tensor | None = None, detach_feedback: bool = False) -> Rollout:
        """Free run WITH gradients (rollout losses, scheduled sampling for the GRU).

        Uses the same incremental step code as `generate`. `feed_real` [B, L] bool feeds the
        real temperature at the marked steps instead of the model's own (scheduled sampling);
        `detach_feedback` stops gradients flowing through fed-back predictions.
        """
        real = batch.temps_f
        B, L = real.shape
        self._check_length(L)
        cond = self.conditioning(batch)
        prior = self.batch_prior(batch)
        state = self.new_state(B, L)
        k = prefix_steps
        inputs = [real[:, t] for t in range(k)]
        outs = list(self._units(real[:, :k], 0, cond, batch.lengths, state, prior).unbind(1))  # k x [B]
        preds = list(inputs)
        for t in range(k, L):
            pred = self.units_to_f(outs[-1], inputs[-1], None if prior is None else prior[:, t] - prior[:, t - 1])
            preds.append(pred)
            fed = pred.detach() if detach_feedback else pred
            if clamp is not None:
                fed = fed.clamp(clamp[0], clamp[1])
            if feed_real is not None:
                fed = torch.where(feed_real[:, t], real[:, t], fed)
            inputs.append(fed)
            if t + 1 < L:
                outs.append(self._units(fed[:, None], t, cond, batch.lengths, state, prior)[:, 0])
        return Rollout(inputs_f=torch.stack(inputs, 1), units=torch.stack(outs, 1), pred_f=torch.stack(preds, 1))

    # -- helpers -------------------------------------------------------------------------
    def make_batch(self, profiles, device="cpu") -> Batch:
        """Profiles -> one padded batch at this model's step_s, truncated to max_len."""
        return RoastDataset(profiles, self.encoder, self.config.step_s, self.config.max_len,
                            prior=self.prior_library).full_batch(device)

    def _check_length(self, length: int):
        if length > self.config.max_len:
            raise ValueError(f"sequence of {length} steps exceeds ModelConfig.max_len={self.config.max_len}; "
                             "build the dataset with max_len=model.config.max_len")

    def new_state(self, batch_size: int, capacity: int | None):
        raise NotImplementedError

    def _core(self, tokens, start_pos, cond, state):
        raise NotImplementedError


# ----------------------------------------------------------------------------- models
class RoastFormer(RoastModel):
    """Decoder-only causal transformer, pre-LN, sinusoidal / learned / rotary positions."""

    def __init__(self, cfg: ModelConfig, encoder: FeatureEncoder, scaler: TemperatureScaler):
        super().__init__(cfg, encoder, scaler)
        if cfg.pos_encoding == "sinusoidal":
            self.register_buffer("pos_table", sinusoidal_table(cfg.max_len, cfg.d_model), persistent=False)
        elif cfg.pos_encoding == "learned":
            self.pos_embedding = nn.Embedding(cfg.max_len, cfg.d_model)
        else:
            cos, sin = rope_tables(cfg.max_len, cfg.d_model // cfg.n_heads)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self._init_weights()

    def new_state(self, batch_size, capacity):
        return [KVCache(capacity) for _ in self.blocks]

    def _core(self, tokens, start_pos, cond, state):  # [B, T, D] -> [B, T, D]
        T = tokens.shape[1]
        rope = None
        if self.config.pos_encoding == "sinusoidal":
            tokens = tokens + self.pos_table[start_pos:start_pos + T]
        elif self.config.pos_encoding == "learned":
            tokens = tokens + self.pos_embedding(torch.arange(start_pos, start_pos + T, device=tokens.device))
        else:
            rope = (self.rope_cos[start_pos:start_pos + T], self.rope_sin[start_pos:start_pos + T])
        x = self.drop(tokens) if self.training else tokens
        for block, cache in zip(self.blocks, state, strict=True):
            x = block(x, start_pos, cache, rope)
        return x

    def _step_decoder(self, cond, lengths, prior, state, l_max):
        """The one-token step of `generate`, fused (see Block.step_fn): everything that does
        not depend on the fed temperature is computed for all steps at once, so a step is one
        addcmul for the token, the blocks' fused steps, and the head."""
        cfg = self.config
        base, w_eff = self._token_parts(cond, lengths, prior, l_max)  # [B, L, D], [D]
        if cfg.pos_encoding == "sinusoidal":
            base = base + self.pos_table[:l_max]
        elif cfg.pos_encoding == "learned":
            base = base + self.pos_embedding.weight[:l_max]
        base = base.transpose(0, 1).contiguous()  # [L, B, D]: base[t] is a cheap index
        rope = (self.rope_cos, self.rope_sin) if cfg.pos_encoding == "rope" else None
        blocks = [b.step_fn(cache, rope) for b, cache in zip(self.blocks, state, strict=True)]
        head = self._fused_head()

        def decode(fed_t: torch.Tensor, t: int) -> torch.Tensor:  # [B] °F at step t -> [B] units
            x = torch.addcmul(base[t], fed_t.unsqueeze(1), w_eff)  # [B, D] the token
            for step in blocks:
                x = step(x, t)
            return head(x)

        return decode


class _GRUState:
    def __init__(self):
        self.h = None  # [n_layers, B, D]


class RoastGRU(RoastModel):
    """Stacked GRU with the same interface; its initial state also comes from the conditioning."""

    def __init__(self, cfg: ModelConfig, encoder: FeatureEncoder, scaler: TemperatureScaler):
        super().__init__(cfg, encoder, scaler)
        self.h0 = nn.Linear(cfg.d_model, cfg.n_layers * cfg.d_model)
        self.gru = nn.GRU(cfg.d_model, cfg.d_model, num_layers=cfg.n_layers, batch_first=True,
                          dropout=cfg.dropout if cfg.n_layers > 1 else 0.0)
        self._init_weights()

    steps_sequentially = True

    def new_state(self, batch_size, capacity):
        return _GRUState()

    def sampled_loss(self, batch, inputs_f, use_own, kind="mse"):
        """Scheduled sampling as a true step-by-step rollout that feeds back its own outputs at
        the marked steps (cheap for a recurrent model)."""
        ro = self.rollout(batch, feed_real=~use_own, detach_feedback=True)
        return self.loss(batch, ro.inputs_f, kind=kind, units=ro.units)

    def _core(self, tokens, start_pos, cond, state):  # [B, T, D] -> [B, T, D]
        if state.h is None:
            B, n, D = cond.shape[0], self.config.n_layers, self.config.d_model
            state.h = torch.tanh(self.h0(cond)).view(B, n, D).transpose(0, 1).contiguous()
        out, state.h = self.gru(self.drop(tokens) if self.training else tokens, state.h)
        return out

    def _step_decoder(self, cond, lengths, prior, state, l_max):
        """The one-step decode of `generate`, fused like RoastFormer's: the token's static part
        is projected for all steps at once, so a step is one addcmul, one GRU cell per layer
        and the head. Calling nn.GRU per step costs more in its per-call checks than the d16
        step itself (generation only: eval mode, so no dropout between layers)."""
        base, w_eff = self._token_parts(cond, lengths, prior, l_max)
        base = base.transpose(0, 1).contiguous()  # [L, B, D]
        gru = self.gru
        cells = [(getattr(gru, f"weight_ih_l{i}"), getattr(gru, f"weight_hh_l{i}"),
                  getattr(gru, f"bias_ih_l{i}"), getattr(gru, f"bias_hh_l{i}")) for i in range(gru.num_layers)]
        hidden = list(state.h.unbind(0))  # per layer [B, D], after the prefix
        head = self._fused_head()

        def decode(fed_t: torch.Tensor, t: int) -> torch.Tensor:  # [B] °F at step t -> [B] units
            x = torch.addcmul(base[t], fed_t.unsqueeze(1), w_eff)  # [B, D] the token
            for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(cells):
                x = hidden[layer] = torch.gru_cell(x, hidden[layer], w_ih, w_hh, b_ih, b_hh)
            return head(x)

        return decode


# ----------------------------------------------------------------------------- building
def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
