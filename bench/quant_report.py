#!/usr/bin/python3
"""quant_report.py - the quantization comparison of docs/results.md, from bench/quant_sweep.sh's CSV.

    /usr/bin/python3 bench/quant_report.py [--csv runs/sweep/results.csv] [--results docs/results.md]
        [--img docs/img] [--lowbit build/lowbit] [--float runs/cnn10.safetensors] [--float-acc PCT]
        [--layer conv3.weight] [--epochs N] [--no-plots]

Needs numpy and matplotlib only (Debian: python3-numpy, python3-matplotlib). Relative default
paths are taken from the repository root, so the script can be run from anywhere; paths given
on the command line are relative to the current directory as usual.

1. Aggregates the CSV (header quant,seed,epochs,accuracy,loss,bops,bytes,float_bytes,macs,seconds)
   per quantization string: mean test accuracy, sample std over seeds, number of seeds, BOPs
   and packed bytes per image (from `lowbit report`), compression against the float model.
   Only rows of one fine-tune length are used: --epochs, default the length with most rows.
2. Writes a markdown table, and below it the bars of the method comparison with PASS/MISS,
   between the lines `<!-- quant-table:begin -->` and `<!-- quant-table:end -->` of --results
   (appending a section with the markers when they are absent), atomically, and prints the
   block on stdout. Two references: the CSV row "fp32" is the float model fine-tuned with the
   same schedule as the quantized runs (the table's delta column); the bars compare with the
   float checkpoint --float itself, whose accuracy is --float-acc or, by default, what
   `lowbit eval --ckpt FLOAT --json` measures.
3. Plots (PNG, dpi 120) in --img: quant_acc_vs_bops.png, quant_acc_vs_size.png and
   weight_levels.png (the float distribution of --layer against the levels of each method's
   hard weight quantizer, from `lowbit quantize`). --no-plots writes the tables only.
"""
import argparse
import csv
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
from collections import OrderedDict, defaultdict

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- quant-table:begin -->", "<!-- quant-table:end -->"
SECTION = "## Quantization methods on fmnist-cnn"

METHODS = ["uniform", "balanced", "uniq", "syq", "qn", "pot"]  # table and legend order
NAMES = {"fp32": "fp32", "uniform": "uniform", "balanced": "balanced", "uniq": "UNIQ",
         "syq": "SYQ", "qn": "QN", "pot": "PoT"}
COLORS = {"uniform": "#1f77b4", "balanced": "#d62728", "uniq": "#2ca02c", "syq": "#9467bd",
          "qn": "#ff7f0e", "pot": "#8c564b", "fp32": "black"}
MARKERS = {"uniform": "o", "balanced": "s", "uniq": "^", "syq": "D", "qn": "v", "pot": "P",
           "fp32": "*"}
OPT_SHORT = {"mode": "", "percentile": "pct=", "group": "group=", "per": "per="}

# the sweep's configuration behind a bar where it is not the plain METHOD:W/A
BAR_QUANT = {"qn:2/2": "qn:2/2,tmul=50,atmul=20,agrad=code", "uniq:2/2": "uniq:2/2,final=ste"}

# ablation rows: in the table, kept out of the plots (one marker per method and bit width)
PLOT_SKIP = {"uniq:2/2,train=ste", "uniq:2/2,stages=1", "uniq:2/2,final=none", "uniq:4/4,final=none",
             "qn:2/2,tmul=50,atmul=20"}

# (method, bits, options, title) for weight_levels.png
LEVEL_CONFIGS = [
    ("uniform", 2, [], "uniform 2 bits (DoReFa)"),
    ("uniform", 2, ["mode=maxabs"], "uniform 2 bits, mode=maxabs"),
    ("balanced", 2, [], "balanced 2 bits"),
    ("balanced", 2, ["percentile=mean"], "balanced 2 bits, percentile=mean"),
    ("uniq", 2, [], "UNIQ 2 bits"),
    ("syq", 2, [], "SYQ 2 bits (ternary)"),
    ("qn", 2, [], "QN 2 bits"),
    ("pot", 3, [], "PoT 3 bits"),
]


