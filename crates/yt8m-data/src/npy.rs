//! numpy `.npy` and `.npz` files, read defensively (tch's `read_npy`/`read_npz` trust the
//! header's shape and copy past the data: a header claiming (300, 1152) over 100 bytes gave a
//! different prediction every run).
//!
//! Format: numpy/lib/format.py (NEP 1): `\x93NUMPY`, version (1.0 / 2.0 / 3.0), header length
//! (u16 for 1.0, u32 otherwise), a Python dict literal `{'descr': '<f4', 'fortran_order':
//! False, 'shape': (N, C), }`, then the raw data. `.npz` is a zip of `.npy` members, stored
//! (`numpy.savez`) or deflated (`numpy.savez_compressed`).
//!
//! Every check happens before an allocation: magic, version, header length (≤ 64 KiB), the
//! dtype (little-endian or byte-sized numeric types only; no objects, no structured dtypes),
//! C order, a shape whose element count × item size does not overflow and equals the bytes
//! present. `.npz` members must be stored or deflated (LZMA, bzip2, zstd and encrypted members
//! are refused), their size in the zip directory must agree with the array header, and the data
//! is read incrementally, so a member can never make us allocate more than it really holds.

use super::tfrecord::read_full;
use crate::error::{DataError, DataErrorKind, Location};
use std::io::Read;
use std::path::Path;

/// Longest header accepted (numpy writes < 200 bytes; its own reader allows 10 000 by default).
const MAX_HEADER: usize = 1 << 16;

/// Element types accepted (little-endian where the width is more than one byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpyDType {
    Bool,
    U8,
    I8,
    I16,
    I32,
    I64,
    U16,
    U32,
    U64,
    F32,
    F64,
    /// numpy's fixed-width unicode `<U{n}` (UTF-32LE, n characters per element): video ids.
    Unicode(usize),
}

impl NpyDType {
    pub fn size(self) -> usize {
        match self {
            NpyDType::Bool | NpyDType::U8 | NpyDType::I8 => 1,
            NpyDType::I16 | NpyDType::U16 => 2,
            NpyDType::I32 | NpyDType::U32 | NpyDType::F32 => 4,
            NpyDType::I64 | NpyDType::U64 | NpyDType::F64 => 8,
            NpyDType::Unicode(n) => 4 * n,
        }
    }
    /// A number type (everything but strings).
    pub fn is_numeric(self) -> bool {
        !matches!(self, NpyDType::Unicode(_))
    }
    pub fn is_float(self) -> bool {
        matches!(self, NpyDType::F32 | NpyDType::F64)
    }
    /// numpy's name.
    pub fn name(self) -> &'static str {
        match self {
            NpyDType::Bool => "bool",
            NpyDType::U8 => "uint8",
            NpyDType::I8 => "int8",
            NpyDType::I16 => "int16",
            NpyDType::I32 => "int32",
            NpyDType::I64 => "int64",
            NpyDType::U16 => "uint16",
            NpyDType::U32 => "uint32",
            NpyDType::U64 => "uint64",
            NpyDType::F32 => "float32",
            NpyDType::F64 => "float64",
            NpyDType::Unicode(_) => "str",
        }
    }

    fn parse(descr: &str) -> Result<Self, String> {
        let (order, code) = descr.split_at(descr.len().min(1));
        if let Some(n) = code.strip_prefix('U') {
            // A bound keeps a lying header from claiming absurd widths (ids are ~11 chars).
            return match (order, n.parse::<usize>()) {
                ("<" | "|" | "=", Ok(n)) if (1..=4096).contains(&n) => Ok(NpyDType::Unicode(n)),
                _ => Err(format!(
                    "dtype '{descr}' is not a supported string type (little-endian '<U1' to '<U4096')"
                )),
            };
        }
        let t = match code {
            "b1" => NpyDType::Bool,
            "u1" => NpyDType::U8,
            "i1" => NpyDType::I8,
            "i2" => NpyDType::I16,
            "i4" => NpyDType::I32,
            "i8" => NpyDType::I64,
            "u2" => NpyDType::U16,
            "u4" => NpyDType::U32,
            "u8" => NpyDType::U64,
            "f4" => NpyDType::F32,
            "f8" => NpyDType::F64,
            _ => {
                return Err(format!(
                    "dtype '{descr}' is not supported (use uint8, bool, int, float32 or float64)"
                ));
            }
        };
        match order {
            "<" | "|" => Ok(t),
            "=" if cfg!(target_endian = "little") => Ok(t),
            ">" if t.size() == 1 => Ok(t),
            ">" => Err(format!(
                "dtype '{descr}' is big-endian; convert it with arr.astype('<{code}')"
            )),
            _ => Err(format!("dtype '{descr}' is not a numpy type string")),
        }
    }
}

