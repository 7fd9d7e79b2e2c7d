#!/usr/bin/env bash
# Quantization-aware training end to end through the CLI, on Fashion-MNIST subsets:
#  1. fine-tuning a float fmnist-mlp with SYQ (learned scales) and UNIQ (stages, BN
#     re-estimation) trains, and eval of the checkpoint (which carries its quantization)
#     agrees with train's own evaluation;
#  2. resuming a quantized run mid-way ends byte-identical to the uninterrupted run (the
#     learned scales, optimizer state and schedules survive the checkpoint);
#  3. report reads the checkpoint's quantization; quantize writes values and codes.
set -u
LB=$1
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*"; }
common=(--model fmnist-mlp --threads 2 --batch 64 --limit-train 4096 --limit-test 1000 --quiet)
"$LB" train "${common[@]}" --epochs 1 --out "$T/f.safetensors" || bad "float train"
for q in syq:2/4 uniq:2/4 qn:2/2; do
  tag=${q%%:*}
  "$LB" train "${common[@]}" --quant $q --init "$T/f.safetensors" --epochs 2 --out "$T/$tag.safetensors" --json > "$T/$tag.json" || bad "train $q"
  acc=$(sed -n 's/.*"accuracy": \([0-9.]*\).*/\1/p' "$T/$tag.json")
  if [[ -n "$acc" ]] && awk -v a="$acc" 'BEGIN{exit !(a >= 0.6)}'; then ok; else bad "$q accuracy '$acc' < 0.6"; fi
  ev=$("$LB" eval --ckpt "$T/$tag.safetensors" --limit 1000 --json 2>/dev/null)
  [[ "$ev" == *"\"accuracy\": $acc"* && "$ev" == *"\"quant\": \"$q\""* ]] && ok || bad "eval '$ev' disagrees with train ($acc, $q)"
  # resume from a mid-run stop: byte-identical
  "$LB" train "${common[@]}" --quant $q --init "$T/f.safetensors" --epochs 2 --max-steps 70 --no-eval --out "$T/r$tag.safetensors" || bad "train r $q"
  # (without --quant: a resumed run continues the checkpoint's own quantization)
  "$LB" train "${common[@]}" --epochs 2 --resume --no-eval --out "$T/r$tag.safetensors" || bad "resume $q"
  "$LB" train "${common[@]}" --quant $q --init "$T/f.safetensors" --epochs 2 --no-eval --out "$T/u$tag.safetensors" || bad "train u $q"
  cmp -s "$T/u$tag.safetensors" "$T/r$tag.safetensors" && ok || bad "$q: resumed run differs from the uninterrupted one"
done
# QN's three phases: its activations are calibrated again where phase 1 starts (step 64,
# an epoch boundary, where a checkpoint is written); a run resumed there does the same
"$LB" train "${common[@]}" --quant qn:2/2 --init "$T/f.safetensors" --epochs 3 --max-steps 64 --no-eval --out "$T/rqn3.safetensors" || bad "train rqn3"
"$LB" train "${common[@]}" --epochs 3 --resume --no-eval --out "$T/rqn3.safetensors" || bad "resume qn3"
"$LB" train "${common[@]}" --quant qn:2/2 --init "$T/f.safetensors" --epochs 3 --no-eval --out "$T/uqn3.safetensors" || bad "train uqn3"
cmp -s "$T/uqn3.safetensors" "$T/rqn3.safetensors" && ok || bad "qn, 3 phases: resumed run differs from the uninterrupted one"
"$LB" train "${common[@]}" --quant uniform:2/4 --epochs 2 --resume --out "$T/rsyq.safetensors" 2> "$T/err" && bad "resume with another --quant" \
  || { grep -q "was trained with --quant syq:2/4" "$T/err" && ok || bad "resume with another --quant: $(cat "$T/err")"; }
python3 - "$T/syq.safetensors" <<'PY' && ok || bad "syq checkpoint lacks fc2.wq.alpha / opt state"
import json, struct, sys
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
assert 'fc2.wq.alpha' in h and 'opt.fc2.wq.alpha.m1' in h and 'fc1.wq.alpha' not in h, sorted(h)
assert h['__metadata__']['quant'] == 'syq:2/4'
PY
rep=$("$LB" report --ckpt "$T/syq.safetensors" --json)
[[ "$rep" == *'"quant": "syq:2/4"'* && "$rep" == *'"name": "fc2", "op": "Gemm", "method": "syq", "wbits": 2, "abits": 4'* ]] && ok || bad "report: $rep"
python3 -c "
import struct
n = 12; hdr = \"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }\"
hdr += ' ' * (63 - (10 + len(hdr)) % 64) + '\n'
vals = [(-1) ** i * (i + 1) / 10 for i in range(n)]
open('$T/x.npy', 'wb').write(b'\x93NUMPY\x01\x00' + struct.pack('<H', len(hdr)) + hdr.encode() + struct.pack('<%df' % n, *vals))
"
"$LB" quantize --method balanced --bits 2 --in "$T/x.npy" --out "$T/y.npy" --codes "$T/c.npy" 2>/dev/null && ok || bad "quantize"
python3 - "$T/y.npy" "$T/c.npy" <<'PY' && ok || bad "quantize output"
import struct, sys
def load(p, fmt):
    b = open(p, 'rb').read(); hl = struct.unpack('<H', b[8:10])[0]
    return list(struct.unpack('<12' + fmt, b[10 + hl:]))
y, c = load(sys.argv[1], 'f'), load(sys.argv[2], 'i')
assert sorted(set(c)) == [0, 1, 2, 3] and all(c.count(j) == 3 for j in range(4)), c  # 12 values, 4 equal bins
assert len(set(y)) == 4 and all((y[i] < y[k]) == (c[i] < c[k]) for i in range(12) for k in range(12)), y
PY
echo "cli_quant: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
