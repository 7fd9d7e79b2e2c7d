#!/usr/bin/env bash
# Language models end to end through the CLI, on a generated corpus (300 five-word
# sentences over 14 words, so a small LSTM learns it in seconds):
#  1. training lowers the test perplexity far below the 16 tokens a uniform guess spreads
#     over (the grammar leaves about 4.5 choices per word, and the model reaches about 4.4);
#  2. eval reproduces train's figure; --split valid works; report counts per time step;
#  3. the same seed gives byte-identical checkpoints; a run stopped at an epoch boundary
#     and resumed ends byte-identical;
#  4. sample is deterministic for a seed and writes words of the vocabulary;
#  5. the GRU and a quantized LSTM (balanced:2/2, Bit-RNN's form: embedding ReLU and
#     hidden state quantized) train;
#  6. export and run: the packed LSTM (float, and quantized with its hidden state) and GRU
#     give 'lowbit eval's perplexity through the runtime (--check), the quantized one with
#     its embedding stored as 2-bit activation codes; the vocabulary is
#     written beside the model; the --c-source step function gives the runtime's logits bit
#     for bit;
#  7. bad input: a binary file, an empty file, a corpus with more words than the model
#     embeds, another corpus at eval or run time, a missing vocabulary, a bad sample flag;
#     each exits non-zero with a message naming the problem.
set -u
LB=$1
SRC=${2:-.}
SAN=${3:-}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*"; }
# deterministic corpus (awk's rand with a fixed seed is the same on every run of one awk)
awk 'BEGIN{srand(7); split("the a one every",d," "); split("cat dog man king lamb",n," ");
  split("saw loved fed followed blessed",v," ");
  for(i=0;i<300;i++) printf "%s %s %s %s %s.\n", d[int(rand()*4)+1], n[int(rand()*5)+1], v[int(rand()*5)+1],
                             d[int(rand()*4)+1], n[int(rand()*5)+1]}' > "$T/corpus.txt"
spec() { # name cell vocab [level]
  cat <<EOF
{"name": "$1", "input": {"tokens": 8, "level": "${4:-word}"},
 "recipe": "adam lr=1e-2 wd=0 clip=10 batch=4 epochs=3 sched=const",
 "layers": [{"name": "embed", "op": "Gather", "vocab": $3, "dim": 16},
            {"name": "rnn1", "op": "$2", "hidden": 32},
            {"name": "decoder", "op": "Gemm", "out": $3}]}
EOF
}
spec tiny-lstm LSTM 20 > "$T/lstm.json"
spec tiny-gru GRU 20 > "$T/gru.json"
spec tiny-small LSTM 8 char > "$T/small.json"   # the corpus has 26 symbols
# Bit-RNN's form (ReLU after the embedding, sigmoid cell): quantized, its embedding exports
# as each token's activation codes
sed -e 's/"name": "tiny-lstm"/"name": "tiny-bitrnn"/' -e 's/"dim": 16}/"dim": 16}, {"name": "er", "op": "Relu"}/' \
    -e 's/"hidden": 32}/"hidden": 32, "bitrnn": true}/' "$T/lstm.json" > "$T/bitrnn.json"
common=(--data "$T/corpus.txt" --threads 1 --quiet)

# 1-2
"$LB" train --model "$T/lstm.json" "${common[@]}" --seed 1 --out "$T/a.safetensors" --json > "$T/a.json" || bad "train lstm"
ppl=$(sed -n 's/.*"perplexity": \([0-9.]*\).*/\1/p' "$T/a.json")
if [[ -n "$ppl" ]] && awk -v p="$ppl" 'BEGIN{exit !(p < 6)}'; then ok; else bad "test perplexity '$ppl' is not below 6"; fi
ev=$("$LB" eval --ckpt "$T/a.safetensors" --data "$T/corpus.txt" --json 2>/dev/null)
[[ "$ev" == *"\"perplexity\": $ppl"* ]] && ok || bad "eval '$ev' disagrees with train's perplexity $ppl"
"$LB" eval --ckpt "$T/a.safetensors" --data "$T/corpus.txt" --split valid --json 2>/dev/null | grep -q '"split": "valid"' && ok || bad "eval --split valid"
rep=$("$LB" report --ckpt "$T/a.safetensors" --json)
[[ "$rep" == *'"per": "token"'* && "$rep" == *'"seq_len": 8'* && "$rep" == *'"op": "LSTM"'* ]] && ok || bad "report: $rep"

# 3
"$LB" train --model "$T/lstm.json" "${common[@]}" --seed 1 --no-eval --out "$T/b.safetensors" || bad "train b"
cmp -s "$T/a.safetensors" "$T/b.safetensors" && ok || bad "same seed gave different checkpoints"
steps=$(( ( (1620 / 4) - 1 + 7 ) / 8 ))   # steps per epoch: 300 lines x 6 tokens x 90% / batch 4 / 8 steps
"$LB" train --model "$T/lstm.json" "${common[@]}" --seed 1 --no-eval --max-steps $steps --out "$T/r.safetensors" || bad "train r"
"$LB" train --model "$T/lstm.json" "${common[@]}" --seed 1 --no-eval --resume --out "$T/r.safetensors" || bad "resume r"
cmp -s "$T/a.safetensors" "$T/r.safetensors" && ok || bad "resume at the epoch boundary ($steps steps) differs"

