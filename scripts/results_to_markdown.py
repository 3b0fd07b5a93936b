#!/usr/bin/env python3
"""Render the per-layer table of one or more `nativemi measure` results.json files as Markdown.

Usage: python3 scripts/results_to_markdown.py results/a/results.json [results/b/results.json ...]
Standard library only.
"""
import json
import sys


def ci(interval, fmt):
    return f" [{interval[0]:{fmt}}, {interval[1]:{fmt}}]" if interval else ""


def table(path):
    with open(path, encoding="utf-8") as f:
        r = json.load(f)
    m, c, s = r["model"], r["corpus"], r["settings"]
    h_x = r["layers"][0]["h_x_bits"]
    out = [
        f"### {m['name']} ({m['architecture']}, {m['layers']} layers, width {m['width']}): {r['probe_family']} probe, {s['pool']} pooling",
        "",
        f"{c['sampled']} sentences sampled (seed {s['seed']}) from `{c['path'].split('/')[-1]}` (sha256 {c['sha256'][:12]}…): "
        f"{c['sentences']['train']} train / {c['sentences']['validation']} validation / {c['sentences']['held_out']} held-out; "
        f"H(X) = {h_x:.2f} bits (Miller-Madow), |X| = {m['vocab_size']}; backend {r['backend']}; "
        f"{r['timings_s']['total']:.0f} s.",
        "",
        "| layer | depth | acc [95% CI] | CE | I_F [95% CI] | I_F certified | I_BA [95% CI] | I_ctrl | gain |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for l in r["layers"]:
        out.append(
            f"| {l['name']} | {l['depth']:.2f} | {l['acc']:.3f}{ci(l['acc_ci'], '.3f')} | {l['ce_bits']:.2f} | "
            f"{l['fano_bits']:.2f}{ci(l['fano_ci'], '.2f')} | {l['fano_certified_bits']:.2f} | "
            f"{l['ba_bits']:.2f}{ci(l['ba_ci'], '.2f')} | {l['control_ba_bits']:.2f} | {l['gain_bits']:.2f} |"
        )
    sm = r["summary"]
    out += ["", f"Peak I_F at layer {sm['peak_layer']} ({sm['peak_fano_bits']:.2f} bits); forgetting (peak − last) {sm['forgetting_bits']:.2f} bits.", ""]
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print("\n".join(table(p) for p in sys.argv[1:]))
