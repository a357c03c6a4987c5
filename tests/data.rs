//! Data readers against every file in shared/data/yt8m, plus corrupted copies.

mod common;
use common::*;
use std::path::Path;
use yt8m::data::batch::{Batch, Loader, LoaderConfig};
use yt8m::data::sources::{expand_paths, read_paddle_pickle, read_shard};
use yt8m::data::tfrecord::{RecordReader, frame_record};
use yt8m::data::{FeatureSpec, Level, Video, VideoFeatures, dequantize};
use yt8m::error::DataErrorKind;

fn read_all(path: &Path, spec: &FeatureSpec) -> Vec<Video> {
    let mut v = Vec::new();
    read_shard(path, spec, false, |x| {
        v.push(x);
        true
    })
    .unwrap_or_else(|e| panic!("{e}"));
    v
}

fn frame_spec(num_classes: usize, max_frames: usize) -> FeatureSpec {
    FeatureSpec {
        level: Level::Frame,
        num_classes,
        max_frames,
        ..Default::default()
    }
}

fn video_spec(num_classes: usize) -> FeatureSpec {
    FeatureSpec {
        level: Level::Video,
        num_classes,
        ..Default::default()
    }
}

fn labels_of(r: &serde_json::Value) -> Vec<u32> {
    r["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn frame_level_files_match_manifests() {
    needs_shared!();
    for (rel, classes) in [
        ("synthetic/frame_2018.tfrecord", 3862),
        ("synthetic/frame_2017.tfrecord", 4716),
        ("synthetic/frame_long.tfrecord", 3862),
        ("synthetic/frame_test_nolabels.tfrecord", 3862),
        ("synthetic/segment_2019.tfrecord", 3862),
        ("derived/paddle_SjJ3_frame.tfrecord", 3862),
    ] {
        let path = yt8m_data(rel);
        let man = read_json(&path.with_extension("tfrecord.manifest.json"));
        let recs = man["records"].as_array().unwrap();
        // No cap: every stored frame, so byte sums cover the whole record.
        let vids = read_all(&path, &frame_spec(classes, 100_000));
        assert_eq!(vids.len(), recs.len(), "{rel}");
        for (v, r) in vids.iter().zip(recs) {
            assert_eq!(v.id, r["id"].as_str().unwrap(), "{rel}");
            assert_eq!(
                v.num_frames as u64,
                r["num_frames"].as_u64().unwrap(),
                "{rel} {}",
                v.id
            );
            let VideoFeatures::Frames(f) = &v.features else {
                panic!("not frames")
            };
            let sum = |b: &[u8]| b.iter().map(|&x| x as u64).sum::<u64>();
            assert_eq!(
                sum(&f[0]),
                r["rgb_byte_sum"].as_u64().unwrap(),
                "{rel} {} rgb",
                v.id
            );
            assert_eq!(
                sum(&f[1]),
                r["audio_byte_sum"].as_u64().unwrap(),
                "{rel} {} audio",
                v.id
            );
            let first8: Vec<u8> = r["rgb_first8"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u8)
                .collect();
            assert_eq!(
                &f[0][..first8.len().min(f[0].len())],
                &first8[..first8.len().min(f[0].len())]
            );
            if rel.contains("nolabels") {
                assert!(!v.has_labels && v.labels.is_empty());
            } else {
                assert!(v.has_labels);
                assert_eq!(v.labels, labels_of(r), "{rel} {}", v.id);
            }
            if let Some(segs) = r.get("segments") {
                let s = v.segments.as_ref().expect("segments parsed");
                let segs = segs.as_array().unwrap();
                assert_eq!(s.start_times.len(), segs.len());
                for (i, g) in segs.iter().enumerate() {
                    assert_eq!(s.start_times[i], g["start"].as_i64().unwrap());
                    assert_eq!(s.labels[i], g["label"].as_i64().unwrap());
                    assert_eq!(s.scores[i] as f64, g["score"].as_f64().unwrap());
                }
            }
        }
    }
}

#[test]
fn max_frames_truncates_like_the_official_reader() {
    needs_shared!();
    let path = yt8m_data("synthetic/frame_long.tfrecord");
    let vids = read_all(&path, &frame_spec(3862, 300));
    for v in &vids {
        assert!(v.total_frames > 300);
        assert_eq!(v.num_frames, 300);
        let VideoFeatures::Frames(f) = &v.features else {
            panic!()
        };
        assert_eq!(f[0].len(), 300 * 1024);
        assert_eq!(f[1].len(), 300 * 128);
    }
    let b = Batch::from_videos(&vids, &frame_spec(3862, 300));
    assert_eq!(b.max_len, 300);
    assert_eq!(b.lengths, vec![300, 300]);
}

#[test]
fn video_level_files_match_manifests() {
    needs_shared!();
    for (rel, classes) in [
        ("real/validate0000.tfrecord", 3862),
        ("real/validate0001.tfrecord", 3862),
        ("synthetic/video_2018.tfrecord", 3862),
        ("synthetic/video_2017.tfrecord", 4716),
        ("derived/paddle_SjJ3_video.tfrecord", 3862),
    ] {
        let path = yt8m_data(rel);
        let man = read_json(&path.with_extension("tfrecord.manifest.json"));
        let recs = man["records"].as_array().unwrap();
        let vids = read_all(&path, &video_spec(classes));
        assert_eq!(vids.len(), recs.len(), "{rel}");
        for (v, r) in vids.iter().zip(recs) {
            assert_eq!(v.id, r["id"].as_str().unwrap());
            assert_eq!(v.labels, labels_of(r));
            let VideoFeatures::Mean(m) = &v.features else {
                panic!()
            };
            assert_eq!(m[0].len(), 1024);
            assert_eq!(m[1].len(), 128);
            let s: f64 = m[0].iter().map(|&x| x as f64).sum();
            let want = r["mean_rgb_sum"].as_f64().unwrap();
            assert!(
                (s - want).abs() < 1e-9 * want.abs().max(1.0),
                "{rel} {}: {s} vs {want}",
                v.id
            );
            let s: f64 = m[1].iter().map(|&x| x as f64).sum();
            let want = r["mean_audio_sum"].as_f64().unwrap();
            assert!(
                (s - want).abs() < 1e-9 * want.abs().max(1.0),
                "{rel} {}: {s} vs {want}",
                v.id
            );
            if let Some(f4) = r.get("mean_rgb_first4") {
                for (i, x) in f4.as_array().unwrap().iter().enumerate() {
                    assert_eq!(m[0][i] as f64, x.as_f64().unwrap());
                }
            }
        }
    }
}

/// Record counts of all 70 real shards: validate0000/0001 from their manifests, the others
/// from the table in PROVENANCE.md (counted there by walking the framing).
#[test]
fn all_real_shards_have_the_documented_record_counts() {
    needs_shared!();
    let prov = std::fs::read_to_string(yt8m_data("PROVENANCE.md")).unwrap();
    let mut expected = std::collections::BTreeMap::new();
    expected.insert("validate0000.tfrecord".to_string(), 284usize);
    expected.insert("validate0001.tfrecord".to_string(), 305usize);
    for line in prov.lines() {
        let cells: Vec<&str> = line
            .split('|')
            .map(|c| c.trim().trim_matches('`'))
            .collect();
        if cells.len() >= 5 && cells[1].starts_with("validate") && cells[1].ends_with(".tfrecord") {
            if let Ok(n) = cells[3].parse::<usize>() {
                expected.insert(cells[1].to_string(), n);
            }
        }
    }
    assert_eq!(expected.len(), 70, "PROVENANCE.md table");
    let files = expand_paths(
        &[yt8m_data("real/validate*.tfrecord").display().to_string()],
        None,
    )
    .unwrap();
    assert_eq!(files.len(), 70);
    let spec = video_spec(3862);
    let mut total = 0;
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        // 2018 ids end in a per-shard code: aa..az, aA..aZ, a0..a9, ba, ...
        let suffix = {
            let i: usize = name[8..12].parse().unwrap();
            let a = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
            format!("{}{}", a[i / 62] as char, a[i % 62] as char)
        };
        let vids = read_all(f, &spec);
        assert_eq!(vids.len(), expected[&name], "{name}");
        for v in &vids {
            assert!(
                v.id.ends_with(&suffix),
                "{name}: id {} lacks shard suffix {suffix}",
                v.id
            );
            assert!(!v.labels.is_empty() && v.labels.windows(2).all(|w| w[0] < w[1]));
        }
        total += vids.len();
    }
    assert!(total > 19_000, "{total}");
}