# 4
s1=$("$LB" sample --ckpt "$T/a.safetensors" --prompt "the king" --tokens 30 --seed 3)
s2=$("$LB" sample --ckpt "$T/a.safetensors" --prompt "the king" --tokens 30 --seed 3)
[[ -n "$s1" && "$s1" == "$s2" ]] && ok || bad "sample not deterministic: '$s1' vs '$s2'"
words=$(echo "$s1" | tr ' \n' '\n\n' | grep -v '^$' | grep -cvE '^(the|a|one|every|cat|dog|man|king|lamb|saw|loved|fed|followed|blessed)$')
[[ $words -eq 0 ]] && ok || bad "sample wrote $words words outside the corpus: $s1"

# 5
"$LB" train --model "$T/gru.json" "${common[@]}" --out "$T/g.safetensors" --json > "$T/g.json" || bad "train gru"
grep -q '"perplexity"' "$T/g.json" && ok || bad "gru json"
"$LB" train --model "$T/bitrnn.json" "${common[@]}" --quant balanced:2/2 --out "$T/q.safetensors" --json > "$T/q.json" || bad "train quantized"
"$LB" report --ckpt "$T/q.safetensors" | grep -q "rnn1 .*LSTM .*balanced *2" && ok || bad "quantized report"

# 6
for ck in a q g; do
  "$LB" export --ckpt "$T/$ck.safetensors" --out "$T/$ck.lbm" > "$T/$ck.export" || bad "export $ck"
  [[ -s "$T/$ck.vocab.json" ]] && ok || bad "export $ck wrote no vocabulary"
  r=$("$LB" run "$T/$ck.lbm" --data "$T/corpus.txt" --check "$T/$ck.safetensors" --json 2>/dev/null)
  p1=$(echo "$r" | sed -n 's/.*"perplexity": \([0-9.]*\).*/\1/p'); p2=$(echo "$r" | sed -n 's/.*"check_perplexity": \([0-9.]*\).*/\1/p')
  if [[ -n "$p1" && -n "$p2" ]] && awk -v a="$p1" -v b="$p2" 'BEGIN{d=a/b-1; exit !(d < 1e-4 && d > -1e-4)}'; then ok
  else bad "run $ck: runtime perplexity '$p1' vs eval '$p2'"; fi
done
grep -qE '^0 +Gather +none +2 +0 +2 ' "$T/q.export" && ok || bad "the quantized embedding is not 2-bit codes: $(cat "$T/q.export")"
"$LB" export --ckpt "$T/q.safetensors" --out "$T/q2.lbm" --c-source "$T/lm.c" --c-name tinylm > /dev/null || bad "export --c-source"
cat > "$T/driver.c" <<'C'
#include "lbr.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int tinylm_step(int32_t token, float *out);
void tinylm_reset(void);
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
    float a[64], b[64];
    for (int pass = 0; pass < 2; pass++) {
        lbr_reset(m);
        tinylm_reset();
        for (int s = 0; s < 30; s++) {
            int32_t tok = (s * 7 + pass) % 20;
            if (lbr_run_tokens(m, &tok, 1, a) || tinylm_step(tok, b) || memcmp(a, b, sizeof(float) * 20)) return 4;
        }
    }
    free(arena);
    return 0;
}
C
CC=${CC:-cc}
RT=$(dirname "$LB")/liblowbit_runtime.a
# shellcheck disable=SC2086
if $CC -std=c11 -Wall -Wextra -Werror -O1 $SAN -I "$SRC/runtime" "$T/driver.c" "$T/lm.c" "$RT" -lm -o "$T/driver" 2> "$T/cc.err"; then
  ok
  "$T/driver" "$T/q.lbm" && ok || bad "generated C source of the language model disagrees with the runtime (status $?)"
else
  bad "generated C source does not compile: $(head -5 "$T/cc.err")"
fi

# 7
head -c 3000 /dev/urandom > "$T/bin.txt"; printf 'abc\0def\n' >> "$T/bin.txt"
check_err() { # expected-substring cmd...
  local want=$1; shift
  "$@" > "$T/out" 2> "$T/err"; local rc=$?
  if [[ $rc -eq 2 ]] && grep -q -- "$want" "$T/err"; then ok; else bad "'$*' gave rc $rc: $(head -c 300 "$T/err")"; fi
}
check_err "bin.txt" "$LB" train --model "$T/lstm.json" --data "$T/bin.txt" --out "$T/x.safetensors" --quiet
: > "$T/empty.txt"
check_err "empty" "$LB" train --model "$T/lstm.json" --data "$T/empty.txt" --out "$T/x.safetensors" --quiet
check_err "vocabulary" "$LB" train --model "$T/small.json" --data "$T/corpus.txt" --max-steps 1 --out "$T/x.safetensors" --quiet
sed 's/king/queen/g' "$T/corpus.txt" > "$T/other.txt"
check_err "vocabulary" "$LB" eval --ckpt "$T/a.safetensors" --data "$T/other.txt"
check_err "vocabulary" "$LB" run "$T/a.lbm" --data "$T/other.txt"
rm -f "$T/a.vocab.json"
"$LB" run "$T/a.lbm" --data "$T/corpus.txt" > /dev/null 2> "$T/err" && bad "run without a vocabulary" || \
  { grep -q "a.vocab.json" "$T/err" && ok || bad "missing vocabulary: $(cat "$T/err")"; }
check_err "tokens" "$LB" sample --ckpt "$T/q.safetensors" --tokens 0

echo "cli_lm: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
