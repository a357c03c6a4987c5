#!/usr/bin/env python3
"""TensorFlow's read + parse throughput over YouTube-8M shards, for `yt8m bench read
--tf-python PY --tf-script scripts/bench_tf_read.py`. Prints one line per configuration:
name<TAB>threads<TAB>records<TAB>seconds.

The parse is the official starter code's: tf.data.TFRecordDataset + tf.io.parse_single_
sequence_example (frame level, with decode_raw of rgb/audio) or parse_single_example (video
level), single-threaded, then with tf.data's parallelism (num_parallel_calls=AUTOTUNE and
parallel file reads).
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402


def parse_frame(rec):
    ctx, seq = tf.io.parse_single_sequence_example(
        rec,
        context_features={"id": tf.io.FixedLenFeature([], tf.string),
                          "labels": tf.io.VarLenFeature(tf.int64)},
        sequence_features={"rgb": tf.io.FixedLenSequenceFeature([], tf.string),
                           "audio": tf.io.FixedLenSequenceFeature([], tf.string)})
    rgb = tf.reshape(tf.io.decode_raw(seq["rgb"], tf.uint8), [-1, 1024])
    audio = tf.reshape(tf.io.decode_raw(seq["audio"], tf.uint8), [-1, 128])
    return ctx["id"], ctx["labels"].values, rgb, audio


def parse_video(rec):
    f = tf.io.parse_single_example(
        rec,
        features={"id": tf.io.FixedLenFeature([], tf.string),
                  "labels": tf.io.VarLenFeature(tf.int64),
                  "mean_rgb": tf.io.FixedLenFeature([1024], tf.float32),
                  "mean_audio": tf.io.FixedLenFeature([128], tf.float32)})
    return f["id"], f["labels"].values, f["mean_rgb"], f["mean_audio"]


def run(files, parse, parallel):
    if parallel:
        ds = tf.data.TFRecordDataset(files, num_parallel_reads=tf.data.AUTOTUNE)
        ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    else:
        opts = tf.data.Options()
        opts.threading.private_threadpool_size = 1
        ds = tf.data.TFRecordDataset(files).map(parse).with_options(opts)
    n = 0
    t = time.perf_counter()
    for _ in ds:
        n += 1
    return n, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--level", choices=["frame", "video"], default="frame")
    a = ap.parse_args()
    parse = parse_frame if a.level == "frame" else parse_video
    n, s = run(a.files, parse, False)
    print(f"TensorFlow {tf.__version__} TFRecordDataset + parse\t1\t{n}\t{s:.4f}")
    n, s = run(a.files, parse, True)
    print(f"TensorFlow {tf.__version__} TFRecordDataset + parse, AUTOTUNE\t{os.cpu_count()} (AUTOTUNE)\t{n}\t{s:.4f}")


if __name__ == "__main__":
    main()
