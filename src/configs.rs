//! The configs that ship inside the binary (`configs/*.yaml`), so `yt8m config list` / `show`
//! work from any directory, without the repository (MMEngine's `print_config` and
//! Ultralytics' `cfg` copy are the model).

/// One bundled config: its name (the file name without `.yaml`), what it is (its `# summary:`
/// line), and its YAML.
pub struct Bundled {
    pub name: &'static str,
    pub summary: &'static str,
    pub yaml: &'static str,
}

/// Every config of `configs/` but the test-only `tiny_test`, by name: build.rs lists the
/// directory, so shipping a config is adding its file (with a `# summary:` line at the top,
/// which `yt8m config list` shows).
pub const BUNDLED: &[Bundled] = include!(concat!(env!("OUT_DIR"), "/bundled_configs.rs"));

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
            assert!(
                b.yaml.starts_with(&format!("# summary: {}\n", b.summary)) && !b.summary.is_empty(),
                "{}: the summary is the file's first line",
                b.name
            );
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
