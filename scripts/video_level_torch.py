#!/usr/bin/env python3
"""The video-level check of yt8m, done independently in PyTorch: the same split, model
(starter LogisticModel / MoeModel), initialisation, loss (summed BCE), optimizer (centered
RMSProp with PaddleVideo's update, L2 added to the gradient), schedule, batch size and epochs
as configs/{logistic,moe}_video.yaml, scored with shared/tools/yt8m_eval_ref.py. Its numbers
should land where yt8m's do (shuffling differs, so not bit for bit).

The TFRecords are read with a few lines of pure Python (framing + protobuf), no TensorFlow.

Usage (torch + numpy in a venv outside the repo, e.g. the one ./dev setup makes):
    ~/.cache/yt8m/venv/bin/python scripts/video_level_torch.py --model moe
"""
import argparse
import glob
import json
import os
import struct
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REAL = os.path.join(HERE, "..", "..", "shared", "data", "yt8m", "real")
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "tools"))
import yt8m_eval_ref  # noqa: E402


def varint(b, i):
    v = s = 0
    while True:
        x = b[i]
        i += 1
        v |= (x & 0x7F) << s
        s += 7
        if x < 0x80:
            return v, i


def fields(b):
    i = 0
    while i < len(b):
        tag, i = varint(b, i)
        wt = tag & 7
        if wt == 2:
            n, i = varint(b, i)
            yield tag >> 3, b[i:i + n]
            i += n
        elif wt == 0:
            v, i = varint(b, i)
            yield tag >> 3, v
        elif wt == 5:
            yield tag >> 3, b[i:i + 4]
            i += 4
        elif wt == 1:
            yield tag >> 3, b[i:i + 8]
            i += 8


def parse_example(payload):
    out = {}
    for num, feats in fields(payload):
        if num != 1:
            continue
        for _, entry in fields(feats):
            key = val = None
            for n, v in fields(entry):
                if n == 1:
                    key = bytes(v).decode()
                elif n == 2:
                    val = v
            for kind, lst in fields(val):
                if kind == 1:
                    out[key] = [bytes(v) for n, v in fields(lst) if n == 1]
                elif kind == 2:
                    vals = [np.frombuffer(v, "<f4") for n, v in fields(lst) if n == 1]
                    out[key] = np.concatenate(vals) if vals else np.zeros(0, np.float32)
                elif kind == 3:
                    ints = []
                    for n, v in fields(lst):
                        if n == 1 and isinstance(v, int):
                            ints.append(v)
                        elif n == 1:
                            j = 0
                            while j < len(v):
                                x, j = varint(v, j)
                                ints.append(x)
                    out[key] = ints
    return out


def read(files, c):
    xs, ys = [], []
    for f in files:
        data = open(f, "rb").read()
        i = 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i:i + 8])
            ex = parse_example(memoryview(data)[i + 12:i + 12 + n])
            i += 12 + n + 4
            xs.append(np.concatenate([ex["mean_rgb"], ex["mean_audio"]]))
            y = np.zeros(c, np.float32)
            y[ex.get("labels", [])] = 1
            ys.append(y)
    return torch.tensor(np.stack(xs)), torch.tensor(np.stack(ys))


def xavier(fan_in, fan_out):
    a = (6.0 / (fan_in + fan_out)) ** 0.5
    return torch.empty(fan_in, fan_out).uniform_(-a, a).requires_grad_()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["logistic", "moe"], default="moe")
    ap.add_argument("--mixtures", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--boundary", type=int, default=6)
    ap.add_argument("--lr", type=float, nargs=2, default=[1e-3, 1e-4])
    ap.add_argument("--l2", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(os.cpu_count())
    c = 3862
    train = sorted(glob.glob(os.path.join(REAL, "validate000[2-9].tfrecord")) + glob.glob(os.path.join(REAL, "validate00[1-5][0-9].tfrecord")))
    test = sorted(glob.glob(os.path.join(REAL, "validate006[0-9].tfrecord")))
    t = time.perf_counter()
    xtr, ytr = read(train, c)
    xte, yte = read(test, c)
    t_read = time.perf_counter() - t
    d = xtr.shape[1]
    m = a.mixtures
    if a.model == "logistic":
        params = {"w": xavier(d, c), "b": torch.zeros(c, requires_grad=True)}

        def fwd(x):
            return x @ params["w"] + params["b"]
    else:
        params = {"gate": xavier(d, c * (m + 1)), "ew": xavier(d, c * m), "eb": torch.zeros(c * m, requires_grad=True)}

        def fwd(x):
            b = x.shape[0]
            g = (x @ params["gate"]).view(b * c, m + 1).softmax(1)
            e = (x @ params["ew"] + params["eb"]).view(b * c, m).sigmoid()
            p = (g[:, :m] * e).sum(1).view(b, c).clamp(1e-7, 1 - 1e-7)
            return p.log() - (-p).log1p()
    rho, eps = float(np.float32(0.95)), float(np.float32(1e-6))
    state = {k: (torch.zeros_like(v), torch.zeros_like(v)) for k, v in params.items()}
    t = time.perf_counter()
    for epoch in range(a.epochs):
        lr = a.lr[0] if epoch < a.boundary else a.lr[1]
        perm = torch.randperm(xtr.shape[0])
        for s in range(0, xtr.shape[0], a.batch):
            idx = perm[s:s + a.batch]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(fwd(xtr[idx]), ytr[idx], reduction="sum")
            for v in params.values():
                v.grad = None
            loss.backward()
            with torch.no_grad():
                for k, v in params.items():
                    g = v.grad + a.l2 * v
                    ms, mg = state[k]
                    ms.mul_(rho).add_((1 - rho) * g * g)
                    mg.mul_(rho).add_((1 - rho) * g)
                    v.sub_(lr * g / (ms - mg * mg + eps).sqrt())
    t_train = time.perf_counter() - t
    with torch.no_grad():
        probs = fwd(xte).sigmoid().numpy().astype(np.float32)
    r = yt8m_eval_ref.evaluate(probs, yte.numpy().astype(np.uint8))
    r.update({"model": a.model, "train_videos": int(xtr.shape[0]), "test_videos": int(xte.shape[0]),
              "read_seconds": round(t_read, 1), "train_seconds": round(t_train, 1), "torch": torch.__version__})
    print(json.dumps(r))


if __name__ == "__main__":
    main()