/// One array: shape, element type and the raw little-endian bytes (C order).
#[derive(Debug, Clone)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub dtype: NpyDType,
    pub data: Vec<u8>,
}

fn le<const N: usize>(c: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(c);
    a
}

impl NpyArray {
    pub fn numel(&self) -> usize {
        self.data.len() / self.dtype.size()
    }

    /// The strings of a `<U{n}` array (trailing NULs removed; invalid code points become
    /// U+FFFD); empty for number arrays.
    pub fn to_strings(&self) -> Vec<String> {
        let NpyDType::Unicode(n) = self.dtype else {
            return Vec::new();
        };
        self.data
            .chunks_exact(4 * n)
            .map(|el| {
                el.chunks_exact(4)
                    .map(|c| u32::from_le_bytes(le(c)))
                    .take_while(|&u| u != 0)
                    .map(|u| char::from_u32(u).unwrap_or('\u{fffd}'))
                    .collect()
            })
            .collect()
    }

    /// `<U{n}` bytes for `strings` (n = the longest, at least 1), as numpy stores them.
    pub fn unicode(strings: &[String]) -> NpyArray {
        let n = strings
            .iter()
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(0)
            .max(1);
        let mut data = Vec::with_capacity(strings.len() * 4 * n);
        for s in strings {
            let mut k = 0;
            for c in s.chars() {
                data.extend_from_slice(&(c as u32).to_le_bytes());
                k += 1;
            }
            data.resize(data.len() + 4 * (n - k), 0);
        }
        NpyArray {
            shape: vec![strings.len()],
            dtype: NpyDType::Unicode(n),
            data,
        }
    }

    /// numpy's type string for this array (`<f4`, `|u1`, `<U11`, ...).
    pub fn descr(&self) -> String {
        match self.dtype {
            NpyDType::Bool => "|b1".into(),
            NpyDType::U8 => "|u1".into(),
            NpyDType::I8 => "|i1".into(),
            NpyDType::I16 => "<i2".into(),
            NpyDType::I32 => "<i4".into(),
            NpyDType::I64 => "<i8".into(),
            NpyDType::U16 => "<u2".into(),
            NpyDType::U32 => "<u4".into(),
            NpyDType::U64 => "<u8".into(),
            NpyDType::F32 => "<f4".into(),
            NpyDType::F64 => "<f8".into(),
            NpyDType::Unicode(n) => format!("<U{n}"),
        }
    }

    /// Values as f64 (every number type converts; uint64/int64 beyond 2^53 round; strings
    /// give an empty vector: check [`NpyDType::is_numeric`] first).
    pub fn to_f64(&self) -> Vec<f64> {
        let d = &self.data;
        match self.dtype {
            NpyDType::Unicode(_) => Vec::new(),
            NpyDType::Bool | NpyDType::U8 => d.iter().map(|&x| x as f64).collect(),
            NpyDType::I8 => d.iter().map(|&x| x as i8 as f64).collect(),
            NpyDType::I16 => d
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes(le(c)) as f64)
                .collect(),
            NpyDType::U16 => d
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes(le(c)) as f64)
                .collect(),
            NpyDType::I32 => d
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(le(c)) as f64)
                .collect(),
            NpyDType::U32 => d
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(le(c)) as f64)
                .collect(),
            NpyDType::I64 => d
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(le(c)) as f64)
                .collect(),
            NpyDType::U64 => d
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(le(c)) as f64)
                .collect(),
            NpyDType::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(le(c)) as f64)
                .collect(),
            NpyDType::F64 => d
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(le(c)))
                .collect(),
        }
    }

    /// Values as f32 (float32 exactly; others rounded).
    pub fn to_f32(&self) -> Vec<f32> {
        match self.dtype {
            NpyDType::F32 => self
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(le(c)))
                .collect(),
            NpyDType::U8 => self.data.iter().map(|&x| x as f32).collect(),
            _ => self.to_f64().into_iter().map(|x| x as f32).collect(),
        }
    }

    /// Index (in C order) of the first NaN or ±Inf, for float arrays.
    pub fn first_non_finite(&self) -> Option<(usize, f64)> {
        match self.dtype {
            NpyDType::F32 => self
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(le(c)))
                .position(|x| !x.is_finite())
                .map(|i| {
                    (
                        i,
                        f32::from_le_bytes(le(&self.data[i * 4..i * 4 + 4])) as f64,
                    )
                }),
            NpyDType::F64 => self
                .data
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(le(c)))
                .position(|x| !x.is_finite())
                .map(|i| (i, f64::from_le_bytes(le(&self.data[i * 8..i * 8 + 8])))),
            _ => None,
        }
    }
}

