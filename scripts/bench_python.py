#!/usr/bin/env python3
"""The Python package's benchmark (docs/python.md, docs/benchmarks.md): in one process, side by
side on the same files,

  read    yt8m.read (copies, and copy=False: views into the mapped shards) / yt8m.read_batches
          vs tf.data.TFRecordDataset + tf.io.parse_* (the starter code's parse; single-threaded,
          then AUTOTUNE), every video into numpy arrays;
  metrics yt8m.evaluate vs the numpy reference evaluator (../shared/tools/yt8m_eval_ref.py).

Needs a Python with the yt8m wheel, numpy and TensorFlow (the wheel needs nothing else, so it
installs into a TensorFlow venv as is):

  python3 -m venv ~/.cache/yt8m/tfvenv && ~/.cache/yt8m/tfvenv/bin/pip install tensorflow-cpu
  ~/.cache/yt8m/tfvenv/bin/pip install "$(./dev wheel | tail -1)"
  ~/.cache/yt8m/tfvenv/bin/python scripts/bench_python.py --video '../shared/data/yt8m/real/*.tfrecord' \
      --frame '~/.cache/yt8m/bench-frames/*.tfrecord' --reference ../shared/tools/yt8m_eval_ref.py

Prints a Markdown table; ratios are yt8m's speed over the other's on the same input.
"""
import argparse
import glob
import importlib.util
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def files_of(pattern):
    return sorted(glob.glob(os.path.expanduser(pattern)))


def consume_yt8m_read(files, level, copy=True):
    import yt8m

    n = nbytes = 0
    for v in yt8m.read(files, level=level, copy=copy):
        n += 1
        if level == "frame":
            nbytes += v["rgb"].nbytes + v["audio"].nbytes
        else:
            nbytes += v["mean_rgb"].nbytes + v["mean_audio"].nbytes
    return n, nbytes


def consume_yt8m_batches(files, level):
    import yt8m

    n = nbytes = 0
    for b in yt8m.read_batches(files, 128, level=level):
        n += len(b["ids"])
        nbytes += sum(b[k].nbytes for k in ("rgb", "audio", "mean_rgb", "mean_audio") if k in b)
    return n, nbytes


def tf_dataset(files, level, parallel):
    import sys

    import tensorflow as tf

    # The starter's parse, shared with `yt8m bench read`'s TensorFlow side.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_tf_read import parse_frame, parse_video

    parse = parse_frame if level == "frame" else parse_video
    if parallel:
        ds = tf.data.TFRecordDataset(files, num_parallel_reads=tf.data.AUTOTUNE)
        return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    opts = tf.data.Options()
    opts.threading.private_threadpool_size = 1
    return tf.data.TFRecordDataset(files).map(parse).with_options(opts)


def consume_tf(files, level, parallel):
    n = nbytes = 0
    for _id, _labels, a, b in tf_dataset(files, level, parallel).as_numpy_iterator():
        n += 1
        nbytes += a.nbytes + b.nbytes
    return n, nbytes


def consume_tf_batches(files, level):
    """The training input pipeline: parse, then `padded_batch(128)` (what read_batches does:
    every batch padded to its longest video), AUTOTUNE throughout."""
    import tensorflow as tf

    ds = tf_dataset(files, level, True).padded_batch(128).prefetch(tf.data.AUTOTUNE)
    n = nbytes = 0
    for ids, _labels, a, b in ds.as_numpy_iterator():
        n += len(ids)
        nbytes += a.nbytes + b.nbytes
    return n, nbytes


def timed(fn, *args):
    t = time.perf_counter()
    n, nbytes = fn(*args)
    return n, nbytes, time.perf_counter() - t


