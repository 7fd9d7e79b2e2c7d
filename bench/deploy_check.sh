#!/usr/bin/env bash
# Train equals deploy, and end-to-end runtime speed, on the quantization sweep's
# checkpoints (bench/quant_sweep.sh): each is exported to a packed model, run by the
# runtime on the whole Fashion-MNIST test set, and compared with lowbit's own forward of
# the checkpoint (`lowbit run --check`). One JSON line per model in $OUT/deploy.jsonl;
# bench/deploy_table.py turns it into the table of docs/results.md. The language models of
# bench/lm_quant_sweep.sh go the same way: SWEEP=runs/lm_sweep OUT=runs/lm_deploy (the
# runtime scores perplexity on the KJV test split, --check runs 'lowbit eval').
#   bench/deploy_check.sh [--only REGEX] [--kernels best|ref|float]
# Environment: LOWBIT (default build/lowbit), SWEEP (default runs/sweep), OUT (default runs/deploy).
set -euo pipefail
LOWBIT=${LOWBIT:-build/lowbit}
SWEEP=${SWEEP:-runs/sweep}
OUT=${OUT:-runs/deploy}
ONLY=.
KERNELS=best
while [[ $# -gt 0 ]]; do
  case $1 in
    --only) ONLY=$2; shift 2 ;;
    --kernels) KERNELS=$2; shift 2 ;;
    *) echo "usage: $0 [--only REGEX] [--kernels best|ref|float]" >&2; exit 2 ;;
  esac
done
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
mkdir -p "$OUT"
shopt -s nullglob
cks=("$SWEEP"/*-s0-e3.safetensors)
[[ ${#cks[@]} -gt 0 ]] || { echo "deploy_check: no checkpoints in $SWEEP (run bench/quant_sweep.sh first)" >&2; exit 1; }
: > "$OUT/deploy.jsonl"
for ck in "${cks[@]}"; do
  tag=$(basename "$ck" .safetensors)
  [[ $tag =~ $ONLY ]] || continue
  echo "deploy_check: $tag" >&2
  exp=$("$LOWBIT" export --ckpt "$ck" --out "$OUT/$tag.lbm" --json)
  run=$("$LOWBIT" run "$OUT/$tag.lbm" --check "$ck" --kernels "$KERNELS" --threads 2 --json)
  quant=$("$LOWBIT" report --ckpt "$ck" --json | sed -n 's/^{"model": "[^"]*", "quant": "\([^"]*\)".*/\1/p')
  echo "{\"tag\": \"$tag\", \"quant\": \"$quant\", \"export\": $exp, \"run\": $run}" >> "$OUT/deploy.jsonl"
done
echo "deploy_check: wrote $OUT/deploy.jsonl" >&2
