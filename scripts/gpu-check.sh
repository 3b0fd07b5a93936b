#!/usr/bin/env bash
# One rerunnable GPU check (see GPU.md), inside one 10-minute run. On a machine with an NVIDIA GPU, python3 + torch +
# transformers + safetensors, and a published nativemi binary (no dotnet or network needed there):
#   dotnet publish src/NativeMi.Cli -c Release -r linux-x64 -p:PublishAot=true -o publish   # on a build machine
#   scripts/gpu-check.sh LOG_FOLDER [path/to/nativemi]
#   scripts/gpu-check.sh --emulator LOG_FOLDER [path/to/nativemi]   # CI: the emulated GPU, up to the transformers steps
# Every step's output goes to LOG_FOLDER/<step>.log; progress lines go to standard output; the summary is printed last
# and written to LOG_FOLDER/summary.txt (and, on a real GPU, to benchmarks/results/gpu-check-<date>.md).
# Steps:
#   1. nvidia-smi (or the emulator), and where libcuda / cuBLAS / NVRTC were found (doctor prints them);
#   2. builds seeded random-init BERT-base and GPT-2-small with transformers (save_pretrained);
#   3. `nativemi doctor --require-gpu`: every CUDA op against the CPU backend (fp32, cuBLAS attention, TF32), a model's
#      forward pass on both backends, and a measurement whose GPU figures must fall inside the CPU run's intervals
#      (the built-in minilm when the binary finds it, else the random-init BERT-base; the bert-tiny fixture when emulated);
#   4. hidden states of `nativemi hidden --backend cuda` against transformers on the GPU, both models (emulated: against
#      `nativemi hidden --backend cpu` on the fixture); the decoder fixtures' float64 goldens against the real transformers
#      classes (scripts/make_decoder_fixtures.py --check-transformers) and `hidden --backend cuda` on each against the CPU;
#   5. `nativemi bench --ops` on the GPU at BERT-base's shapes (emulated: the fixture's), and forward throughput of every
#      layer, batch 64 and 256 x 128 tokens: `nativemi bench --backend cuda` beside PyTorch eager fp32 and bf16;
#   6. the whole measure run at batch 64 and 256: `nativemi measure --backend cuda` beside scripts/measure_torch.py.
# A step that would start after the time budget (GPU_CHECK_BUDGET_S, default 540 s, so the run ends inside 10 minutes) is
# skipped and says so. Exits non-zero when any check fails. GPU_CHECK_RUNS (default 10) sets the timed runs per shape.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
emulated=0
if [ "${1:-}" = "--emulator" ]; then emulated=1; shift; fi
if [ $# -lt 1 ]; then echo "usage: scripts/gpu-check.sh [--emulator] LOG_FOLDER [nativemi]" >&2; exit 2; fi
logs=$(mkdir -p "$1" && cd "$1" && pwd)
nativemi=${2:-${NATIVEMI_BIN:-publish/nativemi}}
runs=${GPU_CHECK_RUNS:-10}
budget=${GPU_CHECK_BUDGET_S:-540}
started=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
summary="$logs/summary.txt"
: > "$summary"
status=0
row() { printf '%-44s %s
' "$1" "$2" >> "$summary"; }
elapsed() { echo $(( $(date +%s) - started )); }
step() { echo "== [$(elapsed) s] $1"; }
# True when there is time left for a step expected to take $1 seconds; otherwise records the skip.
within_budget() {
  if [ $(( $(elapsed) + $1 )) -gt "$budget" ]; then
    row "$2" "skipped: the ${budget} s budget would be exceeded ($(elapsed) s used)"
    echo "   skipped: time budget"
    return 1
  fi
}
export NATIVEMI_CACHE="$work/cache"
# hidden_against_cpu FOLDER LABEL TOLERANCE: `nativemi hidden` on CUDA against the CPU backend on $work/sentences.txt.
hidden_against_cpu() {
  local label="hidden --backend cuda vs cpu: $2"
  if "$nativemi" hidden --backend cuda --model "$1" --input "$work/sentences.txt" --out "$work/$2-cuda.safetensors" > "$logs/hidden-$2-cuda.log" 2>&1 \
     && "$nativemi" hidden --backend cpu --model "$1" --input "$work/sentences.txt" --out "$work/$2-cpu.safetensors" > "$logs/hidden-$2-cpu.log" 2>&1; then
    local comparison
    comparison=$(python3 scripts/compare_hidden.py "$work/$2-cuda.safetensors" "$work/$2-cpu.safetensors" "$3")
    row "$label" "$comparison"
    case "$comparison" in pass*) ;; *) status=1 ;; esac
  else
    row "$label" "FAIL: nativemi hidden failed (see hidden-$2-*.log)"; status=1
  fi
}

