//! Issue #30: YouTube-8M features from raw video, checked against the reference code:
//! - the Inception graph runner, the PCA and the quantization against TensorFlow running the
//!   official ops on a stand-in graph with the 2015 graph's ops, names and producer version
//!   (tests/fixtures/extract is an extractor directory written by scripts/inception_standin.py:
//!   TensorFlow 2.18 imports the GraphDef and runs it exactly as google/youtube-8m's
//!   feature_extractor.py does, then extract_tfrecords_main.py's quantize);
//! - frame sampling against OpenCV running the official frame_iterator
//!   (scripts/opencv_frame_iterator.py, opencv-python-headless in the test venv) on videos
//!   ffmpeg makes here: several codecs, frame rates and sizes, variable frame rate, a stream
//!   that does not start at 0;
//! - `yt8m extract` end to end: records readable by inspect and predict, resume, bad videos.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use tch::{Kind, Tensor};
use yt8m::data::npy::{read_npy, read_npz};
use yt8m::extract::Extractor;
use yt8m::extract::pca::quantize;
use yt8m::extract::tfgraph::TfGraph;
use yt8m::extract::video::{SampledFrames, Sampling};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/extract")
}

fn frame(i: usize) -> Tensor {
    let a = read_npy(&fixtures().join(format!("frames_{i}.npy"))).unwrap();
    let s: Vec<i64> = a.shape.iter().map(|&d| d as i64).collect();
    Tensor::from_data_size(&a.data, &s, Kind::Uint8)
}

fn tf_pool3(i: usize) -> Vec<f32> {
    read_npy(&fixtures().join(format!("pool3_{i}.npy")))
        .unwrap()
        .to_f32()
}

fn max_diff(a: &Tensor, b: &[f32]) -> f64 {
    let a: Vec<f32> = Vec::try_from(&a.reshape([-1])).unwrap();
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max)
}

#[test]
fn the_graph_runner_computes_what_tensorflow_computes_from_decoded_frames_to_pool_3() {
    let g = TfGraph::load(&fixtures().join("classify_image_graph_def.pb")).unwrap();
    let mut worst: f64 = 0.0;
    for i in 0..4 {
        let f = frame(i);
        let got = g
            .run("DecodeJpeg:0", &f.unsqueeze(0), "pool_3/_reshape:0")
            .unwrap();
        assert_eq!(got.size(), [1, 32]);
        let d = max_diff(&got, &tf_pool3(i));
        println!(
            "frame {i} {:?}: max |yt8m - TensorFlow| = {d:.3e}",
            f.size()
        );
        worst = worst.max(d);
    }
    // float32 throughout on both sides; the activations are ~0.1-1.
    assert!(worst < 2e-5, "{worst}");
}

#[test]
fn frames_of_one_size_run_as_one_batch() {
    let g = TfGraph::load(&fixtures().join("classify_image_graph_def.pb")).unwrap();
    let f = frame(2);
    // The frame, its mirror image and the frame again: rows 0 and 2 are TensorFlow's answer.
    let batch = Tensor::stack(&[f.shallow_clone(), f.flip([1]), f.shallow_clone()], 0);
    let got = g.run("DecodeJpeg:0", &batch, "pool_3/_reshape:0").unwrap();
    assert_eq!(got.size(), [3, 32]);
    let want = tf_pool3(2);
    for r in [0, 2] {
        let d = max_diff(&got.get(r), &want);
        println!("row {r}: max |yt8m - TensorFlow| = {d:.3e}");
        assert!(d < 2e-5, "row {r}: {d}");
    }
    let alone = g
        .run(
            "DecodeJpeg:0",
            &f.flip([1]).unsqueeze(0),
            "pool_3/_reshape:0",
        )
        .unwrap();
    let d = (got.get(1) - alone.get(0)).abs().max().double_value(&[]);
    assert!(d < 1e-5, "the mirrored frame batched vs alone: {d}");
}

#[test]
fn hostile_graph_files_are_refused_with_the_node_and_what_is_wrong() {
    let d = common::tempdir("extract-hostile");
    let good = std::fs::read(fixtures().join("classify_image_graph_def.pb")).unwrap();
    // Not a GraphDef at all.
    let p = d.join("junk.pb");
    std::fs::write(&p, b"\xff\xff\xff\xff not protobuf").unwrap();
    let e = TfGraph::load(&p).err().expect("junk refused").to_string();
    assert!(
        e.contains("junk.pb") && e.contains("not a TensorFlow GraphDef"),
        "{e}"
    );
    // Every truncation: an error or a graph, never a panic; a graph then runs or says why.
    let f = frame(3).unsqueeze(0);
    let mut refused = 0;
    for cut in (0..good.len()).step_by(997) {
        match TfGraph::from_bytes(&good[..cut], &p) {
            Err(_) => refused += 1,
            Ok(g) => {
                if let Err(e) = g.run("DecodeJpeg:0", &f, "pool_3/_reshape:0") {
                    assert!(e.to_string().contains("junk.pb"), "{e}");
                }
            }
        }
    }
    assert!(refused > 0);
    // Feeding or fetching a node that is not there names it.
    let g = TfGraph::from_bytes(&good, &p).unwrap();
    let e = g
        .run("DecodeJpeg:0", &f, "pool_4:0")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no node 'pool_4'"), "{e}");
    // An op outside the runner's set is named with its node: DecodeJpeg itself, when the
    // decoded frame is not fed.
    let e = g
        .run("Cast:0", &f.to_kind(Kind::Float), "DecodeJpeg:0")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("node 'DecodeJpeg'") && e.contains("'DecodeJpeg' is not supported"),
        "{e}"
    );
}