#[test]
fn paddlevideo_pickle_equals_the_derived_tfrecord() {
    needs_shared!();
    let spec = frame_spec(3862, 300);
    let p = read_paddle_pickle(&yt8m_data("real/paddlevideo_example.pkl"), &spec).unwrap();
    assert_eq!(p.len(), 1);
    let v = &p[0];
    assert_eq!(v.id, "SjJ3");
    assert_eq!(v.labels, vec![11]);
    assert_eq!(v.num_frames, 170);
    let t = read_all(&yt8m_data("derived/paddle_SjJ3_frame.tfrecord"), &spec);
    assert_eq!(
        t[0].features, v.features,
        "feature bytes differ between pkl and tfrecord"
    );
    // Also through the generic shard reader and a .list file with data_prefix. An entry is
    // its whole line, surrounding whitespace stripped (PaddleVideo's `line.strip()`); blank
    // lines are skipped.
    let dir = tempdir("list");
    std::fs::write(
        dir.join("val.list"),
        "  real/paddlevideo_example.pkl \t\n\n",
    )
    .unwrap();
    let files = expand_paths(
        &[dir.join("val.list").display().to_string()],
        Some(&yt8m_data("")),
    )
    .unwrap();
    assert_eq!(read_all(&files[0], &spec)[0], *v);
}

