//! Frames of a video file, sampled as the official extractor samples them: google/youtube-8m
//! `feature_extractor/extract_tfrecords_main.py` (`frame_iterator`, over OpenCV's FFmpeg
//! capture, opencv `modules/videoio/src/cap_ffmpeg_impl.hpp`).
//!
//! The official loop, with `POS` = OpenCV's `CAP_PROP_POS_MSEC` = the presentation time of the
//! frame read last, `(pts - stream start_time) * time_base * 1000` in double precision (0 before
//! any frame, or when the frame has no timestamp):
//!
//! ```text
//! last = -99999
//! while taken < max_frames:
//!     while POS < every_ms + last: read a frame (end of video: stop)
//!     last = POS; read a frame and yield it
//! ```
//!
//! So the first frame is taken, and each next one is the frame *after* the first frame at least
//! `every_ms` past the previous `last` (a quirk kept on purpose: it is how YouTube-8M was made).
//!
//! Decoding goes through the `ffmpeg`/`ffprobe` executables (Debian's `ffmpeg` package; `./dev
//! setup` installs it) rather than a binding to libav*: their command-line interface has been
//! stable for a decade, while the Rust bindings follow each FFmpeg major version with breaking
//! changes and would tie the binary to one set of shared libraries; decoding is a small part of
//! extraction's time next to Inception. `ffprobe` lists the frames' timestamps (decoding, so
//! that frame order is the decoder's, as OpenCV sees it); the plan above then picks frame
//! numbers, and `ffmpeg` decodes again, keeping only those frames (`select`) and converting them
//! to RGB24 with bicubic swscale as OpenCV does (OpenCV converts to BGR24; the official code
//! then reverses the channels, so the network sees RGB).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

/// Largest frame side accepted from a decoder (8K is 7680).
const MAX_SIDE: usize = 16_384;

/// How frames are sampled (the official defaults: one per second, at most 300).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// `1000 / frames_per_second` in the official flags.
    pub every_ms: f64,
    pub max_frames: usize,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            every_ms: 1000.0,
            max_frames: 300,
        }
    }
}

/// Why frames could not be read from a video.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error(
        "'{tool}' could not be started ({source}): extraction decodes video with FFmpeg; install \
         it (Debian/Ubuntu: apt-get install ffmpeg; ./dev setup does) or put it on PATH"
    )]
    NoTool {
        tool: &'static str,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Video { path: PathBuf, message: String },
}

/// One sampled frame.
pub struct Frame {
    /// Position among all decoded frames of the video stream (0-based).
    pub index: usize,
    /// OpenCV's `CAP_PROP_POS_MSEC` once this frame is read.
    pub time_ms: f64,
    pub height: usize,
    pub width: usize,
    /// `[height, width, 3]` RGB, row-major.
    pub rgb: Vec<u8>,
}

/// The official loop fed one decoded frame at a time (POS_MSEC after reading it), so that
/// decoding can stop once `max_frames` are taken.
pub struct Selector {
    sampling: Sampling,
    /// POS_MSEC now (0 before any frame is read).
    pos: f64,
    last: f64,
    take_next: bool,
    seen: usize,
    picked: Vec<usize>,
}

impl Selector {
    pub fn new(sampling: Sampling) -> Selector {
        let mut s = Selector {
            sampling,
            pos: 0.0,
            last: -99999.0,
            take_next: false,
            seen: 0,
            picked: Vec::new(),
        };
        s.settle();
        s
    }

    /// After a read: the inner `while POS < every_ms + last` loop ends here when it can.
    fn settle(&mut self) {
        if self.picked.len() < self.sampling.max_frames
            && self.pos >= self.sampling.every_ms + self.last
        {
            self.last = self.pos;
            self.take_next = true;
        }
    }

    /// The next decoded frame, with POS_MSEC once it is read; true when nothing more is taken.
    pub fn push(&mut self, time_ms: f64) -> bool {
        if self.done() {
            return true;
        }
        if self.take_next {
            self.picked.push(self.seen);
            self.take_next = false;
        }
        self.seen += 1;
        self.pos = time_ms;
        self.settle();
        self.done()
    }

