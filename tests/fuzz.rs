//! Mutation fuzzing of every decoder that takes bytes from outside (issue #12): real files from
//! ../shared (and files we write) with random byte flips, overwrites, insertions and cuts, plus
//! random opcode streams for the pickle VM. Every case must end in `Ok` or a clean error —
//! a panic fails the test, an abort or stack overflow kills the test binary, a hang runs into
//! CI's limit. Deterministic (fixed seeds) and bounded: about 20 s on 2 cores in all; scaled up
//! locally with `YT8M_FUZZ_SCALE` ([`cases`]).

mod common;
use common::*;
use std::path::Path;
use yt8m::data::Video;
use yt8m::data::pickle;
use yt8m::data::sources::{FrameStore, read_paddle_pickle, read_shard, read_shard_with};
use yt8m::data::video::{decode_video, summarize};
use yt8m::data::{FeatureSpec, Level};
use yt8m::error::Location;
use yt8m::rng::Rng;

/// `n` cases, times `YT8M_FUZZ_SCALE` (default 1): CI runs the fixed count; a longer local
/// run (`YT8M_FUZZ_SCALE=50 ./dev cargo test --release --test fuzz`) goes on with the same
/// seeds past it.
fn cases(n: usize) -> usize {
    let scale = std::env::var("YT8M_FUZZ_SCALE")
        .ok()
        .map(|s| {
            s.parse::<usize>()
                .expect("YT8M_FUZZ_SCALE must be a whole number")
        })
        .unwrap_or(1);
    n.saturating_mul(scale)
}

/// 1..=`max_rounds` random mutations of `b` (flip, overwrite with an "interesting" value,
/// insert, delete, truncate, duplicate a slice).
fn mutate(b: &mut Vec<u8>, rng: &mut Rng, max_rounds: u64) {
    let rounds = 1 + rng.below(max_rounds);
    for _ in 0..rounds {
        if b.is_empty() {
            b.push(rng.below(256) as u8);
            continue;
        }
        let i = rng.below(b.len() as u64) as usize;
        match rng.below(7) {
            0 => b[i] ^= 1 << rng.below(8),
            1 => b[i] = [0u8, 0xff, 0x7f, 0x80, 1][rng.below(5) as usize],
            2 => {
                let v = [0u8, 0xff, 0x80, b']', b'(', 0x8c][rng.below(6) as usize];
                b.insert(i, v)
            }
            3 => {
                b.remove(i);
            }
            4 => b.truncate(i),
            5 => {
                // A 4- or 8-byte little-endian length-ish value.
                let n = if rng.below(2) == 0 { 4 } else { 8 };
                let v =
                    [0u64, 1, 0x7fff_ffff, 0xffff_ffff, u64::MAX, 1 << 30][rng.below(6) as usize];
                for k in 0..n {
                    if i + k < b.len() {
                        b[i + k] = (v >> (8 * k)) as u8;
                    }
                }
            }
            _ => {
                let j = rng.below(b.len() as u64) as usize;
                let (lo, hi) = (i.min(j), i.max(j).min(i.min(j) + 64));
                let s = b[lo..hi].to_vec();
                b.splice(i..i, s);
            }
        }
    }
}

fn frame_spec() -> FeatureSpec {
    FeatureSpec {
        num_classes: 3862,
        ..Default::default()
    }
}

fn video_spec() -> FeatureSpec {
    FeatureSpec {
        level: Level::Video,
        num_classes: 3862,
        ..Default::default()
    }
}

fn records(p: &Path) -> Vec<Vec<u8>> {
    let mut r = yt8m::data::tfrecord::RecordReader::open(p).unwrap();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while r.next_into(&mut buf).unwrap().is_some() {
        out.push(buf.clone());
    }
    out
}

#[test]
fn example_and_sequence_example_payloads() {
    needs_shared!();
    let mut rng = Rng::new(11);
    let mut payloads = records(&yt8m_data("synthetic/frame_2018.tfrecord"));
    payloads.extend(records(&yt8m_data("synthetic/video_2018.tfrecord")));
    let loc = Location::file("fuzz");
    let (mut ok, mut err) = (0, 0);
    for case in 0..cases(100_000) {
        let mut b = payloads[case % payloads.len()].clone();
        mutate(&mut b, &mut rng, 6);
        for spec in [frame_spec(), video_spec()] {
            match decode_video(&b, &spec, &loc) {
                Ok(_) => ok += 1,
                Err(_) => err += 1,
            }
        }
        let _ = summarize(&b);
    }
    println!("decode_video: {ok} ok, {err} clean errors");
    assert!(err > 0);
}

