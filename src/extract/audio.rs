//! Audio features as YouTube-8M's audio was made: AudioSet's VGGish recipe
//! (tensorflow/models `research/audioset/vggish/`: `vggish_input.py`, `mel_features.py`,
//! `vggish_params.py`, `vggish_postprocess.py`), framed per second as MediaPipe's YouTube-8M
//! feature-extraction graph frames it (google-ai-edge/mediapipe
//! `mediapipe/graphs/youtube8m/feature_extraction.pbtxt`).
//!
//! - Waveform: the video's first audio stream decoded by `ffmpeg` to 16 kHz mono signed 16-bit
//!   PCM, divided by 32768 (`wavfile_to_examples`). For audio already at 16 kHz mono this is the
//!   official input exactly; other rates and layouts are mixed and resampled by FFmpeg where the
//!   official code uses `np.mean` over channels and `resampy` (so those differ slightly).
//! - Log-mel (`mel_features.log_mel_spectrogram`, float64): 400-sample periodic-Hann frames
//!   every 160 samples (25 ms / 10 ms), |rfft| with 512 points, 64 HTK mel bands from 125 to
//!   7500 Hz (`spectrogram_to_mel_matrix`, DC bin zeroed), `log(mel + 0.01)`.
//! - Examples: 96 log-mel frames (0.96 s) each. MediaPipe's `TimeSeriesFramerCalculator` with
//!   `frame_duration_seconds: 0.96`, `frame_overlap_seconds: -0.04` starts one every second, so
//!   audio example k covers [k s, k s + 0.96 s): the same second as the k-th RGB frame.
//!   (vggish_input.py's own examples are back to back, every 0.96 s; MediaPipe's rule is the
//!   one that lines up with the frames.)

use std::io::Read;
use std::path::Path;

use tch::{Kind, Tensor};

use super::video::{VideoError, drain, ffprobe_lines, spawn_ffmpeg};

pub const SAMPLE_RATE: usize = 16_000;
pub const WINDOW: usize = 400;
pub const HOP: usize = 160;
pub const FFT: usize = 512;
pub const MEL_BINS: usize = 64;
pub const MEL_MIN_HZ: f64 = 125.0;
pub const MEL_MAX_HZ: f64 = 7500.0;
pub const LOG_OFFSET: f64 = 0.01;
/// Log-mel frames per example (0.96 s at 100 frames/s).
pub const EXAMPLE_FRAMES: usize = 96;
/// Log-mel frames between example starts (MediaPipe: one example per second).
pub const EXAMPLE_HOP: usize = 100;

/// The video's first audio stream as 16 kHz mono samples in [-1, 1), at most `max_seconds`;
/// None when the file has no audio stream.
pub fn decode_audio(path: &Path, max_seconds: f64) -> Result<Option<Vec<f64>>, VideoError> {
    let verr = |m: String| VideoError::Video {
        path: path.to_path_buf(),
        message: m,
    };
    let mut has_audio = false;
    ffprobe_lines(
        path,
        &[
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=index",
            "-of",
            "csv=p=0",
        ],
        |l| {
            has_audio |= !l.trim().is_empty();
            true
        },
    )?;
    if !has_audio {
        return Ok(None);
    }
    let mut child = spawn_ffmpeg(
        path,
        &["-v", "error"],
        &[
            "-map",
            "0:a:0",
            "-t",
            &format!("{max_seconds:.3}"),
            "-ac",
            "1",
            "-ar",
            &SAMPLE_RATE.to_string(),
            "-f",
            "s16le",
            "-c:a",
            "pcm_s16le",
            "-",
        ],
    )?;
    let stderr = drain(child.stderr.take());
    let mut raw = Vec::new();
    // max_seconds bounds what FFmpeg writes; the read is bounded too.
    let limit = ((max_seconds + 1.0) * SAMPLE_RATE as f64 * 2.0) as u64;
    let r = child
        .stdout
        .take()
        .expect("piped")
        .take(limit)
        .read_to_end(&mut raw);
    // At the bound FFmpeg may still be writing: stopped, not waited on forever.
    let at_bound = raw.len() as u64 >= limit;
    if at_bound {
        let _ = child.kill();
    }
    let status = child.wait();
    let msg = stderr.join().unwrap_or_default();
    r.map_err(|e| verr(format!("reading decoded audio: {e}")))?;
    if !at_bound && !matches!(status, Ok(s) if s.success()) {
        return Err(verr(format!(
            "FFmpeg could not decode its audio: {}",
            msg.trim()
        )));
    }
    Ok(Some(
        raw.chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]) as f64 / 32768.0)
            .collect(),
    ))
}

/// numpy's `linspace(start, stop, num)`: `i * step + start`, the last value exactly `stop`.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

fn hertz_to_mel(f: f64) -> f64 {
    1127.0 * (1.0 + f / 700.0).ln()
}

