#!/usr/bin/env python3
"""Reference PyTorch encoder for fedclaims checkpoints (standard library + torch).

A fedclaims checkpoint is a directory with model.safetensors, config.json and
vocab.json. This module rebuilds the encoder from config.json, loads the tensors
(reading safetensors itself, so the `safetensors` package is not needed) and
computes the same forward pass as fedclaims' Go encoder (model/encoder.go):

    from fedclaims_torch import load_checkpoint
    enc = load_checkpoint("out/ckpt")            # FedclaimsEncoder, eval mode
    out = enc(tokens, segments, positions, ages)  # [B, T] tensors
    out["hidden_states"]  # [B, T, H] after final_ln
    out["pooled_cls"]     # [B, H], the [CLS] token's state
    out["pooled_mean"]    # [B, H], mean over tokens != [PAD]
    enc.mlm_logits(out["hidden_states"])  # tied MLM head, [B, T, V]

Inputs are the tokenizer's, padded with [PAD] = 0: token ids, segment ids
(0..segments-1), positions (0..max_len-1) and ages in years at each token, with
[CLS] in column 0 carrying the age at the cutoff and a [SEP] closing each visit
(negative ages are unknown). The time and gap embeddings' buckets are derived from
the ages and the [SEP]s, as the Go encoder does (FedclaimsEncoder.time_buckets).

Command line, comparing with a forward pass fedclaims wrote
(`fedclaims model forward --model CKPT --data DIR --save-inputs IN --out OUT`):

    python3 python/fedclaims_torch.py check --checkpoint CKPT --inputs IN --expect OUT

prints one JSON line with the largest absolute difference and exits 1 when it
exceeds --tolerance (1e-5) or a time bucket differs.
"""

import argparse
import json
import math
import os
import struct
import sys

import torch
from torch import nn

# What every fedclaims checkpoint computes. A config.json written before these
# fields existed lacks them; its model computes exactly these values.
ARCHITECTURE = {
    "model_type": "fedclaims-encoder",
    "dtype": "float32",
    "weight_layout": "in_out",
    "norm": "pre_ln",
    "hidden_act": "gelu_tanh",
    "mlp_ratio": 4,
    "qkv_packing": "q|k|v",
    "attention_scale": "1/sqrt(head_dim)",
    "attention_mask": "pad_keys",
    "age_scale": 100,
    "mlm_head": "tied",
}
SPECIAL_TOKENS = {"pad": 0, "cls": 1, "sep": 2, "mask": 3, "unk": 4, "first_code": 5}
DAYS_PER_YEAR = 365.25

# Linear weights, stored [in, out] (y = x @ W + b) when weight_layout is in_out;
# torch.nn.Linear keeps [out, in].
LINEAR_SUFFIXES = ("attn.qkv.weight", "attn.out.weight", "mlp.fc1.weight", "mlp.fc2.weight")

_DTYPES = {
    "F32": torch.float32,
    "F64": torch.float64,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
}