#[test]
fn pca_and_quantization_equal_the_official_graph_and_quantize() {
    let ex = Extractor::load(&fixtures(), 4).unwrap();
    let (mut worst, mut off_by_one, mut near_ties) = (0f64, 0, 0);
    for i in 0..4 {
        let got = ex.rgb_features(&frame(i).unsqueeze(0)).unwrap();
        assert_eq!(got.size(), [1, 1024]);
        let got: Vec<f32> = Vec::try_from(&got.reshape([-1])).unwrap();
        let want = read_npy(&fixtures().join(format!("pca_{i}.npy")))
            .unwrap()
            .to_f32();
        let d = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (*a as f64 - *b as f64).abs())
            .fold(0.0, f64::max);
        worst = worst.max(d);
        // The official quantize of TensorFlow's own features, byte for byte.
        let q_tf = read_npy(&fixtures().join(format!("quant_{i}.npy")))
            .unwrap()
            .data;
        assert_eq!(
            quantize(&want),
            q_tf,
            "frame {i}: quantize of TensorFlow's features"
        );
        // Ours from our features: equal, except where the two float32 computations straddle a
        // rounding boundary (matmul summation order differs between Eigen and libtorch).
        let q = quantize(&got);
        for (j, (a, b)) in q.iter().zip(&q_tf).enumerate() {
            if a != b {
                let y = (want[j].clamp(-2.0, 2.0) + 2.0) * 63.75;
                let to_tie = (y - y.floor() - 0.5).abs();
                assert!(
                    (*a as i32 - *b as i32).abs() == 1 && to_tie < 1e-3,
                    "frame {i} value {j}: {a} vs TensorFlow's {b} ({} vs {})",
                    got[j],
                    want[j]
                );
                off_by_one += 1;
            }
            let y = (want[j].clamp(-2.0, 2.0) + 2.0) * 63.75;
            if (y - y.floor() - 0.5).abs() < 1e-4 {
                near_ties += 1;
            }
        }
        println!("frame {i}: max |yt8m - TensorFlow| PCA feature = {d:.3e}");
    }
    println!(
        "max diff {worst:.3e}; {off_by_one} of 4096 quantized values differ by one (at a rounding \
         boundary); {near_ties} of TensorFlow's values lie within 1e-4 of one"
    );
    // float32 features of magnitude ~1-5 (whitened by sqrt of eigenvalues ~0.03).
    assert!(worst < 1e-4, "{worst}");
}

#[test]
fn the_pca_files_are_checked_before_use() {
    let d = common::tempdir("extract-pca");
    for f in ["classify_image_graph_def.pb", "mean.npy", "eigenvals.npy"] {
        std::fs::copy(fixtures().join(f), d.join(f)).unwrap();
    }
    let e = Extractor::load(&d, 1)
        .err()
        .expect("no eigenvecs")
        .to_string();
    assert!(
        e.contains("eigenvecs.npy") && e.contains("yt8m_pca.tgz"),
        "{e}"
    );
    // Eigenvectors of the wrong width.
    let mut v = Vec::new();
    yt8m::data::npy::write_npy(&mut v, &[1024, 31], "<f4", &vec![0u8; 1024 * 31 * 4]).unwrap();
    std::fs::write(d.join("eigenvecs.npy"), v).unwrap();
    let e = Extractor::load(&d, 1)
        .err()
        .expect("wrong width")
        .to_string();
    assert!(e.contains("[1024, 31]") && e.contains("width 32"), "{e}");
    // Too few components.
    let mut v = Vec::new();
    yt8m::data::npy::write_npy(&mut v, &[100, 32], "<f4", &vec![0u8; 100 * 32 * 4]).unwrap();
    std::fs::write(d.join("eigenvecs.npy"), v).unwrap();
    let e = Extractor::load(&d, 1).err().expect("too few").to_string();
    assert!(e.contains("at least 1024"), "{e}");
    // No directory at all says where the files come from.
    let e = Extractor::load(&d.join("nothing"), 1)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("inception-2015-12-05.tgz") && e.contains("--extractor"),
        "{e}"
    );
}

/// Runs ffmpeg (quiet) to make a test video.
fn ffmpeg(args: &[&str]) {
    let o = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs (./dev setup installs it)");
    assert!(
        o.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Test videos: codecs, containers, frame rates, sizes, variable frame rate, a late start.
fn test_videos(d: &Path) -> Vec<PathBuf> {
    let v = |n: &str| d.join(n).to_str().unwrap().to_string();
    let src = |size: &str, rate: &str, secs: &str| {
        format!("testsrc2=size={size}:rate={rate}:duration={secs}")
    };
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &src("320x240", "30", "5"),
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100:duration=5",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        &v("h264_30fps_audio.mp4"),
    ]);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &src("176x144", "25", "4"),
        "-c:v",
        "mpeg4",
        &v("mpeg4_25fps.avi"),
    ]);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &src("200x120", "30000/1001", "4"),
        "-c:v",
        "libvpx-vp9",
        "-b:v",
        "300k",
        &v("vp9_29.97fps.webm"),
    ]);
    // Variable frame rate: every 7th frame for a while, then every frame, keeping timestamps.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &src("160x120", "30", "7"),
        "-vf",
        "select='not(mod(n\\,7))+between(n\\,100\\,130)'",
        "-fps_mode",
        "vfr",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        &v("vfr.mp4"),
    ]);
    // Odd size (lossless codec: no even-size rule), 24 fps.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &src("97x61", "24", "3"),
        "-c:v",
        "ffv1",
        &v("odd_97x61.mkv"),
    ]);
    // MPEG-TS starts its clock at 1.4 s: times are relative to the stream's start.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &src("128x96", "25", "3"),
        "-c:v",
        "mpeg2video",
        &v("late_start.ts"),
    ]);
    [
        "h264_30fps_audio.mp4",
        "mpeg4_25fps.avi",
        "vp9_29.97fps.webm",
        "vfr.mp4",
        "odd_97x61.mkv",
        "late_start.ts",
    ]
    .iter()
    .map(|n| d.join(n))
    .collect()
}

/// What OpenCV's frame_iterator yields: (POS_MSEC after each frame, the RGB frames).
fn opencv_frames(video: &Path, s: &Sampling, out: &Path) -> (Vec<f64>, Vec<Tensor>) {
    let o = Command::new(common::python())
        .arg(common::repo().join("scripts/opencv_frame_iterator.py"))
        .arg(video)
        .arg(out)
        .args([s.every_ms.to_string(), s.max_frames.to_string()])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the OpenCV reference failed (opencv-python-headless in the test venv: ./dev test \
         installs it): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let z = read_npz(out).unwrap();
    let get = |k: &str| z.iter().find(|(n, _)| n == k).map(|(_, a)| a);
    let times = get("times").unwrap().to_f64();
    let mut frames = Vec::new();
    if let Some(a) = get("frames") {
        let s: Vec<i64> = a.shape.iter().map(|&d| d as i64).collect();
        let t = Tensor::from_data_size(&a.data, &s, Kind::Uint8);
        for i in 0..s[0] {
            frames.push(t.get(i));
        }
    } else {
        for i in 0..times.len() {
            let a = get(&format!("frame_{i}")).unwrap();
            let s: Vec<i64> = a.shape.iter().map(|&d| d as i64).collect();
            frames.push(Tensor::from_data_size(&a.data, &s, Kind::Uint8));
        }
    }
    (times, frames)
}

