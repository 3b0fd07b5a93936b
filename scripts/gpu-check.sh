#!/usr/bin/env bash
# One rerunnable GPU check (see GPU.md). On a machine with an NVIDIA GPU, python3 + torch + transformers +
# safetensors, and a published nativemi binary (no dotnet or network needed there):
#   dotnet publish src/NativeMi.Cli -c Release -r linux-x64 -p:PublishAot=true -o publish   # on a build machine
#   scripts/gpu-check.sh [path/to/nativemi]
# `nativemi hidden` runs the forward pass on the CPU backend until the CUDA backend is wired into it; the
# CUDA ops themselves are checked by doctor.
# Prints nvidia-smi and where libcuda/cuBLAS/NVRTC were found, runs `nativemi doctor --require-gpu` (every CUDA
# op against the CPU backend), builds seeded random-init BERT-base and GPT-2-small with transformers, compares
# our hidden states with theirs, times both, and prints a summary table last (also written under
# benchmarks/results/). Exits non-zero when any step fails.
set -uo pipefail
cd "$(dirname "$0")/.."
nativemi=${1:-${NATIVEMI_BIN:-publish/nativemi}}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
summary="$work/summary.txt"
status=0
row() { printf '%-34s %s\n' "$1" "$2" >> "$summary"; }

echo "== nvidia-smi"
if nvidia-smi; then gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1); else gpu="none"; status=1; fi
row "gpu, driver" "$gpu"

echo "== nativemi doctor"
if [ ! -x "$nativemi" ]; then
  echo "no nativemi binary at $nativemi (publish one, or pass its path)" >&2
  row "nativemi doctor" "not run: no binary at $nativemi"
  cat "$summary"; exit 1
fi
"$nativemi" doctor --require-gpu | tee "$work/doctor.txt"
doctor=${PIPESTATUS[0]}
row "nativemi doctor (CUDA vs CPU ops)" "$([ "$doctor" = 0 ] && echo pass || echo "FAIL (exit $doctor)")"
[ "$doctor" = 0 ] || status=1

echo "== hidden states against transformers (seeded random init)"
python3 - "$nativemi" "$work" "$summary" <<'PY' || status=1
import json, os, subprocess, sys, time
import torch
from safetensors.torch import load_file
from transformers import BertConfig, BertModel, GPT2Config, GPT2Model

nativemi, work, summary = sys.argv[1], sys.argv[2], sys.argv[3]
sentences = ["The quick brown fox jumps over the lazy dog.", "A short one.",
             "Mutual information bounds need held-out predictions from a probe trained on pooled states."] * 22
text = os.path.join(work, "sentences.txt")
open(text, "w").write("\n".join(sentences) + "\n")
device = "cuda" if torch.cuda.is_available() else "cpu"
failed = False

def write_wordpiece_vocabulary(folder):
    # nativemi reads the tokenizer from the model folder; a vocabulary of the test sentences' words is enough
    # for a random-init model, and the comparison feeds nativemi's own token ids to transformers.
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted({w.strip(".,").lower() for s in sentences for w in s.split()}) + [".", ","]
    open(os.path.join(folder, "vocab.txt"), "w").write("\n".join(words) + "\n")
    json.dump({"do_lower_case": True, "model_max_length": 512}, open(os.path.join(folder, "tokenizer_config.json"), "w"))
    return len(words)

for kind in ("bert", "gpt2"):
    torch.manual_seed(1234)
    folder = os.path.join(work, kind)
    os.makedirs(folder, exist_ok=True)
    if kind == "bert":
        vocab = write_wordpiece_vocabulary(folder)
        model = BertModel(BertConfig(vocab_size=vocab, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072))
    else:
        # Byte-level BPE with only the 256 byte symbols and no merges: every byte is a token.
        from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode
        symbols = list(bytes_to_unicode().values())
        json.dump({s: i for i, s in enumerate(symbols + ["<|endoftext|>"])}, open(os.path.join(folder, "vocab.json"), "w"))
        open(os.path.join(folder, "merges.txt"), "w").write("#version: 0.2\n")
        model = GPT2Model(GPT2Config(vocab_size=len(symbols) + 1, n_embd=768, n_layer=12, n_head=12, bos_token_id=256, eos_token_id=256))
    model.save_pretrained(folder)
    out = os.path.join(work, kind + ".safetensors")
    start = time.perf_counter()
    run = subprocess.run([nativemi, "hidden", "--model", folder, "--input", text, "--out", out, "--batch-size", "32"], capture_output=True, text=True)
    ours_seconds = time.perf_counter() - start
    if run.returncode != 0:
        print(run.stderr, file=sys.stderr)
        open(summary, "a").write(f"{kind + ' hidden states':<34} FAIL: nativemi hidden exited {run.returncode}\n")
        failed = True
        continue
    ours = load_file(out)
    ids, mask = ours["input_ids"].long(), ours["attention_mask"].long()
    model = model.to(device).eval()
    with torch.no_grad():
        torch.cuda.synchronize() if device == "cuda" else None
        start = time.perf_counter()
        theirs = model(input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True).hidden_states
        torch.cuda.synchronize() if device == "cuda" else None
        their_seconds = time.perf_counter() - start
    real = mask.bool()
    worst = 0.0
    names = sorted((k for k in ours if k.startswith("hidden.")), key=lambda k: (k == "hidden.final", k))
    for name in names:
        layer = len(theirs) - 1 if name == "hidden.final" else int(name.split(".")[1])
        if kind == "gpt2" and name != "hidden.final" and layer == len(theirs) - 1:
            continue  # Hugging Face's last GPT-2 state is after ln_f; ours before it is hidden.<L>, after it hidden.final.
        a, b = ours[name][real].double(), theirs[layer].cpu()[real].double()
        worst = max(worst, ((a - b).norm() / b.norm().clamp_min(1e-30)).item())
    verdict = "pass" if worst < 1e-4 else "FAIL"
    failed |= verdict != "pass"
    open(summary, "a").write(f"{kind + ' hidden states vs HF':<34} {verdict}: worst relative L2 {worst:.2e} over {len(names)} layers\n")
    open(summary, "a").write(f"{kind + ' time (ours end-to-end / HF)':<34} {ours_seconds:.2f} s (nativemi, incl. start and load) / {their_seconds:.3f} s ({device} forward)\n")
sys.exit(1 if failed else 0)
PY

echo "== summary ($(date -u +%Y-%m-%dT%H:%MZ), $gpu, command: $0 $nativemi)"
cat "$summary"
mkdir -p benchmarks/results
{ echo "# gpu-check $(date -u +%Y-%m-%d)"; echo; echo "GPU/driver: $gpu"; echo "command: scripts/gpu-check.sh $nativemi"; echo; echo '```'; cat "$summary"; echo '```'; } \
  > "benchmarks/results/gpu-check-$(date -u +%Y%m%d).md" || true
exit "$status"