#[test]
fn dequantize_matches_the_official_f32_formula() {
    assert_eq!(dequantize(0), -1.9921875);
    assert_eq!(dequantize(255), 2.0078125);
    // q * f32(4/255) + f32(-1.9921875), two f32 ops.
    for q in 0..=255u8 {
        let want = (q as f32) * (4.0f64 / 255.0) as f32 + (-1.9921875f32);
        assert_eq!(dequantize(q).to_bits(), want.to_bits());
    }
}

// ----- bad input ---------------------------------------------------------------------------

fn corrupt_copy(name: &str, f: impl FnOnce(&mut Vec<u8>)) -> std::path::PathBuf {
    let src = std::fs::read(yt8m_data("synthetic/frame_2018.tfrecord")).unwrap();
    let mut b = src.clone();
    f(&mut b);
    let d = tempdir(name);
    let p = d.join(format!("{name}.tfrecord"));
    std::fs::write(&p, b).unwrap();
    p
}

/// Offsets of the records of frame_2018.tfrecord.
fn record_offsets() -> Vec<(u64, u64)> {
    let mut r = RecordReader::open(yt8m_data("synthetic/frame_2018.tfrecord")).unwrap();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while let Some(rec) = r.next_into(&mut buf).unwrap() {
        out.push((rec.offset, buf.len() as u64));
    }
    out
}

fn expect_err(path: &Path, spec: &FeatureSpec, kind: DataErrorKind, needles: &[&str]) {
    let e = read_shard(path, spec, false, |_| true).expect_err("must fail");
    let msg = e.to_string();
    println!("{msg}");
    assert_eq!(e.kind, kind, "{msg}");
    assert!(
        msg.contains(&path.display().to_string()),
        "no path in: {msg}"
    );
    for n in needles {
        assert!(msg.contains(n), "'{n}' not in: {msg}");
    }
}

