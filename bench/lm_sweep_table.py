#!/usr/bin/python3
"""The quantized language-model table of docs/results.md from bench/lm_quant_sweep.sh's CSV.

    /usr/bin/python3 bench/lm_sweep_table.py [runs/lm_sweep/results.csv]

One row per configuration: test perplexity as mean +- sample standard deviation over the
seeds run (and each seed's figure), against the float model of the same form (fp32 rows,
mean over its seeds), BOPs per token and the packed bytes `lowbit report` gives. Then, for
each bit width where both were run, balanced against uniform over the seeds both have."""
import csv
import statistics
import sys
from collections import OrderedDict


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "runs/lm_sweep/results.csv"
    rows = list(csv.DictReader(open(path)))
    by = OrderedDict()
    for r in rows:
        by.setdefault(r["quant"], {})[int(r["seed"])] = r
    fp = [float(r["perplexity"]) for r in by.get("fp32", {}).values()]
    base = statistics.mean(fp) if fp else None
    print("| configuration | seeds | test perplexity, mean +- std | per seed | vs float (same form) | BOPs per token | bytes |")
    print("|---|---|---|---|---|---|---|")
    for q, seeds in by.items():
        p = [float(seeds[s]["perplexity"]) for s in sorted(seeds)]
        sd = f" +- {statistics.stdev(p):.2f}" if len(p) > 1 else ""
        rel = f"{100 * (statistics.mean(p) / base - 1):+.1f} %" if base else ""
        any_row = next(iter(seeds.values()))
        print(f"| `{q}` | {', '.join(str(s) for s in sorted(seeds))} | {statistics.mean(p):.2f}{sd} "
              f"| {' / '.join(f'{x:.2f}' for x in p)} | {rel} | {int(any_row['bops']):,} | {int(any_row['bytes']):,} |")
    print()
    print("| bits | seeds both ran | balanced mean | uniform mean | balanced below uniform on every seed |")
    print("|---|---|---|---|---|")
    for b in ("2/2", "3/3", "4/4"):
        bal, uni = by.get(f"balanced:{b}", {}), by.get(f"uniform:{b}", {})
        common = sorted(set(bal) & set(uni))
        if not common:
            continue
        pb = [float(bal[s]["perplexity"]) for s in common]
        pu = [float(uni[s]["perplexity"]) for s in common]
        every = all(x < y for x, y in zip(pb, pu))
        print(f"| W{b[0]}/A{b[2]} | {', '.join(map(str, common))} | {statistics.mean(pb):.2f} | {statistics.mean(pu):.2f} "
              f"| {'yes' if every else 'no'} |")


if __name__ == "__main__":
    main()