#[test]
fn frames_are_sampled_as_the_official_frame_iterator_samples_them_through_opencv() {
    let d = common::tempdir("extract-sampling");
    let videos = test_videos(&d);
    let mut cases: Vec<(PathBuf, Sampling)> = videos
        .iter()
        .map(|v| (v.clone(), Sampling::default()))
        .collect();
    // Two frames a second, at most 3.
    cases.push((
        videos[0].clone(),
        Sampling {
            every_ms: 500.0,
            max_frames: 3,
        },
    ));
    for (v, s) in cases {
        let (times, frames) = opencv_frames(&v, &s, &d.join("ref.npz"));
        let mut ours = SampledFrames::open(&v, &s).unwrap();
        let mut got = Vec::new();
        while let Some(f) = ours.next_frame().unwrap() {
            got.push(f);
        }
        let name = v.file_name().unwrap().to_string_lossy();
        let got_times: Vec<f64> = got.iter().map(|f| f.time_ms).collect();
        println!(
            "{name} (every {} ms, at most {}): frames at {got_times:?} ms",
            s.every_ms, s.max_frames
        );
        assert_eq!(got_times, times, "{name}: POS_MSEC of the frames taken");
        let mut worst = 0i64;
        for (f, r) in got.iter().zip(&frames) {
            assert_eq!(
                r.size(),
                [f.height as i64, f.width as i64, 3],
                "{name}: frame size"
            );
            let t = Tensor::from_slice(&f.rgb).reshape(r.size());
            let diff = (t.to_kind(Kind::Int16) - r.to_kind(Kind::Int16))
                .abs()
                .max()
                .int64_value(&[]);
            worst = worst.max(diff);
        }
        println!("{name}: max |pixel - OpenCV's| = {worst}");
        assert_eq!(worst, 0, "{name}: pixels differ from OpenCV's");
    }
}

fn yt8m(args: &[&str]) -> std::process::Output {
    Command::new(common::bin())
        .args(args)
        .env("YT8M_THREADS", "1")
        .output()
        .unwrap()
}

fn ok(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn read_all(dir: &Path, level: yt8m::data::Level) -> Vec<yt8m::data::video::Video> {
    let spec = yt8m::data::video::FeatureSpec {
        level,
        num_classes: 20,
        ..Default::default()
    };
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "tfrecord"))
        .collect();
    shards.sort();
    let mut out = Vec::new();
    for s in shards {
        yt8m::data::sources::read_shard(&s, &spec, false, |v| {
            out.push(v);
            true
        })
        .unwrap();
    }
    out
}