#[test]
fn corrupt_records_name_file_offset_and_index() {
    needs_shared!();
    let recs = record_offsets();
    let spec = frame_spec(3862, 300);
    let (off2, len2) = recs[2];
    // Flip a byte in record 2's length field.
    let p = corrupt_copy("len", |b| b[off2 as usize] ^= 0x01);
    expect_err(
        &p,
        &spec,
        DataErrorKind::Corrupt,
        &["record 2", &format!("byte offset {off2}"), "length CRC"],
    );
    // Flip a byte in the length CRC.
    let p = corrupt_copy("lencrc", |b| b[off2 as usize + 9] ^= 0x80);
    expect_err(
        &p,
        &spec,
        DataErrorKind::Corrupt,
        &["record 2", "length CRC"],
    );
    // Flip a byte in the payload.
    let p = corrupt_copy("payload", |b| b[off2 as usize + 12 + 100] ^= 0x10);
    expect_err(
        &p,
        &spec,
        DataErrorKind::Corrupt,
        &["record 2", "payload CRC", "--skip-corrupt"],
    );
    // Flip a byte of the payload CRC.
    let p = corrupt_copy("datacrc", |b| b[(off2 + 12 + len2) as usize] ^= 0x01);
    expect_err(
        &p,
        &spec,
        DataErrorKind::Corrupt,
        &["record 2", "payload CRC"],
    );
    // Truncate in the middle of record 3.
    let (off3, _) = recs[3];
    let p = corrupt_copy("trunc", |b| b.truncate(off3 as usize + 40));
    expect_err(
        &p,
        &spec,
        DataErrorKind::Corrupt,
        &["record 3", "truncated"],
    );
    let p = corrupt_copy("trunchdr", |b| b.truncate(off3 as usize + 5));
    expect_err(
        &p,
        &spec,
        DataErrorKind::Corrupt,
        &["record 3", "truncated record header"],
    );
    // Empty file.
    let p = corrupt_copy("empty", |b| b.clear());
    expect_err(&p, &spec, DataErrorKind::Empty, &["empty"]);
}

#[test]
fn skip_corrupt_counts_and_continues() {
    needs_shared!();
    let recs = record_offsets();
    let (off2, _) = recs[2];
    let p = corrupt_copy("skip", |b| b[off2 as usize + 12 + 100] ^= 0x10);
    let mut ids = Vec::new();
    let stats = read_shard(&p, &frame_spec(3862, 300), true, |v| {
        ids.push(v.id);
        true
    })
    .unwrap();
    assert_eq!(stats.records, 5);
    assert_eq!(stats.skipped.len(), 1);
    assert!(stats.skipped[0].to_string().contains("record 2"));
    assert_eq!(ids.len(), 5);
}

#[test]
fn schema_mismatches_are_clear() {
    needs_shared!();
    // A video-level file where frame-level is expected.
    let p = yt8m_data("real/validate0000.tfrecord");
    expect_err(
        &p,
        &frame_spec(3862, 300),
        DataErrorKind::Schema,
        &["record 0", "video-level features", "mean_rgb"],
    );
    // And the reverse.
    let p = yt8m_data("synthetic/frame_2018.tfrecord");
    expect_err(
        &p,
        &video_spec(3862),
        DataErrorKind::Schema,
        &["frame-level features"],
    );
    // Frame width differs from the configured width.
    let spec = FeatureSpec {
        dims: vec![512, 128],
        ..frame_spec(3862, 300)
    };
    expect_err(
        &p,
        &spec,
        DataErrorKind::Schema,
        &["record 0", "key 'rgb'", "1024 bytes, expected 512"],
    );
    // Label id ≥ num_classes (frame_2018 holds label 3861).
    expect_err(
        &p,
        &frame_spec(3000, 300),
        DataErrorKind::Schema,
        &["key 'labels'", "label id 3861", "num_classes"],
    );
    // Missing feature list.
    let spec = FeatureSpec {
        frame_names: vec!["rgb".into(), "sound".into()],
        ..frame_spec(3862, 300)
    };
    expect_err(
        &p,
        &spec,
        DataErrorKind::Schema,
        &["feature list 'sound' is missing", "audio"],
    );
    // A pickle of another layout.
    let d = tempdir("badpkl");
    let bad = d.join("other.pkl");
    // pickle.dumps({'a': 1}, protocol=2)
    std::fs::write(&bad, b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s.").unwrap();
    let e = read_paddle_pickle(&bad, &frame_spec(3862, 300))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing key 'video'") && e.contains("other.pkl") && e.contains("tf2pkl"),
        "{e}"
    );
    // Not a pickle at all.
    std::fs::write(&bad, b"hello").unwrap();
    let e = read_paddle_pickle(&bad, &frame_spec(3862, 300))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a readable pickle"), "{e}");
}

