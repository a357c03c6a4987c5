//! TFRecord framing: `u64 len | u32 masked_crc(len) | payload | u32 masked_crc(payload)`,
//! all little-endian, CRC-32C (Castagnoli). See `shared/docs/yt8m_data_and_metrics.md` §1 and
//! tensorflow/core/lib/io/record_reader.cc.

use crate::error::{DataError, DataErrorKind, Location};
use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

const MASK_DELTA: u32 = 0xA282_EAD8;
/// Records beyond this size are surely a corrupt length (a 360-frame video is ~450 KB).
const MAX_RECORD_BYTES: u64 = 1 << 30;

/// TensorFlow's masked CRC-32C.
pub fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    (c.rotate_right(15)).wrapping_add(MASK_DELTA)
}

/// One record's bytes plus where it came from.
#[derive(Debug)]
pub struct RawRecord {
    pub index: usize,
    pub offset: u64,
}

/// Streams the records of one file, verifying both CRCs.
pub struct RecordReader {
    path: PathBuf,
    inner: BufReader<File>,
    offset: u64,
    index: usize,
    verify: bool,
    done: bool,
    /// File length when it is a regular file: no record may claim more than what is left.
    len: Option<u64>,
    /// Set after a framing error whose length cannot be trusted: the byte offset of the bad
    /// header. The next call scans forward from there for the next intact record.
    resync_from: Option<u64>,
    /// Byte ranges skipped by resynchronisation `(from, to, intact records read after it)`.
    skipped: Vec<(u64, u64, usize)>,
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl RecordReader {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, DataError> {
        let path = path.as_ref().to_path_buf();
        let f = File::open(&path).map_err(|e| DataError::io(&path, e))?;
        let md = f.metadata().map_err(|e| DataError::io(&path, e))?;
        if md.is_dir() {
            return Err(DataError::new(
                DataErrorKind::Io,
                Location::file(&path),
                "is a directory, not a TFRecord file",
            ));
        }
        Ok(RecordReader {
            inner: BufReader::with_capacity(1 << 20, f),
            path,
            offset: 0,
            index: 0,
            verify: true,
            done: false,
            len: md.is_file().then_some(md.len()),
            resync_from: None,
            skipped: Vec::new(),
        })
    }

    /// Byte ranges skipped so far by resynchronisation (only after framing errors were
    /// returned and the caller kept reading).
    pub fn skipped_ranges(&self) -> &[(u64, u64, usize)] {
        &self.skipped
    }

    /// One line per skipped range, for reports: file, bytes, and what was read after it.
    pub fn skip_report(&self) -> Vec<String> {
        self.skipped
            .iter()
            .map(|&(from, to, after)| {
                format!(
                    "{}: skipped bytes {from}..{to} ({} bytes) after a broken record header; {after} intact record(s) read after them",
                    self.path.display(),
                    to - from
                )
            })
            .collect()
    }

    /// After a broken header: finds the next offset (after `bad`) where a header's length CRC
    /// verifies, its length fits in the file and its payload CRC verifies, and positions the
    /// reader there. Scans in 1 MiB windows; reads a candidate payload only after its length
    /// CRC matched (a 2^-32 chance for random bytes). Returns false at end of file.
    fn resync(&mut self, bad: u64) -> Result<bool, DataError> {
        use std::io::{Seek, SeekFrom};
        let Some(file_len) = self.len else {
            // Not seekable (a pipe): nothing after a broken header can be trusted.
            self.skipped.push((bad, bad, 0));
            return Ok(false);
        };
        let io = |e| DataError::io(&self.path, e);
        let mut pos = bad + 1;
        let mut window = vec![0u8; (1 << 20) + 12];
        let mut payload = Vec::new();
        while pos + 16 <= file_len {
            self.inner.seek(SeekFrom::Start(pos)).map_err(io)?;
            let want = window.len().min((file_len - pos) as usize);
            let got = read_full(&mut self.inner, &mut window[..want]).map_err(io)?;
            if got < 16 {
                break;
            }
            let mut found = None;
            for i in 0..=got - 12 {
                let h = &window[i..i + 12];
                let len = u64::from_le_bytes(h[..8].try_into().unwrap());
                let crc = u32::from_le_bytes(h[8..12].try_into().unwrap());
                if masked_crc(&h[..8]) != crc {
                    continue;
                }
                let at = pos + i as u64;
                if len > MAX_RECORD_BYTES || at + 16 + len > file_len {
                    continue;
                }
                // Candidate: verify its payload CRC.
                self.inner.seek(SeekFrom::Start(at + 12)).map_err(io)?;
                payload.clear();
                payload.resize(len as usize + 4, 0);
                let n = read_full(&mut self.inner, &mut payload).map_err(io)?;
                if n == payload.len() {
                    let (data, c) = payload.split_at(len as usize);
                    if masked_crc(data) == u32::from_le_bytes(c.try_into().unwrap()) {
                        found = Some(at);
                        break;
                    }
                }
            }
            if let Some(at) = found {
                self.inner.seek(SeekFrom::Start(at)).map_err(io)?;
                self.offset = at;
                self.skipped.push((bad, at, 0));
                return Ok(true);
            }
            // Windows overlap by 11 bytes so no header straddling two is missed.
            pos += (got - 11) as u64;
        }
        self.skipped.push((bad, file_len, 0));
        self.offset = file_len;
        Ok(false)
    }

    /// Skip CRC verification (faster; framing is still checked).
    pub fn verify_crc(mut self, verify: bool) -> Self {
        self.verify = verify;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn loc(&self, offset: u64) -> Location {
        Location::file(&self.path).record(self.index, offset)
    }

    fn corrupt(&self, offset: u64, msg: String) -> DataError {
        self.corrupt_at(
            DataError::new(DataErrorKind::Corrupt, self.loc(offset), String::new()),
            msg,
        )
    }

    fn corrupt_at(&self, mut e: DataError, msg: String) -> DataError {
        e.message = msg;
        e.hint(
            "the file is damaged (re-download or re-copy it), or pass --skip-corrupt \
             (data.skip_corrupt: true) to skip bad records and report them at the end",
        )
    }

    /// Reads the next record into `buf` (cleared first). `Ok(None)` at a clean end of file.
    ///
    /// After a framing error (`Corrupt`) whose length cannot be trusted the reader stops: the
    /// next call returns `Ok(None)`. A payload-CRC error leaves the stream positioned at the
    /// next record, so a caller that skips corrupt records can continue.
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> Result<Option<RawRecord>, DataError> {
        if let Some(bad) = self.resync_from.take() {
            if !self.resync(bad)? {
                self.done = true;
            }
        }
        if self.done {
            return Ok(None);
        }
        let start = self.offset;
        let mut header = [0u8; 12];
        let n =
            read_full(&mut self.inner, &mut header).map_err(|e| DataError::io(&self.path, e))?;
        if n == 0 {
            self.done = true;
            return Ok(None);
        }
        if n < 12 {
            self.done = true;
            return Err(self.corrupt(
                start,
                format!("truncated record header: {n} of 12 bytes before end of file"),
            ));
        }
        let len = u64::from_le_bytes(header[..8].try_into().unwrap());
        let len_crc = u32::from_le_bytes(header[8..12].try_into().unwrap());
        if self.verify && masked_crc(&header[..8]) != len_crc {
            self.resync_from = Some(start);
            return Err(self.corrupt(
                start,
                format!(
                    "length CRC mismatch (length field says {len} bytes; stored crc {len_crc:#010x}, computed {:#010x})",
                    masked_crc(&header[..8])
                ),
            ));
        }
        if len > MAX_RECORD_BYTES {
            self.resync_from = Some(start);
            return Err(self.corrupt(start, format!("implausible record length {len} bytes")));
        }
        // Never allocate more than the file can still hold: a 4.7 KB file declaring a 1 GiB
        // record used to allocate 1 GiB per reader thread before failing.
        if let Some(file_len) = self.len {
            let left = file_len.saturating_sub(start + 12);
            if len + 4 > left {
                self.resync_from = Some(start);
                return Err(self.corrupt(
                    start,
                    format!(
                        "truncated record: the header says {len} payload bytes, but only {left} bytes (payload and CRC) are left in the file"
                    ),
                ));
            }
        }
        buf.clear();
        // Incremental for pipes (unknown length): memory follows the bytes that really arrive.
        let got = if self.len.is_some() {
            buf.resize(len as usize, 0);
            read_full(&mut self.inner, buf)
        } else {
            (&mut self.inner).take(len).read_to_end(buf)
        }
        .map_err(|e| DataError::io(&self.path, e))?;
        if got < len as usize {
            self.done = true;
            return Err(self.corrupt(
                start,
                format!("truncated record: payload has {got} of {len} bytes before end of file"),
            ));
        }
        let mut crc = [0u8; 4];
        let got = read_full(&mut self.inner, &mut crc).map_err(|e| DataError::io(&self.path, e))?;
        if got < 4 {
            self.done = true;
            return Err(self.corrupt(
                start,
                format!("truncated record: payload CRC has {got} of 4 bytes before end of file"),
            ));
        }
        let rec = RawRecord {
            index: self.index,
            offset: start,
        };
        self.offset += 12 + len + 4;
        self.index += 1;
        if let Some(last) = self.skipped.last_mut() {
            last.2 += 1;
        }
        if self.verify {
            let stored = u32::from_le_bytes(crc);
            let computed = masked_crc(buf);
            if stored != computed {
                let e = DataError::new(
                    DataErrorKind::Corrupt,
                    Location::file(&self.path).record(rec.index, start),
                    String::new(),
                );
                let e = self.corrupt_at(
                    e,
                    format!(
                        "payload CRC mismatch ({len}-byte payload; stored {stored:#010x}, computed {computed:#010x})"
                    ),
                );
                return Err(e);
            }
        }
        Ok(Some(rec))
    }

    /// Index the next record would get.
    pub fn next_index(&self) -> usize {
        self.index
    }
}

/// Writes TFRecord framing.
pub struct RecordWriter {
    inner: BufWriter<File>,
    path: PathBuf,
}

impl RecordWriter {
    pub fn create(path: impl AsRef<Path>) -> Result<Self, DataError> {
        let path = path.as_ref().to_path_buf();
        let f = File::create(&path).map_err(|e| DataError::io(&path, e))?;
        Ok(RecordWriter {
            inner: BufWriter::with_capacity(1 << 20, f),
            path,
        })
    }

    pub fn write(&mut self, payload: &[u8]) -> Result<(), DataError> {
        let len = (payload.len() as u64).to_le_bytes();
        let w = &mut self.inner;
        (|| -> std::io::Result<()> {
            w.write_all(&len)?;
            w.write_all(&masked_crc(&len).to_le_bytes())?;
            w.write_all(payload)?;
            w.write_all(&masked_crc(payload).to_le_bytes())
        })()
        .map_err(|e| DataError::io(&self.path, e))
    }

    pub fn finish(mut self) -> Result<(), DataError> {
        self.inner
            .flush()
            .map_err(|e| DataError::io(&self.path, e))?;
        self.inner
            .get_ref()
            .sync_all()
            .map_err(|e| DataError::io(&self.path, e))
    }
}

/// Encodes one record's framing into `out` (used by tests to build corrupt files).
pub fn frame_record(payload: &[u8], out: &mut Vec<u8>) {
    let len = (payload.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&masked_crc(payload).to_le_bytes());
}

#[cfg(test)]
mod tests {

    #[test]
    fn crc32c_known_vector() {
        // RFC 3720 B.4: 32 bytes of zeros.
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }
}