#[test]
fn tfrecord_files_with_and_without_skip_corrupt() {
    needs_shared!();
    let mut rng = Rng::new(12);
    let d = tempdir("fuzz-tfr");
    let sources = [
        std::fs::read(yt8m_data("synthetic/frame_2018.tfrecord")).unwrap(),
        std::fs::read(yt8m_data("synthetic/video_2018.tfrecord")).unwrap(),
    ];
    let p = d.join("m.tfrecord");
    let (mut ok, mut err, mut resyncs) = (0, 0, 0);
    for case in 0..cases(2000) {
        let mut b = sources[case % 2].clone();
        mutate(&mut b, &mut rng, 4);
        std::fs::write(&p, &b).unwrap();
        for skip in [false, true] {
            let spec = if case % 2 == 0 {
                frame_spec()
            } else {
                video_spec()
            };
            let mut n = 0usize;
            match read_shard(&p, &spec, skip, |_| {
                n += 1;
                true
            }) {
                Ok(s) => {
                    ok += 1;
                    resyncs += s.resyncs.len();
                }
                Err(_) => err += 1,
            }
        }
        let _ = yt8m::data::inspect::inspect_file(&p, true);
        let _ = yt8m::data::sources::count_records(&p);
    }
    println!("read_shard: {ok} ok, {err} clean errors, {resyncs} resynchronisations");
    assert!(err > 0 && resyncs > 0);
}

#[test]
fn irregular_frame_framing_is_copied_when_mapped() {
    use yt8m::data::proto::{EncFeature, encode_feature, encode_sequence_example};
    use yt8m::data::video::FrameSpan;
    // rgb frames 0-1 regular, frame 2 with a non-minimal varint length (legal protobuf), so
    // the in-place layout breaks there; audio stays regular.
    let dims = [4usize, 2];
    let frame = |v: &[u8]| encode_feature(&EncFeature::Bytes(vec![v]));
    let odd = |v: &[u8]| {
        let mut list = vec![0x0a, 0x80 | v.len() as u8, 0x00];
        list.extend_from_slice(v);
        let mut f = vec![0x0a, list.len() as u8];
        f.extend_from_slice(&list);
        f
    };
    let rgb: Vec<Vec<u8>> = vec![
        frame(&[1, 2, 3, 4]),
        frame(&[5, 6, 7, 8]),
        odd(&[9, 10, 11, 12]),
        frame(&[13, 14, 15, 16]),
    ];
    let audio: Vec<Vec<u8>> = (0..4u8).map(|i| frame(&[i, i + 100])).collect();
    let payload = encode_sequence_example(
        &[
            ("id", encode_feature(&EncFeature::Bytes(vec![b"vid1"]))),
            ("labels", encode_feature(&EncFeature::Int64(&[3]))),
        ],
        &[("rgb", rgb), ("audio", audio)],
    );
    let mut file = Vec::new();
    yt8m::data::tfrecord::frame_record(&payload, &mut file);
    let d = tempdir("irregular");
    let p = d.join("odd.tfrecord");
    std::fs::write(&p, &file).unwrap();
    let spec = FeatureSpec {
        dims: dims.to_vec(),
        num_classes: 10,
        ..Default::default()
    };
    let mut got = Vec::new();
    for store in [FrameStore::Copied, FrameStore::Mapped, FrameStore::InRecord] {
        read_shard_with(&p, &spec, false, store, |v| {
            // (In the record's buffer, this small record's frames are copied out: the
            // framing between them is most of its bytes.)
            if store == FrameStore::Mapped {
                let yt8m::data::VideoFeatures::Mapped(f) = &v.features else {
                    panic!("not mapped: {:?}", v.features)
                };
                assert!(
                    matches!(f.spans[0], FrameSpan::Copied { .. }),
                    "{:?}",
                    f.spans[0]
                );
                assert!(
                    matches!(
                        f.spans[1],
                        FrameSpan::InPlace {
                            stride: 8,
                            rows: 4,
                            ..
                        }
                    ),
                    "{:?}",
                    f.spans[1]
                );
            }
            got.push(content(&v, &spec));
            true
        })
        .unwrap();
    }
    assert_eq!(got[0], got[1]);
    assert_eq!(got[0], got[2]);
    assert_eq!(got[0].3[0], (1..=16).collect::<Vec<u8>>());
}

