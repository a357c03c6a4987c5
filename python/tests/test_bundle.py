"""yt8m.Bundle (issue #29): a bundle's model from Python, on the CLI's own engine, giving the
numbers `yt8m predict` gives; errors as Yt8mError with the engine's message, and the engine
keeps serving after a refused request. Needs the `yt8m` binary (YT8M_BIN, set by ./dev)."""
import os
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

import yt8m

BIN = os.environ.get("YT8M_BIN")
pytestmark = pytest.mark.skipif(not BIN, reason="YT8M_BIN not set (./dev pytest sets it)")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("bundle")
    subprocess.run([BIN, "demo", "--dir", str(d / "demo")], check=True, capture_output=True,
                   env={**os.environ, "YT8M_THREADS": "1"})
    return d / "demo"


def cli_scores(demo, shard, tmp):
    out = tmp / "p.npz"
    subprocess.run([BIN, "predict", "--model", str(demo / "bundle"), str(shard), "--format", "npz", "--out", str(out)],
                   check=True, capture_output=True, env={**os.environ, "YT8M_THREADS": "1"})
    z = np.load(out)
    return list(z["ids"]), z["predictions"]


def test_bundle_predicts_what_the_cli_predicts(demo, tmp_path, monkeypatch):
    shard = demo / "data" / "test" / "test0000.tfrecord"
    ids, want = cli_scores(demo, shard, tmp_path)
    # The engine on the CLI's one thread: libtorch's reductions split by thread count, and an
    # engine left to follow the free cores (1 or 2 here) came out 6.5e-6 off once.
    monkeypatch.setenv("YT8M_THREADS", "1")
    with yt8m.Bundle(demo / "bundle", device="cpu") as b:
        assert len(b.classes) == want.shape[1] == 20
        assert b.inputs[:3] == ["rgb", "audio", "lengths"]
        got_ids, got = b.predict_records(shard)
        assert got_ids == ids and got.dtype == np.float32
        d = np.abs(got - want).max()
        print(f"predict_records vs yt8m predict: max |diff| {d:.2e}")
        assert d <= 1e-6, d
        # The reader's batches go straight in (extra keys are ignored); dequantized floats too.
        for batch in yt8m.read_batches(shard, 50):
            rows = [ids.index(i) for i in batch["ids"]]
            p = b.predict(**batch)
            assert p.shape == (len(rows), 20) and p.dtype == np.float32
            assert np.abs(p - want[rows]).max() <= 1e-6
            q = batch["rgb"].astype(np.float32) * np.float32(4 / 255) + np.float32(4 / 512 - 2)
            a = batch["audio"].astype(np.float32) * np.float32(4 / 255) + np.float32(4 / 512 - 2)
            pf = b.predict(rgb=q, audio=a, lengths=batch["lengths"])
            assert np.abs(pf - p).max() <= 1e-6


def test_refused_requests_raise_and_the_engine_goes_on(demo):
    b = yt8m.Bundle(demo / "bundle")
    with pytest.raises(yt8m.Yt8mError, match=r"expected \[videos, frames, 1024\]"):
        b.predict(rgb=np.zeros((1, 5, 7), np.uint8), audio=np.zeros((1, 5, 128), np.uint8))
    with pytest.raises(yt8m.Yt8mError, match="lengths"):
        b.predict(rgb=np.zeros((1, 5, 1024), np.uint8), audio=np.zeros((1, 5, 128), np.uint8),
                  lengths=np.array([9]))
    with pytest.raises(yt8m.Yt8mError, match="dtype"):
        b.predict(rgb=np.zeros((1, 5, 1024), np.int16), audio=np.zeros((1, 5, 128), np.uint8))
    with pytest.raises(yt8m.Yt8mError, match="no features"):
        b.predict()
    # Zero videos or zero frames: the engine's message, not a failure to send the arrays.
    for shape in [(0, 5), (2, 0)]:
        with pytest.raises(yt8m.Yt8mError, match="no videos or no frames"):
            b.predict(rgb=np.zeros(shape + (1024,), np.uint8), audio=np.zeros(shape + (128,), np.uint8))
    p = b.predict(rgb=np.zeros((2, 3, 1024), np.uint8), audio=np.zeros((2, 3, 128), np.uint8))
    assert p.shape == (2, 20) and np.all((p > 0) & (p < 1))
    b.close()
    with pytest.raises(yt8m.Yt8mError, match="closed"):
        b.predict(rgb=np.zeros((1, 1, 1024), np.uint8), audio=np.zeros((1, 1, 128), np.uint8))


def test_a_missing_bundle_is_named_and_threads_share_an_engine(demo, tmp_path):
    with pytest.raises(yt8m.Yt8mError, match="no bundle.json") as e:
        yt8m.Bundle(tmp_path / "nope")
    # The engine says what kind of failure it is: a missing bundle is a FileNotFoundError.
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, yt8m.Yt8mNotFoundError)
    b = yt8m.Bundle(demo / "bundle")
    x = np.random.default_rng(0).integers(0, 256, (4, 6, 1024), dtype=np.uint8)
    y = np.random.default_rng(1).integers(0, 256, (4, 6, 128), dtype=np.uint8)
    want = b.predict(rgb=x, audio=y)
    out = [None] * 4

    def work(i):
        out[i] = b.predict(rgb=x, audio=y)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert all(np.array_equal(o, want) for o in out)
    b.close()


def test_predict_records_errors_name_the_file(demo, tmp_path):
    with yt8m.Bundle(demo / "bundle") as b:
        with pytest.raises(yt8m.Yt8mNotFoundError, match="nothing.tfrecord"):
            b.predict_records(tmp_path / "nothing.tfrecord")
        # Damaged data is a Yt8mDataError; a request the model cannot take stays a plain
        # Yt8mError (a ValueError), never one of the kinds.
        bad = tmp_path / "damaged.tfrecord"
        good = sorted((demo / "data" / "test").iterdir())[0].read_bytes()
        bad.write_bytes(good[:12] + bytes([good[12] ^ 0xFF]) + good[13:])
        with pytest.raises(yt8m.Yt8mDataError, match="damaged.tfrecord"):
            b.predict_records(bad)
        with pytest.raises(yt8m.Yt8mError) as e:
            b.predict(rgb=np.zeros((1, 2, 7), np.uint8), audio=np.zeros((1, 2, 128), np.uint8))
        assert type(e.value) is yt8m.Yt8mError, type(e.value)
        ids, p = b.predict_records([demo / "data" / "test"])
        assert len(ids) == 128 and p.shape == (128, 20)
