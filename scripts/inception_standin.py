#!/usr/bin/env python3
"""Writes a stand-in for the 2015 Inception-v3 graph (`classify_image_graph_def.pb` from
inception-2015-12-05.tgz) and what TensorFlow computes with it, for tests/extract.rs.

The real file can't be downloaded here (nor in CI), so the stand-in has the real graph's op
types, node names, attributes and GraphDef producer version (5, so TensorFlow still imports the
deprecated BatchNormWithGlobalNormalization) with small random weights: DecodeJpeg/contents ->
DecodeJpeg -> Cast -> ExpandDims -> ResizeBilinear -> Sub -> Mul -> conv blocks (Conv2D,
BatchNormWithGlobalNormalization, CheckNumerics + control-dependent Identity, Relu), MaxPool,
"mixed" blocks joined by the old Concat op (branches with SAME padding, strided and odd sizes,
an AvgPool branch) -> pool_3 (AvgPool) -> pool_3/_reshape. TensorFlow then runs it exactly as
google/youtube-8m's feature_extractor.py does: tf.import_graph_def, feed `DecodeJpeg:0` with a
uint8 HxWx3 frame, fetch `pool_3/_reshape:0`.

  ~/.cache/yt8m/tfvenv/bin/python scripts/inception_standin.py tests/fixtures/extract

Writes an extractor directory as the official code lays it out: classify_image_graph_def.pb (the
stand-in) and a stand-in PCA in the published layout (mean.npy [C, 1], eigenvals.npy [1024, 1],
eigenvecs.npy [1024, C]: the official slicing keeps eigenvecs.T[:, :1024], so rows past 1024 of
the published square matrix are never read). Then, per test frame: frames_<i>.npy (uint8 HxWx3),
pool3_<i>.npy (float32 [1, C]: pool_3/_reshape:0), pca_<i>.npy (float32 [1024]: the
`pca_final_feature` ops feature_extractor.py appends to the graph, run by TensorFlow) and
quant_<i>.npy (uint8 [1024]: extract_tfrecords_main.py's quantize of that).
"""
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from yt8m_official import GraphDefWriter, add_pca_final_feature, quantize  # noqa: E402

tf1 = tf.compat.v1
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.RandomState(2015)
SIZE = 75  # the real graph resizes to 299

w = GraphDefWriter(tf)
g, node, a_type, a_ints, a_str, const = w.g, w.node, w.a_type, w.a_ints, w.a_str, w.const
pool, concat = w.pool, w.concat


F = tf.float32
node("DecodeJpeg/contents", "Placeholder", dtype=a_type(tf.string))
node("DecodeJpeg", "DecodeJpeg", ["DecodeJpeg/contents"], channels=tf1.AttrValue(i=3), ratio=tf1.AttrValue(i=1))
node("Cast", "Cast", ["DecodeJpeg"], SrcT=a_type(tf.uint8), DstT=a_type(F))
const("ExpandDims/dim", 0, tf.int32)
node("ExpandDims", "ExpandDims", ["Cast", "ExpandDims/dim"], T=a_type(F), Tdim=a_type(tf.int32))
const("ResizeBilinear/size", [SIZE, SIZE], tf.int32)
node("ResizeBilinear", "ResizeBilinear", ["ExpandDims", "ResizeBilinear/size"], T=a_type(F),
     align_corners=tf1.AttrValue(b=False))
const("Sub/y", 128.0)
node("Sub", "Sub", ["ResizeBilinear", "Sub/y"], T=a_type(F))
const("Mul/y", 0.0078125)
node("Mul", "Mul", ["Sub", "Mul/y"], T=a_type(F))


def conv(name, x, cin, cout, k, stride=1, padding="VALID"):
    kh, kw = (k, k) if isinstance(k, int) else k
    w = rng.normal(0, 1.0 / np.sqrt(kh * kw * cin), (kh, kw, cin, cout))
    const(f"{name}/conv2d_params", w)
    node(f"{name}/Conv2D", "Conv2D", [x, f"{name}/conv2d_params"], T=a_type(F),
         strides=a_ints([1, stride, stride, 1]), padding=a_str(padding),
         use_cudnn_on_gpu=tf1.AttrValue(b=True))
    for p, v in [("beta", rng.normal(0, 0.1, cout)), ("gamma", rng.uniform(0.5, 1.5, cout)),
                 ("moving_mean", rng.normal(0, 0.2, cout)), ("moving_variance", rng.uniform(0.5, 2.0, cout))]:
        const(f"{name}/batchnorm/{p}", v)
    node(f"{name}/batchnorm", "BatchNormWithGlobalNormalization",
         [f"{name}/Conv2D", f"{name}/batchnorm/moving_mean", f"{name}/batchnorm/moving_variance",
          f"{name}/batchnorm/beta", f"{name}/batchnorm/gamma"],
         T=a_type(F), variance_epsilon=tf1.AttrValue(f=0.001),
         scale_after_normalization=tf1.AttrValue(b=False))
    node(f"{name}/CheckNumerics", "CheckNumerics", [f"{name}/batchnorm"], T=a_type(F),
         message=a_str("batchnorm"))
    node(f"{name}/control_dependency", "Identity", [f"{name}/batchnorm", f"^{name}/CheckNumerics"], T=a_type(F))
    return node(name, "Relu", [f"{name}/control_dependency"], T=a_type(F))


