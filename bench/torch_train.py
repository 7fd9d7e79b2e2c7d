#!/usr/bin/python3
"""PyTorch reference for lowbit's training: fmnist-cnn on Fashion-MNIST with the same recipe.

DESIGN.md section 5 gives the figures lowbit is compared against; this script makes them.
The network is built from lowbit's own spec (models/fmnist-cnn.json, a plain chain), one
nn module per layer named like the lowbit layer, so the two sides cannot drift apart.
Recipe (lowbit's defaults): SGD momentum 0.9, weight decay 5e-4 on every parameter,
lr 0.05 with a per-step cosine schedule over all epochs' steps, batch 128 (the last,
partial batch of an epoch included, as lowbit does), no augmentation; a fresh random order
each epoch.

Tuning (DESIGN.md "Comparing fairly with PyTorch"): torch.set_num_threads(--threads) and
channels-last tensors happen here; the rest must be in the environment before the process
starts, because the dynamic loader, OpenMP and OpenBLAS read it at load time:
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4   (apt-get install libtcmalloc-minimal4)
    OMP_WAIT_POLICY=PASSIVE
    OPENBLAS_CORETYPE=SkylakeX      (the machine's Haswell setting holds OpenBLAS to AVX2)
When any of these is missing the script re-executes itself with them, so a plain
    /usr/bin/python3 bench/torch_train.py --steps 30
measures tuned PyTorch; --as-is runs in the environment given (to measure untuned PyTorch).
The settings in effect are printed and included in the --json output.

Use Debian's PyTorch (/usr/bin/python3, torch 1.13); the python3 first on the PATH may
be another interpreter without torch.

Modes:
    --steps N     throughput: --warmup steps (not timed), then N timed training steps; no
                  evaluation. img/s = N * batch / time of the N steps.
    (default)     --epochs E full epochs with test accuracy after each; img/s is the
                  training throughput over all epochs, excluding the first --warmup steps
                  and the evaluations.
--json prints one JSON object on standard output; progress goes to standard error.

--fakequant B: B-bit fake-quant QAT, the "4-bit fake-quant QAT" baseline of DESIGN.md
section 5, written as a tuned PyTorch user would with torch's fused fake-quantize ops (their
straight-through gradients are built in). The weights of every Conv/Linear except the first
and last (lowbit's default placement) are fake-quantized per tensor, symmetric, each forward:
scale = max|W| / (2^(B-1)-1) from the current weight (detached), zero point 0, codes
-(2^(B-1)-1)..2^(B-1)-1 (torch.fake_quantize_per_tensor_affine, tensor-qparams overload, so
there is no .item()). The output of every ReLU is fake-quantized to B bits unsigned on [0, 1]:
scale 1/(2^B-1), codes 0..2^B-1 (the op clips to [0, 1], gradient 0 outside). 0 = float.
"""
import argparse
import gzip
import json
import math
import os
import resource
import sys
import time
from collections import OrderedDict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
TUNED_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_CORETYPE": "SkylakeX"}
MEAN, STD = 0.286, 0.353  # DESIGN.md section 4


def parse_args():
    ap = argparse.ArgumentParser(description="Train fmnist-cnn in PyTorch with lowbit's recipe (DESIGN.md section 5).")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "fmnist-cnn.json"), help="lowbit spec (a chain of layers)")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist", help="directory with the IDX .gz files")
    ap.add_argument("--epochs", type=int, default=5, help="epochs to train (and the cosine schedule's length); default 5")
    ap.add_argument("--steps", type=int, default=0, help="throughput mode: time N steps after the warm-up, no evaluation")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first (default 10: lowbit's first report window)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--wd", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N samples only (quick checks)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fakequant", type=int, default=0, metavar="B",
                    help="B-bit fake-quant QAT (weights of inner Conv/Linear, ReLU outputs); 0 = float (default)")
    ap.add_argument("--channels-last", dest="channels_last", action=argparse.BooleanOptionalAction, default=True,
                    help="channels-last memory format (default on; --no-channels-last for NCHW)")
    ap.add_argument("--as-is", dest="as_is", action="store_true",
                    help="do not re-execute with tcmalloc, OMP_WAIT_POLICY=PASSIVE, OPENBLAS_CORETYPE=SkylakeX")
    ap.add_argument("--json", action="store_true", help="print one JSON object on standard output")
    a = ap.parse_args()
    if a.steps < 0 or a.warmup < 0 or a.epochs < 1 or a.batch < 1 or a.threads < 1:
        ap.error("--steps, --warmup must be >= 0; --epochs, --batch, --threads >= 1")
    if a.fakequant != 0 and not 2 <= a.fakequant <= 8:
        ap.error("--fakequant B: B must be 0 (off) or 2..8")
    return a


