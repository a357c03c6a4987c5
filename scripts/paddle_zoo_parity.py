#!/usr/bin/env python3
"""Reference fixtures for NeXtVLAD and AttentionCluster (issue 18), produced by PaddlePaddle's
own legacy video zoo: `PaddleCV/video/models/{nextvlad,attention_cluster}` and
`reader/feature_reader.py` of github.com/PaddlePaddle/models at commit 0173b12c (the last one
that holds them; 1a3c1f75 deleted PaddleCV), run in paddlepaddle 2.6.2's static graph.

That code is written against `paddle.fluid` (Paddle 1.x), which 2.6 no longer ships. The
upstream files are imported unchanged behind a `paddle.fluid` shim whose every function is the
2.6 static-graph op that the 1.x function appended (`fc`, `batch_norm`, `conv2d`, the raw
`norm` op of `l2_normalize`, `dropout` with `downgrade_in_infer`, ...). Two things the shim
does differently, both without changing what is computed:

* LoD sequences (NeXtVLAD's frames arrive as one [total_frames, D] tensor with a level-1 LoD):
  `sequence_pool(x, 'sum')` is `paddle.geometric.segment_sum` over a fed segment-id vector and
  `lod_reset` is the identity, so every per-frame op (fc, batch norm over all frames of the
  batch, softmax) sees exactly the frames that Paddle 1.x saw, and no padding.
* NeXtVLAD's widths: `nextvlad_model.py` hard-codes the input widths 1024 / 128 as the
  `feature_size` of its two NeXtVLAD blocks (expansion width = expansion x feature_size). For
  small fixtures the blocks are built with the fixture's own input widths instead (the
  generator subclasses `NeXtVLAD` and replaces only those two numbers); at full size they are
  the same numbers.
* AttentionCluster's widths: `attention_cluster.py` hard-codes its two hidden layers as
  `fc(size=1024)` and `fc(size=4096)` (4.2 M parameters: 50 MB of fixture). For the fixture the
  shim's `fc` maps those two sizes to 16 and 24 while the model is built; the widths are
  config keys of ours (`fc_out1_size`, `fc_out2_size`, default 1024 / 4096).

Per model, tests/fixtures/paddle_zoo/<model>.npz holds, float32 (the upstream code casts its
inputs to float32 itself):

  in_rgb, in_audio (uint8 [B, T, D]), in_lengths (int64 [B]), in_labels (float32 [B, C]),
  var/<name>       every parameter before the step (Paddle names and layouts),
  state/<name>, state_after/<name>
                   batch norm's moving statistics before and after the training forward,
  logits           [B, C] of the training program (dropout off: drop_rate 0 there),
  loss             mean over videos of the summed sigmoid cross-entropy (the upstream loss),
  grad/<name>      d loss / d parameter (before L2 decay, which the optimizer adds),
  step/<name>      every parameter after one step of the upstream optimizer
                   (Adam; NeXtVLAD: L2Decay(l2_penalty) on the logistic layer, piecewise lr),
  test_predictions [B, C] of the inference program after the step (drop_rate 0.5, so
                   `downgrade_in_infer` scales by 0.5; batch norm on the moving statistics),
  NeXtVLAD only:   eigenvals (the synthetic eigenvalue file fed as `eigen_file`),
  AttentionCluster only: sample_index [B, seg_num] (feature_reader.generate_random_idx,
                   seeded), the frames the reader drew for each video.

and <model>.json with the widths and settings used.

Run (paddlepaddle 2.6.2 from PyPI, in a venv outside the repo; the legacy code from the git
history of PaddlePaddle/models):

  python3 -m venv ~/.cache/yt8m/paddlevenv
  ~/.cache/yt8m/paddlevenv/bin/pip install paddlepaddle==2.6.2 'numpy<2'
  git -C models archive 0173b12c PaddleCV/video/models PaddleCV/video/reader | tar -x -C /tmp/pvideo
  ~/.cache/yt8m/paddlevenv/bin/python scripts/paddle_zoo_parity.py \
      --video /tmp/pvideo/PaddleCV/video --out tests/fixtures/paddle_zoo
"""
import argparse
import copy
import importlib.util
import json
import os
import sys
import types

