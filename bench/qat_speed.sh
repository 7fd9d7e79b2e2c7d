#!/usr/bin/env bash
# qat_speed.sh - quantization-aware training throughput: lowbit QAT beside lowbit float and tuned PyTorch.
#
#   bench/qat_speed.sh [--steps N] [--threads T] [--configs "Q1 Q2 ..."] [--fq-bits B] [--json]
#   env: LOWBIT      the lowbit binary (default build/lowbit, relative to the repository root)
#        PYTHON      an interpreter with PyTorch (default /usr/bin/python3, Debian's python3-torch)
#        INIT        float fmnist-cnn checkpoint the QAT runs start from (default runs/cnn10.safetensors)
#        STEPS       default for --steps (60); CONFIGS default for --configs
#        LOWBIT_ENV  extra "VAR=value ..." for the lowbit runs only (e.g. OMP_WAIT_POLICY=PASSIVE)
#
# Runs, one after the other (never together: on a 2-core machine they would compete), each
# for N timed training steps of fmnist-cnn, batch 128, after 10 warm-up steps:
#   lowbit float (--quant fp32), lowbit QAT for every configuration (default: uniform:4/4
#   balanced:4/4 balanced:4/4,percentile=mean uniq:4/4 syq:2/4 qn:4/4 pot:4/4), PyTorch
#   float, and PyTorch B-bit fake-quant QAT (bench/torch_train.py --fakequant B, default 4:
#   the "4-bit fake-quant QAT" baseline of DESIGN.md section 5).
# Every lowbit run starts from INIT (lowbit train --init), so the float and QAT rows differ only
# in the quantizers (plus the optimizer each method's recipe picks: Adam for syq).
#
# Timing follows bench/train_speed.sh: lowbit runs `lowbit train --max-steps N+10 --metrics
# FILE`, which reports img/s every 10 steps; the first report (steps 1-10, which also holds
# the quantizers' calibration and initialisation) is dropped and the rest combined as total
# images / total time. PyTorch runs bench/torch_train.py --warmup 10 --steps N.
#
# The table: img/s, step time (128 images), the step time over lowbit float's (the bar for
# lowbit QAT: at most 1.15) and the img/s over PyTorch fake-quant QAT's (the bar: at least
# 1.15); a '*' marks a lowbit QAT row that misses a bar. --json prints one JSON object on
# standard output instead (the table then goes to standard error).
#
# Settings (DESIGN.md section 5, "Comparing fairly with PyTorch"): every run gets
# OPENBLAS_CORETYPE=SkylakeX and T threads. lowbit runs with its own defaults otherwise:
# OMP_WAIT_POLICY is removed from its environment unless LOWBIT_ENV sets it. PyTorch is the
# tuned PyTorch of train_speed.sh: tcmalloc (LD_PRELOAD), OMP_WAIT_POLICY=PASSIVE,
# channels-last. Everything in effect is printed under the table (and is in the JSON).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOWBIT="${LOWBIT:-build/lowbit}"
PYTHON="${PYTHON:-/usr/bin/python3}"
INIT="${INIT:-runs/cnn10.safetensors}"
STEPS="${STEPS:-60}"
CONFIGS="${CONFIGS:-uniform:4/4 balanced:4/4 balanced:4/4,percentile=mean uniq:4/4 syq:2/4 qn:4/4 pot:4/4}"
LOWBIT_ENV="${LOWBIT_ENV:-}"
THREADS=2
FQ_BITS=4
JSON=0
WARMUP=10   # lowbit's report interval (src/train/train.c report_every): its first window
BATCH=128
TCMALLOC=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4

die() { echo "qat_speed.sh: $*" >&2; exit 2; }
usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --steps) [ $# -ge 2 ] || die "--steps needs a number"; STEPS="$2"; shift 2 ;;
        --threads) [ $# -ge 2 ] || die "--threads needs a number"; THREADS="$2"; shift 2 ;;
        --configs) [ $# -ge 2 ] || die "--configs needs a list"; CONFIGS="$2"; shift 2 ;;
        --fq-bits) [ $# -ge 2 ] || die "--fq-bits needs a number"; FQ_BITS="$2"; shift 2 ;;
        --json) JSON=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (bench/qat_speed.sh --help)" ;;
    esac
