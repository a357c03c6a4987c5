#!/usr/bin/env python3
"""The official extractor's output on the test videos, for tests/extract.rs's bit-exactness check.

Makes small test videos with ffmpeg (tests/fixtures/extract/videos: H.264 with AAC audio, MPEG-4
AVI, VP9 WebM at 29.97 fps, variable frame rate, no audio) and runs google/youtube-8m's
extract_tfrecords_main.py loop on each, as published (OpenCV frame_iterator, BGR -> RGB,
session.run of `pca_final_feature:0` built as feature_extractor.py builds it, quantize, the
float32 running mean), with the stand-in extractor files of tests/fixtures/extract (written by
scripts/inception_standin.py). Writes videos/reference.npz: per video i, `rgb_<i>` (uint8
[frames, 1024]) and `mean_rgb_<i>` (float32 [1024]), and `names` (the file names, in order).

  ~/.cache/yt8m/tfvenv/bin/python scripts/extract_reference.py tests/fixtures/extract
"""
import os
import subprocess
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import cv2  # noqa: E402
import tensorflow as tf  # noqa: E402

tf1 = tf.compat.v1
model_dir = sys.argv[1]
out = os.path.join(model_dir, "videos")
os.makedirs(out, exist_ok=True)

VIDEOS = {
    "h264_aac.mp4": ["-f", "lavfi", "-i", "testsrc2=size=96x64:rate=30:duration=4",
                     "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000:duration=4",
                     "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    "mpeg4.avi": ["-f", "lavfi", "-i", "testsrc2=size=80x48:rate=25:duration=3", "-c:v", "mpeg4"],
    "vp9.webm": ["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30000/1001:duration=3",
                 "-c:v", "libvpx-vp9", "-b:v", "100k"],
    "vfr.mp4": ["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30:duration=5",
                "-vf", "select='not(mod(n\\,7))+between(n\\,80\\,110)'", "-fps_mode", "vfr",
                "-c:v", "libx264", "-pix_fmt", "yuv420p"],
}


def frame_iterator(filename, every_ms=1000, max_num_frames=300):
    video_capture = cv2.VideoCapture()
    if not video_capture.open(filename):
        return
    last_ts = -99999
    num_retrieved = 0
    while num_retrieved < max_num_frames:
        while video_capture.get(0) < every_ms + last_ts:
            if not video_capture.read()[0]:
                return
        last_ts = video_capture.get(0)
        has_frames, frame = video_capture.read()
        if not has_frames:
            break
        yield frame
        num_retrieved += 1


def quantize(features, min_quantized_value=-2.0, max_quantized_value=2.0):
    assert features.dtype == "float32"
    features = np.clip(features, min_quantized_value, max_quantized_value)
    quantize_range = max_quantized_value - min_quantized_value
    features = (features - min_quantized_value) * (255.0 / quantize_range)
    return np.array([int(round(f)) for f in features], dtype=np.uint8)


mean = np.load(os.path.join(model_dir, "mean.npy"))[:, 0]
vals = np.load(os.path.join(model_dir, "eigenvals.npy"))[:1024, 0]
vecs = np.load(os.path.join(model_dir, "eigenvecs.npy")).T[:, :1024]
width = mean.shape[0]  # 2048 in the published files; the stand-in's pool_3 width here
graph_def = tf1.GraphDef.FromString(open(os.path.join(model_dir, "classify_image_graph_def.pb"), "rb").read())
graph = tf.Graph()
with graph.as_default():
    tf1.import_graph_def(graph_def, name="")
    sess = tf1.Session()
    feats = graph.get_tensor_by_name("pool_3/_reshape:0")[0] - tf.constant(mean, dtype=tf.float32)
    feats = tf.reshape(tf.matmul(tf.reshape(feats, [1, width]), tf.constant(vecs, dtype=tf.float32)), [1024])
    tf.divide(feats, tf.sqrt(tf.constant(vals, dtype=tf.float32) + 1e-4), name="pca_final_feature")

arrays = {"names": np.array(list(VIDEOS))}
for i, (name, args) in enumerate(VIDEOS.items()):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y"] + args + [path], check=True)
    rgb, total = [], None
    for frame in frame_iterator(path):
        f = sess.run("pca_final_feature:0", feed_dict={"DecodeJpeg:0": frame[:, :, ::-1]})
        total = f.copy() if total is None else total + f
        rgb.append(quantize(f))
    arrays[f"rgb_{i}"] = np.stack(rgb)
    arrays[f"mean_rgb_{i}"] = total / len(rgb)
    print(name, os.path.getsize(path), "bytes,", len(rgb), "frames")
np.savez(os.path.join(out, "reference.npz"), **arrays)
