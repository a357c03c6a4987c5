#!/usr/bin/env python3
"""yt8m.read_batches(files, 128) epoch after epoch: median wall time and CPU time (all threads)
per epoch. For A/B comparisons of two builds of the wheel, install each into its own folder
(`pip install --no-deps --target DIR WHEEL`) and run this under PYTHONPATH=DIR, alternating:

  for r in 1 2 3; do for v in old new; do PYTHONPATH=/tmp/yt$v python3 scripts/bench_read_batches.py \\
      --label $v '/tmp/bf/*.tfrecord'; done; done

The CPU time is steadier than the wall time on a shared machine (docs/benchmarks.md).
With --tf (a Python with TensorFlow), TensorFlow's training pipeline on the same files follows
in the same process (parse + padded_batch(128), AUTOTUNE: scripts/bench_python.py's), and the
ratio of the medians is printed."""
import argparse
import glob
import resource
import statistics
import time

import yt8m

ap = argparse.ArgumentParser()
ap.add_argument("files", help="glob of frame-level shards")
ap.add_argument("--label", default=yt8m.__file__)
ap.add_argument("--epochs", type=int, default=8)
ap.add_argument("--batch-size", type=int, default=128)
ap.add_argument("--tf", action="store_true", help="also time tf.data's padded_batch pipeline")
a = ap.parse_args()
files = sorted(glob.glob(a.files))
wall, cpu = [], []
n = 0
for _ in range(a.epochs):
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    n = 0
    for b in yt8m.read_batches(files, a.batch_size, level="frame"):
        n += len(b["ids"])
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    wall.append(time.perf_counter() - t)
    cpu.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
w = statistics.median(wall)
print(f"{a.label}: {n} videos, wall median {w:.3f} s (min {min(wall):.3f}), "
      f"CPU median {statistics.median(cpu):.3f} s, {n / w:.0f} videos/s")
if a.tf:
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_python import consume_tf_batches

    tf_wall = []
    for _ in range(a.epochs):
        t = time.perf_counter()
        tf_n, _ = consume_tf_batches(files, "frame")
        tf_wall.append(time.perf_counter() - t)
    assert tf_n == n, (tf_n, n)
    tw = statistics.median(tf_wall)
    print(f"tf.data padded_batch(128): wall median {tw:.3f} s (min {min(tf_wall):.3f}), "
          f"{n / tw:.0f} videos/s; read_batches is {tw / w:.1f}x it")
