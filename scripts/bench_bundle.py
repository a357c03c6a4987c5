#!/usr/bin/env python3
"""yt8m.Bundle against `yt8m predict` on the same bundle and shards (issue #29's goal: the
Python API within 10% of the CLI's throughput at batch 64).

    YT8M_BIN=path/to/yt8m python scripts/bench_bundle.py --bundle demo/bundle --shards 'data/test*.tfrecord'

Rows, each the median of --rounds runs, alternating so drifts of a shared machine hit all:
  cli            `yt8m predict --format npz` whole command, minus the median of the same
                 command on one video (start-up: loading libtorch and the bundle)
  records        Bundle.predict_records(shards) (engine reads the shards, as the CLI does)
  arrays         Bundle.predict(**batch) over read_batches(shards, batch_size=B): reading included
  arrays only    the same calls on batches read beforehand (the API's own cost)
Probabilities are compared with the CLI's (max |difference|).
"""
import argparse, glob, os, statistics, subprocess, sys, tempfile, time

import numpy as np
import yt8m


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--shards", required=True, help="glob of TFRecord shards")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bucket", action="store_true", help="read_batches(bucket_by_length=True)")
    a = ap.parse_args()
    yt = os.environ.get("YT8M_BIN", "yt8m")
    shards = sorted(glob.glob(a.shards))
    if not shards:
        sys.exit(f"no shards match {a.shards}")
    tmp = tempfile.mkdtemp()
    one = os.path.join(tmp, "one.tfrecord")
    # One video, for the CLI's start-up time.
    with open(shards[0], "rb") as f:
        import struct
        n = struct.unpack("<Q", f.read(8))[0]
        f.seek(0)
        open(one, "wb").write(f.read(8 + 4 + n + 4))

    def cli(paths):
        out = os.path.join(tmp, f"p{len(paths)}.npz")
        t = time.perf_counter()
        subprocess.run([yt, "predict", "--model", a.bundle, *paths, "--format", "npz", "--out", out,
                        "--batch-size", str(a.batch_size), "--log", "warn"], check=True)
        return time.perf_counter() - t, out

    b = yt8m.Bundle(a.bundle, device="cpu", batch_size=a.batch_size)
    batches = list(yt8m.read_batches(shards, batch_size=a.batch_size, bucket_by_length=a.bucket))
    videos = sum(len(x["ids"]) for x in batches)
    times = {k: [] for k in ("cli", "start-up", "records", "arrays", "arrays only")}
    for _ in range(a.rounds):
        t, out = cli(shards); times["cli"].append(t)
        times["start-up"].append(cli([one])[0])  # p1.npz; the shards' is p{len(shards)}
        t = time.perf_counter(); ids, p_rec = b.predict_records(shards); times["records"].append(time.perf_counter() - t)
        t = time.perf_counter()
        for x in yt8m.read_batches(shards, batch_size=a.batch_size, bucket_by_length=a.bucket):
            b.predict(**x)
        times["arrays"].append(time.perf_counter() - t)
        t = time.perf_counter()
        p_arr = [b.predict(**x) for x in batches]
        times["arrays only"].append(time.perf_counter() - t)
    z = np.load(out)
    ref = dict(zip([str(i) for i in z["ids"]], z["predictions"]))
    d_rec = max(float(np.abs(ref[i] - p).max()) for i, p in zip(ids, p_rec))
    d_arr = max(float(np.abs(ref[str(i)] - p).max()) for x, ps in zip(batches, p_arr) for i, p in zip(x["ids"], ps))
    med = {k: statistics.median(v) for k, v in times.items()}
    cli_work = med["cli"] - med["start-up"]
    print(f"bundle {a.bundle}, {videos} videos in {len(shards)} shard(s), batch {a.batch_size}, "
          f"median of {a.rounds}, {os.cpu_count()} CPUs")
    print("| path | seconds | videos/s | vs CLI |\n|---|---:|---:|---:|")
    print(f"| yt8m predict (whole command) | {med['cli']:.3f} | {videos / med['cli']:.0f} | |")
    print(f"| yt8m predict, one video (start-up) | {med['start-up']:.3f} | | |")
    print(f"| yt8m predict beyond start-up | {cli_work:.3f} | {videos / cli_work:.0f} | 1.00 |")
    for k in ("records", "arrays", "arrays only"):
        name = {"records": "Bundle.predict_records", "arrays": "read_batches + Bundle.predict",
                "arrays only": "Bundle.predict (batches read before)"}[k]
        print(f"| {name} | {med[k]:.3f} | {videos / med[k]:.0f} | {cli_work / med[k]:.2f} |")
    print(f"\nmax |p − CLI|: predict_records {d_rec:.2e}, predict {d_arr:.2e}")
    b.close()


if __name__ == "__main__":
    main()
