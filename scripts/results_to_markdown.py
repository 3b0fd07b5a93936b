#!/usr/bin/env python3
"""Render the per-layer tables of one or more `nativemi measure` results.json files (schema nativemi.measure/2) as Markdown.

Usage: python3 scripts/results_to_markdown.py results/a/results.json [results/b/results.json ...]
Standard library only.
"""
import json
import sys


def ci(interval, fmt=".2f"):
    return f" [{interval[0]:{fmt}}, {interval[1]:{fmt}}]" if interval else ""


def table(path):
    with open(path, encoding="utf-8") as f:
        r = json.load(f)
    if r.get("schema") != "nativemi.measure/2":
        sys.exit(f"{path}: schema {r.get('schema')!r}; expected 'nativemi.measure/2'")
    m, c, s, t = r["model"], r["corpus"], r["settings"], r["targets"]
    head = r["headline_target"]
    other = "token" if head == "coarse" else "coarse"
    sym = {"coarse": "f(X)", "token": "X"}
    diffs = r["differences"][head]
    out = [
        f"### {m['name']} ({m['architecture']}, {m['layers']} layers, width {m['width']}): {r['probe_family']} probe, {s['pool']} pooling",
        "",
        f"{c['sampled']:,} of {c['population_sentences']:,} sentences sampled (seed {s['seed']}) from `{c['path'].split('/')[-1]}` "
        f"(sha256 {c['sha256'][:12]}…): {c['sentences']['train']:,} train / {c['sentences']['validation']:,} validation / "
        f"{c['sentences']['held_out']:,} held-out; {t['classes']['count'] - 1:,} classes + other "
        f"({t['classes']['training_coverage']:.1%} of training targets); backend {r['backend']}; {r['timings_s']['total']:.0f} s.",
        f"H(X) = {t['token']['h_x_bits']:.3f}, H(X | I) = {t['token']['h_x_given_i_bits']:.3f} bits (whole corpus, |X| = {t['token']['alphabet_size']:,}); "
        f"H(f(X)) = {t['coarse']['h_x_bits']:.3f}, H(f(X) | I) = {t['coarse']['h_x_given_i_bits']:.3f} bits "
        f"(the {t['coarse']['population_sentences']:,} sentences the probes were not fitted on, |f(X)| = {t['coarse']['alphabet_size']:,}).",
        "",
        f"Coarse target f(X) (headline):" if head == "coarse" else "Token target X (headline):",
        "",
        "| layer | depth | acc [95% CI] | I_F | I_F 95%up | I_BA [95% CI] | I_S [95% CI] | gain [95% CI] | I_BA − next [95% CI] |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, l in enumerate(r["layers"]):
        f = l[head]
        nxt = f"{diffs[i]['ba_bits']:.2f}{ci(diffs[i]['ci'])}{'' if diffs[i]['resolved'] else ' ~'}" if i < len(diffs) else ""
        out.append(
            f"| {l['name']} | {l['depth']:.2f} | {f['acc']:.3f}{ci(f['acc_ci'], '.3f')} | {f['fano_bits']:.2f} | {f['fano_upper_error_bits']:.2f} | "
            f"{f['ba_bits']:.2f}{ci(f['ba_ci'])} | {f['sentence_lower_bits']:.2f}{ci(f['sentence_lower_ci'])} | "
            f"{f['gain_bits']:.2f}{ci(f['gain_ci'])} | {nxt} |")
    cf = r["control"][head]
    out.append(f"| control | | {cf['acc']:.3f}{ci(cf['acc_ci'], '.3f')} | {cf['fano_bits']:.2f} | {cf['fano_upper_error_bits']:.2f} | "
               f"{cf['ba_bits']:.2f}{ci(cf['ba_ci'])} | {cf['sentence_lower_bits']:.2f}{ci(cf['sentence_lower_ci'])} | | |")
    out += ["", f"Token target X:" if other == "token" else "Coarse target f(X):", "",
            "| layer | acc | CE | I_F | I_BA [95% CI] | I_S [95% CI] | gain |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for l in r["layers"]:
        f = l[other]
        out.append(f"| {l['name']} | {f['acc']:.3f} | {f['ce_bits']:.2f} | {f['fano_bits']:.2f} | {f['ba_bits']:.2f}{ci(f['ba_ci'])} | "
                   f"{f['sentence_lower_bits']:.2f}{ci(f['sentence_lower_ci'])} | {f['gain_bits']:.2f} |")
    cf = r["control"][other]
    out.append(f"| control | {cf['acc']:.3f} | {cf['ce_bits']:.2f} | {cf['fano_bits']:.2f} | {cf['ba_bits']:.2f}{ci(cf['ba_ci'])} | "
               f"{cf['sentence_lower_bits']:.2f}{ci(cf['sentence_lower_ci'])} | |")
    out.append("")
    for target in (head, other):
        sm = r["summary"][target]
        fg = sm["forgetting"]
        out.append(f"{sym[target]}: peak I_BA at layer {sm['peak_name']} ({sm['peak_ba_bits']:.2f} bits); "
                   f"forgetting (peak − last) {fg['ba_bits']:.2f}{ci(fg['ci'])} bits.")
    out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print("\n".join(table(p) for p in sys.argv[1:]))