#[test]
fn extract_writes_official_records_that_predict_reads_and_resumes_where_it_stopped() {
    use yt8m::data::Level;
    use yt8m::data::video::VideoFeatures as Feats;
    let d = common::tempdir("extract-e2e");
    let vids = d.join("videos");
    std::fs::create_dir_all(&vids).unwrap();
    let src = |size: &str, rate: &str, secs: &str| {
        format!("testsrc2=size={size}:rate={rate}:duration={secs}")
    };
    let names = ["a.mp4", "b.avi", "c.mkv"];
    let p = |n: &str| vids.join(n).to_str().unwrap().to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &src("160x120", "30", "4"),
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        &p("a.mp4"),
    ]);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &src("96x64", "25", "3"),
        "-c:v",
        "mpeg4",
        &p("b.avi"),
    ]);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &src("64x48", "10", "2"),
        "-c:v",
        "ffv1",
        &p("c.mkv"),
    ]);
    let csv = d.join("videos.csv");
    std::fs::write(
        &csv,
        format!(
            "{},7;3\n{},12\n{},0;19;5\n",
            p("a.mp4"),
            p("b.avi"),
            p("c.mkv")
        ),
    )
    .unwrap();
    let fx = fixtures();
    let out = d.join("features");
    let args = |out: &Path, level: &str| -> Vec<String> {
        [
            "extract",
            "--csv",
            csv.to_str().unwrap(),
            "--extractor",
            fx.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--videos-per-shard",
            "2",
            "--level",
            level,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |a: &[String]| yt8m(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let said = ok(&run(&args(&out, "frame")));
    println!("{said}");
    assert!(
        said.contains("wrote 3 video(s), 9 frames, in 2 shard(s)"),
        "{said}"
    );

    // The records: ids as given, labels sorted, frames and bytes as the extractor computes them
    // from the frames the official sampling takes, zero audio as the official default writes.
    let ex = Extractor::load(&fx, 8).unwrap();
    let videos = read_all(&out, Level::Frame);
    assert_eq!(videos.len(), 3);
    let want_labels = [vec![3, 7], vec![12], vec![0, 5, 19]];
    for (i, v) in videos.iter().enumerate() {
        assert_eq!(v.id, p(names[i]));
        assert!(v.has_labels);
        assert_eq!(v.labels, want_labels[i]);
        let mut frames = SampledFrames::open(&vids.join(names[i]), &Sampling::default()).unwrap();
        let mut rgb = Vec::new();
        while let Some(f) = frames.next_frame().unwrap() {
            let t = Tensor::from_slice(&f.rgb).reshape([1, f.height as i64, f.width as i64, 3]);
            let feats: Vec<f32> =
                Vec::try_from(&ex.rgb_features(&t).unwrap().reshape([-1])).unwrap();
            rgb.extend(quantize(&feats));
        }
        let Feats::Frames(m) = &v.features else {
            panic!("frame-level features expected")
        };
        assert_eq!(v.num_frames, rgb.len() / 1024, "{}", v.id);
        assert_eq!(m[0], rgb, "{}: rgb bytes", v.id);
        assert_eq!(m[1], vec![0u8; 128 * v.num_frames], "{}: audio", v.id);
    }
    // Video level: the same mean_rgb the frame-level record's context holds, mean_audio zero.
    let out_v = d.join("features-video");
    ok(&run(&args(&out_v, "video")));
    let vv = read_all(&out_v, Level::Video);
    for (fv, v) in videos.iter().zip(&vv) {
        let Feats::Mean(m) = &v.features else {
            panic!("video-level features expected")
        };
        assert_eq!(v.id, fv.id);
        assert_eq!(m[1], vec![0f32; 128]);
        // The mean of the unquantized features: within half a quantization step of the mean
        // of the dequantized frames (where nothing clipped).
        let Feats::Frames(f) = &fv.features else {
            unreachable!()
        };
        let n = fv.num_frames as f32;
        let mut close = 0;
        for j in 0..1024 {
            let deq: f32 = (0..fv.num_frames)
                .map(|r| f[0][r * 1024 + j] as f32 * 4.0 / 255.0 - 2.0)
                .sum::<f32>()
                / n;
            if (deq - m[0][j]).abs() <= 2.0 / 255.0 + 1e-5 {
                close += 1;
            }
        }
        assert!(
            close > 900,
            "{}: {close} of 1024 means near the frames'",
            v.id
        );
    }
    let insp = ok(&yt8m(&["inspect", out_v.to_str().unwrap()]));
    assert!(insp.contains("video"), "{insp}");

    // predict reads them (a tiny AttentionLSTM for 20 classes, trained on synthetic data).
    let data = d.join("synth");
    common::synth_shards(&data, 48, 1, 9, 30);
    let runs = d.join("run");
    let mut a = common::tiny_train_args(&runs, &data, &["-o".into(), "epochs=1".into()]);
    a.extend(["-o".into(), "MODEL.head.num_classes=20".into()]);
    common::yt8m_ok(&a);
    let bundle = d.join("bundle");
    common::yt8m_ok(&[
        "export",
        "-w",
        runs.join("checkpoints/latest").to_str().unwrap(),
        "--out",
        bundle.to_str().unwrap(),
    ]);
    let bundle_s = bundle.to_str().unwrap();
    let pred = ok(&yt8m(&[
        "predict",
        "--model",
        bundle_s,
        out.to_str().unwrap(),
        "--format",
        "jsonl",
    ]));
    for n in names {
        assert!(pred.contains(&p(n)), "{pred}");
    }
    // The video files themselves: extracted on the fly, the same rows.
    let mut direct = vec![
        "predict",
        "--model",
        bundle_s,
        "--format",
        "jsonl",
        "--extractor",
        fx.to_str().unwrap(),
    ];
    let files: Vec<String> = names.iter().map(|n| p(n)).collect();
    direct.extend(files.iter().map(String::as_str));
    // Equal rows; only `source` (the file read) differs.
    let rows = |out: &str| -> Vec<serde_json::Value> {
        out.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("source");
                v
            })
            .collect()
    };
    assert_eq!(
        rows(&ok(&yt8m(&direct))),
        rows(&pred),
        "predict on the videos vs on their extracted shards"
    );
    // The server's `video` input (tritonclient, binary BYTES; and JSON base64 by hand): the
    // probabilities predict gives for the files.
    let npz = d.join("direct.npz");
    let mut to_npz: Vec<&str> = direct
        .iter()
        .filter(|a| **a != "jsonl" && **a != "--format")
        .copied()
        .collect();
    to_npz.extend(["--format", "npz", "--out", npz.to_str().unwrap()]);
    ok(&yt8m(&to_npz));
    served_video_equals_predict(&bundle, &fx, &files, &npz, &vids.join("c.mkv"));
    // Without extractor files the video is named with what to do.
    let o = yt8m(&[
        "predict",
        "--model",
        bundle_s,
        &files[0],
        "--extractor",
        d.join("none").to_str().unwrap(),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("a.mp4") && e.contains("--extractor"),
        "{e}"
    );

    // Resume: a lost shard is made again, byte for byte; the complete one is kept.
    let shard1 = out.join("extract0001.tfrecord");
    let before = std::fs::read(&shard1).unwrap();
    std::fs::remove_file(&shard1).unwrap();
    let said = ok(&run(&args(&out, "frame")));
    assert!(
        said.contains("wrote 1 video(s)") && said.contains("1 shard(s) kept"),
        "{said}"
    );
    assert_eq!(std::fs::read(&shard1).unwrap(), before);
    // Other inputs into the same directory are refused, naming the manifest.
    let o = yt8m(&[
        "extract",
        &p("a.mp4"),
        "--extractor",
        fx.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("extract.manifest.json") && e.contains("--out"),
        "{e}"
    );

    // A video that is not one: named, and the run stops; with --skip-bad-videos it is reported
    // and the others are written.
    std::fs::write(
        vids.join("broken.mp4"),
        b"\x00\x00\x00\x18ftypmp42 not a video",
    )
    .unwrap();
    let out_b = d.join("features-bad");
    let base = [
        "extract",
        vids.to_str().unwrap(),
        "--extractor",
        fx.to_str().unwrap(),
        "--out",
        out_b.to_str().unwrap(),
    ];
    let o = yt8m(&base);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("broken.mp4"), "{e}");
    assert!(
        !out_b.join("extract0000.tfrecord").exists(),
        "no partial shard"
    );
    let mut skip = base.to_vec();
    skip.push("--skip-bad-videos");
    let said = ok(&yt8m(&skip));
    assert!(
        said.contains("wrote 3 video(s)")
            && said.contains("skipped 1 video(s)")
            && said.contains("broken.mp4"),
        "{said}"
    );
    // A failure that is not a video's own is never "skipped": without FFmpeg on PATH the run
    // stops naming it instead of writing every video off as bad.
    let no_tools = d.join("no-tools");
    std::fs::create_dir_all(&no_tools).unwrap();
    let mut skip_none = skip.clone();
    let out_n = d.join("features-no-ffmpeg");
    let at = skip_none
        .iter()
        .position(|a| *a == out_b.to_str().unwrap())
        .unwrap();
    skip_none[at] = out_n.to_str().unwrap();
    let o = Command::new(common::bin())
        .args(&skip_none)
        .env("YT8M_THREADS", "1")
        .env("PATH", &no_tools)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && e.contains("could not be started")
            && e.matches("os error 2").count() == 1
            && !e.contains("skipped"),
        "{e}"
    );
    // A quoted glob: its files, sorted.
    let out_g = d.join("features-glob");
    let pat = format!("{}/*.mkv", vids.display());
    let said = ok(&yt8m(&[
        "extract",
        &pat,
        "--extractor",
        fx.to_str().unwrap(),
        "--out",
        out_g.to_str().unwrap(),
    ]));
    assert!(said.contains("wrote 1 video(s)"), "{said}");
    // Directory inputs: sorted paths as ids, no labels key.
    let v = read_all(&out_b, Level::Frame);
    assert_eq!(
        v.iter().map(|v| v.id.clone()).collect::<Vec<_>>(),
        names.map(p)
    );
    assert!(v.iter().all(|v| !v.has_labels));
}

