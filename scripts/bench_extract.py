#!/usr/bin/env python3
"""The official extractor's side of `yt8m bench extract` (src/cli/bench.rs runs this, then yt8m's
extraction on the same video and files, and compares).

The official Inception file can't be downloaded here, so `prepare` writes a full-size stand-in:
the 2015 Inception-v3 graph's architecture (conv .. conv_4, mixed .. mixed_10 with their 1x7/7x1
and 1x3/3x1 towers, mixed_10's max-pool branch, pool_3 8x8 -> pool_3/_reshape [1, 2048]; 299x299
input; ~24M random weights, ~95 MB) in the 2015 op set (BatchNormWithGlobalNormalization, the
old Concat, producer 5), and a random PCA in the published shapes ([2048, 1], [2048, 2048]);
and a video (ffmpeg testsrc2, 640x360, 30 fps, SECONDS long).

`official` runs extract_tfrecords_main.py's loop as published on that video (OpenCV
frame_iterator, BGR -> RGB, one session.run of `pca_final_feature:0` per frame as
feature_extractor.py builds it, quantize, SequenceExample, TFRecordWriter) with TensorFlow on
this machine's cores, and prints {"frames": n, "seconds": s} (graph loading excluded, as for
yt8m).

  python scripts/bench_extract.py prepare WORKDIR SECONDS [EXTRACTOR_DIR]
  python scripts/bench_extract.py official WORKDIR VIDEO EXTRACTOR_DIR
"""
import json
import os
import subprocess
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import cv2  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from yt8m_official import GraphDefWriter, frame_iterator, official_session, quantize  # noqa: E402

tf1 = tf.compat.v1
rng = np.random.RandomState(3)
F = tf.float32
w = GraphDefWriter(tf)
g, node, a_type, a_ints, a_str, const = w.g, w.node, w.a_type, w.a_ints, w.a_str, w.const
pool, concat = w.pool, w.concat


def conv(name, x, cin, cout, k, stride=1, padding="VALID"):
    kh, kw = (k, k) if isinstance(k, int) else k
    const(f"{name}/conv2d_params", rng.normal(0, np.sqrt(2.0 / (kh * kw * cin)), (kh, kw, cin, cout)))
    node(f"{name}/Conv2D", "Conv2D", [x, f"{name}/conv2d_params"], T=a_type(F),
         strides=a_ints([1, stride, stride, 1]), padding=a_str(padding))
    for p, v in [("beta", rng.normal(0, 0.1, cout)), ("gamma", np.ones(cout)),
                 ("moving_mean", rng.normal(0, 0.1, cout)), ("moving_variance", rng.uniform(0.8, 1.2, cout))]:
        const(f"{name}/batchnorm/{p}", v)
    node(f"{name}/batchnorm", "BatchNormWithGlobalNormalization",
         [f"{name}/Conv2D", f"{name}/batchnorm/moving_mean", f"{name}/batchnorm/moving_variance",
          f"{name}/batchnorm/beta", f"{name}/batchnorm/gamma"],
         T=a_type(F), variance_epsilon=tf1.AttrValue(f=0.001), scale_after_normalization=tf1.AttrValue(b=False))
    node(f"{name}/CheckNumerics", "CheckNumerics", [f"{name}/batchnorm"], T=a_type(F),
         message=a_str("batchnorm"))
    node(f"{name}/control_dependency", "Identity", [f"{name}/batchnorm", f"^{name}/CheckNumerics"], T=a_type(F))
    return node(name, "Relu", [f"{name}/control_dependency"], T=a_type(F))


def block_a(n, x, cin, pool_c):
    b1 = conv(f"{n}/conv", x, cin, 64, 1)
    b2 = conv(f"{n}/tower/conv_1", conv(f"{n}/tower/conv", x, cin, 48, 1), 48, 64, 5, padding="SAME")
    b3 = conv(f"{n}/tower_1/conv", x, cin, 64, 1)
    b3 = conv(f"{n}/tower_1/conv_1", b3, 64, 96, 3, padding="SAME")
    b3 = conv(f"{n}/tower_1/conv_2", b3, 96, 96, 3, padding="SAME")
    b4 = conv(f"{n}/tower_2/conv", pool(f"{n}/tower_2/pool", "AvgPool", x, 3, 1, "SAME"), cin, pool_c, 1)
    return concat(f"{n}/join", [b1, b2, b3, b4]), 224 + pool_c


