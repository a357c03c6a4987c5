//! Input paths → shard files: files, directories, glob patterns (`**` bounded, symlink cycles
//! refused) and list files (`.list`/`.txt`, one path per line as PaddleVideo writes them,
//! joined with `data_prefix`), each file once, non-regular files refused.

use crate::error::{DataError, DataErrorKind, Location};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardKind {
    TfRecord,
    /// PaddleVideo pickle: one dict per file (split) or a list of dicts (per shard).
    Pickle,
}

pub fn shard_kind(path: &Path) -> ShardKind {
    match path.extension().and_then(|e| e.to_str()) {
        Some("pkl") | Some("pickle") => ShardKind::Pickle,
        _ => ShardKind::TfRecord,
    }
}

fn is_list_file(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("list") | Some("txt")
    )
}

fn is_shard_name(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("tfrecord") | Some("tfrecords") | Some("tfrec") | Some("pkl") | Some("pickle")
    )
}

/// Expands user paths into an ordered, de-duplicated list of shard files.
/// `data_prefix` (PaddleVideo's key) is joined to relative entries of list files.
///
/// Inputs are OS strings: a file name that is not UTF-8 (legal on Unix) is taken as written.
/// Only a UTF-8 input can be a glob pattern (the pattern language is text); a non-UTF-8 one is
/// a file, directory or list file.
pub fn expand_paths(
    inputs: &[impl AsRef<std::ffi::OsStr>],
    data_prefix: Option<&Path>,
) -> Result<Vec<PathBuf>, DataError> {
    let mut out: Vec<PathBuf> = Vec::new();
    for input in inputs {
        let p = PathBuf::from(input.as_ref());
        let pattern = input.as_ref().to_str().filter(|_| !p.exists());
        if let Some(input) = pattern.filter(|s| s.contains("**")) {
            out.extend(recursive_glob(input)?);
        } else if let Some(input) = pattern.filter(|s| s.contains(['*', '?', '['])) {
            out.extend(glob_files(input)?);
        } else if p.is_dir() {
            out.extend(dir_shards(&p)?);
        } else if is_list_file(&p) {
            out.extend(list_entries(&p, data_prefix)?);
        } else if p.is_file() {
            out.push(p);
        } else if p.exists() {
            return Err(not_regular(&p));
        } else {
            return Err(DataError::new(
                DataErrorKind::NotFound,
                Location::file(&p),
                "no such file or directory",
            )
            .hint("give shard files, directories, glob patterns or .list files"));
        }
    }
    // List-file entries were taken as written: a FIFO or device there would block or never end.
    if let Some(p) = out.iter().find(|p| p.exists() && !p.is_file()) {
        return Err(not_regular(p));
    }
    // The same file under two names (a symlink, `./x` and `x`, a hard link) is read once.
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(file_identity(p)));
    if out.is_empty() {
        return Err(DataError::new(
            DataErrorKind::Empty,
            Location::file("<inputs>"),
            "no input files given",
        ));
    }
    Ok(out)
}

/// The files a glob pattern matches, sorted; none is an error. Shard inputs and
/// `yt8m extract`'s video inputs both expand quoted patterns with it.
pub fn glob_files(input: &str) -> Result<Vec<PathBuf>, DataError> {
    let paths = glob::glob(input).map_err(|e| {
        DataError::new(
            DataErrorKind::Empty,
            Location::file(input),
            format!("bad glob pattern: {e}"),
        )
    })?;
    let mut found: Vec<PathBuf> = paths
        .filter_map(|r| r.ok())
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(DataError::new(
            DataErrorKind::Empty,
            Location::file(input),
            "glob pattern matches no files",
        )
        .hint("check the pattern (quote it so the shell does not expand it)"));
    }
    Ok(found)
}

/// The shard files (by extension) directly in directory `p`, sorted; none is an error.
fn dir_shards(p: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(p)
        .map_err(|e| DataError::io(p, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_shard_name(p))
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(DataError::new(
            DataErrorKind::Empty,
            Location::file(p),
            "directory holds no .tfrecord or .pkl files",
        )
        .hint("point at the shard files, a glob such as 'DIR/train*.tfrecord', or a .list file"));
    }
    Ok(found)
}

