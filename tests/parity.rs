//! Numerical parity with PaddleVideo's own AttentionLstmHead (shared/data/paddle_parity):
//! set A (forward, intermediates, loss, gradients), set B (three RMSProp steps), set C
//! (.pdparams conversion). Prints the max difference per tensor, llm.c style.

mod common;
use common::*;
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};
use yt8m::model::attention_lstm::NO_DECAY;
use yt8m::model::bce_sum;
use yt8m::model::{AttentionLstmConfig, Model};
use yt8m::optim::{Optimizer, RmsPropConfig};

fn npz(name: &str) -> HashMap<String, Tensor> {
    Tensor::read_npz(parity(name))
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.trim_end_matches(".npy").to_string(), v))
        .collect()
}

fn cfg() -> AttentionLstmConfig {
    AttentionLstmConfig {
        num_classes: 11,
        feature_dims: vec![24, 8],
        embedding_size: 6,
        lstm_size: 5,
        fc_out1_size: 16,
        fc_out2_size: 12,
        dropout: 0.0,
    }
}

fn model(kind: Kind) -> Model {
    let mut m = Model::new(cfg(), test_device(), kind);
    let w: Vec<(String, Tensor)> = npz("a_weights.npz").into_iter().collect();
    assert_eq!(w.len(), 30);
    m.load_named("a_weights.npz", &w).unwrap();
    m
}

/// max |a - b| and max |a - b| / (|b| + tiny).
fn diff(a: &Tensor, b: &Tensor) -> (f64, f64) {
    let a = a.to_kind(Kind::Double).to_device(Device::Cpu);
    let b = b.to_kind(Kind::Double).to_device(Device::Cpu);
    assert_eq!(a.size(), b.size());
    let d = (&a - &b).abs();
    let abs = d.max().double_value(&[]);
    let rel = (d / (b.abs() + 1e-6)).max().double_value(&[]);
    (abs, rel)
}

fn check(name: &str, got: &Tensor, want: &Tensor, atol: f64) {
    let (abs, rel) = diff(got, want);
    println!("{name:42} max abs diff {abs:9.2e}  rel {rel:9.2e}  (tol {atol:.0e})");
    assert!(abs <= atol, "{name}: max abs diff {abs:e} > {atol:e}");
}

struct Run {
    logits: Tensor,
    loss: Tensor,
    trace: yt8m::model::attention_lstm::Trace,
}

fn run(m: &Model, f: &HashMap<String, Tensor>, kind: Kind) -> Run {
    let dev = test_device();
    let feats = [
        f["input/rgb_data"].to_kind(kind).to_device(dev),
        f["input/audio_data"].to_kind(kind).to_device(dev),
    ];
    let len = &f["input/rgb_len"].to_device(dev);
    // LSTM in train mode (as the fixture's gradient pass), dropout 0 in the config.
    let (logits, trace) = m
        .attention_lstm()
        .unwrap()
        .forward_features(&feats, len, true, true);
    let loss = bce_sum(&logits, &f["input/labels"].to_kind(kind).to_device(dev));
    Run {
        logits,
        loss,
        trace: trace.unwrap(),
    }
}

fn set_a(kind: Kind, atol: f64, grad_atol: f64) {
    let m = model(kind);
    let f = npz("a_forward.npz");
    let r = run(&m, &f, kind);
    check("out/logits", &r.logits, &f["out/logits"], atol);
    check("out/probs", &r.logits.sigmoid(), &f["out/probs"], atol);
    for i in 0..2 {
        check(
            &format!("out/fc_feature{i}_out"),
            &r.trace.fc_feature[i],
            &f[&format!("out/fc_feature{i}_out")],
            atol,
        );
        check(
            &format!("out/bi_lstm{i}_out"),
            &r.trace.bi_lstm[i],
            &f[&format!("out/bi_lstm{i}_out")],
            atol,
        );
        check(
            &format!("out/att_fc{i}_out"),
            &r.trace.att_fc[i],
            &f[&format!("out/att_fc{i}_out")],
            atol,
        );
    }
    check("out/att_out", &r.trace.att_out, &f["out/att_out"], atol);
    check(
        "out/fc_out1_out",
        &r.trace.fc_out1,
        &f["out/fc_out1_out"],
        atol,
    );
    check(
        "out/fc_out2_out",
        &r.trace.fc_out2,
        &f["out/fc_out2_out"],
        atol,
    );
    let want_loss = f["out/loss"].double_value(&[]);
    let got_loss = r.loss.double_value(&[]);
    println!(
        "{:42} {got_loss:.15} vs {want_loss:.15} (diff {:.2e})",
        "out/loss",
        (got_loss - want_loss).abs()
    );
    assert!((got_loss - want_loss).abs() <= atol * want_loss.abs().max(1.0));
    r.loss.backward();
    let mut n = 0;
    for (name, var) in m.named_variables() {
        let g = var.grad();
        check(
            &format!("grad/{name}"),
            &g,
            &f[&format!("grad/{name}")],
            grad_atol,
        );
        n += 1;
    }
    assert_eq!(n, 30);
}