def read_safetensors(path):
    """Returns ({name: tensor}, metadata) of a safetensors file: an 8-byte
    little-endian header length N, N bytes of JSON, then the tensor data."""
    if sys.byteorder != "little":
        raise RuntimeError("read_safetensors: only little-endian hosts are supported")
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: {len(raw)} bytes, shorter than the header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ValueError(f"{path}: header length {n} exceeds the file ({len(raw)} bytes)")
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    body = bytearray(raw[8 + n :])  # writable, so torch.frombuffer does not warn
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, e in header.items():
        dtype = _DTYPES.get(e["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name!r}: dtype {e['dtype']!r} not supported")
        begin, end = e["data_offsets"]
        shape = list(e["shape"])
        count = math.prod(shape)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if not (0 <= begin <= end <= len(body)) or end - begin != count * itemsize:
            raise ValueError(f"{path}: tensor {name!r}: data_offsets {e['data_offsets']} do not hold shape {shape}")
        if count == 0:
            t = torch.empty(shape, dtype=dtype)
        else:
            t = torch.frombuffer(body, dtype=dtype, count=count, offset=begin).reshape(shape).clone()
        tensors[name] = t
    return tensors, metadata


def load_config(path):
    """Reads config.json (a checkpoint directory or the file) and checks that it
    describes the architecture this module implements."""
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    for key, want in ARCHITECTURE.items():
        got = cfg.setdefault(key, want)
        if got != want:
            raise ValueError(f"{path}: {key} is {got!r}; this module implements only {want!r}")
    hidden, heads = cfg["hidden"], cfg["heads"]
    if hidden % heads:
        raise ValueError(f"{path}: heads {heads} do not divide hidden {hidden}")
    for key, want in (("intermediate_size", cfg["mlp_ratio"] * hidden), ("head_dim", hidden // heads)):
        if cfg.setdefault(key, want) != want:
            raise ValueError(f"{path}: {key} is {cfg[key]!r}, want {want} from hidden {hidden}")
    tb = cfg.get("time_buckets", 0) or 0
    cfg["time_buckets"] = tb
    te = cfg.get("time_embedding")
    if te is not None and (tb == 0 or te.get("buckets") != tb or te.get("days_per_year", DAYS_PER_YEAR) != DAYS_PER_YEAR):
        raise ValueError(f"{path}: time_embedding {te!r} does not match time_buckets {tb}")
    st = cfg.setdefault("special_tokens", dict(SPECIAL_TOKENS))
    if st != SPECIAL_TOKENS:
        raise ValueError(f"{path}: special_tokens {st!r}; this module implements only {SPECIAL_TOKENS!r}")
    return cfg


def span_bucket(later, earlier, buckets):
    """TimeBucket of the days from age `earlier` to age `later` (years, float32
    tensors), 0 where either is unknown (negative or NaN). Computed in float64 and
    integers, as the Go encoder does: n = days rounded half up (0 below half a
    day), bucket = min(bit_length(n + 1), buckets - 1)."""
    known = (later >= 0) & (earlier >= 0)
    days = (later.double() - earlier.double()) * DAYS_PER_YEAR
    days = torch.where(known, days, torch.zeros_like(days))
    big = days >= 2.0**62
    n = torch.where(days >= 0.5, torch.floor(days + 0.5), torch.zeros_like(days))
    n = torch.where(big, torch.zeros_like(n), n).to(torch.int64) + 1
    powers = 2 ** torch.arange(63, dtype=torch.int64)
    bitlen = (n.unsqueeze(-1) >= powers).sum(-1)
    bucket = torch.clamp(bitlen, max=buckets - 1)
    bucket = torch.where(big, torch.full_like(bucket, buckets - 1), bucket)
    return torch.where(known, bucket, torch.zeros_like(bucket))


class Embeddings(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h = cfg["hidden"]
        self.age_scale = float(cfg["age_scale"])
        self.token = nn.Embedding(cfg["vocab_size"], h)
        self.position = nn.Embedding(cfg["max_len"], h)
        self.segment = nn.Embedding(cfg["segments"], h)
        self.age = nn.Linear(1, h)  # (age/100) * weight + bias
        tb = cfg["time_buckets"]
        self.time = nn.Embedding(tb, h) if tb else None
        self.gap = nn.Embedding(tb, h) if tb else None

    def forward(self, tokens, segments, positions, ages, time_bucket=None, gap_bucket=None):
        a = (ages.to(torch.float32) / self.age_scale).unsqueeze(-1)
        # The Go encoder's float32 sum, in its order.
        x = self.token(tokens) + self.position(positions) + self.segment(segments) + a * self.age.weight[:, 0] + self.age.bias
        if self.time is not None:
            x = x + (self.time(time_bucket) + self.gap(gap_bucket))
        return x


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h = cfg["hidden"]
        self.heads, self.head_dim = cfg["heads"], cfg["head_dim"]
        self.qkv = nn.Linear(h, 3 * h)  # output features: q | k | v, heads contiguous
        self.out = nn.Linear(h, h)

    def forward(self, x, keep):
        b, t, h = x.shape
        q, k, v = self.qkv(x).split(h, dim=-1)
        q, k, v = (z.reshape(b, t, self.heads, self.head_dim).transpose(1, 2) for z in (q, k, v))
        scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
        scores = scores.masked_fill(~keep[:, None, None, :], float("-inf"))
        probs = torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)  # no key kept: zeros
        ctx = (probs @ v).transpose(1, 2).reshape(b, t, h)
        return self.out(ctx)


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.fc1 = nn.Linear(cfg["hidden"], cfg["intermediate_size"])
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(cfg["intermediate_size"], cfg["hidden"])

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-LN: x += Attn(LN1(x)); x += MLP(LN2(x))."""

    def __init__(self, cfg):
        super().__init__()
        h, eps = cfg["hidden"], cfg["ln_eps"]
        self.ln1 = nn.LayerNorm(h, eps=eps)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(h, eps=eps)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.get("dropout", 0.0))

    def forward(self, x, keep):
        x = x + self.drop(self.attn(self.ln1(x), keep))
        return x + self.drop(self.mlp(self.ln2(x)))


class MLMHead(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(cfg["vocab_size"]))


class FedclaimsEncoder(nn.Module):
    """The fedclaims encoder, its parameters named as in model.safetensors."""

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.embeddings = Embeddings(cfg)
        self.embed_drop = nn.Dropout(cfg.get("dropout", 0.0))
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg["layers"]))
        self.final_ln = nn.LayerNorm(cfg["hidden"], eps=cfg["ln_eps"])
        self.mlm = MLMHead(cfg)

    def time_buckets(self, tokens, ages):
        """Each token's time-to-cutoff and gap-since-previous-visit buckets, [B, T]
        int64, as model/time.go's timeBuckets: column 0 ([CLS]) carries the age
        at the cutoff; a visit opens at the first non-[PAD] token after column 0
        or after a [SEP]; the time bucket spans the token's age to the cutoff, the
        gap bucket (every token of a visit) the previous visit's opening age to
        this one's; [CLS], [PAD] and the first visit's gap get 0."""
        buckets = self.config["time_buckets"]
        pad, sep = SPECIAL_TOKENS["pad"], SPECIAL_TOKENS["sep"]
        ages = ages.to(torch.float32)
        b, t = tokens.shape
        ref = ages[:, :1].expand(b, t)
        real = tokens != pad
        real[:, 0] = False
        tb = torch.where(real, span_bucket(ref, ages, buckets), torch.zeros((b, t), dtype=torch.int64))
        gb = torch.zeros((b, t), dtype=torch.int64)
        visits = torch.zeros(b, dtype=torch.int64)
        start = torch.zeros(b, dtype=torch.float32)
        gap = torch.zeros(b, dtype=torch.int64)
        opening = torch.ones(b, dtype=torch.bool)
        for k in range(1, t):
            r = real[:, k]
            opens = r & opening
            prev = start
            start = torch.where(opens, ages[:, k], start)
            visits = visits + opens.to(torch.int64)
            g = span_bucket(start, prev, buckets)
            gap = torch.where(opens, torch.where(visits > 1, g, torch.zeros_like(g)), gap)
            gb[:, k] = torch.where(r, gap, torch.zeros_like(gap))
            opening = torch.where(r, tokens[:, k] == sep, opening)
        return tb, gb

    def forward(self, tokens, segments, positions, ages):
        tokens, segments, positions = tokens.long(), segments.long(), positions.long()
        keep = tokens != SPECIAL_TOKENS["pad"]
        tb = gb = None
        if self.config["time_buckets"]:
            tb, gb = self.time_buckets(tokens, ages)
        x = self.embed_drop(self.embeddings(tokens, segments, positions, ages, tb, gb))
        for layer in self.layers:
            x = layer(x, keep)
        hidden = self.final_ln(x)
        k = keep.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * k).sum(1) / k.sum(1).clamp(min=1)
        return {"hidden_states": hidden, "pooled_cls": hidden[:, 0], "pooled_mean": mean, "time_bucket": tb, "gap_bucket": gb}

    def mlm_logits(self, hidden):
        """The tied MLM head: hidden @ token embeddingᵀ + mlm.bias."""
        return hidden @ self.embeddings.token.weight.t() + self.mlm.bias


def state_dict_from_safetensors(tensors, cfg, metadata=None):
    """Turns model.safetensors' tensors into FedclaimsEncoder's state_dict:
    linear weights transposed from [in, out] and the age projection's weight
    made [hidden, 1]."""
    layout = cfg["weight_layout"]
    if metadata and metadata.get("weight_layout", layout) != layout:
        raise ValueError(f"model.safetensors says weight_layout {metadata['weight_layout']!r}, config.json {layout!r}")
    sd = {}
    for name, t in tensors.items():
        if name.endswith(LINEAR_SUFFIXES):
            t = t.t().contiguous()
        elif name == "embeddings.age.weight":
            t = t.reshape(-1, 1)
        sd[name] = t.to(torch.float32)
    return sd


def load_checkpoint(directory):
    """Returns the checkpoint's FedclaimsEncoder, in eval mode."""
    cfg = load_config(directory)
    tensors, metadata = read_safetensors(os.path.join(directory, "model.safetensors"))
    model = FedclaimsEncoder(cfg)
    model.load_state_dict(state_dict_from_safetensors(tensors, cfg, metadata), strict=True)
    return model.eval()


def load_inputs(path):
    """Reads a batch as `fedclaims model forward --inputs` takes it."""
    with open(path) as f:
        d = json.load(f)
    return (
        torch.tensor(d["tokens"], dtype=torch.int64),
        torch.tensor(d["segments"], dtype=torch.int64),
        torch.tensor(d["positions"], dtype=torch.int64),
        torch.tensor(d["ages"], dtype=torch.float32),
    )


def check(args):
    torch.set_num_threads(max(1, args.threads))
    model = load_checkpoint(args.checkpoint)
    inputs = load_inputs(args.inputs)
    with open(args.expect) as f:
        want = json.load(f)
    with torch.no_grad():
        got = model(*inputs)
        if "mlm_logits" in want:
            got["mlm_logits"] = model.mlm_logits(got["hidden_states"])
    diffs, bucket_mismatch = {}, {}
    for key in ("hidden_states", "pooled_cls", "pooled_mean", "mlm_logits"):
        if key not in want:
            continue
        w = torch.tensor(want[key], dtype=torch.float32)
        if tuple(w.shape) != tuple(got[key].shape):
            raise SystemExit(f"{key}: fedclaims wrote shape {tuple(w.shape)}, PyTorch computed {tuple(got[key].shape)}")
        diffs[key] = (got[key] - w).abs().max().item()
    for key in ("time_bucket", "gap_bucket"):
        if key in want:
            w = torch.tensor(want[key], dtype=torch.int64)
            bucket_mismatch[key] = int((got[key] != w).sum().item())
    largest = max(diffs.values())
    ok = largest <= args.tolerance and not any(bucket_mismatch.values())
    print(json.dumps({
        "max_abs_diff": largest,
        "max_abs_diff_by_output": diffs,
        "bucket_mismatches": bucket_mismatch,
        "tolerance": args.tolerance,
        "batch": list(inputs[0].shape),
        "torch": torch.__version__,
        "ok": ok,
    }))
    return 0 if ok else 1


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="compare this module's forward pass with one fedclaims wrote")
    c.add_argument("--checkpoint", required=True, help="checkpoint directory (model.safetensors, config.json)")
    c.add_argument("--inputs", required=True, help="batch JSON (fedclaims model forward --save-inputs)")
    c.add_argument("--expect", required=True, help="fedclaims' forward pass JSON (fedclaims model forward --out)")
    c.add_argument("--tolerance", type=float, default=1e-5, help="largest absolute difference allowed")
    c.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