def die(msg):
    sys.exit(f"quant_report: {msg}")


def warn(msg):
    print(f"quant_report: {msg}", file=sys.stderr)


def shown(path):
    """A path as the docs name it: relative to the repository root when inside it."""
    p = os.path.abspath(path)
    return os.path.relpath(p, ROOT) if p == ROOT or p.startswith(ROOT + os.sep) else path


# ---------------------------------------------------------------- the data

def parse_quant(q):
    """'balanced:2/4,percentile=mean' -> ('balanced', 2, 4, ('percentile=mean',)); 'fp32' -> ('fp32', 32, 32, ())."""
    if q == "fp32":
        return "fp32", 32, 32, ()
    try:
        method, rest = q.split(":", 1)
        bits, *opts = rest.split(",")
        w, a = bits.split("/")
        return method, int(w), int(a), tuple(opts)
    except ValueError:
        return q, None, None, ()


def opt_label(opts):
    out = []
    for o in opts:
        k, _, v = o.partition("=")
        out.append(OPT_SHORT.get(k, k + "=") + v if v else o)
    return ",".join(out)


def sort_key(q):
    m, w, a, opts = parse_quant(q)
    if m == "fp32":
        return (0,)
    mi = METHODS.index(m) if m in METHODS else len(METHODS)
    return (1, mi, m, -(w or 0), -(a or 0), opts)


def read_csv(path, epochs):
    if not os.path.exists(path):
        die(f"{shown(path)} not found (run bench/quant_sweep.sh first, or give --csv)")
    rows = []
    with open(path, newline="") as f:
        rd = csv.DictReader(f)
        need = {"quant", "seed", "epochs", "accuracy", "bops", "bytes", "float_bytes"}
        if not rd.fieldnames or not need <= set(rd.fieldnames):
            die(f"{shown(path)}: header must have {sorted(need)}, has {rd.fieldnames}")
        for i, r in enumerate(rd, start=2):
            try:
                rows.append(dict(quant=r["quant"].strip(), seed=int(r["seed"]), epochs=int(r["epochs"]),
                                 accuracy=float(r["accuracy"]), bops=float(r["bops"]),
                                 bytes=float(r["bytes"]), float_bytes=float(r["float_bytes"])))
            except (TypeError, ValueError) as e:
                warn(f"{shown(path)} line {i}: skipped ({e})")
    if not rows:
        die(f"{shown(path)}: no runs")
    counts = defaultdict(int)
    for r in rows:
        counts[r["epochs"]] += 1
    if epochs is None:
        epochs = max(counts, key=lambda e: (counts[e], e))
    elif epochs not in counts:
        die(f"{shown(path)}: no runs with {epochs} epochs (have {sorted(counts)})")
    if len(counts) > 1:
        warn(f"using the {counts[epochs]} runs of {epochs} epochs; "
             f"{sum(counts.values()) - counts[epochs]} runs of other lengths left out (--epochs)")
    rows = [r for r in rows if r["epochs"] == epochs]
    # accuracy as the sweep writes it (lowbit's JSON: a fraction) or already in percent
    scale = 100.0 if max(r["accuracy"] for r in rows) <= 1.0 else 1.0
    for r in rows:
        r["accuracy"] *= scale
    return rows, epochs


def aggregate(rows):
    by = OrderedDict()
    for r in rows:
        by.setdefault(r["quant"], {})
        if r["seed"] in by[r["quant"]]:
            warn(f"{r['quant']} seed {r['seed']} appears twice; using the later row")
        by[r["quant"]][r["seed"]] = r
    out = OrderedDict()
    for q in sorted(by, key=sort_key):
        runs = list(by[q].values())
        acc = np.array([r["accuracy"] for r in runs])
        m, w, a, opts = parse_quant(q)
        last = runs[-1]
        for k in ("bops", "bytes", "float_bytes"):
            if any(r[k] != last[k] for r in runs):
                warn(f"{q}: {k} differs between seeds; using the last")
        out[q] = dict(quant=q, method=m, wbits=w, abits=a, opts=opts, n=len(runs),
                      seeds=sorted(by[q]), mean=float(acc.mean()),
                      std=float(acc.std(ddof=1)) if len(runs) > 1 else "",
                      bops=last["bops"], bytes=last["bytes"], float_bytes=last["float_bytes"],
                      compression=last["float_bytes"] / last["bytes"] if last["bytes"] else float("nan"))
    return out


