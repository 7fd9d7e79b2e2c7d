#!/usr/bin/env bash
# The quantization comparison of docs/results.md: every method fine-tuned from the same
# float fmnist-cnn checkpoint with the same schedule (epochs, batch, cosine; optimizer and
# learning rate from each method's recipe), then accuracy, BOPs and size per run.
#   bench/quant_sweep.sh [--epochs N] [--only REGEX]
# Environment: LOWBIT (default build/lowbit), FLOAT (default runs/cnn10.safetensors;
# trained with the DESIGN.md recipe when missing), OUT (default runs/sweep).
# Appends to $OUT/results.csv and skips configurations already there, so an interrupted
# sweep continues where it stopped. Then run bench/quant_report.py to write the table
# and the plots.
set -euo pipefail
LOWBIT=${LOWBIT:-build/lowbit}
FLOAT=${FLOAT:-runs/cnn10.safetensors}
OUT=${OUT:-runs/sweep}
EPOCHS=3
ONLY=.
while [[ $# -gt 0 ]]; do
  case $1 in
    --epochs) EPOCHS=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    *) echo "usage: $0 [--epochs N] [--only REGEX]" >&2; exit 2 ;;
  esac
done
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}
# passive waiting: a busy neighbour process costs a little instead of 10x (spinning threads)
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
mkdir -p "$OUT"
if [[ ! -f $FLOAT ]]; then
  echo "quant_sweep: training the float model $FLOAT (10 epochs)" >&2
  "$LOWBIT" train --model fmnist-cnn --threads 2 --seed 0 --out "$FLOAT" --quiet
fi
CSV=$OUT/results.csv
[[ -f $CSV ]] || echo "quant,seed,epochs,accuracy,loss,bops,bytes,float_bytes,macs,seconds" > "$CSV"

# configuration, seeds
CONFIGS=(
  "fp32 0"  # fine-tuned like the others (lr 0.005): the reference of the table's delta column
  "uniform:4/4 0" "balanced:4/4 0" "uniq:4/4 0 1 2" "qn:4/4 0 1 2" "pot:4/4 0"  # the two closest to the bar: 3 seeds
  "uniq:4/8 0"
  "balanced:2/2 0 1 2" "uniform:2/2 0 1 2" "balanced:2/4 0 1 2" "uniform:2/4 0 1 2"
  "uniq:2/2 0 1 2"
  "uniq:2/2,final=ste 0 1 2"  # UNIQ W2/A2: its final stage trained straight-through (docs/methods.md)
  # QN W2: ternary weights need a high T, 2-bit activations the released code's gradient (docs/methods.md)
  "qn:2/2,tmul=50,atmul=20,agrad=code 0 1 2"
  "syq:2/4 0" "syq:1/4 0"
  "balanced:2/4,percentile=mean 0" "uniform:2/4,mode=maxabs 0" "pot:3/4 0" "uniform:3/4 0"
  # ablations: UNIQ's final stage and training rule (METHODS.md's "must show"), QN's gradients
  "uniq:2/2,train=ste 0" "uniq:2/2,stages=1 0" "uniq:2/2,final=none 0 1 2" "uniq:4/4,final=none 0 1 2"
  "qn:2/2,tmul=50,atmul=20 0 1 2"
)
for line in "${CONFIGS[@]}"; do
  read -r q seeds <<<"$line"
  [[ $q =~ $ONLY ]] || continue
  for s in $seeds; do
    if grep -q "^\"$q\",$s,$EPOCHS," "$CSV"; then continue; fi
    tag=$(echo "$q-s$s-e$EPOCHS" | tr ':/,=' '_-__')
    ck=$OUT/$tag.safetensors
    rm -f "$OUT/$tag.jsonl"
    t0=$(date +%s.%N)
    echo "quant_sweep: $q seed $s, $EPOCHS epochs" >&2
    extra=()
    [[ $q == fp32 ]] && extra=(--lr 0.005) # the recipe the quantized runs share
    res=$("$LOWBIT" train --model fmnist-cnn --quant "$q" --init "$FLOAT" --epochs "$EPOCHS" --seed "$s" --threads 2 "${extra[@]}" \
          --out "$ck" --metrics "$OUT/$tag.jsonl" --json --quiet)
    t1=$(date +%s.%N)
    rep=$("$LOWBIT" report --ckpt "$ck" --json)
    python3 - "$q" "$s" "$EPOCHS" "$res" "$rep" "$t0" "$t1" >> "$CSV" <<'PY'
import json, sys
q, s, e, res, rep, t0, t1 = sys.argv[1:]
r, p = json.loads(res), json.loads(rep)["total"]
print(f'"{q}",{s},{e},{r["accuracy"]},{r["loss"]},{p["bops"]},{p["bytes"]},{p["float_bytes"]},{p["macs"]},{float(t1)-float(t0):.1f}')
PY
    tail -1 "$CSV" >&2
  done
done
echo "quant_sweep: results in $CSV" >&2
