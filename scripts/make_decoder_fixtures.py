#!/usr/bin/python3
"""Generate tiny seeded decoder fixtures (Llama, Mistral, Qwen2, Qwen3, Gemma) in exact Hugging Face layout.

Run with Debian's python3-torch (1.13):   /usr/bin/python3 scripts/make_decoder_fixtures.py
Optional cross-check on a machine that has `transformers` (and `safetensors`) installed:
    python3 scripts/make_decoder_fixtures.py --check-transformers
(loads every decoder fixture folder with AutoModel.from_pretrained, runs it in float64 on the golden
inputs with the golden position_ids and prints the largest difference per hidden state, relative to
the state's largest magnitude; it rewrites nothing).  That check has NOT been run where the fixtures
were made (transformers is not installable there).

This is the companion of scripts/make_fixtures.py (BERT, RoBERTa, GPT-2), which it imports for the
shared helpers (GPT-2 byte-level BPE learner and encoder, JSON writer); it does not change that
script's fixtures.  Nothing from NativeMi is imported, and neither `transformers` nor `safetensors`
is used to write anything: safetensors files are written by hand exactly as make_fixtures.py does
(8-byte LE header length, compact JSON header sorted by tensor name with "__metadata__":
{"format": "pt"}, padded with spaces to a multiple of 8, raw little-endian tensor bytes in name order),
with BF16 written as the upper 16 bits of the float32 pattern (torch's round-to-nearest-even).

Reference semantics: a float64 re-implementation of the eager path of transformers' LlamaModel,
MistralModel, Qwen2Model, Qwen3Model and GemmaModel (eval mode, no dropout):

  h0 = embed_tokens[ids]                        (Gemma: h0 = embed_tokens[ids] * sqrt(hidden_size))
  per layer:  x = norm(h);  q = x Wq^T (+bq), k = x Wk^T (+bk), v = x Wv^T (+bv)   (nn.Linear, [out, in])
              q, k, v viewed as [B, T, heads, head_dim];  Qwen3: q = q_norm(q), k = k_norm(k) over head_dim
              q, k = RoPE(q), RoPE(k)  (rotate_half convention: dims i and i + head_dim/2 form a pair)
              k, v repeated for grouped-query attention: query head h reads key/value head h // (H / H_kv)
              s = q k^T * head_dim**-0.5; keys j > i and padding keys masked; softmax; o = (p v) Wo^T
              h = h + o;  x = norm(h);  h = h + (act(x Wg^T) * (x Wu^T)) Wd^T
  final = norm(h_L)
  norm: RMSNorm w * x / sqrt(mean(x^2) + rms_norm_eps)  (Gemma: (1 + w) * x / sqrt(mean(x^2) + eps))
  act:  SiLU (hidden_act "silu"); Gemma: GELU tanh approximation ("gelu_pytorch_tanh")
  RoPE: inv_freq = 1 / rope_theta**(arange(0, head_dim, 2) / head_dim), Llama 3 rope_scaling applied to
        inv_freq (modeling_rope_utils._compute_llama3_parameters), angle = position * inv_freq,
        cos/sin of cat(angle, angle); all in float64 here (HF: float32, see the fixtures README).
  position_ids = cumsum(attention_mask) - 1 on real tokens, 1 on padding (what HF's generate() passes).

golden: hidden.0 = h0 (HF hidden_states[0]), hidden.l = output of block l BEFORE the final norm
(HF hidden_states[l] for l < L; HF's hidden_states[L] is after the norm), hidden.final = final norm
output (HF last_hidden_state).  The left-padded copy of the batch (hidden_left.*) is computed by
running the reference on the left-padded batch itself; the script asserts that its real tokens equal
the right-padded ones (and each row run alone) to 1e-12.

Weights: seeded normal draws rounded to float32, then to the stored dtype (BF16/F16 for two
fixtures); goldens are computed in float64 from the stored values and saved as F32.
"""
import argparse
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402  (shared helpers; importing it writes nothing)

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

OUT_ROOT = mf.OUT_ROOT
TRANSFORMERS_VERSION = "4.51.3"  # what the config.json files claim to be written by
REFERENCE = "scripts/make_decoder_fixtures.py"

# ----------------------------------------------------------------------------
# safetensors with 16-bit floats
# ----------------------------------------------------------------------------
_DTYPE_NAME = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}
_STORAGE = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _tensor_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2", copy=False).tobytes(order="C")
    np_dtype = {torch.float32: "<f4", torch.float16: "<f2", torch.int64: "<i8"}[t.dtype]
    return t.numpy().astype(np_dtype, copy=False).tobytes(order="C")