import numpy as np


# ---------------------------------------------------------------------------------------------
# paddle.fluid (1.x) on paddle 2.6's static graph


class _Seg:
    """Segment ids of the LoD input being built (set by the generator)."""

    ids = None


def make_fluid():
    import paddle
    import paddle.nn.functional as F
    from paddle.base.layer_helper import LayerHelper

    fluid = types.ModuleType("paddle.fluid")
    layers = types.ModuleType("paddle.fluid.layers")
    fluid.layers = layers
    fluid.ParamAttr = paddle.ParamAttr
    fluid.framework = types.SimpleNamespace(Parameter=paddle.base.framework.Parameter)

    init = types.ModuleType("paddle.fluid.initializer")

    def MSRA(uniform=True):
        return paddle.nn.initializer.KaimingUniform() if uniform else paddle.nn.initializer.KaimingNormal()

    init.MSRA = MSRA
    init.Constant = lambda value=0.0: paddle.nn.initializer.Constant(value)
    init.Normal = lambda loc=0.0, scale=1.0: paddle.nn.initializer.Normal(loc, scale)
    init.NumpyArrayInitializer = lambda value: paddle.nn.initializer.Assign(value)
    fluid.initializer = init
    fluid.regularizer = types.SimpleNamespace(
        L2DecayRegularizer=lambda c: paddle.regularizer.L2Decay(c))
    fluid.optimizer = types.SimpleNamespace(
        AdamOptimizer=lambda learning_rate: paddle.optimizer.Adam(learning_rate=learning_rate))

    def data(name, shape, dtype="float32", lod_level=0):
        return paddle.static.data(name=name, shape=shape, dtype=dtype, lod_level=lod_level)

    fluid.data = data

    def fc(input, size, act=None, name=None, param_attr=None, bias_attr=None):
        return paddle.static.nn.fc(input, size, weight_attr=param_attr, bias_attr=bias_attr,
                                   activation=act, name=name)

    def batch_norm(input, act=None, is_test=False):
        return paddle.static.nn.batch_norm(input, act=act, is_test=is_test)

    def conv2d(input, num_filters, filter_size, param_attr=None, bias_attr=None):
        return paddle.static.nn.conv2d(input, num_filters, filter_size,
                                       param_attr=param_attr, bias_attr=bias_attr)

    def elementwise(op):
        def f(x, y, axis=-1):
            # 1.x broadcasting: y's dimensions line up with x's from `axis` on.
            if axis >= 0 and len(y.shape) + axis < len(x.shape):
                y = paddle.reshape(y, list(y.shape) + [1] * (len(x.shape) - axis - len(y.shape)))
            return op(x, y)
        return f

    def l2_normalize(x, axis, epsilon=1e-12):
        # fluid.layers.l2_normalize appended the `norm` op: x / sqrt(sum(x^2) + epsilon).
        if axis < 0:
            axis += len(x.shape)
        h = LayerHelper("l2_normalize")
        out = h.create_variable_for_type_inference(x.dtype)
        norm = h.create_variable_for_type_inference(x.dtype)
        h.append_op(type="norm", inputs={"X": x}, outputs={"Out": out, "Norm": norm},
                    attrs={"axis": axis, "epsilon": epsilon})
        return out

    def sequence_pool(x, pool_type):
        assert pool_type == "sum", pool_type
        return paddle.geometric.segment_sum(x, _Seg.ids)

    def dropout(x, dropout_prob, is_test=False):
        return F.dropout(x, dropout_prob, training=not is_test, mode="downscale_in_infer")  # 1.x: downgrade_in_infer

    def create_parameter(shape, dtype, attr=None, default_initializer=None):
        return paddle.static.create_parameter(shape, dtype, attr=attr,
                                              default_initializer=default_initializer)

    def sigmoid_cross_entropy_with_logits(x, label):
        return F.binary_cross_entropy_with_logits(x, label, reduction="none")

    layers.fc = fc
    layers.batch_norm = batch_norm
    layers.conv2d = conv2d
    layers.cast = paddle.cast
    layers.scale = lambda x, scale=1.0, bias=0.0: paddle.scale(x, scale=scale, bias=bias)
    layers.reshape = lambda x, shape: paddle.reshape(x, shape)
    layers.softmax = lambda x: F.softmax(x, axis=-1)
    layers.elementwise_mul = elementwise(paddle.multiply)
    layers.elementwise_sub = elementwise(paddle.subtract)
    layers.reduce_sum = lambda x, dim=None: paddle.sum(x, axis=dim)
    layers.expand = lambda x, expand_times: paddle.tile(x, expand_times)
    layers.transpose = lambda x, perm: paddle.transpose(x, perm)
    layers.lod_reset = lambda x, y=None: x
    layers.matmul = paddle.matmul
    layers.l2_normalize = l2_normalize
    layers.sequence_pool = sequence_pool
    layers.concat = lambda input, axis=0: paddle.concat(input, axis=axis)
    layers.dropout = dropout
    layers.create_parameter = create_parameter
    layers.sigmoid_cross_entropy_with_logits = sigmoid_cross_entropy_with_logits
    layers.mean = lambda x: paddle.mean(x)
    layers.sigmoid = F.sigmoid
    layers.shape = paddle.shape
    layers.squeeze = lambda x, axes: paddle.squeeze(x, axes)
    layers.unsqueeze = lambda x, axes: paddle.unsqueeze(x, axes)
    layers.slice = lambda x, axes, starts, ends: paddle.slice(x, axes, starts, ends)
    layers.piecewise_decay = lambda boundaries, values: paddle.optimizer.lr.PiecewiseDecay(
        boundaries, values)
    return fluid