#[test]
fn framing_roundtrip_and_unpacked_lists() {
    // A hand-made record with unpacked int64 labels and the 2017 `video_id` key.
    use yt8m::data::proto::{EncFeature, encode_feature, encode_sequence_example};
    let rgb = vec![7u8; 1024];
    let audio = vec![9u8; 128];
    let mut labels_unpacked = vec![0x1a, 4, 0x08, 5, 0x08, 9]; // Feature{int64_list{value:5,value:9}}
    labels_unpacked.truncate(6);
    let payload = encode_sequence_example(
        &[
            (
                "video_id",
                encode_feature(&EncFeature::Bytes(vec![b"abcdefghijk"])),
            ),
            ("labels", labels_unpacked),
        ],
        &[
            (
                "audio",
                vec![encode_feature(&EncFeature::Bytes(vec![&audio]))],
            ),
            ("rgb", vec![encode_feature(&EncFeature::Bytes(vec![&rgb]))]),
        ],
    );
    let mut file = Vec::new();
    frame_record(&payload, &mut file);
    let d = tempdir("hand");
    let p = d.join("hand.tfrecord");
    std::fs::write(&p, file).unwrap();
    let v = read_all(&p, &frame_spec(4716, 300));
    assert_eq!(v[0].id, "abcdefghijk");
    assert_eq!(v[0].labels, vec![5, 9]);
    assert_eq!(v[0].num_frames, 1);
}

#[test]
fn loader_is_deterministic_and_sees_every_video_once() {
    needs_shared!();
    let files = expand_paths(
        &[yt8m_data("real/validate000*.tfrecord")
            .display()
            .to_string()],
        None,
    )
    .unwrap();
    let spec = video_spec(3862);
    let cfg = LoaderConfig {
        batch_size: 64,
        shuffle: true,
        shuffle_buffer: 500,
        seed: 7,
        num_readers: 3,
        ..Default::default()
    };
    let loader = Loader::new(files.clone(), spec.clone(), cfg);
    let ids = |epoch| -> Vec<String> { loader.epoch(epoch).flat_map(|b| b.unwrap().ids).collect() };
    let a = ids(0);
    let b = ids(0);
    let c = ids(1);
    assert_eq!(a, b, "same seed and epoch must give the same order");
    assert_ne!(a, c, "another epoch reshuffles");
    let mut sorted = a.clone();
    sorted.sort();
    sorted.dedup();
    let total: usize = files.iter().map(|f| read_all(f, &spec).len()).sum();
    assert_eq!(sorted.len(), total);
    assert_eq!(a.len(), total);
}

