//! The checks a config passes before anything is built from it: the shared keys (sizes
//! bounded, also against the machine's memory; paths; the optimizer; the pipeline), then the
//! network's own ([`crate::model::NetworkConfig::validate`]). Each error names the config and
//! the key, with a typical value.

use super::*;

/// Physical memory in bytes (0 when unknown).
fn physical_memory() -> u64 {
    // SAFETY: sysconf only reads system constants.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages > 0 && size > 0 {
        (pages as u64).saturating_mul(size as u64)
    } else {
        0
    }
}

impl Config {
    /// Every size-like key has a bound, checked before anything is allocated from it
    /// (`DATASET.prefetch: 100000000000` aborted with "memory allocation of 17600000000000
    /// bytes failed"; 100000000 took 17.7 GB for 4 videos). Bounds are far above any useful
    /// value; what the buffers would hold is also checked against the machine's memory.
    fn check_size_keys(&self, name: &str) -> Result<()> {
        let d = &self.DATASET;
        let keys: [(&str, usize, usize); 9] = [
            ("DATASET.batch_size", d.batch_size, 1 << 16),
            (
                "DATASET.valid_batch_size",
                d.valid_batch_size.unwrap_or(1),
                1 << 16,
            ),
            (
                "DATASET.test_batch_size",
                d.test_batch_size.unwrap_or(1),
                1 << 16,
            ),
            ("DATASET.num_workers", d.num_workers, 256),
            ("DATASET.shuffle_buffer", d.shuffle_buffer, 1_000_000),
            ("DATASET.bucket_window", d.bucket_window, 4096),
            ("DATASET.prefetch", d.prefetch, 256),
            ("DATASET.max_frames", d.max_frames, 100_000),
            ("epochs", self.epochs, 1_000_000),
        ];
        for (key, value, max) in keys {
            if value > max {
                return Err(cfg_err(
                    name,
                    format!(
                        "{key} = {value} is beyond what yt8m accepts (at most {max})\n  hint: typical values: batch_size 16–2048, num_workers 0 (automatic), shuffle_buffer 2048, prefetch 4, max_frames 300"
                    ),
                ));
            }
        }
        // Videos held at once by the shuffle buffer and the prefetched batches, at their
        // largest (uint8 frames; video-level features are smaller).
        let per_video = (d.max_frames as u64)
            .saturating_mul(self.MODEL.head.feature_dims.iter().sum::<usize>() as u64);
        let held = (d.shuffle_buffer as u64)
            .saturating_add((d.prefetch as u64 + 1).saturating_mul(d.batch_size as u64));
        let bytes = held.saturating_mul(per_video);
        let ram = physical_memory();
        if ram > 0 && bytes > ram {
            return Err(cfg_err(
                name,
                format!(
                    "DATASET.shuffle_buffer ({}) + DATASET.prefetch ({}) batches of {} could hold {:.1} GB of frames at DATASET.max_frames {}, more than this machine's {:.1} GB\n  hint: lower shuffle_buffer or prefetch",
                    d.shuffle_buffer,
                    d.prefetch,
                    d.batch_size,
                    bytes as f64 / 1e9,
                    d.max_frames,
                    ram as f64 / 1e9
                ),
            ));
        }
        Ok(())
    }

    /// Every check of a loaded config, section by section; the first failure is reported,
    /// naming its key.
    pub(super) fn validate(&self, name: &str) -> Result<()> {
        if self.DATASET.segment_labels && self.MODEL.level != Level::Frame {
            return Err(cfg_err(
                name,
                "DATASET.segment_labels trains on 5-frame segments, which needs a frame-level model (MODEL.level: frame); video-level features have no frames to cut",
            ));
        }
        self.validate_head(name)?;
        if self.DATASET.batch_size == 0 {
            return Err(cfg_err(name, "DATASET.batch_size must be positive"));
        }
        self.check_size_keys(name)?;
        self.validate_model_size(name)?;
        if self.epochs == 0 {
            return Err(cfg_err(
                name,
                "epochs must be at least 1 (an epoch-0 run trains nothing)",
            ));
        }
        if self.DATASET.max_frames == 0 {
            return Err(cfg_err(
                name,
                "DATASET.max_frames must be at least 1 (300 in YouTube-8M's reader)",
            ));
        }
        self.validate_optimizer(name)?;
        self.validate_pipeline(name)
    }