/// The payloads of a well-formed TFRecord file.
fn records_of(b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 12 <= b.len() {
        let len = u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize;
        out.push(b[at + 12..at + 12 + len].to_vec());
        at += 16 + len;
    }
    out
}

/// Everything a reader hands out of one video, wherever its frames lie.
fn content(v: &Video, spec: &FeatureSpec) -> (String, Vec<u32>, usize, Vec<Vec<u8>>) {
    let frames = spec
        .dims
        .iter()
        .enumerate()
        .map(|(m, &d)| {
            let r = v.rows(m, d);
            let mut out = vec![0u8; r * d];
            v.copy_frames(m, d, r, &mut out, yt8m::data::stream::Store::Cached);
            out
        })
        .collect();
    (v.id.clone(), v.labels.clone(), v.num_frames, frames)
}

#[test]
fn mapped_reading_equals_reading_on_mutated_files() {
    // Differential: frames left in a memory map (Python's read(copy=False)) against the
    // copying reader, on the same damaged files: the same videos, then the same error.
    needs_shared!();
    let mut rng = Rng::new(14);
    let d = tempdir("fuzz-map");
    let sources = [
        std::fs::read(yt8m_data("synthetic/frame_2018.tfrecord")).unwrap(),
        std::fs::read(yt8m_data("synthetic/frame_long.tfrecord")).unwrap(),
        std::fs::read(yt8m_data("synthetic/video_2018.tfrecord")).unwrap(),
    ];
    let p = d.join("m.tfrecord");
    let (mut same_ok, mut same_err, mut mapped_videos, mut in_record_videos) = (0, 0, 0, 0);
    for case in 0..cases(1500) {
        let mut b = sources[case % 3].clone();
        if case % 10 == 0 {
            // As written.
        } else if case % 2 == 0 {
            mutate(&mut b, &mut rng, 3);
        } else {
            // Damage inside one record, then re-frame with valid CRCs, so the protobuf
            // decoders (and the in-place frame layout) see the damage.
            let payloads = records_of(&b);
            let k = rng.below(payloads.len() as u64) as usize;
            b.clear();
            for (i, mut pl) in payloads.into_iter().enumerate() {
                if i == k {
                    mutate(&mut pl, &mut rng, 2);
                }
                yt8m::data::tfrecord::frame_record(&pl, &mut b);
            }
        }
        std::fs::write(&p, &b).unwrap();
        let spec = if case % 3 == 2 {
            video_spec()
        } else {
            FeatureSpec {
                max_frames: [usize::MAX, 300, 5][case % 3],
                ..frame_spec()
            }
        };
        let mut runs = Vec::new();
        for store in [
            FrameStore::Copied,
            FrameStore::Mapped,
            FrameStore::InRecord,
            FrameStore::MappedGuarded,
        ] {
            let mut got = Vec::new();
            let r = read_shard_with(&p, &spec, false, store, |v| {
                if matches!(v.features, yt8m::data::VideoFeatures::Mapped(_)) {
                    match store {
                        FrameStore::Mapped | FrameStore::MappedGuarded => mapped_videos += 1,
                        FrameStore::InRecord => in_record_videos += 1,
                        FrameStore::Copied => panic!("frames left in place when told to copy"),
                    }
                }
                got.push(content(&v, &spec));
                true
            });
            runs.push((got, r.map(|_| ()).map_err(|e| e.to_string())));
        }
        assert_eq!(
            runs[0], runs[1],
            "case {case}: mapped and copied reads differ"
        );
        assert_eq!(
            runs[0], runs[2],
            "case {case}: reads in the record's buffer and copied reads differ"
        );
        assert_eq!(
            runs[0], runs[3],
            "case {case}: guarded mapped and copied reads differ"
        );
        if runs[0].1.is_ok() {
            same_ok += 1;
        } else {
            same_err += 1;
        }
    }
    println!(
        "mapped / in the record's buffer vs copied: {same_ok} files equal, {same_err} equal errors, {mapped_videos} mapped videos, {in_record_videos} left in their record"
    );
    assert!(same_ok > 0 && same_err > 0 && mapped_videos > 0 && in_record_videos > 0);
}