#[test]
fn set_a_float64_forward_intermediates_loss_gradients() {
    needs_shared!();
    set_a(Kind::Double, 1e-12, 1e-12);
}

#[test]
fn set_a_float32_within_relative_1e5() {
    needs_shared!();
    // f32: relative error ~1e-6 on values of order 1–40 (loss 35.9).
    set_a(Kind::Float, 2e-5, 2e-5);
}

#[test]
fn set_b_three_rmsprop_steps_float64() {
    needs_shared!();
    let m = model(Kind::Double);
    let f = npz("a_forward.npz");
    let b = npz("b_rmsprop.npz");
    let params = m.named_variables().into_iter().map(|(n, t)| {
        let l2 = if NO_DECAY.contains(&n.as_str()) {
            0.0
        } else {
            4e-4
        };
        (n, t, l2)
    });
    let mut opt = Optimizer::rms_prop(RmsPropConfig::default(), params.collect());
    let steps = b["num_steps"].int64_value(&[]);
    for k in 0..steps {
        opt.zero_grad();
        let r = run(&m, &f, Kind::Double);
        let want = b[&format!("step{k}/loss")].double_value(&[]);
        let got = r.loss.double_value(&[]);
        println!("step {k} loss {got:.15} vs {want:.15}");
        assert!((got - want).abs() < 1e-11);
        r.loss.backward();
        for p in &opt.params {
            check(
                &format!("step{k}/grad/{}", p.name),
                &p.param.grad(),
                &b[&format!("step{k}/grad/{}", p.name)],
                1e-12,
            );
        }
        opt.step(2.5e-4, k as u64 + 1);
        for p in &opt.params {
            check(
                &format!("step{k}/param/{}", p.name),
                &p.param,
                &b[&format!("step{k}/param/{}", p.name)],
                1e-12,
            );
            check(
                &format!("step{k}/mean_square/{}", p.name),
                &p.slots[0],
                &b[&format!("step{k}/mean_square/{}", p.name)],
                1e-12,
            );
            check(
                &format!("step{k}/mean_grad/{}", p.name),
                &p.slots[1],
                &b[&format!("step{k}/mean_grad/{}", p.name)],
                1e-12,
            );
            check(
                &format!("step{k}/momentum/{}", p.name),
                &p.slots[2],
                &b[&format!("step{k}/momentum/{}", p.name)],
                1e-12,
            );
        }
    }
    let r = run(&m, &f, Kind::Double);
    let want = b["final_loss"].double_value(&[]);
    println!("final loss {:.15} vs {want:.15}", r.loss.double_value(&[]));
    assert!((r.loss.double_value(&[]) - want).abs() < 1e-11);
}

#[test]
fn set_c_pdparams_convert_to_the_same_logits() {
    needs_shared!();
    let f = npz("a_forward.npz");
    for file in ["c_head.pdparams", "c_recognizer1d.pdparams"] {
        let dir = tempdir("convert");
        let out = dir.join("w.safetensors");
        let names = yt8m::convert::convert_pdparams(&parity(file), &out).unwrap();
        assert_eq!(names.len(), 30, "{file}: canonical tensors");
        let mut m = Model::new(cfg(), test_device(), Kind::Double);
        m.load_safetensors(&out).unwrap();
        let r = run(&m, &f, Kind::Double);
        check(
            &format!("{file} → logits"),
            &r.logits,
            &f["out/logits"],
            1e-6,
        );
    }
}

#[test]
fn weights_of_another_shape_are_refused_with_both_shapes() {
    needs_shared!();
    let dir = tempdir("shape");
    let out = dir.join("w.safetensors");
    yt8m::convert::convert_pdparams(&parity("c_head.pdparams"), &out).unwrap();
    let other = AttentionLstmConfig {
        lstm_size: 7,
        ..cfg()
    };
    let mut m = Model::new(other.clone(), Device::Cpu, Kind::Float);
    let e = m.load_safetensors(&out).unwrap_err().to_string();
    println!("{e}");
    assert!(
        e.contains("att_fc0.weight") && e.contains("[10, 1]") && e.contains("[14, 1]"),
        "{e}"
    );
}
