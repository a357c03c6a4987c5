# Type stubs of the yt8m package (the implementation is in Rust: yt8m._native).
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np

__version__: str

PathLike = Union[str, bytes, os.PathLike[str], os.PathLike[bytes]]
Paths = Union[PathLike, Sequence[PathLike]]

class Yt8mError(ValueError):
    """A data or argument problem; the message names the file, record, key and a hint."""

class Yt8mNotFoundError(Yt8mError, FileNotFoundError):
    """A path that is not there (a bundle, a shard, a weights file)."""

class Yt8mDataError(Yt8mError):
    """Data or weights that are damaged or not what they claim."""

class Yt8mInternalError(Yt8mError):
    """yt8m, libtorch or the machine failed: not the input's fault."""

class _VideoIter(Iterator[Dict[str, Any]]):
    skipped: List[str]
    def __iter__(self) -> _VideoIter: ...
    def __next__(self) -> Dict[str, Any]: ...

def read(
    paths: Paths,
    level: str = "auto",
    max_frames: Optional[int] = 300,
    dequantize: bool = False,
    skip_corrupt: bool = False,
    num_threads: int = 0,
    copy: bool = True,
) -> _VideoIter: ...
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
) -> Iterator[Dict[str, Any]]: ...
def inspect(paths: Paths, skip_corrupt: bool = False) -> Dict[str, Any]: ...
def evaluate(
    predictions: np.ndarray,
    labels: np.ndarray,
    top_k: int = 20,
    mode: str = "official",
    batch_size: int = 8,
    tie_order: str = "official",
) -> Dict[str, Any]: ...

class Evaluator:
    def __init__(
        self,
        num_classes: int,
        top_k: int = 20,
        mode: str = "official",
        batch_size: int = 8,
        tie_order: str = "official",
    ) -> None: ...
    def accumulate(self, predictions: np.ndarray, labels: np.ndarray) -> None: ...
    def get(self) -> Dict[str, Any]: ...
    def clear(self) -> None: ...
    @property
    def num_videos(self) -> int: ...

class Bundle:
    """A bundle from `yt8m export`, run by the CLI's engine in its own process."""
    path: str
    classes: List[str]
    inputs: List[str]
    metadata: Dict[str, Any]
    def __init__(self, path: Union[str, os.PathLike[str]], device: str = "auto", precision: str = "fp32", batch_size: int = 64) -> None: ...
    def predict(
        self,
        rgb: Optional[np.ndarray] = None,
        audio: Optional[np.ndarray] = None,
        lengths: Optional[np.ndarray] = None,
        *,
        mean_rgb: Optional[np.ndarray] = None,
        mean_audio: Optional[np.ndarray] = None,
        **features: Any,
    ) -> np.ndarray: ...
    def predict_records(self, paths: Paths) -> tuple[List[str], np.ndarray]: ...
    def close(self) -> None: ...
    def __enter__(self) -> Bundle: ...
    def __exit__(self, *exc: Any) -> None: ...
