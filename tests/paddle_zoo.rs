//! NeXtVLAD and AttentionCluster against PaddlePaddle's legacy video zoo run in paddlepaddle
//! 2.6.2 (`scripts/paddle_zoo_parity.py`: PaddlePaddle/models `PaddleCV/video` @0173b12c
//! behind a `paddle.fluid` shim; fixtures in tests/fixtures/paddle_zoo). The fixture's uint8
//! frames go through our own batch upload and the head's forward with Paddle's variables
//! loaded; logits, the upstream loss, every gradient, batch norm's moving statistics, one step
//! of Paddle's Adam (with the L2 decay where upstream sets it) and inference after the step
//! (dropout's `downgrade_in_infer`, moving statistics) must match. Float32 on both sides (the
//! upstream code casts to float32 itself), so tolerances are float32's.

mod common;
use common::*;
use tch::{Device, Kind, Tensor};
use yt8m::config::Config;
use yt8m::model::{AttentionClusterConfig, Inputs, Model, NextVladConfig};
use yt8m::optim::{AdamVariant, Algorithm, Optimizer};

fn usize_of(f: &Fixture, key: &str) -> usize {
    f.meta[key].as_u64().unwrap() as usize
}

/// The upstream loss: sigmoid cross-entropy summed over classes, mean over videos.
fn bce_mean(logits: &Tensor, labels: &Tensor) -> Tensor {
    yt8m::model::bce_sum(logits, labels) / logits.size()[0] as f64
}

/// One step of Paddle's Adam at learning rate `lr` on the gradients in `.grad()`, L2 decay
/// `l2` on the variables the head decays.
fn paddle_step(m: &Model, lr: f64, l2: f64) {
    let mut opt = Optimizer::new(
        Algorithm::Adam {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            variant: AdamVariant::Paddle,
        },
        m.param_groups(l2),
    );
    opt.step(lr, 1);
}

/// Loads the fixture's Paddle variables (`prefix/…`) under our names.
fn load(m: &Model, f: &Fixture, prefix: &str, rename: impl Fn(&str) -> String) {
    let mut n = 0;
    for key in f.arrays.keys() {
        if let Some(paddle) = key.strip_prefix(prefix) {
            set(m, &rename(paddle), &f.f32(key));
            n += 1;
        }
    }
    assert!(n > 0, "no {prefix} arrays");
}

/// Paddle's automatic batch-norm names in NeXtVLAD's build order → ours.
fn nextvlad_name(paddle: &str) -> String {
    let Some(rest) = paddle.strip_prefix("batch_norm_") else {
        return paddle.to_string();
    };
    let (i, part) = rest.split_once('.').unwrap();
    let layer = [
        "video_cluster_bn",
        "video_vlad_bn",
        "audio_cluster_bn",
        "audio_vlad_bn",
        "hidden1_bn",
        "gating_bn",
    ][i.parse::<usize>().unwrap()];
    let what = match part {
        "w_0" => "scale",
        "b_0" => "bias",
        "w_1" => "mean",
        "w_2" => "variance",
        p => panic!("batch norm part {p}"),
    };
    format!("{layer}.{what}")
}

/// Every fixture array under `prefix` against our variable (or its gradient):
/// `max |ours − theirs| ≤ atol + rel · max |theirs|` per tensor (float32 through batch norms
/// of a few videos: errors scale with the tensor, not with each element).
fn check_all(
    m: &Model,
    f: &Fixture,
    prefix: &str,
    rename: impl Fn(&str) -> String,
    grad: bool,
    atol: f64,
    rel: f64,
) {
    let mut keys: Vec<&String> = f.arrays.keys().filter(|k| k.starts_with(prefix)).collect();
    keys.sort();
    assert!(!keys.is_empty(), "no {prefix} arrays");
    for key in keys {
        let ours = var(m, &rename(&key[prefix.len()..]));
        let ours = if grad { ours.grad() } else { ours };
        let theirs = f.f32(key);
        let d = max_diff(&ours, &theirs);
        let scale = theirs.abs().max().double_value(&[]);
        println!("{key}: max |diff| {d:.3e} (max |ref| {scale:.3e})");
        assert!(
            d <= atol + rel * scale,
            "{key}: max |diff| {d:.3e} exceeds {atol:e} + {rel:e}·{scale:.3e}"
        );
    }
}