# ---------------------------------------------------------------- the float checkpoint

def read_safetensors_header(path):
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            die(f"{shown(path)}: not a safetensors file")
        n = struct.unpack("<Q", raw)[0]
        header = json.loads(f.read(n))
    return n, header


def read_tensor(path, name):
    dtypes = {"F32": "<f4", "F16": "<f2", "F64": "<f8"}
    n, header = read_safetensors_header(path)
    if name not in header or name == "__metadata__":
        names = [k for k in header if k != "__metadata__" and k.endswith(".weight")]
        die(f"{shown(path)}: no tensor {name!r} (weights: {', '.join(names)})")
    e = header[name]
    if e["dtype"] not in dtypes:
        die(f"{shown(path)}: {name} has dtype {e['dtype']}, expected F32")
    b, en = e["data_offsets"]
    with open(path, "rb") as f:
        f.seek(8 + n + b)
        buf = f.read(en - b)
    if len(buf) != en - b:
        die(f"{shown(path)}: truncated")
    w = np.frombuffer(buf, dtype=dtypes[e["dtype"]]).astype(np.float32).reshape(e["shape"])
    return w, header.get("__metadata__", {})


def float_accuracy(args):
    """Test accuracy (%) of the float checkpoint and a label for it."""
    epochs = None
    if os.path.exists(args.float):
        try:
            epochs = read_safetensors_header(args.float)[1].get("__metadata__", {}).get("epoch")
        except (ValueError, OSError, SystemExit):
            pass
    if args.float_acc is not None:
        acc = args.float_acc * 100.0 if args.float_acc <= 1.0 else args.float_acc
    else:
        if not os.path.exists(args.float):
            die(f"float checkpoint {shown(args.float)} not found; give --float or --float-acc")
        cmd = [args.lowbit, "eval", "--ckpt", args.float, "--json"]
        warn("measuring the float checkpoint: " + " ".join(shown(c) for c in cmd))
        try:
            p = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as e:
            die(f"cannot run {shown(args.lowbit)}: {e}")
        if p.returncode != 0:
            die(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr.strip()}")
        res = None
        for line in reversed(p.stdout.splitlines()):
            if line.strip().startswith("{"):
                res = json.loads(line)
                break
        if not res or "accuracy" not in res:
            die(f"no JSON with 'accuracy' from {' '.join(cmd)}: {p.stdout!r}")
        acc = float(res["accuracy"])
        acc = acc * 100.0 if acc <= 1.0 else acc
    label = f"float checkpoint ({epochs} epochs)" if epochs else "float checkpoint"
    return acc, label


# ---------------------------------------------------------------- markdown

def fmt_acc(s):
    if s is None:
        return "no run"
    if s["std"] == "":
        return f"{s['mean']:.2f} (n=1)"
    return f"{s['mean']:.2f} ± {s['std']:.2f} (n={s['n']})"


def fmt_gbops(b):
    g = b / 1e9
    return f"{g:.3g}" if g < 100 else f"{g:,.0f}"


def fmt_kb(b):
    kb = b / 1000.0
    return f"{kb:,.0f}" if kb >= 1000 else f"{kb:.1f}"


def signed(x):
    return f"{x:+.2f}".replace("-", "−")


def results_table(agg):
    ref = agg.get("fp32")
    lines = ["| configuration | W/A bits | test accuracy % (mean ± std, n) | Δ vs fp32 fine-tune (pt) "
             "| GBOPs/image | size KB | compression |",
             "|---|---|---|---|---|---|---|"]
    for q, s in agg.items():
        wa = f"{s['wbits']}/{s['abits']}" if s["wbits"] else "?"
        if q == "fp32":
            delta = "(reference)"
        else:
            delta = signed(s["mean"] - ref["mean"]) if ref else "—"
        lines.append(f"| `{q}` | {wa} | {fmt_acc(s)} | {delta} | {fmt_gbops(s['bops'])} | "
                     f"{fmt_kb(s['bytes'])} | {s['compression']:.1f}× |")
    return lines


