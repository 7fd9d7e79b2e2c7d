#!/usr/bin/env bash
# train_speed.sh - lowbit's training throughput beside tuned PyTorch's, fmnist-cnn, batch 128.
#
#   bench/train_speed.sh [--steps N] [--threads T]
#   env: LOWBIT  the lowbit binary (default build/lowbit, relative to the repository root)
#        PYTHON  an interpreter with PyTorch (default /usr/bin/python3, Debian's python3-torch)
#        STEPS   default for --steps (30)
#
# Both sides time the same thing: N-10 training steps after 10 warm-up steps. lowbit runs
# `lowbit train --max-steps N --metrics FILE`; it reports img/s every 10 steps and the first
# report (steps 1-10) is dropped as warm-up; the rest are combined as total images / total
# time. PyTorch runs bench/torch_train.py --warmup 10 --steps N-10. The runs are one after
# the other, never together: on a 2-core machine they would compete for the cores.
#
# Settings (DESIGN.md section 5, "Comparing fairly with PyTorch"): both sides use
# OPENBLAS_CORETYPE=SkylakeX (the machine's Haswell default holds OpenBLAS to AVX2) and
# T threads; PyTorch additionally gets tcmalloc (LD_PRELOAD), OMP_WAIT_POLICY=PASSIVE and
# channels-last tensors, which is what "tuned" means there. lowbit runs with its own
# defaults otherwise. Everything in effect is printed under the table.
#
# lowbit's peak resident memory comes from /usr/bin/time -v (Debian package `time`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOWBIT="${LOWBIT:-build/lowbit}"
PYTHON="${PYTHON:-/usr/bin/python3}"
STEPS="${STEPS:-30}"
THREADS=2
WARMUP=10   # lowbit's report interval (src/train/train.c report_every): its first window
TCMALLOC=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4

