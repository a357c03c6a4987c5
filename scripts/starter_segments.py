#!/usr/bin/env python3
"""Reference fixtures for the 2019 segment task (issue 31), produced by Google's own code from
github.com/google/youtube-8m (commit e6f6bf6), run unchanged through `tf.compat.v1`:

* `inference.py --segment_labels` run as a program (its own flags, reader, `get_segments`,
  `format_lines` and heap post-processing) on a frame-level shard, with a small TF model
  exported where the script looks for it (`train_dir/inference_model/segment_inference_model`
  + `model_flags.json`). The model is random and its logits are rounded to quarters, so many
  segments get equal scores and the file's order of equal scores (heap and stable sort) is
  exercised. Written per case: `<case>.csv` (the submission, byte for byte), and in
  `<case>.npz`: `seg_ids` (the ids inference.py gives the segments, in its order),
  `probabilities` [segments, classes] float32 (the same graph on the same `get_segments`
  batches), `num_frames` [segments], and per segment frame `frame_sum` (float64 sum of the
  dequantized row) and `frame_head` (its first 4 values per modality), zero-padded to 5 frames.
* `segment_eval_inference.py`'s `main` on submissions against a shard's rated segments, with
  `--top_n` 0 and 3; the mAP it passes to `np.mean` is captured (its log line has 6 digits).
  Two shims, both for Python 3 (the script was written for Python 2): its label keys are
  built with `"%s:%d" % (video_id, start)` where `video_id` is `bytes` under Python 3 (giving
  `b'id':5`, which no prediction matches), so `read_labels`'s result gets the Python 2 keys;
  and the header line that inference.py writes (`Class,Segments`) makes it stop
  (`int("Class")`), so it reads a copy without that line. Results: `eval.json`.

Run (in a venv outside the repo with tensorflow-cpu 2.18, numpy, absl-py, six):

  git clone https://github.com/google/youtube-8m /tmp/youtube-8m   # commit e6f6bf6
  yt8m synth --segments --out /tmp/segsynth --num-videos 16 --num-shards 1 --seed 7 \\
      --prefix synth_2019_ --dims 32,8 --num-classes 20 --max-frames 40
  ~/.cache/yt8m/tfvenv/bin/python scripts/starter_segments.py --starter /tmp/youtube-8m \\
      --synth /tmp/segsynth/synth_2019_0000.tfrecord \\
      --shared ../shared/data/yt8m/synthetic/segment_2019.tfrecord \\
      --classes configs/segment_label_ids.csv --out tests/fixtures/segments
"""
import argparse
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import tempfile
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

# (name, shard flag, feature sizes, classes, whitelist, top_k, segment_max_pred, batch)
CASES = [
    ("synth", "synth", "32,8", 20, "odd", 10, 40, 7),
    ("shared", "shared", "1024,128", 3862, "file", 20, 100000, 5),
    ("shared_all", "shared", "1024,128", 3862, "all", 20, 5, 5),
]


def tf_v1_shim():
    """`import tensorflow as tf` for TF 1.x code: tf.compat.v1 with graph mode."""
    import tensorflow as real_tf

    v1 = real_tf.compat.v1
    shim = types.ModuleType("tensorflow")
    for k in dir(v1):
        if not k.startswith("__"):
            setattr(shim, k, getattr(v1, k))
    shim.compat = real_tf.compat
    shim.io = real_tf.io
    shim.__path__ = real_tf.__path__  # `from tensorflow.python... import` still resolves
    sys.modules["tensorflow"] = shim
    return real_tf, v1


def dequantize(q):
    return q.astype(np.float32) * np.float32(4.0 / 255.0) + np.float32(4.0 / 512.0 - 2.0)