/// `spectrogram_to_mel_matrix(64, 257, 16000, 125, 7500)`: `[257, 64]` float64.
pub fn mel_matrix() -> Vec<f64> {
    let bins = FFT / 2 + 1;
    let bins_mel: Vec<f64> = linspace(0.0, SAMPLE_RATE as f64 / 2.0, bins)
        .into_iter()
        .map(hertz_to_mel)
        .collect();
    let edges = linspace(
        hertz_to_mel(MEL_MIN_HZ),
        hertz_to_mel(MEL_MAX_HZ),
        MEL_BINS + 2,
    );
    let mut m = vec![0.0; bins * MEL_BINS];
    for i in 0..MEL_BINS {
        let (lo, c, hi) = (edges[i], edges[i + 1], edges[i + 2]);
        for (b, &x) in bins_mel.iter().enumerate() {
            let lower = (x - lo) / (c - lo);
            let upper = (hi - x) / (hi - c);
            m[b * MEL_BINS + i] = 0f64.max(lower.min(upper));
        }
    }
    // HTK leaves out the DC bin.
    m[..MEL_BINS].fill(0.0);
    m
}

/// `mel_features.log_mel_spectrogram` at VGGish's settings: `[frames, 64]` float64.
pub fn log_mel(samples: &[f64]) -> Tensor {
    let frames = if samples.len() < WINDOW {
        0
    } else {
        1 + (samples.len() - WINDOW) / HOP
    };
    if frames == 0 {
        return Tensor::zeros([0, MEL_BINS as i64], (Kind::Double, tch::Device::Cpu));
    }
    let x = Tensor::from_slice(samples);
    let framed = x.unfold(0, WINDOW as i64, HOP as i64); // [frames, 400]
    let window: Vec<f64> = (0..WINDOW)
        .map(|n| 0.5 - 0.5 * (2.0 * std::f64::consts::PI / WINDOW as f64 * n as f64).cos())
        .collect();
    let windowed = framed * Tensor::from_slice(&window);
    let spec = windowed.fft_rfft(Some(FFT as i64), -1, "backward").abs(); // [frames, 257]
    let mel = Tensor::from_slice(&mel_matrix()).reshape([(FFT / 2 + 1) as i64, MEL_BINS as i64]);
    (spec.matmul(&mel) + LOG_OFFSET).log()
}

/// The examples aligned to the video's seconds, at most `max`: `[k, 96, 64]` float32 (VGGish's
/// input placeholder is float32), for every second k whose 0.96 s lie inside the audio.
pub fn examples(log_mel: &Tensor, max: usize) -> Tensor {
    let frames = log_mel.size()[0] as usize;
    let n = if frames < EXAMPLE_FRAMES {
        0
    } else {
        (1 + (frames - EXAMPLE_FRAMES) / EXAMPLE_HOP).min(max)
    };
    if n == 0 {
        return Tensor::zeros(
            [0, EXAMPLE_FRAMES as i64, MEL_BINS as i64],
            (Kind::Float, tch::Device::Cpu),
        );
    }
    log_mel
        .unfold(0, EXAMPLE_FRAMES as i64, EXAMPLE_HOP as i64) // [k, 64, 96]
        .narrow(0, 0, n as i64)
        .transpose(1, 2)
        .to_kind(Kind::Float)
        .contiguous()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mel_matrix_has_the_official_shape_and_zero_dc() {
        let m = mel_matrix();
        assert_eq!(m.len(), 257 * 64);
        assert!(m[..64].iter().all(|&x| x == 0.0));
        // Every band has weight somewhere, each weight in [0, 1].
        for i in 0..64 {
            let col: Vec<f64> = (0..257).map(|b| m[b * 64 + i]).collect();
            assert!(col.iter().any(|&x| x > 0.0) && col.iter().all(|&x| (0.0..=1.0).contains(&x)));
        }
    }

    #[test]
    fn examples_start_every_second() {
        // 350 log-mel frames: examples at 0, 100, 200 (the one at 300 would need 396).
        let lm = Tensor::arange(350, (Kind::Double, tch::Device::Cpu))
            .unsqueeze(1)
            .expand([350, 64], false)
            .contiguous();
        let e = examples(&lm, 300);
        assert_eq!(e.size(), [3, 96, 64]);
        assert_eq!(e.double_value(&[2, 0, 5]), 200.0);
        assert_eq!(e.double_value(&[1, 95, 0]), 195.0);
        assert_eq!(examples(&lm, 2).size()[0], 2);
        assert_eq!(log_mel(&[0.0; 399]).size(), [0, 64]);
        assert_eq!(log_mel(&[0.0; 400]).size(), [1, 64]);
        assert_eq!(log_mel(&[0.0; 560]).size(), [2, 64]);
    }
}
