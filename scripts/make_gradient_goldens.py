#!/usr/bin/python3
"""Float64 autograd goldens for NativeMi's backward pass (issue 14 item 1).

Run with Debian's python3-torch (1.13):   /usr/bin/python3 scripts/make_gradient_goldens.py
                                          /usr/bin/python3 scripts/make_gradient_goldens.py --check   (writes nothing)

For each fixture below it reads tests/NativeMi.Tests/fixtures/<name>/{config.json, model.safetensors}, runs a from-scratch float64
forward pass of the engine's block layout (written from config.json as the engine reads it), pools one hidden-state entry of a small
padded batch into sentence vectors z, and lets torch autograd compute the gradient of

    L = sum_{s, j} c[s, j] * z[s, j]          (c: seeded N(0, 1), so dL/dz = c)

with respect to every parameter tensor the forward pass reads. It writes gradient_golden.safetensors beside the model:

    input_ids, attention_mask, token_type_ids, is_target    I64 [B, T]   the batch (row 0 full, row 1 right-, row 2 left-padded)
    pooled                                                  F32 [B, d]   z (so the engine's training forward is checked too)
    pooled_gradient                                         F32 [B, d]   c
    grad.<tensor name>                                      F32          dL/d(tensor), in the checkpoint's name and layout
    __metadata__: layer (hidden-state entry: 0 embeddings, l block l, L + 1 "final"), pooling, reference

Conventions are the engine's (src/NativeMi/Transformer): positions come from the attention mask (offset + real tokens before;
padding gets offset - 1 or 0), is_target is every real token but the first of its row, pooling is mean / cls / last over real tokens as
SentencePooling defines it. Masked scores get -1e30 added (not -inf), so a padded query that sees no key (left padding in a causal
model) averages its keys instead of producing NaN; nothing real reads a padded row, so neither z nor any gradient changes by it, while
the engine gives such a row zeros. Gemma's embedding scale is float32(sqrt(d)), as the engine multiplies by it.

Before writing, the script checks its forward pass against each fixture's golden.safetensors (the float64 references of
make_fixtures.py / make_decoder_fixtures.py) on the real tokens of every hidden state: the largest difference relative to the state's
largest magnitude must stay below 1e-6 (F32 storage of the goldens), or it stops.
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_decoder_fixtures as mdf  # noqa: E402  (safetensors reader and writer; importing it writes nothing)

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "NativeMi.Tests", "fixtures")
MASKED = -1e30

# name, pooled entry ("final" or an int), pooling, seed
GOLDENS = [
    ("bert-tiny", 3, "mean", 101),
    ("gpt2-tiny", "final", "last", 102),
    ("llama-tiny", "final", "mean", 103),
    ("qwen3-tiny", "final", "last", 104),
    ("gemma-tiny", "final", "mean", 105),
]
LENGTHS = [(9, "full"), (5, "right"), (7, "left")]
T = 9


class Params:
    """The checkpoint's tensors as float64 leaves; records which ones the forward pass reads."""

    def __init__(self, tensors, prefix):
        self.prefix = prefix
        self.leaves = {k: v.to(torch.float64).clone().requires_grad_(True) for k, v in tensors.items()}
        self.used = []

    def __call__(self, name):
        full = self.prefix + name
        if full not in self.used:
            self.used.append(full)
        return self.leaves[full]