#[test]
fn bad_csv_lines_are_named() {
    let d = common::tempdir("extract-csv");
    let fx = fixtures();
    for (text, want) in [
        ("a.mp4\n", "line 1: expected '<video_file>,<labels>'"),
        ("a.mp4,1;x\n", "line 1: label 'x' is not an integer"),
        ("a.mp4,1\nb.mp4,-2\n", "line 2: label -2 is negative"),
        ("\n\n", "no videos listed"),
    ] {
        let csv = d.join("v.csv");
        std::fs::write(&csv, text).unwrap();
        let o = yt8m(&[
            "extract",
            "--csv",
            csv.to_str().unwrap(),
            "--extractor",
            fx.to_str().unwrap(),
            "--out",
            d.join("o").to_str().unwrap(),
        ]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && e.contains("v.csv") && e.contains(want),
            "{text:?}: {e}"
        );
    }
}

/// tritonclient against `yt8m serve --extractor`: a `video` BYTES input of two files, compared
/// with predict's npz for them; a file that is not a video is a 400 naming its element; a JSON
/// request with base64 elements works too; without --extractor the input is refused.
const VIDEO_CLIENT: &str = r#"
import base64, json, sys, urllib.request, urllib.error
import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

url, npz, a, b, c_path = sys.argv[1:6]
want = np.load(npz)["predictions"]
c = httpclient.InferenceServerClient(url)
meta = c.get_model_metadata("tiny")
assert meta["inputs"][-1] == {"name": "video", "datatype": "BYTES", "shape": [-1]}, meta
files = [open(p, "rb").read() for p in (a, b)]
i = httpclient.InferInput("video", [2], "BYTES")
i.set_data_from_numpy(np.array(files, dtype=np.object_))
r = c.infer("tiny", [i], outputs=[httpclient.InferRequestedOutput("probabilities")])
worst = float(np.abs(r.as_numpy("probabilities") - want[:2]).max())
bad = httpclient.InferInput("video", [2], "BYTES")
bad.set_data_from_numpy(np.array([files[0], b"not a video at all"], dtype=np.object_))
try:
    c.infer("tiny", [bad])
    raise SystemExit("a request with a broken video was answered")
except InferenceServerException as e:
    assert "video[1]" in str(e) and "FFmpeg" in str(e), e
body = json.dumps({"inputs": [{"name": "video", "datatype": "BYTES", "shape": [1],
                               "data": [base64.b64encode(open(c_path, "rb").read()).decode()]}]}).encode()
req = urllib.request.Request(f"http://{url}/v2/models/tiny/infer", body, {"Content-Type": "application/json"})
out = json.loads(urllib.request.urlopen(req).read())
p = np.array([o for o in out["outputs"] if o["name"] == "probabilities"][0]["data"], dtype=np.float32)
worst = max(worst, float(np.abs(p - want[2]).max()))
print(json.dumps({"max_abs_diff": worst}))
"#;

