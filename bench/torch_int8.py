#!/usr/bin/python3
"""PyTorch int8 inference of fmnist-cnn: the baseline of the runtime's end-to-end figures.

DESIGN.md section 5 quotes "int8 (oneDNN) 1,895 img/s at batch 1" on this machine. This
script measures it in the run that measures lowbit's runtime (bench/deploy_speed.sh): the
float checkpoint (lowbit's safetensors, default runs/cnn10.safetensors) is loaded into the
network torch_train.py builds from models/fmnist-cnn.json, Conv-BN-ReLU and Linear-ReLU are
fused, and torch.ao's eager post-training static quantization (the 'onednn' engine,
per-channel int8 weights, histogram observers, 2,048 training images to calibrate) makes the
int8 model. Reported per thread count: test accuracy, batch-1 latency over --samples
images one at a time, and batch-64 throughput over the test set. The tuned environment of
torch_train.py (tcmalloc, OMP_WAIT_POLICY=PASSIVE) is applied the same way.
    /usr/bin/python3 bench/torch_int8.py [--ckpt runs/cnn10.safetensors] [--threads 1 2] [--json]
"""
import argparse
import json
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_train  # noqa: E402


def load_safetensors(path):
    import numpy as np
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        if v["dtype"] != "F32":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype="<f4").reshape(v["shape"]).copy()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", default="runs/cnn10.safetensors")
    ap.add_argument("--spec", default="models/fmnist-cnn.json")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--engine", default="onednn")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--as-is", action="store_true")
    args = ap.parse_args()
    torch_train.ensure_tuned_env(args)
    import torch
    import torch.nn as nn
    import torch.ao.quantization as tq

    _, net = torch_train.build(args.spec)
    state = load_safetensors(args.ckpt)
    sd = net.state_dict()
    for k in sd:
        if k in state:
            sd[k] = torch.from_numpy(state[k]).reshape(sd[k].shape)
        elif not k.endswith("num_batches_tracked"):
            raise SystemExit(f"torch_int8.py: {args.ckpt} lacks {k}")
    net.load_state_dict(sd)
    net.eval()
    # fuse Conv-BN-ReLU and Linear-ReLU, as a tuned user does before quantizing
    names = list(net._modules.keys())
    groups, i = [], 0
    while i < len(names):
        m = net._modules[names[i]]
        if isinstance(m, nn.Conv2d) and i + 2 < len(names) and isinstance(net._modules[names[i + 1]], nn.BatchNorm2d) \
                and isinstance(net._modules[names[i + 2]], nn.ReLU):
            groups.append(names[i:i + 3]); i += 3
        elif isinstance(m, nn.Linear) and i + 1 < len(names) and isinstance(net._modules[names[i + 1]], nn.ReLU):
            groups.append(names[i:i + 2]); i += 2
        else:
            i += 1
    fused = tq.fuse_modules(net, groups)
    model = nn.Sequential(tq.QuantStub(), fused, tq.DeQuantStub()).eval()
    torch.backends.quantized.engine = args.engine
    model.qconfig = tq.get_default_qconfig(args.engine)
    tq.prepare(model, inplace=True)
    xtr, _ = torch_train.load_split(args.data, "train")
    xte, yte = torch_train.load_split(args.data, "t10k")
    with torch.no_grad():
        for lo in range(0, 2048, 256):
            model(xtr[lo:lo + 256])
    tq.convert(model, inplace=True)
    res = {"engine": args.engine, "settings": torch_train.settings(), "runs": []}
    with torch.no_grad():
        for t in args.threads:
            torch.set_num_threads(t)
            correct = 0
            t0 = time.perf_counter()
            for lo in range(0, len(xte), 64):
                correct += int((model(xte[lo:lo + 64]).argmax(1) == yte[lo:lo + 64]).sum())
            t64 = time.perf_counter() - t0
            for i in range(50):  # warm-up
                model(xte[i:i + 1])
            n = min(args.samples, len(xte))
            t0 = time.perf_counter()
            for i in range(n):
                model(xte[i:i + 1])
            t1 = time.perf_counter() - t0
            r = {"threads": t, "accuracy": correct / len(xte), "img_s_b1": n / t1, "latency_ms_b1": 1e3 * t1 / n,
                 "img_s_b64": len(xte) / t64}
            res["runs"].append(r)
            print(f"torch int8 ({args.engine}), {t} thread(s): accuracy {100 * r['accuracy']:.2f}%, batch 1 "
                  f"{r['img_s_b1']:.0f} img/s ({r['latency_ms_b1']:.3f} ms), batch 64 {r['img_s_b64']:.0f} img/s",
                  file=sys.stderr)
    if args.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
