#!/usr/bin/python3
"""Exports a tiny seeded BERT (Hugging Face module names) to ONNX with torch.onnx.export.

The ONNX importer's fuzz corpus needs a small, valid BERT export as a seed: the built-in
models' exports are ~90 MB, far beyond what a fuzzer can mutate. torch.onnx.export names
initializers after module paths and stores MatMul weights transposed and unnamed, the same
layout Hugging Face's own export has, so the importer accepts this graph.

Usage: /usr/bin/python3 scripts/make_onnx_seed.py OUT_DIR   (writes tiny-bert.onnx and vocab.txt)
"""
import math
import os
import sys

import torch
from torch import nn

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "##s", "the"]
HIDDEN, HEADS, INTERMEDIATE, LAYERS, POSITIONS, TYPES = 8, 2, 16, 1, 16, 2


class SelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.query = nn.Linear(HIDDEN, HIDDEN)
        self.key = nn.Linear(HIDDEN, HIDDEN)
        self.value = nn.Linear(HIDDEN, HIDDEN)

    def split(self, x):
        b, t, _ = x.shape
        return x.view(b, t, HEADS, HIDDEN // HEADS).permute(0, 2, 1, 3)

    def forward(self, x, additive_mask):
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(HIDDEN // HEADS) + additive_mask
        context = torch.softmax(scores, dim=-1) @ v
        b, _, t, _ = context.shape
        return context.permute(0, 2, 1, 3).reshape(b, t, HIDDEN)


class Output(nn.Module):
    def __init__(self, fan_in):
        super().__init__()
        self.dense = nn.Linear(fan_in, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=1e-12)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        setattr(self, "self", SelfAttention())
        self.output = Output(HIDDEN)

    def forward(self, x, additive_mask):
        return self.output(getattr(self, "self")(x, additive_mask), x)


class Intermediate(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(HIDDEN, INTERMEDIATE)

    def forward(self, x):
        return nn.functional.gelu(self.dense(x))


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = Attention()
        self.intermediate = Intermediate()
        self.output = Output(INTERMEDIATE)

    def forward(self, x, additive_mask):
        a = self.attention(x, additive_mask)
        return self.output(self.intermediate(a), a)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.ModuleList([Layer() for _ in range(LAYERS)])


class Embeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(len(VOCAB), HIDDEN)
        self.position_embeddings = nn.Embedding(POSITIONS, HIDDEN)
        self.token_type_embeddings = nn.Embedding(TYPES, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=1e-12)


class TinyBert(nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = Embeddings()
        self.encoder = Encoder()

    def forward(self, input_ids, attention_mask, token_type_ids):
        t = input_ids.shape[1]
        positions = torch.arange(t).unsqueeze(0)
        e = self.embeddings
        x = e.LayerNorm(e.word_embeddings(input_ids) + e.position_embeddings(positions) + e.token_type_embeddings(token_type_ids))
        additive_mask = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * -10000.0
        for layer in self.encoder.layer:
            x = layer(x, additive_mask)
        return x


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(7)
    model = TinyBert().eval()
    # Distinct values everywhere: the exporter merges initializers with equal contents (every
    # LayerNorm starts at ones), which would hide the Hugging Face names the importer looks for.
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    ids = torch.tensor([[2, 5, 6, 3]])
    torch.onnx.export(model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), os.path.join(out, "tiny-bert.onnx"),
                      input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["last_hidden_state"],
                      dynamic_axes={n: {0: "batch", 1: "sequence"} for n in ["input_ids", "attention_mask", "token_type_ids"]},
                      opset_version=14, do_constant_folding=True)
    with open(os.path.join(out, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(VOCAB) + "\n")


if __name__ == "__main__":
    main()
