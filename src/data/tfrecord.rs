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
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
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
        Ok(RecordReader {
            inner: BufReader::with_capacity(1 << 20, f),
            path,
            offset: 0,
            index: 0,
            verify: true,
            done: false,
        })
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
            self.done = true;
            return Err(self.corrupt(
                start,
                format!(
                    "length CRC mismatch (length field says {len} bytes; stored crc {len_crc:#010x}, computed {:#010x})",
                    masked_crc(&header[..8])
                ),
            ));
        }
        if len > MAX_RECORD_BYTES {
            self.done = true;
            return Err(self.corrupt(start, format!("implausible record length {len} bytes")));
        }
        buf.clear();
        buf.resize(len as usize, 0);
        let got = read_full(&mut self.inner, buf).map_err(|e| DataError::io(&self.path, e))?;
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
