#!/usr/bin/env python3
"""One epoch of NativeMi's positional probe in PyTorch (CPU), for `probe-compare`.

q(x | z, i) = softmax(W2 gelu(W1 z + P[i] + b1) + b2), AdamW (lr 1e-3, weight decay 0.01 on every
parameter, as NativeMi), mini-batches of 32 whole sentences, on synthetic data with exactly the layout
of benchmarks/NativeMi.Benchmarks/SyntheticProbeData.cs (1400 training and 200 validation sentences of
6..16 targets, d = 384, 2499 target tokens + the "other" class, hidden 512).

One timed "epoch" = what ProbeTrainer.Train does with MaxEpochs = 1: standardise the vectors, build and
initialise the probe, one shuffled pass of AdamW steps over the training split, one scoring pass over
the validation split. Prints one JSON line with every run's seconds and the median.

Run: /usr/bin/python3 scripts/probe_epoch_torch.py [--runs 5] [--threads 2]
"""
import argparse
import json
import statistics
import time

import torch

TRAIN, VALID, WIDTH, TOKENS, HIDDEN, BATCH = 1400, 200, 384, 2499, 512, 32


def targets(s):
    length = 6 + 7 * s % 11
    return [(131 * s + 977 * i + 7 * (s // 7)) % TOKENS for i in range(length)]


def split(first, count, generator):
    vectors = torch.randn(count, WIDTH, generator=generator)
    return vectors, [targets(s) for s in range(first, first + count)]


def layout(tgts, classes, max_position):
    """Per target: sentence index, position index, class (flattened over the split)."""
    sentence, position, cls = [], [], []
    for s, t in enumerate(tgts):
        for i, token in enumerate(t):
            sentence.append(s)
            position.append(min(i, max_position - 1))
            cls.append(classes.get(token, len(classes)))
    return torch.tensor(sentence), torch.tensor(position), torch.tensor(cls)


class Probe(torch.nn.Module):
    def __init__(self, width, hidden, classes, positions):
        super().__init__()
        self.w1 = torch.nn.Parameter(torch.zeros(width, hidden))
        self.b1 = torch.nn.Parameter(torch.zeros(hidden))
        self.p = torch.nn.Parameter(torch.randn(positions, hidden) / width ** 0.5)
        self.w2 = torch.nn.Parameter(torch.randn(hidden, classes) / hidden ** 0.5)
        self.b2 = torch.nn.Parameter(torch.zeros(classes))

    def forward(self, z, sentence_of_target, position_of_target):
        h = z @ self.w1
        u = h[sentence_of_target] + self.p[position_of_target] + self.b1
        return torch.nn.functional.gelu(u) @ self.w2 + self.b2


def batches(order, tgts, sentence_start):
    """Yields (members, slice of the flattened targets) per mini-batch of whole sentences."""
    for start in range(0, len(order), BATCH):
        yield order[start:start + BATCH]


def epoch(train, valid, seed):
    (zt, tt), (zv, tv) = train, valid
    mean, std = zt.mean(0), zt.std(0, unbiased=False)
    scale = torch.where(std > 1e-6, 1 / std, torch.zeros_like(std))
    zt, zv = (zt - mean) * scale, (zv - mean) * scale
    classes = {token: c for c, token in enumerate(sorted({x for t in tt for x in t}))}
    max_position = max(len(t) for t in tt)
    torch.manual_seed(seed)
    probe = Probe(WIDTH, HIDDEN, len(classes) + 1, max_position)
    optimiser = torch.optim.AdamW(probe.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    # Per-sentence layouts, gathered per batch like NativeMi's BatchSource.Prepare.
    per_sentence_t = [layout([t], classes, max_position) for t in tt]
    per_sentence_v = [layout([t], classes, max_position) for t in tv]

    def prepare(z, per_sentence, members):
        sentence = torch.cat([torch.full_like(per_sentence[s][0], b) for b, s in enumerate(members)])
        position = torch.cat([per_sentence[s][1] for s in members])
        cls = torch.cat([per_sentence[s][2] for s in members])
        return z[members], sentence, position, cls

    order = torch.randperm(len(tt)).tolist()
    loss_sum, count = 0.0, 0
    for members in batches(order, tt, 0):
        z, sentence, position, cls = prepare(zt, per_sentence_t, members)
        loss = torch.nn.functional.cross_entropy(probe(z, sentence, position), cls)
        optimiser.zero_grad(set_to_none=False)
        loss.backward()
        optimiser.step()
        loss_sum += loss.item() * len(cls)
        count += len(cls)
    with torch.no_grad():
        valid_sum, valid_count = 0.0, 0
        for members in batches(list(range(len(tv))), tv, 0):
            z, sentence, position, cls = prepare(zv, per_sentence_v, members)
            valid_sum += torch.nn.functional.cross_entropy(probe(z, sentence, position), cls, reduction="sum").item()
            valid_count += len(cls)
    return loss_sum / count, valid_sum / valid_count


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(1)
    train, valid = split(0, TRAIN, generator), split(TRAIN, VALID, generator)
    seconds = []
    for run in range(args.warmup + args.runs):
        start = time.perf_counter()
        train_nats, valid_nats = epoch(train, valid, seed=run)
        elapsed = time.perf_counter() - start
        if run >= args.warmup:
            seconds.append(elapsed)
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(), "runs": seconds,
        "median_s": statistics.median(seconds), "train_targets": sum(len(t) for t in train[1]),
        "classes": len({x for t in train[1] for x in t}) + 1, "last_train_nats": train_nats, "last_valid_nats": valid_nats,
    }))


if __name__ == "__main__":
    main()