x = conv("conv", "Mul", 3, 8, 3, stride=2)                 # 37
x = conv("conv_1", x, 8, 8, 3)                             # 35
x = conv("conv_2", x, 8, 12, 3, padding="SAME")            # 35
x = pool("pool", "MaxPool", x, 3, 2, "VALID")              # 17
b1 = conv("mixed/conv", x, 12, 6, 1)
b2 = conv("mixed/tower/conv", x, 12, 6, 1)
b2 = conv("mixed/tower/conv_1", b2, 6, 8, 5, padding="SAME")
b3 = pool("mixed/tower_2/pool", "AvgPool", x, 3, 1, "SAME")
b3 = conv("mixed/tower_2/conv", b3, 12, 4, 1)
x = concat("mixed/join", [b1, b2, b3])                     # 17 x 17 x 18
c1 = conv("mixed_1/conv", x, 18, 8, 3, stride=2, padding="SAME")          # 9
c2 = conv("mixed_1/tower/conv", x, 18, 6, (1, 7), padding="SAME")
c2 = conv("mixed_1/tower/conv_1", c2, 6, 6, (7, 1), padding="SAME")
c2 = conv("mixed_1/tower/conv_2", c2, 6, 6, 3, stride=2, padding="SAME")  # 9
c3 = pool("mixed_1/pool", "MaxPool", x, 3, 2, "SAME")                    # 9
x = concat("mixed_1/join", [c1, c2, c3])                   # 9 x 9 x 32
x = pool("pool_3", "AvgPool", x, 9, 1, "VALID")
const("pool_3/_reshape/shape", [1, 32], tf.int32)
node("pool_3/_reshape", "Reshape", ["pool_3", "pool_3/_reshape/shape"], T=a_type(F), Tshape=a_type(tf.int32))

with open(os.path.join(out, "classify_image_graph_def.pb"), "wb") as f:
    f.write(g.SerializeToString())

graph = tf.Graph()
with graph.as_default():
    tf1.import_graph_def(g, name="")
    sess = tf1.Session()
    # The stand-in PCA (float64 files, as numpy saves them), from its own generator so the
    # graph and frames stay as they were; centred on these frames' activations, and whitened so
    # that the features spread over the quantizer's [-2, 2] with some clipped.
    frames = [rng.randint(0, 256, (h, w, 3)).astype(np.uint8) for h, w in [(60, 80), (75, 75), (131, 97), (7, 9)]]
    pools = [sess.run("pool_3/_reshape:0", feed_dict={"DecodeJpeg:0": f})[0] for f in frames]
    prng = np.random.RandomState(8)
    C, K = 32, 1024
    pca_mean = (np.mean(pools, axis=0) + prng.normal(0, 0.02, C))[:, None]
    pca_eigenvals = np.sort(prng.uniform(0.001, 0.03, (K, 1)), axis=0)[::-1]
    pca_eigenvecs = prng.normal(0, 1.0 / np.sqrt(C), (K, C))
    np.save(os.path.join(out, "mean.npy"), pca_mean)
    np.save(os.path.join(out, "eigenvals.npy"), pca_eigenvals)
    np.save(os.path.join(out, "eigenvecs.npy"), pca_eigenvecs)
    # feature_extractor.py's _load_pca slicing and _load_inception ops (2048 there, C here).
    add_pca_final_feature(tf, graph, pca_mean, pca_eigenvals, pca_eigenvecs)
    # Frames of several sizes, up- and down-sampled to SIZE, odd and even.
    for i, frame in enumerate(frames):
        feats, pca = sess.run(["pool_3/_reshape:0", "pca_final_feature:0"], feed_dict={"DecodeJpeg:0": frame})
        np.save(os.path.join(out, f"frames_{i}.npy"), frame)
        np.save(os.path.join(out, f"pool3_{i}.npy"), feats.astype(np.float32))
        np.save(os.path.join(out, f"pca_{i}.npy"), pca)
        np.save(os.path.join(out, f"quant_{i}.npy"), quantize(pca))
        print(i, frame.shape, feats.shape, float(np.abs(feats).max()), "pca in", float(pca.min()), float(pca.max()))
