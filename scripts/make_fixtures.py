#!/usr/bin/python3
"""Generate tiny seeded reference ("golden") fixtures in exact Hugging Face layout.

Run with Debian's python3-torch (1.13):   /usr/bin/python3 scripts/make_fixtures.py
Optional cross-check on a machine that has `transformers` installed:
    python3 scripts/make_fixtures.py --check-transformers
(loads every fixture folder with from_pretrained, runs it in float64 on the
golden inputs and prints the max abs difference per hidden state; it does not
rewrite anything).  This check has NOT been run where the fixtures were made
(no transformers there): the reference below is a from-scratch re-implementation
of HF's modelling code and should be re-validated with that flag.

Nothing from NativeMi is imported.  No `transformers` / `safetensors` package is
used: safetensors files are written by hand (8-byte LE header length, compact JSON
header sorted by tensor name with "__metadata__": {"format": "pt"}, header padded
with spaces to a multiple of 8, then raw little-endian tensor bytes in name order).

Output: tests/NativeMi.Tests/fixtures/<name>/ with config.json, model.safetensors,
tokenizer files, tokenizer_cases.json and golden.safetensors; the hand-written
tests/NativeMi.Tests/fixtures/README.md documents the conventions (the script does not touch it).

Reference semantics (HF eager attention path, eval mode, so dropout is a no-op):

GPT-2 (GPT2Model, transformers/models/gpt2/modeling_gpt2.py):
  h0 = wte[ids] + wpe[position_ids], position_ids = arange(T) (right padding only).
  block: a = ln_1(h); qkv = a @ c_attn.weight + c_attn.bias   (Conv1D, weight [in,out])
         q,k,v = split(qkv, n_embd); heads = view(B,T,H,hd)
         w = q k^T / sqrt(hd); causal mask -> finfo.min; + (1-attention_mask)*finfo.min
         p = softmax(w); o = merge(p v) @ c_proj.weight + c_proj.bias; h = h + o
         m = ln_2(h) @ c_fc.weight + c_fc.bias; m = gelu_new(m)
         h = h + m @ mlp.c_proj.weight + mlp.c_proj.bias
  gelu_new(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  LayerNorm eps = layer_norm_epsilon (biased variance).
  hidden.0 = h0, hidden.i = output of block i (1-based) BEFORE ln_f, hidden.final = ln_f(hidden.L).
  HF output_hidden_states: hidden_states[l] == hidden.l for l < L, hidden_states[L] == hidden.final
  (HF applies ln_f before appending the last entry), last_hidden_state == hidden.final.

BERT (BertModel, modeling_bert.py), post-LN:
  e = LayerNorm(word[ids] + position[arange(T)] + token_type[tt]);
  layer: s = q k^T / sqrt(hd) + (1-mask)*finfo.min; p = softmax(s); c = merge(p v)
         a = LayerNorm(c W_o^T + b_o + x)             (nn.Linear weight [out,in])
         f = LayerNorm(gelu_erf(a W_i^T + b_i) W_2^T + b_2 + a)
  hidden.0 = e, hidden.i = output of layer i; identical to HF hidden_states, and
  last_hidden_state == hidden.L.  The pooler is saved (BertModel) but not part of goldens.

RoBERTa (RobertaModel): same as BERT except position ids are
  create_position_ids_from_input_ids: m = (input_ids != pad_token_id); pos = cumsum(m)*m + pad_token_id
  (derived from input_ids, NOT from attention_mask; pad_token_id = padding_idx = 1),
  so max_position_embeddings = n_positions + 2; type_vocab_size = 1.

Weights: seeded normal draws (torch.Generator), rounded to float32 (what is saved);
goldens are computed in float64 from those float32 values and stored as F32.
Matrix std is 0.15 for gpt2-tiny/bert-tiny/roberta-tiny (so attention logits are O(1) and
GELU inputs are large enough that tanh-vs-erf GELU moves the golden by ~1e-3) and HF's 0.02 for the
-lmhead/-mlm variants (realistic, but nearly insensitive to the GELU form).
Biases are random (HF initialises them to zero) and LayerNorm weight/bias are
perturbed away from 1/0 so they are exercised.  Rows at padding_idx of BERT/RoBERTa
word embeddings and of RoBERTa position embeddings are zero, as HF's _init_weights does.
"""
import argparse
import hashlib
import json
import math
import os
import struct
import sys
import unicodedata

import torch

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_ROOT = os.path.join(REPO, "tests", "NativeMi.Tests", "fixtures")
TRANSFORMERS_VERSION = "4.46.3"  # what the config.json files claim to be written by

# ----------------------------------------------------------------------------
# safetensors
# ----------------------------------------------------------------------------
_DT = {torch.float32: ("F32", "<f4"), torch.int64: ("I64", "<i8"), torch.float64: ("F64", "<f8")}