def block_c(n, x, c7):
    b1 = conv(f"{n}/conv", x, 768, 192, 1)
    b2 = conv(f"{n}/tower/conv", x, 768, c7, 1)
    b2 = conv(f"{n}/tower/conv_1", b2, c7, c7, (1, 7), padding="SAME")
    b2 = conv(f"{n}/tower/conv_2", b2, c7, 192, (7, 1), padding="SAME")
    b3 = conv(f"{n}/tower_1/conv", x, 768, c7, 1)
    for i, (k, co) in enumerate([((7, 1), c7), ((1, 7), c7), ((7, 1), c7), ((1, 7), 192)]):
        b3 = conv(f"{n}/tower_1/conv_{i + 1}", b3, c7, co, k, padding="SAME")
    b4 = conv(f"{n}/tower_2/conv", pool(f"{n}/tower_2/pool", "AvgPool", x, 3, 1, "SAME"), 768, 192, 1)
    return concat(f"{n}/join", [b1, b2, b3, b4])


def block_e(n, x, cin, pool_op):
    b1 = conv(f"{n}/conv", x, cin, 320, 1)
    t = conv(f"{n}/tower/conv", x, cin, 384, 1)
    b2 = concat(f"{n}/tower/mixed", [conv(f"{n}/tower/mixed/conv", t, 384, 384, (1, 3), padding="SAME"),
                                     conv(f"{n}/tower/mixed/conv_1", t, 384, 384, (3, 1), padding="SAME")])
    t = conv(f"{n}/tower_1/conv", x, cin, 448, 1)
    t = conv(f"{n}/tower_1/conv_1", t, 448, 384, 3, padding="SAME")
    b3 = concat(f"{n}/tower_1/mixed", [conv(f"{n}/tower_1/mixed/conv", t, 384, 384, (1, 3), padding="SAME"),
                                       conv(f"{n}/tower_1/mixed/conv_1", t, 384, 384, (3, 1), padding="SAME")])
    b4 = conv(f"{n}/tower_2/conv", pool(f"{n}/tower_2/pool", pool_op, x, 3, 1, "SAME"), cin, 192, 1)
    return concat(f"{n}/join", [b1, b2, b3, b4])


def build(out_dir):
    node("DecodeJpeg/contents", "Placeholder", dtype=a_type(tf.string))
    node("DecodeJpeg", "DecodeJpeg", ["DecodeJpeg/contents"], channels=tf1.AttrValue(i=3))
    node("Cast", "Cast", ["DecodeJpeg"], SrcT=a_type(tf.uint8), DstT=a_type(F))
    const("ExpandDims/dim", 0, tf.int32)
    node("ExpandDims", "ExpandDims", ["Cast", "ExpandDims/dim"], T=a_type(F), Tdim=a_type(tf.int32))
    const("ResizeBilinear/size", [299, 299], tf.int32)
    node("ResizeBilinear", "ResizeBilinear", ["ExpandDims", "ResizeBilinear/size"], T=a_type(F))
    const("Sub/y", 128.0)
    node("Sub", "Sub", ["ResizeBilinear", "Sub/y"], T=a_type(F))
    const("Mul/y", 0.0078125)
    node("Mul", "Mul", ["Sub", "Mul/y"], T=a_type(F))
    x = conv("conv", "Mul", 3, 32, 3, stride=2)
    x = conv("conv_1", x, 32, 32, 3)
    x = conv("conv_2", x, 32, 64, 3, padding="SAME")
    x = pool("pool", "MaxPool", x, 3, 2, "VALID")
    x = conv("conv_3", x, 64, 80, 1)
    x = conv("conv_4", x, 80, 192, 3)
    x = pool("pool_1", "MaxPool", x, 3, 2, "VALID")
    x, c = block_a("mixed", x, 192, 32)
    x, c = block_a("mixed_1", x, c, 64)
    x, c = block_a("mixed_2", x, c, 64)
    b1 = conv("mixed_3/conv", x, c, 384, 3, stride=2)
    t = conv("mixed_3/tower/conv", x, c, 64, 1)
    t = conv("mixed_3/tower/conv_1", t, 64, 96, 3, padding="SAME")
    b2 = conv("mixed_3/tower/conv_2", t, 96, 96, 3, stride=2)
    x = concat("mixed_3/join", [b1, b2, pool("mixed_3/pool", "MaxPool", x, 3, 2, "VALID")])
    for n, c7 in [("mixed_4", 128), ("mixed_5", 160), ("mixed_6", 160), ("mixed_7", 192)]:
        x = block_c(n, x, c7)
    t = conv("mixed_8/tower/conv", x, 768, 192, 1)
    b1 = conv("mixed_8/tower/conv_1", t, 192, 320, 3, stride=2)
    t = conv("mixed_8/tower_1/conv", x, 768, 192, 1)
    t = conv("mixed_8/tower_1/conv_1", t, 192, 192, (1, 7), padding="SAME")
    t = conv("mixed_8/tower_1/conv_2", t, 192, 192, (7, 1), padding="SAME")
    b2 = conv("mixed_8/tower_1/conv_3", t, 192, 192, 3, stride=2)
    x = concat("mixed_8/join", [b1, b2, pool("mixed_8/pool", "MaxPool", x, 3, 2, "VALID")])
    x = block_e("mixed_9", x, 1280, "AvgPool")
    x = block_e("mixed_10", x, 2048, "MaxPool")
    x = pool("pool_3", "AvgPool", x, 8, 1, "VALID")
    const("pool_3/_reshape/shape", [1, 2048], tf.int32)
    node("pool_3/_reshape", "Reshape", ["pool_3", "pool_3/_reshape/shape"], T=a_type(F), Tshape=a_type(tf.int32))
    with open(os.path.join(out_dir, "classify_image_graph_def.pb"), "wb") as f:
        f.write(g.SerializeToString())
    np.save(os.path.join(out_dir, "mean.npy"), rng.normal(0.3, 0.1, (2048, 1)))
    np.save(os.path.join(out_dir, "eigenvals.npy"), np.sort(rng.uniform(0.001, 0.05, (2048, 1)), axis=0)[::-1])
    np.save(os.path.join(out_dir, "eigenvecs.npy"), rng.normal(0, 1 / np.sqrt(2048), (2048, 2048)))