def export_model(v1, train_dir, sizes, classes, seed):
    """A frame-level model where inference.py loads one: mean of the valid frames, a random
    linear layer, logits rounded to quarters, sigmoid."""
    dim = sum(int(s) for s in sizes.split(","))
    g = v1.Graph()
    with g.as_default():
        x = v1.placeholder(v1.float32, [None, 5, dim], name="input_batch_raw")
        nf = v1.placeholder(v1.int32, [None], name="num_frames")
        mask = v1.sequence_mask(nf, 5, dtype=v1.float32)
        mean = v1.reduce_sum(x * mask[:, :, None], 1) / v1.cast(nf, v1.float32)[:, None]
        rng = np.random.default_rng(seed)
        w = v1.Variable(rng.normal(0, 1.0, (dim, classes)).astype(np.float32), name="w")
        b = v1.Variable(rng.normal(0, 0.5, (classes,)).astype(np.float32), name="b")
        logits = v1.round((v1.matmul(mean, w) + b) * 4.0) / 4.0
        pred = v1.nn.sigmoid(logits, name="predictions")
        v1.add_to_collection("input_batch_raw", x)
        v1.add_to_collection("num_frames", nf)
        v1.add_to_collection("predictions", pred)
        os.makedirs(os.path.join(train_dir, "inference_model"), exist_ok=True)
        with v1.Session() as s:
            s.run(v1.global_variables_initializer())
            v1.train.Saver().save(
                s, os.path.join(train_dir, "inference_model", "segment_inference_model")
            )
    with open(os.path.join(train_dir, "model_flags.json"), "w") as f:
        json.dump(
            {"feature_names": "rgb,audio", "feature_sizes": sizes, "frame_features": True,
             "model": "stand-in", "label_loss": "CrossEntropyLoss"},
            f,
        )


def cmd_infer(a):
    """One case: export the model, run inference.py, then record what it scored."""
    real_tf, v1 = tf_v1_shim()
    v1.disable_v2_behavior()
    export_model(v1, a.train_dir, a.sizes, a.classes, a.seed)
    sys.path.insert(0, a.starter)
    sys.argv = [
        "inference.py", f"--train_dir={a.train_dir}", f"--input_data_pattern={a.shard}",
        f"--output_file={a.csv}", "--segment_labels", f"--segment_label_ids_file={a.whitelist}",
        f"--segment_max_pred={a.max_pred}", f"--top_k={a.top_k}", f"--batch_size={a.batch}",
    ]
    try:
        runpy.run_path(os.path.join(a.starter, "inference.py"), run_name="__main__")
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    # The same batches again, through the starter's reader and get_segments, for the
    # probabilities and frames of every segment.
    import inference
    import readers

    names, sizes = ["rgb", "audio"], [int(s) for s in a.sizes.split(",")]
    g = v1.Graph()
    ids, probs, nfs, sums, heads = [], [], [], [], []
    with g.as_default(), v1.Session() as sess:
        reader = readers.YT8MFrameFeatureReader(feature_names=names, feature_sizes=sizes)
        vid, vb, nb = inference.get_input_data_tensors(reader, a.shard, a.batch)
        saver = v1.train.import_meta_graph(
            os.path.join(a.train_dir, "inference_model", "segment_inference_model.meta"))
        saver.restore(sess, os.path.join(a.train_dir, "inference_model", "segment_inference_model"))
        sess.run(v1.local_variables_initializer())
        coord = v1.train.Coordinator()
        threads = v1.train.start_queue_runners(sess=sess, coord=coord)
        x = v1.get_collection("input_batch_raw")[0]
        n = v1.get_collection("num_frames")[0]
        p = v1.get_collection("predictions")[0]
        try:
            while True:
                v, frames, num = sess.run([vid, vb, nb])
                r = inference.get_segments(frames, num, 5)
                seg = r["video_segment_ids"]
                ids += ["%s:%d" % (v[i].decode("utf8"), s) for i, s in seg]
                probs.append(sess.run(p, {x: r["video_batch"], n: r["num_frames_batch"]}))
                nfs.append(r["num_frames_batch"])
                fb = r["video_batch"].astype(np.float64)
                sums.append(fb.sum(axis=2))
                heads.append(np.concatenate([fb[:, :, :4], fb[:, :, sizes[0]:sizes[0] + 4]], 2))
        except real_tf.errors.OutOfRangeError:
            pass
        coord.request_stop()
        coord.join(threads)
    np.savez_compressed(
        a.npz, seg_ids=np.array(ids), probabilities=np.concatenate(probs),
        num_frames=np.concatenate(nfs).astype(np.int64), frame_sum=np.concatenate(sums),
        frame_head=np.concatenate(heads),
    )


