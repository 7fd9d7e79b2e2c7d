#!/usr/bin/env python3
"""The KJV language models of lowbit's zoo trained by PyTorch with the same recipe, for
bench/lm_compare.sh: the same corpus, tokenization, splits and vocabulary (re-implemented
here from src/data/text.c's rules, and cross-checked against lowbit's counts by the
shell script), the same model (embedding, dropout, one LSTM or GRU, dropout, linear), the
same initialisation distributions, Adam, gradient-norm clip, truncated BPTT with the state
carried across batches, and validation/test perplexity over 10 streams.

  bench/torch_lm.py --model kjv-word-lstm [--epochs N] [--max-steps N] [--threads 2] [--json]

Timing: tokens/s over the steps after the first 10 (warm-up), training only.
"""
import argparse
import json
import math
import os
import re
import sys
import time

import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_lines(path):
    with open(path, "rb") as f:
        data = f.read().decode("utf-8")
    lines = data.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def splits(lines):
    n = len(lines)
    a, b = n * 90 // 100, n * 5 // 100
    return lines[:a], lines[a:a + b], lines[a + b:]


WORD = re.compile(r"[a-z0-9']+")


def word_tokens(line):
    return WORD.findall(line.lower()) + ["<eos>"]


def build_word(lines, max_vocab):
    tr, va, te = splits(lines)
    counts = {}
    for l in tr:
        for w in WORD.findall(l.lower()):
            counts[w] = counts.get(w, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].encode()))[:max_vocab]
    vocab = ["<unk>", "<eos>"] + [w for w, _ in ranked]
    index = {w: i for i, w in enumerate(vocab)}
    enc = lambda ls: [index.get(t, 0) for l in ls for t in word_tokens(l)]
    return vocab, enc(tr), enc(va), enc(te)


def build_char(lines):
    tr, va, te = splits(lines)
    syms = sorted(set("".join(tr)) | {"\n"})
    vocab = ["<unk>"] + syms
    index = {c: i for i, c in enumerate(vocab)}
    enc = lambda ls: [index.get(c, 0) for l in ls for c in l + "\n"]
    return vocab, enc(tr), enc(va), enc(te)


class LM(nn.Module):
    def __init__(self, cell, V, E, H, dropout):
        super().__init__()
        self.embed = nn.Embedding(V, E)
        self.drop = nn.Dropout(dropout)
        self.rnn = (nn.LSTM if cell == "LSTM" else nn.GRU)(E, H, batch_first=True)
        self.decoder = nn.Linear(H, V)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)  # as lowbit's Gather (model.c)

    def forward(self, x, state):
        y, state = self.rnn(self.drop(self.embed(x)), state)
        return self.decoder(self.drop(y)), state


def batchify(ids, B):
    L = len(ids) // B
    return torch.tensor(ids[:L * B], dtype=torch.long).view(B, L)


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def evaluate(model, data, T, V):
    model.eval()
    total, n, state = 0.0, 0, None
    with torch.no_grad():
        for i in range(0, data.size(1) - 1, T):
            Tc = min(T, data.size(1) - 1 - i)
            x, y = data[:, i:i + Tc], data[:, i + 1:i + 1 + Tc]
            out, state = model(x, state)
            total += nn.functional.cross_entropy(out.reshape(-1, V), y.reshape(-1), reduction="sum").item()
            n += y.numel()
    model.train()
    return total / n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="kjv-word-lstm")
    ap.add_argument("--data", default=os.environ.get("LOWBIT_DATA", os.path.join(ROOT, "data")) + "/kjv.txt")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    spec = json.load(open(os.path.join(ROOT, "models", a.model + ".json")))
    layers = {l["op"]: l for l in spec["layers"]}
    cell = "LSTM" if "LSTM" in layers else "GRU"
    E, H = layers["Gather"]["dim"], layers[cell]["hidden"]
    drop = layers.get("Dropout", {}).get("p", 0.0)
    T, level = spec["input"]["tokens"], spec["input"].get("level", "word")
    r = dict(kv.split("=") for kv in spec["recipe"].split()[1:])
    lr, B, clip = float(r["lr"]), int(r["batch"]), float(r["clip"])
    epochs = a.epochs if a.epochs is not None else int(r["epochs"])
    lines = load_lines(a.data)
    if level == "word":
        vocab, tr, va, te = build_word(lines, layers["Gather"]["vocab"] - 2)
    else:
        vocab, tr, va, te = build_char(lines)
    V = layers["Gather"]["vocab"]
    model = LM(cell, V, E, H, drop)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    train, valid, test = batchify(tr, B), batchify(va, 10), batchify(te, 10)
    steps_per_epoch = (train.size(1) - 1 + T - 1) // T
    total_steps = steps_per_epoch * epochs if not a.max_steps else min(a.max_steps, steps_per_epoch * epochs)
    step, t_w, tok_w, log = 0, None, 0, []
    t0 = time.time()
    for ep in range(epochs):
        state = None
        for i in range(0, train.size(1) - 1, T):
            if step == total_steps:
                break
            if step == 10:
                t_w, tok_w = time.time(), 0
            Tc = min(T, train.size(1) - 1 - i)
            x, y = train[:, i:i + Tc], train[:, i + 1:i + 1 + Tc]
            state = detach(state) if state is not None else None
            out, state = model(x, state)
            loss = nn.functional.cross_entropy(out.reshape(-1, V), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            step += 1
            tok_w += y.numel()
        if step == total_steps and a.max_steps:
            break
        vl = evaluate(model, valid, T, V)
        log.append({"epoch": ep + 1, "valid_loss": vl, "valid_perplexity": math.exp(vl), "elapsed_s": time.time() - t0})
        print(f"torch_lm: epoch {ep + 1}: validation perplexity {math.exp(vl):.2f}", file=sys.stderr)
    tps = tok_w / (time.time() - t_w) if t_w else float("nan")
    res = {"model": a.model, "threads": a.threads, "steps": step, "tokens_per_s": tps, "vocab": len(vocab),
           "train_tokens": len(tr), "valid_tokens": len(va), "test_tokens": len(te), "epochs": log,
           "torch": torch.__version__}
    if not a.max_steps:
        tl = evaluate(model, test, T, V)
        res.update(test_loss=tl, test_perplexity=math.exp(tl), test_bpc=tl / math.log(2))
    print(json.dumps(res) if a.json else res)


if __name__ == "__main__":
    main()
