"""Every Python block of README.md, docs/*.md and python/README.md that uses the yt8m module
runs as written against the installed wheel (issue #27; the other runnable blocks run in
tests/docs.rs). Each block runs in a fresh directory holding files under the names the docs
use (validate*.tfrecord: real video-level shards; train*.tfrecord and frame/train*.tfrecord:
frame-level shards TensorFlow wrote; video.pkl: a PaddleVideo pickle; demo/: what `yt8m demo`
makes, for the blocks that use its bundle). A file's blocks run in
order in one namespace, as a reader types them into one session (a later block may use the
`import yt8m` of an earlier one). Names the blocks use without defining them are given here,
and only these: paths, files, predictions, labels, batches, torch."""

import glob
import os
import re
import shutil
import subprocess
import warnings

import numpy as np
import pytest

import yt8m

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
SHARED = os.environ.get("YT8M_SHARED") or os.path.join(REPO, "..", "shared")
DATA = os.path.join(SHARED, "data", "yt8m")
needs_shared = pytest.mark.skipif(not os.path.isdir(DATA), reason="../shared not found (set YT8M_SHARED)")


def python_blocks():
    files = ["README.md"] + sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md")))
    files.append(os.path.join("python", "README.md"))
    out = {}
    for name in files:
        lines = open(os.path.join(REPO, name), encoding="utf-8").read().split("\n")
        i = 0
        while i < len(lines):
            m = re.match(r"^```(\w*)", lines[i])
            if not m:
                i += 1
                continue
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            text = "\n".join(lines[i + 1 : j]) + "\n"
            # The same rule as tests/docs.rs `for_pytest`.
            if m.group(1) == "python" and "yt8m." in text:
                out.setdefault(name, []).append((i + 1, text))
            i = j + 1
    return out


BLOCKS = python_blocks()


def test_the_docs_have_python_blocks():
    assert sum(len(b) for b in BLOCKS.values()) >= 6, BLOCKS.keys()


@needs_shared
@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_blocks_run_as_written(name, tmp_path, monkeypatch):
    for i in range(2):
        shutil.copy(os.path.join(DATA, "real", f"validate000{i}.tfrecord"), tmp_path / f"validate000{i}.tfrecord")
    os.makedirs(tmp_path / "frame")
    shutil.copy(os.path.join(DATA, "synthetic", "frame_2018.tfrecord"), tmp_path / "frame" / "train0000.tfrecord")
    shutil.copy(os.path.join(DATA, "synthetic", "frame_2018.tfrecord"), tmp_path / "train0000.tfrecord")
    shutil.copy(os.path.join(DATA, "real", "paddlevideo_example.pkl"), tmp_path / "video.pkl")
    monkeypatch.chdir(tmp_path)
    if any("demo/bundle" in t for _, t in BLOCKS[name]):
        # yt8m.Bundle's examples use the demo's bundle and data: `yt8m demo` makes them.
        binary = os.environ.get("YT8M_BIN")
        if not binary:
            pytest.skip("YT8M_BIN not set (./dev pytest sets it)")
        subprocess.run([binary, "demo", "--dir", "demo"], check=True, capture_output=True,
                       env={**os.environ, "YT8M_THREADS": "1"})
    torch = pytest.importorskip("torch") if any("torch." in t for _, t in BLOCKS[name]) else None
    rng = np.random.default_rng(0)
    predictions = rng.random((16, 3862), dtype=np.float32)
    labels = np.zeros((16, 3862), np.uint8)
    labels[np.arange(16), rng.integers(0, 3862, 16)] = 1
    namespace = {
        "paths": "validate*.tfrecord",
        "files": sorted(glob.glob("train*.tfrecord")),
        "predictions": predictions,
        "labels": labels,
        "batches": [(predictions[:8], labels[:8]), (predictions[8:], labels[8:])],
        "torch": torch,
    }
    # A block must run without warnings, or say why one is expected (and filter it).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for line, text in BLOCKS[name]:
            exec(compile(text, f"{name}:{line}", "exec"), namespace)