def write_safetensors(path, tensors, metadata=None):
    """Same byte layout as make_fixtures.write_safetensors, plus F16 and BF16."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        b = _tensor_bytes(t)
        header[name] = {"dtype": _DTYPE_NAME[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    meta = {"format": "pt"}
    if metadata:
        meta.update(metadata)
    header = {"__metadata__": meta, **header}
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    import numpy as np
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        raw = data[base + s: base + e]
        if v["dtype"] == "BF16":
            t = torch.from_numpy(np.frombuffer(raw, dtype="<i2").copy()).view(torch.bfloat16)
        else:
            np_dtype = {"F32": "<f4", "F16": "<f2", "I64": "<i8", "F64": "<f8"}[v["dtype"]]
            t = torch.from_numpy(np.frombuffer(raw, dtype=np_dtype).copy())
        out[k] = t.reshape(v["shape"])
    return out, header


# ----------------------------------------------------------------------------
# fixture specifications
# ----------------------------------------------------------------------------
LLAMA3_SCALING = {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                  "original_max_position_embeddings": 64, "rope_type": "llama3"}

# vocab: special tokens before (first) / after (last) the 256 byte symbols and the learned merges
TOKENIZERS = {
    "llama": dict(first=[], last=["<|begin_of_text|>", "<|end_of_text|>"], bos="<|begin_of_text|>",
                  eos="<|end_of_text|>", pad=None, unk=None, add_bos=True),
    "mistral": dict(first=["<unk>", "<s>", "</s>"], last=[], bos="<s>", eos="</s>", pad=None, unk="<unk>",
                    add_bos=True),
    "qwen2": dict(first=[], last=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], bos=None, eos="<|endoftext|>",
                  pad="<|endoftext|>", unk=None, add_bos=False),
    "qwen3": dict(first=[], last=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], bos=None, eos="<|im_end|>",
                  pad="<|endoftext|>", unk=None, add_bos=False),
    "gemma": dict(first=["<pad>", "<eos>", "<bos>", "<unk>"], last=[], bos="<bos>", eos="<eos>", pad="<pad>",
                  unk="<unk>", add_bos=True),
}

# d: hidden_size, H / KV: query / key-value heads, hd: head_dim, I: intermediate_size, V: config vocab_size,
# n_tok: tokenizer entries (<= V), P: max_position_embeddings, emb_std: embedding std (small, as trained
# models have, so that the first norm's epsilon moves the goldens), std: matrix std.
FIXTURES = [
    dict(name="llama-tiny", family="llama", arch="LlamaModel", prefix="", dtype="float32",
         d=64, L=3, H=4, KV=2, hd=16, I=128, V=320, n_tok=320, P=256, eps=1e-05,
         theta=500000.0, rope_scaling=LLAMA3_SCALING, tied=True, emb_std=0.02, std=0.15, seed=3001, iseed=4001),
    dict(name="llama-tiny-bf16", family="llama", arch="LlamaForCausalLM", prefix="model.", dtype="bfloat16",
         d=48, L=2, H=4, KV=1, hd=12, I=96, V=300, n_tok=300, P=128, eps=1e-06,
         theta=10000.0, rope_scaling=None, tied=False, emb_std=0.02, std=0.15, seed=3002, iseed=4002),
    dict(name="mistral-tiny", family="mistral", arch="MistralForCausalLM", prefix="model.", dtype="float32",
         d=64, L=2, H=8, KV=2, hd=8, I=128, V=320, n_tok=320, P=256, eps=1e-05,
         theta=1000000.0, rope_scaling=None, tied=False, emb_std=0.02, std=0.15, seed=3003, iseed=4003),
    dict(name="qwen2-tiny", family="qwen2", arch="Qwen2ForCausalLM", prefix="model.", dtype="float32",
         d=64, L=2, H=4, KV=1, hd=16, I=128, V=336, n_tok=320, P=256, eps=1e-06,
         theta=1000000.0, rope_scaling=None, tied=False, emb_std=0.02, std=0.15, bias_std=0.3,
         seed=3004, iseed=4004),
    dict(name="qwen2-tiny-f16", family="qwen2", arch="Qwen2ForCausalLM", prefix="model.", dtype="float16",
         d=64, L=2, H=4, KV=1, hd=16, I=128, V=336, n_tok=320, P=256, eps=1e-06,
         theta=1000000.0, rope_scaling=None, tied=False, emb_std=0.02, std=0.15, bias_std=0.3,
         seed=3004, iseed=4004),
    dict(name="qwen3-tiny", family="qwen3", arch="Qwen3ForCausalLM", prefix="model.", dtype="float32",
         d=48, L=2, H=4, KV=2, hd=16, I=96, V=336, n_tok=320, P=256, eps=1e-06,
         theta=1000000.0, rope_scaling=None, tied=True, emb_std=0.02, std=0.15, qk_norm_std=0.3,
         seed=3005, iseed=4005),
    dict(name="gemma-tiny", family="gemma", arch="GemmaForCausalLM", prefix="model.", dtype="float32",
         d=48, L=2, H=4, KV=1, hd=16, I=96, V=320, n_tok=320, P=256, eps=1e-06,
         theta=10000.0, rope_scaling=None, tied=True, emb_std=0.005, std=0.15, seed=3006, iseed=4006),
]


def family_traits(s):
    fam = s["family"]
    return dict(norm="gemma" if fam == "gemma" else "rms",
                act="gelu_pytorch_tanh" if fam == "gemma" else "silu",
                qkv_bias=fam == "qwen2", qk_norm=fam == "qwen3", emb_scale=fam == "gemma",
                window=None)


# ----------------------------------------------------------------------------
# tokenizer files
# ----------------------------------------------------------------------------
class Tok:
    def __init__(self, s):
        spec = TOKENIZERS[s["family"]]
        self.spec = spec
        self.vocab, self.merges = mf.make_gpt2_tokenizer(s["n_tok"], special_first=spec["first"],
                                                          special_last=spec["last"])
        self.specials = spec["first"] + spec["last"]
        self.special_ids = sorted(self.vocab[t] for t in self.specials)
        self.body_ids = [i for i in range(len(self.vocab)) if i not in set(self.special_ids)]
        self.bos_id = self.vocab[spec["bos"]] if spec["bos"] else None
        self.eos_id = self.vocab[spec["eos"]]
        self.pad_id = self.vocab[spec["pad"]] if spec["pad"] else self.eos_id  # no pad token: pad with eos

    def with_special(self, ids):
        return ([self.bos_id] if self.spec["add_bos"] else []) + ids

    def write(self, folder, s):
        mf.write_bpe_files(folder, self.vocab, self.merges)
        spec = self.spec
        added = {str(self.vocab[t]): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                      "single_word": False, "special": True} for t in self.specials}
        mf.write_json(os.path.join(folder, "tokenizer_config.json"), {
            "add_bos_token": spec["add_bos"], "add_eos_token": False, "add_prefix_space": False,
            "added_tokens_decoder": added, "bos_token": spec["bos"], "clean_up_tokenization_spaces": False,
            "eos_token": spec["eos"], "errors": "replace", "model_max_length": s["P"], "pad_token": spec["pad"],
            "tokenizer_class": "GPT2Tokenizer", "unk_token": spec["unk"]})
        cases = []
        for t in mf.BPE_CASES:
            ids = mf.bpe_encode(t, self.vocab, self.merges)
            cases.append({"text": t, "pretokens": mf.gpt2_pretokenize(t), "ids": ids,
                          "ids_with_special": self.with_special(ids)})
        mf.write_json(os.path.join(folder, "tokenizer_cases.json"), {
            "note": "GPT-2 byte-level BPE (GPT-2's pre-tokenizer pattern, every byte a token, merges learned from "
                    "make_fixtures.py's six sentences), no special tokens in 'ids'. 'ids_with_special' follows "
                    "tokenizer_config.json: " + (f"{spec['bos']} (id {self.bos_id}) prepended (add_bos_token)"
                                                 if spec["add_bos"] else "nothing added (add_bos_token false)") +
                    ", no EOS (add_eos_token false). Special-token strings in the text are encoded as plain text.",
            "add_bos_token": spec["add_bos"], "add_eos_token": False,
            "pattern": mf.GPT2_PATTERN, "cases": cases})


# ----------------------------------------------------------------------------
# configs (keys as transformers 4.51 save_pretrained writes them: PretrainedConfig.to_diff_dict, sorted)
# ----------------------------------------------------------------------------
def make_config(s, tok):
    fam = s["family"]
    common = {
        "architectures": [s["arch"]], "attention_dropout": 0.0, "eos_token_id": tok.eos_id,
        "hidden_size": s["d"], "initializer_range": 0.02, "intermediate_size": s["I"],
        "max_position_embeddings": s["P"], "model_type": fam, "num_attention_heads": s["H"],
        "num_hidden_layers": s["L"], "num_key_value_heads": s["KV"], "rms_norm_eps": s["eps"],
        "rope_theta": s["theta"], "torch_dtype": s["dtype"], "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True, "vocab_size": s["V"],
    }
    if fam == "llama":
        c = dict(common, attention_bias=False, bos_token_id=tok.bos_id, head_dim=s["hd"], hidden_act="silu",
                 mlp_bias=False, pretraining_tp=1, rope_scaling=s["rope_scaling"], tie_word_embeddings=s["tied"])
    elif fam == "mistral":
        c = dict(common, bos_token_id=tok.bos_id, head_dim=s["hd"], hidden_act="silu", sliding_window=None,
                 tie_word_embeddings=s["tied"])
    elif fam == "qwen2":
        # Qwen2Config has no head_dim (the model uses hidden_size // num_attention_heads); q/k/v biases are
        # not a config field (always on).  Sliding attention is used only when use_sliding_window is true.
        c = dict(common, bos_token_id=tok.eos_id, hidden_act="silu", max_window_layers=s["L"], rope_scaling=None,
                 sliding_window=s["P"], tie_word_embeddings=s["tied"], use_sliding_window=False)
    elif fam == "qwen3":
        c = dict(common, attention_bias=False, bos_token_id=tok.vocab["<|endoftext|>"], head_dim=s["hd"],
                 hidden_act="silu", max_window_layers=s["L"], rope_scaling=None, sliding_window=None,
                 tie_word_embeddings=s["tied"], use_sliding_window=False)
    elif fam == "gemma":
        # tie_word_embeddings is not written: GemmaConfig's default (True) equals PretrainedConfig's.
        assert s["tied"]
        c = dict(common, attention_bias=False, bos_token_id=tok.bos_id, head_dim=s["hd"],
                 hidden_act="gelu_pytorch_tanh", hidden_activation="gelu_pytorch_tanh", pad_token_id=tok.pad_id)
    else:
        raise ValueError(fam)
    return c


# ----------------------------------------------------------------------------
# weights
# ----------------------------------------------------------------------------
def make_weights(s):
    """Returns (stored weights in the storage dtype, their float32 draws)."""
    t = family_traits(s)
    d, L, H, KV, hd, I, V = s["d"], s["L"], s["H"], s["KV"], s["hd"], s["I"], s["V"]
    r = mf.Draw(s["seed"])
    std, bstd = s["std"], s.get("bias_std", 0.02)
    p = s["prefix"]

    def norm_w(n):  # Gemma stores w and multiplies by (1 + w)
        return r.normal((n,), 0.1) if t["norm"] == "gemma" else r.normal((n,), 0.1, 1.0)

    W = {p + "embed_tokens.weight": r.normal((V, d), s["emb_std"])}
    for i in range(L):
        n = f"{p}layers.{i}."
        W[n + "input_layernorm.weight"] = norm_w(d)
        for nm, rows in (("q", H * hd), ("k", KV * hd), ("v", KV * hd)):
            W[n + f"self_attn.{nm}_proj.weight"] = r.normal((rows, d), std)
            if t["qkv_bias"]:
                W[n + f"self_attn.{nm}_proj.bias"] = r.normal((rows,), bstd)
        W[n + "self_attn.o_proj.weight"] = r.normal((d, H * hd), std)
        if t["qk_norm"]:
            W[n + "self_attn.q_norm.weight"] = r.normal((hd,), s["qk_norm_std"], 1.0)
            W[n + "self_attn.k_norm.weight"] = r.normal((hd,), s["qk_norm_std"], 1.0)
        W[n + "post_attention_layernorm.weight"] = norm_w(d)
        W[n + "mlp.gate_proj.weight"] = r.normal((I, d), std)
        W[n + "mlp.up_proj.weight"] = r.normal((I, d), std)
        W[n + "mlp.down_proj.weight"] = r.normal((d, I), std)
    W[p + "norm.weight"] = norm_w(d)
    if not s["tied"]:
        W["lm_head.weight"] = r.normal((V, d), std)  # ignored by the engine; no part of the goldens
    stored = {k: v.to(_STORAGE[s["dtype"]]) for k, v in W.items()}
    for k, v in stored.items():
        assert bool((v != 0).all()) and bool(torch.isfinite(v.float()).all()), k
    return stored, W


def f64(W):
    return {k: v.to(torch.float64) for k, v in W.items()}


# ----------------------------------------------------------------------------
# reference forward pass (float64)
# ----------------------------------------------------------------------------
def llama3_inv_freq(inv, rs):
    """modeling_rope_utils._compute_llama3_parameters, in the dtype of inv."""
    factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / low, old / high
    wavelen = 2 * math.pi / inv
    inv_l = torch.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
    is_medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(is_medium, smoothed, inv_l)


def inv_freq(s, m, hf32=False):
    hd, theta = s["hd"], m.get("theta", s["theta"])
    rs = None if m.get("no_rope_scaling") else s["rope_scaling"]
    if hf32:  # exactly HF's expressions: int64 arange -> float32, python-float base ** float32 tensor
        inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    else:
        inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    return llama3_inv_freq(inv, rs) if rs else inv


def rope_tables(s, pos, m):
    """cos, sin [B, 1, T, hd] (rotate_half layout: the angle table repeated twice)."""
    hf32 = m.get("rope32") or m.get("hf32")
    inv = inv_freq(s, m, hf32)
    B = pos.shape[0]
    if hf32:  # LlamaRotaryEmbedding.forward: float32 matmul of inv_freq [B, hd/2, 1] @ positions [B, 1, T]
        freqs = (inv[None, :, None].float().expand(B, -1, 1) @ pos[:, None, :].float()).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(torch.float64), emb.sin().to(torch.float64)
    else:
        freqs = pos.to(torch.float64)[:, :, None] * inv[None, None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
    return cos[:, None], sin[:, None]


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def apply_rope(x, cos, sin, interleaved=False):
    if not interleaved:
        return x * cos + rotate_half(x) * sin
    # GPT-J / Meta-original convention: dims (2i, 2i+1) form a pair with frequency i (a mistake here)
    h = x.shape[-1] // 2
    c, sn = cos[..., :h], sin[..., :h]
    xe, xo = x[..., 0::2], x[..., 1::2]
    return torch.stack((xe * c - xo * sn, xo * c + xe * sn), dim=-1).flatten(-2)


def norm(x, w, eps, kind, hf32=False):
    if kind == "gemma":  # GemmaRMSNorm: float32 internally in HF, (1 + w) applied before the cast back
        if hf32:
            x32 = x.float()
            out = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
            return (out * (1.0 + w.float())).to(x.dtype)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + w)
    if kind == "gemma-no-plus-one":
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w
    if hf32:  # LlamaRMSNorm: float32 internally, weight applied after casting back
        x32 = x.to(torch.float32)
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
        return w * x32.to(x.dtype)
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


ACTS = {
    "silu": F.silu,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_erf": F.gelu,
}


def position_ids_from_mask(mask):
    """What HF's generate() passes: cumsum(mask) - 1, padding positions set to 1."""
    return (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)


