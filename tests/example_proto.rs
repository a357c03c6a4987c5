//! The hand-written Example / SequenceExample decoder (`yt8m-data`'s `proto`, which borrows
//! frames without allocating; the read benchmark rests on it) checked against prost-generated
//! style decoding of TensorFlow's schema (tensorflow/core/example/{example,feature}.proto):
//! real records, our encoder's output, random messages and mutated bytes must decode to the
//! same ids, labels, floats and frames whenever both decoders accept them.

mod common;
use common::*;
use prost::Message;
use std::collections::HashMap;
use yt8m::data::proto::{Feature as Ours, for_each_in_list, parse_example};
use yt8m::rng::Rng;

#[derive(Clone, PartialEq, prost::Message)]
struct BytesList {
    #[prost(bytes = "vec", repeated, tag = "1")]
    value: Vec<Vec<u8>>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct FloatList {
    #[prost(float, repeated, tag = "1")]
    value: Vec<f32>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct Int64List {
    #[prost(int64, repeated, tag = "1")]
    value: Vec<i64>,
}
#[derive(Clone, PartialEq, prost::Oneof)]
enum Kind {
    #[prost(message, tag = "1")]
    BytesList(BytesList),
    #[prost(message, tag = "2")]
    FloatList(FloatList),
    #[prost(message, tag = "3")]
    Int64List(Int64List),
}
#[derive(Clone, PartialEq, prost::Message)]
struct Feature {
    #[prost(oneof = "Kind", tags = "1, 2, 3")]
    kind: Option<Kind>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct Features {
    #[prost(map = "string, message", tag = "1")]
    feature: HashMap<String, Feature>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct FeatureList {
    #[prost(message, repeated, tag = "1")]
    feature: Vec<Feature>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct FeatureLists {
    #[prost(map = "string, message", tag = "1")]
    feature_list: HashMap<String, FeatureList>,
}
/// `Example` is `SequenceExample` without field 2, so one type decodes both.
#[derive(Clone, PartialEq, prost::Message)]
struct SequenceExample {
    #[prost(message, optional, tag = "1")]
    context: Option<Features>,
    #[prost(message, optional, tag = "2")]
    feature_lists: Option<FeatureLists>,
}

/// A feature in a comparable form.
#[derive(Debug, PartialEq)]
enum F {
    Bytes(Vec<Vec<u8>>),
    Float(Vec<u32>), // bit patterns: NaN == NaN
    Int64(Vec<i64>),
    Empty,
}

fn from_ours(f: &Ours) -> F {
    match f {
        Ours::Bytes(v) => F::Bytes(v.iter().map(|b| b.to_vec()).collect()),
        Ours::Float(v) => F::Float(v.iter().map(|x| x.to_bits()).collect()),
        Ours::Int64(v) => F::Int64(v.clone()),
        Ours::Empty => F::Empty,
    }
}

fn from_prost(f: &Feature) -> F {
    match &f.kind {
        Some(Kind::BytesList(b)) => F::Bytes(b.value.clone()),
        Some(Kind::FloatList(b)) => F::Float(b.value.iter().map(|x| x.to_bits()).collect()),
        Some(Kind::Int64List(b)) => F::Int64(b.value.clone()),
        None => F::Empty,
    }
}

/// Compares both decodings when both accept `bytes`; returns whether they did.
fn agree(bytes: &[u8]) -> bool {
    let (Ok(ours), Ok(theirs)) = (parse_example(bytes), SequenceExample::decode(bytes)) else {
        return false;
    };
    let ctx = theirs.context.unwrap_or_default();
    // Keys: prost's map keeps the last entry of a key, as `feature()` does.
    let mut our_keys: Vec<String> = ours.keys();
    our_keys.sort();
    our_keys.dedup();
    let mut their_keys: Vec<String> = ctx.feature.keys().cloned().collect();
    their_keys.sort();
    if our_keys != their_keys {
        // prost refuses non-UTF-8 keys; ours keeps them as bytes (lossy in keys()).
        return false;
    }
    for (k, f) in &ctx.feature {
        let o = ours.feature(k).expect("key present");
        assert_eq!(from_ours(o), from_prost(f), "feature '{k}'");
    }
    let lists = theirs.feature_lists.unwrap_or_default();
    for (k, l) in &lists.feature_list {
        let raw = ours.feature_list(k).expect("list present");
        let mut got = Vec::new();
        for_each_in_list(raw, |_, f| {
            got.push(from_ours(&f));
            Ok(())
        })
        .expect("a list prost accepted");
        let want: Vec<F> = l.feature.iter().map(from_prost).collect();
        assert_eq!(got, want, "feature list '{k}'");
    }
    assert_eq!(ours.is_sequence, !lists.feature_list.is_empty());
    true
}

fn records(p: &std::path::Path, max: usize) -> Vec<Vec<u8>> {
    let mut r = yt8m::data::tfrecord::RecordReader::open(p).unwrap();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while out.len() < max && r.next_into(&mut buf).unwrap().is_some() {
        out.push(buf.clone());
    }
    out
}

fn real_records() -> Vec<Vec<u8>> {
    let mut v = records(&yt8m_data("synthetic/frame_2018.tfrecord"), 100);
    v.extend(records(&yt8m_data("synthetic/video_2018.tfrecord"), 100));
    v.extend(records(&yt8m_data("real/validate0000.tfrecord"), 200));
    v.extend(records(
        &yt8m_data("derived/paddle_SjJ3_frame.tfrecord"),
        10,
    ));
    v
}

#[test]
fn real_and_synthetic_records_decode_alike() {
    needs_shared!();
    let recs = real_records();
    for r in &recs {
        assert!(agree(r), "a real record one decoder refused");
    }
    println!("{} records decoded alike", recs.len());
}

#[test]
fn random_messages_encoded_by_prost_decode_alike_and_ours_encode_for_prost() {
    let mut rng = Rng::new(21);
    for case in 0..2000 {
        let mut ctx = Features::default();
        let nkeys = rng.below(5) as usize;
        for k in 0..nkeys {
            let f = match rng.below(4) {
                0 => Feature {
                    kind: Some(Kind::BytesList(BytesList {
                        value: (0..rng.below(3))
                            .map(|i| vec![i as u8; rng.below(9) as usize])
                            .collect(),
                    })),
                },
                1 => Feature {
                    kind: Some(Kind::FloatList(FloatList {
                        value: (0..rng.below(6)).map(|_| rng.normal() as f32).collect(),
                    })),
                },
                2 => Feature {
                    kind: Some(Kind::Int64List(Int64List {
                        value: (0..rng.below(6))
                            .map(|_| rng.next_u64() as i64 >> rng.below(64))
                            .collect(),
                    })),
                },
                _ => Feature { kind: None },
            };
            ctx.feature.insert(format!("k{k}"), f);
        }
        let mut lists = FeatureLists::default();
        if case % 2 == 0 {
            for k in 0..rng.below(3) {
                let frames = (0..rng.below(5))
                    .map(|_| Feature {
                        kind: Some(Kind::BytesList(BytesList {
                            value: vec![(0..rng.below(7)).map(|_| rng.below(256) as u8).collect()],
                        })),
                    })
                    .collect();
                lists
                    .feature_list
                    .insert(format!("l{k}"), FeatureList { feature: frames });
            }
        }
        let msg = SequenceExample {
            context: Some(ctx),
            feature_lists: (case % 2 == 0).then_some(lists),
        };
        assert!(agree(&msg.encode_to_vec()), "case {case}");
    }
    // Our encoder's output (what `yt8m synth` writes) decodes in prost.
    let ex = yt8m::data::proto::encode_example(&[
        (
            "id",
            yt8m::data::proto::encode_feature(&yt8m::data::proto::EncFeature::Bytes(vec![b"ab"])),
        ),
        (
            "labels",
            yt8m::data::proto::encode_feature(&yt8m::data::proto::EncFeature::Int64(&[
                3, -1, 3861,
            ])),
        ),
        (
            "mean_rgb",
            yt8m::data::proto::encode_feature(&yt8m::data::proto::EncFeature::Float(&[0.5, -2.0])),
        ),
    ]);
    assert!(agree(&ex));
}

#[test]
fn mutated_records_decode_alike_whenever_both_accept_them() {
    needs_shared!();
    let mut rng = Rng::new(22);
    let recs: Vec<Vec<u8>> = real_records()
        .into_iter()
        .filter(|r| r.len() < 20_000)
        .collect();
    let (mut both, mut total) = (0, 0);
    for case in 0..20_000 {
        let mut b = recs[case % recs.len()].clone();
        for _ in 0..1 + rng.below(3) {
            let i = rng.below(b.len() as u64) as usize;
            match rng.below(3) {
                0 => b[i] ^= 1 << rng.below(8),
                1 => b[i] = rng.below(256) as u8,
                _ => {
                    b.remove(i);
                }
            }
        }
        total += 1;
        if agree(&b) {
            both += 1;
        }
    }
    println!("{both} of {total} mutated records accepted by both decoders, and decoded alike");
    assert!(both > 100);
}
