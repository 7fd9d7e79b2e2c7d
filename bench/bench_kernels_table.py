#!/usr/bin/env python3
"""The kernel table of docs/results.md from bench/bench_kernels.sh's rows: per layer shape and
batch, each family's fastest variant as a speed-up over single-thread sgemm of the same run.
   bench/bench_kernels_table.py [runs/bench_kernels.json]"""
import json
import sys

FAMILIES = [("xnor", 1, 1, "xnor 1×1"), ("bitserial", 2, 2, "bitserial ternary×2"), ("s8u8", 8, 8, "s8u8 8×8"),
            ("shift", 4, 4, "shift 4×4"), ("bucket", 2, 2, "bucket 2×2"), ("bucket", 4, 4, "bucket 4×4")]

path = sys.argv[1] if len(sys.argv) > 1 else "runs/bench_kernels.json"
rows = [json.loads(line) for line in open(path)]
if any(r.get("quick") for r in rows):
    sys.exit(f"bench_kernels_table: {path} holds --quick rows (a smoke test, not figures)")
best = {}
for r in rows:
    k = (r["layer"], r["batch"], r["family"], r["wbits"], r["abits"])
    if r["family"] != "sgemm" and (k not in best or r["seconds"] < best[k]["seconds"]):
        best[k] = r
print("| layer (M×N×K) | batch | " + " | ".join(f[3] for f in FAMILIES) + " |")
print("|---|---|" + "---|" * len(FAMILIES))
for r in rows:
    if r["family"] != "sgemm":
        continue
    cells = []
    for fam, w, a, _ in FAMILIES:
        b = best.get((r["layer"], r["batch"], fam, w, a))
        cells.append(f"{b['speedup_vs_sgemm']:.2f}× ({b['variant']})" if b else "—")
    print(f"| {r['layer']} ({r['M']}×{r['N']}×{r['K']}) | {r['batch']} | " + " | ".join(cells) + " |")