if [ "$emulated" = 1 ]; then
  if [ -z "${NATIVEMI_EMULATOR_PATH:-}" ]; then
    NATIVEMI_EMULATOR_PATH=$(scripts/build-cuda-emulator.sh | tail -n 1) || { echo "could not build the emulated GPU" >&2; exit 1; }
  fi
  export NATIVEMI_CUDA_PATH="$NATIVEMI_EMULATOR_PATH"
  step "emulated GPU from $NATIVEMI_CUDA_PATH (timings below are the CPU emulator's, never GPU figures)"
  gpu="emulated (NativeMi CUDA emulator on the CPU)"
else
  step "nvidia-smi"
  if nvidia-smi > "$logs/nvidia-smi.log" 2>&1; then gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1); else gpu="none"; status=1; fi
  cat "$logs/nvidia-smi.log"
fi
row "gpu, driver" "$gpu"
if [ ! -x "$nativemi" ]; then
  echo "no nativemi binary at $nativemi (publish one, or pass its path)" >&2
  row "nativemi" "not run: no binary at $nativemi"
  cat "$summary"; exit 1
fi

if [ "$emulated" = 1 ]; then
  fixture="$repo/tests/NativeMi.Tests/fixtures/bert-tiny"
  head -n 300 data/wordnet-examples.txt > "$work/corpus.txt"
  step "nativemi doctor on the emulated GPU (bert-tiny fixture)"
  "$nativemi" doctor --require-gpu --model "$fixture" --probe-sentences 100 > "$logs/doctor.log" 2>&1
  doctor=$?
  row "doctor: ops, forward, probe (emulated vs CPU)" "$([ "$doctor" = 0 ] && echo pass || echo "FAIL (exit $doctor)")"
  grep -E "^gpu 0:|cases match|layers agree|figures inside" "$logs/doctor.log" | sed 's/^ */    /' >> "$summary"
  [ "$doctor" = 0 ] || status=1

  step "hidden states: emulated GPU against the CPU backend (bert-tiny and the decoder fixtures)"
  head -n 40 "$work/corpus.txt" > "$work/sentences.txt"
  hidden_against_cpu "$fixture" "bert-tiny" 1e-4
  for name in llama-tiny mistral-tiny qwen2-tiny qwen3-tiny gemma-tiny llama-tiny-bf16 qwen2-tiny-f16; do
    # 16-bit weights run GemmEx with the activations rounded to the format (8 significant bits for BF16, 11 for F16).
    case "$name" in *bf16) tolerance=2e-2 ;; *f16) tolerance=3e-3 ;; *) tolerance=1e-4 ;; esac
    hidden_against_cpu "$repo/tests/NativeMi.Tests/fixtures/$name" "$name" "$tolerance"
  done

  step "bench --ops on the emulated GPU"
  if "$nativemi" bench --ops --backend cuda --model "$fixture" --batch-sizes 2 --seq 16 --runs 1 --warmup 0 > "$logs/bench-ops.log" 2>&1 \
     && grep -q "not GPU figures" "$logs/bench-ops.log"; then
    row "bench --ops (emulated)" "pass: every op timed; marked as not GPU figures"
  else
    row "bench --ops (emulated)" "FAIL (see bench-ops.log)"; status=1
  fi
  row "transformers comparisons, throughput, measure" "skipped (--emulator: they need transformers and a GPU)"
  step "summary ($(date -u +%Y-%m-%dT%H:%MZ), $gpu, $(elapsed) s, command: $0 --emulator $logs $nativemi)"
  cat "$summary"
  exit "$status"
