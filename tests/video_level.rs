//! The whole training stack on real labelled data: video-level models on real YouTube-8M
//! 2018 validate shards must beat the class-prior baseline.

mod common;
use common::*;
use yt8m::config::Config;
use yt8m::train::{TrainOptions, train};

fn real(pattern: &str) -> String {
    yt8m_data(&format!("real/{pattern}")).display().to_string()
}

#[test]
fn logistic_on_real_shards_beats_the_class_prior() {
    needs_shared!();
    real_shards_beat_the_class_prior("LogisticModel", 4);
}

#[test]
fn moe_on_real_shards_beats_the_class_prior() {
    needs_shared!();
    real_shards_beat_the_class_prior("MoeModel", 3);
}

/// One test per head keeps each under the suite's 120 s per test; they take turns (each uses
/// every core through libtorch, and two at once would oversubscribe them).
fn real_shards_beat_the_class_prior(head: &str, epochs: usize) {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cfg_path = repo().join("configs/logistic_video.yaml");
    {
        let overrides = vec![
            format!("MODEL.head.name={head}"),
            format!(
                "DATASET.train.file_path=[{:?}, {:?}]",
                real("validate000[2-9].tfrecord"),
                real("validate001[01].tfrecord")
            ),
            format!(
                "DATASET.valid.file_path={:?}",
                real("validate006[01].tfrecord")
            ),
            format!(
                "DATASET.test.file_path={:?}",
                real("validate006[01].tfrecord")
            ),
            format!("epochs={epochs}"),
            "OPTIMIZER.learning_rate={name: Constant, learning_rate: 0.005}".to_string(),
        ];
        let cfg = Config::load(Some(&cfg_path), &overrides).unwrap();
        let prior = yt8m::evaluate::class_prior_gap(&cfg).unwrap();
        let run = tempdir(&format!("real-{head}"));
        let s = train(
            cfg.clone(),
            &TrainOptions {
                output: run.join("run"),
                validate: true,
                quiet: true,
                ..Default::default()
            },
        )
        .unwrap();
        let v = s.last_valid.unwrap();
        let gap = v.gap;
        println!(
            "{head}: {} epochs on 10 real shards → GAP {gap:.4}, Hit@1 {:.4} (class prior GAP {prior:.4})",
            epochs, v.hit_at_one
        );
        assert!(
            gap > prior + 0.15,
            "{head}: GAP {gap} does not beat the class prior {prior} by a margin"
        );
        // bf16 inference (issue #15): the same checkpoint's test GAP within 0.002 of fp32.
        use yt8m::kinds::Precision;
        let ck = s
            .best_checkpoint
            .clone()
            .unwrap_or(s.last_checkpoint.clone());
        // Where bf16 is emulated (no avx512_bf16/AMX) every bf16 product takes many times
        // fp32's: the bf16 checks then run on one test shard and a shortened bf16 training
        // (measured on AVX2: this test took 1118 s at full size, mostly emulated bf16).
        let native = bf16_native();
        let mut small = cfg.clone();
        if !native {
            small = Config::load(
                Some(&cfg_path),
                &[
                    overrides.clone(),
                    vec![
                        format!(
                            "DATASET.train.file_path={:?}",
                            real("validate000[2-3].tfrecord")
                        ),
                        format!("DATASET.test.file_path={:?}", real("validate0060.tfrecord")),
                        "epochs=2".to_string(),
                    ],
                ]
                .concat(),
            )
            .unwrap();
        }
        let f = yt8m::infer::test_run(&small, &ck, 8, Precision::Fp32).unwrap();
        let b = yt8m::infer::test_run(&small, &ck, 8, Precision::Bf16).unwrap();
        println!(
            "{head}: test GAP fp32 {:.5}, bf16 {:.5} (Δ {:.5})",
            f.metrics.gap,
            b.metrics.gap,
            (f.metrics.gap - b.metrics.gap).abs()
        );
        assert_eq!(b.precision, "bf16");
        // Kernel-dependent (bf16 GEMMs round per kernel: native oneDNN vs emulated): 0.002 GAP
        // holds for both, measured well below it on real shards.
        assert!((f.metrics.gap - b.metrics.gap).abs() <= 0.002);
        // bf16 mixed-precision training: the test GAP within 0.005 of the fp32 run's (the
        // reduced run: of an fp32 run of the same reduced recipe).
        let f = if native {
            f
        } else {
            let s32 = train(
                small.clone(),
                &TrainOptions {
                    output: run.join("run_small_fp32"),
                    validate: false,
                    quiet: true,
                    ..Default::default()
                },
            )
            .unwrap();
            yt8m::infer::test_run(&small, &s32.last_checkpoint, 8, Precision::Fp32).unwrap()
        };
        let mut c16 = small.clone();
        c16.TRAIN.precision = Precision::Bf16;
        let s16 = train(
            c16.clone(),
            &TrainOptions {
                output: run.join("run_bf16"),
                validate: native,
                quiet: true,
                ..Default::default()
            },
        )
        .unwrap();
        let ck16 = if native {
            s16.best_checkpoint.unwrap_or(s16.last_checkpoint)
        } else {
            s16.last_checkpoint
        };
        let t16 = yt8m::infer::test_run(&small, &ck16, 8, Precision::Fp32).unwrap();
        println!(
            "{head}: test GAP after fp32 training {:.5}, after bf16 mixed-precision training {:.5}",
            f.metrics.gap, t16.metrics.gap
        );
        // Kernel-dependent: bf16 training follows a different trajectory on each kernel (AMX,
        // AVX512-BF16, emulated), so only the outcome is compared: within 0.005 GAP.
        assert!((f.metrics.gap - t16.metrics.gap).abs() <= 0.005);
    }
}
