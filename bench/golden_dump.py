#!/usr/bin/python3
"""Make tests/data/golden_tiny.safetensors: PyTorch's forward, backward and two SGD steps
of the network in tests/data/golden_tiny.json, which tests/test_golden.c replays in lowbit.

Run with Debian's PyTorch (DESIGN.md section 5; the python3 first on the PATH may lack it):
    /usr/bin/python3 bench/golden_dump.py            # writes the file, prints a summary
    /usr/bin/python3 bench/golden_dump.py --check    # only prints the float32 noise floor
Made with torch 1.13 and numpy 1.24. The dump is committed; regenerate it only when the
spec or the recipe below changes, and change tests/test_golden.c to match.

The PyTorch model is built from the lowbit spec itself (one plain nn module per layer,
set as an attribute named like the lowbit layer), so state_dict keys are lowbit's tensor
names (conv1.weight, bn1.running_var) and the two cannot drift apart. lowbit's Flatten
yields NCHW order, which is exactly torch.flatten, so no permutation is involved.

Contents (float32 unless noted):
    input [4,2,8,8] NCHW, labels [4] I32
    <tensor>          initial value of every model tensor (parameters and BN running stats)
    logits [4,10], loss [1]          first forward in training mode, mean cross-entropy
    grad.<param>                      gradients of the first backward
    after1.<tensor>                   after the first SGD step (running stats: after the first forward)
    logits2, loss2, grad2.<param>     second forward/backward (same batch, updated weights)
    after2.<tensor>                   after the second SGD step
SGD: lr 0.1, momentum 0.9, weight decay 5e-4 on every parameter (torch.optim.SGD's rule,
which lowbit's optimizer follows); BN momentum 0.1, eps 1e-5.

The safetensors file is written by hand (8-byte little-endian header length, JSON header
with dtype/shape/data_offsets and string-valued __metadata__, then the raw data) so that
the script needs nothing beyond torch and numpy.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(ROOT, "tests", "data", "golden_tiny.json")
OUT = os.path.join(ROOT, "tests", "data", "golden_tiny.safetensors")
SEED, BATCH, LR, MOMENTUM, WD = 1234, 4, 0.1, 0.9, 5e-4


def pair(v):
    return tuple(v) if isinstance(v, list) else (v, v)


class SpecNet(nn.Module):
    """The ops of a lowbit spec that the golden network uses, as plain PyTorch modules."""

    def __init__(self, spec):
        super().__init__()
        self.order = []  # (name, op, input names)
        shapes = {"input": tuple(spec["input"])}
        prev = "input"
        for layer in spec["layers"]:
            name, op = layer["name"], layer["op"]
            ins = layer.get("inputs", [prev])
            c, h, w = shapes[ins[0]]
            if op == "Conv":
                k, s, p = pair(layer["kernel"]), pair(layer.get("stride", 1)), pair(layer.get("pad", 0))
                mod = nn.Conv2d(c, layer["out"], k, s, p, groups=layer.get("group", 1), bias=layer.get("bias", True))
                shape = (layer["out"], (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1)
            elif op == "BatchNormalization":
                mod = nn.BatchNorm2d(c, eps=layer.get("eps", 1e-5), momentum=layer.get("momentum", 0.1))
                shape = (c, h, w)
            elif op == "Relu":
                mod, shape = nn.ReLU(), (c, h, w)
            elif op in ("MaxPool", "AveragePool"):
                k = pair(layer["kernel"])
                s, p = pair(layer.get("stride", layer["kernel"])), pair(layer.get("pad", 0))
                if op == "MaxPool":
                    mod = nn.MaxPool2d(k, s, p)
                else:
                    mod = nn.AvgPool2d(k, s, p, count_include_pad=layer.get("count_include_pad", False))
                shape = (c, (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1)
            elif op == "GlobalAveragePool":
                mod, shape = nn.AdaptiveAvgPool2d(1), (c, 1, 1)
            elif op == "Flatten":
                mod, shape = nn.Flatten(), (c * h * w, 1, 1)
            elif op == "Gemm":
                mod = nn.Linear(c, layer["out"], bias=layer.get("bias", True))
                shape = (layer["out"], 1, 1)
            elif op == "Add":
                mod, shape = None, (c, h, w)
            else:
                raise SystemExit(f"{SPEC}: op {op} is not supported by golden_dump.py")
            if mod is not None:
                setattr(self, name, mod)
            self.order.append((name, op, ins))
            shapes[name] = shape
            prev = name

    def forward(self, x):
        vals = {"input": x}
        for name, op, ins in self.order:
            if op == "Add":
                y = vals[ins[0]] + vals[ins[1]]
            else:
                y = getattr(self, name)(vals[ins[0]])
            vals[name] = y
        return y


def make(dtype):
    """Model, input and labels from SEED; the float64 copy has the same values."""
    with open(SPEC) as f:
        spec = json.load(f)
    torch.manual_seed(SEED)
    net = SpecNet(spec)
    # BN affine parameters away from 1 and 0, so their gradients and the scaling are generic;
    # running stats away from 0 and 1, so the momentum update is visible.
    for mod in net.modules():
        if isinstance(mod, nn.BatchNorm2d):
            with torch.no_grad():
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.8, 1.2)
    x = torch.randn(BATCH, *spec["input"])
    y = torch.randint(0, 10, (BATCH,))
    return net.to(dtype), x.to(dtype), y


def tensors_of(net):
    """Model tensors by lowbit name (num_batches_tracked is PyTorch-only bookkeeping)."""
    return {k: v.detach().clone() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}


def run(dtype):
    net, x, y = make(dtype)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
    out = {"input": x, "labels": y.to(torch.int32)}
    out.update(tensors_of(net))
    for step in (1, 2):
        opt.zero_grad()
        logits = net(x)
        loss = F.cross_entropy(logits, y)  # mean over the batch, like lowbit's training loss
        loss.backward()
        sfx = "" if step == 1 else "2"
        out["logits" + sfx] = logits.detach().clone()
        out["loss" + sfx] = loss.detach().reshape(1).clone()
        for k, p in net.named_parameters():
            out[f"grad{sfx}.{k}"] = p.grad.detach().clone()
        opt.step()
        for k, v in tensors_of(net).items():
            out[f"after{step}.{k}"] = v
    return out


def write_safetensors(path, tensors, metadata):
    header, chunks, off = {}, [], 0
    for name, t in tensors.items():
        a = t.numpy()
        dt = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32"}[a.dtype]
        raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # pad so the data section starts 8-byte aligned, as the reference writer does
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="print the float32-vs-float64 deviation only; write nothing")
    args = ap.parse_args()
    # One thread and deterministic kernels: the dump is reproducible byte for byte.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    ref32, ref64 = run(torch.float32), run(torch.float64)

    # How far float32 PyTorch itself is from float64: the scale of rounding differences a
    # correct float32 implementation with another summation order may show. The golden
    # test's tolerances must sit well above this and far below any real bug.
    print(f"{'tensor':28s} {'max|v|':>10s} {'max|f32-f64|':>13s} {'max rel':>10s}")
    for k, v in ref32.items():
        if k == "labels":
            continue
        d = (v.double() - ref64[k]).abs()
        rel = (d / (ref64[k].abs() + 1e-6)).max().item()
        print(f"{k:28s} {v.abs().max().item():10.4g} {d.max().item():13.3g} {rel:10.3g}")
    if args.check:
        return
    meta = {
        "generator": "bench/golden_dump.py",
        "spec": "tests/data/golden_tiny.json",
        "torch": torch.__version__,
        "numpy": np.__version__,
        "seed": str(SEED),
        "batch": str(BATCH),
        "sgd": json.dumps({"lr": LR, "momentum": MOMENTUM, "weight_decay": WD, "dampening": 0, "nesterov": False}),
        "bn": "training mode, momentum 0.1, eps 1e-5, unbiased running_var",
    }
    write_safetensors(OUT, ref32, meta)
    print(f"{OUT}: {os.path.getsize(OUT)} bytes, {len(ref32)} tensors, loss {ref32['loss'].item():.6f} then "
          f"{ref32['loss2'].item():.6f}", file=sys.stderr)


if __name__ == "__main__":
    main()