fn served_video_equals_predict(
    bundle: &Path,
    fx: &Path,
    files: &[String],
    npz: &Path,
    third: &Path,
) {
    let server = common::start_server(bundle, &["--no-grpc", "--extractor", fx.to_str().unwrap()]);
    let port = server.port;
    let o = Command::new(common::python())
        .args([
            "-c",
            VIDEO_CLIENT,
            &format!("127.0.0.1:{port}"),
            npz.to_str().unwrap(),
        ])
        .args([&files[0], &files[1], third.to_str().unwrap()])
        .output()
        .unwrap();
    drop(server);
    let out = ok(&o);
    println!("served video vs predict: {out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["max_abs_diff"].as_f64().unwrap() < 1e-6, "{out}");
    // Without --extractor: refused with what to do.
    let server = common::start_server(bundle, &["--no-grpc"]);
    let port = server.port;
    let body = r#"{"inputs":[{"name":"video","datatype":"BYTES","shape":[1],"data":["AAAA"]}]}"#;
    let o = Command::new("curl")
        .args([
            "-s",
            "-d",
            body,
            &format!("http://127.0.0.1:{port}/v2/models/tiny/infer"),
        ])
        .output()
        .unwrap();
    drop(server);
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("--extractor"), "{said}");
    // The server's own failure (no FFmpeg where it runs) is a 500 naming the tool, not a 400
    // blaming the client's video.
    let no_tools = npz.with_file_name("server-no-tools");
    std::fs::create_dir_all(&no_tools).unwrap();
    let env = [("PATH", no_tools.as_os_str())];
    let server = common::start_server_with_env(
        bundle,
        &["--no-grpc", "--extractor", fx.to_str().unwrap()],
        &env,
    );
    let port = server.port;
    use base64::Engine;
    let video = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&files[0]).unwrap());
    let body = format!(
        r#"{{"inputs":[{{"name":"video","datatype":"BYTES","shape":[1],"data":["{video}"]}}]}}"#
    );
    let o = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--data-binary", "@-"])
        .arg(format!("http://127.0.0.1:{port}/v2/models/tiny/infer"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(body.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    drop(server);
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.trim_end().ends_with("500") && said.contains("could not be started"),
        "{said}"
    );
}

fn npy_f64(name: &str) -> (Vec<usize>, Vec<f64>) {
    let a = read_npy(&fixtures().join(name)).unwrap();
    (a.shape.clone(), a.to_f64())
}

fn max_abs(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn to_f64(t: &Tensor) -> Vec<f64> {
    Vec::try_from(&t.to_kind(Kind::Double).reshape([-1])).unwrap()
}

/// A video whose audio track is tests/fixtures/extract/audio_16k.wav, losslessly.
fn video_with_fixture_audio(d: &Path) -> PathBuf {
    let v = d.join("with_audio.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=96x64:rate=30:duration=3.5",
        "-i",
        fixtures().join("audio_16k.wav").to_str().unwrap(),
        "-c:v",
        "ffv1",
        "-c:a",
        "pcm_s16le",
        "-shortest",
        v.to_str().unwrap(),
    ]);
    v
}

#[test]
fn vggish_audio_equals_the_official_log_mel_network_and_postprocessing() {
    use yt8m::extract::{audio, vggish};
    let d = common::tempdir("extract-vggish");
    // The waveform through FFmpeg from a video file: 16 kHz mono PCM comes out unchanged.
    let v = video_with_fixture_audio(&d);
    let samples = audio::decode_audio(&v, 10.0)
        .unwrap()
        .expect("an audio stream");
    let wav = std::fs::read(fixtures().join("audio_16k.wav")).unwrap();
    let want: Vec<f64> = wav[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]) as f64 / 32768.0)
        .collect();
    assert_eq!(samples, want, "decoded samples");
    // mel_features.log_mel_spectrogram (float64).
    let lm = audio::log_mel(&samples);
    let (shape, ref_lm) = npy_f64("vggish_logmel.npy");
    assert_eq!(lm.size(), [shape[0] as i64, 64]);
    let d_lm = max_abs(&to_f64(&lm), &ref_lm);
    // Examples one per second, as MediaPipe frames them.
    let ex = audio::examples(&lm, 300);
    let (eshape, ref_ex) = npy_f64("vggish_examples.npy");
    assert_eq!(ex.size(), [eshape[0] as i64, 96, 64]);
    let d_ex = max_abs(&to_f64(&ex), &ref_ex);
    // The network (TensorFlow's Saver wrote the V1 checkpoint; TensorFlow ran it).
    let net = vggish::Vggish::load(&fixtures()).unwrap();
    let ref_ex_t =
        Tensor::from_slice(&ref_ex)
            .to_kind(Kind::Float)
            .reshape([eshape[0] as i64, 96, 64]);
    let emb = net.embed(&ref_ex_t);
    let (_, ref_emb) = npy_f64("vggish_embeddings.npy");
    let d_emb = max_abs(&to_f64(&emb), &ref_emb);
    // Post-processing: from TensorFlow's embeddings, byte for byte; from ours, equal but where
    // a value sits on a truncation boundary.
    let q_ref = read_npy(&fixtures().join("vggish_quant.npy")).unwrap().data;
    let tf_emb = Tensor::from_slice(&ref_emb).reshape([eshape[0] as i64, 128]);
    assert_eq!(
        net.postprocess(&tf_emb),
        q_ref,
        "postprocess of TensorFlow's embeddings"
    );
    let ours = net.postprocess(&emb);
    let off: usize = ours.iter().zip(&q_ref).filter(|(a, b)| a != b).count();
    assert!(
        ours.iter()
            .zip(&q_ref)
            .all(|(a, b)| (*a as i32 - *b as i32).abs() <= 1)
            && off <= 2,
        "{off} bytes differ"
    );
    println!(
        "max |yt8m - official|: log-mel {d_lm:.2e}, examples {d_ex:.2e}, embeddings {d_emb:.2e} \
         (|embedding| up to {:.1}); quantized: {off} of {} bytes differ by one",
        ref_emb.iter().fold(0f64, |m, x| m.max(x.abs())),
        q_ref.len()
    );
    assert!(d_lm < 1e-9, "log-mel {d_lm}");
    assert!(d_ex < 1e-5, "examples {d_ex}");
    assert!(d_emb < 1e-4, "embeddings {d_emb}");

    // End to end: the record's audio list is the examples of each second the video has.
    let audio_list = |audio: &str| -> (usize, Vec<u8>) {
        let out = d.join(format!("features-{audio}"));
        common::yt8m_ok(&[
            "extract",
            v.to_str().unwrap(),
            "--extractor",
            fixtures().to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--audio",
            audio,
        ]);
        let rec = read_all(&out, yt8m::data::Level::Frame);
        let yt8m::data::video::VideoFeatures::Frames(m) = &rec[0].features else {
            panic!("frame level")
        };
        (rec[0].num_frames, m[1].clone())
    };
    // 3.5 s: four RGB frames (0, 1.03, 2.03, 3.03 s), three whole audio seconds.
    let (frames, audio) = audio_list("vggish");
    assert_eq!(frames, 4);
    assert_eq!(audio.len(), 3 * 128);
    assert_eq!(audio, net.postprocess(&net.embed(&ex)));
    // --audio zeros: the official default, one zero frame per RGB frame.
    let (_, zeros) = audio_list("zeros");
    assert_eq!(zeros, vec![0u8; 4 * 128]);
}

#[test]
fn hostile_checkpoints_are_refused_without_a_panic() {
    use yt8m::extract::tfckpt::read_checkpoint;
    let d = common::tempdir("extract-ckpt");
    let good = std::fs::read(fixtures().join("vggish_model.ckpt")).unwrap();
    let p = d.join("vggish_model.ckpt");
    let vars = read_checkpoint(&fixtures().join("vggish_model.ckpt")).unwrap();
    assert_eq!(vars["vggish/conv3/conv3_2/weights"].size(), [3, 3, 12, 12]);
    assert_eq!(vars.len(), 18);
    let mut refused = 0;
    for cut in (0..good.len()).step_by(4999).chain([good.len() - 1]) {
        std::fs::write(&p, &good[..cut]).unwrap();
        let e = read_checkpoint(&p)
            .err()
            .expect("a cut file is refused")
            .to_string();
        assert!(e.contains("vggish_model.ckpt"), "{e}");
        refused += 1;
    }
    // A flipped byte inside a block: the block's CRC says so.
    let mut bad = good.clone();
    bad[100] ^= 0x40;
    std::fs::write(&p, &bad).unwrap();
    let e = read_checkpoint(&p).err().expect("corrupt").to_string();
    assert!(e.contains("CRC"), "{e}");
    // The PCA parameters: wrong shapes are named with the file.
    let vd = d.join("vggish-dir");
    std::fs::create_dir_all(&vd).unwrap();
    std::fs::copy(
        fixtures().join("vggish_model.ckpt"),
        vd.join("vggish_model.ckpt"),
    )
    .unwrap();
    let m = yt8m::data::npy::NpyArray {
        shape: vec![64, 128],
        dtype: yt8m::data::npy::NpyDType::F64,
        data: vec![0u8; 64 * 128 * 8],
    };
    let mu = yt8m::data::npy::NpyArray {
        shape: vec![128],
        dtype: yt8m::data::npy::NpyDType::F64,
        data: vec![0u8; 128 * 8],
    };
    let f = std::fs::File::create(vd.join("vggish_pca_params.npz")).unwrap();
    yt8m::data::npy::write_npz(f, &[("pca_eigen_vectors", &m), ("pca_means", &mu)]).unwrap();
    let e = yt8m::extract::vggish::Vggish::load(&vd)
        .err()
        .expect("a [64, 128] PCA matrix")
        .to_string();
    assert!(
        e.contains("vggish_pca_params.npz") && e.contains("[64, 128]"),
        "{e}"
    );
    // A V2 index or any other file: named as not a V1 checkpoint.
    std::fs::write(&p, vec![7u8; 100]).unwrap();
    let e = read_checkpoint(&p).err().unwrap().to_string();
    assert!(e.contains("not a TensorFlow V1 checkpoint"), "{e}");
    println!("{refused} truncations refused");
}