/// What an `.npy` header promises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    pub shape: Vec<usize>,
    pub dtype: NpyDType,
    /// Bytes before the data (magic, version, length field, header text).
    pub header_len: usize,
    /// Bytes of data the shape needs.
    pub data_len: usize,
}

/// Parses the preamble and header dict from the start of a file (`head` may hold more).
/// Errors are plain text; callers add the file and member.
pub fn parse_header(head: &[u8]) -> Result<NpyHeader, String> {
    if head.len() < 10 || &head[..6] != b"\x93NUMPY" {
        return Err("not an .npy array (no \\x93NUMPY magic)".into());
    }
    let (major, minor) = (head[6], head[7]);
    let (len, start) = match major {
        1 => (u16::from_le_bytes([head[8], head[9]]) as usize, 10),
        2 | 3 => {
            if head.len() < 12 {
                return Err("truncated .npy preamble".into());
            }
            (u32::from_le_bytes(le(&head[8..12])) as usize, 12)
        }
        _ => {
            return Err(format!(
                ".npy format version {major}.{minor} is not supported (1.0–3.0 are)"
            ));
        }
    };
    if len > MAX_HEADER {
        return Err(format!(
            "header of {len} bytes is implausible (numpy writes < 1 KiB)"
        ));
    }
    if head.len() < start + len {
        return Err(format!(
            "truncated header: {} of {len} bytes present",
            head.len().saturating_sub(start)
        ));
    }
    let text = std::str::from_utf8(&head[start..start + len])
        .map_err(|_| "header is not text".to_string())?;
    let dict = parse_dict(text)?;
    let get = |k: &str| {
        dict.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v)
            .ok_or_else(|| format!("header has no '{k}' key: {}", text.trim()))
    };
    let dtype = match get("descr")? {
        Lit::Str(s) => NpyDType::parse(s)?,
        _ => return Err("structured dtypes are not supported; save a plain numeric array".into()),
    };
    match get("fortran_order")? {
        Lit::Bool(false) => {}
        Lit::Bool(true) => {
            return Err("Fortran-ordered array; save it with np.ascontiguousarray(a)".into());
        }
        _ => return Err("'fortran_order' is not True/False".into()),
    }
    let shape = match get("shape")? {
        Lit::Tuple(t) => t.clone(),
        _ => return Err("'shape' is not a tuple of integers".into()),
    };
    let data_len = shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} has more elements than memory can hold"))?;
    Ok(NpyHeader {
        shape,
        dtype,
        header_len: start + len,
        data_len,
    })
}

#[derive(Debug)]
enum Lit {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
    Other,
}

