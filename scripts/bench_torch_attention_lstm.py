#!/usr/bin/env python3
"""The full two-modality AttentionLSTM in PyTorch, one training step (forward, summed BCE,
backward, centered RMSProp), three ways, alternating in one run:

  fused   nn.LSTM(bidirectional) over the batch padded to its longest video: fast, but the
          reverse direction starts on padding (not PaddleVideo's semantics)
  packed  pack_padded_sequence: exact semantics, slow on CPU
  paddle  PaddleVideo's shape: every video padded to 512 steps, float masks as large as the data
          (and, as Paddle, reverse direction per length: emulated with packing)

Same widths, batch and length distribution as `yt8m bench train` (lengths uniform 1–300).
Prints samples/s per mode and ratios. torch from PyPI in a venv outside the repo:
    ~/.cache/yt8m/venv/bin/python scripts/bench_torch_attention_lstm.py --batch 128 --rounds 2
"""
import argparse
import os
import time

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class Branch(nn.Module):
    def __init__(self, d, e, h):
        super().__init__()
        self.fc = nn.Linear(d, e)
        self.lstm = nn.LSTM(e, h, batch_first=True, bidirectional=True)
        self.att = nn.Linear(2 * h, 1)

    def forward(self, x, lengths, mode, mask=None):
        e = torch.tanh(self.fc(x))
        if mode == "fused":
            h, _ = self.lstm(e)
        else:
            p = pack_padded_sequence(e, lengths.cpu(), batch_first=True, enforce_sorted=False)
            h, _ = self.lstm(p)
            h, _ = pad_packed_sequence(h, batch_first=True, total_length=x.shape[1])
        h = nn.functional.dropout(h, 0.5, self.training)
        a = self.att(h)
        if mode == "paddle":
            # PaddleVideo: exp / masked sum with a [B, T, D] float mask, no max subtraction.
            m = mask.mean(dim=2, keepdim=True)
            w = torch.exp(a) * (1.0 / torch.sum(torch.exp(a) * m, dim=1, keepdim=True))
            return torch.sum(h * w * m, dim=1)
        t = x.shape[1]
        valid = torch.arange(t)[None, :] < lengths[:, None]
        w = a.squeeze(2).masked_fill(~valid, float("-inf")).softmax(1).unsqueeze(2)
        return (h * w).sum(1)


class Model(nn.Module):
    def __init__(self, dims=(1024, 128), e=512, h=1024, o1=8192, o2=4096, c=3862):
        super().__init__()
        self.branches = nn.ModuleList([Branch(d, e, h) for d in dims])
        self.out1 = nn.Linear(2 * h * len(dims), o1)
        self.out2 = nn.Linear(o1, o2)
        self.logit = nn.Linear(o2, c)

    def forward(self, xs, lengths, mode, masks=None):
        z = torch.cat([b(x, lengths, mode, None if masks is None else masks[i]) for i, (b, x) in enumerate(zip(self.branches, xs))], 1)
        return self.logit(torch.tanh(self.out2(torch.relu(self.out1(z)))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--small", action="store_true", help="E=32 H=32 fc 64/64 C=20 (configs/demo_small.yaml)")
    ap.add_argument("--modes", default="fused,packed,paddle")
    ap.add_argument("--infer", action="store_true", help="time inference (eval mode, no autograd) instead of a training step")
    ap.add_argument("--sorted-window", type=int, default=0, metavar="W",
                    help="draw each batch from a window of W batches sorted by length (as `yt8m predict` batches), "
                         "so PyTorch gets the same little padding; 0 = unsorted batches")
    a = ap.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    kw = dict(e=32, h=32, o1=64, o2=64, c=20) if a.small else {}
    model = Model(**kw)
    model.train(not a.infer)
    opt = torch.optim.RMSprop(model.parameters(), lr=2.5e-4, alpha=0.95, eps=1e-6, centered=True, weight_decay=4e-4)
    c = model.logit.out_features
    modes = a.modes.split(",")
    res = {m: [0, 0.0, 0] for m in modes}
    for r in range(a.rounds + 1):  # round 0 warms up
        if a.sorted_window > 0:
            w = a.sorted_window
            window = torch.randint(1, 301, (a.batch * w,)).sort().values
            j = (r - 1) % w if r > 0 else w // 2
            lengths = window[j * a.batch:(j + 1) * a.batch].clone()
        else:
            lengths = torch.randint(1, 301, (a.batch,))
        t = int(lengths.max())
        q = [torch.randint(0, 256, (a.batch, t, d), dtype=torch.uint8) for d in (1024, 128)]
        y = (torch.rand(a.batch, c) < 3.0 / c).float()
        for m in modes:
            tt = 512 if m == "paddle" else t
            xs = []
            for x in q:
                f = x.float() * (4.0 / 255) - 1.9921875
                valid = (torch.arange(t)[None, :] < lengths[:, None]).unsqueeze(2)
                f = f * valid
                if tt > t:
                    f = torch.cat([f, torch.zeros(a.batch, tt - t, f.shape[2])], 1)
                xs.append(f)
            masks = None
            if m == "paddle":
                masks = [(torch.arange(tt)[None, :, None] < lengths[:, None, None]).float().expand(-1, -1, x.shape[2]).contiguous() for x in xs]
            s = time.perf_counter()
            if a.infer:
                with torch.no_grad():
                    torch.sigmoid(model(xs, lengths, m, masks))
            else:
                loss = nn.functional.binary_cross_entropy_with_logits(model(xs, lengths, m, masks), y, reduction="sum")
                opt.zero_grad()
                loss.backward()
                opt.step()
            el = time.perf_counter() - s
            if r > 0:
                res[m][0] += a.batch
                res[m][1] += el
                res[m][2] += int(lengths.sum())
    base = None
    sw = f", batches from length-sorted windows of {a.sorted_window}" if a.sorted_window else ""
    print(f"PyTorch {torch.__version__}, {'inference' if a.infer else 'training step'}, batch {a.batch}{sw}, {torch.get_num_threads()} threads, {a.rounds} measured step(s) per mode")
    print("| pipeline | samples/s | frames/s | vs fused |\n|---|---|---|---|")
    for m in modes:
        n, el, fr = res[m]
        sps = n / el
        base = base or sps
        print(f"| PyTorch {m} | {sps:.2f} | {fr / el:.0f} | {sps / base:.2f}x |")


if __name__ == "__main__":
    main()