fi

step "random-init BERT-base and GPT-2-small (transformers, seed 1234)"
head -n 2000 data/wordnet-examples.txt > "$work/corpus.txt"
python3 - "$work" "$repo/data/wordnet-examples.txt" <<'PY' || { row "random-init models" "FAIL"; cat "$summary"; exit 1; }
import collections, json, os, re, sys
import torch
from transformers import BertConfig, BertModel, GPT2Config, GPT2Model
from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode
work, corpus = sys.argv[1], sys.argv[2]
text = open(corpus, encoding="utf-8").read().lower()
# WordPiece vocabulary: the corpus's 25,000 most frequent words, every character and its ## form, so any word tokenises.
words = collections.Counter(re.findall(r"\w+|[^\w\s]", text))
characters = sorted({c for c in text if not c.isspace()})
vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + characters + ["##" + c for c in characters]
vocab += [w for w, _ in words.most_common(25000) if w not in set(vocab)]
torch.manual_seed(1234)
folder = os.path.join(work, "bert")
os.makedirs(folder, exist_ok=True)
open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8").write("\n".join(vocab) + "\n")
json.dump({"do_lower_case": True, "model_max_length": 512, "tokenizer_class": "BertTokenizer"}, open(os.path.join(folder, "tokenizer_config.json"), "w"))
BertModel(BertConfig(vocab_size=len(vocab), hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)).save_pretrained(folder)
# GPT-2: byte-level BPE with the 256 byte symbols and no merges (every byte is a token).
torch.manual_seed(1234)
folder = os.path.join(work, "gpt2")
os.makedirs(folder, exist_ok=True)
symbols = list(bytes_to_unicode().values())
json.dump({s: i for i, s in enumerate(symbols + ["<|endoftext|>"])}, open(os.path.join(folder, "vocab.json"), "w"))
open(os.path.join(folder, "merges.txt"), "w").write("#version: 0.2\n")
json.dump({"model_max_length": 1024, "tokenizer_class": "GPT2Tokenizer"}, open(os.path.join(folder, "tokenizer_config.json"), "w"))
GPT2Model(GPT2Config(vocab_size=len(symbols) + 1, n_embd=768, n_layer=12, n_head=12, bos_token_id=256, eos_token_id=256)).save_pretrained(folder)
print(f"bert vocabulary {len(vocab)}; gpt2 vocabulary {len(symbols) + 1}")
PY

step "decoder families: the fixtures' goldens against transformers, and nativemi on CUDA against the CPU"
if within_budget 90 "decoder goldens vs transformers"; then
  python3 scripts/make_decoder_fixtures.py --check-transformers > "$logs/decoder-transformers.log" 2>&1
  decoder=$?
  row "decoder goldens vs transformers (7 fixtures)" "$([ "$decoder" = 0 ] && echo pass || echo "FAIL (exit $decoder)"): $(tail -n 1 "$logs/decoder-transformers.log")"
  [ "$decoder" = 0 ] || status=1
  head -n 40 "$work/corpus.txt" > "$work/sentences.txt"
  for name in llama-tiny mistral-tiny qwen2-tiny qwen3-tiny gemma-tiny llama-tiny-bf16 qwen2-tiny-f16; do
    case "$name" in *bf16) tolerance=2e-2 ;; *f16) tolerance=3e-3 ;; *) tolerance=1e-4 ;; esac
    hidden_against_cpu "$repo/tests/NativeMi.Tests/fixtures/$name" "$name" "$tolerance"
  done
fi

step "nativemi doctor"
within_budget 240 "doctor: ops, forward, probe (CUDA vs CPU)" || { cat "$summary"; exit 1; }
doctor_model=minilm
"$nativemi" inspect minilm > /dev/null 2>&1 || doctor_model="$work/bert"
"$nativemi" doctor --require-gpu --model "$doctor_model" > "$logs/doctor.log" 2>&1
doctor=$?
cp "$logs/doctor.log" "$work/doctor.txt"
row "doctor: ops, forward, probe (CUDA vs CPU)" "$([ "$doctor" = 0 ] && echo pass || echo "FAIL (exit $doctor)"); model $( [ "$doctor_model" = minilm ] && echo minilm || echo random-init bert-base)"
grep -E "cases match|layers agree|figures inside" "$work/doctor.txt" | sed 's/^ */    /' >> "$summary"
[ "$doctor" = 0 ] || status=1

