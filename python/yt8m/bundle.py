"""``yt8m.Bundle``: a bundle made by ``yt8m export``, predicting from numpy arrays or shards.

The model runs in an engine process (``yt8m engine``, the CLI's own code: the same numbers as
``yt8m predict``), fed over a pipe with the Open Inference Protocol's binary messages. libtorch
stays out of the Python process, so ``import yt8m`` needs no torch, and Python threads run
while the engine computes. The engine is the wheel's ``yt8m/_bin/yt8m-core`` (installed with
``pip install yt8m``, which brings torch 2.11) or, in a development tree, ``YT8M_BIN``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import tempfile
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

# One set of exception classes for the whole package: the reader (``_native``) raises them for
# its data errors, and the engine's replies below map onto them.
from ._native import Yt8mDataError, Yt8mError, Yt8mInternalError, Yt8mNotFoundError


# The engine's error kinds (the Rust library's ``ErrorKind``) → the exception raised; a bad
# argument or request stays a plain Yt8mError (a ValueError).
_KINDS = {"not_found": Yt8mNotFoundError, "corrupt_data": Yt8mDataError, "internal": Yt8mInternalError}


def _engine_error(reply: Dict[str, Any]) -> Yt8mError:
    return _KINDS.get(reply.get("kind", ""), Yt8mError)(reply["error"])


_DTYPES = {np.dtype(np.uint8): "UINT8", np.dtype(np.int64): "INT64", np.dtype(np.float32): "FP32"}


def _engine() -> str:
    """The engine executable: YT8M_ENGINE / YT8M_BIN, else the wheel's, else `yt8m` on PATH."""
    for var in ("YT8M_ENGINE", "YT8M_BIN"):
        if os.environ.get(var):
            return os.environ[var]
    core = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bin", "yt8m-core")
    if os.path.isfile(core):
        return core
    found = shutil.which("yt8m")
    if found:
        return found
    raise Yt8mError(
        "yt8m.Bundle needs the yt8m engine, which is not in this installation\n"
        "  hint: pip install the full wheel (it carries yt8m/_bin/yt8m-core and requires torch 2.11)"
    )