def forward(W, s, ids, mask, pos, m=None):
    """Reference forward; m: deliberate mistakes / HF-precision emulation for the sensitivity table."""
    m = m or {}
    t = family_traits(s)
    p = s["prefix"]
    B, T = ids.shape
    H, KV, hd, L = s["H"], s["KV"], s["hd"], s["L"]
    rep = H // KV
    eps = m.get("eps", s["eps"])
    kind = m.get("norm", t["norm"])
    hf32 = bool(m.get("hf32"))
    act = ACTS[m.get("act", t["act"])]
    no_bias = m.get("no_bias", ())

    def nrm(x, name):
        return norm(x, W[name], eps, kind, hf32)

    def lin(x, name, bias):
        y = x @ W[name + ".weight"].t()
        if bias and name[-6] not in no_bias:  # name ends in "{q,k,v}_proj"
            y = y + W[name + ".bias"]
        return y

    h = W[p + "embed_tokens.weight"][ids]
    if t["emb_scale"] and not m.get("no_emb_scale"):
        # GemmaModel.forward: normalizer = torch.tensor(hidden_size**0.5, dtype=hidden_states.dtype)
        h = h * torch.tensor(m.get("normalizer", s["d"] ** 0.5), dtype=torch.float64)
    hs = [h]
    cos, sin = rope_tables(s, pos, m)
    qi = torch.arange(T)[:, None]
    kj = torch.arange(T)[None, :]
    allowed = mask.bool()[:, None, :].expand(B, T, T)
    if not m.get("no_causal"):
        allowed = allowed & (kj <= qi)[None]
    window = m.get("window", t["window"])
    if window is not None:  # HF: key j masked when j <= i - sliding_window
        allowed = allowed & (kj > qi - window)[None]
    interleaved = m.get("rope_interleaved", False)
    for i in range(L):
        n = f"{p}layers.{i}.self_attn."
        x = nrm(h, f"{p}layers.{i}.input_layernorm.weight")
        q = lin(x, n + "q_proj", t["qkv_bias"]).view(B, T, H, hd)
        k = lin(x, n + "k_proj", t["qkv_bias"]).view(B, T, KV, hd)
        v = lin(x, n + "v_proj", t["qkv_bias"]).view(B, T, KV, hd)
        qk_norm = t["qk_norm"] and not m.get("no_qk_norm")
        if qk_norm and not m.get("qk_norm_after_rope"):
            q, k = nrm(q, n + "q_norm.weight"), nrm(k, n + "k_norm.weight")
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = apply_rope(q, cos, sin, interleaved), apply_rope(k, cos, sin, interleaved)
        if qk_norm and m.get("qk_norm_after_rope"):
            q, k = nrm(q, n + "q_norm.weight"), nrm(k, n + "k_norm.weight")
        if m.get("gqa_mod"):  # mistake: query head h reads key/value head h % KV
            k, v = k.repeat(1, rep, 1, 1), v.repeat(1, rep, 1, 1)
        else:  # repeat_kv: [B, KV, T, hd] -> [B, KV * rep, T, hd], head h reads kv head h // rep
            k = k[:, :, None].expand(B, KV, rep, T, hd).reshape(B, H, T, hd)
            v = v[:, :, None].expand(B, KV, rep, T, hd).reshape(B, H, T, hd)
        scores = (q @ k.transpose(-1, -2)) * hd ** -0.5
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
        if hf32:  # eager_attention_forward: softmax(..., dtype=torch.float32).to(query.dtype)
            probs = torch.softmax(scores.to(torch.float32), dim=-1).to(torch.float64)
        else:
            probs = torch.softmax(scores, dim=-1)
        probs = torch.nan_to_num(probs, nan=0.0)  # a query with no key at all (left padding): output 0
        o = (probs @ v).transpose(1, 2).reshape(B, T, H * hd)
        h = h + o @ W[n + "o_proj.weight"].t()
        x = nrm(h, f"{p}layers.{i}.post_attention_layernorm.weight")
        mp = f"{p}layers.{i}.mlp."
        g = x @ W[mp + "gate_proj.weight"].t()
        u = x @ W[mp + "up_proj.weight"].t()
        h = h + (act(g) * u) @ W[mp + "down_proj.weight"].t()
        hs.append(h)
    final = nrm(h, p + "norm.weight")
    return hs, final


