#!/usr/bin/env bash
# End-to-end fmnist-cnn inference speed, all measured in this one run on an idle machine:
# packed models in lowbit's runtime (one thread; batch 1 latency and batch 64 throughput),
# the float model in lowbit's training engine (lowbit eval, one thread), and PyTorch's int8
# (torch.ao, oneDNN) on 1 and 2 threads (bench/torch_int8.py). Packed models come from
# bench/deploy_check.sh ($DEPLOY/*.lbm). One JSON line per measurement in $OUT;
# bench/deploy_table.py --speed makes the table of docs/results.md.
#   bench/deploy_speed.sh [--samples N]
# Environment: LOWBIT (default build/lowbit), DEPLOY (runs/deploy), SWEEP (runs/sweep),
# FLOAT (runs/cnn10.safetensors), OUT (runs/deploy/speed.jsonl).
set -euo pipefail
LOWBIT=${LOWBIT:-build/lowbit}
DEPLOY=${DEPLOY:-runs/deploy}
SWEEP=${SWEEP:-runs/sweep}
FLOAT=${FLOAT:-runs/cnn10.safetensors}
OUT=${OUT:-runs/deploy/speed.jsonl}
N=2000
while [[ $# -gt 0 ]]; do
  case $1 in
    --samples) N=$2; shift 2 ;;
    *) echo "usage: $0 [--samples N]" >&2; exit 2 ;;
  esac
done
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
: > "$OUT"
# the W1, W2 and W4 models of the issue, and the float model through the runtime
MODELS=(fp32 syq_1_1_group_layer uniform_2_2 syq_2_2_group_layer qn_2_2_tmul_50_atmul_20 balanced_2_2 uniq_2_2
        uniform_4_4 pot_4_4 uniq_4_4)
for m in "${MODELS[@]}"; do
  f=$DEPLOY/$m-s0-e3.lbm
  if [[ ! -f $f ]]; then
    [[ -f $SWEEP/$m-s0-e3.safetensors ]] || { echo "deploy_speed: skipping $m (no $f, no checkpoint)" >&2; continue; }
    "$LOWBIT" export --ckpt "$SWEEP/$m-s0-e3.safetensors" --out "$f" > /dev/null
  fi
  quant=$("$LOWBIT" report --ckpt "$SWEEP/$m-s0-e3.safetensors" --json | sed -n 's/^{"model": "[^"]*", "quant": "\([^"]*\)".*/\1/p')
  echo "deploy_speed: runtime, $m" >&2
  r=$("$LOWBIT" run "$f" --limit "$N" --latency-samples "$N" --batch 64 --json 2>/dev/null)
  echo "{\"engine\": \"lowbit runtime\", \"model\": \"$quant\", \"threads\": 1, \"run\": $r}" >> "$OUT"
done
echo "deploy_speed: lowbit eval, float, batch 1" >&2
e=$("$LOWBIT" eval --ckpt "$FLOAT" --batch 1 --limit "$N" --threads 1 2>&1 >/dev/null | sed -n 's/.* \([0-9.]*\) img\/s$/\1/p')
echo "{\"engine\": \"lowbit eval\", \"model\": \"fp32\", \"threads\": 1, \"img_s_b1\": $e}" >> "$OUT"
echo "deploy_speed: PyTorch int8" >&2
t=$(/usr/bin/python3 bench/torch_int8.py --ckpt "$FLOAT" --threads 1 2 --samples "$N" --json)
echo "{\"engine\": \"torch int8\", \"model\": \"int8\", \"torch\": $t}" >> "$OUT"
echo "deploy_speed: wrote $OUT" >&2
