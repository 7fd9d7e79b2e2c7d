#!/usr/bin/python3
"""The train-equals-deploy table of docs/results.md from bench/deploy_check.sh's output.

    /usr/bin/python3 bench/deploy_table.py [runs/deploy/deploy.jsonl]
    /usr/bin/python3 bench/deploy_table.py --speed [runs/deploy/speed.jsonl]
    /usr/bin/python3 bench/deploy_table.py runs/lm_deploy/deploy.jsonl   (language models)

One row per packed model: the runtime's test accuracy, on how many of the 10,000 test
images it predicts what lowbit's own forward of the checkpoint predicts, the largest logit
difference, the kernel path of the quantized layers, the file against the sum of bits x
parameters / 8 plus scales, codebooks, folded batch norm, thresholds, header and tables (the
rest is alignment padding), and single-thread
throughput at batch 1 and 64."""
import json
import sys
from collections import Counter


def speed(path):
    """bench/deploy_speed.sh's measurements: one row per engine and model, ratios to PyTorch
    int8 at batch 1 on one thread, measured in the same run."""
    rows = [json.loads(l) for l in open(path) if l.strip()]
    torch = next(r for r in rows if r["engine"] == "torch int8")["torch"]["runs"]
    base = next(t for t in torch if t["threads"] == 1)["img_s_b1"]
    print("| engine | model | accuracy | threads | img/s batch 1 | latency batch 1 | img/s batch 64 | batch 1 vs PyTorch int8 (1 thread) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["engine"] == "lowbit runtime":
            x = r["run"]
            print(f"| lowbit runtime | `{r['model']}` | {100 * x['accuracy']:.2f} % | 1 | {x['img_s_b1']:,.0f} "
                  f"| {x['latency_ms_b1']:.3f} ms | {x['img_s_batch']:,.0f} | {x['img_s_b1'] / base:.2f}x |")
        elif r["engine"] == "lowbit eval":
            print(f"| lowbit eval (training engine) | `fp32` | | 1 | {r['img_s_b1']:,.0f} | {1e3 / r['img_s_b1']:.3f} ms | "
                  f"| {r['img_s_b1'] / base:.2f}x |")
    for t in torch:
        print(f"| PyTorch int8 (oneDNN) | int8 | {100 * t['accuracy']:.2f} % | {t['threads']} | {t['img_s_b1']:,.0f} "
              f"| {t['latency_ms_b1']:.3f} ms | {t['img_s_b64']:,.0f} | {t['img_s_b1'] / base:.2f}x |")


def lm(rows):
    """Language models (SWEEP=runs/lm_sweep): the runtime's test perplexity against lowbit
    eval's on the same 10 streams, the paths of the recurrent and decoder layers, the file,
    and the runtime's single-thread tokens/s."""
    print("| model | runtime perplexity | lowbit eval perplexity | difference | next-token accuracy (runtime / eval) "
          "| paths (LSTM, decoder) | file bytes | bits x params / 8 + meta + tables | tokens/s, 10 streams | ms per token, 1 stream |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        e, x = r["export"], r["run"]
        paths = ", ".join(l["path"] for l in e["layers"] if l["op"] in ("LSTM", "GRU", "Gemm"))
        ideal = e["weight_bytes"] + e["meta_bytes"] + e["table_bytes"]
        print(f"| `{r['quant'] or r['tag']}` | {x['perplexity']:.4f} | {x['check_perplexity']:.4f} "
              f"| {100 * (x['perplexity'] / x['check_perplexity'] - 1):+.4f} % "
              f"| {100 * x['accuracy']:.2f} % / {100 * x['check_accuracy']:.2f} % | {paths} | {e['file_bytes']:,} "
              f"| {ideal:,.0f} | {x['tok_s_batch']:,.0f} | {x['latency_ms_b1']:.3f} |")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--speed":
        return speed(sys.argv[2] if len(sys.argv) > 2 else "runs/deploy/speed.jsonl")
    path = sys.argv[1] if len(sys.argv) > 1 else "runs/deploy/deploy.jsonl"
    rows = [json.loads(l) for l in open(path) if l.strip()]
    if rows and "perplexity" in rows[0]["run"]:
        return lm(rows)
    print("| model | runtime accuracy | same prediction as lowbit | max logit diff | paths (Conv/Gemm) "
          "| file bytes | bits x params / 8 + meta + tables | over (alignment) | img/s batch 1 | img/s batch 64 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        e, x = r["export"], r["run"]
        paths = Counter(l["path"] for l in e["layers"] if l["op"] in ("Conv", "Gemm"))
        ptxt = ", ".join(f"{n}x {p}" if n > 1 else p for p, n in sorted(paths.items()))
        ideal = e["weight_bytes"] + e["meta_bytes"] + e["table_bytes"]
        differ = round((1 - x["agree"]) * x["samples"])
        print(f"| `{r['quant'] or r['tag']}` | {100 * x['accuracy']:.2f} % | {100 * x['agree']:.2f} % ({differ} differ) "
              f"| {x['max_logit_diff']:.2g} | {ptxt} | {e['file_bytes']:,} | {ideal:,.0f} "
              f"| {100 * (e['file_bytes'] - ideal) / ideal:.2f} % | {x['img_s_b1']:,.0f} | {x['img_s_batch']:,.0f} |")


if __name__ == "__main__":
    main()
