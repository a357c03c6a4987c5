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
//! changes and would tie the binary to one set of shared libraries.
//!
//! One decoding pass: `ffprobe` reads the stream's time base and start (no decoding), then
//! `ffmpeg` decodes with the loop above as a stateful `select` expression over each frame's
//! own timestamp (`-copyts`: the stream's pts, unshifted; `TB` is the same `num / den` double
//! OpenCV's `r2d` computes, and the products are taken in the same order, so the comparisons
//! are OpenCV's bit for bit), converts the chosen frames to RGB24 with bicubic swscale as
//! OpenCV does (OpenCV converts to BGR24; the official code then reverses the channels, so the
//! network sees RGB), and stops after the last one; `showinfo` reports each chosen frame's pts.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

/// Largest frame side accepted from a decoder (8K is 7680; 360° video reaches 8192): one
/// RGB frame is then at most 201 MB.
const MAX_SIDE: usize = 8_192;

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
        "'{tool}' could not be started ({err}): extraction decodes video with FFmpeg; install \
         it (Debian/Ubuntu: apt-get install ffmpeg; ./dev setup does) or put it on PATH"
    )]
    NoTool {
        tool: &'static str,
        // `err`, not `source`: a chained source is printed a second time by `{:#}`.
        err: std::io::Error,
    },
    #[error("{path}: {message}")]
    Video { path: PathBuf, message: String },
}

/// One sampled frame.
pub struct Frame {
    /// OpenCV's `CAP_PROP_POS_MSEC` once this frame is read.
    pub time_ms: f64,
    pub height: usize,
    pub width: usize,
    /// `[height, width, 3]` RGB, row-major.
    pub rgb: Vec<u8>,
}

/// Runs `ffprobe` on `path` with `args`, handing each output line to `line` until it says stop
/// (then the decoder is killed): the tool's stderr tail on failure.
pub(super) fn ffprobe_lines(
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
        .map_err(|err| VideoError::NoTool {
            tool: "ffprobe",
            err,
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

/// The video stream's time base (num, den) and start pts, without decoding.
fn stream_clock(path: &Path) -> Result<((i64, i64), i64), VideoError> {
    let verr = |m: String| VideoError::Video {
        path: path.to_path_buf(),
        message: m,
    };
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
    let Some(tb) = time_base else {
        return Err(verr(
            "FFmpeg reports no time base for the video stream".into(),
        ));
    };
    // A stream without a start time: OpenCV subtracts nothing.
    Ok((tb, start.unwrap_or(0)))
}

/// Starts `ffmpeg` quietly on `path` with `output` arguments after the input, stdout and stderr
/// piped (`before` goes before `-i`).
pub(super) fn spawn_ffmpeg(
    path: &Path,
    before: &[&str],
    output: &[&str],
) -> Result<Child, VideoError> {
    Command::new("ffmpeg")
        .arg("-nostdin")
        .args(before)
        .arg("-i")
        .arg(path)
        .args(output)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| VideoError::NoTool {
            tool: "ffmpeg",
            err,
        })
}

/// The official loop as an FFmpeg `select` expression, evaluated once per decoded frame in
/// decoding order. Registers: 0 = disarmed (0: the next frame is taken; the first frame is),
/// 1 = `last`, 2 = frames taken, 3 = POS, 4 = this frame taken.
fn select_expression(start: i64, s: &Sampling) -> String {
    let (every, max) = (s.every_ms, s.max_frames);
    format!(
        "st(3,if(isnan(pts),0,(pts-({start}))*TB*1000));\
         st(4,eq(ld(0),0)*lt(ld(2),{max}));\
         if(ld(4),st(0,1)+st(2,ld(2)+1));\
         if(eq(ld(0),1)*gte(ld(3),{every:?}+ld(1))*lt(ld(2),{max}),st(1,ld(3))+st(0,0));\
         ld(4)"
    )
}

/// Reads stderr to the end on a thread (bounded), so a chatty tool never blocks on a full pipe;
/// the last lines say what failed.
pub(super) fn drain(s: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
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
        tail(&String::from_utf8_lossy(&kept))
    })
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(4)..].join("; ")
}

/// FFmpeg's stderr with `showinfo`: the pts of each frame it reports are sent on `pts`; the
/// last other lines are returned for error messages.
fn showinfo_reader(
    s: impl Read + Send + 'static,
    pts: std::sync::mpsc::Sender<Option<i64>>,
) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut other: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        for line in BufReader::new(s).lines() {
            let Ok(line) = line else { break };
            if line.contains("Parsed_showinfo") {
                if let Some(rest) = line.split(" pts:").nth(1) {
                    let v = rest.split_whitespace().next().and_then(|t| t.parse().ok());
                    let _ = pts.send(v);
                }
                continue;
            }
            other.push_back(line);
            if other.len() > 4 {
                other.pop_front();
            }
        }
        other.into_iter().collect::<Vec<_>>().join("; ")
    })
}