done
[[ "$STEPS" =~ ^[0-9]+$ ]] && [ "$STEPS" -ge "$WARMUP" ] ||
    die "--steps $STEPS: need an integer >= $WARMUP (timed steps after the $WARMUP warm-up steps)"
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "--threads $THREADS: need a positive integer"
[[ "$FQ_BITS" =~ ^[2-8]$ ]] || die "--fq-bits $FQ_BITS: need 2..8"
read -r -a QCONFIGS <<<"$CONFIGS"
[ ${#QCONFIGS[@]} -gt 0 ] || die "no configurations given"
read -r -a LB_EXTRA_ENV <<<"$LOWBIT_ENV"
for kv in ${LB_EXTRA_ENV[@]+"${LB_EXTRA_ENV[@]}"}; do
    [[ "$kv" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "LOWBIT_ENV: '$kv' is not VAR=value"
done

cd "$ROOT"
case "$LOWBIT" in /*) ;; *) LOWBIT="$ROOT/$LOWBIT" ;; esac
case "$INIT" in /*) ;; *) INIT="$ROOT/$INIT" ;; esac
[ -e "$LOWBIT" ] || die "lowbit binary $LOWBIT not found; build it first (cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j) or set LOWBIT=/path/to/lowbit"
[ -x "$LOWBIT" ] || die "$LOWBIT is not executable"
[ -f "$INIT" ] || die "float checkpoint $INIT not found; make it with
    build/lowbit train --model fmnist-cnn --out runs/cnn10.safetensors
(10 epochs of float training) or set INIT=/path/to/float-fmnist-cnn.safetensors"
[ -x "$PYTHON" ] || die "$PYTHON not found; set PYTHON to an interpreter with PyTorch"
"$PYTHON" -c 'import torch' 2>/dev/null || die "$PYTHON cannot import torch (apt-get install python3-torch python3-numpy, or set PYTHON)"
TORCH_PRELOAD="$TCMALLOC"
if [ ! -e "$TCMALLOC" ]; then
    echo "qat_speed.sh: $TCMALLOC not found (apt-get install libtcmalloc-minimal4); PyTorch runs untuned malloc" >&2
    TORCH_PRELOAD=""
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/qat_speed.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
RESULTS="$TMP/results.tsv"   # kind, name, img/s or "", json file or "", error
: >"$RESULTS"
FAILED=0

# steady-state img/s of one lowbit metrics file: total images / total time over the reports
# after the first (as train_speed.sh); prints "IPS<TAB>[window rates]"
steady_ips() {
    "$PYTHON" - "$1" <<'EOF'
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
print("%.1f\t%s" % (sum(n for n, _ in steady) / sum(n / rate for n, rate in steady), json.dumps([r for _, r in steady])))
EOF
}

# ---- lowbit: float, then every QAT configuration
run_lowbit() {  # name, index, quant
    local name="$1" i="$2" q="$3" rc out
    echo "lowbit $q: $((STEPS + WARMUP)) steps ..." >&2
    local cmd=("$LOWBIT" train --model fmnist-cnn --quant "$q" --init "$INIT" --epochs 5 --threads "$THREADS"
               --max-steps $((STEPS + WARMUP)) --no-eval --quiet
               --out "$TMP/lb$i.safetensors" --metrics "$TMP/lb$i.jsonl")
    set +e
    env -u OMP_WAIT_POLICY OPENBLAS_CORETYPE=SkylakeX ${LB_EXTRA_ENV[@]+"${LB_EXTRA_ENV[@]}"} \
        "${cmd[@]}" >"$TMP/lb$i.out" 2>"$TMP/lb$i.err"
    rc=$?
    set -e
    rm -f "$TMP/lb$i.safetensors"
    if [ $rc -ne 0 ]; then
        echo "qat_speed.sh: lowbit train --quant $q failed (exit $rc):" >&2
        tail -n 20 "$TMP/lb$i.err" >&2
        printf 'lowbit\t%s\t\t\t\tlowbit train failed (exit %s)\n' "$name" "$rc" >>"$RESULTS"
        FAILED=1
        return
    fi
    if ! out="$(steady_ips "$TMP/lb$i.jsonl" 2>"$TMP/lb$i.perr")"; then
        echo "qat_speed.sh: cannot read img/s from lowbit's metrics ($q):" >&2
        cat "$TMP/lb$i.perr" "$TMP/lb$i.jsonl" >&2
        printf 'lowbit\t%s\t\t\t\tno steady-state img/s in the metrics\n' "$name" >>"$RESULTS"
        FAILED=1
        return
    fi
    printf 'lowbit\t%s\t%s\t\t\n' "$name" "$out" >>"$RESULTS"   # img/s TAB windows
}
run_lowbit fp32 0 fp32
i=1
for q in "${QCONFIGS[@]}"; do
    run_lowbit "$q" "$i" "$q"
    i=$((i + 1))
done

# ---- PyTorch, tuned (torch_train.py would set the environment itself; it is set here so
# the settings are explicit and --as-is keeps the script from changing them)
run_torch() {  # name, fakequant bits
    local name="$1" fq="$2" rc
    echo "pytorch $name: $WARMUP + $STEPS steps ..." >&2
    set +e
    env LD_PRELOAD="$TORCH_PRELOAD" OMP_WAIT_POLICY=PASSIVE OPENBLAS_CORETYPE=SkylakeX \
        "$PYTHON" "$ROOT/bench/torch_train.py" --as-is --threads "$THREADS" --warmup "$WARMUP" \
        --steps "$STEPS" --batch "$BATCH" --fakequant "$fq" --json >"$TMP/pt$fq.json" 2>"$TMP/pt$fq.err"
    rc=$?
    set -e
    if [ $rc -ne 0 ]; then
        echo "qat_speed.sh: bench/torch_train.py --fakequant $fq failed (exit $rc):" >&2
        tail -n 20 "$TMP/pt$fq.err" >&2
        printf 'pytorch\t%s\t\t\t\tbench/torch_train.py failed (exit %s)\n' "$name" "$rc" >>"$RESULTS"
        FAILED=1
        return
    fi
    printf 'pytorch\t%s\t\t\t%s\t\n' "$name" "$TMP/pt$fq.json" >>"$RESULTS"
}
run_torch fp32 0
run_torch "fakequant $FQ_BITS-bit" "$FQ_BITS"
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"

# ---- table and JSON
LB_VERSION="$("$LOWBIT" --version 2>/dev/null | head -n 1 || echo 'version unknown')"
# values go in through the environment (QS_*), so no quoting can break the Python
QS_BATCH="$BATCH" QS_STEPS="$STEPS" QS_WARMUP="$WARMUP" QS_THREADS="$THREADS" QS_FQ_BITS="$FQ_BITS" \
QS_L2="${OPENBLAS_L2_SIZE:-}" QS_LOWBIT="$LOWBIT" QS_LB_VERSION="$LB_VERSION" QS_INIT="$INIT" \
QS_LOWBIT_ENV="$LOWBIT_ENV" QS_PRELOAD="$TORCH_PRELOAD" QS_CORES="$(nproc)" \
QS_LOAD_BEFORE="$LOAD_BEFORE" QS_LOAD_AFTER="$LOAD_AFTER" \
"$PYTHON" - "$RESULTS" "$JSON" <<'EOF' || FAILED=1
import json, os, sys
E = os.environ
BAR_STEP, BAR_PT = 1.15, 1.15
batch, steps, warmup, threads, fq_bits = (int(E["QS_" + k]) for k in ("BATCH", "STEPS", "WARMUP", "THREADS", "FQ_BITS"))
lb_env = E["QS_LOWBIT_ENV"].split()
rows = []
for line in open(sys.argv[1]):
    kind, name, ips, windows, jfile, err = (line.rstrip("\n").split("\t") + [""] * 6)[:6]
    r = {"framework": kind, "config": name, "img_per_s": None, "error": err or None}
    if kind == "lowbit":
        r["quant"] = name
        if ips:
            r["img_per_s"] = float(ips)
            r["window_img_per_s"] = json.loads(windows)
    else:
        r["fakequant"] = fq_bits if name != "fp32" else 0
        if jfile:
            t = json.loads(open(jfile).read().strip().splitlines()[-1])
            r["img_per_s"] = t["img_per_s"]
            r["torch"] = t["torch"]
            r["channels_last"] = t["channels_last"]
            r["torch_settings"] = t["settings"]
            r["fakequant_layers"] = t.get("fakequant_layers", [])
    rows.append(r)
def find(kind, pred):
    for r in rows:
        if r["framework"] == kind and pred(r) and r["img_per_s"]:
            return r["img_per_s"]
    return None
lb_fp32 = find("lowbit", lambda r: r["config"] == "fp32")
pt_fq = find("pytorch", lambda r: r.get("fakequant"))
lb_step_fp32 = batch * 1000.0 / lb_fp32 if lb_fp32 else None
for r in rows:
    ips = r["img_per_s"]
    r["step_ms"] = round(batch * 1000.0 / ips, 2) if ips else None
    r["step_vs_lowbit_fp32"] = round(r["step_ms"] / lb_step_fp32, 3) if ips and lb_step_fp32 else None
    r["img_per_s_vs_pytorch_fakequant"] = round(ips / pt_fq, 3) if ips and pt_fq else None
    qat = r["framework"] == "lowbit" and r["config"] != "fp32"
    if qat and r["step_vs_lowbit_fp32"] is not None and r["img_per_s_vs_pytorch_fakequant"] is not None:
        r["meets_bars"] = r["step_vs_lowbit_fp32"] <= BAR_STEP and r["img_per_s_vs_pytorch_fakequant"] >= BAR_PT
    else:
        r["meets_bars"] = None
torch_ver = next((r["torch"] for r in rows if r.get("torch")), "?")
settings = {
    "both": {"OPENBLAS_CORETYPE": "SkylakeX", "OPENBLAS_L2_SIZE": E["QS_L2"] or None, "threads": threads},
    "lowbit": {"binary": E["QS_LOWBIT"], "version": E["QS_LB_VERSION"], "init": E["QS_INIT"],
               "env": " ".join(lb_env) or None,
               "OMP_WAIT_POLICY": next((kv.split("=", 1)[1] for kv in lb_env if kv.startswith("OMP_WAIT_POLICY=")), None)},
    "pytorch": {"torch": torch_ver, "LD_PRELOAD": E["QS_PRELOAD"] or None, "OMP_WAIT_POLICY": "PASSIVE",
                "channels_last": next((r["channels_last"] for r in rows if "channels_last" in r), None),
                "set_num_threads": threads,
                "fakequant_layers": next((r["fakequant_layers"] for r in rows if r.get("fakequant_layers")), None)},
}
out = {"benchmark": "qat_speed", "model": "fmnist-cnn", "batch": batch, "threads": threads, "steps": steps,
       "warmup": warmup, "bars": {"step_vs_lowbit_fp32_max": BAR_STEP, "img_per_s_vs_pytorch_fakequant_min": BAR_PT},
       "rows": rows, "settings": settings,
       "machine": {"cores": int(E["QS_CORES"]), "load_before": E["QS_LOAD_BEFORE"], "load_after": E["QS_LOAD_AFTER"]}}

f = sys.stderr if sys.argv[2] == "1" else sys.stdout
def fmt(v, d, mark=""):
    return "-" if v is None else ("%.*f" % (d, v)) + mark
print("\n%-38s %9s %9s %12s %14s" % ("fmnist-cnn training, batch %d" % batch, "img/s", "step ms",
                                    "step/lb fp32", "img/s/pt fq%d" % fq_bits), file=f)
print("%-38s %9s %9s %12s %14s" % ("", "", "", "(<= %.2f)" % BAR_STEP, "(>= %.2f)" % BAR_PT), file=f)
for r in rows:
    label = ("lowbit " + r["config"]) if r["framework"] == "lowbit" else ("pytorch %s %s" % (torch_ver, r["config"]))
    qat = r["framework"] == "lowbit" and r["config"] != "fp32"
    if r["error"]:
        print("%-38s %s" % (label, "FAILED: " + r["error"]), file=f)
        continue
    ms = qat and r["step_vs_lowbit_fp32"] is not None and r["step_vs_lowbit_fp32"] > BAR_STEP
    mp = qat and r["img_per_s_vs_pytorch_fakequant"] is not None and r["img_per_s_vs_pytorch_fakequant"] < BAR_PT
    print("%-38s %9s %9s %12s %14s" % (label, fmt(r["img_per_s"], 1), fmt(r["step_ms"], 2),
                                       fmt(r["step_vs_lowbit_fp32"], 3, "*" if ms else " "),
                                       fmt(r["img_per_s_vs_pytorch_fakequant"], 3, "*" if mp else " ")), file=f)
nq = [r for r in rows if r["meets_bars"] is not None]
print("%d of %d lowbit QAT configurations meet both bars (* marks a miss)" % (sum(r["meets_bars"] for r in nq), len(nq)), file=f)
print("""
settings: batch %d, %d threads, %d timed steps after %d warm-up steps (lowbit: img/s of the metrics windows after the first)
  all:     OPENBLAS_CORETYPE=SkylakeX, OPENBLAS_L2_SIZE=%s (inherited)
  lowbit:  %s (%s), --init %s, OMP_WAIT_POLICY=%s, LOWBIT_ENV=%s
  pytorch: %s, %s, LD_PRELOAD=%s, OMP_WAIT_POLICY=PASSIVE, torch.set_num_threads(%d);
           fake-quant QAT: bench/torch_train.py --fakequant %d, fake-quantized: %s
           (Conv/Linear weights per tensor symmetric, ReLU outputs on [0, 1])
  machine: %d cores, load average %s before, %s after (a busy machine makes every number noisy)""" % (
    batch, threads, steps, warmup, settings["both"]["OPENBLAS_L2_SIZE"] or "unset",
    settings["lowbit"]["binary"], settings["lowbit"]["version"], settings["lowbit"]["init"],
    settings["lowbit"]["OMP_WAIT_POLICY"] or "unset (lowbit's default)", settings["lowbit"]["env"] or "none",
    torch_ver, "channels-last" if settings["pytorch"]["channels_last"] else "NCHW", settings["pytorch"]["LD_PRELOAD"] or "none",
    threads, fq_bits, ", ".join(settings["pytorch"]["fakequant_layers"] or ["?"]), out["machine"]["cores"], out["machine"]["load_before"], out["machine"]["load_after"]), file=f)
if sys.argv[2] == "1":
    print(json.dumps(out))
EOF
exit $FAILED