/// The header's Python dict literal: string keys; values str, True/False, a tuple of ints, or
/// anything else (a list = structured dtype) recorded as `Other`. No nesting is followed.
fn parse_dict(s: &str) -> Result<Vec<(String, Lit)>, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let bad = |what: &str| format!("header is not a numpy header dict ({what}): {}", s.trim());
    let ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1
        }
    };
    let string = |i: &mut usize| -> Option<String> {
        let q = *b.get(*i)?;
        if q != b'\'' && q != b'"' {
            return None;
        }
        let end = b[*i + 1..].iter().position(|&c| c == q)? + *i + 1;
        let v = s[*i + 1..end].to_string();
        *i = end + 1;
        Some(v)
    };
    ws(&mut i);
    if b.get(i) != Some(&b'{') {
        return Err(bad("no '{'"));
    }
    i += 1;
    let mut out = Vec::new();
    loop {
        ws(&mut i);
        match b.get(i) {
            Some(b'}') => break,
            None => return Err(bad("no '}'")),
            _ => {}
        }
        let key = string(&mut i).ok_or_else(|| bad("key is not a string"))?;
        ws(&mut i);
        if b.get(i) != Some(&b':') {
            return Err(bad("no ':' after a key"));
        }
        i += 1;
        ws(&mut i);
        let val = match b.get(i) {
            Some(b'\'') | Some(b'"') => {
                Lit::Str(string(&mut i).ok_or_else(|| bad("unterminated string"))?)
            }
            Some(b'(') => {
                let end = b[i..]
                    .iter()
                    .position(|&c| c == b')')
                    .ok_or_else(|| bad("unterminated tuple"))?
                    + i;
                let mut dims = Vec::new();
                for tok in s[i + 1..end].split(',') {
                    let tok = tok.trim().trim_end_matches('L');
                    if tok.is_empty() {
                        continue;
                    }
                    dims.push(tok.parse::<usize>().map_err(|_| {
                        format!("shape entry '{tok}' is not a non-negative integer")
                    })?);
                }
                i = end + 1;
                Lit::Tuple(dims)
            }
            _ if s[i..].starts_with("True") => {
                i += 4;
                Lit::Bool(true)
            }
            _ if s[i..].starts_with("False") => {
                i += 5;
                Lit::Bool(false)
            }
            _ => {
                // Skip to the next top-level ',' or '}' (bracket depth counted, bounded by the
                // header's length; no recursion).
                let mut depth = 0i64;
                while i < b.len() {
                    match b[i] {
                        b'[' | b'(' | b'{' => depth += 1,
                        b']' | b')' => depth -= 1,
                        b'}' if depth == 0 => break,
                        b'}' => depth -= 1,
                        b',' if depth == 0 => break,
                        _ => {}
                    }
                    i += 1;
                }
                Lit::Other
            }
        };
        out.push((key, val));
        ws(&mut i);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => break,
            _ => return Err(bad("expected ',' or '}'")),
        }
    }
    Ok(out)
}

fn npy_err(loc: Location, msg: impl Into<String>) -> DataError {
    DataError::new(DataErrorKind::Corrupt, loc, msg).hint(
        "write arrays with numpy.save / numpy.savez (C order, a plain numeric dtype); the file may be truncated or damaged",
    )
}

/// Reads an array from a stream of known total length (`total` bytes from its start).
fn read_array(r: &mut impl Read, total: u64, loc: &Location) -> Result<NpyArray, DataError> {
    // The preamble and header first, in a small buffer.
    let mut head = vec![0u8; 12];
    let got = read_full(r, &mut head).map_err(|e| DataError::io(&loc.path, e))?;
    head.truncate(got);
    if got >= 10 && &head[..6] == b"\x93NUMPY" {
        let need = match head[6] {
            1 => 10 + u16::from_le_bytes([head[8], head[9]]) as usize,
            _ if got >= 12 => 12 + u32::from_le_bytes(le(&head[8..12])) as usize,
            _ => 0,
        };
        if need > 12 && need <= 12 + MAX_HEADER {
            let mut rest = vec![0u8; need - 12];
            let n = read_full(r, &mut rest).map_err(|e| DataError::io(&loc.path, e))?;
            head.extend_from_slice(&rest[..n]);
        }
    }
    let h = parse_header(&head).map_err(|m| npy_err(loc.clone(), m))?;
    let have = total.saturating_sub(h.header_len as u64);
    if have != h.data_len as u64 {
        return Err(npy_err(
            loc.clone(),
            format!(
                "header says {} {:?} ({} bytes of data) but {have} bytes follow the header",
                h.dtype.name(),
                h.shape,
                h.data_len
            ),
        ));
    }
    // `have` bytes were promised by the file system / zip directory; read incrementally so a lie
    // there cannot make us allocate more than arrives.
    let mut data = Vec::with_capacity(h.data_len.min(64 << 20));
    let n = r
        .take(h.data_len as u64)
        .read_to_end(&mut data)
        .map_err(|e| npy_err(loc.clone(), format!("cannot read the data: {e}")))?;
    if n != h.data_len {
        return Err(npy_err(
            loc.clone(),
            format!("truncated: {n} of {} data bytes present", h.data_len),
        ));
    }
    Ok(NpyArray {
        shape: h.shape,
        dtype: h.dtype,
        data,
    })
}

fn regular_file(path: &Path) -> Result<(std::fs::File, u64), DataError> {
    crate::files::open_regular(path, ".npy / .npz")
}