# ----------------------------------------------------------------------------
# golden inputs
# ----------------------------------------------------------------------------
LENGTHS = mf.LENGTHS  # [20, 1, 7, 13, 3, 16]
T_MAX = mf.T_MAX      # 20


def make_inputs(tok, seed):
    g = torch.Generator().manual_seed(seed)
    N = len(LENGTHS)
    right = torch.full((N, T_MAX), tok.pad_id, dtype=torch.int64)
    left = torch.full((N, T_MAX), tok.pad_id, dtype=torch.int64)
    mr = torch.zeros((N, T_MAX), dtype=torch.int64)
    ml = torch.zeros((N, T_MAX), dtype=torch.int64)
    body = torch.tensor(tok.body_ids, dtype=torch.int64)
    for b, n in enumerate(LENGTHS):
        row = body[torch.randint(0, len(body), (n,), generator=g)]
        if tok.spec["add_bos"]:
            row[0] = tok.bos_id
        right[b, :n] = row
        mr[b, :n] = 1
        left[b, T_MAX - n:] = row
        ml[b, T_MAX - n:] = 1
    return right, mr, left, ml


# ----------------------------------------------------------------------------
# checks and sensitivity
# ----------------------------------------------------------------------------
def close(a, b, tol=1e-12):
    return float((a - b).abs().max()) <= tol