/// A PaddleVideo `.list` file's entries, relative ones joined to `data_prefix` (else the list's
/// directory); none is an error.
fn list_entries(p: &Path, data_prefix: Option<&Path>) -> Result<Vec<PathBuf>, DataError> {
    let text = crate::files::read_regular_text(p, 1 << 30, "PaddleVideo .list")?;
    let base = data_prefix
        .map(Path::to_path_buf)
        .unwrap_or_else(|| p.parent().unwrap_or(Path::new(".")).to_path_buf());
    let mut out = Vec::new();
    for line in text.lines() {
        // PaddleVideo's FeatureDataset: `filename = line.strip()` — the whole line,
        // surrounding whitespace removed, spaces inside kept. Blank lines are skipped
        // (PaddleVideo would fail on them later, opening "").
        let entry = line.trim();
        if entry.is_empty() {
            continue;
        }
        let e = PathBuf::from(entry);
        out.push(if e.is_absolute() { e } else { base.join(e) });
    }
    if out.is_empty() {
        return Err(DataError::new(
            DataErrorKind::Empty,
            Location::file(p),
            "list file has no entries",
        ));
    }
    Ok(out)
}

/// (device, inode) where the file system tells it, else the path as written.
fn file_identity(p: &Path) -> (u64, u64, PathBuf) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::metadata(p) {
            return (m.dev(), m.ino(), PathBuf::new());
        }
    }
    (0, 0, p.to_path_buf())
}

/// Deepest directory a `**` pattern descends into.
const MAX_GLOB_DEPTH: usize = 64;

/// Expands a pattern with `**` by walking the directory below its fixed prefix ourselves: the
/// glob crate follows symlinked directories without noticing cycles (`DIR/up -> ..` made
/// `DIR/**/*.tfrecord` read one file 41 times, and two such links grow exponentially). A
/// directory that is its own ancestor (same device and inode) is a cycle and refused, naming it.
/// A directory reached again by another way that is not its own ancestor (a symlink to a
/// sibling) is searched once. Depth is bounded; no recursion (an explicit stack).
fn recursive_glob(pattern: &str) -> Result<Vec<PathBuf>, DataError> {
    let bad = |m: String| DataError::new(DataErrorKind::Empty, Location::file(pattern), m);
    let matcher = glob::Pattern::new(pattern).map_err(|e| bad(format!("bad glob pattern: {e}")))?;
    // The walk starts at the longest leading run of components without wildcards.
    let mut base = PathBuf::new();
    for c in Path::new(pattern).components() {
        let s = c.as_os_str().to_string_lossy();
        if s.contains(['*', '?', '[']) {
            break;
        }
        base.push(c);
    }
    if base.as_os_str().is_empty() {
        base = PathBuf::from(".");
    }
    let strip_dot = !pattern.starts_with("./") && base == Path::new(".");
    let opts = glob::MatchOptions {
        require_literal_separator: true,
        ..Default::default()
    };
    let mut found = Vec::new();
    let mut visited = std::collections::HashSet::new();
    // Each entry: a directory and the identities of the directories above it on this path.
    let mut stack = vec![(base.clone(), Vec::new())];
    while let Some((dir, ancestors)) = stack.pop() {
        let depth = ancestors.len();
        let id = file_identity(&dir);
        if ancestors.contains(&id) {
            return Err(bad(format!(
                "{} leads back to a directory already searched (a symlink cycle)",
                dir.display()
            ))
            .hint("remove the looping symlink, or narrow the pattern so '**' does not cross it"));
        }
        if !visited.insert(id.clone()) {
            continue; // already searched by another way
        }
        if depth > MAX_GLOB_DEPTH {
            return Err(bad(format!(
                "'**' descends more than {MAX_GLOB_DEPTH} directories below {}",
                base.display()
            )));
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue; // unreadable directories are skipped, as glob does
        };
        let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for e in entries.into_iter().rev() {
            let shown = if strip_dot {
                e.strip_prefix(".")
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|_| e.clone())
            } else {
                e.clone()
            };
            if e.is_dir() {
                let mut up = ancestors.clone();
                up.push(id.clone());
                stack.push((e, up));
            } else if e.is_file() && matcher.matches_path_with(&shown, opts) {
                found.push(shown);
            }
        }
    }
    found.sort();
    if found.is_empty() {
        return Err(bad("glob pattern matches no files".into())
            .hint("check the pattern (quote it so the shell does not expand it)"));
    }
    Ok(found)
}

pub(crate) fn not_regular(p: &Path) -> DataError {
    DataError::new(
        DataErrorKind::Io,
        Location::file(p),
        "is not a regular file (a FIFO, device or socket)",
    )
    .hint("give shard files, directories, glob patterns or .list files; copy streamed data to a file first")
}