/// With the official files (YT8M_EXTRACTOR_DIR: classify_image_graph_def.pb and yt8m_pca.tgz's
/// files, as the official extractor keeps them in ~/yt8m): google/youtube-8m's own test data
/// (feature_extractor/testdata, tests/fixtures/extract/official) through our PCA, with the
/// official test's measure and bound; and the real graph runs end to end on a frame.
#[test]
fn with_the_official_files_the_official_testdata_is_reproduced() {
    let Some(dir) = std::env::var_os("YT8M_EXTRACTOR_DIR").map(PathBuf::from) else {
        println!(
            "skipped: set YT8M_EXTRACTOR_DIR to a directory with the official extractor files \
             to run this check (docs/extract.md says where they come from)"
        );
        return;
    };
    let ex = Extractor::load(&dir, 4).unwrap();
    let pca = yt8m::extract::pca::Pca::load(&dir).unwrap();
    let off = fixtures().join("official");
    let original = read_npy(&off.join("sports1m_original.npy"))
        .unwrap()
        .to_f32();
    let want = read_npy(&off.join("sports1m_pca.npy")).unwrap().to_f64();
    let got = to_f64(&pca.apply(&Tensor::from_slice(&original).reshape([1, 2048])));
    // feature_extractor_test.py's _MeanElementWiseDifference.
    let mean_diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs() / (0.01 + a.abs().max(b.abs())))
        .sum::<f64>()
        / want.len() as f64;
    println!("official testdata: mean element-wise difference {mean_diff:.2e}");
    assert!(mean_diff < 1e-5, "{mean_diff}");
    let f = frame(2).unsqueeze(0);
    let feats = ex.rgb_features(&f).unwrap();
    assert_eq!(feats.size(), [1, 1024]);
    assert!(feats.isfinite().all().int64_value(&[]) == 1);
}