/// After one Adam step from the fixture's `var/`: variables whose gradient is 0 analytically
/// (`noise`) — float noise of ~1e-8 on both sides, which Adam's first step turns into
/// ±lr·g/(|g| + ε) — moved by at most lr; every other one equals Paddle's.
fn check_step(m: &Model, f: &Fixture, rename: impl Fn(&str) -> String, noise: &[&str], lr: f64) {
    let mut keys: Vec<&String> = f.arrays.keys().filter(|k| k.starts_with("step/")).collect();
    keys.sort();
    for key in keys {
        let paddle = &key["step/".len()..];
        let ours = var(m, &rename(paddle));
        let before = f.f32(&format!("var/{paddle}"));
        if noise.contains(&paddle) {
            let moved = max_diff(&ours, &before);
            let theirs = max_diff(&f.f32(key), &before);
            println!("{key}: moved {moved:.3e} (Paddle {theirs:.3e}), bound lr = {lr:e}");
            assert!(moved <= lr * 1.0001 && theirs <= lr * 1.0001, "{key}");
        } else {
            close(key, &ours, &f.f32(key), 1e-7, 1e-5);
        }
    }
}

fn nextvlad_model(f: &Fixture, drop_rate: f64) -> Model {
    Model::new(
        NextVladConfig {
            num_classes: f.classes(),
            feature_dims: f.dims(),
            cluster_size: usize_of(f, "cluster_size"),
            hidden_size: usize_of(f, "hidden_size"),
            groups: usize_of(f, "groups"),
            expansion: usize_of(f, "expansion"),
            gating_reduction: usize_of(f, "gating_reduction"),
            drop_rate,
        },
        test_device(),
        Kind::Float,
    )
}

#[test]
fn nextvlad_equals_the_legacy_paddle_zoo() {
    // Every test here draws from (or seeds) libtorch's one generator.
    let _rng = torch_rng();
    let f = load_fixture("paddle_zoo", "nextvlad");
    let m = nextvlad_model(&f, 0.0);
    load(&m, &f, "var/", nextvlad_name);
    load(&m, &f, "state/", nextvlad_name);
    // The eigenvalue file goes through the config's path (√e + 1e-4, as upstream).
    let dir = tempdir("paddle-zoo-eigen");
    let eig = dir.join("eigenvals.npy");
    f.f32("eigenvals").write_npy(&eig).unwrap();
    let net: &yt8m::model::NextVlad = m.network_as().unwrap();
    net.load_eigenvalues(&eig).unwrap();
    let want = f.f32("eigenvals").view([-1]).sqrt() + 1e-4;
    close("eigen_param", net.eigen_scale(), &want, 0.0, 2e-7);

    let inp: Inputs = f.inputs_on(test_device());
    let logits = m.forward(&inp, true);
    close("logits", &logits, &f.f32("logits"), 2e-6, 2e-5);
    let loss = bce_mean(&logits, &inp.labels);
    close(
        "loss",
        &loss,
        &Tensor::from(f.scalar("loss") as f32),
        0.0,
        1e-6,
    );
    // Paddle's moving variance follows the population variance (libtorch's would not).
    check_all(&m, &f, "state_after/", nextvlad_name, false, 1e-7, 1e-6);
    loss.backward();
    check_all(&m, &f, "grad/", nextvlad_name, true, 1e-7, 1e-4);

    let l2 = f.meta["l2_penalty"].as_f64().unwrap();
    let lr = f.meta["learning_rate"].as_f64().unwrap();
    paddle_step(&m, lr, l2);
    // The VLAD batch norms' shifts feed hidden1_fc, whose output is batch-normalised: a
    // constant shift there cancels, so their gradients are 0 analytically.
    check_step(
        &m,
        &f,
        nextvlad_name,
        &["batch_norm_1.b_0", "batch_norm_3.b_0"],
        lr,
    );

    // Inference after the step: dropout 0.5 scales by 0.5, batch norm on the moving
    // statistics.
    let e = nextvlad_model(&f, f.meta["drop_rate"].as_f64().unwrap());
    load(&e, &f, "step/", nextvlad_name);
    load(&e, &f, "state_after/", nextvlad_name);
    set(&e, "eigen_param", net.eigen_scale());
    let p = tch::no_grad(|| e.forward(&inp, false)).sigmoid();
    close(
        "test_predictions",
        &p,
        &f.f32("test_predictions"),
        1e-6,
        1e-5,
    );
}