step "bench --ops at BERT-base's shapes"
if within_budget 60 "bench --ops (GPU)"; then
  if "$nativemi" bench --ops --backend cuda --model "$work/bert" --batch-sizes 64 --seq 128 --json "$logs/bench-ops.json" > "$logs/bench-ops.log" 2>&1; then
    row "bench --ops (GPU, bert-base b64 x128)" "pass: see bench-ops.log (ms, GFLOP/s, GB/s, % of peak)"
  else
    row "bench --ops (GPU)" "FAIL (see bench-ops.log)"; status=1
  fi
fi

step "hidden states against transformers, throughput, whole measure run"
deadline=$(( started + budget ))
python3 - "$nativemi" "$work" "$summary" "$runs" "$repo" "$deadline" > "$logs/transformers.log" 2>&1 <<'PY' || status=1
import json, os, statistics, subprocess, sys, time
import torch
from safetensors.torch import load_file
from transformers import AutoModel

nativemi, work, summary, runs, repo, deadline = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
device = "cuda"
failed = False

def line(label, text):
    open(summary, "a").write(f"{label:<44} {text}\n")
    print(f"   {label}: {text}", flush=True)

def time_left(seconds, label):
    """True when a step expected to take `seconds` still ends before the run's deadline; otherwise records the skip."""
    if time.time() + seconds <= deadline:
        return True
    line(label, "skipped: the time budget would be exceeded")
    return False

def run(arguments):
    start = time.perf_counter()
    done = subprocess.run([nativemi] + arguments, capture_output=True, text=True)
    return done, time.perf_counter() - start

def median_ms(call, warmup=3):
    for _ in range(warmup):
        call()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)

sentences = [l.strip() for l in open(os.path.join(work, "corpus.txt"), encoding="utf-8")][:64]
sentences_file = os.path.join(work, "sentences.txt")
open(sentences_file, "w", encoding="utf-8").write("\n".join(sentences) + "\n")

