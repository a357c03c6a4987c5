//! The `yt8m` command that `pip install yt8m` puts on PATH (the wheel's `.data/scripts/yt8m`).
//!
//! The engine (`site-packages/yt8m/_bin/yt8m-core`, the full CLI) links PyTorch's libtorch
//! from the `torch` package installed beside it (its RUNPATH is `$ORIGIN/../../torch/lib`).
//! This launcher finds that engine relative to itself (`bin/../lib/python3.X/site-packages`,
//! the layout of venvs, `--user` and prefix installs), checks that torch 2.11 is there and
//! says what to install when it is not (the dynamic loader's own message names a missing
//! `.so` and nothing else), answers `--version` without loading libtorch (0.4 s of static
//! initialisers), and otherwise replaces itself with the engine (`exec`: same process id,
//! signals and exit status).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The libtorch the engine was built against (tch-rs 0.24).
const TORCH_SERIES: &str = "2.11.";

/// The `site-packages` directories an installation into `prefix` (the directory above `bin/`)
/// can have, newest Python first.
fn site_dirs(prefix: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for lib in ["lib", "lib64"] {
        let Ok(rd) = std::fs::read_dir(prefix.join(lib)) else {
            continue;
        };
        let mut pys: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("python3"))
            })
            .collect();
        pys.sort();
        pys.reverse();
        for py in pys {
            for site in ["site-packages", "dist-packages"] {
                out.push(py.join(site));
            }
        }
    }
    out
}

/// Where the engine and torch are, or what is missing.
enum Found {
    Ready { engine: PathBuf },
    NoEngine(Vec<PathBuf>),
    NoTorch { site: PathBuf },
    OtherTorch { site: PathBuf, version: String },
}

/// torch's `__version__` from `torch/version.py` (`__version__ = '2.11.0+cu130'`).
fn torch_version(site: &Path) -> Option<String> {
    let text = std::fs::read_to_string(site.join("torch").join("version.py")).ok()?;
    text.lines().find_map(|l| {
        let v = l.strip_prefix("__version__")?.split('=').nth(1)?.trim();
        Some(v.trim_matches(|c| c == '\'' || c == '"').to_string())
    })
}

fn find(exe: &Path) -> Found {
    if let Some(engine) = std::env::var_os("YT8M_ENGINE") {
        return Found::Ready {
            engine: PathBuf::from(engine),
        };
    }
    let prefix = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/"));
    let sites = site_dirs(prefix);
    let Some(site) = sites
        .iter()
        .find(|s| s.join("yt8m").join("_bin").join("yt8m-core").is_file())
    else {
        return Found::NoEngine(sites);
    };
    if !site
        .join("torch")
        .join("lib")
        .join("libtorch_cpu.so")
        .is_file()
    {
        return Found::NoTorch { site: site.clone() };
    }
    match torch_version(site) {
        Some(v) if !v.starts_with(TORCH_SERIES) => Found::OtherTorch {
            site: site.clone(),
            version: v,
        },
        _ => Found::Ready {
            engine: site.join("yt8m").join("_bin").join("yt8m-core"),
        },
    }
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.len() == 1 && (args[0] == "--version" || args[0] == "-V") {
        println!("yt8m {VERSION}");
        return;
    }
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .unwrap_or_else(|_| PathBuf::from("yt8m"));
    let fail = |msg: String| -> ! {
        eprintln!("error: {msg}");
        std::process::exit(1);
    };
    match find(&exe) {
        Found::Ready { engine } => {
            use std::os::unix::process::CommandExt;
            let err = std::process::Command::new(&engine).args(&args).exec();
            fail(format!(
                "cannot run yt8m's engine {}: {err}\n  hint: reinstall the package: pip install --force-reinstall yt8m",
                engine.display()
            ));
        }
        Found::NoEngine(sites) => fail(format!(
            "yt8m's engine (yt8m/_bin/yt8m-core) is not in the environment of {} (looked in {})\n  hint: reinstall the package: pip install --force-reinstall yt8m",
            exe.display(),
            if sites.is_empty() {
                "no site-packages directory beside it".to_string()
            } else {
                sites
                    .iter()
                    .map(|s| s.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )),
        Found::NoTorch { site } => fail(format!(
            "yt8m's CLI runs on PyTorch's libtorch {TORCH_SERIES}x, which is not installed in {}\n  hint: pip install 'torch=={TORCH_SERIES}*' (the CPU or the CUDA build); the reader and metrics (import yt8m) work without it",
            site.display()
        )),
        Found::OtherTorch { site, version } => fail(format!(
            "yt8m's CLI needs torch {TORCH_SERIES}x, and {} holds torch {version}\n  hint: pip install 'torch=={TORCH_SERIES}*' in this environment (or a fresh venv)",
            site.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"").unwrap();
    }

    #[test]
    fn finds_the_engine_and_checks_torch_beside_it() {
        let root = std::env::temp_dir().join(format!("yt8m-launch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let exe = root.join("bin").join("yt8m");
        touch(&exe);
        assert!(matches!(find(&exe), Found::NoEngine(s) if s.is_empty()));
        let site = root.join("lib").join("python3.11").join("site-packages");
        touch(&site.join("yt8m/_bin/yt8m-core"));
        assert!(matches!(find(&exe), Found::NoTorch { .. }));
        touch(&site.join("torch/lib/libtorch_cpu.so"));
        std::fs::write(
            site.join("torch/version.py"),
            "__version__ = '2.10.1+cpu'\n",
        )
        .unwrap();
        assert!(matches!(find(&exe), Found::OtherTorch { version, .. } if version == "2.10.1+cpu"));
        std::fs::write(
            site.join("torch/version.py"),
            "__version__ = '2.11.0+cu130'\ngit_version = 'x'\n",
        )
        .unwrap();
        match find(&exe) {
            Found::Ready { engine } => assert_eq!(engine, site.join("yt8m/_bin/yt8m-core")),
            _ => panic!("engine not found"),
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