def bars_table(agg, fl):
    lines = ["| bar | configuration | test accuracy % | needed % | margin (pt) | result |",
             "|---|---|---|---|---|---|"]
    summary = []

    def floor_row(bar, q, drop):
        q = BAR_QUANT.get(q, q)
        s = agg.get(q)
        need = fl - drop
        if s is None:
            res, margin = "NO DATA", "—"
        else:
            res = "PASS" if s["mean"] >= need else "MISS"
            margin = signed(s["mean"] - need)
        summary.append(res)
        lines.append(f"| {bar} | `{q}` | {fmt_acc(s)} | ≥ {need:.2f} | {margin} | **{res}** |")

    for m in ["uniform", "balanced", "uniq", "qn", "pot"]:
        floor_row(f"every method at W4/A4 ≥ float − 0.5: {NAMES[m]}", f"{m}:4/4", 0.5)
    for m in ["balanced", "uniq", "qn"]:
        floor_row(f"balanced, UNIQ, QN at W2/A2 ≥ float − 2.0: {NAMES[m]}", f"{m}:2/2", 2.0)
    floor_row("SYQ ternary ≥ float − 1.5", "syq:2/4", 1.5)
    floor_row("SYQ binary ≥ float − 3.0", "syq:1/4", 3.0)
    floor_row("PoT 4 bits ≥ float − 0.5", "pot:4/4", 0.5)
    for wa in ["2/4", "2/2"]:
        b, u = agg.get(f"balanced:{wa}"), agg.get(f"uniform:{wa}")
        bar = f"balanced better than uniform at W{wa.replace('/', '/A')}"
        if b is None or u is None:
            res, margin, note = "NO DATA", "—", ""
        else:
            d = b["mean"] - u["mean"]
            res = "PASS" if d > 0 else "MISS"
            margin = signed(d)
            spread = math.sqrt((b["std"] or 0.0) ** 2 + (u["std"] or 0.0) ** 2)
            if b["n"] > 1 and u["n"] > 1:
                note = " (beyond the seed spread)" if abs(d) > spread else " (within the seed spread)"
            else:
                note = " (one seed: no spread)"
            margin += note
        summary.append(res)
        lines.append(f"| {bar} | `balanced:{wa}` vs `uniform:{wa}` | {fmt_acc(b)} | > {fmt_acc(u)} "
                     f"| {margin} | **{res}** |")
    return lines, summary


def markdown_block(agg, rows, epochs, args, fl, fl_label, plots):
    n_runs = len(rows)
    seeds = sorted({r["seed"] for r in rows})
    out = [f"<!-- generated by bench/quant_report.py from {shown(args.csv)}; edits between the markers "
           "are overwritten -->", ""]
    out.append(f"Every configuration fine-tuned for {epochs} epoch{'s' * (epochs != 1)} from "
               f"`{shown(args.float)}` with the same schedule; {n_runs} run{'s' * (n_runs != 1)}, "
               f"seed{'s' * (len(seeds) != 1)} {', '.join(map(str, seeds))}. `fp32` is the float "
               "model fine-tuned the same way, the reference of the Δ column. BOPs and packed size per "
               "image from `lowbit report` (first and last layers stay float); KB = 1000 bytes; "
               "compression = float bytes / packed bytes; std is the sample std over seeds.")
    out.append("")
    out += results_table(agg)
    out.append("")
    bl, summary = bars_table(agg, fl)
    npass = summary.count("PASS")
    out.append(f"The bars, against the {fl_label} `{shown(args.float)}` at **{fl:.2f}%** "
               f"({npass} of {len(summary)} pass):")
    out.append("")
    out += bl
    if plots:
        rel = os.path.relpath(os.path.abspath(args.img), os.path.dirname(os.path.abspath(args.results)))
        out.append("")
        out.append(f"![accuracy against BOPs]({rel}/quant_acc_vs_bops.png)")
        out.append(f"![accuracy against size]({rel}/quant_acc_vs_size.png)")
        out.append("")
        out.append(f"![weight levels]({rel}/weight_levels.png)")
        out.append("")
        out.append(f"`{args.layer}` of the float checkpoint against the levels of each method's hard "
                   "weight quantizer (`lowbit quantize`), with the fraction of weights at each level.")
    return "\n".join(out)


