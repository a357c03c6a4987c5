"""YouTube-8M without TensorFlow.

Read the official TFRecord shards (frame-level ``SequenceExample``, video-level ``Example``;
2017, 2018 and 2019 schemas, both CRCs checked) and PaddleVideo pickles straight into numpy,
and compute the official metrics (Hit@1, PERR, GAP@k, mAP) exactly as Google's
``eval_util.py`` does, tie order included.

    >>> import yt8m
    >>> for v in yt8m.read("validate*.tfrecord"):
    ...     v["id"], v["labels"], v["mean_rgb"].shape
    >>> yt8m.evaluate(predictions, labels)["gap"]

The work is done in Rust (the crates of the ``yt8m`` command line tool); no TensorFlow,
libtorch or Rust toolchain is needed to install or use this package.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np

from . import _native
from ._native import Yt8mError
from .bundle import Bundle, Yt8mDataError, Yt8mInternalError, Yt8mNotFoundError

__all__ = [
    "Bundle",
    "read",
    "read_batches",
    "inspect",
    "evaluate",
    "Evaluator",
    "Yt8mError",
    "Yt8mNotFoundError",
    "Yt8mDataError",
    "Yt8mInternalError",
    "__version__",
]

__version__ = _native.__version__

PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
Paths = Union[PathLike, Sequence[PathLike]]


def _paths(paths: Paths) -> List[str]:
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    out = []
    for p in paths:
        p = os.fspath(p)
        if isinstance(p, bytes):
            p = os.fsdecode(p)
        out.append(p)
    return out


def read(
    paths: Paths,
    level: str = "auto",
    max_frames: Optional[int] = 300,
    dequantize: bool = False,
    skip_corrupt: bool = False,
    num_threads: int = 0,
    copy: bool = True,
) -> Iterator[Dict[str, Any]]:
    """Iterate over the videos of ``paths``, one dict per video, in file order.

    ``paths``: a file, directory, glob pattern (``"data/train*.tfrecord"``) or PaddleVideo
    ``.list`` file, or a list of them — as on the command line.

    Each dict holds ``id`` (str), ``labels`` (int64 array, empty for the test split),
    ``has_labels`` (False when the record has no labels key) and per feature a numpy array:

    * frame level: ``rgb`` uint8 ``[frames, 1024]`` and ``audio`` uint8 ``[frames, 128]``
      (float32 dequantized exactly as the official reader, ``q * 4/255 - 2 + 4/512``, with
      ``dequantize=True``), ``num_frames`` (kept) and ``total_frames`` (stored); 2019 segment
      records add ``segments`` (start_times, labels, scores);
    * video level: ``mean_rgb`` float32 ``[1024]`` and ``mean_audio`` float32 ``[128]``.

    ``level``: ``"auto"`` (from each file's first record), ``"frame"`` or ``"video"``.
    ``max_frames``: frames kept per video (the official reader's 300); ``None`` keeps all.
    ``skip_corrupt``: skip records whose CRC or structure is broken instead of raising; the
    iterator's ``skipped`` attribute then lists every skipped record and byte range.
    ``num_threads``: files decoded in parallel by Rust threads (0: up to 4, the cores this
    process may use); the order is file order whatever the threads.
    ``copy=False``: frame arrays are read-only views into the memory-mapped shards instead of
    copies (the fastest way to read: nothing is copied, about twice as fast as the default on
    1 GB; strided, so ``np.ascontiguousarray`` copies one when needed). A file must not be
    truncated or rewritten while its views are alive (touching a vanished page kills the
    process with SIGBUS, as with any memory map). Ignored with ``skip_corrupt=True``, for
    pipes and for video-level data.

    Raises :class:`Yt8mError` naming the file, record, byte offset and key of any problem.
    """
    if max_frames is not None and max_frames < 1:
        raise Yt8mError("max_frames must be at least 1 (or None for all frames)")
    if num_threads < 0:
        raise Yt8mError("num_threads must not be negative")
    return _native.read(
        _paths(paths), level, max_frames, bool(dequantize), bool(skip_corrupt), int(num_threads), bool(copy)
    )


def read_batches(
    paths: Paths,
    batch_size: int,
    shuffle_buffer: int = 0,
    seed: int = 0,
    bucket_by_length: bool = False,
    num_threads: int = 0,
    *,
    level: str = "auto",
    max_frames: int = 300,
    num_classes: int = 3862,
    drop_last: bool = False,
    skip_corrupt: bool = False,
    epoch: int = 0,
) -> Iterator[Dict[str, Any]]:
    """Iterate over padded batches, decoded by Rust threads without holding the GIL.

    Each batch is a dict: ``ids`` (list of str), ``lengths`` int64 ``[B]`` (frames per video,
    1 at video level), ``labels`` float32 multi-hot ``[B, num_classes]``, ``has_labels`` bool
    ``[B]``, and per feature ``rgb`` uint8 ``[B, T, 1024]`` / ``audio`` uint8 ``[B, T, 128]``
    (T = the longest video of the batch; padding rows are 0) or, at video level,
    ``mean_rgb`` float32 ``[B, 1024]`` / ``mean_audio`` float32 ``[B, 128]``.

    ``shuffle_buffer`` > 0 shuffles the shard order and videos through a buffer of that many
    (the ``tf.data`` idiom), deterministically per ``seed`` and ``epoch``; 0 keeps file order.
    ``bucket_by_length`` sorts each window of 16 batches by length so batches pad little.
    ``num_threads``: decoder threads (0: up to 4, the cores this process may use).
    The batches are the same whatever the thread timing.

    The shards are memory-mapped; a shard truncated or rewritten while it is read raises
    ``Yt8mError`` naming it. The frame and label arrays are writable; their memory goes back
    to a pool shared by every ``read_batches`` iterator of the process once numpy frees them
    (the next epoch reuses it), and the pool is emptied 20 s after the last iterator ends
    (``YT8M_POOL_IDLE_MS``).
    """
    if batch_size < 1:
        raise Yt8mError("batch_size must be at least 1")
    for name, v in (("shuffle_buffer", shuffle_buffer), ("seed", seed), ("num_threads", num_threads), ("epoch", epoch)):
        if v < 0:
            raise Yt8mError(f"{name} must not be negative")
    return _native.read_batches(
        _paths(paths),
        int(batch_size),
        int(shuffle_buffer),
        int(seed),
        bool(bucket_by_length),
        int(num_threads),
        level,
        int(max_frames),
        int(num_classes),
        bool(drop_last),
        bool(skip_corrupt),
        int(epoch),
    )


def inspect(paths: Paths, skip_corrupt: bool = False) -> Dict[str, Any]:
    """What ``yt8m inspect --json`` prints: per file the records, CRC check, level, schema
    year, feature widths, frame and label statistics, id pattern (``{"files": [...]}``)."""
    return json.loads(_native.inspect_json(_paths(paths), bool(skip_corrupt)))


def _two_dims(a: np.ndarray, what: str) -> None:
    if a.ndim != 2:
        raise Yt8mError(
            f"{what} have shape {list(a.shape)}: expected [videos, classes] (one row per video; "
            f"a single video is x[None, :])"
        )


def _scores(predictions: Any) -> np.ndarray:
    p = np.asarray(predictions)
    _two_dims(p, "predictions")
    if p.dtype not in (np.float32, np.float64):
        if p.dtype.kind not in "biuf":
            raise Yt8mError(f"predictions must be numbers, got dtype {p.dtype}")
        p = p.astype(np.float64)
    return np.ascontiguousarray(p)


def _labels(labels: Any) -> np.ndarray:
    """0/1 (or bool) multi-hot labels as uint8; anything else is refused, as `yt8m evaluate`
    refuses it (a 2 or a 0.5 is a bug in the caller's labels, not a positive)."""
    l = np.asarray(labels)
    _two_dims(l, "labels")
    if l.dtype == np.bool_:
        return np.ascontiguousarray(l.astype(np.uint8))
    if l.dtype.kind not in "biuf":
        raise Yt8mError(f"labels must be 0/1 numbers or booleans, got dtype {l.dtype}")
    bad = (l != 0) & (l != 1)  # NaN is neither
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise Yt8mError(
            f"labels must be 0/1; row {r} class {c} is {l[r, c]!r} "
            f"(multi-hot: 1 where the video has the class)"
        )
    return np.ascontiguousarray(l.astype(np.uint8))


def evaluate(
    predictions: Any,
    labels: Any,
    top_k: int = 20,
    mode: str = "official",
    batch_size: int = 8,
    tie_order: str = "official",
) -> Dict[str, Any]:
    """The official metrics of ``predictions`` ``[videos, classes]`` (float32 or float64
    scores) against multi-hot ``labels`` of the same shape (0/1 numbers or booleans; any other
    value raises :class:`Yt8mError`, as ``yt8m evaluate`` refuses it).

    Returns a dict with ``hit_at_one``, ``perr``, ``gap`` (GAP@``top_k``), ``map`` (mean AP
    over classes with positives) and ``num_videos``. ``mode="official"`` is Google's
    ``EvaluationMetrics`` on one batch (the numbers of its ``eval_util.py``, ties included);
    ``mode="paddlevideo"`` is PaddleVideo's unweighted mean of per-batch metrics over batches
    of ``batch_size`` (``map`` is then None). Equal to ``yt8m evaluate`` on the same arrays.
    """
    return _native.evaluate(_scores(predictions), _labels(labels), int(top_k), mode, int(batch_size), tie_order)


class Evaluator:
    """Streaming metrics, like the starter's ``EvaluationMetrics``: ``accumulate`` batches,
    ``get`` the metrics so far (any number of times), ``clear`` to start over."""

    def __init__(
        self,
        num_classes: int,
        top_k: int = 20,
        mode: str = "official",
        batch_size: int = 8,
        tie_order: str = "official",
    ) -> None:
        self._ev = _native.Evaluator(int(num_classes), int(top_k), mode, int(batch_size), tie_order)

    def accumulate(self, predictions: Any, labels: Any) -> None:
        """Adds a batch: ``predictions`` and ``labels`` are ``[batch, num_classes]``."""
        self._ev.accumulate(_scores(predictions), _labels(labels))

    def get(self) -> Dict[str, Any]:
        """The metrics over everything accumulated since the last ``clear``."""
        return self._ev.get()

    def clear(self) -> None:
        self._ev.clear()

    @property
    def num_videos(self) -> int:
        return self._ev.num_videos