/// The sampled frames of one video, decoded as they are asked for.
pub struct SampledFrames {
    path: PathBuf,
    /// The stream's time base as OpenCV's `r2d` computes it, and its start pts.
    tb: f64,
    start: i64,
    taken: usize,
    child: Option<Child>,
    stdout: Option<BufReader<ChildStdout>>,
    pts: std::sync::mpsc::Receiver<Option<i64>>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl SampledFrames {
    /// Starts decoding `path`, keeping the frames the official sampling takes.
    pub fn open(path: &Path, sampling: &Sampling) -> Result<SampledFrames, VideoError> {
        let ((num, den), start) = stream_clock(path)?;
        // OpenCV's r2d(): 0 for a degenerate rational.
        let tb = if num == 0 || den == 0 {
            0.0
        } else {
            num as f64 / den as f64
        };
        let mut child = spawn_ffmpeg(
            path,
            &["-hide_banner", "-v", "info", "-copyts"],
            &[
                "-map",
                "0:v:0",
                "-vf",
                &format!("select='{}',showinfo", select_expression(start, sampling)),
                "-fps_mode",
                "passthrough",
                "-frames:v",
                &sampling.max_frames.to_string(),
                "-sws_flags",
                "bicubic",
                "-f",
                "image2pipe",
                "-c:v",
                "ppm",
                "-pix_fmt",
                "rgb24",
                "-",
            ],
        )?;
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = showinfo_reader(child.stderr.take().expect("piped"), tx);
        Ok(SampledFrames {
            path: path.to_path_buf(),
            tb,
            start,
            taken: 0,
            stdout: Some(BufReader::with_capacity(
                1 << 20,
                child.stdout.take().expect("piped"),
            )),
            child: Some(child),
            pts: rx,
            stderr: Some(stderr),
        })
    }

    fn fail(&mut self, message: String) -> VideoError {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stdout = None;
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

    /// The end of FFmpeg's output: success with frames is the end of the video; a failed
    /// decoder, or none decoded, is the video's error with FFmpeg's own words.
    fn finish(&mut self) -> Result<Option<Frame>, VideoError> {
        self.stdout = None;
        let status = self.child.take().map(|mut c| c.wait());
        let tail = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        match status {
            Some(Ok(s)) if s.success() => {
                if self.taken == 0 {
                    Err(VideoError::Video {
                        path: self.path.clone(),
                        message: "no video frame could be decoded: check that the file is a \
                                  complete video"
                            .into(),
                    })
                } else {
                    Ok(None)
                }
            }
            other => Err(VideoError::Video {
                path: self.path.clone(),
                message: format!(
                    "FFmpeg cannot read it as a video ({}): check that the file is a \
                     complete video",
                    if tail.trim().is_empty() {
                        format!("{other:?}")
                    } else {
                        tail.trim().to_string()
                    }
                ),
            }),
        }
    }

    /// The next sampled frame, or None after the last.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, VideoError> {
        let Some(r) = self.stdout.as_mut() else {
            return Ok(None);
        };
        // A clean end of the output: FFmpeg took every frame it was going to.
        let at_end = match r.fill_buf() {
            Ok(b) => b.is_empty(),
            Err(e) => {
                let m = format!("reading decoded frames: {e}");
                return Err(self.fail(m));
            }
        };
        if at_end {
            return self.finish();
        }
        let (width, height) = match read_ppm_header(r) {
            Ok(h) => h,
            Err(m) => {
                let m = format!("frame {}: {m}", self.taken + 1);
                return Err(self.fail(m));
            }
        };
        let mut rgb = vec![0u8; width * height * 3];
        if let Err(e) = r.read_exact(&mut rgb) {
            let m = format!(
                "frame {}: the decoder stopped inside it ({e})",
                self.taken + 1
            );
            return Err(self.fail(m));
        }
        // showinfo reports the frame before FFmpeg writes it out.
        let pts = match self.pts.recv_timeout(std::time::Duration::from_secs(30)) {
            Ok(p) => p,
            Err(_) => {
                let m = format!("frame {}: FFmpeg reported no timestamp", self.taken + 1);
                return Err(self.fail(m));
            }
        };
        self.taken += 1;
        Ok(Some(Frame {
            // POS_MSEC as OpenCV computes it (0 without a timestamp).
            time_ms: pts.map_or(0.0, |p| {
                p.wrapping_sub(self.start) as f64 * self.tb * 1000.0
            }),
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
    fn the_select_expression_spells_every_number_exactly() {
        let e = select_expression(
            -1234,
            &Sampling {
                every_ms: 1000.0 / 3.0,
                max_frames: 7,
            },
        );
        // Rust's shortest round-trip spelling: strtod reads back the same double.
        assert!(e.contains("gte(ld(3),333.3333333333333+ld(1))"), "{e}");
        assert!(e.contains("(pts-(-1234))*TB*1000"), "{e}");
        assert_eq!(e.matches("lt(ld(2),7)").count(), 2, "{e}");
        assert!(!e.contains(char::is_whitespace), "{e}");
    }

    #[test]
    fn ppm_headers_are_bounded() {
        let ok = |b: &[u8]| read_ppm_header(&mut &b[..]);
        assert_eq!(ok(b"P6\n320 240\n255\n").unwrap(), (320, 240));
        assert!(ok(b"P5\n320 240\n255\n").is_err());
        assert!(ok(b"P6\n320 240\n65535\n").is_err());
        assert!(ok(b"P6\n99999999 240\n255\n").is_err());
        assert_eq!(ok(b"P6\n8192 4096\n255\n").unwrap(), (8192, 4096));
        assert!(ok(b"P6\n8193 4096\n255\n").is_err());
        assert!(ok(b"P6\n0 240\n255\n").is_err());
        assert!(ok(b"P6\n320").is_err());
        assert!(ok(b"P6\n32x0 240\n255\n").is_err());
    }
}