def atomic_write(path, data, binary=False):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            f.write(data)
        try:
            mode = os.stat(path).st_mode & 0o777
        except FileNotFoundError:
            um = os.umask(0)
            os.umask(um)
            mode = 0o666 & ~um
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def update_results(path, block):
    text = open(path).read() if os.path.exists(path) else "# Results\n"
    lines = text.split("\n")
    b = [i for i, l in enumerate(lines) if l.strip() == BEGIN]
    e = [i for i, l in enumerate(lines) if l.strip() == END]
    if len(b) > 1 or len(e) > 1 or bool(b) != bool(e) or (b and e[0] < b[0]):
        die(f"{shown(path)}: expected one '{BEGIN}' line followed by one '{END}' line")
    if b:
        lines = lines[:b[0] + 1] + block.split("\n") + lines[e[0]:]
        text = "\n".join(lines)
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join([
            SECTION, "", "```sh", "bench/quant_sweep.sh", "/usr/bin/python3 bench/quant_report.py", "```",
            BEGIN, block, END]) + "\n"
    atomic_write(path, text)


# ---------------------------------------------------------------- plots

def save_fig(fig, path):
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    atomic_write(path, buf.getvalue(), binary=True)
    warn(f"wrote {shown(path)}")


def declutter(ax, anns, iters=100):
    """Push overlapping point labels apart vertically, and off the markers (offsets in points)."""
    from matplotlib.text import Text
    fig = ax.figure
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    px2pt = 72.0 / fig.dpi
    half = 7.0 / px2pt  # a marker's half size in pixels

    def text_box(a):  # the text alone: Annotation's own extent includes the leader line
        return Text.get_window_extent(a, r)

    marks = [ax.transData.transform(a.xy) for a in anns]
    for _ in range(iters):
        boxes = [text_box(a) for a in anns]
        moved = False
        for i, a in enumerate(anns):
            b = boxes[i]
            for mx, my in marks:
                if b.x1 <= mx - half or mx + half <= b.x0 or b.y1 <= my - half or my + half <= b.y0:
                    continue
                cy = (b.y0 + b.y1) / 2
                d = (my + half - b.y0 + 0.5) if cy >= my else -(b.y1 - (my - half) + 0.5)
                x, y = a.xyann
                a.xyann = (x, y + d * px2pt)
                b = boxes[i] = text_box(a)
                moved = True
        order = sorted(range(len(anns)), key=lambda i: boxes[i].y0)
        for ii in range(len(order)):
            for jj in range(ii + 1, len(order)):
                i, j = order[ii], order[jj]
                bi, bj = boxes[i], boxes[j]
                if bi.x1 <= bj.x0 or bj.x1 <= bi.x0 or bi.y1 <= bj.y0 or bj.y1 <= bi.y0:
                    continue
                push = (min(bi.y1, bj.y1) - max(bi.y0, bj.y0)) / 2 + 0.5
                xi, yi = anns[i].xyann
                xj, yj = anns[j].xyann
                anns[i].xyann = (xi, yi - push * px2pt)
                anns[j].xyann = (xj, yj + push * px2pt)
                boxes[i] = text_box(anns[i])
                boxes[j] = text_box(anns[j])
                moved = True
        if not moved:
            break