def real_rel_diff(hs_a, fa, hs_b, fb, mask):
    """max over states of max|a - b| / max|b| on real tokens."""
    real = mask.bool()
    worst = 0.0
    for a, b in list(zip(hs_a, hs_b)) + [(fa, fb)]:
        worst = max(worst, float((a - b)[real].abs().max()) / float(b[real].abs().max()))
    return worst


def naive_forward(Wd, s, row):
    """A second, scalar implementation for one unpadded sequence (explicit loops over tokens, heads and
    rotary pairs, no masks, no repeat_kv), written from the same HF semantics, to catch vectorisation
    mistakes in forward(): returns the same list of states and the final norm output as numpy arrays."""
    import numpy as np
    t = family_traits(s)
    p, H, KV, hd, L, eps, d = s["prefix"], s["H"], s["KV"], s["hd"], s["L"], s["eps"], s["d"]
    A = {k: v.numpy() for k, v in Wd.items()}
    inv = [1.0 / s["theta"] ** (2 * i / hd) for i in range(hd // 2)]
    if s["rope_scaling"]:
        rs = s["rope_scaling"]
        old, lo, hi, fac = rs["original_max_position_embeddings"], rs["low_freq_factor"], rs["high_freq_factor"], \
            rs["factor"]
        scaled = []
        for f in inv:
            wl = 2 * math.pi / f
            if wl < old / hi:
                scaled.append(f)
            elif wl > old / lo:
                scaled.append(f / fac)
            else:
                sm = (old / wl - lo) / (hi - lo)
                scaled.append((1 - sm) * f / fac + sm * f)
        inv = scaled

    def rmsn(x, w):
        r = 1.0 / math.sqrt(float(np.mean(x * x)) + eps)
        return x * r * ((1.0 + w) if t["norm"] == "gemma" else w)

    def rot(x, position):
        y = x.copy()
        for i in range(hd // 2):
            c, sn = math.cos(position * inv[i]), math.sin(position * inv[i])
            y[i] = x[i] * c - x[i + hd // 2] * sn
            y[i + hd // 2] = x[i + hd // 2] * c + x[i] * sn
        return y

    def act(x):
        if t["act"] == "silu":
            return x / (1.0 + np.exp(-x))
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))

    n_tok = len(row)
    h = [A[p + "embed_tokens.weight"][tok].copy() for tok in row]
    if t["emb_scale"]:
        h = [x * math.sqrt(d) for x in h]
    states = [np.stack(h)]
    for li in range(L):
        n = f"{p}layers.{li}."
        qs, ks, vs = [], [], []
        for ti in range(n_tok):
            x = rmsn(h[ti], A[n + "input_layernorm.weight"])
            proj = {}
            for nm in "qkv":
                y = A[n + f"self_attn.{nm}_proj.weight"] @ x
                if t["qkv_bias"]:
                    y = y + A[n + f"self_attn.{nm}_proj.bias"]
                proj[nm] = y
            q = [proj["q"][hh * hd:(hh + 1) * hd] for hh in range(H)]
            k = [proj["k"][hh * hd:(hh + 1) * hd] for hh in range(KV)]
            v = [proj["v"][hh * hd:(hh + 1) * hd] for hh in range(KV)]
            if t["qk_norm"]:
                q = [rmsn(x_, A[n + "self_attn.q_norm.weight"]) for x_ in q]
                k = [rmsn(x_, A[n + "self_attn.k_norm.weight"]) for x_ in k]
            qs.append([rot(x_, ti) for x_ in q])
            ks.append([rot(x_, ti) for x_ in k])
            vs.append(v)
        new_h = []
        for ti in range(n_tok):
            heads = []
            for hh in range(H):
                g = hh // (H // KV)
                sc = [float(qs[ti][hh] @ ks[tj][g]) / math.sqrt(hd) for tj in range(ti + 1)]
                mx = max(sc)
                e = [math.exp(z - mx) for z in sc]
                tot = sum(e)
                heads.append(sum((e[tj] / tot) * vs[tj][g] for tj in range(ti + 1)))
            hcur = h[ti] + A[n + "self_attn.o_proj.weight"] @ np.concatenate(heads)
            x = rmsn(hcur, A[n + "post_attention_layernorm.weight"])
            mlp = A[n + "mlp.down_proj.weight"] @ (act(A[n + "mlp.gate_proj.weight"] @ x) *
                                                   (A[n + "mlp.up_proj.weight"] @ x))
            new_h.append(hcur + mlp)
        h = new_h
        states.append(np.stack(h))
    final = np.stack([rmsn(x, A[p + "norm.weight"]) for x in h])
    return states, final


def self_checks(Wd, s, ids, mask, pos, idl, ml, pl, hs, final):
    # 0. the scalar implementation agrees on two rows (the longest and a short one)
    for b in (0, 4):
        n = LENGTHS[b]
        st, fi = naive_forward(Wd, s, ids[b, :n].tolist())
        for l in range(len(hs)):
            assert float(abs(st[l] - hs[l][b, :n].numpy()).max()) < 1e-10, (s["name"], "naive", b, l)
        assert float(abs(fi - final[b, :n].numpy()).max()) < 1e-10, (s["name"], "naive final", b)
    # 1. every row alone, unpadded, positions arange(n)
    for b, n in enumerate(LENGTHS):
        hs1, f1 = forward(Wd, s, ids[b:b + 1, :n], mask[b:b + 1, :n], torch.arange(n)[None])
        for l in range(len(hs)):
            assert close(hs1[l][0], hs[l][b, :n]), (s["name"], "row alone", b, l)
        assert close(f1[0], final[b, :n]), (s["name"], "row alone final", b)
    # 2. left padding with positions from the mask gives the same real-token states
    hsl, fl = forward(Wd, s, idl, ml, pl)
    for l in range(len(hs)):
        assert close(hsl[l][ml.bool()], hs[l][mask.bool()]), (s["name"], "left vs right", l)
    assert close(fl[ml.bool()], final[mask.bool()])
    # 3. causality: changing token 9 of row 0 leaves positions < 9 unchanged and changes >= 9
    ids2 = ids.clone()
    ids2[0, 9] = ids[0, 10]
    hs2, f2 = forward(Wd, s, ids2, mask, pos)
    for l in range(len(hs)):
        assert close(hs2[l][0, :9], hs[l][0, :9]), (s["name"], "causal", l)
        assert float((hs2[l][0, 9:] - hs[l][0, 9:]).abs().max()) > 1e-6
    return hsl, fl


def sensitivities(Wd, W32d, s, ids, mask, pos, idl, ml, hs, final):
    t = family_traits(s)
    cases = []
    if s["rope_scaling"]:
        cases.append(("no rope_scaling (plain inv_freq)", {"no_rope_scaling": True}))
    if s["theta"] != 10000.0:
        cases.append((f"rope_theta 10000 instead of {s['theta']:g}", {"theta": 10000.0}))
    else:
        cases.append(("rope_theta 1e6 instead of 10000", {"theta": 1e6}))
    cases.append(("RoPE pairs (2i, 2i+1) instead of rotate_half", {"rope_interleaved": True}))
    if 1 < s["KV"] < s["H"]:
        cases.append(("GQA: query head h reads kv head h % n_kv (not h // group)", {"gqa_mod": True}))
    cases.append(("rms_norm_eps x 10", {"eps": s["eps"] * 10}))
    cases.append(("rms_norm_eps / 10", {"eps": s["eps"] / 10}))
    cases.append(("rms_norm_eps = 0", {"eps": 0.0}))
    cases.append(("no causal mask", {"no_causal": True}))
    if t["act"] == "silu":
        cases.append(("GELU (tanh) instead of SiLU", {"act": "gelu_pytorch_tanh"}))
    else:
        cases.append(("exact (erf) GELU instead of tanh", {"act": "gelu_erf"}))
        cases.append(("SiLU instead of GELU (tanh)", {"act": "silu"}))
    if t["qkv_bias"]:
        for nm in "qkv":
            cases.append((f"{nm}_proj bias ignored", {"no_bias": (nm,)}))
    if t["qk_norm"]:
        cases.append(("q_norm / k_norm omitted", {"no_qk_norm": True}))
        cases.append(("q_norm / k_norm after RoPE instead of before", {"qk_norm_after_rope": True}))
    if t["norm"] == "gemma":
        cases.append(("RMSNorm weight w instead of (1 + w)", {"norm": "gemma-no-plus-one"}))
        cases.append(("no sqrt(hidden_size) embedding scale", {"no_emb_scale": True}))
        nb = float(torch.tensor(s["d"] ** 0.5).to(torch.bfloat16))
        cases.append((f"normalizer rounded to bfloat16 ({nb:g}, a BF16 run of HF)", {"normalizer": nb}))
        n32 = float(torch.tensor(s["d"] ** 0.5, dtype=torch.float64).to(torch.float32))
        cases.append((f"normalizer rounded to float32 ({n32!r}, an F32 run of HF)", {"normalizer": n32}))
    if s["family"] == "mistral":
        cases.append(("sliding_window 8 applied (what a window shorter than the batch does)", {"window": 8}))
    cases.append(("RoPE cos/sin computed in float32 as HF does", {"rope32": True}))
    cases.append(("HF's float32 internals (RMSNorm, softmax, RoPE): expected --check-transformers gap",
                  {"hf32": True}))
    out = {}
    for label, m in cases:
        hs2, f2 = forward(Wd, s, ids, mask, pos, m)
        out[label] = real_rel_diff(hs2, f2, hs, final, mask)
    # Left-padded batch with positions arange(T) instead of from the mask (what HF does without position_ids):
    # RoPE scores depend only on i - j, so a constant shift of a row's positions changes nothing but rounding.
    # Asserted here, not listed: it is no test of the engine's positions.
    hs2, f2 = forward(Wd, s, idl, ml, torch.arange(T_MAX)[None].expand(len(LENGTHS), T_MAX))
    hs2 = [to_left_inv(x, mask, ml) for x in hs2]
    assert real_rel_diff(hs2, to_left_inv(f2, mask, ml), hs, final, mask) < 1e-12
    if s["dtype"] != "float32":
        hs2, f2 = forward(W32d, s, ids, mask, pos)
        out[f"float32 draws instead of the stored {s['dtype']} weights"] = real_rel_diff(hs2, f2, hs, final, mask)
    return out


def to_left_inv(x, mask_right, mask_left):
    """Left-padded states moved to the right-padded layout (real tokens only; pads 0)."""
    out = torch.zeros_like(x)
    out[mask_right.bool()] = x[mask_left.bool()]
    return out


def rope_precision(s):
    """Largest |cos, sin (HF float32) - cos, sin (float64)| over positions 0..T_MAX-1."""
    pos = torch.arange(T_MAX)[None]
    c64, s64 = rope_tables(s, pos, {})
    c32, s32 = rope_tables(s, pos, {"rope32": True})
    inv64, inv32 = inv_freq(s, {}), inv_freq(s, {}, hf32=True)
    return (max(float((c64 - c32).abs().max()), float((s64 - s32).abs().max())),
            float(((inv32.double() - inv64) / inv64).abs().max()))


# ----------------------------------------------------------------------------
# build
# ----------------------------------------------------------------------------
def build(out_root, only=None):
    summary = {}
    for s in FIXTURES:
        if only and s["name"] not in only:
            continue
        folder = os.path.join(out_root, s["name"])
        os.makedirs(folder, exist_ok=True)
        tok = Tok(s)
        assert len(tok.vocab) == s["n_tok"] <= s["V"]
        cfg = make_config(s, tok)
        stored, W32 = make_weights(s)
        mf.write_json(os.path.join(folder, "config.json"), cfg)
        write_safetensors(os.path.join(folder, "model.safetensors"), stored)
        tok.write(folder, s)

        ids, mask, idl, ml = make_inputs(tok, s["iseed"])
        pos, pl = position_ids_from_mask(mask), position_ids_from_mask(ml)
        Wd = f64(stored)
        hs, final = forward(Wd, s, ids, mask, pos)
        hsl, fl = self_checks(Wd, s, ids, mask, pos, idl, ml, pl, hs, final)
        sens = sensitivities(Wd, f64(W32), s, ids, mask, pos, idl, ml, hs, final)

        G = {"input_ids": ids, "attention_mask": mask, "position_ids": pos,
             "input_ids_left": idl, "attention_mask_left": ml, "position_ids_left": pl}
        for l, h in enumerate(hs):
            G[f"hidden.{l}"] = h.to(torch.float32)
            G[f"hidden_left.{l}"] = (hsl[l] * ml[..., None]).to(torch.float32)  # pads zeroed
        G["hidden.final"] = final.to(torch.float32)
        G["hidden_left.final"] = (fl * ml[..., None]).to(torch.float32)
        model_class = s["arch"].replace("ForCausalLM", "Model")
        write_safetensors(os.path.join(folder, "golden.safetensors"), G,
                          {"reference": REFERENCE, "model": model_class})

        # read back what was written
        M, _ = read_safetensors(os.path.join(folder, "model.safetensors"))
        assert set(M) == set(stored) and all(torch.equal(M[k], stored[k]) for k in M)
        R, _ = read_safetensors(os.path.join(folder, "golden.safetensors"))
        assert set(R) == set(G) and all(torch.equal(R[k], G[k]) for k in R)
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
            assert json.load(f) == cfg
        real = mask.bool()
        summary[s["name"]] = {
            "spec": s, "cfg": cfg, "sens": sens, "rope": rope_precision(s),
            "max_abs": [float(h[real].abs().max()) for h in hs] + [float(final[real].abs().max())],
            "tokens": (len(tok.vocab), tok.bos_id, tok.eos_id, tok.pad_id),
        }
    return summary


# ----------------------------------------------------------------------------
# optional: compare with transformers
# ----------------------------------------------------------------------------
HF_TOLERANCE = 2e-5  # relative to each state's largest magnitude over real tokens


def check_transformers(out_root):
    try:
        import transformers
        from transformers import AutoModel
    except ImportError:
        print("transformers not importable: nothing checked")
        return 1
    print("transformers", transformers.__version__, "torch", torch.__version__)
    worst = 0.0
    bad = False
    for s in FIXTURES:
        folder = os.path.join(out_root, s["name"])
        G, _ = read_safetensors(os.path.join(folder, "golden.safetensors"))
        L = s["L"]
        runs = [("right", "eager", "", G["input_ids"], G["attention_mask"], G["position_ids"]),
                # eager in float64 cannot run left padding: a padded query with no key gets finfo(float64).min
                # everywhere, which the float32 softmax turns into -inf and NaN (and NaN reaches real tokens
                # through 0 * NaN in the next layer); SDPA computes that row in float64.
                ("left", "sdpa", "_left", G["input_ids_left"], G["attention_mask_left"], G["position_ids_left"])]
        for side, impl, suffix, ids, mask, pos in runs:
            real = mask.bool()
            model = AutoModel.from_pretrained(folder, attn_implementation=impl).double().eval()
            with torch.no_grad():
                out = model(input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=True,
                            use_cache=False)
            if side == "left" and not all(bool(torch.isfinite(h[real]).all()) for h in out.hidden_states):
                # an SDPA build that gives NaN for a query with no key: eager in float32 adds finfo(float32).min,
                # which stays finite (uniform weights on that padded row), so real tokens stay clean
                print(f"{s['name']:16s} left: SDPA in float64 gave non-finite real-token states; eager float32 instead")
                impl = "eager32"
                model = AutoModel.from_pretrained(folder, attn_implementation="eager").float().eval()
                with torch.no_grad():
                    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=True,
                                use_cache=False)
            hs = out.hidden_states
            assert len(hs) == L + 1, f"{s['name']}: transformers returned {len(hs)} hidden states, expected {L + 1}"
            pairs = [(f"hidden_states[{l}]", hs[l], f"hidden{suffix}.{l}") for l in range(L)]
            pairs += [(f"hidden_states[{L}]", hs[L], f"hidden{suffix}.final"),
                      ("last_hidden_state", out.last_hidden_state, f"hidden{suffix}.final")]
            for label, h, key in pairs:
                ref = G[key].double()
                diff = (h.double() - ref)[real].abs()
                rel = float(diff.max()) / float(ref[real].abs().max())
                if not math.isfinite(rel):
                    rel = float("inf")
                worst = max(worst, rel)
                bad |= not rel <= HF_TOLERANCE
                print(f"{s['name']:16s} {side:5s} {impl:7s} {label:18s} vs {key:18s} "
                      f"max|diff| {float(diff.max()):.3e}  relative {rel:.3e}")
            # HF's last hidden_states entry is after the final norm; ours before it is hidden.L
            d_last = float((hs[L].double() - G[f"hidden{suffix}.{L}"].double())[real].abs().max())
            print(f"{s['name']:16s} {side:5s} (hidden_states[{L}] vs hidden{suffix}.{L}: max|diff| {d_last:.3e}, "
                  "expected large: HF's last entry is after the final norm)")
    print(f"worst relative difference (real tokens): {worst:.3e} (tolerance {HF_TOLERANCE:g})")
    return 2 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=OUT_ROOT)
    ap.add_argument("--only", nargs="*", help="fixture names to (re)write (default: all)")
    ap.add_argument("--check-transformers", action="store_true",
                    help="only compare the existing decoder fixtures against transformers' models")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    if a.check_transformers:
        sys.exit(check_transformers(a.out))
    summary = build(a.out, a.only)
    if not a.quiet:
        for name, r in summary.items():
            s = r["spec"]
            print(f"{name}: {s['arch']} prefix={s['prefix']!r} {s['dtype']} d={s['d']} L={s['L']} "
                  f"heads={s['H']}/{s['KV']} head_dim={s['hd']} tokens/bos/eos/pad={r['tokens']}")
            print("   max |state| per layer (real tokens): " + " ".join(f"{x:.3g}" for x in r["max_abs"]))
            print(f"   RoPE float32 (HF) vs float64: max |cos/sin diff| {r['rope'][0]:.2e}, "
                  f"max relative inv_freq diff {r['rope'][1]:.2e}")
            for k, v in r["sens"].items():
                print(f"   relative golden change if {k}: {v:.2e}")


if __name__ == "__main__":
    main()
