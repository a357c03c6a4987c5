"""The wheel carries the whole CLI (issue #29): installed with pip into a fresh venv, the
`yt8m` command runs the demo and predicts from any directory, with no Rust, no repository and
no environment variables, on the libtorch of the `torch` package installed beside it.

torch (4.6 GB) is not downloaded again: its libraries are hard-linked from the test venv into
the fresh one, laid out as pip installs them (site-packages/torch/lib, site-packages/nvidia),
and the wheel goes in with --no-deps (its METADATA's requirement on torch is checked
separately). `./dev pytest` sets YT8M_WHEEL to the wheel it built.
"""
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

WHEEL = os.environ.get("YT8M_WHEEL")
pytestmark = pytest.mark.skipif(not WHEEL, reason="YT8M_WHEEL not set (./dev pytest sets it)")

ROOT = Path(__file__).resolve().parents[2]


def root_version():
    text = (ROOT / "Cargo.toml").read_text()
    return re.search(r'^version = "([^"]+)"', text, re.M).group(1)


def package_dir(name):
    spec = importlib.util.find_spec(name)
    return Path(list(spec.submodule_search_locations)[0])


def link_tree(src, dst):
    """Hard links (no copy; the paths the loader reports are then the fresh venv's), or
    symbolic links across file systems."""
    def link(s, d):
        try:
            os.link(s, d)
        except OSError:
            os.symlink(os.path.realpath(s), d)

    shutil.copytree(src, dst, copy_function=link, symlinks=True)