/// The published PCA's shapes (mean and eigenvalues [2048, 1], eigenvectors [2048, 2048]) are
/// sliced and transposed as feature_extractor.py's `_load_pca` and `apply_pca` do (numpy,
/// float64), checked with the official test's measure and bound.
#[test]
fn the_published_pca_layout_is_sliced_as_the_official_code_slices_it() {
    let d = common::tempdir("extract-pca-layout");
    let mut rng = 12345u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut save = |name: &str, shape: &[usize], scale: f64, offset: f64| {
        let n: usize = shape.iter().product();
        let v: Vec<u8> = (0..n)
            .flat_map(|_| (next() * scale + offset).to_le_bytes())
            .collect();
        let mut buf = Vec::new();
        yt8m::data::npy::write_npy(&mut buf, shape, "<f8", &v).unwrap();
        std::fs::write(d.join(name), buf).unwrap();
    };
    save("mean.npy", &[2048, 1], 0.2, 0.3);
    save("eigenvals.npy", &[2048, 1], 0.01, 0.01);
    save("eigenvecs.npy", &[2048, 2048], 0.05, 0.0);
    save("x.npy", &[2048], 1.0, 0.5);
    let script = r#"
import sys, numpy as np
d = sys.argv[1]
mean = np.load(d + "/mean.npy")[:, 0]
vals = np.load(d + "/eigenvals.npy")[:1024, 0]
vecs = np.load(d + "/eigenvecs.npy").T[:, :1024]
x = np.load(d + "/x.npy")
feats = (x - mean).reshape((1, 2048)).dot(vecs).reshape((1024,))
feats /= np.sqrt(vals + 1e-4)
np.save(d + "/want.npy", feats)
"#;
    let o = Command::new(common::python())
        .args(["-c", script, d.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pca = yt8m::extract::pca::Pca::load(&d).unwrap();
    assert_eq!(pca.input_dims(), 2048);
    let x = read_npy(&d.join("x.npy")).unwrap().to_f32();
    let got = to_f64(&pca.apply(&Tensor::from_slice(&x).reshape([1, 2048])));
    let want = read_npy(&d.join("want.npy")).unwrap().to_f64();
    let mean_diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs() / (0.01 + a.abs().max(b.abs())))
        .sum::<f64>()
        / want.len() as f64;
    println!("float32 PCA vs numpy float64: mean element-wise difference {mean_diff:.2e}");
    assert!(mean_diff < 1e-5, "{mean_diff}");
}

/// Issue #30's goal: the quantized features equal the official pipeline's, byte for byte, on
/// every test video. tests/fixtures/extract/videos/reference.npz holds what
/// extract_tfrecords_main.py's loop (OpenCV + TensorFlow + quantize, scripts/extract_reference.py)
/// wrote for those videos with the stand-in extractor files.
#[test]
fn quantized_features_equal_the_official_pipelines_on_every_test_video() {
    let d = common::tempdir("extract-reference");
    let vdir = fixtures().join("videos");
    let z = read_npz(&vdir.join("reference.npz")).unwrap();
    let get = |k: &str| &z.iter().find(|(n, _)| n == k).unwrap().1;
    let names = get("names").to_strings();
    assert_eq!(names.len(), 4);
    let out = d.join("features");
    let mut args: Vec<String> = vec!["extract".into()];
    args.extend(names.iter().map(|n| vdir.join(n).display().to_string()));
    args.extend(
        [
            "--extractor",
            fixtures().to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--no-audio",
        ]
        .map(String::from),
    );
    common::yt8m_ok(&args);
    let got = read_all(&out, yt8m::data::Level::Frame);
    let mut total = 0;
    for (i, (v, name)) in got.iter().zip(&names).enumerate() {
        let want = get(&format!("rgb_{i}"));
        let yt8m::data::video::VideoFeatures::Frames(m) = &v.features else {
            panic!("frame level")
        };
        assert_eq!(v.id, vdir.join(name).display().to_string());
        assert_eq!(v.num_frames, want.shape[0], "{name}: frames");
        let differ = m[0].iter().zip(&want.data).filter(|(a, b)| a != b).count();
        println!(
            "{name}: {} frames, {differ} of {} bytes differ",
            v.num_frames,
            want.data.len()
        );
        assert_eq!(m[0], want.data, "{name}: quantized rgb");
        assert_eq!(m[1], vec![0u8; 128 * v.num_frames], "{name}: --no-audio");
        total += want.data.len();
    }
    println!("{total} quantized bytes equal to the official pipeline's");
}

/// The extractor directory may hold the official archives as distributed instead of their
/// unpacked files.
#[test]
fn the_official_archives_work_as_distributed() {
    let d = common::tempdir("extract-tgz");
    let stage = d.join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    for f in [
        "classify_image_graph_def.pb",
        "mean.npy",
        "eigenvals.npy",
        "eigenvecs.npy",
    ] {
        std::fs::copy(fixtures().join(f), stage.join(f)).unwrap();
    }
    std::fs::write(stage.join("LICENSE"), "Apache 2.0\n").unwrap();
    let dir = d.join("extractor");
    std::fs::create_dir_all(&dir).unwrap();
    let tar = |out: &str, files: &[&str]| {
        let o = Command::new("tar")
            .arg("czf")
            .arg(dir.join(out))
            .arg("-C")
            .arg(&stage)
            .args(files)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    tar(
        "inception-2015-12-05.tgz",
        &["LICENSE", "classify_image_graph_def.pb"],
    );
    tar(
        "yt8m_pca.tgz",
        &["mean.npy", "eigenvals.npy", "eigenvecs.npy"],
    );
    let packed = Extractor::load(&dir, 4).unwrap();
    let unpacked = Extractor::load(&fixtures(), 4).unwrap();
    let f = frame(1).unsqueeze(0);
    let a = packed.rgb_features(&f).unwrap();
    let b = unpacked.rgb_features(&f).unwrap();
    assert_eq!(
        Vec::<f32>::try_from(&a.reshape([-1])).unwrap(),
        Vec::<f32>::try_from(&b.reshape([-1])).unwrap()
    );
    // A damaged archive names itself.
    let bytes = std::fs::read(dir.join("yt8m_pca.tgz")).unwrap();
    std::fs::write(dir.join("yt8m_pca.tgz"), &bytes[..bytes.len() / 2]).unwrap();
    let e = Extractor::load(&dir, 4)
        .err()
        .expect("a cut archive")
        .to_string();
    assert!(e.contains("yt8m_pca.tgz"), "{e}");
    std::fs::write(dir.join("yt8m_pca.tgz"), b"not gzip at all").unwrap();
    let e = Extractor::load(&dir, 4)
        .err()
        .expect("not an archive")
        .to_string();
    assert!(e.contains("yt8m_pca.tgz"), "{e}");
}

/// Files that are not usable videos, and missing audio files, are named with what to do.
#[test]
fn audio_only_files_and_missing_vggish_files_are_named() {
    let d = common::tempdir("extract-bad-inputs");
    let a = d.join("song.m4a");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=300:duration=2",
        a.to_str().unwrap(),
    ]);
    let out = d.join("o");
    let o = yt8m(&[
        "extract",
        a.to_str().unwrap(),
        "--extractor",
        fixtures().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("song.m4a") && e.contains("no video stream"),
        "{e}"
    );
    // --audio vggish without the VGGish files.
    let only_rgb = d.join("rgb-only");
    std::fs::create_dir_all(&only_rgb).unwrap();
    for f in [
        "classify_image_graph_def.pb",
        "mean.npy",
        "eigenvals.npy",
        "eigenvecs.npy",
    ] {
        std::fs::copy(fixtures().join(f), only_rgb.join(f)).unwrap();
    }
    let v = fixtures().join("videos/vfr.mp4");
    let o = yt8m(&[
        "extract",
        v.to_str().unwrap(),
        "--extractor",
        only_rgb.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--audio",
        "vggish",
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("vggish_model.ckpt") && e.contains("--audio zeros"),
        "{e}"
    );
    // auto: zeros, and it says so.
    let o = yt8m(&[
        "extract",
        v.to_str().unwrap(),
        "--extractor",
        only_rgb.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && e.contains("audio: zeros"), "{e}");
}

/// `yt8m info` says which ffmpeg extraction runs, or what to install.
#[test]
fn info_names_the_ffmpeg_extraction_runs() {
    let info = |path: &str| -> serde_json::Value {
        let o = Command::new(common::bin())
            .args(["info", "--json"])
            .env("PATH", path)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let found = info(&std::env::var("PATH").unwrap_or_default());
    assert!(
        found["ffmpeg"]
            .as_str()
            .unwrap()
            .starts_with("ffmpeg version"),
        "{found}"
    );
    let d = common::tempdir("extract-no-ffmpeg");
    let missing = info(d.to_str().unwrap());
    assert!(
        missing["ffmpeg"]
            .as_str()
            .unwrap()
            .contains("apt-get install ffmpeg"),
        "{missing}"
    );
}

/// `yt8m bench extract --extractor DIR` times yt8m alone and says where its time goes: decoding
/// and each op type of the graph, whose shares add up to the graph's time.
#[test]
fn bench_extract_says_where_the_time_goes() {
    let d = common::tempdir("extract-bench");
    let o = Command::new(common::bin())
        .args([
            "bench",
            "extract",
            "--seconds",
            "2",
            "--batch-size",
            "2",
            "--extractor",
        ])
        .arg(fixtures())
        .env("YT8M_THREADS", "1")
        .env("TMPDIR", &d)
        .output()
        .unwrap();
    let out = ok(&o);
    println!("{out}");
    assert!(
        out.contains("| yt8m extract (ffmpeg, libtorch, 2 frames per call"),
        "{out}"
    );
    let table = out
        .split("where yt8m's time goes")
        .nth(1)
        .unwrap_or_else(|| panic!("no breakdown:\n{out}"));
    assert!(
        table.contains("| decoding and sampling (2 frames, FFmpeg) |"),
        "{table}"
    );
    assert!(
        table.contains("| Inception graph (2 frames, 2 per call) |"),
        "{table}"
    );
    let shares: Vec<(String, f64)> = table
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let share = cells.get(3)?.strip_suffix('%')?.parse().ok()?;
            Some((cells[1].to_string(), share))
        })
        .collect();
    let ops: f64 = shares.iter().skip(1).map(|(_, s)| s).sum();
    assert!(
        shares.iter().any(|(op, s)| op == "Conv2D" && *s > 0.0),
        "{table}"
    );
    assert!(
        shares.iter().any(|(op, _)| op == "ResizeBilinear"),
        "{table}"
    );
    // Every op type is counted (the smallest as "other"), each share rounded to 0.1%.
    assert!(
        (99.0..=101.0).contains(&ops),
        "shares add up to {ops}%:\n{table}"
    );
}