die() { echo "train_speed.sh: $*" >&2; exit 2; }
usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --steps) [ $# -ge 2 ] || die "--steps needs a number"; STEPS="$2"; shift 2 ;;
        --threads) [ $# -ge 2 ] || die "--threads needs a number"; THREADS="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (usage: bench/train_speed.sh [--steps N] [--threads T])" ;;
    esac
done
if ! [[ "$STEPS" =~ ^[0-9]+$ ]] || [ "$STEPS" -lt $((WARMUP + 10)) ]; then
    die "--steps $STEPS: need an integer >= $((WARMUP + 10)) (lowbit reports every $WARMUP steps; the first report is warm-up)"
fi
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "--threads $THREADS: need a positive integer"

cd "$ROOT"
case "$LOWBIT" in /*) ;; *) LOWBIT="$ROOT/$LOWBIT" ;; esac
[ -e "$LOWBIT" ] || die "lowbit binary $LOWBIT not found; build it first (cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j) or set LOWBIT=/path/to/lowbit"
[ -x "$LOWBIT" ] || die "$LOWBIT is not executable"
[ -x "$PYTHON" ] || die "$PYTHON not found; set PYTHON to an interpreter with PyTorch"
"$PYTHON" -c 'import torch' 2>/dev/null || die "$PYTHON cannot import torch (install Debian's python3-torch, or set PYTHON)"
TIME=/usr/bin/time
if [ ! -x "$TIME" ]; then
    echo "train_speed.sh: $TIME not found (apt-get install time); lowbit's peak memory will not be reported" >&2
    TIME=""
fi
TORCH_PRELOAD="$TCMALLOC"
if [ ! -e "$TCMALLOC" ]; then
    echo "train_speed.sh: $TCMALLOC not found (apt-get install libtcmalloc-minimal4); PyTorch runs untuned malloc" >&2
    TORCH_PRELOAD=""
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/train_speed.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"

# ---- lowbit
echo "lowbit: $STEPS steps ($LOWBIT) ..." >&2
LB_CMD=("$LOWBIT" train --model fmnist-cnn --epochs 5 --threads "$THREADS" --max-steps "$STEPS" --no-eval --quiet
        --out "$TMP/ckpt.safetensors" --metrics "$TMP/metrics.jsonl")
set +e
if [ -n "$TIME" ]; then
    OPENBLAS_CORETYPE=SkylakeX "$TIME" -v -o "$TMP/time.txt" "${LB_CMD[@]}" 2>"$TMP/lowbit.err"
else
    OPENBLAS_CORETYPE=SkylakeX "${LB_CMD[@]}" 2>"$TMP/lowbit.err"
fi
rc=$?
set -e
if [ $rc -ne 0 ]; then
    echo "train_speed.sh: lowbit train failed (exit $rc):" >&2
    tail -n 20 "$TMP/lowbit.err" >&2
    exit 1
fi
# steady-state img/s: total images / total time over the reports after the first
LB_IPS="$("$PYTHON" - "$TMP/metrics.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rows = [r for r in rows if r.get("img_per_s") is not None]
wins, prev = [], 0
for r in rows:  # each report covers the steps since the previous one
    wins.append((r["step"] - prev, r["img_per_s"]))
    prev = r["step"]
steady = wins[1:]
if not steady or any(rate <= 0 for _, rate in steady):
    sys.exit("no steady-state reports in the metrics file")
print("%.1f" % (sum(n for n, _ in steady) / sum(n / rate for n, rate in steady)))
EOF
)" || { echo "train_speed.sh: cannot read img/s from lowbit's metrics:" >&2; cat "$TMP/metrics.jsonl" >&2; exit 1; }
LB_RSS="n/a"
if [ -n "$TIME" ]; then
    kb="$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): *//p' "$TMP/time.txt")"
    [ -n "$kb" ] && LB_RSS="$(awk -v k="$kb" 'BEGIN { printf "%.1f MB", k / 1024 }')"
fi

# ---- PyTorch, tuned (torch_train.py would set the environment itself; it is set here so
# the settings are explicit and --as-is keeps the script from changing them)
echo "pytorch: $STEPS steps ..." >&2
set +e
env LD_PRELOAD="$TORCH_PRELOAD" OMP_WAIT_POLICY=PASSIVE OPENBLAS_CORETYPE=SkylakeX \
    "$PYTHON" "$ROOT/bench/torch_train.py" --as-is --threads "$THREADS" --warmup "$WARMUP" \
    --steps $((STEPS - WARMUP)) --json >"$TMP/torch.json" 2>"$TMP/torch.err"
rc=$?
set -e
if [ $rc -ne 0 ]; then
    echo "train_speed.sh: bench/torch_train.py failed (exit $rc):" >&2
    tail -n 20 "$TMP/torch.err" >&2
    exit 1
fi
read -r PT_IPS PT_RSS PT_TORCH PT_CL < <("$PYTHON" -c '
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(r["img_per_s"], "%.1f" % r["peak_rss_mb"], r["torch"], "channels-last" if r["channels_last"] else "NCHW")
' "$TMP/torch.json")
[ -n "${PT_IPS:-}" ] || { echo "train_speed.sh: cannot read bench/torch_train.py's JSON:" >&2; cat "$TMP/torch.json" >&2; exit 1; }
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
RATIO="$(awk -v a="$LB_IPS" -v b="$PT_IPS" 'BEGIN { printf "%.2f", a / b }')"

# ---- table
printf '\n%-22s %12s %14s\n' "fmnist-cnn training" "img/s" "peak RSS"
printf '%-22s %12s %14s\n' "lowbit" "$LB_IPS" "$LB_RSS"
printf '%-22s %12s %14s\n' "pytorch $PT_TORCH tuned" "$PT_IPS" "$PT_RSS MB"
printf '%-22s %12s\n' "ratio lowbit/pytorch" "$RATIO"
cat <<EOF

settings: batch 128, $THREADS threads, $((STEPS - WARMUP)) timed steps after $WARMUP warm-up steps, SGD momentum 0.9 wd 5e-4 cosine lr 0.05
  both:    OPENBLAS_CORETYPE=SkylakeX, OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset} (inherited)
  lowbit:  $LOWBIT ($("$LOWBIT" --version 2>/dev/null | head -n 1 || echo 'version unknown')), OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset} (inherited)
  pytorch: $PT_CL, LD_PRELOAD=${TORCH_PRELOAD:-none}, OMP_WAIT_POLICY=PASSIVE, torch.set_num_threads($THREADS)
  machine: $(nproc) cores, load average ${LOAD_BEFORE} before, ${LOAD_AFTER} after (a busy machine makes both numbers noisy)
EOF
