#!/usr/bin/env python3
"""What the official YouTube-8M extractor's frame sampling yields for a video, through OpenCV
itself (opencv-python-headless): google/youtube-8m feature_extractor/extract_tfrecords_main.py,
`frame_iterator` (scripts/yt8m_official.py, as published, also reading `CAP_PROP_POS_MSEC` after
each frame it yields), and the channel reversal its main() applies (`rgb[:, :, ::-1]`). tests/extract.rs compares
`yt8m extract`'s sampling with this.

  python scripts/opencv_frame_iterator.py VIDEO OUT.npz [EVERY_MS] [MAX_FRAMES]

Writes `times` (float64: POS_MSEC read as `last_ts` before each yielded frame, and after it)
and `frames` (uint8 [n, H, W, 3], RGB) when all frames have one size, else `frame_<i>` each.
"""
import os
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from yt8m_official import frame_iterator  # noqa: E402

def main():
    video, out = sys.argv[1], sys.argv[2]
    every_ms = float(sys.argv[3]) if len(sys.argv) > 3 else 1000.0
    max_frames = int(sys.argv[4]) if len(sys.argv) > 4 else 300
    frames, times = [], []
    for bgr, t in frame_iterator(video, every_ms, max_frames, with_pos=True):
        frames.append(np.ascontiguousarray(bgr[:, :, ::-1]))
        times.append(t)
    arrays = {"times": np.asarray(times, dtype=np.float64)}
    if frames and len({f.shape for f in frames}) == 1:
        arrays["frames"] = np.stack(frames)
    else:
        for i, f in enumerate(frames):
            arrays[f"frame_{i}"] = f
    np.savez(out, **arrays)
    print(f"{len(frames)} frames, opencv {cv2.__version__}")


if __name__ == "__main__":
    main()