def load_legacy(video_dir):
    """Imports the upstream model and reader files (unchanged) behind the shim."""
    import paddle

    paddle.enable_static()
    fluid = make_fluid()
    paddle.fluid = fluid
    sys.modules["paddle.fluid"] = fluid
    # Imported by model.py / reader_utils.py for downloads and video decoding; unused here.
    sys.modules.setdefault("wget", types.ModuleType("wget"))
    sys.modules.setdefault("cv2", types.ModuleType("cv2"))
    for pkg, sub in (("legacy_models", "models"), ("legacy_reader", "reader")):
        m = types.ModuleType(pkg)
        m.__path__ = [os.path.join(video_dir, sub)]
        sys.modules[pkg] = m
    import importlib

    mods = {
        "nextvlad": importlib.import_module("legacy_models.nextvlad.nextvlad"),
        "nextvlad_model": importlib.import_module("legacy_models.nextvlad.nextvlad_model"),
        "attention_cluster": importlib.import_module(
            "legacy_models.attention_cluster.attention_cluster"),
        "feature_reader": importlib.import_module("legacy_reader.feature_reader"),
        "utils": importlib.import_module("legacy_models.utils"),
    }
    return mods


# ---------------------------------------------------------------------------------------------


def batch(rng, b, t, dims, c, lengths):
    rgb = rng.integers(0, 256, size=(b, t, dims[0]), dtype=np.uint8)
    audio = rng.integers(0, 256, size=(b, t, dims[1]), dtype=np.uint8)
    for i, n in enumerate(lengths):
        rgb[i, n:] = 0
        audio[i, n:] = 0
    labels = np.zeros((b, c), np.float32)
    for i in range(b):
        labels[i, rng.choice(c, size=1 + i % 3, replace=False)] = 1.0
    return rgb, audio, np.asarray(lengths, np.int64), labels


