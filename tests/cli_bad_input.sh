#!/usr/bin/env bash
# Bad input through the CLI: each case must exit 2 with a message naming the file or
# flag at fault, never crash, and never leave a half-written output behind.
#   cli_bad_input.sh path/to/lowbit source-dir
set -u
LB=$1; SRC=$2
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
# expect CODE PATTERN -- command...: exit status CODE and stderr matching PATTERN
expect() {
  local code=$1 pat=$2; shift 3
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [[ $rc -eq $code ]] && grep -qE -- "$pat" "$T/err"; then pass=$((pass+1))
  else fail=$((fail+1)); echo "FAIL: $* -> exit $rc (want $code), stderr: $(head -c 400 "$T/err") (want /$pat/)"; fi
}
# data the tests corrupt: a valid tiny IDX pair made with printf
printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x1c\x00\x00\x00\x1c' > "$T/img.idx"
head -c 1568 /dev/zero >> "$T/img.idx"
printf '\x00\x00\x08\x01\x00\x00\x00\x02\x01\x03' > "$T/lbl.idx"
head -c 100 "$T/img.idx" > "$T/trunc.idx"
printf '\x01\x00\x08\x03' > "$T/magic.idx"; tail -c +5 "$T/img.idx" >> "$T/magic.idx"
echo '{"input": [1, 28, 28], "layers": [' > "$T/malformed.json"
echo '{"input": [1, 28, 28], "layers": [{"name": "c", "op": "Conv2D", "out": 4}]}' > "$T/unknown_op.json"
echo '{"input": [1, 28, 28], "layers": [{"name": "fc", "op": "Gemm", "out": 10}]}' > "$T/noflat.json"
echo '{"input": [1, 28, 28], "layers": [{"name": "c", "op": "Conv", "out": 4, "kernel": 3},
  {"name": "a", "op": "Add", "inputs": ["c", "input"]}, {"name": "f", "op": "Flatten"}, {"name": "fc", "op": "Gemm", "out": 10}]}' > "$T/addshape.json"
echo '{"input": [1, 28, 28], "layers": [{"name": "f", "op": "Flatten", "kernal": 3}, {"name": "fc", "op": "Gemm", "out": 10}]}' > "$T/typo.json"
printf 'garbage that is not a checkpoint' > "$T/bad.safetensors"
OUT="$T/model.safetensors"

expect 2 "unknown command" -- "$LB" frobnicate
expect 2 "unknown option '--epoch'" -- "$LB" train --model fmnist-mlp --epoch 3 --out "$OUT"
expect 2 "--model is required" -- "$LB" train --out "$OUT"
expect 2 "--out is required" -- "$LB" train --model fmnist-mlp
expect 2 "--epochs: 'abc' is not a valid integer" -- "$LB" train --model fmnist-mlp --epochs abc --out "$OUT"
expect 2 "--lr: 'x' is not a valid number" -- "$LB" train --model fmnist-mlp --lr x --out "$OUT"
expect 2 "--opt 'rmsprop' is not one of" -- "$LB" train --model fmnist-mlp --opt rmsprop --out "$OUT"
expect 2 "--quant 'magic:2/2'" -- "$LB" train --model fmnist-mlp --quant magic:2/2 --out "$OUT"
expect 2 "--epochs must be" -- "$LB" train --model fmnist-mlp --epochs 0 --out "$OUT" --data "$T/img.idx,$T/lbl.idx" --no-eval
expect 2 "malformed.json: invalid JSON near line" -- "$LB" info --model "$T/malformed.json"
expect 2 "unknown op 'Conv2D'" -- "$LB" info --model "$T/unknown_op.json"
expect 2 "Gemm needs a flat input.*add a Flatten" -- "$LB" info --model "$T/noflat.json"
expect 2 "Add inputs differ in shape" -- "$LB" info --model "$T/addshape.json"
expect 2 "unknown key 'kernal'" -- "$LB" info --model "$T/typo.json"
expect 2 "neither a spec file nor a zoo model" -- "$LB" info --model no-such-model
expect 2 "/no/such/dir: no such data set" -- "$LB" train --model fmnist-mlp --data /no/such/dir --out "$OUT"
expect 2 "trunc.idx.*payload" -- "$LB" train --model fmnist-mlp --data "$T/trunc.idx,$T/lbl.idx" --out "$OUT" --no-eval
expect 2 "magic.idx: magic" -- "$LB" train --model fmnist-mlp --data "$T/magic.idx,$T/lbl.idx" --out "$OUT" --no-eval
expect 2 "bad.safetensors" -- "$LB" eval --model fmnist-mlp --ckpt "$T/bad.safetensors" --data "$T/img.idx,$T/lbl.idx"
expect 2 "missing.safetensors: cannot open" -- "$LB" eval --model fmnist-mlp --ckpt "$T/missing.safetensors" --data "$T/img.idx,$T/lbl.idx"
expect 2 "directory is not writable or does not exist" -- "$LB" train --model fmnist-mlp --out /no/such/dir/x.safetensors
expect 2 "--resume: .* does not exist" -- "$LB" train --model fmnist-mlp --resume --out "$T/none.safetensors"
# a checkpoint of another model: tensor missing, named
"$LB" train --model fmnist-mlp --data "$T/img.idx,$T/lbl.idx" --epochs 1 --no-eval --quiet --out "$T/mlp.safetensors" \
  || { fail=$((fail+1)); echo "FAIL: tiny training run"; }