def cmd_eval(a):
    """segment_eval_inference.main on each submission, capturing the mAP it averages."""
    real_tf, v1 = tf_v1_shim()
    sys.path.insert(0, a.starter)
    import segment_eval_inference as sei

    original = sei.read_labels

    def read_labels_py2_keys(pattern, cache_path=""):
        labels = original(pattern, cache_path)
        fixed = {}
        for (seg, cls), score in labels.labels.items():
            m = re.fullmatch(r"b'(.*)':(-?\d+)", seg)
            fixed[(f"{m.group(1)}:{m.group(2)}" if m else seg, cls)] = score
        return sei.Labels(fixed)

    sei.read_labels = read_labels_py2_keys
    captured = []

    class Np:
        def __getattr__(self, k):
            return getattr(np, k)

        def mean(self, x, *args, **kw):
            v = np.mean(x, *args, **kw)
            captured.append(float(v))
            return v

    sei.np = Np()
    results = []
    runs = json.loads(a.runs)
    # Per label shard, a submission listing every rated segment of each rated class (and two
    # unrated ids) in a seeded random order: APs strictly between 0 and 1.
    rng = np.random.default_rng(11)
    for labels in sorted({r["labels"] for r in runs}):
        rated = {}
        for (seg, c) in read_labels_py2_keys(labels).labels:
            rated.setdefault(c, []).append(seg)
        name = os.path.join(a.out, os.path.basename(labels).split(".")[0] + "_rated.csv")
        with open(name, "w") as f:
            f.write("Class,Segments\n")
            for c in sorted(rated):
                ids = sorted(rated[c]) + ["unrated:0", "unrated:5"]
                rng.shuffle(ids)
                f.write(f"{c},{' '.join(ids)}\n")
        runs += [{"submission": name, "labels": labels, "top_n": n} for n in (0, 3)]
    for spec in runs:
        # The script stops (KeyError) on a class without a positive rated segment: it is
        # given only the lines of classes that have one (ours leaves the others out of the
        # mean, so both must agree on the whole file).
        positive = {c for (_, c), v in read_labels_py2_keys(spec["labels"]).labels.items() if v > 0}
        with open(spec["submission"]) as f:
            lines = f.readlines()
        kept = [l for l in lines if not l.startswith("Class,") and int(l.split(",")[0]) in positive]
        # MeanAveragePrecisionCalculator refuses fewer than 2 classes.
        if len({l.split(",")[0] for l in kept}) < 2:
            print(f"skipped (fewer than 2 classes with positives): {spec}", file=sys.stderr)
            continue
        body = tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False)
        body.writelines(kept)
        body.close()
        sei.FLAGS([
            "segment_eval_inference.py", f"--eval_data_pattern={spec['labels']}",
            f"--submission_file={body.name}", f"--top_n={spec['top_n']}",
        ])
        captured.clear()
        sei.main([])
        os.unlink(body.name)
        results.append(dict(spec, map=captured[-1], classes=len({l.split(",")[0] for l in kept})))
    with open(a.json, "w") as f:
        json.dump(results, f, indent=1)


def write_whitelist(path, kind, classes):
    ids = range(1, classes, 2) if kind == "odd" else range(classes)
    with open(path, "w") as f:
        f.write("Index\n" + "".join(f"{c}\n" for c in ids))


