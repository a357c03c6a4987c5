//! Members of the official extractor tarballs (`inception-2015-12-05.tgz`, `yt8m_pca.tgz`), read
//! as distributed: gzip (flate2) around POSIX/GNU tar, whose 512-byte headers give each
//! member's name, type and octal size. Only regular files are returned; long-name and pax
//! records are skipped with their data. Sizes are checked against a bound before anything is
//! allocated, and reading stops at the end-of-archive blocks or the stream's end.

use std::io::Read;
use std::path::Path;

/// The largest member read (the Inception graph is 91 MB, eigenvecs.npy 32 MB).
const MAX_MEMBER: u64 = 1 << 30;

/// The regular files of `tgz` whose base names are in `names`: (base name, bytes), in archive
/// order. Errors are messages (the caller names the file).
pub fn read_members(tgz: &Path, names: &[&str]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let f = std::fs::File::open(tgz).map_err(|e| e.to_string())?;
    let mut r = flate2::read::GzDecoder::new(std::io::BufReader::new(f));
    let mut out = Vec::new();
    let mut header = [0u8; 512];
    loop {
        match read_block(&mut r, &mut header)? {
            false => break, // the stream ended (no end-of-archive blocks: tolerated)
            true if header.iter().all(|&b| b == 0) => break,
            true => {}
        }
        let field = |a: usize, b: usize| {
            let raw = &header[a..b];
            let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
            String::from_utf8_lossy(&raw[..end]).into_owned()
        };
        let size_text = field(124, 136);
        let size = u64::from_str_radix(size_text.trim(), 8).map_err(|_| {
            format!(
                "not a tar archive (a member size of '{}')",
                size_text.trim()
            )
        })?;
        if size > MAX_MEMBER {
            return Err(format!(
                "a member of {size} bytes (at most {MAX_MEMBER} are read)"
            ));
        }
        let kind = header[156];
        let mut name = field(0, 100);
        let prefix = field(345, 500);
        if &header[257..262] == b"ustar" && !prefix.is_empty() {
            name = format!("{prefix}/{name}");
        }
        let base = name.rsplit('/').next().unwrap_or(&name).to_string();
        let wanted = (kind == b'0' || kind == 0) && names.contains(&base.as_str());
        let padded = size.div_ceil(512) * 512;
        if wanted {
            let mut data = Vec::with_capacity(size as usize);
            (&mut r)
                .take(size)
                .read_to_end(&mut data)
                .map_err(|e| format!("reading {name}: {e}"))?;
            if data.len() as u64 != size {
                return Err(format!(
                    "{name} is cut short ({} of {size} bytes)",
                    data.len()
                ));
            }
            std::io::copy(&mut (&mut r).take(padded - size), &mut std::io::sink())
                .map_err(|e| e.to_string())?;
            out.push((base, data));
        } else {
            let skipped = std::io::copy(&mut (&mut r).take(padded), &mut std::io::sink())
                .map_err(|e| format!("not a readable gzip tar archive ({e})"))?;
            if skipped != padded {
                return Err(format!("{name} is cut short"));
            }
        }
    }
    Ok(out)
}

/// One 512-byte block; false at a clean end of the stream.
fn read_block(r: &mut impl Read, block: &mut [u8; 512]) -> Result<bool, String> {
    let mut got = 0;
    while got < 512 {
        match r.read(&mut block[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err("the archive is cut short inside a header".into()),
            Ok(n) => got += n,
            Err(e) => return Err(format!("not a readable gzip tar archive ({e})")),
        }
    }
    Ok(true)
}