    pub fn done(&self) -> bool {
        self.picked.len() >= self.sampling.max_frames
    }

    /// Decoded frame numbers taken so far.
    pub fn picked(&self) -> &[usize] {
        &self.picked
    }
}

/// The frame numbers `frame_iterator` yields, given POS_MSEC after each decoded frame.
pub fn select_frames(times_ms: &[f64], sampling: &Sampling) -> Vec<usize> {
    let mut s = Selector::new(*sampling);
    for &t in times_ms {
        if s.push(t) {
            break;
        }
    }
    s.picked
}

/// Runs `ffprobe` on `path` with `args`, handing each output line to `line` until it says stop
/// (then the decoder is killed): the tool's stderr tail on failure.
fn ffprobe_lines(
    path: &Path,
    args: &[&str],
    mut line: impl FnMut(&str) -> bool,
) -> Result<(), VideoError> {
    let verr = |m: String| VideoError::Video {
        path: path.to_path_buf(),
        message: m,
    };
    let mut child = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| VideoError::NoTool {
            tool: "ffprobe",
            source,
        })?;
    let stderr = drain(child.stderr.take());
    let out = BufReader::new(child.stdout.take().expect("piped"));
    let mut stopped = false;
    for l in out.lines() {
        let l = l.map_err(|e| verr(format!("reading ffprobe's output: {e}")))?;
        if !line(&l) {
            stopped = true;
            break;
        }
    }
    if stopped {
        let _ = child.kill();
    }
    let status = child
        .wait()
        .map_err(|e| verr(format!("waiting for ffprobe: {e}")))?;
    let tail = stderr.join().unwrap_or_default();
    if !stopped && !status.success() {
        return Err(verr(format!(
            "FFmpeg cannot read it as a video ({}): check that the file is a complete video",
            if tail.trim().is_empty() {
                status.to_string()
            } else {
                tail.trim().to_string()
            }
        )));
    }
    Ok(())
}

/// Frames listed at most before giving up on reaching `max_frames` picks (a 300-frame sample
/// at one per second of 240 fps video reads 72,000).
const MAX_PROBED_FRAMES: usize = 1_000_000;

/// Decodes the video stream's timestamps (POS_MSEC as OpenCV computes it) until the sampling
/// has taken all it will: (every POS_MSEC seen, frames taken).
fn probe_and_select(
    path: &Path,
    sampling: &Sampling,
) -> Result<(Vec<f64>, Vec<usize>), VideoError> {
    let verr = |m: String| VideoError::Video {
        path: path.to_path_buf(),
        message: m,
    };
    // The stream's time base and start first (no decoding), so frames can be timed as they come.
    let mut time_base: Option<(i64, i64)> = None;
    let mut start: Option<i64> = None;
    let mut streams = 0;
    ffprobe_lines(
        path,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=time_base,start_pts",
            "-of",
            "compact",
        ],
        |l| {
            let mut fields = l.split('|');
            if fields.next() == Some("stream") {
                streams += 1;
                for f in fields {
                    if let Some(v) = f.strip_prefix("time_base=") {
                        let (n, d) = v.split_once('/').unwrap_or((v, "1"));
                        time_base = n.parse().ok().zip(d.parse().ok());
                    } else if let Some(v) = f.strip_prefix("start_pts=") {
                        start = v.parse().ok();
                    }
                }
            }
            true
        },
    )?;
    if streams == 0 {
        return Err(verr("no video stream (an audio-only file?)".into()));
    }
    let Some((num, den)) = time_base else {
        return Err(verr(
            "FFmpeg reports no time base for the video stream".into(),
        ));
    };
    // OpenCV's r2d(): 0 for a degenerate rational; dts_to_sec() subtracts the stream's start.
    let tb = if num == 0 || den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    };
    let start = start.unwrap_or(0);
    let mut sel = Selector::new(*sampling);
    let mut times = Vec::new();
    ffprobe_lines(
        path,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=best_effort_timestamp",
            "-of",
            "compact",
        ],
        |l| {
            let mut fields = l.split('|');
            if fields.next() != Some("frame") {
                return true;
            }
            let t = match fields
                .find_map(|f| f.strip_prefix("best_effort_timestamp="))
                .and_then(|v| v.parse::<i64>().ok())
            {
                // picture_pts == AV_NOPTS_VALUE: OpenCV answers 0.
                None => 0.0,
                Some(p) => p.wrapping_sub(start) as f64 * tb * 1000.0,
            };
            times.push(t);
            !sel.push(t) && times.len() < MAX_PROBED_FRAMES
        },
    )?;
    if times.is_empty() {
        return Err(verr(
            "no video frame could be decoded: check that the file is a complete video".into(),
        ));
    }
    Ok((times, sel.picked))
}

