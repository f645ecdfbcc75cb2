#!/usr/bin/env bash
# Runs the Fashion-MNIST training benchmark side by side: Hadron's Go engine
# (bench/train) and PyTorch (bench/train/torch_ref.py, Debian python3-torch),
# 1 and 3 epochs each, same recipe, batch 64, 2 threads, then writes the table
# and the throughput ratio into the bench-train section of docs/benchmarks.md.
# Usage: bash bench/train/run.sh   (from the repository root; takes ~10 minutes)
# Needs: Go, /usr/share/datasets/fashion-mnist (dataset-fashion-mnist) and
# python3-torch (bash internal/tools/prereqs.sh torch).
set -euo pipefail
cd "$(dirname "$0")/../.."

data=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
threads=${BENCH_THREADS:-2}
epochs_list=${BENCH_EPOCHS:-"1 3"}
py=/usr/bin/python3
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

[ -f "$data/train-images-idx3-ubyte.gz" ] || { echo "no Fashion-MNIST in $data: apt-get install dataset-fashion-mnist" >&2; exit 1; }
"$py" -c 'import torch' 2>/dev/null || { echo "python3-torch missing: bash internal/tools/prereqs.sh torch" >&2; exit 1; }

go build -o "$out/train-bench" ./bench/train
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for e in $epochs_list; do
  echo "==> hadron-go, $e epoch(s)" >&2
  "$out/train-bench" -data "$data" -epochs "$e" -threads "$threads" >> "$out/results.jsonl"
  echo "==> pytorch (as installed), $e epoch(s)" >&2
  "$py" bench/train/torch_ref.py --data "$data" --epochs "$e" --threads "$threads" --label "pytorch" >> "$out/results.jsonl"
  echo "==> pytorch (OPENBLAS_NUM_THREADS=1), $e epoch(s)" >&2
  OPENBLAS_NUM_THREADS=1 "$py" bench/train/torch_ref.py --data "$data" --epochs "$e" --threads "$threads" --label "pytorch, OPENBLAS_NUM_THREADS=1" >> "$out/results.jsonl"
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
torchv=$("$py" -c 'import torch; print(torch.__version__)')
section=$("$py" - "$out/results.jsonl" "$(nproc)" "$cpu" "$(date -u +%Y-%m-%d)" "$(go env GOVERSION)" "$torchv" "$load_before" "$load_after" <<'PY'
import json, sys
path, nproc, cpu, date, gov, torchv, load_before, load_after = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
out = []
out.append("## Training: Fashion-MNIST CNN (bench-train)\n")
out.append(f"Machine: {nproc} vCPUs, {cpu}; {date}; {gov}, PyTorch {torchv} (Debian python3-torch). "
           f"Load average (1, 5, 15 min) {load_before} before and {load_after} after the runs: the machine is shared, "
           "and numbers taken under load understate both sides (PyTorch's OpenMP threads suffer most).")
out.append("Recipe: 28x28x1 -> Conv2D(32,3x3,relu) -> MaxPool(2) -> Conv2D(64,3x3,relu) -> MaxPool(2) -> "
           "Conv2D(128,3x3,relu) -> MaxPool(2) -> Flatten -> Dense(512,relu) -> Dense(10); valid padding, Adam lr 0.001, "
           "batch 64, 2 threads, fixed seed, 60,000 training and 10,000 test images. "
           "Samples/s counts training steps only (no evaluation); peak RSS is the process high-water mark.\n")
out.append("| implementation | epochs | train samples/s | epoch wall time (s) | peak RSS (MiB) | test accuracy |")
out.append("|---|---|---|---|---|---|")
for r in rows:
    ep = ", ".join(f"{s:.1f}" for s in r["epoch_seconds"])
    out.append(f"| {r['impl']} | {r['epochs']} | {r['samples_per_sec']:.0f} | {ep} | {r['peak_rss_mib']:.0f} | {r['test_accuracy']:.4f} |")
out.append("")
for e in sorted({r["epochs"] for r in rows}):
    go = [r for r in rows if r["epochs"] == e and r["impl"] == "hadron-go"]
    for r in rows:
        if r["epochs"] == e and r["impl"] != "hadron-go" and go:
            out.append(f"- {e} epoch(s): Hadron / {r['impl']} throughput ratio = "
                       f"**{go[0]['samples_per_sec'] / r['samples_per_sec']:.2f}x**; "
                       f"test accuracy {go[0]['test_accuracy']:.4f} vs {r['test_accuracy']:.4f}.")
kern = {r["kernel"] for r in rows if r["impl"] == "hadron-go"}
out.append(f"\nHadron kernel: {', '.join(sorted(kern))}. Reproduce with `bash bench/train/run.sh`.")
print("\n".join(out))
PY
)

doc=docs/benchmarks.md
begin='<!-- BEGIN bench-train -->'
end='<!-- END bench-train -->'
printf '%s\n' "$section" > "$out/section.md"
mkdir -p docs
[ -f "$doc" ] || printf '# Benchmarks\n' > "$doc"
grep -qF "$begin" "$doc" || printf '\n%s\n%s\n' "$begin" "$end" >> "$doc"
awk -v b="$begin" -v e="$end" -v f="$out/section.md" '
  $0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
  $0 == e { skip = 0 }
  !skip { print }' "$doc" > "$out/doc.md"
cp "$out/doc.md" "$doc"
cat "$out/section.md"
echo "==> wrote the bench-train section of $doc" >&2
