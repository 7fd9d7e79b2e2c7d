#!/usr/bin/env bash
# End to end through the CLI on Fashion-MNIST subsets:
#  1. fmnist-mlp, 320 steps (batch 64 on 10,240 images, 2 epochs): test accuracy on 2,000
#     images must be >= 0.75. Chance is 0.10; a linear classifier reaches about 0.84 on
#     Fashion-MNIST and this MLP reaches about 0.85 here, so 0.75 fails any real breakage
#     (wrong gradients, shuffling that pairs images with wrong labels) without flakiness.
#  2. determinism: the same seed and thread count give byte-identical checkpoints; another
#     seed gives a different one.
#  3. resume: stopping after an epoch boundary or mid-epoch and resuming ends
#     byte-identical to an uninterrupted run.
#  4. Ctrl-C stops with exit 130 and a checkpoint that resumes byte-identically.
#  5. the residual net and crop augmentation run end to end and eval reads the result.
set -u
LB=$1
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*"; }
common=(--model fmnist-mlp --threads 2 --batch 64 --limit-train 10240 --limit-test 2000 --quiet)

"$LB" train "${common[@]}" --epochs 2 --seed 1 --out "$T/a.safetensors" --metrics "$T/a.jsonl" --json > "$T/a.json" || bad "train a"
acc=$(sed -n 's/.*"accuracy": \([0-9.]*\).*/\1/p' "$T/a.json")
if [[ -n "$acc" ]] && awk -v a="$acc" 'BEGIN{exit !(a >= 0.75)}'; then ok; else bad "mlp accuracy '$acc' < 0.75"; fi
lines=$(grep -c '"epoch"' "$T/a.jsonl"); [[ $lines -ge 30 ]] && ok || bad "metrics has $lines lines"
ev=$("$LB" eval --model fmnist-mlp --ckpt "$T/a.safetensors" --limit 2000 --json 2>/dev/null)
[[ "$ev" == *"\"accuracy\": $acc"* ]] && ok || bad "eval '$ev' disagrees with train's accuracy $acc"
# without --model the checkpoint's own spec is used
ev2=$("$LB" eval --ckpt "$T/a.safetensors" --limit 2000 --json 2>/dev/null)
[[ "$ev2" == "$ev" ]] && ok || bad "eval from the checkpoint's spec gave '$ev2', not '$ev'"

"$LB" train "${common[@]}" --epochs 2 --seed 1 --no-eval --out "$T/b.safetensors" || bad "train b"
cmp -s "$T/a.safetensors" "$T/b.safetensors" && ok || bad "same seed gave different checkpoints"
"$LB" train "${common[@]}" --epochs 2 --seed 2 --no-eval --out "$T/c.safetensors" || bad "train c"
cmp -s "$T/a.safetensors" "$T/c.safetensors" && bad "different seeds gave identical checkpoints" || ok

for stop in 160 77; do   # 160 = the epoch boundary, 77 = mid-epoch
  "$LB" train "${common[@]}" --epochs 2 --seed 1 --no-eval --max-steps $stop --out "$T/r$stop.safetensors" || bad "train r$stop"
  "$LB" train "${common[@]}" --epochs 2 --seed 1 --no-eval --resume --out "$T/r$stop.safetensors" || bad "resume r$stop"
  cmp -s "$T/a.safetensors" "$T/r$stop.safetensors" && ok || bad "resume after $stop steps differs from the uninterrupted run"
done

# Ctrl-C: exit 130 with a checkpoint at the step reached; resuming ends byte-identical
# to an uninterrupted run. 8 epochs (1,280 steps) so the signal lands mid-run.
long=("${common[@]}" --epochs 8 --seed 3 --no-eval)
"$LB" train "${long[@]}" --out "$T/int.safetensors" --metrics "$T/int.jsonl" &
pid=$!
for _ in $(seq 600); do [[ -s "$T/int.jsonl" ]] && break; sleep 0.05; done
kill -INT $pid; wait $pid; rc=$?
[[ $rc -eq 130 && -s "$T/int.safetensors" ]] && ok || bad "interrupted run: exit $rc (want 130), checkpoint $(ls "$T"/int.safetensors 2>&1)"
"$LB" train "${long[@]}" --resume --out "$T/int.safetensors" || bad "resume after Ctrl-C"
"$LB" train "${long[@]}" --out "$T/full.safetensors" || bad "uninterrupted 8-epoch run"
cmp -s "$T/full.safetensors" "$T/int.safetensors" && ok || bad "resume after Ctrl-C differs from the uninterrupted run"

"$LB" train --model fmnist-resnet --threads 2 --batch 32 --limit-train 256 --limit-test 64 --epochs 1 --augment crop \
  --quiet --out "$T/res.safetensors" --json > "$T/res.json" || bad "resnet train"
grep -q '"accuracy"' "$T/res.json" && ok || bad "resnet gave no result"
"$LB" eval --model fmnist-resnet --ckpt "$T/res.safetensors" --limit 64 --json > /dev/null 2>&1 && ok || bad "resnet eval"
echo "cli_train: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