/// Reads stderr to the end on a thread (bounded), so a chatty tool never blocks on a full pipe.
fn drain(s: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        if let Some(mut s) = s {
            let mut buf = [0u8; 8192];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if kept.len() < 16 * 1024 {
                    kept.extend_from_slice(&buf[..n]);
                }
            }
        }
        let text = String::from_utf8_lossy(&kept).into_owned();
        // The last lines say what failed.
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(4)..].join("; ")
    })
}

/// The sampled frames of one video, decoded as they are asked for.
pub struct SampledFrames {
    path: PathBuf,
    picked: Vec<usize>,
    times_ms: Vec<f64>,
    next: usize,
    child: Option<Child>,
    stdout: Option<BufReader<ChildStdout>>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl SampledFrames {
    /// Probes `path` and starts decoding the frames the official sampling takes.
    pub fn open(path: &Path, sampling: &Sampling) -> Result<SampledFrames, VideoError> {
        let (times_ms, picked) = probe_and_select(path, sampling)?;
        let mut s = SampledFrames {
            path: path.to_path_buf(),
            picked,
            times_ms,
            next: 0,
            child: None,
            stdout: None,
            stderr: None,
        };
        if s.picked.is_empty() {
            return Ok(s);
        }
        let expr: Vec<String> = s.picked.iter().map(|n| format!("eq(n\\,{n})")).collect();
        let mut child = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(path)
            .args([
                "-map",
                "0:v:0",
                "-vf",
                &format!("select='{}'", expr.join("+")),
                "-fps_mode",
                "passthrough",
                "-frames:v",
                &s.picked.len().to_string(),
                "-sws_flags",
                "bicubic",
                "-f",
                "image2pipe",
                "-c:v",
                "ppm",
                "-pix_fmt",
                "rgb24",
                "-",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| VideoError::NoTool {
                tool: "ffmpeg",
                source,
            })?;
        s.stderr = Some(drain(child.stderr.take()));
        s.stdout = Some(BufReader::with_capacity(
            1 << 20,
            child.stdout.take().expect("piped"),
        ));
        s.child = Some(child);
        Ok(s)
    }

    /// How many frames the sampling takes from this video.
    pub fn len(&self) -> usize {
        self.picked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.picked.is_empty()
    }

    /// POS_MSEC of the decoded frames the sampling looked at (up to the last one it took).
    pub fn frame_times_ms(&self) -> &[f64] {
        &self.times_ms
    }

    fn fail(&mut self, message: String) -> VideoError {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let tail = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        VideoError::Video {
            path: self.path.clone(),
            message: if tail.trim().is_empty() {
                message
            } else {
                format!("{message} (ffmpeg: {})", tail.trim())
            },
        }
    }

    /// The next sampled frame, or None after the last.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, VideoError> {
        if self.next >= self.picked.len() {
            if let Some(mut c) = self.child.take() {
                let status = c.wait();
                if !matches!(status, Ok(s) if s.success()) {
                    let m = format!("ffmpeg ended with {status:?}");
                    self.child = Some(c);
                    return Err(self.fail(m));
                }
            }
            return Ok(None);
        }
        let r = self.stdout.as_mut().expect("started with frames to take");
        let head = match read_ppm_header(r) {
            Ok(h) => h,
            Err(m) => {
                let m = format!(
                    "frame {} of {} (decoded frame {}): {m}",
                    self.next + 1,
                    self.picked.len(),
                    self.picked[self.next]
                );
                return Err(self.fail(m));
            }
        };
        let (width, height) = head;
        let mut rgb = vec![0u8; width * height * 3];
        if let Err(e) = r.read_exact(&mut rgb) {
            let m = format!(
                "frame {} of {}: the decoder stopped inside it ({e})",
                self.next + 1,
                self.picked.len()
            );
            return Err(self.fail(m));
        }
        let index = self.picked[self.next];
        self.next += 1;
        Ok(Some(Frame {
            index,
            time_ms: self.times_ms[index],
            height,
            width,
            rgb,
        }))
    }
}

impl Drop for SampledFrames {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A binary PPM header (`P6 W H 255` + one whitespace byte): (width, height), bounded.
fn read_ppm_header(r: &mut impl BufRead) -> Result<(usize, usize), String> {
    let mut fields: Vec<usize> = Vec::with_capacity(3);
    let mut magic = [0u8; 2];
    r.read_exact(&mut magic)
        .map_err(|e| format!("no frame came from the decoder ({e})"))?;
    if &magic != b"P6" {
        return Err("the decoder's output is not a PPM frame".into());
    }
    let mut tok = String::new();
    while fields.len() < 3 {
        let mut b = [0u8; 1];
        r.read_exact(&mut b)
            .map_err(|e| format!("a frame header was cut short ({e})"))?;
        let c = b[0];
        if c.is_ascii_digit() {
            if tok.len() > 6 {
                return Err("a frame header number is too long".into());
            }
            tok.push(c as char);
        } else if c.is_ascii_whitespace() {
            if !tok.is_empty() {
                fields.push(tok.parse().map_err(|_| "bad frame header")?);
                tok.clear();
            }
        } else {
            return Err(format!("unexpected byte {c:#04x} in a frame header"));
        }
    }
    // The header ended on the single whitespace byte that follows maxval.
    let (w, h, maxval) = (fields[0], fields[1], fields[2]);
    if maxval != 255 {
        return Err(format!("a frame with maxval {maxval} (expected 8-bit RGB)"));
    }
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(format!("a frame of {w}x{h} pixels"));
    }
    Ok((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_official_rule_takes_the_frame_after_each_second_mark() {
        // 30 fps from 0: frame 0; then frame 30 (at 1000 ms) sets `last` and 31 is taken;
        // then 60 (2000 ms) and 61 is taken.
        let t: Vec<f64> = (0..100).map(|i| i as f64 * 1000.0 / 30.0).collect();
        assert_eq!(select_frames(&t, &Sampling::default()), [0, 31, 61, 91]);
        // At most max_frames.
        let s = Sampling {
            every_ms: 1000.0,
            max_frames: 2,
        };
        assert_eq!(select_frames(&t, &s), [0, 31]);
        // A frame just short of the mark does not count: 999.999 ms < 1000.
        let t = [0.0, 999.999, 1000.0, 1500.0];
        assert_eq!(select_frames(&t, &Sampling::default()), [0, 3]);
        // The first frame's own time does not matter (POS is 0 before any read).
        let t = [700.0, 800.0, 1700.0, 1800.0];
        assert_eq!(select_frames(&t, &Sampling::default()), [0, 3]);
        // A video ending right after the mark: nothing more.
        let t = [0.0, 500.0, 1000.0];
        assert_eq!(select_frames(&t, &Sampling::default()), [0]);
        assert!(select_frames(&[], &Sampling::default()).is_empty());
    }

    #[test]
    fn ppm_headers_are_bounded() {
        let ok = |b: &[u8]| read_ppm_header(&mut &b[..]);
        assert_eq!(ok(b"P6\n320 240\n255\n").unwrap(), (320, 240));
        assert!(ok(b"P5\n320 240\n255\n").is_err());
        assert!(ok(b"P6\n320 240\n65535\n").is_err());
        assert!(ok(b"P6\n99999999 240\n255\n").is_err());
        assert!(ok(b"P6\n0 240\n255\n").is_err());
        assert!(ok(b"P6\n320").is_err());
        assert!(ok(b"P6\n32x0 240\n255\n").is_err());
    }
}
