//! The configs that ship inside the binary (`configs/*.yaml`), so `yt8m config list` / `show`
//! work from any directory, without the repository (MMEngine's `print_config` and
//! Ultralytics' `cfg` copy are the model).

/// One bundled config: its name (the file name without `.yaml`), what it is, and its YAML.
pub struct Bundled {
    pub name: &'static str,
    pub summary: &'static str,
    pub yaml: &'static str,
}

macro_rules! bundled {
    ($(($name:literal, $summary:literal)),* $(,)?) => {
        &[$(Bundled {
            name: $name,
            summary: $summary,
            yaml: include_str!(concat!("../configs/", $name, ".yaml")),
        }),*]
    };
}

/// Every config of `configs/` but the test-only `tiny_test`, by name.
pub const BUNDLED: &[Bundled] = bundled!(
    (
        "attention_lstm_youtube8m",
        "PaddleVideo's AttentionLSTM, full size (108.7 M parameters), its recipe"
    ),
    (
        "demo_small",
        "a small AttentionLSTM on `yt8m synth` data (what `yt8m demo` trains)"
    ),
    (
        "lstm_youtube8m",
        "Google starter's LstmModel (2 x 1024 LSTM + MoE), train.py's defaults"
    ),
    (
        "dbof_youtube8m",
        "Google starter's DbofModel (8192 clusters + MoE), train.py's defaults"
    ),
    (
        "frame_logistic_youtube8m",
        "Google starter's FrameLevelLogisticModel, train.py's defaults"
    ),
    (
        "nextvlad_youtube8m",
        "PaddlePaddle's legacy video zoo NeXtVLAD"
    ),
    (
        "attention_cluster_youtube8m",
        "PaddlePaddle's legacy video zoo AttentionCluster with shifting"
    ),
    (
        "logistic_video",
        "Google starter's LogisticModel on the 2018 video-level features"
    ),
    (
        "moe_video",
        "Google starter's MoeModel (2 experts) on the 2018 video-level features"
    ),
);

/// The bundled config `name` (`.yaml` may be given), or an error listing the names.
pub fn find(name: &str) -> crate::Result<&'static Bundled> {
    let name = name.strip_suffix(".yaml").unwrap_or(name);
    BUNDLED.iter().find(|b| b.name == name).ok_or_else(|| {
        crate::Error::Invalid(format!(
            "no bundled config named '{name}'\n  hint: `yt8m config list` shows them: {}",
            BUNDLED
                .iter()
                .map(|b| b.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_config_file_but_the_test_one_is_bundled() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .filter(|n| n != "tiny_test")
            .collect();
        on_disk.sort();
        let mut bundled: Vec<String> = BUNDLED.iter().map(|b| b.name.to_string()).collect();
        bundled.sort();
        assert_eq!(
            on_disk, bundled,
            "a config added to configs/ must be bundled"
        );
        for b in BUNDLED {
            assert!(b.yaml.starts_with('#'), "{}: no header comment", b.name);
        }
        // Each loads and validates as written out (what `config show` gives a user).
        let tmp = std::env::temp_dir().join(format!("yt8m-configs-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        for b in BUNDLED {
            let p = tmp.join(format!("{}.yaml", b.name));
            std::fs::write(&p, b.yaml).unwrap();
            if let Err(e) = crate::config::Config::load(Some(&p), &[]) {
                panic!("bundled config {} does not load: {e}", b.name);
            }
        }
        let _ = std::fs::remove_dir_all(&tmp);
        assert!(find("moe_video.yaml").is_ok());
        let e = find("nope").err().unwrap().to_string();
        assert!(e.contains("attention_lstm_youtube8m"), "{e}");
    }
}
