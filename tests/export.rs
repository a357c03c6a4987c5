//! Export bundles, predict, and the ONNX graph run by onnxruntime (the real client).

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use tch::{Device, Kind, Tensor};
use yt8m::config::Config;
use yt8m::data::Video;
use yt8m::data::batch::Batch;
use yt8m::data::sources::read_shard;
use yt8m::model::{Model, batch_inputs};

fn run(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(bin())
        .args(args)
        .env("YT8M_THREADS", "1")
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (s, out, err) = run(args);
    assert!(s, "yt8m {args:?} failed:\n{out}\n{err}");
    out
}

fn config_path() -> String {
    repo().join("configs/tiny_test.yaml").display().to_string()
}

/// A tiny 3862-class AttentionLSTM with random weights, exported.
fn bundle(name: &str, extra: &[&str]) -> (PathBuf, Config) {
    let d = tempdir(name);
    let overrides = vec!["MODEL.head.num_classes=3862".to_string()];
    let cfg = Config::load(Some(Path::new(&config_path())), &overrides).unwrap();
    tch::manual_seed(3);
    let m = Model::new(cfg.architecture(), Device::Cpu, Kind::Float);
    let w = d.join("w.safetensors");
    m.save_safetensors(&w).unwrap();
    let out = d.join("bundle");
    let cp = config_path();
    let mut args = vec![
        "export",
        "-c",
        &cp,
        "-o",
        "MODEL.head.num_classes=3862",
        "-w",
        w.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(&args);
    (out, cfg)
}

fn videos(path: &Path, cfg: &Config) -> Vec<Video> {
    let mut v = Vec::new();
    read_shard(path, &cfg.feature_spec(), false, |x| {
        v.push(x);
        true
    })
    .unwrap();
    v
}

fn our_logits(bundle_dir: &Path, vids: &[Video]) -> Tensor {
    let b = yt8m::bundle::load(bundle_dir, Device::Cpu).unwrap();
    let batch = Batch::from_videos(vids, &b.config.feature_spec());
    tch::no_grad(|| {
        b.model
            .forward(&batch_inputs(&batch, Device::Cpu, Kind::Float), false)
    })
}

#[test]
fn bundle_has_every_file_and_a_model_card() {
    let (dir, _) = bundle("files", &[]);
    for f in [
        "model.safetensors",
        "config.yaml",
        "vocabulary.csv",
        "model.onnx",
        "MODEL_CARD.md",
        "bundle.json",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let man = read_json(&dir.join("bundle.json"));
    assert_eq!(man["num_classes"], 3862);
    let sha = man["files"]["model.safetensors"].as_str().unwrap();
    let card = std::fs::read_to_string(dir.join("MODEL_CARD.md")).unwrap();
    assert!(card.contains(sha), "model card lacks the weights sha256");
    let vocab = std::fs::read_to_string(dir.join("vocabulary.csv")).unwrap();
    assert!(
        vocab.lines().nth(1).unwrap().starts_with("0,Game"),
        "2018 vocabulary expected"
    );
    assert_eq!(vocab.lines().count(), 3863);
}

#[test]
fn onnx_matches_yt8m_on_random_and_real_input() {
    needs_shared!();
    let (dir, cfg) = bundle("onnx", &[]);
    let work = dir.parent().unwrap().to_path_buf();
    // Real: the PaddleVideo example video (170 frames) plus random videos of varied lengths.
    let mut vids = videos(&yt8m_data("derived/paddle_SjJ3_frame.tfrecord"), &cfg);
    let mut r = yt8m::rng::Rng::new(5);
    for (i, len) in [7usize, 1, 40, 300].iter().enumerate() {
        let rgb: Vec<u8> = (0..len * 1024).map(|_| r.below(256) as u8).collect();
        let audio: Vec<u8> = (0..len * 128).map(|_| r.below(256) as u8).collect();
        vids.push(Video {
            id: format!("r{i}"),
            labels: vec![],
            has_labels: false,
            features: yt8m::data::VideoFeatures::Frames(vec![rgb, audio]),
            num_frames: *len,
            total_frames: *len,
            segments: None,
        });
    }
    let ours = our_logits(&dir, &vids);
    let batch = Batch::from_videos(&vids, &cfg.feature_spec());
    let b = batch.len();
    let inputs = onnx_frame_inputs(&batch);
    let theirs = onnxruntime_logits(&dir.join("model.onnx"), inputs, &work);
    let d = max_diff(&ours, &theirs);
    println!(
        "max |yt8m - onnxruntime| logits over {b} videos (lengths {:?}): {d:e}",
        batch.lengths
    );
    assert!(d < 1e-4, "ONNX logits differ by {d}");
}

#[test]
fn onnx_video_level_moe_and_logistic_match() {
    needs_shared!();
    for head in ["MoeModel", "LogisticModel"] {
        let d = tempdir(&format!("onnx-{head}"));
        let ov = vec![
            format!("MODEL.head.name={head}"),
            "MODEL.level=video".to_string(),
            "MODEL.head.num_classes=3862".to_string(),
        ];
        let cfg = Config::load(Some(Path::new(&config_path())), &ov).unwrap();
        tch::manual_seed(4);
        let m = Model::new(cfg.architecture(), Device::Cpu, Kind::Float);
        let w = d.join("w.safetensors");
        m.save_safetensors(&w).unwrap();
        let out = d.join("bundle");
        let mut args: Vec<String> = vec![
            "export".into(),
            "-c".into(),
            config_path(),
            "-w".into(),
            w.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ];
        for o in &ov {
            args.push("-o".into());
            args.push(o.clone());
        }
        ok(&args.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        let vids = videos(&yt8m_data("real/validate0001.tfrecord"), &cfg);
        let ours = our_logits(&out, &vids[..32]);
        let batch = Batch::from_videos(&vids[..32], &cfg.feature_spec());
        let mut inputs = Vec::new();
        for (m, name) in ["mean_rgb", "mean_audio"].iter().enumerate() {
            let yt8m::data::batch::ModalityData::F32(x) = &batch.modalities[m].data else {
                panic!()
            };
            inputs.push((
                *name,
                Tensor::from_slice(x).view([32, batch.modalities[m].dim as i64]),
            ));
        }
        let theirs = onnxruntime_logits(&out.join("model.onnx"), inputs, &d);
        let diff = max_diff(&ours, &theirs);
        println!("{head}: max |yt8m - onnxruntime| logits {diff:e}");
        assert!(diff < 1e-4, "{head}: {diff}");
    }
}

#[test]
fn predict_reads_tfrecord_pkl_and_npy_alike() {
    needs_shared!();
    let (dir, cfg) = bundle("predict", &[]);
    let work = dir.parent().unwrap().to_path_buf();
    let d = dir.to_str().unwrap();
    // The same real video in three containers.
    let tf = yt8m_data("derived/paddle_SjJ3_frame.tfrecord");
    let pkl = yt8m_data("real/paddlevideo_example.pkl");
    let v = &videos(&tf, &cfg)[0];
    let yt8m::data::VideoFeatures::Frames(f) = &v.features else {
        panic!()
    };
    let rows = v.num_frames as i64;
    let mat = Tensor::cat(
        &[
            Tensor::from_slice(&f[0]).view([rows, 1024]),
            Tensor::from_slice(&f[1]).view([rows, 128]),
        ],
        1,
    );
    let npy = work.join("SjJ3.npy");
    mat.write_npy(&npy).unwrap();
    let mut lines = Vec::new();
    for input in [
        tf.to_str().unwrap(),
        pkl.to_str().unwrap(),
        npy.to_str().unwrap(),
    ] {
        let out = ok(&[
            "predict", "--model", d, input, "--format", "jsonl", "--top-k", "5",
        ]);
        let j: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        lines.push(j["predictions"].clone());
    }
    assert_eq!(lines[0], lines[1], "tfrecord vs pkl");
    assert_eq!(lines[0], lines[2], "tfrecord vs npy");
    assert_eq!(lines[0].as_array().unwrap().len(), 5);
    assert!(lines[0][0]["name"].as_str().unwrap().len() > 0);
    // Float .npy (dequantized) gives the same scores.
    let deq = mat.to_kind(Kind::Float) * (4.0f64 / 255.0) as f32 as f64 + (-1.9921875f64);
    let npyf = work.join("SjJ3f.npy");
    deq.write_npy(&npyf).unwrap();
    let out = ok(&[
        "predict",
        "--model",
        d,
        npyf.to_str().unwrap(),
        "--format",
        "jsonl",
        "--top-k",
        "5",
    ]);
    let j: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    for k in 0..5 {
        assert_eq!(j["predictions"][k]["class"], lines[0][k]["class"]);
        assert!(
            (j["predictions"][k]["score"].as_f64().unwrap()
                - lines[0][k]["score"].as_f64().unwrap())
            .abs()
                < 1e-5
        );
    }
    // Kaggle and PaddleVideo formats.
    let k = ok(&[
        "predict",
        "--model",
        d,
        tf.to_str().unwrap(),
        "--format",
        "kaggle",
    ]);
    let mut kl = k.lines();
    assert_eq!(kl.next(), Some("VideoId,LabelConfidencePairs"));
    let row = kl.next().unwrap();
    assert!(
        row.starts_with("SjJ3,") && row.split(' ').count() == 40,
        "{row}"
    );
    let p = ok(&[
        "predict",
        "--model",
        d,
        pkl.to_str().unwrap(),
        "--score",
        "softmax",
        "--top-k",
        "1",
        "--format",
        "paddle",
    ]);
    assert!(
        p.starts_with("Current video file: ")
            && p.contains("\ttop-1 class: [")
            && p.contains("\ttop-1 score: ["),
        "{p}"
    );

    // Length-sorted batches (default window) vs one video per pass: same videos in input
    // order, same classes and scores.
    let six = yt8m_data("synthetic/frame_2018.tfrecord");
    let jsonl = |extra: &[&str]| -> Vec<serde_json::Value> {
        let mut a = vec![
            "predict",
            "--model",
            d,
            six.to_str().unwrap(),
            "--format",
            "jsonl",
        ];
        a.extend_from_slice(extra);
        ok(&a)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let sorted = jsonl(&["--batch-size", "2"]);
    let single = jsonl(&["--batch-size", "1", "--bucket-window", "1"]);
    let ids: Vec<String> = videos(&six, &cfg).into_iter().map(|v| v.id).collect();
    assert_eq!(sorted.len(), 6);
    let mut max = 0f64;
    for (i, (a, b)) in sorted.iter().zip(&single).enumerate() {
        assert_eq!(a["id"].as_str().unwrap(), ids[i], "input order kept");
        assert_eq!(a["id"], b["id"]);
        for k in 0..20 {
            assert_eq!(
                a["predictions"][k]["class"], b["predictions"][k]["class"],
                "{}",
                a["id"]
            );
            let d = (a["predictions"][k]["score"].as_f64().unwrap()
                - b["predictions"][k]["score"].as_f64().unwrap())
            .abs();
            max = max.max(d);
        }
    }
    println!("bucketed vs single-video predict: max score diff {max:e}");
    assert!(max < 1e-6);
}

#[test]
fn bad_bundles_and_inputs_are_clear_errors() {
    needs_shared!();
    let (dir, _) = bundle("bad", &["--no-onnx"]);
    let work = dir.parent().unwrap().to_path_buf();
    let d = dir.to_str().unwrap();
    let tf = yt8m_data("derived/paddle_SjJ3_frame.tfrecord");
    // Features of the wrong width.
    let npy = work.join("wide.npy");
    Tensor::zeros([5, 1000], (Kind::Uint8, Device::Cpu))
        .write_npy(&npy)
        .unwrap();
    let (s, _, e) = run(&["predict", "--model", d, npy.to_str().unwrap()]);
    assert!(!s && e.contains("wide.npy") && e.contains("1152"), "{e}");
    // A video with zero frames: a per-video message, no crash.
    let empty = work.join("empty.npy");
    Tensor::zeros([0, 1152], (Kind::Uint8, Device::Cpu))
        .write_npy(&empty)
        .unwrap();
    let (s, _, e) = run(&[
        "predict",
        "--model",
        d,
        empty.to_str().unwrap(),
        tf.to_str().unwrap(),
    ]);
    assert!(s && e.contains("zero frames"), "{e}");
    // A video-level shard for a frame-level model.
    let (s, _, e) = run(&[
        "predict",
        "--model",
        d,
        yt8m_data("real/validate0000.tfrecord").to_str().unwrap(),
    ]);
    assert!(!s && e.contains("video-level"), "{e}");
    // Empty input directory.
    let nothing = work.join("nothing");
    std::fs::create_dir_all(&nothing).unwrap();
    let (s, _, e) = run(&["predict", "--model", d, nothing.to_str().unwrap()]);
    assert!(!s && e.contains("no .tfrecord"), "{e}");
    // A tampered file.
    std::fs::write(dir.join("vocabulary.csv"), "Index,Name\n0,x\n").unwrap();
    let (s, _, e) = run(&["predict", "--model", d, tf.to_str().unwrap()]);
    assert!(
        !s && e.contains("vocabulary.csv") && e.contains("re-export"),
        "{e}"
    );
    // A missing file.
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let (s, _, e) = run(&["predict", "--model", d, tf.to_str().unwrap()]);
    assert!(!s && e.contains("model.safetensors is missing"), "{e}");
}

#[test]
fn model_cards_say_only_what_is_true() {
    needs_shared!();
    let d = tempdir("card");
    // Converted PaddleVideo weights: no training-data claims.
    let pd = parity("c_recognizer1d.pdparams");
    let ov = [
        "MODEL.head.num_classes=11",
        "MODEL.head.feature_dims=[24, 8]",
        "MODEL.head.embedding_size=6",
        "MODEL.head.lstm_size=5",
        "MODEL.head.fc_out1_size=16",
        "MODEL.head.fc_out2_size=12",
    ];
    let mut args = vec!["export".to_string(), "-c".into(), config_path()];
    for o in ov {
        args.extend(["-o".to_string(), o.to_string()]);
    }
    let out = d.join("converted");
    args.extend([
        "-w".to_string(),
        pd.display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "--no-onnx".into(),
    ]);
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    ok(&a);
    let card = std::fs::read_to_string(out.join("MODEL_CARD.md")).unwrap();
    assert!(
        card.contains("converted from") && !card.contains("trained on:"),
        "{card}"
    );
    // A video-level model: no frames.
    let vcfg = repo().join("configs/logistic_video.yaml");
    let cfg = Config::load(Some(&vcfg), &[]).unwrap();
    let m = Model::new(cfg.architecture(), Device::Cpu, Kind::Float);
    let w = d.join("v.safetensors");
    m.save_safetensors(&w).unwrap();
    let vout = d.join("video");
    ok(&[
        "export",
        "-c",
        vcfg.to_str().unwrap(),
        "-w",
        w.to_str().unwrap(),
        "--out",
        vout.to_str().unwrap(),
        "--no-onnx",
    ]);
    let card = std::fs::read_to_string(vout.join("MODEL_CARD.md")).unwrap();
    assert!(!card.contains("frames used"), "{card}");
}