def official(model_dir, video, out_path):
    sess = official_session(tf, model_dir)
    t0 = time.time()
    writer = tf.io.TFRecordWriter(out_path)
    rgb_features, total = [], None
    for rgb in frame_iterator(video):
        f = sess.run("pca_final_feature:0", feed_dict={"DecodeJpeg:0": rgb[:, :, ::-1]})
        total = f if total is None else total + f
        rgb_features.append(tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(quantize(f))])))
    zero = tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(128)]))
    ex = tf.train.SequenceExample(
        context=tf.train.Features(feature={
            "id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[video.encode()])),
            "mean_rgb": tf.train.Feature(float_list=tf.train.FloatList(value=total / len(rgb_features))),
            "mean_audio": tf.train.Feature(float_list=tf.train.FloatList(value=[0.0] * 128))}),
        feature_lists=tf.train.FeatureLists(feature_list={
            "rgb": tf.train.FeatureList(feature=rgb_features),
            "audio": tf.train.FeatureList(feature=[zero] * len(rgb_features))}))
    writer.write(ex.SerializeToString())
    writer.close()
    return time.time() - t0, len(rgb_features)


def main():
    mode, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    if mode == "prepare":
        seconds = int(sys.argv[3])
        model_dir = sys.argv[4] if len(sys.argv) > 4 else os.path.join(work, "extractor")
        os.makedirs(model_dir, exist_ok=True)
        if not os.path.exists(os.path.join(model_dir, "eigenvecs.npy")):
            build(model_dir)
        video = os.path.join(work, f"clip_{seconds}s.mp4")
        if not os.path.exists(video):
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                            f"testsrc2=size=640x360:rate=30:duration={seconds}", "-c:v", "libx264",
                            "-pix_fmt", "yuv420p", video], check=True)
        print(json.dumps({"extractor": model_dir, "video": video}))
    elif mode == "official":
        video, model_dir = sys.argv[3], sys.argv[4]
        seconds, n = official(model_dir, video, os.path.join(work, "official.tfrecord"))
        print(json.dumps({"frames": n, "seconds": seconds, "tensorflow": tf.__version__,
                          "opencv": cv2.__version__}))
    else:
        raise SystemExit(f"unknown mode {mode}: prepare or official")


if __name__ == "__main__":
    main()
