#!/usr/bin/env python3
"""Checks that files written by `yt8m synth` parse with TensorFlow's own parser, as the
official starter code parses them, and prints per-file counts, ids, labels and byte sums
(compare with `yt8m inspect --json`).

Usage (TensorFlow in a venv outside the repo):
    python3 -m venv ~/.cache/yt8m/tfvenv && ~/.cache/yt8m/tfvenv/bin/pip install tensorflow-cpu
    ~/.cache/yt8m/tfvenv/bin/python scripts/check_tf_parse.py --level frame DIR/*.tfrecord
"""
import argparse
import json
import sys

import numpy as np
import tensorflow as tf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--level", choices=["frame", "video"], default="frame")
    args = ap.parse_args()
    out = []
    for f in args.files:
        n = 0
        frames = []
        label_count = 0
        rgb_sum = 0
        ids = []
        for rec in tf.data.TFRecordDataset(f):
            if args.level == "frame":
                ctx, seq = tf.io.parse_single_sequence_example(
                    rec,
                    context_features={"id": tf.io.FixedLenFeature([], tf.string),
                                      "labels": tf.io.VarLenFeature(tf.int64)},
                    sequence_features={"rgb": tf.io.FixedLenSequenceFeature([], tf.string),
                                       "audio": tf.io.FixedLenSequenceFeature([], tf.string)})
                rgb = tf.reshape(tf.io.decode_raw(seq["rgb"], tf.uint8), [-1, 1024])
                audio = tf.reshape(tf.io.decode_raw(seq["audio"], tf.uint8), [-1, 128])
                assert rgb.shape[0] == audio.shape[0]
                frames.append(int(rgb.shape[0]))
                rgb_sum += int(np.sum(rgb.numpy(), dtype=np.int64))
            else:
                ctx = tf.io.parse_single_example(
                    rec,
                    features={"id": tf.io.FixedLenFeature([], tf.string),
                              "labels": tf.io.VarLenFeature(tf.int64),
                              "mean_rgb": tf.io.FixedLenFeature([1024], tf.float32),
                              "mean_audio": tf.io.FixedLenFeature([128], tf.float32)})
            ids.append(ctx["id"].numpy().decode())
            label_count += int(tf.size(ctx["labels"].values))
            n += 1
        out.append({"path": f, "records": n, "first_ids": ids[:3], "labels": label_count,
                    "frames_min": min(frames) if frames else None,
                    "frames_max": max(frames) if frames else None, "rgb_byte_sum": rgb_sum})
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    sys.exit(main())