    /// MODEL.head: the keys every network reads here, then the network's own
    /// ([`crate::model::NetworkConfig::validate`]).
    fn validate_head(&self, name: &str) -> Result<()> {
        let h = &self.MODEL.head;
        if h.feature_dims.is_empty() || h.feature_dims.iter().any(|&d| d == 0) {
            return Err(cfg_err(
                name,
                "MODEL.head.feature_dims must list positive widths, e.g. [1024, 128]",
            ));
        }
        if h.feature_names.len() != h.feature_dims.len()
            || h.mean_feature_names.len() != h.feature_dims.len()
        {
            return Err(cfg_err(
                name,
                format!(
                    "MODEL.head.feature_names {:?} / mean_feature_names {:?} must have one name per feature_dims entry {:?}",
                    h.feature_names, h.mean_feature_names, h.feature_dims
                ),
            ));
        }
        if h.num_classes == 0 {
            return Err(cfg_err(
                name,
                "MODEL.head.num_classes must be positive (YouTube-8M: 3862)",
            ));
        }
        let arch = self.architecture();
        if arch.level() == Level::Frame && self.MODEL.level != Level::Frame {
            return Err(cfg_err(
                name,
                format!(
                    "MODEL.head.name {} reads frames, but MODEL.level is video\n  hint: set MODEL.level: frame (SequenceExample shards), or use LogisticModel / MoeModel for video-level data",
                    h.name
                ),
            ));
        }
        if !(0.0..1.0).contains(&h.dropout) {
            return Err(cfg_err(
                name,
                format!("MODEL.head.dropout must be in [0, 1), got {}", h.dropout),
            ));
        }
        arch.validate().map_err(|e| cfg_err(name, e))
    }

    /// The class count and the parameters' memory against this machine's.
    fn validate_model_size(&self, name: &str) -> Result<()> {
        let h = &self.MODEL.head;
        if h.num_classes > MAX_CLASSES {
            return Err(cfg_err(
                name,
                format!(
                    "MODEL.head.num_classes = {} is implausible (at most {MAX_CLASSES}; YouTube-8M has 3862 classes in 2018, 4716 in 2017)",
                    h.num_classes
                ),
            ));
        }
        let params = self.parameter_estimate();
        let bytes = params.saturating_mul(4);
        let ram = physical_memory();
        if params == u64::MAX || (ram > 0 && bytes > ram) {
            return Err(cfg_err(
                name,
                format!(
                    "the model would need ~{} parameters ({:.1} GB in float32) but this machine has {:.1} GB of memory\n  hint: check MODEL.head widths (num_classes, embedding_size, lstm_size, fc_out1_size, fc_out2_size)",
                    params,
                    bytes as f64 / 1e9,
                    ram as f64 / 1e9
                ),
            ));
        }
        Ok(())
    }

    /// OPTIMIZER: every number in its range, weight decay L2, the learning-rate schedule.
    fn validate_optimizer(&self, name: &str) -> Result<()> {
        // (key, value, lower bound, lower bound excluded, what it must be)
        let o = &self.OPTIMIZER;
        let ge0 = "a finite number ≥ 0";
        let checks = [
            ("OPTIMIZER.rho", o.rho, 0.0, false, "in [0, 1)"),
            (
                "OPTIMIZER.epsilon",
                o.epsilon(),
                0.0,
                true,
                "a finite number > 0 (RMSProp's default 1e-6, Adam's 1e-8)",
            ),
            ("OPTIMIZER.beta1", o.beta1, 0.0, false, "in [0, 1)"),
            ("OPTIMIZER.beta2", o.beta2, 0.0, false, "in [0, 1)"),
            ("OPTIMIZER.momentum", o.momentum, 0.0, false, ge0),
            (
                "OPTIMIZER.weight_decay.value",
                o.weight_decay.value,
                0.0,
                false,
                ge0,
            ),
            (
                "OPTIMIZER.grad_clip",
                o.grad_clip,
                0.0,
                false,
                "a finite number ≥ 0 (0 = off)",
            ),
        ];
        for (key, v, lo, open, what) in checks {
            let below = if open { v <= lo } else { v < lo };
            let over =
                matches!(key, "OPTIMIZER.rho" | "OPTIMIZER.beta1" | "OPTIMIZER.beta2") && v >= 1.0;
            if !v.is_finite() || below || over {
                return Err(cfg_err(name, format!("{key} is {v}; it must be {what}")));
            }
        }
        if self.OPTIMIZER.weight_decay.name != "L2" {
            return Err(cfg_err(
                name,
                format!(
                    "OPTIMIZER.weight_decay.name '{}' is not supported; use L2",
                    self.OPTIMIZER.weight_decay.name
                ),
            ));
        }
        self.OPTIMIZER
            .learning_rate
            .validate()
            .map_err(|e| cfg_err(name, format!("OPTIMIZER.learning_rate: {e}")))
    }

    /// PIPELINE's class counts (PaddleVideo's `decode.num_classes`) agree with the model's.
    fn validate_pipeline(&self, name: &str) -> Result<()> {
        let h = &self.MODEL.head;
        for (sec, p) in [
            ("PIPELINE.train", &self.PIPELINE.train),
            ("PIPELINE.valid", &self.PIPELINE.valid),
            ("PIPELINE.test", &self.PIPELINE.test),
        ] {
            if let Some(n) = p
                .as_ref()
                .and_then(|p| p.decode.as_ref())
                .and_then(|d| d.num_classes)
            {
                if n != h.num_classes {
                    return Err(cfg_err(
                        name,
                        format!(
                            "{sec}.decode.num_classes = {n} differs from MODEL.head.num_classes = {}",
                            h.num_classes
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}
