"""Make tests/data/rnn_golden.safetensors: PyTorch's nn.LSTM and nn.GRU on a tiny case.

test_rnn.c loads the inputs and weights from the file, runs lowbit's LSTM and GRU and
compares the outputs, final states and the gradients of L = sum(y * r) with what PyTorch
computed here. Regenerate with
    /usr/bin/python3 tests/data/make_rnn_golden.py
(made with torch 1.13, numpy 1.24; CPU, float32). The output is deterministic: fixed seeds,
and the file is written by hand below (8-byte little-endian header length, JSON header
{name: {dtype, shape, data_offsets}}, raw little-endian data), so no safetensors package.

PyTorch -> ONNX layout (what lowbit uses):
  LSTM rows are gates i,f,g,o in PyTorch, i,o,f,c in ONNX: blocks [0, 3, 1, 2];
  GRU rows are r,z,n in PyTorch, z,r,h in ONNX: blocks [1, 0, 2];
  bias = concat(b_ih, b_hh), each reordered the same way. nn.GRU is ONNX's GRU with
  linear_before_reset = 1: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
Gradients are stored in the same ONNX layout. Tensor names: "<cell>.<what>" with cell in
{lstm, gru} and what in {x, W, R, bias, h0, c0, r (the loss weights), y, hT, cT, dx, dW, dR,
dbias, dh0, dc0} (c0, cT, dc0: LSTM only).
"""
import json
import os
import struct

import numpy as np
import torch

B, T, I, H = 2, 3, 4, 5


def reorder(t, blocks):
    """Rows of t in blocks of H, taken in the order `blocks`."""
    return torch.cat([t[k * H:(k + 1) * H] for k in blocks], dim=0)


def run(cell, seed):
    torch.manual_seed(seed)
    lstm = cell == "lstm"
    net = (torch.nn.LSTM if lstm else torch.nn.GRU)(I, H, num_layers=1, batch_first=True)
    # weights beyond PyTorch's default U(-1/sqrt(H), 1/sqrt(H)), so gates leave the linear range
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-0.8, 0.8)
    x = torch.randn(B, T, I, requires_grad=True)
    h0 = (0.5 * torch.randn(1, B, H)).requires_grad_()
    c0 = (0.5 * torch.randn(1, B, H)).requires_grad_()
    r = torch.randn(B, T, H)
    if lstm:
        y, (hT, cT) = net(x, (h0, c0))
    else:
        y, hT = net(x, h0)
    loss = (y * r).sum()
    loss.backward()

    blocks = [0, 3, 1, 2] if lstm else [1, 0, 2]
    w_ih, w_hh, b_ih, b_hh = net.weight_ih_l0, net.weight_hh_l0, net.bias_ih_l0, net.bias_hh_l0
    out = {
        "x": x.detach(), "h0": h0.detach()[0], "r": r,
        "W": reorder(w_ih.detach(), blocks), "R": reorder(w_hh.detach(), blocks),
        "bias": torch.cat([reorder(b_ih.detach(), blocks), reorder(b_hh.detach(), blocks)]),
        "y": y.detach(), "hT": hT.detach()[0],
        "dx": x.grad, "dh0": h0.grad[0],
        "dW": reorder(w_ih.grad, blocks), "dR": reorder(w_hh.grad, blocks),
        "dbias": torch.cat([reorder(b_ih.grad, blocks), reorder(b_hh.grad, blocks)]),
    }
    if lstm:
        out.update({"c0": c0.detach()[0], "cT": cT.detach()[0], "dc0": c0.grad[0]})
    out = {k: v.contiguous().numpy().astype("<f4") for k, v in out.items()}
    check_onnx(out, lstm)
    return {f"{cell}.{k}": v for k, v in out.items()}


def check_onnx(t, lstm):
    """The ONNX equations in float64 on the reordered tensors must give PyTorch's y: proves
    the reordering (a wrong permutation gives errors of order 0.1)."""
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))
    W, R, bias = (t[k].astype(np.float64) for k in ("W", "R", "bias"))
    g = 4 if lstm else 3
    Wb, Rb = bias[:g * H], bias[g * H:]
    h = t["h0"].astype(np.float64)
    c = t["c0"].astype(np.float64) if lstm else None
    for s in range(T):
        xs = t["x"][:, s, :].astype(np.float64)
        if lstm:
            a = xs @ W.T + Wb + h @ R.T + Rb
            i, o, f, cc = sig(a[:, :H]), sig(a[:, H:2 * H]), sig(a[:, 2 * H:3 * H]), np.tanh(a[:, 3 * H:])
            c = f * c + i * cc
            h = o * np.tanh(c)
        else:
            ax, ah = xs @ W.T + Wb, h @ R.T + Rb
            z, r = sig(ax[:, :H] + ah[:, :H]), sig(ax[:, H:2 * H] + ah[:, H:2 * H])
            n = np.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])
            h = (1 - z) * n + z * h
        err = np.abs(h - t["y"][:, s, :]).max()
        assert err < 1e-5, f"ONNX re-evaluation differs from PyTorch by {err}"


def write_safetensors(path, tensors):
    header, chunks, off = {}, [], 0
    for name in sorted(tensors):
        a = tensors[name]
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        chunks.append(b)
        off += len(b)
    header["__metadata__"] = {"lowbit.test": "rnn_golden", "torch": torch.__version__.split("+")[0]}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # data section 8-byte aligned (padding with spaces is allowed)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)


torch.set_num_threads(1)
tensors = {}
tensors.update(run("lstm", 1))
tensors.update(run("gru", 2))
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rnn_golden.safetensors")
write_safetensors(path, tensors)
print(path, os.path.getsize(path), "bytes,", len(tensors), "tensors")