/// Reads one `.npy` file.
/// A `.npy` held in memory (e.g. a member of an archive), named `name` in errors.
pub fn read_npy_bytes(bytes: &[u8], name: &str) -> Result<NpyArray, DataError> {
    read_array(&mut &bytes[..], bytes.len() as u64, &Location::file(name))
}

pub fn read_npy(path: &Path) -> Result<NpyArray, DataError> {
    let (f, len) = regular_file(path)?;
    read_array(&mut std::io::BufReader::new(f), len, &Location::file(path))
}

/// Passes reads through, computing the zip CRC-32 (ISO-HDLC) of every byte read.
struct Crc32Reader<R> {
    inner: R,
    digest: crc_fast::Digest,
}

impl<R: Read> Crc32Reader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            digest: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32IsoHdlc),
        }
    }

    fn finish(&self) -> u32 {
        self.digest.finalize() as u32
    }
}

impl<R: Read> Read for Crc32Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }
}

/// Reads every array of an `.npz` (names without the `.npy` suffix, in archive order).
pub fn read_npz(path: &Path) -> Result<Vec<(String, NpyArray)>, DataError> {
    let (f, _) = regular_file(path)?;
    let loc = Location::file(path);
    let zerr = |e: zip::result::ZipError| {
        npy_err(
            loc.clone(),
            format!("not a readable .npz (zip) archive: {e}"),
        )
    };
    let mut z = zip::ZipArchive::new(std::io::BufReader::new(f)).map_err(zerr)?;
    let mut out = Vec::new();
    for i in 0..z.len() {
        let mut m = z.by_index(i).map_err(|e| {
            npy_err(loc.clone(), format!("member {i}: {e}")).hint(
                "numpy.savez and numpy.savez_compressed write stored or deflated members; encrypted, LZMA, bzip2 or zstd members are not read",
            )
        })?;
        let name = m
            .name()
            .map(|n| n.to_string())
            .map_err(|e| npy_err(loc.clone(), format!("member {i}: bad name: {e}")))?;
        let mloc = loc.clone().key(name.clone());
        if m.is_dir() {
            continue;
        }
        if !matches!(
            m.compression(),
            zip::CompressionMethod::Stored | zip::CompressionMethod::Deflated
        ) {
            return Err(npy_err(
                mloc,
                format!(
                    "compression {:?} is not supported (numpy writes stored or deflated members)",
                    m.compression()
                ),
            ));
        }
        let size = m.size();
        let want_crc = m.crc32();
        // The zip reader checks a member's CRC-32 only when it is read to its end, and
        // `read_array` stops at the last data byte: a flipped bit then gave a wrong answer with
        // exit 0. So the CRC is computed here over every byte of the member (header and data:
        // `read_array` checked they add up to the member's size) and compared.
        let mut crc = Crc32Reader::new(&mut m);
        let arr = read_array(&mut crc, size, &mloc)?;
        let got_crc = crc.finish();
        if got_crc != want_crc {
            return Err(npy_err(
                mloc,
                format!(
                    "CRC-32 mismatch: the archive's directory says {want_crc:08x}, the member's bytes give {got_crc:08x}"
                ),
            )
            .hint("the file is damaged (numpy refuses it too: \"Bad CRC-32\"); write it again or restore a good copy"));
        }
        let key = name.strip_suffix(".npy").unwrap_or(&name).to_string();
        out.push((key, arr));
    }
    if out.is_empty() {
        return Err(DataError::new(
            DataErrorKind::Empty,
            loc,
            "the .npz holds no arrays",
        ));
    }
    Ok(out)
}

/// Writes `(name, array)` pairs as an uncompressed `.npz` (what `numpy.savez` writes).
pub fn write_npz<W: std::io::Write + std::io::Seek>(
    out: W,
    arrays: &[(&str, &NpyArray)],
) -> std::io::Result<()> {
    let mut z = zip::ZipWriter::new(out);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    for (name, a) in arrays {
        z.start_file(format!("{name}.npy"), opts)
            .map_err(std::io::Error::other)?;
        write_npy(&mut z, &a.shape, &a.descr(), &a.data)?;
    }
    z.finish().map_err(std::io::Error::other)?;
    Ok(())
}