#[test]
fn batches_carry_lengths_and_multi_hot_labels() {
    needs_shared!();
    let spec = frame_spec(3862, 300);
    let vids = read_all(&yt8m_data("synthetic/frame_2018.tfrecord"), &spec);
    let b = Batch::from_videos(&vids, &spec);
    assert_eq!(
        b.lengths,
        vids.iter().map(|v| v.num_frames as i64).collect::<Vec<_>>()
    );
    assert_eq!(b.max_len, *b.lengths.iter().max().unwrap() as usize);
    for (i, v) in vids.iter().enumerate() {
        let row = &b.labels[i * 3862..(i + 1) * 3862];
        assert_eq!(row.iter().sum::<f32>() as usize, v.labels.len());
        for &l in &v.labels {
            assert_eq!(row[l as usize], 1.0);
        }
    }
    // Bucketing keeps every video and orders each window by length.
    let files = vec![
        yt8m_data("synthetic/frame_2018.tfrecord"),
        yt8m_data("synthetic/frame_long.tfrecord"),
    ];
    let cfg = LoaderConfig {
        batch_size: 2,
        bucket_by_length: true,
        bucket_window: 4,
        ..Default::default()
    };
    let loader = Loader::new(files, spec, cfg);
    let batches: Vec<Batch> = loader.epoch(0).map(|b| b.unwrap()).collect();
    assert_eq!(batches.iter().map(|b| b.len()).sum::<usize>(), 8);
    for b in &batches {
        assert_eq!(b.max_len as i64, *b.lengths.iter().max().unwrap());
    }
}

#[test]
fn errors_reach_the_loader_consumer() {
    needs_shared!();
    let p = corrupt_copy("loader", |b| b.truncate(b.len() - 3));
    let loader = Loader::new(vec![p], frame_spec(3862, 300), LoaderConfig::default());
    let r: Result<Vec<Batch>, _> = loader.epoch(0).collect();
    let e = r.unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
}

#[test]
fn zero_frame_videos_are_left_out_of_batches_and_reported() {
    use yt8m::data::proto::{EncFeature, encode_feature, encode_sequence_example};
    let rgb = vec![1u8; 1024];
    let audio = vec![2u8; 128];
    let mut file = Vec::new();
    for (id, frames) in [("full", 1usize), ("none", 0)] {
        let rows = |w: &[u8]| {
            (0..frames)
                .map(|_| encode_feature(&EncFeature::Bytes(vec![w])))
                .collect::<Vec<_>>()
        };
        let payload = encode_sequence_example(
            &[
                (
                    "id",
                    encode_feature(&EncFeature::Bytes(vec![id.as_bytes()])),
                ),
                ("labels", encode_feature(&EncFeature::Int64(&[3]))),
            ],
            &[("rgb", rows(&rgb)), ("audio", rows(&audio))],
        );
        frame_record(&payload, &mut file);
    }
    let d = tempdir("zero");
    let p = d.join("z.tfrecord");
    std::fs::write(&p, file).unwrap();
    let loader = Loader::new(vec![p], frame_spec(3862, 300), LoaderConfig::default());
    let mut it = loader.epoch(0);
    let ids: Vec<String> = it.by_ref().flat_map(|b| b.unwrap().ids).collect();
    assert_eq!(ids, vec!["full"]);
    let st = it.stats();
    assert_eq!(st.zero_frames.len(), 1);
    assert!(st.zero_frames[0].ends_with("none"), "{:?}", st.zero_frames);
}

/// Issue #27: `inspect a/ b/` printed two indistinguishable `train0000.tfrecord` rows. Base
/// names are shown while they tell the files apart, the paths as given once two share one.
#[test]
fn inspect_rows_tell_files_with_one_name_apart() {
    let d = tempdir("inspect-names");
    synth_shards(&d.join("a"), 4, 1, 1, 3);
    synth_shards(&d.join("b"), 4, 1, 2, 3);
    let a = d.join("a");
    let b = d.join("b");
    let rows = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.contains(".tfrecord") && !l.starts_with(' '))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect()
    };
    let one = rows(&yt8m_ok(&["inspect", a.to_str().unwrap()]));
    assert_eq!(one, ["train0000.tfrecord"]);
    let two = rows(&yt8m_ok(&[
        "inspect",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]));
    assert_eq!(
        two,
        [
            a.join("train0000.tfrecord").display().to_string(),
            b.join("train0000.tfrecord").display().to_string()
        ]
    );
}