def scatter_plot(agg, fl, fl_label, xkey, xlabel, title, path):
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig, ax = plt.subplots(figsize=(9.5, 6.2))
    pts = []
    for q, s in agg.items():
        if q in PLOT_SKIP:
            continue
        x = s["bops"] / 1e9 if xkey == "bops" else s["bytes"] / 1000.0
        pts.append((q, s, x))
    # configurations with equal x (same bit widths) are spread sideways, one slot per method
    # (within 3%: packed sizes differ by a few bytes of scales between methods)
    groups, last = [], None
    for q, s, x in sorted(pts, key=lambda p: p[2]):
        if last is None or x > last * 1.03:
            groups.append([])
        groups[-1].append(q)
        last = x
    dodge = {}
    for qs in groups:
        ms = sorted({agg[q]["method"] for q in qs}, key=lambda m: sort_key(f"{m}:1/1"))
        for q in qs:
            k = ms.index(agg[q]["method"])
            dodge[q] = 10 ** (0.028 * (k - (len(ms) - 1) / 2))
    anns = []
    for q, s, x in pts:
        m = s["method"]
        c, mk = COLORS.get(m, "grey"), MARKERS.get(m, "X")
        xd = x * dodge[q]
        hollow = bool(s["opts"])
        if s["std"] != "":
            ax.errorbar(xd, s["mean"], yerr=s["std"], fmt="none", ecolor=c, elinewidth=1.2, capsize=3, zorder=2)
        ax.plot(xd, s["mean"], marker=mk, ms=13 if m == "fp32" else 8, color=c, ls="none",
                mfc="white" if hollow else c, mew=1.6, zorder=3)
        lab = "fp32 fine-tune" if m == "fp32" else f"{s['wbits']}/{s['abits']}"
        if s["opts"]:
            lab += " " + opt_label(s["opts"])
        anns.append(ax.annotate(lab, (xd, s["mean"]), xytext=(7, -3), textcoords="offset points",
                                fontsize=8.5, color=c, zorder=4,
                                arrowprops=dict(arrowstyle="-", color=c, lw=0.5, alpha=0.6,
                                                shrinkA=0, shrinkB=4)))
    ax.axhline(fl, ls="--", color="0.3", lw=1.2, zorder=1)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    xs = [x for _, _, x in pts]
    ax.set_xlim(min(xs) / 1.6, max(xs) * 2.2)
    ys = [s["mean"] - (s["std"] or 0) for _, s, _ in pts] + [fl]
    ye = [s["mean"] + (s["std"] or 0) for _, s, _ in pts] + [fl]
    span = max(max(ye) - min(ys), 1.0)
    ax.set_ylim(min(ys) - 0.08 * span, max(ye) + 0.12 * span)
    ax.text(ax.get_xlim()[1] / 1.04, fl, f"{fl_label}: {fl:.2f}%", ha="right", va="bottom",
            fontsize=8.5, color="0.3")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="both", alpha=0.25)
    present = [m for m in ["fp32"] + METHODS if any(s["method"] == m for s in agg.values())]
    present += sorted({s["method"] for s in agg.values()} - set(present))
    handles = [Line2D([], [], marker=MARKERS.get(m, "X"), color=COLORS.get(m, "grey"), ls="none",
                      ms=9 if m == "fp32" else 7, label=("fp32 fine-tune" if m == "fp32" else NAMES.get(m, m)))
               for m in present]
    if any(s["opts"] for s in agg.values()):
        handles.append(Line2D([], [], marker="o", color="0.3", mfc="white", ls="none", ms=7,
                              label="with an option"))
    handles.append(Line2D([], [], ls="--", color="0.3", label=fl_label))
    ax.legend(handles=handles, fontsize=8.5, loc="best", framealpha=0.9)
    fig.text(0.01, 0.005, "labels: W/A bits; error bars: std over seeds; points of equal x are spread "
             "slightly sideways to stay visible", fontsize=7.5, color="0.35")
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    declutter(ax, anns)
    save_fig(fig, path)
    plt.close(fig)


