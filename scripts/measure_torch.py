#!/usr/bin/env python3
"""The work of one `nativemi measure` run, done with PyTorch + transformers, for a side-by-side time.

scripts/gpu-check.sh runs it beside `nativemi measure` on the same model folder and corpus. It does what
METHOD.md's pipeline does, the way a PyTorch user would write it:
  load the model (AutoModel) and tokenizer (AutoTokenizer) from the folder;
  tokenise every corpus line; forward in batches of --batch-size sentences (sorted by length), every layer's
  hidden states, mean-pooled over the text tokens (special tokens and padding excluded);
  split the sentences 70 / 10 / 20 (train / validation / held-out, seeded);
  per layer, and once for the control (z = 0), train the positional probe
  q(x | z, i) = softmax(W2 gelu(W1 z + P[i] + b1) + b2) with AdamW (lr 1e-3, weight decay 0.01), mini-batches
  of 32 sentences, a validation pass after every epoch, then score the held-out split.
Early stopping is replaced by the number of epochs nativemi's own run trained each layer (--results, its
results.json; the control gets the median of the layers'), so both sides do the same number of steps. The
figures are printed for a sanity check (they are not nativemi's: another split, another sampler).

Prints one JSON line: seconds per phase, total, and per-layer held-out accuracy.
Run: python3 scripts/measure_torch.py --model FOLDER --corpus FILE [--results results.json] [--batch-size 64]
     [--dtype fp32|bf16] [--device cuda|cpu] [--max-sentences N]
"""
import argparse
import json
import statistics
import time

import torch

PROBE_BATCH, HIDDEN, LR, WEIGHT_DECAY = 32, 512, 1e-3, 0.01


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


class Probe(torch.nn.Module):
    def __init__(self, width, classes, positions):
        super().__init__()
        self.w1 = torch.nn.Parameter(torch.randn(width, HIDDEN) / width ** 0.5)
        self.b1 = torch.nn.Parameter(torch.zeros(HIDDEN))
        self.p = torch.nn.Parameter(torch.randn(positions, HIDDEN) / width ** 0.5)
        self.w2 = torch.nn.Parameter(torch.randn(HIDDEN, classes) / HIDDEN ** 0.5)
        self.b2 = torch.nn.Parameter(torch.zeros(classes))

    def forward(self, z, sentence_of_target, position_of_target):
        u = (z @ self.w1)[sentence_of_target] + self.p[position_of_target] + self.b1
        return torch.nn.functional.gelu(u) @ self.w2 + self.b2


class Split:
    """One split's targets flattened, with per-sentence offsets, all on the device."""

    def __init__(self, members, targets, classes, max_position, device):
        self.members = members
        lengths = [len(targets[s]) for s in members]
        self.lengths = torch.tensor(lengths, device=device)
        self.offsets = torch.cumsum(self.lengths, 0) - self.lengths
        flat_class, flat_position = [], []
        for s in members:
            for i, token in enumerate(targets[s]):
                flat_class.append(classes.get(token, len(classes)))
                flat_position.append(min(i, max_position - 1))
        self.cls = torch.tensor(flat_class, device=device)
        self.position = torch.tensor(flat_position, device=device)

    def batch(self, local):
        """Target indices, the target's sentence within the batch, for the split-local sentences `local`."""
        counts = self.lengths[local]
        starts = torch.repeat_interleave(self.offsets[local], counts)
        within = torch.arange(int(counts.sum()), device=counts.device) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        index = starts + within
        sentence = torch.repeat_interleave(torch.arange(len(local), device=counts.device), counts)
        return index, sentence