/// Writes a C-order `.npy` (version 1.0), as `numpy.save` does.
pub fn write_npy(
    out: &mut impl std::io::Write,
    shape: &[usize],
    descr: &str,
    data: &[u8],
) -> std::io::Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_s = if shape.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_s}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    out.write_all(b"\x93NUMPY\x01\x00")?;
    out.write_all(&(h.len() as u16).to_le_bytes())?;
    out.write_all(h.as_bytes())?;
    out.write_all(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(shape: &[usize], descr: &str, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        write_npy(&mut v, shape, descr, data).unwrap();
        v
    }

    fn parse(bytes: &[u8]) -> Result<NpyArray, DataError> {
        read_array(
            &mut &bytes[..],
            bytes.len() as u64,
            &Location::file("x.npy"),
        )
    }

    #[test]
    fn round_trip_and_header_checks() {
        let a = parse(&npy(&[2, 3], "<f4", &[0u8; 24])).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.dtype, NpyDType::F32);
        assert_eq!(a.to_f64(), vec![0.0; 6]);
        let a = parse(&npy(&[4], "|u1", &[1, 2, 3, 4])).unwrap();
        assert_eq!(a.to_f32(), vec![1.0, 2.0, 3.0, 4.0]);
        // Shape larger than the data: the bug tch had.
        let e = parse(&npy(&[300, 1152], "|u1", &[0u8; 100])).unwrap_err();
        assert!(
            e.message.contains("345600 bytes of data") && e.message.contains("100 bytes follow"),
            "{e}"
        );
        // Data longer than the shape.
        assert!(parse(&npy(&[2], "|u1", &[0u8; 3])).is_err());
        // Overflowing element count.
        let e = parse(&npy(&[usize::MAX, 3], "<f8", &[])).unwrap_err();
        assert!(e.message.contains("more elements"), "{e}");
        for (descr, what) in [
            (">f4", "big-endian"),
            ("|O", "not supported"),
            ("<c8", "not supported"),
        ] {
            let e = parse(&npy(&[1], descr, &[0u8; 8])).unwrap_err();
            assert!(e.message.contains(what), "{descr}: {e}");
        }
        let mut f = npy(&[1], "<f4", &[0u8; 4]);
        let at = f.windows(5).position(|w| w == b"False").unwrap();
        f[at..at + 5].copy_from_slice(b"True "); // same length keeps the header size
        assert!(parse(&f).unwrap_err().message.contains("Fortran"));
        assert!(
            parse(b"\x93NUMPY\x09\x00\x00\x00")
                .unwrap_err()
                .message
                .contains("version")
        );
        assert!(parse(b"PK\x03\x04").unwrap_err().message.contains("magic"));
        assert!(parse(b"").is_err());
    }

    #[test]
    fn unicode_ids_round_trip_and_hostile_ones_stay_bounded() {
        let ids: Vec<String> = ["ab", "", "Ünï"].iter().map(|s| s.to_string()).collect();
        let a = NpyArray::unicode(&ids);
        let back = parse(&npy(&a.shape, &a.descr(), &a.data)).unwrap();
        assert_eq!(back.dtype, NpyDType::Unicode(3));
        assert_eq!(back.to_strings(), ids);
        assert!(!back.dtype.is_numeric() && back.to_f64().is_empty());
        // Widths beyond the bound and big-endian strings are refused before any allocation.
        for d in ["<U100000", ">U4", "<U0"] {
            assert!(parse(&npy(&[1], d, &[0u8; 16])).is_err(), "{d}");
        }
        // Invalid code points decode as U+FFFD, not a panic.
        let bad = parse(&npy(&[1], "<U1", &0xD800u32.to_le_bytes())).unwrap();
        assert_eq!(bad.to_strings(), ["\u{fffd}"]);
    }

    #[test]
    fn non_finite_values_are_found() {
        let mut d = Vec::new();
        for x in [1.0f32, f32::NAN, 2.0] {
            d.extend_from_slice(&x.to_le_bytes());
        }
        let a = parse(&npy(&[3], "<f4", &d)).unwrap();
        assert_eq!(a.first_non_finite().map(|x| x.0), Some(1));
    }

    #[test]
    fn mutated_headers_never_panic() {
        let base = npy(&[3, 5], "<f8", &[7u8; 120]);
        let mut rng = crate::rng::Rng::new(7);
        for _ in 0..5000 {
            let mut b = base.clone();
            let n = 1 + rng.below(4) as usize;
            for _ in 0..n {
                let i = rng.below(b.len().min(140) as u64) as usize;
                b[i] = rng.below(256) as u8;
            }
            if rng.below(4) == 0 {
                b.truncate(rng.below(b.len() as u64) as usize);
            }
            let _ = parse(&b);
        }
    }
}