def run_programs(build, feed_of, seed):
    """Builds the training program (with the upstream optimizer) and the inference program,
    runs one training step and then inference. Returns the arrays."""
    import paddle

    paddle.seed(seed)
    out = {}
    train_prog, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(train_prog, startup), paddle.utils.unique_name.guard():
        model = build("train")
        loss = model.loss()
        opt = model.optimizer()
        opt.minimize(loss)
        logits = model.logits if hasattr(model, "logits") else model.logit
    test_prog = paddle.static.Program()
    with paddle.static.program_guard(test_prog, paddle.static.Program()), \
            paddle.utils.unique_name.guard():
        tmodel = build("test")
        preds = tmodel.predictions if hasattr(tmodel, "predictions") else tmodel.output
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    scope = paddle.static.global_scope()
    params = [p for p in train_prog.all_parameters()]
    trainable = [p.name for p in params if p.trainable]
    # Batch norm's moving statistics are persistable, non-trainable.
    state = sorted(v.name for v in train_prog.list_vars()
                   if v.persistable and ("batch_norm" in v.name and (".w_1" in v.name or ".w_2" in v.name)))
    get = lambda n: np.array(scope.find_var(n).get_tensor())
    for n in trainable:
        out[f"var/{n}"] = get(n)
    for n in state:
        out[f"state/{n}"] = get(n)
    fetch = [loss, logits] + [train_prog.global_block().var(n + "@GRAD") for n in trainable]
    res = exe.run(train_prog, feed=feed_of("train"), fetch_list=fetch)
    out["loss"] = np.asarray(res[0], np.float32).reshape(())
    out["logits"] = res[1]
    for n, g in zip(trainable, res[2:]):
        out[f"grad/{n}"] = g
    for n in trainable:
        out[f"step/{n}"] = get(n)
    for n in state:
        out[f"state_after/{n}"] = get(n)
    (p,) = exe.run(test_prog, feed=feed_of("test"), fetch_list=[preds])
    out["test_predictions"] = p
    return out


def nextvlad_fixture(mods, rng, tmp):
    dims, c = [16, 8], 6
    lengths = [5, 3, 4]
    b, t = len(lengths), max(lengths)
    rgb, audio, lens, labels = batch(rng, b, t, dims, c, lengths)
    eig = (rng.random((dims[0], 1)) * 3.0 + 0.1).astype(np.float32)
    eig_path = os.path.join(tmp, "eigenvals.npy")
    np.save(eig_path, eig)
    settings = dict(cluster_size=4, hidden_size=12, groups=2, expansion=2,
                    gating_reduction=4, l2_penalty=1e-5, learning_rate=2e-4)
    nm = mods["nextvlad_model"]
    base = nm.NeXtVLAD

    class SmallWidths(base):
        # Only the hard-coded widths change (1024 → dims[0], 128 → dims[1]).
        def __init__(self, feature_size, *a, **k):
            super().__init__({1024: dims[0], 128: dims[1]}[feature_size], *a, **k)

    nm.NeXtVLAD = SmallWidths
    AttrDict = mods["utils"].AttrDict

    def cfg(drop):
        return AttrDict(
            MODEL=AttrDict(num_classes=c, video_feature_size=dims[0], audio_feature_size=dims[1],
                           cluster_size=settings["cluster_size"], hidden_size=settings["hidden_size"],
                           groups=settings["groups"], expansion=settings["expansion"],
                           drop_rate=drop, gating_reduction=settings["gating_reduction"],
                           eigen_file=eig_path),
            TRAIN=AttrDict(learning_rate=settings["learning_rate"], lr_boundary_examples=2000000,
                           max_iter=700000, learning_rate_decay=0.8,
                           l2_penalty=settings["l2_penalty"], gradient_clip_norm=1.0,
                           use_gpu=False, num_gpus=1, batch_size=b),
            TEST=AttrDict(batch_size=b))

    def build(mode):
        import paddle

        m = mods["nextvlad"].NEXTVLAD("NEXTVLAD", cfg(0.0 if mode == "train" else 0.5), mode=mode)
        m.build_input(use_dataloader=False)
        _Seg.ids = paddle.static.data(name="seg_ids", shape=[None], dtype="int32")
        m.build_model()
        return m

    flat = lambda x: np.concatenate([x[i, :n] for i, n in enumerate(lengths)], 0)
    seg = np.concatenate([np.full(n, i, np.int32) for i, n in enumerate(lengths)])

    def feed_of(mode):
        pre = "train" if mode == "train" else "test"
        f = {f"{pre}_rgb": flat(rgb), f"{pre}_audio": flat(audio), "seg_ids": seg}
        if mode != "infer":
            f[f"{pre}_label"] = labels
        return f

    out = run_programs(build, feed_of, seed=7)
    nm.NeXtVLAD = base
    out.update(in_rgb=rgb, in_audio=audio, in_lengths=lens, in_labels=labels, eigenvals=eig)
    meta = dict(feature_dims=dims, num_classes=c, drop_rate=0.5, optimizer="Adam",
                batch_norm=dict(momentum=0.9, epsilon=1e-5), **settings)
    return out, meta


