#![allow(dead_code)]
//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// `../shared` beside the repository (CI lays it there too); `YT8M_SHARED` overrides.
pub fn shared() -> PathBuf {
    let p = std::env::var_os("YT8M_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("shared")
        });
    assert!(
        p.join("data").is_dir(),
        "shared data not found at {} (set YT8M_SHARED)",
        p.display()
    );
    p
}

pub fn yt8m_data(rel: &str) -> PathBuf {
    shared().join("data").join("yt8m").join(rel)
}

pub fn parity(rel: &str) -> PathBuf {
    shared().join("data").join("paddle_parity").join(rel)
}

pub fn read_json(p: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

/// A fresh temporary directory under the target dir (kept on failure for inspection).
pub fn tempdir(name: &str) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let d = base.join(format!("yt8m-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Path of the built `yt8m` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_yt8m"))
}