#[test]
fn pickle_vm_on_mutated_real_files_and_random_opcodes() {
    needs_shared!();
    let mut rng = Rng::new(13);
    let d = tempdir("fuzz-pkl");
    let pkl = std::fs::read(yt8m_data("real/paddlevideo_example.pkl")).unwrap();
    let pdp = std::fs::read(parity("c_head.pdparams")).unwrap();
    let p = d.join("m.pkl");
    let spec = frame_spec();
    let (mut ok, mut err) = (0, 0);
    for case in 0..cases(3000) {
        let mut b = if case % 3 == 0 {
            pkl.clone()
        } else {
            pdp.clone()
        };
        mutate(&mut b, &mut rng, 4);
        match pickle::loads(&b) {
            Ok(v) => {
                ok += 1;
                // Walk what callers walk.
                if let Some(items) = v.dict_items() {
                    for (_, x) in items {
                        let _ = pickle::ndarray(&x).map(|a| (a.to_f64().ok(), a.numel()));
                    }
                }
            }
            Err(_) => err += 1,
        }
        if case % 3 == 0 {
            std::fs::write(&p, &b).unwrap();
            let _ = read_paddle_pickle(&p, &spec);
        }
    }
    // Random programs over the opcodes the VM knows (and some it does not).
    let ops: &[u8] = b"(.NKJMGUTCBX]})tlde0a2sup1qhgrjbRc\x80\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\xff";
    for _ in 0..cases(150_000) {
        let n = 1 + rng.below(64) as usize;
        let mut b = Vec::with_capacity(n * 2);
        for _ in 0..n {
            b.push(ops[rng.below(ops.len() as u64) as usize]);
            if rng.below(3) == 0 {
                b.push(rng.below(256) as u8);
            }
        }
        match pickle::loads(&b) {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
    }
    println!("pickle: {ok} ok, {err} clean errors");
    assert!(ok > 0 && err > 0);
}

#[test]
fn npy_and_npz_files() {
    needs_shared!();
    let mut rng = Rng::new(14);
    let d = tempdir("fuzz-npz");
    let npz = std::fs::read(yt8m_data("golden/synthetic_few_classes.npz")).unwrap();
    let original =
        yt8m::data::npy::read_npz(&yt8m_data("golden/synthetic_few_classes.npz")).unwrap();
    let mut npy = Vec::new();
    yt8m::data::npy::write_npy(&mut npy, &[4, 6], "<f4", &[0u8; 96]).unwrap();
    let (pz, py) = (d.join("m.npz"), d.join("m.npy"));
    let (mut ok, mut err) = (0, 0);
    for _ in 0..cases(2000) {
        let mut b = npz.clone();
        mutate(&mut b, &mut rng, 4);
        std::fs::write(&pz, &b).unwrap();
        // No silent wrong answer (issue #26): whatever still reads holds the original arrays
        // (every member's CRC-32 is checked; a renamed member is refused later, by name).
        if let Ok(arrays) = yt8m::data::npy::read_npz(&pz) {
            for (name, a) in &arrays {
                if let Some((_, o)) = original.iter().find(|(n, _)| n == name) {
                    assert!(
                        a.shape == o.shape && a.dtype == o.dtype && a.data == o.data,
                        "a mutated .npz read as different '{name}' data without an error"
                    );
                }
            }
        }
        match yt8m::evaluate::read_npz(&pz) {
            Ok(s) => {
                ok += 1;
                let _ = s.evaluate(&Default::default());
            }
            Err(_) => err += 1,
        }
        let mut b = npy.clone();
        mutate(&mut b, &mut rng, 3);
        std::fs::write(&py, &b).unwrap();
        match yt8m::data::npy::read_npy(&py) {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
    }
    println!("npy/npz: {ok} ok, {err} clean errors");
    assert!(err > 0);
}

#[test]
fn safetensors_and_bundle_manifests() {
    let mut rng = Rng::new(15);
    let d = tempdir("fuzz-st");
    let cfg =
        yt8m::config::Config::load(Some(&repo().join("configs/tiny_test.yaml")), &[]).unwrap();
    let mut model = yt8m::model::Model::new(cfg.architecture(), tch::Device::Cpu, tch::Kind::Float);
    let st = d.join("w.safetensors");
    model.save_safetensors(&st).unwrap();
    let good = std::fs::read(&st).unwrap();
    let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let m = d.join("m.safetensors");
    let (mut ok, mut err) = (0, 0);
    for _ in 0..cases(1000) {
        let mut b = good.clone();
        // Mostly the header (8-byte length + JSON), where the structure lives.
        let mut head = b[..8 + header_len].to_vec();
        mutate(&mut head, &mut rng, 4);
        b.splice(..8 + header_len, head);
        std::fs::write(&m, &b).unwrap();
        match model.load_safetensors(&m) {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
    }
    println!("safetensors: {ok} ok, {err} clean errors");
    assert!(err > 0);

    // bundle.json: a real bundle, its manifest text mutated.
    let bundle = d.join("bundle");
    let o = std::process::Command::new(bin())
        .args(["export", "-c"])
        .arg(repo().join("configs/tiny_test.yaml"))
        .arg("-w")
        .arg(&st)
        .arg("--out")
        .arg(&bundle)
        .arg("--no-onnx")
        .env("YT8M_THREADS", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let man = std::fs::read(bundle.join("bundle.json")).unwrap();
    let (mut ok, mut err) = (0, 0);
    for _ in 0..cases(300) {
        let mut b = man.clone();
        mutate(&mut b, &mut rng, 3);
        std::fs::write(bundle.join("bundle.json"), &b).unwrap();
        match yt8m::bundle::load(&bundle, tch::Device::Cpu) {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
    }
    println!("bundle.json: {ok} ok, {err} clean errors");
    assert!(err > 0);
}

/// `cases(n)` mutations of the text file `base`, each written to a file and given to
/// `read`, which says whether it was read (true) or refused cleanly (false); both must happen.
fn fuzz_text_file(
    what: &str,
    seed: u64,
    n: usize,
    base: &[u8],
    mut read: impl FnMut(&Path, &mut Rng) -> bool,
) {
    let mut rng = Rng::new(seed);
    let p = tempdir(&format!("fuzz-{seed}")).join("s.csv");
    let (mut ok, mut err) = (0, 0);
    for _ in 0..cases(n) {
        let mut b = base.to_vec();
        mutate(&mut b, &mut rng, 5);
        std::fs::write(&p, &b).unwrap();
        if read(&p, &mut rng) {
            ok += 1;
        } else {
            err += 1;
        }
    }
    println!("{what}: {ok} read, {err} clean errors");
    assert!(ok > 0 && err > 0);
}

#[test]
fn kaggle_csv_lines() {
    needs_shared!();
    let labels = vec![
        yt8m_data("synthetic/video_2018.tfrecord")
            .display()
            .to_string(),
    ];
    let base = b"VideoId,LabelConfidencePairs\nabc,1 0.5 2 0.25\nxyz,3 1e-3 3861 0.9\n";
    fuzz_text_file("kaggle csv", 16, 1500, base, |p, _| {
        match yt8m::evaluate::read_kaggle_with_labels(p, &labels, 3862) {
            Ok((s, _)) => {
                let _ = yt8m::evaluate::evaluate_dense(&s, &Default::default());
                true
            }
            Err(_) => false,
        }
    });
}

/// Mutated segment submissions (issue #31): scored or refused cleanly, never a panic.
#[test]
fn segment_submission_lines() {
    needs_shared!();
    let rated =
        yt8m::segments::read_rated_segments(&[yt8m_data("synthetic/segment_2019.tfrecord")])
            .unwrap();
    let base = b"Class,Segments\n1562,BEaa:5 o5aa:0 BEaa:10\n25,Bnaa:0 x:5\n3,raaa:10 raaa:15\n";
    fuzz_text_file("segment submissions", 31, 1500, base, |p, rng| {
        let rule = if rng.below(2) == 0 {
            yt8m::segments::SegmentList::Official
        } else {
            yt8m::segments::SegmentList::Complete
        };
        match yt8m::segments::evaluate_submission(p, &rated, rng.below(4) as usize, rule) {
            Ok(r) => {
                assert!(r.map.is_finite() && r.map >= 0.0, "{r:?}");
                true
            }
            Err(_) => false,
        }
    });
}

/// Mutated REST inference requests (the Open Inference Protocol's JSON, with and without
/// Triton's binary tail): parsed or refused with a 400 message, never a panic.
#[test]
fn rest_inference_requests() {
    use axum::http::{HeaderMap, HeaderValue};
    let mut rng = Rng::new(14);
    let json = br#"{"id":"r1","inputs":[{"name":"rgb","datatype":"UINT8","shape":[1,2,4],"data":[[1,2,3,4],[5,6,7,8]]},{"name":"lengths","datatype":"INT64","shape":[1],"data":[2]},{"name":"tfrecord","datatype":"BYTES","shape":[1],"data":["AAAA"]}],"outputs":[{"name":"top_k_classes","parameters":{"binary_data":true}}],"parameters":{"top_k":3,"binary_data_output":false}}"#;
    let head = br#"{"inputs":[{"name":"audio","datatype":"FP32","shape":[1,1,2],"parameters":{"binary_data_size":8}},{"name":"tfrecord","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":7}}]}"#;
    let mut binary = head.to_vec();
    binary.extend_from_slice(&[0, 0, 128, 63, 0, 0, 0, 64]);
    binary.extend_from_slice(&[3, 0, 0, 0, b'a', b'b', b'c']);
    let (mut ok, mut err) = (0, 0);
    for _ in 0..cases(3000) {
        let with_tail = rng.below(2) == 0;
        let mut b = if with_tail {
            binary.clone()
        } else {
            json.to_vec()
        };
        mutate(&mut b, &mut rng, 4);
        let mut h = HeaderMap::new();
        if with_tail {
            // The header length as sent, or a lie.
            let n = if rng.below(4) == 0 {
                rng.below(b.len() as u64 + 8) as usize
            } else {
                head.len()
            };
            h.insert("inference-header-content-length", HeaderValue::from(n));
        }
        match yt8m::serve::kserve::parse(&h, &b, 1 << 20) {
            Ok(r) => {
                ok += 1;
                // What parses holds exactly the values its shape says.
                for i in &r.inputs {
                    use yt8m::serve::tensor::Values;
                    let n = match &i.values {
                        Values::U8(v) => v.len(),
                        Values::I64(v) => v.len(),
                        Values::F32(v) => v.len(),
                        Values::Bytes(v) => v.len(),
                    };
                    assert_eq!(n, i.shape.iter().product::<usize>(), "{}", i.name);
                }
            }
            Err(e) => {
                err += 1;
                assert!(!e.0.is_empty());
            }
        }
    }
    println!("REST requests: {ok} parsed, {err} refused with a message");
    assert!(ok > 0 && err > 0);
}

/// Mutated configs (issue #26): every config in configs/ with random byte edits, and deeply
/// nested or oversized values, must load or fail cleanly, and quickly (the YAML parser was
/// quadratic in nesting depth: 100k '[' took over 30 s).
#[test]
fn yaml_configs() {
    let mut rng = Rng::new(26);
    let dir = repo().join("configs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let (mut ok, mut err) = (0, 0);
    let t = std::time::Instant::now();
    for f in &files {
        let text = std::fs::read(f).unwrap();
        for i in 0..cases(150) {
            let mut b = text.clone();
            mutate(&mut b, &mut rng, 6);
            if i % 25 == 0 {
                // A runaway nesting somewhere in the file.
                let at = rng.below(b.len() as u64 + 1) as usize;
                let open = if rng.below(2) == 0 { b'[' } else { b'{' };
                b.splice(at..at, std::iter::repeat_n(open, 50_000));
            }
            let Ok(s) = String::from_utf8(b) else {
                continue;
            };
            let one = std::time::Instant::now();
            match yt8m::config::Config::from_yaml("fuzz.yaml", &s, &[]) {
                Ok(_) => ok += 1,
                Err(_) => err += 1,
            }
            assert!(
                one.elapsed() < std::time::Duration::from_secs(2),
                "{}: one config took {:?}",
                f.display(),
                one.elapsed()
            );
        }
    }
    println!(
        "configs: {ok} loaded, {err} clean errors in {:?}",
        t.elapsed()
    );
    assert!(err > 0 && ok > 0);
}
