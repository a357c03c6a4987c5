#!/usr/bin/env python3
"""Runs a yt8m-exported model.onnx in onnxruntime (the real client, from PyPI) on the arrays of
an .npz (one per graph input, by name) and writes its outputs to another .npz. Used by the
tests to compare onnxruntime's logits with yt8m's, and by `yt8m bench predict`.

    python scripts/onnx_run.py MODEL.onnx INPUTS.npz OUTPUTS.npz [--repeat N] [--threads N]
Prints one JSON line: {"seconds": [...per repeat...], "providers": [...]}.
"""
import argparse
import json
import time

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("inputs")
    ap.add_argument("outputs")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    so = ort.SessionOptions()
    if a.threads:
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    z = np.load(a.inputs)
    feeds = {i.name: z[i.name] for i in sess.get_inputs()}
    times = []
    for _ in range(a.repeat):
        t = time.perf_counter()
        outs = sess.run(None, feeds)
        times.append(time.perf_counter() - t)
    np.savez(a.outputs, **{o.name: v for o, v in zip(sess.get_outputs(), outs)})
    print(json.dumps({"seconds": times, "providers": sess.get_providers(), "onnxruntime": ort.__version__}))


if __name__ == "__main__":
    main()
