#!/usr/bin/env bash
# lm_compare.sh - a KJV language model trained by lowbit and by PyTorch (bench/torch_lm.py)
# with the same recipe, one after the other (never together: 2 cores), on T threads.
#
#   bench/lm_compare.sh [--model kjv-word-lstm] [--steps N | --full [--epochs E]] [--threads 2]
#   env: LOWBIT (default build/lowbit), PYTHON (default /usr/bin/python3), OUT (runs/lm)
#
# --steps N (default 120): training speed only; tokens/s over steps 21..N for lowbit
#   (its progress windows of 20 steps, the first dropped as warm-up) and 11..N for PyTorch.
# --full: the spec's whole recipe (epochs included) on both sides, then test perplexity;
#   each side's JSON goes to $OUT/<model>-{lowbit,torch}.json; --epochs overrides the
#   recipe's epochs on both sides.
# Settings: OPENBLAS_CORETYPE=SkylakeX for both; PyTorch tuned as in bench/train_speed.sh
# (tcmalloc preloaded, OMP_WAIT_POLICY=PASSIVE, torch.set_num_threads(T)); lowbit gets
# OMP_WAIT_POLICY=PASSIVE too (a fair default on a shared machine).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOWBIT="${LOWBIT:-build/lowbit}"
PYTHON="${PYTHON:-/usr/bin/python3}"
OUT="${OUT:-runs/lm}"
MODEL=kjv-word-lstm STEPS=120 FULL=0 THREADS=2 EPOCHS=()
TCMALLOC=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
while [[ $# -gt 0 ]]; do
  case $1 in
    --model) MODEL=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --full) FULL=1; shift ;;
    --threads) THREADS=$2; shift 2 ;;
    --epochs) EPOCHS=(--epochs "$2"); shift 2 ;;
    *) echo "usage: $0 [--model M] [--steps N | --full [--epochs E]] [--threads T]" >&2; exit 2 ;;
  esac
done
cd "$ROOT"
[[ "$STEPS" =~ ^[0-9]+$ && $STEPS -ge 60 ]] || { echo "lm_compare: --steps needs an integer >= 60" >&2; exit 2; }
[[ -f data/kjv.txt || -n "${LOWBIT_DATA:-}" ]] || { echo "lm_compare: data/kjv.txt missing; run scripts/install-deps.sh" >&2; exit 2; }
export OPENBLAS_CORETYPE=SkylakeX OMP_WAIT_POLICY=PASSIVE
mkdir -p "$OUT"
pre=()
[[ -f $TCMALLOC ]] && pre=(env LD_PRELOAD=$TCMALLOC)
echo "lm_compare: $MODEL, $THREADS threads, $( ((FULL)) && echo 'full recipe' || echo "$STEPS steps"); load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
if ((FULL)); then
  : > "$OUT/$MODEL-lowbit.jsonl"
  /usr/bin/time -f "%e s, %M KB" "$LOWBIT" train --model "$MODEL" "${EPOCHS[@]}" --threads "$THREADS" --seed 0 --out "$OUT/$MODEL-lowbit.safetensors" \
      --metrics "$OUT/$MODEL-lowbit.jsonl" --json --quiet > "$OUT/$MODEL-lowbit.json"
  "${pre[@]}" "$PYTHON" bench/torch_lm.py --model "$MODEL" "${EPOCHS[@]}" --threads "$THREADS" --json > "$OUT/$MODEL-torch.json"
  cat "$OUT/$MODEL-lowbit.json" "$OUT/$MODEL-torch.json"
else
  m=$(mktemp); trap 'rm -f "$m"' EXIT
  "$LOWBIT" train --model "$MODEL" --threads "$THREADS" --seed 0 --max-steps "$STEPS" --no-eval --quiet \
      --out "$OUT/$MODEL-speed.safetensors" --metrics "$m"
  lb=$("$PYTHON" - "$m" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_s"' in l][1:]
# each window is 20 steps of equal tokens: the harmonic mean is total tokens / total time
print(len(rows) / sum(1.0 / r["tokens_per_s"] for r in rows))
PY
)
  th=$("${pre[@]}" "$PYTHON" bench/torch_lm.py --model "$MODEL" --threads "$THREADS" --max-steps "$STEPS" --json |
       "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_s"])')
  "$PYTHON" - "$MODEL" "$THREADS" "$lb" "$th" <<'PY'
import sys
m, t, lb, th = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
print(f"| {m} | {t} | {lb:,.0f} | {th:,.0f} | {lb / th:.2f}x |")
PY
fi
echo "lm_compare: load after $(cut -d' ' -f1-3 /proc/loadavg)" >&2