def run_quantize(lowbit, wpath, tmp, method, bits, opts):
    tag = f"{method}{bits}" + "".join("_" + o.replace("=", "-") for o in opts)
    qpath, cpath = os.path.join(tmp, tag + ".q.npy"), os.path.join(tmp, tag + ".c.npy")
    cmd = [lowbit, "quantize", "--method", method, "--bits", str(bits)]
    for o in opts:
        cmd += ["--opt", o]
    cmd += ["--in", wpath, "--out", qpath, "--codes", cpath]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        die(f"cannot run {shown(lowbit)}: {e}")
    if p.returncode != 0:
        die(f"{' '.join(shown(c) for c in cmd)} failed ({p.returncode}):\n{p.stderr.strip()}")
    return np.load(qpath), np.load(cpath)


def levels_plot(args, path):
    import matplotlib.pyplot as plt

    if not os.path.exists(args.float):
        die(f"float checkpoint {shown(args.float)} not found (give --float, or --no-plots)")
    w, _ = read_tensor(args.float, args.layer)
    wf = w.ravel()
    mx = float(np.abs(wf).max())
    with tempfile.TemporaryDirectory(prefix="quant_report.") as tmp:
        wpath = os.path.join(tmp, "w.npy")
        np.save(wpath, w.astype(np.float32))
        results = [(cfg, *run_quantize(args.lowbit, wpath, tmp, *cfg[:3])) for cfg in LEVEL_CONFIGS]

    fig = plt.figure(figsize=(13, 15))
    gs = fig.add_gridspec(1 + (len(results) + 1) // 2, 2, height_ratios=[1.15] + [1] * ((len(results) + 1) // 2),
                          hspace=0.55, wspace=0.12)
    ax0 = fig.add_subplot(gs[0, :])
    bins = np.linspace(-mx * 1.02, mx * 1.02, 241)
    ax0.hist(wf, bins=bins, density=True, color="0.45")
    ax0.axvline(mx, color="0.2", ls=":", lw=1)
    ax0.axvline(-mx, color="0.2", ls=":", lw=1)
    ax0.text(mx, ax0.get_ylim()[1] * 0.9, "max|w| ", fontsize=9, va="top", ha="right")
    ax0.text(-mx, ax0.get_ylim()[1] * 0.9, " −max|w|", fontsize=9, va="top", ha="left")
    ax0.set_title(f"float {args.layer} of {shown(args.float)}: shape {list(w.shape)}, {wf.size} weights, "
                  f"std {wf.std():.4f}, max|w| {mx:.4f}", fontsize=11)
    ax0.set_ylabel("density")
    xl = (-mx * 1.08, mx * 1.08)
    ax0.set_xlim(xl)
    ax0.grid(True, alpha=0.25)

    axes = []
    for i, ((method, bits, opts, title), q, codes) in enumerate(results):
        ax = fig.add_subplot(gs[1 + i // 2, i % 2], sharex=ax0, sharey=axes[0] if axes else None)
        axes.append(ax)
        c = COLORS.get(method, "C0")
        vals = q.ravel().astype(np.float64)
        cds = codes.ravel()
        dorefa = method == "uniform" and not any(o in ("mode=maxabs",) for o in opts)
        if dorefa:
            vals = vals * mx
            title += f": levels in [−1, 1] drawn × max|w| = {mx:.3f}"
        # background: the float distribution (own scale, no ticks)
        bg = ax.twinx()
        bg.hist(wf, bins=bins, density=True, color="0.85")
        bg.set_yticks([])
        ax.set_zorder(bg.get_zorder() + 1)
        ax.patch.set_visible(False)
        multi = 0
        ucodes = np.unique(cds)
        stems = sorted(((vals[cds == code].mean(), code) for code in ucodes))
        prev_x, prev_y = -np.inf, -np.inf
        for mean, code in stems:
            sel = cds == code
            frac = sel.mean()
            v = vals[sel]
            lo, hi = v.min(), v.max()
            ty = frac + 0.03
            if mean - prev_x < 0.09 * (xl[1] - xl[0]) and abs(ty - prev_y) < 0.08:
                ty = prev_y + 0.1  # stagger the labels of close levels
            prev_x, prev_y = mean, ty
            distinct = np.unique(v)
            if len(distinct) > 1:
                multi = max(multi, len(distinct))
                ax.fill_between([lo, hi], 0, frac, color=c, alpha=0.3, lw=0)
                ax.vlines(distinct, 0, frac, color=c, lw=0.6, alpha=0.6)
            ax.vlines(mean, 0, frac, color=c, lw=2.5)
            ax.plot([mean], [frac], marker="o", ms=4, color=c)
            ax.text(mean, ty, f"{100 * frac:.1f}%", ha="center", va="bottom", fontsize=8.5)
        sub = f"{len(ucodes)} codes"
        if multi:
            sub += f"; up to {multi} values per code (per-group scales, span shaded)"
        ax.set_title(f"{title}\n{sub}", fontsize=9.5)
        ax.set_ylim(0, 1.18)
        ax.set_xlim(xl)
        ax.grid(True, axis="x", alpha=0.25)
        if i % 2 == 0:
            ax.set_ylabel("fraction of weights")
        else:
            ax.tick_params(labelleft=False)
        if i < len(results) - 2:
            ax.tick_params(labelbottom=False)
        else:
            ax.set_xlabel("weight value")
    fig.suptitle("Weight levels of the hard quantizers (lowbit quantize) against the float distribution",
                 fontsize=13, y=0.995)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.95, bottom=0.04)
    save_fig(fig, path)
    plt.close(fig)


# ---------------------------------------------------------------- main

def main():
    defaults = dict(csv="runs/sweep/results.csv", results="docs/results.md", img="docs/img",
                    lowbit="build/lowbit", float="runs/cnn10.safetensors")
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", default=defaults["csv"], help="the sweep's results (default %(default)s)")
    ap.add_argument("--results", default=defaults["results"], help="markdown file to update (default %(default)s)")
    ap.add_argument("--img", default=defaults["img"], help="folder for the PNGs (default %(default)s)")
    ap.add_argument("--lowbit", default=defaults["lowbit"], help="the lowbit binary (default %(default)s)")
    ap.add_argument("--float", default=defaults["float"], help="the float checkpoint (default %(default)s)")
    ap.add_argument("--float-acc", type=float, default=None,
                    help="its test accuracy, %% or fraction (default: lowbit eval --ckpt FLOAT --json)")
    ap.add_argument("--layer", default="conv3.weight", help="tensor for weight_levels.png (default %(default)s)")
    ap.add_argument("--epochs", type=int, default=None,
                    help="use the runs of this fine-tune length (default: the length with most runs)")
    ap.add_argument("--no-plots", action="store_true", help="write the tables only")
    args = ap.parse_args()
    for k, d in defaults.items():  # defaults are relative to the repository root
        if getattr(args, k) == d:
            setattr(args, k, os.path.join(ROOT, d))

    rows, epochs = read_csv(args.csv, args.epochs)
    agg = aggregate(rows)
    fl, fl_label = float_accuracy(args)

    pngs = ["quant_acc_vs_bops.png", "quant_acc_vs_size.png", "weight_levels.png"]
    links = not args.no_plots or all(os.path.exists(os.path.join(args.img, f)) for f in pngs)
    block = markdown_block(agg, rows, epochs, args, fl, fl_label, plots=links)
    update_results(args.results, block)
    print(block)
    warn(f"wrote {shown(args.results)}")

    if args.no_plots:
        return
    import matplotlib
    matplotlib.use("Agg")
    os.makedirs(args.img, exist_ok=True)
    scatter_plot(agg, fl, fl_label, "bops", "GBOPs per image (log scale)",
                 f"fmnist-cnn: test accuracy against BOPs, {epochs}-epoch fine-tunes",
                 os.path.join(args.img, "quant_acc_vs_bops.png"))
    scatter_plot(agg, fl, fl_label, "bytes", "model size, KB (packed weights, log scale)",
                 f"fmnist-cnn: test accuracy against model size, {epochs}-epoch fine-tunes",
                 os.path.join(args.img, "quant_acc_vs_size.png"))
    levels_plot(args, os.path.join(args.img, "weight_levels.png"))


if __name__ == "__main__":
    main()