class Bundle:
    """A bundle directory from ``yt8m export``.

    >>> b = yt8m.Bundle("demo/bundle")
    >>> p = b.predict(rgb=frames_u8, audio=audio_u8, lengths=lengths)   # [videos, classes]
    >>> b.classes[p[0].argmax()]

    ``device``: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``; ``precision``: ``"fp32"``,
    ``"bf16"`` or ``"auto"`` (as ``yt8m predict``); ``batch_size``: videos per forward pass.
    Close it (or use ``with``) to stop the engine; it also stops with the Python process.
    """

    def __init__(self, path: str, device: str = "auto", precision: str = "fp32", batch_size: int = 64):
        if batch_size < 1:
            raise Yt8mError("batch_size must be at least 1")
        self.path = os.fspath(path)
        cmd = [_engine(), "engine", "--model", self.path, "--device", device, "--precision", precision,
               "--batch-size", str(int(batch_size)), "--log", "warn"]
        # The engine's messages go to a file, not a pipe: a pipe nobody reads would block it
        # once full; they are read back when it stops.
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        self._lock = threading.Lock()
        try:
            meta = json.loads(self._read_frame()[0])
            if "error" in meta:  # the bundle could not be loaded
                raise _engine_error(meta)
        except Yt8mError:
            self.close()
            raise
        self.metadata: Dict[str, Any] = meta
        #: Class names by index (the bundle's vocabulary).
        self.classes: List[str] = meta.pop("classes")
        self.inputs: List[str] = [i["name"] for i in meta["inputs"]]

    def _read_exact(self, n: int) -> bytes:
        buf = self._proc.stdout.read(n)
        if buf is None or len(buf) < n:
            self._proc.wait()
            self._stderr.seek(0)
            err = self._stderr.read().decode(errors="replace").strip()
            raise Yt8mError(f"the yt8m engine for {self.path} stopped (exit {self._proc.returncode}): {err}")
        return buf

    def _read_frame(self) -> Tuple[bytes, bytes]:
        json_len, body_len = struct.unpack("<QQ", self._read_exact(16))
        body = self._read_exact(body_len)
        return body[:json_len], body[json_len:]

    def _exchange(self, header: Dict[str, Any], tail: Sequence[bytes] = ()) -> Tuple[Dict[str, Any], bytes]:
        js = json.dumps(header).encode()
        body_len = len(js) + sum(len(t) for t in tail)
        with self._lock:
            if self._proc.poll() is not None:
                raise Yt8mError(f"the yt8m engine for {self.path} is closed")
            try:
                self._proc.stdin.write(struct.pack("<QQ", len(js), body_len))
                self._proc.stdin.write(js)
                for t in tail:
                    self._proc.stdin.write(t)
                self._proc.stdin.flush()
            except BrokenPipeError:
                self._read_exact(1 << 62)  # raises with the engine's message
            head, raw = self._read_frame()
        reply = json.loads(head)
        if "error" in reply:
            raise _engine_error(reply)
        return reply, raw

    def _call(self, inputs: Dict[str, np.ndarray], top_k: Optional[int] = None,
              outputs: Sequence[str] = ("probabilities",)) -> Dict[str, np.ndarray]:
        head: Dict[str, Any] = {"inputs": [], "outputs": [{"name": o, "parameters": {"binary_data": True}} for o in outputs]}
        if top_k is not None:
            head["parameters"] = {"top_k": int(top_k)}
        tail = []
        for name, a in inputs.items():
            a = np.ascontiguousarray(a)
            if a.dtype not in _DTYPES:
                raise Yt8mError(f"{name}: dtype {a.dtype} is not one of uint8, int64, float32")
            # The array's own bytes (no copy); the pipe write copies them once. A flat uint8
            # view, not memoryview.cast, which refuses arrays with a zero in their shape.
            raw = a.reshape(-1).view(np.uint8).data
            head["inputs"].append({"name": name, "datatype": _DTYPES[a.dtype], "shape": list(a.shape),
                                   "parameters": {"binary_data_size": len(raw)}})
            tail.append(raw)
        reply, raw = self._exchange(head, tail)
        out, off = {}, 0
        for o in reply["outputs"]:
            n = o["parameters"]["binary_data_size"]
            chunk = raw[off:off + n]
            off += n
            if o["datatype"] == "FP32":
                out[o["name"]] = np.frombuffer(chunk, dtype=np.float32).reshape(o["shape"]).copy()
            elif o["datatype"] == "INT64":
                out[o["name"]] = np.frombuffer(chunk, dtype=np.int64).reshape(o["shape"]).copy()
        return out

    def predict(self, rgb: Optional[np.ndarray] = None, audio: Optional[np.ndarray] = None,
                lengths: Optional[np.ndarray] = None, *, mean_rgb: Optional[np.ndarray] = None,
                mean_audio: Optional[np.ndarray] = None, **features: np.ndarray) -> np.ndarray:
        """Sigmoid probabilities float32 ``[videos, classes]``.

        Frame level: ``rgb`` ``[B, T, 1024]`` and ``audio`` ``[B, T, 128]`` (uint8 quantized, as
        the shards store them and ``yt8m.read_batches`` yields them, or float32 dequantized),
        ``lengths`` int64 ``[B]`` (frames per video; default: all ``T``). Video level:
        ``mean_rgb`` / ``mean_audio`` float32 ``[B, D]``. Other feature names by keyword.
        Extra keys of a ``read_batches`` batch are ignored: ``bundle.predict(**batch)`` works.
        """
        given = {"rgb": rgb, "audio": audio, "mean_rgb": mean_rgb, "mean_audio": mean_audio, **features}
        inputs = {k: np.asarray(v) for k, v in given.items() if v is not None and k in self.inputs}
        if lengths is not None and "lengths" in self.inputs:
            inputs["lengths"] = np.asarray(lengths, dtype=np.int64)
        if not inputs:
            raise Yt8mError(f"no features given; this model reads {self.inputs}")
        for k, v in inputs.items():
            if v.dtype == np.float64:
                inputs[k] = v.astype(np.float32)
        return self._call(inputs)["probabilities"]

    def predict_records(self, paths: Any) -> Tuple[List[str], np.ndarray]:
        """Every video of the shards (files, directories, globs, .list files), read and
        predicted by the engine exactly as ``yt8m predict`` does (length-sorted batches, input
        order kept): their ids and probabilities float32 ``[videos, classes]``."""
        from . import _paths

        _, raw = self._exchange({"records": _paths(paths)})
        z = np.load(io.BytesIO(raw))
        return [str(i) for i in z["ids"]], z["predictions"]

    def close(self) -> None:
        p = getattr(self, "_proc", None)
        if p is None:
            return
        if p.poll() is None:
            try:
                p.stdin.close()
                p.wait(timeout=10)
            except Exception:
                p.kill()
                p.wait()
        for f in (p.stdin, p.stdout, getattr(self, "_stderr", None)):
            try:
                f.close()
            except Exception:
                pass

    def __enter__(self) -> "Bundle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"yt8m.Bundle({self.path!r}, {len(self.classes)} classes, inputs {self.inputs})"