def fresh_venv(where, with_torch):
    v = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(v)], check=True)
    py = v / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    numpy = package_dir("numpy")
    link_tree(numpy, site / "numpy")
    if (numpy.parent / "numpy.libs").is_dir():
        link_tree(numpy.parent / "numpy.libs", site / "numpy.libs")
    if with_torch:
        torch = package_dir("torch")
        (site / "torch").mkdir()
        link_tree(torch / "lib", site / "torch" / "lib")
        shutil.copy(torch / "version.py", site / "torch" / "version.py")
        if (torch.parent / "nvidia").is_dir():
            link_tree(torch.parent / "nvidia", site / "nvidia")
            # As pip lays it out: ./dev setup's libnccl.so link is not part of the package.
            extra = site / "nvidia" / "nccl" / "lib" / "libnccl.so"
            if extra.is_symlink() or extra.exists():
                extra.unlink()
    subprocess.run([str(v / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "--no-deps",
                    "--no-index", WHEEL], check=True)
    return v, site


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    # Under the working directory (./dev runs pytest in the build's tmp, on the venv's file
    # system) so the hard links work.
    base = Path.cwd() / f"wheel-cli-{os.getpid()}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir()
    v, site = fresh_venv(base, with_torch=True)
    yield base, v, site
    shutil.rmtree(base, ignore_errors=True)


def run(v, args, cwd, **kw):
    env = {"PATH": f"{v / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "YT8M_THREADS": "1"}
    return subprocess.run([str(v / "bin" / "yt8m"), *args], cwd=cwd, env=env, capture_output=True, text=True, **kw)


def test_the_wheel_declares_torch_and_holds_the_cli():
    with zipfile.ZipFile(WHEEL) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Requires-Dist: torch==2.11.*" in meta, meta
    assert "yt8m/_bin/yt8m-core" in names, names
    assert any(n.endswith(".data/scripts/yt8m") for n in names), names


def test_yt8m_runs_the_demo_and_predicts_from_a_fresh_venv(installed):
    base, v, site = installed
    work = base / "anywhere"
    work.mkdir()
    # --version comes from the launcher, without loading libtorch.
    t = time.perf_counter()
    r = run(v, ["--version"], work, check=True)
    took = time.perf_counter() - t
    print(f"yt8m --version: {took * 1000:.1f} ms")
    assert r.stdout.split() == ["yt8m", root_version()], r.stdout
    assert took < 0.5, took
    # The engine loads the torch installed beside it (the hard links' paths), not the test
    # venv's, and the engine's own RUNPATH is relative.
    r = run(v, ["info", "--json"], work, check=True)
    import json

    info = json.loads(r.stdout)
    assert info["libtorch_dir"] == str(site / "torch" / "lib"), (info["libtorch_dir"], site)
    # Not the build machine's venv, which a pip user does not have.
    assert info["libtorch_built_against"].startswith("$ORIGIN/../../torch/lib"), info
    # NCCL from pip's nvidia-nccl (libnccl.so.2 only) through the wheel's shim, when torch is
    # the CUDA build that brings it.
    if (site / "nvidia" / "nccl" / "lib" / "libnccl.so.2").exists():
        assert re.fullmatch(r"2\.\d+\.\d+", info["nccl"] or ""), info
    else:
        assert "not found" in (info["nccl"] or ""), info
    core = site / "yt8m" / "_bin" / "yt8m-core"
    if shutil.which("readelf"):
        dyn = subprocess.run(["readelf", "-d", str(core)], capture_output=True, text=True).stdout
        runpath = re.search(r"RUNPATH.*\[(.*)\]", dyn)
        assert runpath and runpath.group(1).startswith("$ORIGIN/"), dyn
        assert "libmpi" not in dyn and "libtorch_cuda" not in dyn, dyn
    else:
        print("readelf not found: the engine's dynamic section is not inspected")
    # The main job, then a prediction with what it exported.
    t = time.perf_counter()
    r = run(v, ["demo", "--dir", "demo"], work, timeout=600)
    assert r.returncode == 0, r.stderr
    print(f"yt8m demo from the wheel: {time.perf_counter() - t:.1f} s")
    assert "demo finished" in r.stdout, r.stdout[-2000:]
    r = run(v, ["predict", "--model", "demo/bundle", "demo/data/test/test0000.tfrecord", "--top-k", "1",
                "--format", "jsonl"], work, check=True)
    assert len(r.stdout.splitlines()) == 128, r.stdout[:500]
    # `yt8m serve` from the wheel answers tritonclient with predict's numbers.
    serve_with_tritonclient(v, work)
    # And the Python package of the same wheel, yt8m.Bundle on the wheel's engine included.
    code = ("import yt8m; b = yt8m.Bundle('demo/bundle'); ids, p = b.predict_records('demo/data/test'); "
            "print(yt8m.__version__, sum(1 for _ in yt8m.read('demo/data/test')), len(ids), p.shape[1])")
    env = {k: v_ for k, v_ in os.environ.items() if k not in ("YT8M_BIN", "YT8M_ENGINE")}
    r = subprocess.run([str(v / "bin" / "python"), "-c", code], cwd=work, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [root_version(), "128", "128", "20"], r.stdout


def test_without_torch_the_command_says_what_to_install(tmp_path):
    base = Path.cwd() / f"wheel-cli-notorch-{os.getpid()}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir()
    try:
        v, site = fresh_venv(base, with_torch=False)
        r = run(v, ["info"], base)
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert "pip install 'torch==2.11.*'" in r.stderr, r.stderr
        assert str(site) in r.stderr, r.stderr
        assert run(v, ["--version"], base).stdout.split() == ["yt8m", root_version()]
        # The reader and the metrics need no torch.
        r = subprocess.run([str(v / "bin" / "python"), "-c",
                            "import yt8m, numpy as np; print(yt8m.evaluate(np.eye(3, dtype=np.float32), np.eye(3))['hit_at_one'])"],
                           capture_output=True, text=True, check=True)
        assert r.stdout.strip() == "1.0", r.stdout
    finally:
        shutil.rmtree(base, ignore_errors=True)


def tfrecords(path, n):
    """The first `n` serialized records of a TFRecord file (length, CRC, data, CRC)."""
    out = []
    with open(path, "rb") as f:
        while len(out) < n:
            head = f.read(12)
            if len(head) < 12:
                break
            (size,) = struct.unpack("<Q", head[:8])
            out.append(f.read(size))
            f.read(4)
    return out


def serve_with_tritonclient(v, work):
    import signal

    import numpy as np
    import tritonclient.http as httpclient

    env = {"PATH": f"{v / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "YT8M_THREADS": "1"}
    p = subprocess.Popen([str(v / "bin" / "yt8m"), "serve", "--model", "demo/bundle", "--name", "demo", "--host",
                          "127.0.0.1", "--http-port", "0", "--grpc-port", "0", "--device", "cpu"],
                         cwd=work, env=env, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        t = time.time()
        while port is None and time.time() - t < 60:
            line = p.stderr.readline()
            if not line:
                break
            m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
        assert port, "yt8m serve from the wheel did not start"
        records = tfrecords(work / "demo/data/test/test0000.tfrecord", 5)
        c = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
        inp = httpclient.InferInput("tfrecord", [len(records)], "BYTES")
        inp.set_data_from_numpy(np.array(records, dtype=np.object_), binary_data=True)
        res = c.infer("demo", [inp], outputs=[httpclient.InferRequestedOutput("probabilities", binary_data=True)])
        got = res.as_numpy("probabilities")
        out = work / "five.npz"
        subprocess.run([str(v / "bin" / "yt8m"), "predict", "--model", "demo/bundle",
                        "demo/data/test/test0000.tfrecord", "--format", "npz", "--out", str(out)],
                       cwd=work, env=env, check=True, capture_output=True)
        want = np.load(out)["predictions"][:5]
        d = float(np.abs(got - want).max())
        print(f"tritonclient against yt8m serve from the wheel: max |diff| vs predict {d:.2e}")
        assert got.shape == want.shape and d <= 1e-6, d
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
        p.stderr.close()
