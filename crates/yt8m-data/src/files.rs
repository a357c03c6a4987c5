//! One rule for every file a command reads whole (configs, vocabularies, id lists, Kaggle CSVs,
//! `.list` files, `.pdparams`): a regular file, of a bounded size, opened without blocking.
//! A FIFO given as `-c` used to block forever in `open`, and `train -c /dev/zero` grew to
//! 4.4 GB before running out of memory. `.npy`/`.npz` files open through [`open_regular`] too;
//! data shards are checked by path before they are opened (`sources::expand_paths`).

use crate::error::{DataError, DataErrorKind, Location};
use std::io::Read;
use std::path::Path;

/// Opens `path` for reading if it is a regular file, with its size; `what` names it in the
/// hint ("YAML config", ".npy / .npz", ...). Opened without blocking, so a FIFO is refused at
/// once instead of waiting for a writer.
pub fn open_regular(path: &Path, what: &str) -> Result<(std::fs::File, u64), DataError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let f = opts.open(path).map_err(|e| DataError::io(path, e))?;
    let md = f.metadata().map_err(|e| DataError::io(path, e))?;
    if !md.is_file() {
        let kind = if md.is_dir() {
            "a directory"
        } else {
            file_kind(&md)
        };
        return Err(DataError::new(
            DataErrorKind::Io,
            Location::file(path),
            format!("is {kind}, not a regular file"),
        )
        .hint(format!("give the path of a {what} file")));
    }
    Ok((f, md.len()))
}

/// Reads `path` whole if it is a regular file of at most `max_bytes`; `what` names it in
/// errors ("config", "vocabulary", ...).
pub fn read_regular(path: &Path, max_bytes: u64, what: &str) -> Result<Vec<u8>, DataError> {
    let (f, len) = open_regular(path, what)?;
    if len > max_bytes {
        return Err(too_large(path, len, max_bytes, what));
    }
    let mut out = Vec::with_capacity(len as usize);
    // The size may change while reading: `take` keeps the bound whatever happens.
    f.take(max_bytes + 1)
        .read_to_end(&mut out)
        .map_err(|e| DataError::io(path, e))?;
    if out.len() as u64 > max_bytes {
        return Err(too_large(path, out.len() as u64, max_bytes, what));
    }
    Ok(out)
}

/// As [`read_regular`], as UTF-8 text.
pub fn read_regular_text(path: &Path, max_bytes: u64, what: &str) -> Result<String, DataError> {
    let bytes = read_regular(path, max_bytes, what)?;
    String::from_utf8(bytes).map_err(|e| {
        DataError::new(
            DataErrorKind::Corrupt,
            Location::file(path),
            format!(
                "is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
        .hint(format!("a {what} is a UTF-8 text file"))
    })
}

fn too_large(path: &Path, len: u64, max: u64, what: &str) -> DataError {
    DataError::new(
        DataErrorKind::Io,
        Location::file(path),
        format!("is {len} bytes; a {what} is at most {max} bytes"),
    )
    .hint(format!("check that this is the {what} you meant"))
}

#[cfg(unix)]
fn file_kind(md: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = md.file_type();
    if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(not(unix))]
fn file_kind(_: &std::fs::Metadata) -> &'static str {
    "not a regular file"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_devices_and_large_files_are_refused_without_blocking() {
        let d = std::env::temp_dir().join(format!("yt8m-files-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let ok = d.join("a.yaml");
        std::fs::write(&ok, "x: 1\n").unwrap();
        assert_eq!(read_regular_text(&ok, 100, "config").unwrap(), "x: 1\n");
        let e = read_regular(&ok, 3, "config").unwrap_err().to_string();
        assert!(e.contains("is 5 bytes; a config is at most 3 bytes"), "{e}");
        let e = read_regular(Path::new("/dev/zero"), 1 << 20, "config")
            .unwrap_err()
            .to_string();
        assert!(e.contains("character device"), "{e}");
        let e = read_regular(&d, 1 << 20, "config").unwrap_err().to_string();
        assert!(e.contains("directory"), "{e}");
        let fifo = d.join("fifo");
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.map(|s| s.success()).unwrap_or(false) {
            let t = std::time::Instant::now();
            let e = read_regular(&fifo, 1 << 20, "config")
                .unwrap_err()
                .to_string();
            assert!(e.contains("FIFO"), "{e}");
            assert!(t.elapsed().as_secs() < 5);
        }
        std::fs::write(&ok, b"\xff\xfe").unwrap();
        let e = read_regular_text(&ok, 100, "config")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not UTF-8"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