def hand_submission(path, csv, rng):
    """A harder submission from inference.py's: lines shuffled, a repeated class line (the
    last one counts), an unrated id, a repeated id, a double space, no final newline."""
    with open(csv) as f:
        lines = f.read().splitlines()[1:]
    rng.shuffle(lines)
    out = []
    for i, line in enumerate(lines):
        cls, ids = line.split(",")
        ids = ids.split(" ")
        if i == 0 and len(ids) > 1:
            ids = [ids[1], ids[0]] + ids[1:] + ["nosuchvideo:0"]
        if i == 1:
            ids = ids[::-1]
            out.append(f"{cls},{' '.join(ids[:1])}")
        if i == 2:
            ids = ids[:1] + [""] + ids[1:]
        out.append(f"{cls},{' '.join(ids)}")
    with open(path, "w") as f:
        f.write("\n".join(out))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd")
    i = sub.add_parser("infer")
    for k in ("starter", "train_dir", "shard", "csv", "npz", "whitelist", "sizes"):
        i.add_argument("--" + k)
    for k in ("classes", "top_k", "max_pred", "batch", "seed"):
        i.add_argument("--" + k, type=int)
    e = sub.add_parser("eval")
    for k in ("starter", "runs", "json", "out"):
        e.add_argument("--" + k)
    for k in ("starter", "synth", "shared", "classes", "out"):
        ap.add_argument("--" + k)
    a = ap.parse_args()
    if a.cmd == "infer":
        return cmd_infer(a)
    if a.cmd == "eval":
        return cmd_eval(a)
    os.makedirs(a.out, exist_ok=True)
    shutil.copy(a.synth, os.path.join(a.out, "synth_2019.tfrecord"))
    shards = {"synth": os.path.join(a.out, "synth_2019.tfrecord"), "shared": a.shared}
    runs, meta = [], {}
    rng = np.random.default_rng(5)
    for seed, (name, shard, sizes, classes, wl, top_k, max_pred, batch) in enumerate(CASES):
        tmp = tempfile.mkdtemp()
        white = os.path.join(a.out, f"{name}_classes.csv") if wl != "file" else a.classes
        if wl != "file":
            write_whitelist(white, wl, classes)
        csv, npz = os.path.join(a.out, f"{name}.csv"), os.path.join(a.out, f"{name}.npz")
        subprocess.run([
            sys.executable, __file__, "infer", f"--starter={a.starter}", f"--train_dir={tmp}",
            f"--shard={shards[shard]}", f"--csv={csv}", f"--npz={npz}", f"--whitelist={white}",
            f"--sizes={sizes}", f"--classes={classes}", f"--top_k={top_k}",
            f"--max_pred={max_pred}", f"--batch={batch}", f"--seed={seed + 1}",
        ], check=True)
        meta[name] = {"shard": os.path.basename(shards[shard]), "sizes": sizes, "classes": classes,
                      "whitelist": os.path.basename(white), "top_k": top_k,
                      "max_pred": max_pred, "batch": batch}
        hand = os.path.join(a.out, f"{name}_hand.csv")
        hand_submission(hand, csv, rng)
        for s in (csv, hand):
            for top_n in (0, 3):
                runs.append({"submission": s, "labels": shards[shard], "top_n": top_n})
    res = os.path.join(a.out, "eval.json")
    subprocess.run([sys.executable, __file__, "eval", f"--starter={a.starter}",
                    f"--runs={json.dumps(runs)}", f"--json={res}", f"--out={a.out}"], check=True)
    with open(res) as f:
        results = json.load(f)
    for r in results:
        r["submission"] = os.path.basename(r["submission"])
        r["labels"] = os.path.basename(r["labels"])
    with open(res, "w") as f:
        json.dump({"cases": meta, "eval": results}, f, indent=1)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