def train_probe(vectors, train, valid, held, classes, max_position, epochs, seed, device):
    """vectors: [N, d] float32 on the device. Returns held-out accuracy and CE (nats)."""
    z_train = vectors[train.members]
    mean, std = z_train.mean(0), z_train.std(0, unbiased=False)
    scale = torch.where(std > 1e-6, 1 / std, torch.zeros_like(std))
    standardised = (vectors - mean) * scale
    torch.manual_seed(seed)
    probe = Probe(vectors.shape[1], len(classes) + 1, max_position).to(device)
    optimiser = torch.optim.AdamW(probe.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=WEIGHT_DECAY)

    def run(split, local, grad):
        index, sentence = split.batch(local)
        z = standardised[torch.as_tensor(split.members, device=device)[local]]
        logits = probe(z, sentence, split.position[index])
        return logits, split.cls[index]

    for _ in range(epochs):
        order = torch.randperm(len(train.members), device=device)
        for start in range(0, len(order), PROBE_BATCH):
            logits, cls = run(train, order[start:start + PROBE_BATCH], True)
            loss = torch.nn.functional.cross_entropy(logits, cls)
            optimiser.zero_grad(set_to_none=False)
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            for start in range(0, len(valid.members), 64):
                logits, cls = run(valid, torch.arange(start, min(start + 64, len(valid.members)), device=device), False)
                torch.nn.functional.cross_entropy(logits, cls, reduction="sum")
    correct, total, nats = 0, 0, 0.0
    with torch.no_grad():
        for start in range(0, len(held.members), 64):
            logits, cls = run(held, torch.arange(start, min(start + 64, len(held.members)), device=device), False)
            known = cls != len(classes)
            correct += int(((logits.argmax(1) == cls) & known).sum())
            total += len(cls)
            nats += float(torch.nn.functional.cross_entropy(logits, cls, reduction="sum"))
    return correct / total, nats / total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--results", help="nativemi's results.json of the same run (epochs per layer)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--max-sentences", type=int)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    from transformers import AutoModel, AutoTokenizer  # imported late: the probe code above needs only torch

    times = {}
    clock = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    model = AutoModel.from_pretrained(args.model, torch_dtype=dtype).to(device).eval()
    synchronize(device)
    times["load"] = time.perf_counter() - clock

    clock = time.perf_counter()
    lines = [line.strip() for line in open(args.corpus, encoding="utf-8") if line.strip()]
    if args.max_sentences:
        lines = lines[:args.max_sentences]
    limit = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", 512)
    encoded = [tokenizer(line, truncation=True, max_length=limit, return_special_tokens_mask=True) for line in lines]
    keep = [k for k, e in enumerate(encoded) if any(m == 0 for m in e["special_tokens_mask"])]
    encoded = [encoded[k] for k in keep]
    targets = [[t for t, m in zip(e["input_ids"], e["special_tokens_mask"]) if m == 0] for e in encoded]
    times["tokenise"] = time.perf_counter() - clock

    clock = time.perf_counter()
    order = sorted(range(len(encoded)), key=lambda k: len(encoded[k]["input_ids"]))
    pooled = None
    with torch.no_grad():
        for start in range(0, len(order), args.batch_size):
            members = order[start:start + args.batch_size]
            batch = tokenizer.pad([{"input_ids": encoded[k]["input_ids"]} for k in members], return_tensors="pt")
            special = torch.zeros_like(batch["input_ids"])
            for row, k in enumerate(members):
                mask = encoded[k]["special_tokens_mask"]
                special[row, :len(mask)] = torch.tensor(mask)
            text = (batch["attention_mask"] * (1 - special)).to(device)
            states = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device), output_hidden_states=True).hidden_states
            weights = text.unsqueeze(-1).to(torch.float32)
            if pooled is None:
                pooled = [torch.empty(len(encoded), states[0].shape[-1], device=device) for _ in states]
            index = torch.tensor(members, device=device)
            for layer, state in enumerate(states):
                pooled[layer][index] = (state.float() * weights).sum(1) / weights.sum(1)
    synchronize(device)
    times["forward"] = time.perf_counter() - clock

    generator = torch.Generator().manual_seed(args.seed)
    permutation = torch.randperm(len(encoded), generator=generator).tolist()
    n_train, n_valid = int(0.7 * len(encoded)), int(0.1 * len(encoded))
    train_ids, valid_ids, held_ids = permutation[:n_train], permutation[n_train:n_train + n_valid], permutation[n_train + n_valid:]
    classes = {token: c for c, token in enumerate(sorted({t for s in train_ids for t in targets[s]}))}
    max_position = max(len(targets[s]) for s in train_ids)
    train, valid, held = (Split(ids, targets, classes, max_position, device) for ids in (train_ids, valid_ids, held_ids))

    epochs = [20] * len(pooled)
    if args.results:
        reported = {layer["layer"]: layer["probe_epochs"] for layer in json.load(open(args.results))["layers"]}
        epochs = [reported.get(layer, statistics.median(reported.values())) for layer in range(len(pooled))]
    control_epochs = int(statistics.median(epochs))

    clock = time.perf_counter()
    train_probe(torch.zeros_like(pooled[0]), train, valid, held, classes, max_position, control_epochs, args.seed + 1, device)
    synchronize(device)
    times["control"] = time.perf_counter() - clock

    clock = time.perf_counter()
    accuracy = []
    for layer, vectors in enumerate(pooled):
        acc, _ = train_probe(vectors, train, valid, held, classes, max_position, int(epochs[layer]), args.seed + 1, device)
        accuracy.append(round(acc, 4))
    synchronize(device)
    times["probes"] = time.perf_counter() - clock
    times["total"] = sum(times.values())
    print(json.dumps({
        "system": f"torch {torch.__version__} {args.dtype} on {device}", "sentences": len(encoded), "batch_size": args.batch_size,
        "epochs": epochs, "control_epochs": control_epochs, "timings_s": {k: round(v, 3) for k, v in times.items()}, "held_out_accuracy": accuracy,
    }))


if __name__ == "__main__":
    main()