fn cluster_model(f: &Fixture, drop_rate: f64) -> Model {
    let nums = f.meta["cluster_nums"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    Model::new(
        AttentionClusterConfig {
            num_classes: f.classes(),
            feature_dims: f.dims(),
            seg_num: usize_of(f, "seg_num"),
            cluster_nums: nums,
            fc1_size: usize_of(f, "fc1_size"),
            fc2_size: usize_of(f, "fc2_size"),
            drop_rate,
        },
        test_device(),
        Kind::Float,
    )
}

#[test]
fn attention_cluster_equals_the_legacy_paddle_zoo() {
    // Every test here draws from (or seeds) libtorch's one generator.
    let _rng = torch_rng();
    let f = load_fixture("paddle_zoo", "attention_cluster");
    let same = |n: &str| n.to_string();
    let m = cluster_model(&f, 0.0);
    load(&m, &f, "var/", same);
    let inp = f.inputs_on(test_device());
    // The frames upstream's reader drew (generate_random_idx), through our forward.
    let index = f.f32("sample_index").to_kind(Kind::Int64);
    let net: &yt8m::model::AttentionCluster = m.network_as().unwrap();
    let logits = net.forward_sampled(&inp.features, &index, true);
    close("logits", &logits, &f.f32("logits"), 2e-6, 2e-5);
    let loss = bce_mean(&logits, &inp.labels);
    close(
        "loss",
        &loss,
        &Tensor::from(f.scalar("loss") as f32),
        0.0,
        1e-6,
    );
    loss.backward();
    check_all(&m, &f, "grad/", same, true, 1e-8, 1e-5);
    let lr = f.meta["learning_rate"].as_f64().unwrap();
    paddle_step(&m, lr, 0.0);
    // The attention scores' bias shifts every frame's score alike: the softmax over the
    // frames ignores it.
    check_step(&m, &f, same, &["satt0.conv.bias", "satt1.conv.bias"], lr);

    let e = cluster_model(&f, f.meta["drop_rate"].as_f64().unwrap());
    load(&e, &f, "step/", same);
    let en: &yt8m::model::AttentionCluster = e.network_as().unwrap();
    let p = tch::no_grad(|| en.forward_sampled(&inp.features, &index, false)).sigmoid();
    close(
        "test_predictions",
        &p,
        &f.f32("test_predictions"),
        1e-6,
        1e-5,
    );
}

/// Inference frames are the evenly spaced ⌊(2i + 1)·n / 2S⌋ (upstream's sampling with u = ½),
/// and training draws them as upstream does: within [⌊i·n/S⌋, ⌊(i + 1)·n/S⌋], at most n − 1.
#[test]
fn attention_cluster_samples_evenly_at_inference_and_as_upstream_in_training() {
    // Every test here draws from (or seeds) libtorch's one generator.
    let _rng = torch_rng();
    let f = load_fixture("paddle_zoo", "attention_cluster");
    let m = cluster_model(&f, 0.5);
    let net: &yt8m::model::AttentionCluster = m.network_as().unwrap();
    let s = usize_of(&f, "seg_num") as i64;
    let lengths = Tensor::from_slice(&[1i64, 3, 4, 7, 300]);
    let idx = net.sample(&lengths, false);
    let got: Vec<Vec<i64>> = Vec::try_from(&idx).unwrap();
    for (row, n) in got.iter().zip([1i64, 3, 4, 7, 300]) {
        let want: Vec<i64> = (0..s)
            .map(|i| ((2 * i + 1) * n / (2 * s)).min(n - 1))
            .collect();
        assert_eq!(row, &want, "n = {n}");
    }
    for _ in 0..20 {
        let r: Vec<Vec<i64>> = Vec::try_from(&net.sample(&lengths, true)).unwrap();
        for (row, n) in r.iter().zip([1i64, 3, 4, 7, 300]) {
            for (i, &x) in row.iter().enumerate() {
                let i = i as i64;
                assert!(
                    x >= i * n / s && x <= ((i + 1) * n / s).min(n - 1),
                    "{x} {i} {n}"
                );
            }
        }
    }
}

#[test]
fn a_bad_eigenvalue_file_is_refused_with_the_file_and_the_fix() {
    // Every test here draws from (or seeds) libtorch's one generator.
    let _rng = torch_rng();
    let f = load_fixture("paddle_zoo", "nextvlad");
    let m = nextvlad_model(&f, 0.5);
    let net: &yt8m::model::NextVlad = m.network_as().unwrap();
    let dir = tempdir("paddle-zoo-bad-eigen");
    for (name, t, want) in [
        (
            "short.npy",
            Tensor::ones([4, 1], (Kind::Float, Device::Cpu)),
            "4 eigenvalues, the rgb features have 16",
        ),
        (
            "negative.npy",
            -Tensor::ones([16], (Kind::Float, Device::Cpu)),
            "eigenvalue 0 is -1",
        ),
        (
            "cube.npy",
            Tensor::ones([16, 1, 1], (Kind::Float, Device::Cpu)),
            "expected [N] or [N, 1]",
        ),
    ] {
        let p = dir.join(name);
        t.write_npy(&p).unwrap();
        let e = net.load_eigenvalues(&p).unwrap_err().to_string();
        assert!(
            e.contains(want) && e.contains(name) && e.contains("eigenvals.npy"),
            "{e}"
        );
    }
    std::fs::write(dir.join("junk.npy"), b"not numpy").unwrap();
    let e = net
        .load_eigenvalues(&dir.join("junk.npy"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("junk.npy"), "{e}");
    // The scaling is unchanged by the refused files.
    assert!(
        net.eigen_scale()
            .to_device(Device::Cpu)
            .equal(&Tensor::ones([16], (Kind::Float, Device::Cpu)))
    );
}

/// Both configs train (`-o` overrides, synthetic data) well past the class prior, export,
/// and the ONNX graph gives our logits under onnxruntime; NeXtVLAD reads its eigenvalue file
/// from the config and saves it with the weights.
#[test]
fn zoo_configs_train_on_synthetic_data_and_export_to_onnx() {
    // Every test here draws from (or seeds) libtorch's one generator.
    let _rng = torch_rng();
    let d = tempdir("paddle-zoo-train");
    synth_shards(&d.join("train"), 512, 4, 1, 120);
    synth_shards(&d.join("valid"), 128, 1, 2, 120);
    let eig = d.join("eigenvals.npy");
    (Tensor::rand([1024, 1], (Kind::Float, Device::Cpu)) + 0.5)
        .write_npy(&eig)
        .unwrap();
    for (config, extra, epochs) in [
        (
            "nextvlad_youtube8m.yaml",
            vec![
                "MODEL.head.cluster_size=16".to_string(),
                "MODEL.head.hidden_size=64".to_string(),
                "MODEL.head.groups=4".to_string(),
                format!("MODEL.head.eigen_file={}", eig.display()),
                "OPTIMIZER.learning_rate.learning_rate=0.002".to_string(),
            ],
            8,
        ),
        (
            "attention_cluster_youtube8m.yaml",
            vec![
                "MODEL.head.seg_num=20".to_string(),
                "MODEL.head.cluster_nums=[4, 4]".to_string(),
                "MODEL.head.fc1_size=64".to_string(),
                "MODEL.head.fc2_size=64".to_string(),
                // 64 steps instead of the thousands upstream takes at 1e-3.
                "OPTIMIZER.learning_rate.learning_rate=0.01".to_string(),
            ],
            10,
        ),
    ] {
        let bundle = train_export_and_check(&d, config, extra, epochs);
        let b = yt8m::bundle::load(&bundle, Device::Cpu).unwrap();
        if let Some(n) = b.model.network_as::<yt8m::model::NextVlad>() {
            let want: Tensor = Tensor::read_npy(&eig).unwrap().view([-1]).sqrt() + 1e-4;
            close("bundle eigen_param", n.eigen_scale(), &want, 0.0, 2e-7);
        }
    }
}

/// Resume with the legacy zoo's recipe: Paddle's Adam, the staircase decay, dropout's draws,
/// NeXtVLAD's batch-norm statistics and its eigenvalue scaling all continue exactly.
#[test]
fn nextvlad_resumes_exactly() {
    // Every test here draws from (or seeds) libtorch's one generator.
    let _rng = torch_rng();
    let d = tempdir("paddle-zoo-resume");
    synth_shards(&d.join("train"), 96, 2, 3, 40);
    let eig = d.join("eigenvals.npy");
    (Tensor::rand([1024], (Kind::Float, Device::Cpu)) + 0.5)
        .write_npy(&eig)
        .unwrap();
    let ov = vec![
        "epochs=3".to_string(),
        format!("DATASET.train.file_path={}", d.join("train").display()),
        format!("MODEL.head.eigen_file={}", eig.display()),
        "MODEL.head.num_classes=20".to_string(),
        "DATASET.batch_size=16".to_string(),
        "MODEL.head.cluster_size=8".to_string(),
        "MODEL.head.hidden_size=16".to_string(),
        "MODEL.head.groups=4".to_string(),
        // A decay step every 100 examples, so the schedule moves within the run.
        "OPTIMIZER.learning_rate.decay_examples=100".to_string(),
    ];
    let cfg = Config::load(Some(&repo().join("configs/nextvlad_youtube8m.yaml")), &ov).unwrap();
    assert_resume_exact(&cfg, &d, 3, "eigen_param");
}
