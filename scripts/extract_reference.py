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
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from yt8m_official import frame_iterator, official_session, quantize  # noqa: E402

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


sess = official_session(tf, model_dir)

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
