//! bf16 inference quality (issue #15): the full-size AttentionLSTM (PaddleVideo's widths, seeded
//! random weights) on the real PaddleVideo example video and synthetic videos of many lengths
//! must rank the same classes as float32 (top-20 overlap ≥ 19/20) with probabilities within
//! 1e-2. Speed is measured by `yt8m bench predict --precision fp32,bf16`, not here.

mod common;
use common::*;
use yt8m::config::Config;
use yt8m::data::batch::Batch;
use yt8m::model::{Model, batch_inputs, widen};

#[test]
fn full_size_model_in_bf16_ranks_like_fp32() {
    needs_shared!();
    yt8m::threads::configure_torch_threads();
    let cfg = Config::load(
        Some(&repo().join("configs/attention_lstm_youtube8m.yaml")),
        &[],
    )
    .unwrap();
    let spec = cfg.feature_spec();
    let mut vids =
        yt8m::data::sources::read_paddle_pickle(&yt8m_data("real/paddlevideo_example.pkl"), &spec)
            .unwrap();
    let d = tempdir("bf16");
    synth_shards(&d, 12, 1, 5, 300);
    yt8m::data::sources::read_shard(&d.join("train0000.tfrecord"), &spec, false, |v| {
        vids.push(v);
        true
    })
    .unwrap();
    tch::manual_seed(7);
    let mut m = Model::new(cfg.architecture(), tch::Device::Cpu, tch::Kind::Float);
    let batch = Batch::from_videos(&vids, &spec);
    let probs = |m: &Model| {
        tch::no_grad(|| {
            widen(m.forward(&batch_inputs(&batch, m.device(), m.kind), false)).sigmoid()
        })
    };
    let p32 = probs(&m);
    m.set_compute_kind(tch::Kind::BFloat16);
    let p16 = probs(&m);
    let maxd = (&p32 - &p16).abs().max().double_value(&[]);
    let (_, i32s) = p32.topk(20, 1, true, true);
    let (_, i16s) = p16.topk(20, 1, true, true);
    let mut worst = 20;
    for r in 0..vids.len() as i64 {
        let a: Vec<i64> = Vec::try_from(i32s.get(r)).unwrap();
        let b: Vec<i64> = Vec::try_from(i16s.get(r)).unwrap();
        worst = worst.min(a.iter().filter(|x| b.contains(x)).count());
    }
    println!(
        "{} videos (real example + synthetic, 1–300 frames): max |p32 − p16| = {maxd:.2e}, worst top-20 overlap {worst}/20",
        vids.len()
    );
    assert!(maxd <= 1e-2, "{maxd}");
    assert!(worst >= 19, "{worst}");
}