def ensure_tuned_env(args):
    """Re-execute with the tuned environment unless it is in place (or --as-is)."""
    if args.as_is or os.environ.get("LOWBIT_TORCH_REEXEC"):
        return
    env = dict(os.environ)
    preload = env.get("LD_PRELOAD", "")
    changed = False
    if "tcmalloc" not in preload:
        if os.path.exists(TCMALLOC):
            env["LD_PRELOAD"] = (TCMALLOC + " " + preload).strip()
            changed = True
        else:
            print(f"torch_train.py: {TCMALLOC} not found (apt-get install libtcmalloc-minimal4); "
                  "running with glibc malloc, which is slower", file=sys.stderr)
    for k, v in TUNED_ENV.items():
        if env.get(k) != v:
            env[k] = v
            changed = True
    if changed:
        env["LOWBIT_TORCH_REEXEC"] = "1"  # once only
        os.execve(sys.executable, [sys.executable] + sys.argv, env)


def settings():
    return {
        "LD_PRELOAD": os.environ.get("LD_PRELOAD", ""),
        "tcmalloc": "tcmalloc" in os.environ.get("LD_PRELOAD", ""),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", ""),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", ""),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE", ""),
    }


def read_idx(path):
    """IDX file (gzip): big-endian header, magic 0x0000 <dtype> <ndim>, then the dims."""
    import numpy as np
    with gzip.open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 4 or buf[0] or buf[1] or buf[2] != 0x08:
        raise SystemExit(f"{path}: not an unsigned-byte IDX file")
    nd = buf[3]
    dims = [int.from_bytes(buf[4 + 4 * i: 8 + 4 * i], "big") for i in range(nd)]
    off = 4 + 4 * nd
    n = math.prod(dims)
    if len(buf) != off + n:
        raise SystemExit(f"{path}: {len(buf) - off} data bytes, the header says {n}")
    return np.frombuffer(buf, dtype=np.uint8, offset=off).reshape(dims)


def load_split(d, prefix):
    import torch
    paths = [os.path.join(d, f"{prefix}-images-idx3-ubyte.gz"), os.path.join(d, f"{prefix}-labels-idx1-ubyte.gz")]
    for p in paths:
        if not os.path.exists(p):
            raise SystemExit(f"torch_train.py: {p} not found (apt-get install dataset-fashion-mnist, or give --data DIR)")
    x = torch.from_numpy(read_idx(paths[0]).astype("float32"))
    y = torch.from_numpy(read_idx(paths[1]).astype("int64"))
    x = ((x / 255.0 - MEAN) / STD).unsqueeze(1)  # N,1,28,28
    return x, y