def write_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> torch tensor (F32/I64). Deterministic byte output."""
    import numpy as np
    header = {}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        dt, npdt = _DT[t.dtype]
        b = t.numpy().astype(npdt, copy=False).tobytes(order="C")
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
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
    inv = {"F32": "<f4", "I64": "<i8", "F64": "<f8"}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        arr = np.frombuffer(data[base + s: base + e], dtype=inv[v["dtype"]]).reshape(v["shape"])
        out[k] = torch.from_numpy(arr.copy())
    return out


def write_json(path, obj):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(obj, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")


# ----------------------------------------------------------------------------
# GPT-2 byte-level BPE (reference implementation of GPT-2's encoder.py)
# ----------------------------------------------------------------------------
def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    # (symbols in GPT-2 vocab id order, byte value -> symbol)
    return [chr(c) for c in cs], {b: chr(c) for b, c in zip(bs, cs)}


# Unicode White_Space property (what \s means in the `regex` module / .NET-independent, exact list)
_WHITE_SPACE = set([0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680] + list(range(0x2000, 0x200B)) +
                   [0x2028, 0x2029, 0x202F, 0x205F, 0x3000])


def _is_s(c):
    return ord(c) in _WHITE_SPACE


def _is_l(c):
    return unicodedata.category(c).startswith("L")


def _is_n(c):
    return unicodedata.category(c).startswith("N")


def _is_o(c):
    return not (_is_s(c) or _is_l(c) or _is_n(c))


_CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def gpt2_pretokenize(text):
    """Hand-written scanner equivalent to GPT2_PATTERN under leftmost, ordered-alternation,
    greedy-with-backtracking semantics, with \\p{L} = Unicode general category L*, \\p{N} = N*,
    \\s = Unicode White_Space (Python's unicodedata tables)."""
    out = []
    i, n = 0, len(text)

    def run(j, pred):
        while j < n and pred(text[j]):
            j += 1
        return j

    while i < n:
        m = None
        for c in _CONTRACTIONS:
            if text.startswith(c, i):
                m = i + len(c)
                break
        if m is None:
            for pred in (_is_l, _is_n, _is_o):
                if text[i] == " " and i + 1 < n and pred(text[i + 1]):
                    m = run(i + 1, pred)
                    break
                if pred(text[i]):
                    m = run(i, pred)
                    break
        if m is None:
            # text[i] is whitespace
            k = run(i, _is_s)
            if k == n:
                m = k                    # \s+(?!\S) at end of text
            elif k - 1 > i:
                m = k - 1                # backtrack one so the lookahead sees whitespace
            else:
                m = k                    # \s+
        out.append(text[i:m])
        i = m
    return out


def _regex_crosscheck(texts):
    try:
        import regex  # noqa
    except ImportError:
        return "regex module not installed: scanner not cross-checked"
    pat = regex.compile(GPT2_PATTERN)
    for t in texts:
        assert pat.findall(t) == gpt2_pretokenize(t), (t, pat.findall(t), gpt2_pretokenize(t))
    return "scanner cross-checked against the regex module"


def learn_bpe(corpus, n_merges):
    _, b2u = bytes_to_unicode()
    words = {}
    for text in corpus:
        for w in gpt2_pretokenize(text):
            sym = tuple(b2u[b] for b in w.encode("utf-8"))
            words[sym] = words.get(sym, 0) + 1
    merges = []
    for _ in range(n_merges):
        pairs = {}
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))  # highest count, ties by lexicographic pair
        merges.append(best)
        nw = {}
        for w, c in words.items():
            out, j = [], 0
            while j < len(w):
                if j + 1 < len(w) and (w[j], w[j + 1]) == best:
                    out.append(w[j] + w[j + 1])
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            nw[tuple(out)] = nw.get(tuple(out), 0) + c
        words = nw
    return merges


def bpe_word(token, ranks):
    """GPT-2 encoder.py `bpe` applied to one pre-token already mapped to byte-unicode symbols."""
    word = tuple(token)
    if len(word) < 2:
        return list(word)
    while True:
        pairs = set(zip(word, word[1:]))
        bigram = min(pairs, key=lambda p: ranks.get(p, float("inf")))
        if bigram not in ranks:
            break
        first, second = bigram
        new, i = [], 0
        while i < len(word):
            try:
                j = word.index(first, i)
            except ValueError:
                new.extend(word[i:])
                break
            new.extend(word[i:j])
            i = j
            if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                new.append(first + second)
                i += 2
            else:
                new.append(word[i])
                i += 1
        word = tuple(new)
        if len(word) == 1:
            break
    return list(word)


def bpe_encode(text, vocab, merges):
    _, b2u = bytes_to_unicode()
    ranks = {m: i for i, m in enumerate(merges)}
    ids = []
    for w in gpt2_pretokenize(text):
        sym = "".join(b2u[b] for b in w.encode("utf-8"))
        ids.extend(vocab[s] for s in bpe_word(sym, ranks))
    return ids


BPE_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world! Hello again, world; the world is wide.",
    "It's a tokenizer test: we're testing the byte-level BPE, and they'll see it works.",
    "Numbers like 2024 and 3.14159 appear in the text too.",
    "the the the and and of of to to in in is is that that",
    "Transformers transform tokens into hidden states layer by layer.",
]

BPE_CASES = [
    "Hello world!",
    "The quick brown fox jumps over the lazy dog.",
    "It's 2024; they'll say: we're done, aren't we?",
    "  leading spaces and  double  spaces \n\nnewlines\t tab  ",
    "caf\u00e9 na\u00efve \u00fcber \u4e2d\u6587 emoji \U0001F600!",
    "unseenwordzzq X\u00b2 \u0661\u0662\u0663",
    "<|endoftext|>",
    "",
]