expect 2 "tensor 'conv1.weight' is missing" -- "$LB" eval --model fmnist-cnn --ckpt "$T/mlp.safetensors" --data "$T/img.idx,$T/lbl.idx"
expect 2 "no model spec in __metadata__" -- "$LB" eval --ckpt "$SRC/tests/data/py_reference.safetensors" --data "$T/img.idx,$T/lbl.idx"
# a truncated checkpoint
head -c 2000 "$T/mlp.safetensors" > "$T/cut.safetensors"
expect 2 "cut.safetensors" -- "$LB" eval --model fmnist-mlp --ckpt "$T/cut.safetensors" --data "$T/img.idx,$T/lbl.idx"
# quantization strings: each error names the flag and lists what is valid
expect 2 "--quant 'balanced:9/4': balanced takes 1 to 8 weight bits" -- "$LB" train --model fmnist-mlp --quant balanced:9/4 --out "$OUT"
expect 2 "syq takes 1 to 2 weight bits.*1 = binary, 2 = ternary" -- "$LB" train --model fmnist-mlp --quant syq:4/4 --out "$OUT"
expect 2 "give the bit widths" -- "$LB" train --model fmnist-mlp --quant balanced --out "$OUT"
expect 2 "balanced has no option 'percentil' \(options: percentile scale every\)" -- "$LB" train --model fmnist-mlp --quant balanced:2/4,percentil=mean --out "$OUT"
expect 2 "percentile=median: must be one of: exact mean" -- "$LB" train --model fmnist-mlp --quant balanced:2/4,percentile=median --out "$OUT" --data "$T/img.idx,$T/lbl.idx" --no-eval
expect 2 "unknown method 'magic'; use fp32 or METHOD:W/A" -- "$LB" report --model fmnist-cnn --quant magic:2/2
expect 2 "--model or --ckpt is required" -- "$LB" report
expect 2 "--method, --bits, --in and --out are required" -- "$LB" quantize --method balanced
expect 2 "missing.npy" -- "$LB" quantize --method balanced --bits 2 --in "$T/missing.npy" --out "$T/y.npy"
expect 2 "--opt 'x': must be key=value" -- "$LB" quantize --method balanced --bits 2 --opt x --in a.npy --out "$T/y.npy"
printf 'not an npy file at all' > "$T/bad.npy"
expect 2 "bad.npy" -- "$LB" quantize --method balanced --bits 2 --in "$T/bad.npy" --out "$T/y.npy"
echo '{"input": [4], "quant": {"default": "balanced:2/4", "nosuch": "fp32"}, "layers": [{"name": "o", "op": "Gemm", "out": 2}]}' > "$T/qlayer.json"
expect 2 "qlayer.json: 'quant'.nosuch: no layer is named 'nosuch'" -- "$LB" info --model "$T/qlayer.json"
# nothing half-written: failed runs left no output and no temporary file
if ls "$T" | grep -qE '^model\.safetensors|\.tmp\.'; then fail=$((fail+1)); echo "FAIL: a failed run left $(ls "$T" | grep -E 'model|tmp')"; else pass=$((pass+1)); fi
# --help works for every command
for c in train eval info report quantize; do
  if "$LB" $c --help | grep -q "usage: lowbit $c"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $c --help"; fi
done
echo "cli_bad_input: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