def bench_read(name, files, level, rows):
    if not files:
        return
    size = sum(os.path.getsize(f) for f in files)
    # Warm the page cache so every reader sees the same (cached) files.
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass
    res = {}
    for label, fn, args in [
        ("yt8m.read", consume_yt8m_read, (files, level)),
        ("yt8m.read(copy=False)", consume_yt8m_read, (files, level, False)),
        ("yt8m.read_batches (128)", consume_yt8m_batches, (files, level)),
        ("tf.data + parse, 1 thread", consume_tf, (files, level, False)),
        ("tf.data + parse, AUTOTUNE", consume_tf, (files, level, True)),
        ("tf.data + parse + padded_batch(128), AUTOTUNE", consume_tf_batches, (files, level)),
    ]:
        n, nbytes, s = timed(fn, *args)
        res[label] = (n, s)
        rows.append((name, f"{len(files)} files, {size / 1e6:.0f} MB", label, n, s, n / s, size / s / 1e6))
    for ours in ("yt8m.read", "yt8m.read(copy=False)"):
        for other in ("tf.data + parse, 1 thread", "tf.data + parse, AUTOTUNE"):
            rows.append((name, "", f"{ours} vs {other}", "", "", "", f"{res[other][1] / res[ours][1]:.1f}x"))
    rows.append((name, "", "yt8m.read_batches vs tf.data AUTOTUNE", "", "", "",
                 f"{res['tf.data + parse, AUTOTUNE'][1] / res['yt8m.read_batches (128)'][1]:.1f}x"))
    rows.append((name, "", "yt8m.read_batches vs tf.data padded_batch(128)", "", "", "",
                 f"{res['tf.data + parse + padded_batch(128), AUTOTUNE'][1] / res['yt8m.read_batches (128)'][1]:.1f}x"))


def realistic(videos, classes, rng):
    """Like `yt8m bench eval`'s data: 1-6 labels per video with skewed class frequencies, the
    positives scoring higher (0.97-1.0) than the uniform noise of the other classes."""
    p = rng.random((videos, classes), dtype=np.float32)
    l = np.zeros((videos, classes), dtype=np.uint8)
    k = 1 + (rng.random(videos) * rng.random(videos) * 6.0).astype(int)
    for i in range(videos):
        j = np.minimum((rng.random(k[i]) ** 3 * classes).astype(int), classes - 1)
        l[i, j] = 1
        p[i, j] = (0.97 + 0.03 * rng.random(k[i])).astype(np.float32)
    return p, l


def bench_metrics(reference, videos, classes, rows):
    rng = np.random.default_rng(0)
    # Uniform noise: float32 in [0, 1) has only 2^24 values, so 386 M scores tie everywhere and
    # GAP takes the official tie-order path (heap + seeded shuffle) on both sides.
    p = rng.random((videos, classes), dtype=np.float32)
    l = (rng.random((videos, classes)) < 3.0 / classes).astype(np.uint8)
    time_metrics(reference, p, l, "uniform noise", rows)
    del p, l
    p, l = realistic(videos, classes, rng)
    time_metrics(reference, p, l, "model-like", rows)


def time_metrics(reference, p, l, what, rows):
    import yt8m

    videos, classes = p.shape
    t = time.perf_counter()
    ours = yt8m.evaluate(p, l)
    s_ours = time.perf_counter() - t
    spec = importlib.util.spec_from_file_location("ref", reference)
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    t = time.perf_counter()
    theirs = ref.evaluate(p, l)
    s_ref = time.perf_counter() - t
    same = all(ours[k] == theirs[k] for k in ("hit_at_one", "perr", "gap"))
    rows.append((f"metrics, {what}", f"{videos} x {classes}", "yt8m.evaluate", videos, s_ours, videos / s_ours, ""))
    rows.append((f"metrics, {what}", "", "numpy reference", videos, s_ref, videos / s_ref, ""))
    rows.append((f"metrics, {what}", "", f"yt8m.evaluate vs numpy (equal: {same})", "", "", "", f"{s_ref / s_ours:.1f}x"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", help="glob of video-level shards")
    ap.add_argument("--frame", help="glob of frame-level shards")
    ap.add_argument("--reference", help="yt8m_eval_ref.py, for the metrics comparison")
    ap.add_argument("--videos", type=int, default=100_000)
    ap.add_argument("--classes", type=int, default=3862)
    a = ap.parse_args()
    import yt8m

    rows = []
    if a.video:
        bench_read("video-level", files_of(a.video), "video", rows)
    if a.frame:
        bench_read("frame-level", files_of(a.frame), "frame", rows)
    if a.reference:
        bench_metrics(a.reference, a.videos, a.classes, rows)
    try:
        import tensorflow as tf
        tfv = tf.__version__
    except ImportError:
        tfv = "absent"
    print(f"yt8m {yt8m.__version__}, TensorFlow {tfv}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    print("| input | size | reader | videos | seconds | videos/s | MB/s or ratio |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        cells = [f"{x:.2f}" if isinstance(x, float) else str(x) for x in r]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