def make_gpt2_tokenizer(vocab_size, special_first=None, special_last=None):
    """vocab: [special_first...] + 256 byte symbols (GPT-2 order) + merges + [special_last...]"""
    special_first = special_first or []
    special_last = special_last or []
    n_merges = vocab_size - 256 - len(special_first) - len(special_last)
    merges = learn_bpe(BPE_CORPUS, n_merges)
    assert len(merges) == n_merges, (len(merges), n_merges)
    order, _ = bytes_to_unicode()
    symbols = list(special_first) + order + [a + b for a, b in merges] + list(special_last)
    vocab = {}
    for s in symbols:
        assert s not in vocab, s
        vocab[s] = len(vocab)
    assert len(vocab) == vocab_size
    return vocab, merges


def write_bpe_files(folder, vocab, merges):
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(vocab, f, ensure_ascii=False, separators=(",", ":"))  # insertion order == id order
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")


# ----------------------------------------------------------------------------
# BERT WordPiece (reference implementation of BertTokenizer, do_lower_case=True)
# ----------------------------------------------------------------------------
def _is_punct(c):
    cp = ord(c)
    if (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (123 <= cp <= 126):
        return True
    return unicodedata.category(c).startswith("P")


def _is_control(c):
    if c in "\t\n\r":
        return False
    return unicodedata.category(c).startswith("C")


def _is_ws(c):
    if c in " \t\n\r":
        return True
    return unicodedata.category(c) == "Zs"


def _is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or
            0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or
            0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def wordpiece_tokenize(text, vocab, unk="[UNK]", max_chars=100):
    # BasicTokenizer: clean, CJK spacing, whitespace split, lower+strip accents, punctuation split
    cleaned = []
    for c in text:
        cp = ord(c)
        if cp == 0 or cp == 0xFFFD or _is_control(c):
            continue
        cleaned.append(" " if _is_ws(c) else c)
    text = "".join(cleaned)
    text = "".join(f" {c} " if _is_cjk(ord(c)) else c for c in text)
    text = unicodedata.normalize("NFC", text)
    basic = []
    for tok in text.strip().split():
        if tok in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"):
            basic.append(tok)
            continue
        tok = tok.lower()
        tok = "".join(c for c in unicodedata.normalize("NFD", tok) if unicodedata.category(c) != "Mn")
        cur = []
        for c in tok:
            if _is_punct(c):
                if cur:
                    basic.append("".join(cur))
                    cur = []
                basic.append(c)
            else:
                cur.append(c)
        if cur:
            basic.append("".join(cur))
    # WordpieceTokenizer: greedy longest-match-first
    out = []
    for tok in basic:
        if len(tok) > max_chars:
            out.append(unk)
            continue
        start, pieces, bad = 0, [], False
        while start < len(tok):
            end, cur = len(tok), None
            while start < end:
                s = tok[start:end]
                if start > 0:
                    s = "##" + s
                if s in vocab:
                    cur = s
                    break
                end -= 1
            if cur is None:
                bad = True
                break
            pieces.append(cur)
            start = end
        out.extend([unk] if bad else pieces)
    return out


WP_WORDS = ("the a an and or of to in is it that this was for on with as by at from be are were "
            "hello world quick brown fox jump over lazy dog test token model hidden state layer "
            "attention head transform bert word piece sentence first second text unit check value "
            "small tiny large big seed random number one two three four five cat sat mat run play "
            "read write load save file data time day year good bad new old high low left right "
            "up down in out we you they he she i me my our your their not no yes can will would "
            "should could do does did have has had make made go went see saw say said know").split()
WP_PIECES = "s es ed ing er est ly ion tion ation ness ment able ful less ize ise al ic ous ive ity".split()
WP_CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(".,;:!?'\"()-[]{}/&%$#@*+=<>_~`^|\\")


def make_wordpiece_vocab(size):
    toks = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    toks += WP_CHARS
    toks += ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    seen = set(toks)
    for w in WP_WORDS + ["##" + p for p in WP_PIECES]:
        if w not in seen:
            toks.append(w)
            seen.add(w)
    i = 0
    while len(toks) < size:  # deterministic filler: 2-letter subword pieces
        a, b = "etaoinshrdlu"[i // 12], "etaoinshrdlu"[i % 12]
        for cand in ("##" + a + b, a + b):
            if cand not in seen and len(toks) < size:
                toks.append(cand)
                seen.add(cand)
        i += 1
    assert len(toks) == size, len(toks)
    return toks


WP_CASES = [
    "Hello world!",
    "The quick brown fox jumped over the lazy dogs.",
    "Tokenization checks: BERT's word-pieces, hidden states & layers.",
    "Caf\u00e9 NA\u00cfVE \u00dcber \u4e2d\u6587 text",
    "unknownwordzzq xyz\u00b2 [MASK] [SEP]",
    "   ",
]

# ----------------------------------------------------------------------------
# Reference forward passes (float64)
# ----------------------------------------------------------------------------
F64_MIN = torch.finfo(torch.float64).min


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gelu_erf(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def split_heads(x, H):
    B, T, D = x.shape
    return x.view(B, T, H, D // H).permute(0, 2, 1, 3)


def merge_heads(x):
    B, H, T, hd = x.shape
    return x.permute(0, 2, 1, 3).reshape(B, T, H * hd)


def gpt2_forward(W, cfg, input_ids, attention_mask, prefix="", gelu=gelu_new, causal=True):
    p = prefix
    H, L, eps = cfg["n_head"], cfg["n_layer"], cfg["layer_norm_epsilon"]
    B, T = input_ids.shape
    pos = torch.arange(T).unsqueeze(0).expand(B, T)
    h = W[p + "wte.weight"][input_ids] + W[p + "wpe.weight"][pos]
    hs = [h]
    cm = torch.tril(torch.ones(T, T, dtype=torch.bool)).view(1, 1, T, T)
    am = (1.0 - attention_mask.to(torch.float64)).view(B, 1, 1, T) * F64_MIN
    for i in range(L):
        q_ = f"{p}h.{i}."
        a = layer_norm(h, W[q_ + "ln_1.weight"], W[q_ + "ln_1.bias"], eps)
        qkv = a @ W[q_ + "attn.c_attn.weight"] + W[q_ + "attn.c_attn.bias"]
        q, k, v = qkv.split(cfg["n_embd"], dim=2)
        q, k, v = split_heads(q, H), split_heads(k, H), split_heads(v, H)
        w = q @ k.transpose(-1, -2) / (v.size(-1) ** 0.5)
        if causal:
            w = torch.where(cm, w, torch.full_like(w, F64_MIN))
        w = w + am
        pr = torch.softmax(w, dim=-1)
        o = merge_heads(pr @ v) @ W[q_ + "attn.c_proj.weight"] + W[q_ + "attn.c_proj.bias"]
        h = h + o
        m = layer_norm(h, W[q_ + "ln_2.weight"], W[q_ + "ln_2.bias"], eps)
        m = gelu(m @ W[q_ + "mlp.c_fc.weight"] + W[q_ + "mlp.c_fc.bias"])
        h = h + m @ W[q_ + "mlp.c_proj.weight"] + W[q_ + "mlp.c_proj.bias"]
        hs.append(h)
    final = layer_norm(h, W[p + "ln_f.weight"], W[p + "ln_f.bias"], eps)
    return hs, final


def lin(x, W, name):
    return x @ W[name + ".weight"].t() + W[name + ".bias"]


def bert_forward(W, cfg, input_ids, attention_mask, token_type_ids, prefix="", gelu=gelu_erf):
    p = prefix
    H, L, eps = cfg["num_attention_heads"], cfg["num_hidden_layers"], cfg["layer_norm_eps"]
    B, T = input_ids.shape
    if cfg["model_type"] == "roberta":
        pad = cfg["pad_token_id"]
        m = input_ids.ne(pad).long()
        pos = torch.cumsum(m, dim=1) * m + pad
    else:
        pos = torch.arange(T).unsqueeze(0).expand(B, T)
    e = W[p + "embeddings.word_embeddings.weight"][input_ids] + \
        W[p + "embeddings.token_type_embeddings.weight"][token_type_ids] + \
        W[p + "embeddings.position_embeddings.weight"][pos]
    h = layer_norm(e, W[p + "embeddings.LayerNorm.weight"], W[p + "embeddings.LayerNorm.bias"], eps)
    hs = [h]
    am = (1.0 - attention_mask.to(torch.float64)).view(B, 1, 1, T) * F64_MIN
    for i in range(L):
        n = f"{p}encoder.layer.{i}."
        q = split_heads(lin(h, W, n + "attention.self.query"), H)
        k = split_heads(lin(h, W, n + "attention.self.key"), H)
        v = split_heads(lin(h, W, n + "attention.self.value"), H)
        s = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1)) + am
        c = merge_heads(torch.softmax(s, dim=-1) @ v)
        a = layer_norm(lin(c, W, n + "attention.output.dense") + h,
                       W[n + "attention.output.LayerNorm.weight"], W[n + "attention.output.LayerNorm.bias"], eps)
        f = gelu(lin(a, W, n + "intermediate.dense"))
        h = layer_norm(lin(f, W, n + "output.dense") + a,
                       W[n + "output.LayerNorm.weight"], W[n + "output.LayerNorm.bias"], eps)
        hs.append(h)
    return hs


# ----------------------------------------------------------------------------
# Weight generation
# ----------------------------------------------------------------------------
class Draw:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def normal(self, shape, std, mean=0.0):
        return (torch.randn(*shape, generator=self.g, dtype=torch.float64) * std + mean).to(torch.float32)

    def ln(self, d):
        return self.normal((d,), 0.1, 1.0), self.normal((d,), 0.1)


def gpt2_weights(cfg, seed, std, prefix=""):
    d, L, V, P = cfg["n_embd"], cfg["n_layer"], cfg["vocab_size"], cfg["n_positions"]
    r = Draw(seed)
    W = {}
    W[prefix + "wte.weight"] = r.normal((V, d), std)
    W[prefix + "wpe.weight"] = r.normal((P, d), std)
    proj_std = std / math.sqrt(2 * L)
    for i in range(L):
        n = f"{prefix}h.{i}."
        W[n + "ln_1.weight"], W[n + "ln_1.bias"] = r.ln(d)
        W[n + "attn.c_attn.weight"] = r.normal((d, 3 * d), std)
        W[n + "attn.c_attn.bias"] = r.normal((3 * d,), 0.02)
        W[n + "attn.c_proj.weight"] = r.normal((d, d), proj_std)
        W[n + "attn.c_proj.bias"] = r.normal((d,), 0.02)
        W[n + "ln_2.weight"], W[n + "ln_2.bias"] = r.ln(d)
        W[n + "mlp.c_fc.weight"] = r.normal((d, 4 * d), std)
        W[n + "mlp.c_fc.bias"] = r.normal((4 * d,), 0.02)
        W[n + "mlp.c_proj.weight"] = r.normal((4 * d, d), proj_std)
        W[n + "mlp.c_proj.bias"] = r.normal((d,), 0.02)
    W[prefix + "ln_f.weight"], W[prefix + "ln_f.bias"] = r.ln(d)
    return W


def bert_weights(cfg, seed, std, prefix="", pooler=True, mlm_head=None):
    d, L, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    I, P, TV = cfg["intermediate_size"], cfg["max_position_embeddings"], cfg["type_vocab_size"]
    pad = cfg["pad_token_id"]
    r = Draw(seed)
    W = {}
    e = prefix + "embeddings."
    W[e + "word_embeddings.weight"] = r.normal((V, d), std)
    W[e + "word_embeddings.weight"][pad].zero_()
    W[e + "position_embeddings.weight"] = r.normal((P, d), std)
    if cfg["model_type"] == "roberta":
        W[e + "position_embeddings.weight"][pad].zero_()
    W[e + "token_type_embeddings.weight"] = r.normal((TV, d), std)
    W[e + "LayerNorm.weight"], W[e + "LayerNorm.bias"] = r.ln(d)
    for i in range(L):
        n = f"{prefix}encoder.layer.{i}."
        for nm in ("query", "key", "value"):
            W[n + f"attention.self.{nm}.weight"] = r.normal((d, d), std)
            W[n + f"attention.self.{nm}.bias"] = r.normal((d,), 0.02)
        W[n + "attention.output.dense.weight"] = r.normal((d, d), std)
        W[n + "attention.output.dense.bias"] = r.normal((d,), 0.02)
        W[n + "attention.output.LayerNorm.weight"], W[n + "attention.output.LayerNorm.bias"] = r.ln(d)
        W[n + "intermediate.dense.weight"] = r.normal((I, d), std)
        W[n + "intermediate.dense.bias"] = r.normal((I,), 0.02)
        W[n + "output.dense.weight"] = r.normal((d, I), std)
        W[n + "output.dense.bias"] = r.normal((d,), 0.02)
        W[n + "output.LayerNorm.weight"], W[n + "output.LayerNorm.bias"] = r.ln(d)
    if pooler:
        W[prefix + "pooler.dense.weight"] = r.normal((d, d), std)
        W[prefix + "pooler.dense.bias"] = r.normal((d,), 0.02)
    if mlm_head == "bert":  # BertForMaskedLM: decoder weight/bias are tied and not saved
        W["cls.predictions.bias"] = r.normal((V,), 0.02)
        W["cls.predictions.transform.dense.weight"] = r.normal((d, d), std)
        W["cls.predictions.transform.dense.bias"] = r.normal((d,), 0.02)
        W["cls.predictions.transform.LayerNorm.weight"], W["cls.predictions.transform.LayerNorm.bias"] = r.ln(d)
    elif mlm_head == "roberta":  # RobertaForMaskedLM
        W["lm_head.bias"] = r.normal((V,), 0.02)
        W["lm_head.dense.weight"] = r.normal((d, d), std)
        W["lm_head.dense.bias"] = r.normal((d,), 0.02)
        W["lm_head.layer_norm.weight"], W["lm_head.layer_norm.bias"] = r.ln(d)
    return W


def f64(W):
    return {k: v.to(torch.float64) for k, v in W.items()}


# ----------------------------------------------------------------------------
# configs (key sets as transformers' to_json_string writes them, sorted keys)
# ----------------------------------------------------------------------------
def gpt2_config(arch, V, P, d, L, H):
    return {
        "activation_function": "gelu_new", "architectures": [arch], "attn_pdrop": 0.1,
        "bos_token_id": V - 1, "embd_pdrop": 0.1, "eos_token_id": V - 1, "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_embd": d, "n_head": H, "n_inner": None,
        "n_layer": L, "n_positions": P, "reorder_and_upcast_attn": False, "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": False, "scale_attn_weights": True,
        "summary_activation": None, "summary_first_dropout": 0.1, "summary_proj_to_labels": True,
        "summary_type": "cls_index", "summary_use_proj": True, "torch_dtype": "float32",
        "transformers_version": TRANSFORMERS_VERSION, "use_cache": True, "vocab_size": V,
    }


def bert_config(arch, V, P, d, L, H, model_type="bert", eps=1e-12):
    c = {
        "architectures": [arch], "attention_probs_dropout_prob": 0.1, "classifier_dropout": None,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": d, "initializer_range": 0.02,
        "intermediate_size": 4 * d, "layer_norm_eps": eps, "max_position_embeddings": P,
        "model_type": model_type, "num_attention_heads": H, "num_hidden_layers": L, "pad_token_id": 0,
        "position_embedding_type": "absolute", "torch_dtype": "float32",
        "transformers_version": TRANSFORMERS_VERSION, "type_vocab_size": 2, "use_cache": True,
        "vocab_size": V,
    }
    if model_type == "roberta":
        c.update({"bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1, "type_vocab_size": 1})
    return c


# ----------------------------------------------------------------------------
# golden inputs (right padding only)
# ----------------------------------------------------------------------------
LENGTHS = [20, 1, 7, 13, 3, 16]
T_MAX = 20


def gpt2_inputs(V, seed):
    g = torch.Generator().manual_seed(seed)
    N = len(LENGTHS)
    ids = torch.full((N, T_MAX), V - 1, dtype=torch.int64)  # pad with eos, as usual for GPT-2
    mask = torch.zeros((N, T_MAX), dtype=torch.int64)
    for b, n in enumerate(LENGTHS):
        ids[b, :n] = torch.randint(0, V, (n,), generator=g)
        mask[b, :n] = 1
    return ids, mask


def bert_inputs(V, seed, roberta):
    g = torch.Generator().manual_seed(seed)
    N = len(LENGTHS)
    if roberta:
        cls_, sep, pad, lo, hi = 0, 2, 1, 4, V - 1   # <s>, </s>, <pad>; body avoids specials and <mask>
    else:
        cls_, sep, pad, lo, hi = 2, 3, 0, 5, V       # [CLS] [SEP] [PAD]
    ids = torch.full((N, T_MAX), pad, dtype=torch.int64)
    mask = torch.zeros((N, T_MAX), dtype=torch.int64)
    tt = torch.zeros((N, T_MAX), dtype=torch.int64)
    for b, n in enumerate(LENGTHS):
        ids[b, :n] = torch.randint(lo, hi, (n,), generator=g)
        ids[b, 0] = cls_
        if n > 1:
            ids[b, n - 1] = sep
        mask[b, :n] = 1
        if not roberta and n >= 4:  # sentence pair: [CLS] A [SEP] B [SEP]
            split = n // 2
            ids[b, split - 1] = sep
            tt[b, split:n] = 1
    return ids, mask, tt


# ----------------------------------------------------------------------------
# self checks
# ----------------------------------------------------------------------------
def close(a, b, tol=1e-12):
    return float((a - b).abs().max()) <= tol


def check_gpt2(W, cfg, ids, mask, prefix, hs, final):
    V = cfg["vocab_size"]
    # padding invariance: each sequence alone, unpadded
    for b, n in enumerate(LENGTHS):
        hs1, f1 = gpt2_forward(W, cfg, ids[b:b + 1, :n], mask[b:b + 1, :n], prefix)
        for l in range(len(hs)):
            assert close(hs1[l][0], hs[l][b, :n]), ("gpt2 padding", b, l)
        assert close(f1[0], final[b, :n])
    # causality: changing token p changes nothing before p, something at p
    b, p = 0, 9
    ids2 = ids.clone()
    ids2[b, p] = (ids2[b, p] + 1) % V
    hs2, _ = gpt2_forward(W, cfg, ids2, mask, prefix)
    for l in range(len(hs)):
        assert close(hs2[l][b, :p], hs[l][b, :p]), ("gpt2 causal", l)
        assert float((hs2[l][b, p:] - hs[l][b, p:]).abs().max()) > 1e-6
    # sensitivity of the golden to common implementation mistakes (report only)
    real = mask.bool()
    sens = {}
    _, f = gpt2_forward(W, cfg, ids, mask, prefix, gelu=gelu_erf)
    sens["erf GELU instead of tanh"] = float((f - final)[real].abs().max())
    _, f = gpt2_forward(W, cfg, ids, mask, prefix, causal=False)
    sens["no causal mask"] = float((f - final)[real].abs().max())
    return sens


def check_bert(W, cfg, ids, mask, tt, prefix, hs):
    for b, n in enumerate(LENGTHS):
        hs1 = bert_forward(W, cfg, ids[b:b + 1, :n], mask[b:b + 1, :n], tt[b:b + 1, :n], prefix)
        for l in range(len(hs)):
            assert close(hs1[l][0], hs[l][b, :n]), ("bert padding", b, l)
    real = mask.bool()
    sens = {}
    f = bert_forward(W, cfg, ids, mask, tt, prefix, gelu=gelu_new)[-1]
    sens["tanh GELU instead of erf"] = float((f - hs[-1])[real].abs().max())
    f = bert_forward(W, cfg, ids, mask, torch.zeros_like(tt), prefix)[-1]
    sens["token_type_ids ignored"] = float((f - hs[-1])[real].abs().max())
    f = bert_forward(W, cfg, ids, torch.ones_like(mask), tt, prefix)[-1]
    sens["attention_mask ignored"] = float((f - hs[-1])[real].abs().max())
    if cfg["model_type"] == "roberta":
        c2 = dict(cfg, model_type="bert")
        f = bert_forward(W, c2, ids, mask, tt, prefix)[-1]
        sens["positions arange instead of pad+1+i"] = float((f - hs[-1])[real].abs().max())
    return sens


# ----------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------
GPT2_FIXTURES = [
    # name, arch, prefix, V, d, L, H, weight std, weight seed, input seed
    ("gpt2-tiny", "GPT2Model", "", 320, 48, 3, 4, 0.15, 1001, 2001),
    ("gpt2-tiny-lmhead", "GPT2LMHeadModel", "transformer.", 300, 32, 2, 4, 0.02, 1002, 2002),
]
BERT_FIXTURES = [
    # name, arch, type, prefix, V, d, L, H, std, seed, input seed, pooler, mlm head
    ("bert-tiny", "BertModel", "bert", "", 320, 48, 3, 4, 0.15, 1101, 2101, True, None),
    ("bert-tiny-mlm", "BertForMaskedLM", "bert", "bert.", 300, 32, 2, 4, 0.02, 1102, 2102, False, "bert"),
    ("roberta-tiny", "RobertaForMaskedLM", "roberta", "roberta.", 330, 40, 2, 4, 0.15, 1103, 2103, False,
     "roberta"),
]
N_POS = 64


def golden_tensors(ids, mask, hs, tt=None, final=None):
    G = {"input_ids": ids, "attention_mask": mask}
    if tt is not None:
        G["token_type_ids"] = tt
    for l, h in enumerate(hs):
        G[f"hidden.{l}"] = h.to(torch.float32)
    if final is not None:
        G["hidden.final"] = final.to(torch.float32)
    return G


def build(out_root):
    os.makedirs(out_root, exist_ok=True)
    summary = {}
    precheck = _regex_crosscheck(BPE_CASES + BPE_CORPUS)
    for (name, arch, prefix, V, d, L, H, std, seed, iseed) in GPT2_FIXTURES:
        folder = os.path.join(out_root, name)
        os.makedirs(folder, exist_ok=True)
        cfg = gpt2_config(arch, V, N_POS, d, L, H)
        W = gpt2_weights(cfg, seed, std, prefix)
        write_json(os.path.join(folder, "config.json"), cfg)
        write_safetensors(os.path.join(folder, "model.safetensors"), W)
        vocab, merges = make_gpt2_tokenizer(V, special_last=["<|endoftext|>"])
        write_bpe_files(folder, vocab, merges)
        write_json(os.path.join(folder, "tokenizer_config.json"), {
            "add_bos_token": False, "add_prefix_space": False, "bos_token": "<|endoftext|>",
            "clean_up_tokenization_spaces": False, "eos_token": "<|endoftext|>", "model_max_length": N_POS,
            "tokenizer_class": "GPT2Tokenizer", "unk_token": "<|endoftext|>"})
        cases = [{"text": t, "pretokens": gpt2_pretokenize(t), "ids": bpe_encode(t, vocab, merges)}
                 for t in BPE_CASES]
        write_json(os.path.join(folder, "tokenizer_cases.json"), {
            "note": "GPT-2 byte-level BPE ids, no special tokens added, add_prefix_space=false. "
                    "Special tokens in the text are NOT treated specially (encoded as plain text), "
                    "like GPT-2's original encoder.py; HF's tokenizer would map '<|endoftext|>' to "
                    f"id {V - 1} instead.",
            "pretokenizer": "hand-written scanner for GPT-2's pattern; \\p{L}/\\p{N} = Unicode general "
                            "category L*/N*, \\s = Unicode White_Space (Python 3.11 unicodedata, Unicode "
                            f"{unicodedata.unidata_version}); {precheck}",
            "pattern": GPT2_PATTERN, "cases": cases})
        ids, mask = gpt2_inputs(V, iseed)
        Wd = f64(W)
        hs, final = gpt2_forward(Wd, cfg, ids, mask, prefix)
        sens = check_gpt2(Wd, cfg, ids, mask, prefix, hs, final)
        write_safetensors(os.path.join(folder, "golden.safetensors"),
                          golden_tensors(ids, mask, hs, final=final),
                          {"reference": "scripts/make_fixtures.py", "model": "GPT2Model"})
        summary[name] = {"cfg": cfg, "sens": sens, "cases": cases, "prefix": prefix, "std": std}

    wp_vocab = None
    for (name, arch, mtype, prefix, V, d, L, H, std, seed, iseed, pooler, head) in BERT_FIXTURES:
        folder = os.path.join(out_root, name)
        os.makedirs(folder, exist_ok=True)
        roberta = mtype == "roberta"
        P = N_POS + 2 if roberta else N_POS
        cfg = bert_config(arch, V, P, d, L, H, mtype, eps=1e-05 if roberta else 1e-12)
        W = bert_weights(cfg, seed, std, prefix, pooler=pooler, mlm_head=head)
        write_json(os.path.join(folder, "config.json"), cfg)
        write_safetensors(os.path.join(folder, "model.safetensors"), W)
        if roberta:
            vocab, merges = make_gpt2_tokenizer(V, special_first=["<s>", "<pad>", "</s>", "<unk>"],
                                                special_last=["<mask>"])
            write_bpe_files(folder, vocab, merges)
            write_json(os.path.join(folder, "tokenizer_config.json"), {
                "add_prefix_space": False, "bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>",
                "mask_token": "<mask>", "model_max_length": N_POS, "pad_token": "<pad>", "sep_token": "</s>",
                "tokenizer_class": "RobertaTokenizer", "unk_token": "<unk>"})
            cases = [{"text": t, "ids": bpe_encode(t, vocab, merges),
                      "ids_with_special": [0] + bpe_encode(t, vocab, merges) + [2]} for t in BPE_CASES]
            note = ("RoBERTa byte-level BPE (same merges as the GPT-2 fixtures, ids shifted by the 4 leading "
                    "specials); 'ids_with_special' = <s> ids </s>. Special-token strings in the text are "
                    "encoded as plain text here.")
        else:
            toks = make_wordpiece_vocab(V)
            wp_vocab = {t: i for i, t in enumerate(toks)}
            with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8", newline="\n") as f:
                f.write("\n".join(toks) + "\n")
            write_json(os.path.join(folder, "tokenizer_config.json"), {
                "cls_token": "[CLS]", "do_basic_tokenize": True, "do_lower_case": True, "mask_token": "[MASK]",
                "model_max_length": N_POS, "never_split": None, "pad_token": "[PAD]", "sep_token": "[SEP]",
                "strip_accents": None, "tokenize_chinese_chars": True, "tokenizer_class": "BertTokenizer",
                "unk_token": "[UNK]"})
            cases = []
            for t in WP_CASES:
                pieces = wordpiece_tokenize(t, wp_vocab)
                ids_ = [wp_vocab[p] for p in pieces]
                cases.append({"text": t, "tokens": pieces, "ids": ids_, "ids_with_special": [2] + ids_ + [3]})
            note = ("BertTokenizer (BasicTokenizer do_lower_case=True, strip accents, CJK split, punctuation "
                    "split; WordPiece greedy longest-match, max 100 chars/word); 'ids_with_special' = "
                    "[CLS] ids [SEP]. Special tokens in the text are kept whole (never_split).")
        write_json(os.path.join(folder, "tokenizer_cases.json"), {"note": note, "cases": cases})
        ids, mask, tt = bert_inputs(V, iseed, roberta)
        Wd = f64(W)
        hs = bert_forward(Wd, cfg, ids, mask, tt, prefix)
        sens = check_bert(Wd, cfg, ids, mask, tt, prefix, hs)
        write_safetensors(os.path.join(folder, "golden.safetensors"), golden_tensors(ids, mask, hs, tt=tt),
                          {"reference": "scripts/make_fixtures.py",
                           "model": "RobertaModel" if roberta else "BertModel"})
        summary[name] = {"cfg": cfg, "sens": sens, "cases": cases, "prefix": prefix, "std": std}

    # read-back check of the writer
    for name in summary:
        folder = os.path.join(out_root, name)
        G = read_safetensors(os.path.join(folder, "golden.safetensors"))
        M = read_safetensors(os.path.join(folder, "model.safetensors"))
        assert "input_ids" in G and G["input_ids"].dtype == torch.int64
        assert all(v.dtype == torch.float32 for v in M.values())
    return summary


# ----------------------------------------------------------------------------
# optional: compare with transformers
# ----------------------------------------------------------------------------
def _golden_reference(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n).decode("utf-8")).get("__metadata__", {}).get("reference")


def check_transformers(out_root):
    try:
        import transformers  # noqa
        from transformers import AutoModel
    except ImportError:
        print("transformers not importable: nothing checked")
        return 1
    print("transformers", transformers.__version__)
    worst = 0.0
    for name in sorted(os.listdir(out_root)):
        folder = os.path.join(out_root, name)
        if not os.path.isfile(os.path.join(folder, "golden.safetensors")):
            continue
        if _golden_reference(os.path.join(folder, "golden.safetensors")) != "scripts/make_fixtures.py":
            continue  # decoder fixtures: scripts/make_decoder_fixtures.py --check-transformers checks those
        G = read_safetensors(os.path.join(folder, "golden.safetensors"))
        model = AutoModel.from_pretrained(folder, attn_implementation="eager").double().eval()
        kw = {"input_ids": G["input_ids"], "attention_mask": G["attention_mask"]}
        if "token_type_ids" in G:
            kw["token_type_ids"] = G["token_type_ids"]
        with torch.no_grad():
            out = model(**kw, output_hidden_states=True)
        real = G["attention_mask"].bool()
        L = len(out.hidden_states) - 1
        for l, h in enumerate(out.hidden_states):
            key = "hidden.final" if ("hidden.final" in G and l == L) else f"hidden.{l}"
            dr = float((h.float() - G[key])[real].abs().max())
            da = float((h.float() - G[key]).abs().max())
            worst = max(worst, dr)
            print(f"{name:20s} hidden_states[{l}] vs {key:13s} max|diff| real={dr:.3e} all(incl. pad)={da:.3e}")
        if "hidden.final" in G:
            dr = float((out.last_hidden_state.float() - G["hidden.final"])[real].abs().max())
            print(f"{name:20s} last_hidden_state vs hidden.final max|diff| real={dr:.3e}")
    print("worst (real positions):", worst)
    return 0 if worst < 1e-5 else 2


def sha_tree(root):
    res = {}
    for dp, _, fns in sorted(os.walk(root)):
        for fn in sorted(fns):
            p = os.path.join(dp, fn)
            with open(p, "rb") as f:
                res[os.path.relpath(p, root)] = hashlib.sha256(f.read()).hexdigest()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=OUT_ROOT)
    ap.add_argument("--check-transformers", action="store_true",
                    help="only compare existing fixtures against transformers' models")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    if a.check_transformers:
        sys.exit(check_transformers(a.out))
    summary = build(a.out)
    if not a.quiet:
        for name, s in summary.items():
            print(name, "prefix=%r std=%g" % (s["prefix"], s["std"]))
            for k, v in s["sens"].items():
                print(f"   golden change if {k}: {v:.3e}")


if __name__ == "__main__":
    main()
