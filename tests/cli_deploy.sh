#!/usr/bin/env bash
# Deployment end to end through the CLI, on a Fashion-MNIST subset:
#  1. a quantized fmnist-mlp, fmnist-cnn and fmnist-resnet exported to .lbm run in the
#     runtime with the same predictions as lowbit's own forward (`lowbit run --check`);
#  2. the --c-source file compiles with -Wall -Wextra -Werror and gives, bit for bit, the
#     runtime's logits;
#  3. bad input: a truncated or corrupted .lbm, a missing file, bad flags get a message and
#     a non-zero status, and a failed export leaves no file behind.
set -u
LB=$1
SRC=$2
SAN=${3:-}   # the build's sanitizer flags: the driver below links its instrumented runtime
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*"; }
common=(--threads 2 --batch 64 --limit-train 2048 --limit-test 500 --quiet)
"$LB" train --model fmnist-mlp "${common[@]}" --epochs 1 --out "$T/f.safetensors" || bad "float train"
"$LB" train --model fmnist-mlp "${common[@]}" --quant uniform:4/4 --init "$T/f.safetensors" --epochs 1 --out "$T/u.safetensors" || bad "train uniform"
"$LB" train --model fmnist-cnn "${common[@]}" --quant syq:2/2,group=layer --epochs 1 --max-steps 8 --out "$T/s.safetensors" || bad "train syq cnn"
# a residual network: Add (with its Relu and quantizer), GlobalAveragePool, a 1x1 projection
"$LB" train --model fmnist-resnet "${common[@]}" --quant uniform:4/4 --epochs 1 --max-steps 8 --out "$T/r.safetensors" || bad "train resnet"
for m in u s r; do
  "$LB" export --ckpt "$T/$m.safetensors" --out "$T/$m.lbm" > "$T/$m.export" || bad "export $m: $(cat "$T/$m.export")"
  grep -q "bytes = weights" "$T/$m.export" && ok || bad "export $m prints no size line"
  r=$("$LB" run "$T/$m.lbm" --limit 500 --latency-samples 20 --check "$T/$m.safetensors" --threads 2 --json 2>"$T/err") || bad "run $m: $(cat "$T/err")"
  agree=$(sed -n 's/.*"agree": \([0-9.]*\).*/\1/p' <<<"$r")
  [[ -n $agree ]] && awk -v a="$agree" 'BEGIN{exit !(a >= 0.998)}' && ok || bad "run $m: agreement '$agree' < 0.998 ($r)"
done
grep -q "bitserial" "$T/s.export" && ok || bad "syq ternary per layer does not run on bitserial: $(cat "$T/s.export")"
grep -q "s8u8" "$T/u.export" && ok || bad "uniform 4-bit does not run on s8u8: $(cat "$T/u.export")"
# the C source: compiles cleanly and gives the runtime's logits
"$LB" export --ckpt "$T/s.safetensors" --out "$T/s2.lbm" --c-source "$T/model.c" --c-name fmnist > /dev/null || bad "export --c-source"
cmp -s "$T/s.lbm" "$T/s2.lbm" && ok || bad "two exports of one checkpoint differ"
cat > "$T/driver.c" <<'C'
#include "lbr.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int fmnist_run(const float *x, float *out);
int main(int argc, char **argv) {
    static _Alignas(64) unsigned char buf[1 << 22];
    FILE *f = argc > 1 ? fopen(argv[1], "rb") : NULL;
    if (!f) return 2;
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    size_t need;
    char err[256];
    if (lbr_plan(buf, len, 1, NULL, &need, err, sizeof err)) return 2;
    void *arena = aligned_alloc(64, (need + 63) / 64 * 64);
    lbr_model *m;
    if (lbr_load(&m, buf, len, 1, arena, need, NULL, err, sizeof err)) return 3;
    float x[784], a[10], b[10];
    for (int s = 0; s < 20; s++) {
        for (int i = 0; i < 784; i++) x[i] = (float)((i * 7 + s * 13) % 29) / 7.0f - 1.5f;
        if (lbr_run(m, x, 1, a) || fmnist_run(x, b) || memcmp(a, b, sizeof a)) return 4;
    }
    free(arena);
    return 0;
}
C
CC=${CC:-cc}
RT=$(dirname "$LB")/liblowbit_runtime.a
# shellcheck disable=SC2086
if $CC -std=c11 -Wall -Wextra -Werror -O1 $SAN -I "$SRC/runtime" "$T/driver.c" "$T/model.c" "$RT" -lm -o "$T/driver" 2> "$T/cc.err"; then
  ok
  "$T/driver" "$T/s.lbm" && ok || bad "generated C source disagrees with the runtime (status $?)"
else
  bad "generated C source does not compile: $(head -5 "$T/cc.err")"
fi
# bad input
head -c 1000 "$T/u.lbm" > "$T/trunc.lbm"
"$LB" run "$T/trunc.lbm" --limit 10 2> "$T/err" && bad "truncated file accepted" || { grep -q "trunc.lbm: header" "$T/err" && ok || bad "truncated: $(cat "$T/err")"; }
cp "$T/u.lbm" "$T/flip.lbm"; printf '\x55' | dd of="$T/flip.lbm" bs=1 seek=3000 conv=notrunc 2>/dev/null
"$LB" run "$T/flip.lbm" --limit 10 2> "$T/err" && bad "corrupted file accepted" || { grep -q "CRC" "$T/err" && ok || bad "corrupted: $(cat "$T/err")"; }
"$LB" run "$T/none.lbm" 2> "$T/err" && bad "missing file accepted" || { grep -q "none.lbm: cannot open" "$T/err" && ok || bad "missing: $(cat "$T/err")"; }
"$LB" run "$T/u.lbm" --kernels fast 2> "$T/err"; [[ $? == 2 ]] && grep -q "best, ref or float" "$T/err" && ok || bad "--kernels fast: $(cat "$T/err")"
"$LB" run 2> "$T/err"; [[ $? == 2 ]] && ok || bad "run without a model"
"$LB" export --ckpt "$T/u.safetensors" --out "$T/u3.lbm" --c-name "9x" 2> "$T/err"; [[ $? == 2 ]] && [[ ! -e $T/u3.lbm ]] && ok || bad "--c-name 9x"
"$LB" export --ckpt "$T/none.safetensors" --out "$T/u4.lbm" 2> "$T/err" && bad "export of a missing checkpoint" || { [[ ! -e $T/u4.lbm ]] && ok || bad "failed export left a file"; }
"$LB" export --ckpt "$T/u.safetensors" --out "$T/nodir/u.lbm" 2> "$T/err" && bad "export into a missing directory" || ok
echo "cli_deploy: $pass passed, $fail failed"
[[ $fail == 0 ]]
