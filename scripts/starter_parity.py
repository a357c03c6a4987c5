#!/usr/bin/env python3
"""Reference fixtures for the starter's frame-level models (issue 18), produced by Google's own
code: `frame_level_models.py` of github.com/google/youtube-8m (commit e6f6bf6), run unchanged
through `tf.compat.v1` with thin import shims (the code is TF 1.x: `tensorflow.contrib.slim`
is `tf_slim` (given back the `ops.Tensor` name it still uses), `tf.contrib.rnn`'s cells are tf_keras' legacy cells, `tensorflow.flags` is absl's).

For each model, with small widths, one batch of uint8 frames goes the way of the starter's
`train.py`: dequantized as its reader does (q * 4/255 + 4/512 - 2), modalities concatenated,
padded frames 0, every frame L2-normalised (`tf.nn.l2_normalize(model_input_raw, 2)`), then
`create_model`; the loss is train.py's `regularization_penalty * reg_loss + label_loss` with
`CrossEntropyLoss` (epsilon 1e-5). Written per model to tests/fixtures/starter/<model>.npz:

  in_rgb, in_audio (uint8 [B, T, D]), in_lengths (int64 [B]), in_labels (float32 [B, C]),
  var/<name>      every variable before the step (TF names and layouts),
  state/<name>, state_after/<name>
                  non-trainable variables (batch norm's moving statistics) before and after
                  the forward pass's updates (train.py runs them with it),
  sample_index    DbofModel: the frames its SampleRandomFrames drew [B, iterations],
  predictions     [B, C], label_loss, reg_loss, loss (scalars),
  grad/<name>     d loss / d variable,
  step/<name>     every variable after one train.py step on those gradients: each clipped to
                  norm 1.0 (utils.clip_gradient_norms), then AdamOptimizer(0.01),
and <model>.json with the widths and flags used.

Float32: the models cast to float32 themselves (num_frames, dynamic_rnn's dtype).

Run (TensorFlow 2.21.0, tf_slim 1.1.0, tf_keras 2.21.0 from PyPI, in a venv outside the repo):

  git clone https://github.com/google/youtube-8m /tmp/youtube-8m   # commit e6f6bf6
  ~/.cache/yt8m/tfvenv/bin/pip install tensorflow-cpu==2.21.0 tf_slim tf_keras==2.21.0
  ~/.cache/yt8m/tfvenv/bin/python scripts/starter_parity.py --starter /tmp/youtube-8m \
      --out tests/fixtures/starter
"""
import argparse
import json
import os
import sys
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def load_starter(path):
    """Imports frame_level_models from a youtube-8m checkout, behind TF 1.x-shaped shims."""
    import tensorflow as real_tf
    import tf_slim
    from tf_keras.src.layers.rnn import legacy_cells

    v1 = real_tf.compat.v1
    v1.disable_v2_behavior()
    # tf_slim 1.1's batch_norm still looks for `ops.Tensor`, which TensorFlow 2.21 dropped.
    from tensorflow.python.framework import ops as tf_ops

    if not hasattr(tf_ops, "Tensor"):
        tf_ops.Tensor = real_tf.Tensor
    shim = types.ModuleType("tensorflow")
    for k in dir(v1):
        if not k.startswith("__"):
            setattr(shim, k, getattr(v1, k))
    shim.compat = real_tf.compat
    contrib = types.ModuleType("tensorflow.contrib")
    rnn = types.ModuleType("tensorflow.contrib.rnn")
    rnn.MultiRNNCell = legacy_cells.MultiRNNCell
    rnn.BasicLSTMCell = legacy_cells.BasicLSTMCell
    contrib.slim = tf_slim
    contrib.rnn = rnn
    shim.contrib = contrib
    saved = {k: sys.modules.get(k) for k in ("tensorflow", "tensorflow.contrib", "tensorflow.contrib.slim")}
    sys.modules.update({"tensorflow": shim, "tensorflow.contrib": contrib, "tensorflow.contrib.slim": tf_slim})
    sys.path.insert(0, path)
    try:
        import frame_level_models  # noqa: E402  (the upstream file, unchanged)
        import video_level_models  # noqa: F401
    finally:
        sys.path.pop(0)
        for k, m in saved.items():
            if m is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = m
    v1.flags.FLAGS(sys.argv[:1])  # defaults, as if run without flags
    return real_tf, frame_level_models


def dequantize(q):
    return q.astype(np.float32) * np.float32(4.0 / 255.0) + np.float32(4.0 / 512.0 - 2.0)