for kind in ("bert", "gpt2"):
    folder = os.path.join(work, kind)
    if not time_left(60, f"{kind}: hidden states and throughput"):
        continue
    # 4. Hidden states: nativemi's own token ids go to transformers, every layer compared over real tokens.
    out = os.path.join(work, kind + ".safetensors")
    done, _ = run(["hidden", "--backend", "cuda", "--model", folder, "--input", sentences_file, "--out", out, "--batch-size", "32"])
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        line(f"{kind}: hidden states vs transformers", f"FAIL: nativemi hidden exited {done.returncode}")
        failed = True
        continue
    ours = load_file(out)
    ids, mask = ours["input_ids"].long(), ours["attention_mask"].long()
    model = AutoModel.from_pretrained(folder).to(device).eval()
    with torch.no_grad():
        theirs = model(input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True).hidden_states
    real = mask.bool()
    worst, compared = 0.0, 0
    for name in sorted((k for k in ours if k.startswith("hidden.")), key=lambda k: (k == "hidden.final", k)):
        layer = len(theirs) - 1 if name == "hidden.final" else int(name.split(".")[1])
        if kind == "gpt2" and name != "hidden.final" and layer == len(theirs) - 1:
            continue  # transformers' last GPT-2 state is after ln_f: ours before it is hidden.<L>, after it hidden.final
        a, b = ours[name][real].double(), theirs[layer].cpu()[real].double()
        worst = max(worst, ((a - b).norm() / b.norm().clamp_min(1e-30)).item())
        compared += 1
    verdict = "pass" if worst < 1e-4 else "FAIL"
    failed |= verdict != "pass"
    line(f"{kind}: hidden states vs transformers (CUDA)", f"{verdict}: worst relative L2 {worst:.2e} over {compared} layers, {len(sentences)} sentences")

    # 5. Forward throughput, every layer, full-length synthetic batches.
    bench_json = os.path.join(work, kind + "-bench.json")
    done, _ = run(["bench", "--backend", "cuda", "--model", folder, "--batch-sizes", "64,256", "--seq", "128",
                   "--runs", str(runs), "--warmup", "3", "--json", bench_json])
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        line(f"{kind}: forward throughput", f"FAIL: nativemi bench exited {done.returncode}")
        failed = True
        continue
    ours_rows = {r["batch_size"]: r for r in json.load(open(bench_json))["rows"]}
    bf16 = AutoModel.from_pretrained(folder, torch_dtype=torch.bfloat16).to(device).eval()
    generator = torch.Generator().manual_seed(20261128)
    for batch in (64, 256):
        ids = torch.randint(1000 if kind == "bert" else 0, model.config.vocab_size, (batch, 128), generator=generator).to(device)
        attention = torch.ones_like(ids)
        with torch.no_grad():
            fp32_ms = median_ms(lambda: model(input_ids=ids, attention_mask=attention, output_hidden_states=True))
            bf16_ms = median_ms(lambda: bf16(input_ids=ids, attention_mask=attention, output_hidden_states=True))
        r = ours_rows[batch]
        line(f"{kind}: forward b{batch} x128, ms (median of {runs})",
             f"nativemi {r['pooled_median_ms']:.2f} pooled / {r['all_states_median_ms']:.2f} all states to host; "
             f"torch fp32 {fp32_ms:.2f}, bf16 {bf16_ms:.2f}; nativemi/torch fp32 {r['pooled_median_ms'] / fp32_ms:.2f}x, /bf16 {r['pooled_median_ms'] / bf16_ms:.2f}x")
    del model, bf16
    torch.cuda.empty_cache()

# 6. The whole measure run on random-init BERT-base over the first 2000 corpus lines.
folder, corpus = os.path.join(work, "bert"), os.path.join(work, "corpus.txt")
for batch in (64, 256):
    if not time_left(90, f"measure b{batch}"):
        continue
    out = os.path.join(work, f"measure-{batch}")
    done, seconds = run(["measure", "--backend", "cuda", "--model", folder, "--corpus", corpus, "--max-sentences", "all",
                         "--batch-size", str(batch), "--out", out])
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        line(f"measure b{batch}", f"FAIL: nativemi measure exited {done.returncode}")
        failed = True
        continue
    timings = json.load(open(os.path.join(out, "results.json")))["timings_s"]
    torch_seconds = {}
    for dtype in ("fp32", "bf16"):
        result = subprocess.run([sys.executable, os.path.join(repo, "scripts", "measure_torch.py"), "--model", folder, "--corpus", corpus,
                                 "--results", os.path.join(out, "results.json"), "--batch-size", str(batch), "--dtype", dtype],
                                capture_output=True, text=True)
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            failed = True
            continue
        torch_seconds[dtype] = json.loads(result.stdout.strip().splitlines()[-1])["timings_s"]["total"]
    line(f"measure b{batch} (bert-base, 2000 lines), s",
         f"nativemi {timings['total']:.1f} (forward {timings['forward']:.1f}, probes {timings['probes']:.1f}; wall {seconds:.1f}); "
         + "; ".join(f"torch {d} {s:.1f} ({timings['total'] / s:.2f}x)" for d, s in torch_seconds.items()))
sys.exit(1 if failed else 0)
PY

mkdir -p benchmarks/results
{ echo "# gpu-check $(date -u +%Y-%m-%d)"; echo; echo "GPU/driver: $gpu"; echo "command: scripts/gpu-check.sh $logs $nativemi ($(elapsed) s)"; echo; echo '```'; cat "$summary"; echo '```'; } \
  > "benchmarks/results/gpu-check-$(date -u +%Y%m%d).md" || true
step "summary ($(date -u +%Y-%m-%dT%H:%MZ), $gpu, $(elapsed) s, command: $0 $logs $nativemi)"
cat "$summary"
exit "$status"
