#!/usr/bin/python3
"""Write a seeded random-init checkpoint of a real model's shape, in exact Hugging Face layout, for memory and speed checks.

    /usr/bin/python3 scripts/make_random_checkpoint.py --shape qwen2-0.5b --dtype bf16 --out /tmp/qwen2-0.5b-random

No pretrained decoder weights exist on this machine, so what a real model costs in memory is measured on a checkpoint with its
shapes and random values (normal, std 0.02; norm weights 1). The tokenizer files are copied from the matching tiny test fixture
(its ids are all below the real vocabulary size), so `nativemi hidden` and `measure` run on it. Tensors are written one at a
time (numpy only), so the script itself needs little memory.
"""
import argparse
import json
import os
import shutil
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "tests", "NativeMi.Tests", "fixtures")

# Shapes from the models' own config.json files (Hugging Face Qwen/Qwen2-0.5B and Qwen/Qwen2.5-0.5B share this one).
SHAPES = {
    "qwen2-0.5b": {
        "fixture": "qwen2-tiny",
        "config": {
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": "qwen2",
            "hidden_act": "silu",
            "hidden_size": 896,
            "intermediate_size": 4864,
            "num_hidden_layers": 24,
            "num_attention_heads": 14,
            "num_key_value_heads": 2,
            "max_position_embeddings": 32768,
            "max_window_layers": 24,
            "rms_norm_eps": 1e-06,
            "rope_theta": 1000000.0,
            "rope_scaling": None,
            "sliding_window": 32768,
            "use_sliding_window": False,
            "tie_word_embeddings": True,
            "vocab_size": 151936,
            "attention_dropout": 0.0,
            "initializer_range": 0.02,
            "use_cache": True,
            "transformers_version": "4.51.3",
        },
    },
}


def qwen2_tensors(c):
    d, ff, heads, kv = c["hidden_size"], c["intermediate_size"], c["num_attention_heads"], c["num_key_value_heads"]
    head_dim = d // heads
    yield "model.embed_tokens.weight", (c["vocab_size"], d), "normal"
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        yield p + "input_layernorm.weight", (d,), "ones"
        yield p + "self_attn.q_proj.weight", (heads * head_dim, d), "normal"
        yield p + "self_attn.q_proj.bias", (heads * head_dim,), "normal"
        yield p + "self_attn.k_proj.weight", (kv * head_dim, d), "normal"
        yield p + "self_attn.k_proj.bias", (kv * head_dim,), "normal"
        yield p + "self_attn.v_proj.weight", (kv * head_dim, d), "normal"
        yield p + "self_attn.v_proj.bias", (kv * head_dim,), "normal"
        yield p + "self_attn.o_proj.weight", (d, heads * head_dim), "normal"
        yield p + "post_attention_layernorm.weight", (d,), "ones"
        yield p + "mlp.gate_proj.weight", (ff, d), "normal"
        yield p + "mlp.up_proj.weight", (ff, d), "normal"
        yield p + "mlp.down_proj.weight", (d, ff), "normal"
    yield "model.norm.weight", (d,), "ones"


def to_storage(values, dtype):
    if dtype == "f32":
        return values.astype("<f4")
    if dtype == "f16":
        return values.astype("<f2")
    bits = values.astype("<f4").view("<u4")
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # round to nearest even (no NaN in the input)
    return rounded.astype("<u2")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen2-0.5b")
    parser.add_argument("--dtype", choices=["bf16", "f16", "f32"], default="bf16")
    parser.add_argument("--seed", type=int, default=20241201)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    spec = SHAPES[args.shape]
    config = dict(spec["config"])
    fixture = os.path.join(FIXTURES, spec["fixture"])
    fixture_config = json.load(open(os.path.join(fixture, "config.json")))
    for key in ("bos_token_id", "eos_token_id"):
        config[key] = fixture_config[key]
    config["torch_dtype"] = {"bf16": "bfloat16", "f16": "float16", "f32": "float32"}[args.dtype]

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    for name in os.listdir(fixture):
        if name.startswith(("vocab", "merges", "tokenizer")) and name != "tokenizer_cases.json":
            shutil.copy(os.path.join(fixture, name), os.path.join(args.out, name))

    tensors = list(qwen2_tensors(config))
    element = {"bf16": 2, "f16": 2, "f32": 4}[args.dtype]
    dtype_name = {"bf16": "BF16", "f16": "F16", "f32": "F32"}[args.dtype]
    header, offset = {"__metadata__": {"format": "pt", "made_by": "scripts/make_random_checkpoint.py"}}, 0
    for name, shape, _ in sorted(tensors):
        size = int(np.prod(shape)) * element
        header[name] = {"dtype": dtype_name, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * ((8 - len(encoded) % 8) % 8)
    rng = np.random.default_rng(args.seed)
    path = os.path.join(args.out, "model.safetensors")
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for name, shape, init in sorted(tensors):
            values = np.ones(shape, dtype=np.float32) if init == "ones" else (rng.standard_normal(shape, dtype=np.float32) * 0.02)
            f.write(to_storage(values, args.dtype).tobytes(order="C"))
    os.replace(path + ".tmp", path)
    parameters = sum(int(np.prod(s)) for _, s, _ in tensors)
    print(f"wrote {args.out}: {args.shape}, {parameters:,} parameters, {dtype_name}, {os.path.getsize(path):,} bytes")


if __name__ == "__main__":
    main()
