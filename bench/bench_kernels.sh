#!/usr/bin/env bash
# bench_kernels.sh - every packed-runtime GEMM kernel variant beside OpenBLAS sgemm, single-threaded.
#
#   bench/bench_kernels.sh [--quick] [--out FILE]
#   env: LOWBIT  the lowbit binary (default build/lowbit, relative to the repository root)
#
# Runs `lowbit bench` (tools/lowbit/cmd_bench.c) on the GEMM shapes of fmnist-cnn's conv2, conv3,
# conv4 and fc1 at batch 1 and 64: every variant of the xnor, bitserial, s8u8, shift and
# bucket families this CPU runs, each checked against its scalar reference before it is
# timed, and cblas_sgemm on the same (M, N, K). The table goes to standard output; one JSON
# object per row goes to FILE (default runs/bench_kernels.json), written only when the run
# succeeds. --quick takes short measurements: a smoke test, not figures to report.
# A full run takes several minutes, most of it in the scalar references at batch 64.
#
# Settings (DESIGN.md section 5, "Comparing fairly with PyTorch"): OPENBLAS_CORETYPE=SkylakeX,
# because the machine's Haswell default holds OpenBLAS to AVX2 and would understate the
# float baseline. Everything is one thread (the kernels are single-threaded; the program
# calls openblas_set_num_threads(1)), and the ceilings it reports against are per core.
# Run it on an otherwise idle machine: the other load is printed under the table.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="${LOWBIT:-build/lowbit}"
OUT="runs/bench_kernels.json"
QUICK=()
QUICK_NOTE=""

die() { echo "bench_kernels.sh: $*" >&2; exit 2; }
usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=(--quick); QUICK_NOTE=", --quick (smoke test)"; shift ;;
        --out) [ $# -ge 2 ] || die "--out needs a file name"; OUT="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (usage: bench/bench_kernels.sh [--quick] [--out FILE])" ;;
    esac
done

cd "$ROOT"
case "$BENCH" in /*) ;; *) BENCH="$ROOT/$BENCH" ;; esac
case "$OUT" in /*) ;; *) OUT="$ROOT/$OUT" ;; esac
[ -e "$BENCH" ] || die "$BENCH not found; build it first (cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build) or set LOWBIT=/path/to/lowbit"
[ -x "$BENCH" ] || die "$BENCH is not executable"
mkdir -p "$(dirname "$OUT")"

# the JSON goes to a temporary file first, so that a failed or interrupted run (a variant
# that differs from its reference aborts it) leaves no partial results behind
TMP="$(mktemp "$OUT.XXXXXX")"
trap 'rm -f "$TMP"' EXIT
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
set +e
OPENBLAS_CORETYPE=SkylakeX "$BENCH" bench ${QUICK[@]+"${QUICK[@]}"} --json "$TMP"
rc=$?
set -e
[ $rc -eq 0 ] || { echo "bench_kernels.sh: $BENCH failed (exit $rc)" >&2; exit 1; }
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
mv "$TMP" "$OUT"
trap - EXIT

cat <<EOF

settings: 1 thread, OPENBLAS_CORETYPE=SkylakeX, OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset} (inherited)$QUICK_NOTE
  binary:  $BENCH
  machine: $(nproc) cores, load average ${LOAD_BEFORE} before, ${LOAD_AFTER} after (a busy machine makes every number noisy)
  rows:    $OUT
EOF