def attention_cluster_fixture(mods, rng):
    dims, c = [12, 6], 5
    lengths = [7, 2, 5, 9]
    seg_num, clusters = 4, [3, 2]
    b, t = len(lengths), max(lengths)
    rgb, audio, lens, labels = batch(rng, b, t, dims, c, lengths)
    fr = mods["feature_reader"]
    np.random.seed(5)
    index = np.asarray([fr.generate_random_idx(n, seg_num) for n in lengths], np.int64)
    deq = lambda q: fr.dequantize(q.astype(float), 2.0, -2.0).astype(np.float32)
    x_rgb = np.stack([deq(rgb[i, idx]) for i, idx in enumerate(index)])
    x_audio = np.stack([deq(audio[i, idx]) for i, idx in enumerate(index)])
    AttrDict = mods["utils"].AttrDict
    lr = 1e-3
    hidden = {1024: 16, 4096: 24}
    fluid = sys.modules["paddle.fluid"]
    fc = fluid.layers.fc

    def build(mode):
        cfg = AttrDict(
            MODEL=AttrDict(feature_num=2, feature_names=["rgb", "audio"], feature_dims=dims,
                           seg_num=seg_num, cluster_nums=clusters, num_classes=c,
                           drop_rate=0.0 if mode == "train" else 0.5),
            TRAIN=AttrDict(learning_rate=lr, batch_size=b), TEST=AttrDict(batch_size=b))
        m = mods["attention_cluster"].AttentionCluster("AttentionCluster", cfg, mode=mode)
        m.build_input(use_dataloader=False)
        fluid.layers.fc = lambda input, size, **k: fc(input, hidden.get(size, size), **k)
        try:
            m.build_model()
        finally:
            fluid.layers.fc = fc
        return m

    def feed_of(mode):
        f = {"rgb": x_rgb, "audio": x_audio}
        if mode != "infer":
            f["label"] = labels
        return f

    out = run_programs(build, feed_of, seed=9)
    out.update(in_rgb=rgb, in_audio=audio, in_lengths=lens, in_labels=labels,
               sample_index=index)
    meta = dict(feature_dims=dims, num_classes=c, seg_num=seg_num, cluster_nums=clusters,
                fc1_size=hidden[1024], fc2_size=hidden[4096], drop_rate=0.5, optimizer="Adam", learning_rate=lr)
    return out, meta


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", required=True, help="PaddleCV/video of PaddlePaddle/models @0173b12c")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import tempfile
    import paddle

    mods = load_legacy(args.video)
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in (("nextvlad", lambda r: nextvlad_fixture(mods, r, tmp)),
                           ("attention_cluster", lambda r: attention_cluster_fixture(mods, r))):
            arrays, meta = make(np.random.default_rng(18))
            meta.update(paddlepaddle=paddle.__version__, numpy=np.__version__,
                        upstream="PaddlePaddle/models@0173b12c3974de44b0bdeb06802d6f27cb66dc65")
            np.savez_compressed(os.path.join(args.out, f"{name}.npz"), **arrays)
            with open(os.path.join(args.out, f"{name}.json"), "w") as f:
                json.dump(meta, f, indent=1, sort_keys=True)
            print(name, {k: v.shape for k, v in arrays.items() if not k.startswith(("grad/", "step/"))})


if __name__ == "__main__":
    main()