def fakequant_modules(bits):
    """Conv2d / Linear / ReLU with B-bit fake quantization (see --fakequant in the docstring)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    wq = 2 ** (bits - 1) - 1          # symmetric weight codes -wq..wq
    aq = 2 ** bits - 1                # unsigned activation codes 0..aq on [0, 1]
    zero = torch.zeros((), dtype=torch.int32)

    def fq_weight(w):
        scale = (w.detach().abs().amax() / wq).clamp_min(1e-12)  # float32 0-d tensor
        return torch.fake_quantize_per_tensor_affine(w, scale, zero, -wq, wq)

    class FQConv2d(nn.Conv2d):
        def forward(self, x):
            return self._conv_forward(x, fq_weight(self.weight), self.bias)

    class FQLinear(nn.Linear):
        def forward(self, x):
            return F.linear(x, fq_weight(self.weight), self.bias)

    class FQReLU(nn.ReLU):
        def forward(self, x):
            return torch.fake_quantize_per_tensor_affine(F.relu(x, inplace=self.inplace), 1.0 / aq, 0, 0, aq)

    return FQConv2d, FQLinear, FQReLU


def build(spec_path, fakequant=0):
    """nn.Sequential from a lowbit chain spec; children are named like lowbit's layers.
    fakequant B > 0: the Conv/Gemm layers except the first and last get B-bit fake-quantized
    weights and every Relu a B-bit fake-quantized output (--fakequant)."""
    import torch.nn as nn
    with open(spec_path) as f:
        spec = json.load(f)
    Conv2d, Linear, ReLU = nn.Conv2d, nn.Linear, nn.ReLU
    wq_names = set()
    if fakequant:
        FQConv2d, FQLinear, ReLU = fakequant_modules(fakequant)
        mm = [L["name"] for L in spec["layers"] if L["op"] in ("Conv", "Gemm")]
        wq_names = set(mm[1:-1])
    c, h, w = (spec["input"] + [1, 1])[:3]
    flat = len(spec["input"]) == 1
    layers = OrderedDict()

    def pair(v):
        return tuple(v) if isinstance(v, list) else (v, v)

    for L in spec["layers"]:
        op, name = L["op"], L["name"]
        if "inputs" in L:
            raise SystemExit(f"{spec_path}: layer {name} has 'inputs'; torch_train.py handles chains only")
        if op == "Conv":
            k, s, p = pair(L["kernel"]), pair(L.get("stride", 1)), pair(L.get("pad", 0))
            conv = FQConv2d if name in wq_names else Conv2d
            layers[name] = conv(c, L["out"], k, s, p, groups=L.get("group", 1), bias=L.get("bias", True))
            c, h, w = L["out"], (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1
        elif op == "BatchNormalization":
            bn = nn.BatchNorm1d if flat else nn.BatchNorm2d  # flat: [N, C] after Flatten/Gemm
            layers[name] = bn(c, eps=L.get("eps", 1e-5), momentum=L.get("momentum", 0.1))
        elif op == "Relu":
            layers[name] = ReLU(inplace=True)
        elif op == "MaxPool":
            k = pair(L["kernel"])
            s, p = pair(L.get("stride", L["kernel"])), pair(L.get("pad", 0))
            layers[name] = nn.MaxPool2d(k, s, p)
            h, w = (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1
        elif op == "Flatten":
            layers[name] = nn.Flatten()  # NCHW order, as lowbit's Flatten
            c, h, w, flat = c * h * w, 1, 1, True
        elif op == "Gemm":
            if not flat:
                raise SystemExit(f"{spec_path}: Gemm layer {name} needs a Flatten before it")
            linear = FQLinear if name in wq_names else Linear
            layers[name] = linear(c, L["out"], bias=L.get("bias", True))
            c = L["out"]
        elif op == "Dropout":
            layers[name] = nn.Dropout(L.get("p", 0.5))
        else:
            raise SystemExit(f"{spec_path}: op {op} (layer {name}) is not supported by torch_train.py")
    return spec.get("name", "model"), nn.Sequential(layers)


def main():
    args = parse_args()
    ensure_tuned_env(args)
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    name, net = build(args.model, args.fakequant)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    xtr, ytr = load_split(args.data, "train")
    if args.limit > 0:
        xtr, ytr = xtr[:args.limit].clone(), ytr[:args.limit].clone()
    xte, yte = (None, None) if args.steps else load_split(args.data, "t10k")
    n = xtr.shape[0]
    spe = (n + args.batch - 1) // args.batch
    total = spe * args.epochs
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.wd)
    fq = [ln for ln, m in net.named_children() if type(m).__name__.startswith("FQ")]
    print(f"torch {torch.__version__}, {args.threads} threads, {'channels-last' if args.channels_last else 'NCHW'}, "
          + (f"{args.fakequant}-bit fake-quant QAT ({', '.join(fq)}), " if args.fakequant else "float, ")
          + f"settings {settings()}", file=sys.stderr)

    def lr_at(step):  # lowbit's LB_SCHED_COSINE at 0-based step
        return 0.5 * args.lr * (1 + math.cos(math.pi * step / max(total, 1)))

    def train_step(step, xb, yb):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        xb = xb.contiguous(memory_format=fmt)
        out = net(xb)
        loss = F.cross_entropy(out, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    def evaluate():
        net.eval()
        correct, loss = 0, 0.0
        with torch.no_grad():
            for i in range(0, xte.shape[0], 500):
                out = net(xte[i:i + 500].contiguous(memory_format=fmt))
                loss += F.cross_entropy(out, yte[i:i + 500], reduction="sum").item()
                correct += (out.argmax(1) == yte[i:i + 500]).sum().item()
        net.train()
        return correct / xte.shape[0], loss / xte.shape[0]

    net.train()
    gen = torch.Generator().manual_seed(args.seed)
    result = {"framework": "pytorch", "torch": torch.__version__, "model": name, "threads": args.threads,
              "channels_last": args.channels_last, "batch": args.batch, "fakequant": args.fakequant,
              "fakequant_layers": fq, "settings": settings()}
    if args.steps:
        # throughput: batches drawn from one random order, like the first steps of training
        perm = torch.randperm(n, generator=gen)
        need = (args.warmup + args.steps) * args.batch
        idx = perm.repeat((need + n - 1) // n)[:need].view(-1, args.batch)
        t0 = None
        for step in range(args.warmup + args.steps):
            if step == args.warmup:
                t0 = time.perf_counter()
            loss = train_step(step, xtr[idx[step]], ytr[idx[step]])
        loss = loss.item()  # also waits for the last step (CPU ops are synchronous anyway)
        dt = time.perf_counter() - t0
        ips = args.steps * args.batch / dt
        result.update({"steps": args.steps, "warmup": args.warmup, "seconds": round(dt, 3), "img_per_s": round(ips, 1),
                       "loss": round(loss, 6)})
        print(f"{args.steps} steps of batch {args.batch} in {dt:.2f} s: {ips:.1f} img/s (after {args.warmup} warm-up "
              f"steps), loss {loss:.4f}", file=sys.stderr)
    else:
        step, timed_imgs, timed_s, t_start = 0, 0, 0.0, time.perf_counter()
        for epoch in range(args.epochs):
            perm = torch.randperm(n, generator=gen)
            run_loss, run_n, t_ep = 0.0, 0, time.perf_counter()
            for k in range(spe):
                b = perm[k * args.batch:(k + 1) * args.batch]
                t = time.perf_counter()
                loss = train_step(step, xtr[b], ytr[b])
                lv = loss.item()
                if step >= args.warmup:
                    timed_s += time.perf_counter() - t
                    timed_imgs += b.numel()
                run_loss += lv * b.numel()
                run_n += b.numel()
                step += 1
            ep_s = time.perf_counter() - t_ep
            acc, tl = evaluate()
            print(f"epoch {epoch + 1}/{args.epochs}: train loss {run_loss / run_n:.4f}, test accuracy {100 * acc:.2f}%, "
                  f"test loss {tl:.4f}, {run_n / ep_s:.0f} img/s", file=sys.stderr)
        ips = timed_imgs / timed_s if timed_s > 0 else float("nan")
        result.update({"epochs": args.epochs, "steps": step, "warmup": args.warmup, "img_per_s": round(ips, 1),
                       "test_acc": round(acc, 4), "test_loss": round(tl, 6),
                       "seconds": round(time.perf_counter() - t_start, 1)})
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{name}: {result['img_per_s']} img/s" + (f", test accuracy {100 * result['test_acc']:.2f}%"
                                                        if "test_acc" in result else ""))


if __name__ == "__main__":
    main()