def run(tf, flm, name, make, dims, classes, lengths, seed, flags):
    v1 = tf.compat.v1
    for k, v in flags.items():
        setattr(v1.flags.FLAGS, k, v)
    rng = np.random.default_rng(seed)
    b, t = len(lengths), max(lengths)
    feats = [rng.integers(0, 256, size=(b, t, d), dtype=np.uint8) for d in dims]
    for f in feats:
        for i, n in enumerate(lengths):
            f[i, n:] = 0  # stored padding; the reader pads after dequantizing, below
    labels = (rng.random((b, classes)) < 0.3).astype(np.float32)
    labels[:, 0] = 1.0
    raw = np.concatenate([dequantize(f) for f in feats], axis=2)
    for i, n in enumerate(lengths):
        raw[i, n:] = 0.0
    g = tf.Graph()
    with g.as_default():
        v1.set_random_seed(seed)
        x_raw = v1.placeholder(tf.float32, [b, t, sum(dims)])
        nf = v1.placeholder(tf.int32, [b])
        y = v1.placeholder(tf.float32, [b, classes])
        x = tf.nn.l2_normalize(x_raw, 2)  # train.py's
        # DbofModel samples frames at random inside the graph: keep the (video, frame) index
        # pairs it drew (the input of its gather_nd) so the test can feed the same ones.
        sampled = []
        upstream_sample = flm.utils.SampleRandomFrames

        def recording_sample(model_input, num_frames, num_samples):
            out = upstream_sample(model_input, num_frames, num_samples)
            sampled.append(out.op.inputs[1])
            return out

        flm.utils.SampleRandomFrames = recording_sample
        try:
            with v1.variable_scope("tower"):
                out = make(flm).create_model(x, vocab_size=classes, num_frames=nf, is_training=True)
        finally:
            flm.utils.SampleRandomFrames = upstream_sample
        pred = out["predictions"]
        update_ops = v1.get_collection(v1.GraphKeys.UPDATE_OPS)  # batch norm's moving stats
        eps = 1e-5  # losses.CrossEntropyLoss
        xent = -(y * v1.log(pred + eps) + (1 - y) * v1.log(1 - pred + eps))
        label_loss = tf.reduce_mean(tf.reduce_sum(xent, 1))
        reg = v1.losses.get_regularization_losses()
        reg_loss = tf.add_n(reg) if reg else tf.constant(0.0)
        loss = 1.0 * reg_loss + label_loss
        variables = v1.trainable_variables()
        grads = v1.gradients(loss, variables)
        # The step takes the fetched gradients: run in one go with ref variables, the update
        # of one variable can race the backward pass still reading it (TF 1 graphs do not
        # order them), which made the LSTM kernels' step irreproducible.
        fed = [v1.placeholder(tf.float32, v.shape) for v in variables]
        clipped = [v1.clip_by_norm(gr, 1.0) for gr in fed]
        step = v1.train.AdamOptimizer(0.01).apply_gradients(list(zip(clipped, variables)))
        with v1.Session(graph=g) as s:
            s.run(v1.global_variables_initializer())
            feed = {x_raw: raw, nf: np.array(lengths, np.int32), y: labels}
            before = s.run(variables)
            state = v1.global_variables()
            extra = [v for v in state if v not in variables and "Adam" not in v.op.name
                     and "power" not in v.op.name]
            state_before = s.run(extra)
            # As train.py: the moving-statistics updates run with the forward pass.
            p, ll, rl, l, gs, idx, _ = s.run(
                [pred, label_loss, reg_loss, loss, grads, sampled, update_ops], feed)
            state_after = s.run(extra)
            s.run(step, dict(zip(fed, gs)))
            after = s.run(variables)
    arrays = {"in_lengths": np.array(lengths, np.int64), "in_labels": labels}
    for n, f in zip(("in_rgb", "in_audio"), feats):
        arrays[n] = f
    arrays.update(predictions=p, label_loss=np.float32(ll), reg_loss=np.float32(rl), loss=np.float32(l))
    names = [v.op.name for v in variables]
    for n, a, gr, z in zip(names, before, gs, after):
        arrays["var/" + n] = a
        arrays["grad/" + n] = gr
        arrays["step/" + n] = z
    # Non-trainable state (batch norm's moving mean / variance) before and after the forward.
    for v, a, z in zip(extra, state_before, state_after):
        arrays["state/" + v.op.name] = a
        arrays["state_after/" + v.op.name] = z
    if idx:
        arrays["sample_index"] = idx[0][:, :, 1].astype(np.int64)  # [B, iterations] frames
    return arrays, {"model": name, "feature_dims": dims, "num_classes": classes, "lengths": lengths,
                    "seed": seed, "flags": flags, "variables": names,
                    "tensorflow": tf.__version__, "starter_commit": "e6f6bf6"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--starter", required=True, help="a checkout of github.com/google/youtube-8m")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    tf, flm = load_starter(os.path.abspath(a.starter))
    os.makedirs(a.out, exist_ok=True)
    dims, classes, lengths = [6, 3], 7, [5, 3, 1, 4]
    cases = [
        ("frame_logistic", lambda m: m.FrameLevelLogisticModel(), {}),
        ("lstm", lambda m: m.LstmModel(), {"lstm_cells": 5, "lstm_layers": 2, "moe_num_mixtures": 2}),
        ("dbof", lambda m: m.DbofModel(),
         {"iterations": 6, "dbof_cluster_size": 8, "dbof_hidden_size": 5, "moe_num_mixtures": 2}),
    ]
    for i, (name, make, flags) in enumerate(cases):
        arrays, meta = run(tf, flm, name, make, dims, classes, lengths, 100 + i, flags)
        np.savez(os.path.join(a.out, name + ".npz"), **arrays)
        with open(os.path.join(a.out, name + ".json"), "w") as f:
            json.dump(meta, f, indent=1)
        print(name, "loss", float(arrays["loss"]), "variables", meta["variables"])


if __name__ == "__main__":
    main()