def choose_prefix(names, probe, prefixes):
    for p in prefixes:
        if p + probe in names:
            return p
    raise SystemExit(f"no prefix of {prefixes} finds {probe}")


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def rms_norm(x, w, eps, plus_one):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * ((1.0 + w) if plus_one else w)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gelu_erf(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def positions_from_mask(mask, offset):
    real = mask.long()
    pos = offset + torch.cumsum(real, dim=1) - 1
    return torch.where(real == 1, pos, torch.full_like(pos, offset - 1 if offset > 0 else 0))


def attention(q, k, v, mask, causal):
    """q [B, H, T, hd], k and v [B, H, T, hd] (already repeated for GQA); mask [B, T]."""
    B, H, Tq, hd = q.shape
    allowed = mask.bool()[:, None, None, :].expand(B, 1, Tq, Tq)
    if causal:
        allowed = allowed & torch.tril(torch.ones(Tq, Tq, dtype=torch.bool))[None, None]
    s = q @ k.transpose(-1, -2) * hd ** -0.5
    s = s + torch.where(allowed, torch.zeros((), dtype=s.dtype), torch.full((), MASKED, dtype=s.dtype))
    return torch.softmax(s, dim=-1) @ v


def heads(x, n, hd):
    B, Tq, _ = x.shape
    return x.view(B, Tq, n, hd).transpose(1, 2)


def merge(x):
    B, H, Tq, hd = x.shape
    return x.transpose(1, 2).reshape(B, Tq, H * hd)


def bert_forward(P, cfg, ids, mask, types):
    H, L, eps = cfg["num_attention_heads"], cfg["num_hidden_layers"], cfg["layer_norm_eps"]
    d = cfg["hidden_size"]
    hd = d // H
    offset = cfg["pad_token_id"] + 1 if cfg["model_type"] == "roberta" else 0
    pos = positions_from_mask(mask, offset)
    e = P("embeddings.word_embeddings.weight")[ids] + P("embeddings.position_embeddings.weight")[pos] + \
        P("embeddings.token_type_embeddings.weight")[types]
    h = layer_norm(e, P("embeddings.LayerNorm.weight"), P("embeddings.LayerNorm.bias"), eps)
    hs = [h]

    def lin(x, name):
        return x @ P(name + ".weight").t() + P(name + ".bias")

    for i in range(L):
        n = f"encoder.layer.{i}."
        q, k, v = (heads(lin(h, n + "attention.self." + part), H, hd) for part in ("query", "key", "value"))
        c = merge(attention(q, k, v, mask, causal=False))
        a = layer_norm(lin(c, n + "attention.output.dense") + h, P(n + "attention.output.LayerNorm.weight"), P(n + "attention.output.LayerNorm.bias"), eps)
        f = gelu_erf(lin(a, n + "intermediate.dense"))
        h = layer_norm(lin(f, n + "output.dense") + a, P(n + "output.LayerNorm.weight"), P(n + "output.LayerNorm.bias"), eps)
        hs.append(h)
    return hs, None


def gpt2_forward(P, cfg, ids, mask, types):
    H, L, eps, d = cfg["n_head"], cfg["n_layer"], cfg["layer_norm_epsilon"], cfg["n_embd"]
    hd = d // H
    pos = positions_from_mask(mask, 0)
    h = P("wte.weight")[ids] + P("wpe.weight")[pos]
    hs = [h]
    for i in range(L):
        n = f"h.{i}."
        a = layer_norm(h, P(n + "ln_1.weight"), P(n + "ln_1.bias"), eps)
        qkv = a @ P(n + "attn.c_attn.weight") + P(n + "attn.c_attn.bias")
        q, k, v = (heads(t, H, hd) for t in qkv.split(d, dim=2))
        h = h + merge(attention(q, k, v, mask, causal=True)) @ P(n + "attn.c_proj.weight") + P(n + "attn.c_proj.bias")
        m = layer_norm(h, P(n + "ln_2.weight"), P(n + "ln_2.bias"), eps)
        m = gelu_tanh(m @ P(n + "mlp.c_fc.weight") + P(n + "mlp.c_fc.bias"))
        h = h + m @ P(n + "mlp.c_proj.weight") + P(n + "mlp.c_proj.bias")
        hs.append(h)
    return hs, layer_norm(h, P("ln_f.weight"), P("ln_f.bias"), eps)


def inverse_frequencies(cfg, hd):
    inv = 1.0 / (cfg.get("rope_theta", 10000.0) ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    rs = cfg.get("rope_scaling")
    if rs:
        kind = rs.get("rope_type", rs.get("type"))
        if kind != "llama3":
            raise SystemExit(f"rope_scaling {kind} is not what the engine reads")
        inv = mdf.llama3_inv_freq(inv, rs)
    return inv


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def decoder_forward(P, cfg, ids, mask, types):
    mt = cfg["model_type"]
    d, L, H = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads", H)
    hd = cfg.get("head_dim") or d // H
    eps = cfg["rms_norm_eps"]
    gemma = mt == "gemma"
    act_name = cfg.get("hidden_activation") or cfg.get("hidden_act") if gemma else cfg.get("hidden_act")
    act = {"silu": F.silu, "gelu_pytorch_tanh": gelu_tanh, "gelu": gelu_erf}[act_name]
    qkv_bias = mt == "qwen2" or bool(cfg.get("attention_bias"))
    qk_norm = mt == "qwen3"
    B, Tq = ids.shape

    def nrm(x, name):
        return rms_norm(x, P(name), eps, plus_one=gemma)

    def lin(x, name, bias):
        y = x @ P(name + ".weight").t()
        return y + P(name + ".bias") if bias else y

    h = P("embed_tokens.weight")[ids]
    if gemma:
        h = h * torch.tensor(float(torch.tensor(d ** 0.5, dtype=torch.float32)), dtype=torch.float64)
    hs = [h]
    pos = positions_from_mask(mask, 0)
    angles = pos.to(torch.float64)[:, :, None] * inverse_frequencies(cfg, hd)[None, None, :]
    angles = torch.cat((angles, angles), dim=-1)
    cos, sin = angles.cos()[:, None], angles.sin()[:, None]
    rep = H // KV
    for i in range(L):
        n = f"layers.{i}."
        x = nrm(h, n + "input_layernorm.weight")
        q = lin(x, n + "self_attn.q_proj", qkv_bias).view(B, Tq, H, hd)
        k = lin(x, n + "self_attn.k_proj", qkv_bias).view(B, Tq, KV, hd)
        v = lin(x, n + "self_attn.v_proj", qkv_bias).view(B, Tq, KV, hd)
        if qk_norm:
            q, k = rms_norm(q, P(n + "self_attn.q_norm.weight"), eps, False), rms_norm(k, P(n + "self_attn.k_norm.weight"), eps, False)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        k = k[:, :, None].expand(B, KV, rep, Tq, hd).reshape(B, H, Tq, hd)
        v = v[:, :, None].expand(B, KV, rep, Tq, hd).reshape(B, H, Tq, hd)
        h = h + merge(attention(q, k, v, mask, causal=True)) @ P(n + "self_attn.o_proj.weight").t()
        x = nrm(h, n + "post_attention_layernorm.weight")
        h = h + (act(lin(x, n + "mlp.gate_proj", False)) * lin(x, n + "mlp.up_proj", False)) @ P(n + "mlp.down_proj.weight").t()
        hs.append(h)
    return hs, nrm(h, "norm.weight")


def model(folder):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    tensors, _ = mdf.read_safetensors(os.path.join(folder, "model.safetensors"))
    names = set(tensors)
    mt = cfg["model_type"]
    if mt in ("bert", "roberta"):
        prefix = choose_prefix(names, "embeddings.word_embeddings.weight", ["", "bert.", "roberta."])
        run = bert_forward
    elif mt == "gpt2":
        prefix = choose_prefix(names, "wte.weight", ["", "transformer."])
        run = gpt2_forward
    else:
        prefix = choose_prefix(names, "embed_tokens.weight", ["", "model."])
        run = decoder_forward
    return cfg, tensors, prefix, run


def check_against_fixture_golden(name):
    """The reference forward against the fixture's own goldens (right-padded batch, real tokens)."""
    folder = os.path.join(FIXTURES, name)
    cfg, tensors, prefix, run = model(folder)
    golden, _ = mdf.read_safetensors(os.path.join(folder, "golden.safetensors"))
    ids, mask = golden["input_ids"], golden["attention_mask"]
    types = golden.get("token_type_ids", torch.zeros_like(ids))
    with torch.no_grad():
        hs, final = run(Params(tensors, prefix), cfg, ids, mask, types)
    worst = 0.0
    real = mask.bool()
    states = [(f"hidden.{l}", h) for l, h in enumerate(hs)] + ([("hidden.final", final)] if final is not None else [])
    for key, h in states:
        g = golden[key].to(torch.float64)
        rel = ((h - g).abs()[real].max() / g[real].abs().max()).item()
        worst = max(worst, rel)
    if worst > 1e-6:
        raise SystemExit(f"{name}: the reference forward differs from golden.safetensors by {worst:.2e} (relative)")
    return worst


def batch(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    V = cfg["vocab_size"]
    pad = cfg.get("pad_token_id")
    pad = 0 if pad is None else pad
    ids = torch.full((len(LENGTHS), T), pad, dtype=torch.int64)
    mask = torch.zeros((len(LENGTHS), T), dtype=torch.int64)
    for r, (n, side) in enumerate(LENGTHS):
        body = torch.randint(5, V - 1, (n,), generator=g)
        start = T - n if side == "left" else 0
        ids[r, start:start + n] = body
        mask[r, start:start + n] = 1
    types = torch.zeros_like(ids)
    if cfg.get("type_vocab_size", 0) > 1:
        types[0, 5:] = 1  # a sentence pair in row 0
    first = torch.cumsum(mask, dim=1) == 1
    is_target = mask.bool() & ~first
    return ids, mask, types, is_target.long()


def pool(state, mask, is_target, mode):
    rows = []
    for s in range(state.shape[0]):
        real = torch.nonzero(mask[s]).flatten()
        if mode == "mean":
            t = torch.nonzero(is_target[s]).flatten()
            rows.append(state[s, t].mean(0))
        elif mode == "cls":
            rows.append(state[s, real[0]])
        elif mode == "last":
            rows.append(state[s, real[-1]])
        else:
            raise SystemExit(f"pooling {mode}")
    return torch.stack(rows)


def golden_for(name, entry, mode, seed):
    folder = os.path.join(FIXTURES, name)
    cfg, tensors, prefix, run = model(folder)
    ids, mask, types, is_target = batch(cfg, seed)
    P = Params(tensors, prefix)
    hs, final = run(P, cfg, ids, mask, types)
    L = len(hs) - 1
    layer = L + 1 if entry == "final" else entry
    state = final if entry == "final" else hs[entry]
    z = pool(state, mask, is_target, mode)
    c = torch.randn(z.shape, generator=torch.Generator().manual_seed(seed + 1000), dtype=torch.float64)
    loss = (c * z).sum()
    loss.backward()
    out = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "is_target": is_target,
           "pooled": z.detach().to(torch.float32), "pooled_gradient": c.to(torch.float32)}
    for full in P.used:
        grad = P.leaves[full].grad
        out["grad." + full] = (torch.zeros_like(P.leaves[full]) if grad is None else grad).to(torch.float32)
    meta = {"layer": str(layer), "pooling": mode, "reference": "scripts/make_gradient_goldens.py",
            "loss": "sum(pooled_gradient * pooled)"}
    return folder, out, meta, len(P.used)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="check the reference forward and compute the goldens, write nothing")
    args = parser.parse_args()
    for name, entry, mode, seed in GOLDENS:
        worst = check_against_fixture_golden(name)
        folder, out, meta, count = golden_for(name, entry, mode, seed)
        path = os.path.join(folder, "gradient_golden.safetensors")
        if not args.check:
            mdf.write_safetensors(path, out, meta)
        norms = ", ".join(f"{k[5:]} {v.norm():.3g}" for k, v in list(out.items()) if k.startswith("grad."))[:160]
        print(f"{name}: reference forward within {worst:.1e} of golden.safetensors; {count} parameter tensors, layer {meta['layer']}, "
              f"{mode} pooling{'' if args.check else ' -> ' + os.path.relpath(path)}\n    {norms} ...")


if __name__ == "__main__":
    main()
