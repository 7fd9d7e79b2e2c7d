#!/usr/bin/python3
"""The train-equals-deploy table of docs/results.md from bench/deploy_check.sh's output.

    /usr/bin/python3 bench/deploy_table.py [runs/deploy/deploy.jsonl]

One row per packed model: the runtime's test accuracy, on how many of the 10,000 test
images it predicts what lowbit's own forward of the checkpoint predicts, the largest logit
difference, the kernel path of the quantized layers, the file against the sum of bits x
parameters / 8 (plus scales, codebooks, folded batch norm and thresholds), and single-thread
throughput at batch 1 and 64."""
import json
import sys
from collections import Counter


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "runs/deploy/deploy.jsonl"
    rows = [json.loads(l) for l in open(path) if l.strip()]
    print("| model | runtime accuracy | same prediction as lowbit | max logit diff | paths (Conv/Gemm) "
          "| file bytes | bits x params / 8 + meta | over | img/s batch 1 | img/s batch 64 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        e, x = r["export"], r["run"]
        paths = Counter(l["path"] for l in e["layers"] if l["op"] in ("Conv", "Gemm"))
        ptxt = ", ".join(f"{n}x {p}" if n > 1 else p for p, n in sorted(paths.items()))
        ideal = e["weight_bytes"] + e["meta_bytes"]
        differ = round((1 - x["agree"]) * x["samples"])
        print(f"| `{r['quant'] or r['tag']}` | {100 * x['accuracy']:.2f} % | {100 * x['agree']:.2f} % ({differ} differ) "
              f"| {x['max_logit_diff']:.2g} | {ptxt} | {e['file_bytes']:,} | {ideal:,.0f} "
              f"| {100 * (e['file_bytes'] - ideal) / ideal:.2f} % | {x['img_s_b1']:,.0f} | {x['img_s_batch']:,.0f} |")


if __name__ == "__main__":
    main()
