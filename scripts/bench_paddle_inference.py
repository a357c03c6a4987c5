#!/usr/bin/env python3
"""Paddle Inference on CPU for the AttentionLSTM, the way PaddleVideo exports and serves it:
inputs padded to 512 frames with float masks as large as the data (tools/export_model.py's
input spec), static graph saved with paddle.jit.save, run by paddle.inference's predictor
(without enable_memory_optim, which fails on Paddle 3.x). Reports frames/s and videos/s at
each batch size, lengths uniform 1–300, for comparison with `yt8m bench predict`.

    ~/.cache/yt8m/paddlevenv/bin/python scripts/bench_paddle_inference.py --batch 1,64 --rounds 5
"""
import argparse
import os
import tempfile
import time

import numpy as np
import paddle
import paddle.nn as nn


class Head(nn.Layer):
    """AttentionLSTM as specified in shared/docs/attention_lstm_spec.md (a): per modality
    Linear+tanh → BiLSTM(sequence_length) → dropout → Linear(2H→1) → exp/masked-sum
    attention → pooled; concat → fc_out1 ReLU → fc_out2 tanh → fc_logit."""

    def __init__(self, dims=(1024, 128), e=512, h=1024, o1=8192, o2=4096, c=3862):
        super().__init__()
        self.dims = dims
        for i, d in enumerate(dims):
            setattr(self, f"fc_feature{i}", nn.Linear(d, e))
            setattr(self, f"bi_lstm{i}", nn.LSTM(e, h, direction="bidirectional"))
            setattr(self, f"att_fc{i}", nn.Linear(2 * h, 1))
        self.dropout = nn.Dropout(0.5)
        self.fc_out1 = nn.Linear(2 * h * len(dims), o1)
        self.fc_out2 = nn.Linear(o1, o2)
        self.fc_logit = nn.Linear(o2, c)

    def forward(self, rgb, rgb_len, rgb_mask, audio, audio_len, audio_mask):
        pools = []
        for i, (x, ln, m) in enumerate([(rgb, rgb_len, rgb_mask), (audio, audio_len, audio_mask)]):
            e = paddle.tanh(getattr(self, f"fc_feature{i}")(x))
            h, _ = getattr(self, f"bi_lstm{i}")(e, sequence_length=ln)
            h = self.dropout(h)
            a = getattr(self, f"att_fc{i}")(h)
            mm = paddle.mean(m, axis=2, keepdim=True)
            w = paddle.exp(a) * (1.0 / paddle.sum(paddle.exp(a) * mm, axis=1, keepdim=True))
            pools.append(paddle.sum(h * w * mm, axis=1))
        z = paddle.concat(pools, axis=1)
        return self.fc_logit(paddle.tanh(self.fc_out2(nn.functional.relu(self.fc_out1(z)))))


def inputs(b, lengths, rng, t=512):
    feeds = []
    for d in (1024, 128):
        q = rng.integers(0, 256, (b, t, d), dtype=np.uint8)
        x = (q.astype(np.float64) * (4.0 / 255) + (4.0 / 512 - 2)).astype(np.float32)
        m = (np.arange(t)[None, :, None] < lengths[:, None, None]).astype(np.float32) * np.ones((1, 1, d), np.float32)
        x *= m
        feeds += [x, lengths.astype(np.int64), m]
    return feeds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", default="1,64")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    a = ap.parse_args()
    paddle.seed(0)
    model = Head()
    model.eval()
    spec = []
    for d in (1024, 128):
        spec += [paddle.static.InputSpec([None, 512, d], "float32"), paddle.static.InputSpec([None], "int64"), paddle.static.InputSpec([None, 512, d], "float32")]
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "AttentionLSTM")
    paddle.jit.save(paddle.jit.to_static(model, input_spec=spec, full_graph=True), path)
    model_file = [f for f in os.listdir(tmp) if f.endswith((".json", ".pdmodel"))][0]
    cfg = paddle.inference.Config(os.path.join(tmp, model_file), path + ".pdiparams")
    cfg.disable_gpu()
    cfg.set_cpu_math_library_num_threads(a.threads)
    pred = paddle.inference.create_predictor(cfg)
    names = pred.get_input_names()
    rng = np.random.default_rng(0)
    print(f"Paddle Inference {paddle.__version__}, CPU, {a.threads} threads, inputs padded to 512 with float masks")
    print("| batch | videos/s | frames/s |\n|---|---|---|")
    for b in [int(x) for x in a.batch.split(",")]:
        n = fr = 0
        el = 0.0
        for r in range(a.rounds + 1):
            lengths = rng.integers(1, 301, b)
            feeds = inputs(b, lengths, rng)
            for name, v in zip(names, feeds):
                pred.get_input_handle(name).copy_from_cpu(v)
            t = time.perf_counter()
            pred.run()
            pred.get_output_handle(pred.get_output_names()[0]).copy_to_cpu()
            if r > 0:
                el += time.perf_counter() - t
                n += b
                fr += int(lengths.sum())
        print(f"| {b} | {n / el:.2f} | {fr / el:.0f} |")


if __name__ == "__main__":
    main()
