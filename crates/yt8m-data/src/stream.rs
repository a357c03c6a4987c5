//! Copies and fills that bypass the cache (x86-64 non-temporal stores), for the loader's
//! batches: a batch of 128 long videos is 44 MB, read by the model much later, so ordinary
//! stores only evict useful lines and first read every destination line from memory
//! (read-for-ownership). The loader is bound by writes to memory (docs/benchmarks.md,
//! "Python package"), so its copies and padding use these.
//!
//! The stores are weakly ordered: call [`fence`] before another thread may read what was
//! written (the loader does once per batch, before sending it).

/// How a copy or fill writes its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// Ordinary stores: the destination stays in the cache (a small batch the model reads at
    /// once).
    Cached,
    /// Non-temporal stores ([`copy`], [`copy_rows`], [`zero`]): call [`fence`] before another
    /// thread reads the destination.
    Streaming,
}

impl Store {
    /// Copies `src` into `dst` (equal lengths).
    #[inline]
    pub fn copy(self, dst: &mut [u8], src: &[u8]) {
        match self {
            Store::Cached => dst.copy_from_slice(src),
            Store::Streaming => copy(dst, src),
        }
    }

    /// Packs `rows` rows of `width` bytes, `stride` bytes apart in `src`, into `dst`.
    pub fn copy_rows(self, dst: &mut [u8], src: &[u8], rows: usize, width: usize, stride: usize) {
        match self {
            Store::Cached => {
                for (r, d) in dst.chunks_exact_mut(width).take(rows).enumerate() {
                    d.copy_from_slice(&src[r * stride..r * stride + width]);
                }
            }
            Store::Streaming => copy_rows(dst, src, rows, width, stride),
        }
    }

    /// Fills `dst` with zeros.
    #[inline]
    pub fn zero(self, dst: &mut [u8]) {
        match self {
            Store::Cached => dst.fill(0),
            Store::Streaming => zero(dst),
        }
    }
}

/// Copies `src` into `dst` (equal lengths) without pulling `dst` into the cache.
#[inline]
pub fn copy(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "stream::copy of unequal lengths");
    #[cfg(target_arch = "x86_64")]
    {
        // Head up to 16-byte alignment of dst, then 16-byte streaming stores, then the tail.
        let head = dst.as_ptr().align_offset(16).min(dst.len());
        dst[..head].copy_from_slice(&src[..head]);
        let body = (dst.len() - head) / 16 * 16;
        // SAFETY: dst[head..head + body] is 16-byte aligned (head made it so) and inside dst,
        // src[head..head + body] inside src (equal lengths).
        unsafe { stream_body(dst.as_mut_ptr().add(head), src.as_ptr().add(head), body) };
        let done = head + body;
        dst[done..].copy_from_slice(&src[done..]);
    }
    #[cfg(not(target_arch = "x86_64"))]
    dst.copy_from_slice(src);
}

/// Copies `rows` rows of `width` bytes, the first at `src[0]` and each `stride` bytes after
/// the previous, into `dst` (`rows * width` bytes, packed) without pulling `dst` into the
/// cache, with one bounds check for all rows.
pub fn copy_rows(dst: &mut [u8], src: &[u8], rows: usize, width: usize, stride: usize) {
    assert_eq!(
        dst.len(),
        rows * width,
        "stream::copy_rows: wrong destination size"
    );
    if rows == 0 {
        return;
    }
    assert!(
        stride >= width && (rows - 1) * stride + width <= src.len(),
        "stream::copy_rows: rows outside the source"
    );
    #[cfg(target_arch = "x86_64")]
    if width % 16 == 0 && (dst.as_ptr() as usize) % 16 == 0 {
        for r in 0..rows {
            if r + PREFETCH_ROWS < rows {
                // SAFETY: row r + PREFETCH_ROWS is inside src (the assert above); a prefetch
                // never faults anyway.
                unsafe { prefetch(src.as_ptr().add((r + PREFETCH_ROWS) * stride), width) };
            }
            // SAFETY: src[r * stride..r * stride + width] is inside src (the assert above),
            // dst[r * width..(r + 1) * width] inside dst and 16-byte aligned (dst is, and
            // width is a multiple of 16).
            unsafe {
                stream_body(
                    dst.as_mut_ptr().add(r * width),
                    src.as_ptr().add(r * stride),
                    width,
                )
            };
        }
        return;
    }
    for (r, d) in dst.chunks_exact_mut(width).enumerate() {
        copy(d, &src[r * stride..r * stride + width]);
    }
}

/// Rows read ahead by [`copy_rows`]: the hardware prefetcher stops at each 4 KB page of the
/// map, so the first lines of every page were demand misses (5–8 % of an epoch here).
const PREFETCH_ROWS: usize = 4;

/// Asks for the `n` bytes at `p` to be brought into the cache.
///
/// # Safety
/// None needed for correctness (a prefetch never faults); `p..p + n` should be one object.
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn prefetch(p: *const u8, n: usize) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    let mut o = 0;
    while o < n {
        // SAFETY: prefetching is a hint; it reads nothing architecturally.
        unsafe { _mm_prefetch(p.wrapping_add(o) as *const i8, _MM_HINT_T0) };
        o += 64;
    }
}

/// Asks for `data` to be brought into the cache (a hint; nothing on other architectures).
#[inline]
pub fn prefetch_range(data: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the range is one slice; a prefetch never faults.
    unsafe {
        prefetch(data.as_ptr(), data.len())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// Streams `n` bytes (a multiple of 16) from `s` to `d`, a cache line per step: the line's four
/// stores meet in one write-combining buffer, and its loads are issued before the stores (1.4x
/// a 16-byte step).
///
/// # Safety
/// `d` is 16-byte aligned; `d[..n]` is writable and `s[..n]` readable; `n % 16 == 0`.
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn stream_body(d: *mut u8, s: *const u8, n: usize) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
    // SAFETY: the caller's contract; SSE2 is part of x86-64.
    unsafe {
        let mut i = 0;
        while i + 64 <= n {
            let a = _mm_loadu_si128(s.add(i) as *const __m128i);
            let b = _mm_loadu_si128(s.add(i + 16) as *const __m128i);
            let c = _mm_loadu_si128(s.add(i + 32) as *const __m128i);
            let e = _mm_loadu_si128(s.add(i + 48) as *const __m128i);
            _mm_stream_si128(d.add(i) as *mut __m128i, a);
            _mm_stream_si128(d.add(i + 16) as *mut __m128i, b);
            _mm_stream_si128(d.add(i + 32) as *mut __m128i, c);
            _mm_stream_si128(d.add(i + 48) as *mut __m128i, e);
            i += 64;
        }
        while i < n {
            let v = _mm_loadu_si128(s.add(i) as *const __m128i);
            _mm_stream_si128(d.add(i) as *mut __m128i, v);
            i += 16;
        }
    }
}

/// Fills `dst` with zeros without pulling it into the cache.
#[inline]
pub fn zero(dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        let head = dst.as_ptr().align_offset(16).min(dst.len());
        dst[..head].fill(0);
        let body = (dst.len() - head) / 16 * 16;
        // SAFETY: as in `copy`: aligned stores inside dst[head..head + body].
        unsafe {
            use std::arch::x86_64::{__m128i, _mm_setzero_si128, _mm_stream_si128};
            let d = dst.as_mut_ptr().add(head);
            let z = _mm_setzero_si128();
            let mut i = 0;
            while i < body {
                _mm_stream_si128(d.add(i) as *mut __m128i, z);
                i += 16;
            }
        }
        dst[head + body..].fill(0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    dst.fill(0);
}

/// Orders the streaming stores before any store after it (so before the hand-over to another
/// thread).
#[inline]
pub fn fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of x86-64.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_rows_packs_strided_rows_at_every_width_and_alignment() {
        let src: Vec<u8> = (0..2000u32).map(|i| (i * 13 + 5) as u8).collect();
        for (width, stride) in [
            (16, 16),
            (16, 19),
            (128, 131),
            (1024, 1027),
            (20, 23),
            (1, 1),
        ] {
            for start in [0, 1, 16] {
                let rows = (src.len() - width) / stride + 1;
                let rows = rows.min(7);
                let mut buf = vec![0xAAu8; start + rows * width + 5];
                super::copy_rows(
                    &mut buf[start..start + rows * width],
                    &src,
                    rows,
                    width,
                    stride,
                );
                super::fence();
                for r in 0..rows {
                    let got = &buf[start + r * width..start + (r + 1) * width];
                    assert_eq!(got, &src[r * stride..r * stride + width], "row {r}");
                }
                assert!(buf[..start].iter().all(|&b| b == 0xAA));
                assert!(buf[start + rows * width..].iter().all(|&b| b == 0xAA));
                // Ordinary stores write the same bytes.
                let mut cached = vec![0xAAu8; buf.len()];
                let dst = &mut cached[start..start + rows * width];
                super::Store::Cached.copy_rows(dst, &src, rows, width, stride);
                assert_eq!(cached, buf);
            }
        }
        super::copy_rows(&mut [], &src, 0, 1024, 1027);
    }

    #[test]
    #[should_panic(expected = "rows outside the source")]
    fn copy_rows_refuses_rows_past_the_source() {
        let mut dst = vec![0u8; 64];
        super::copy_rows(&mut dst, &[0u8; 40], 2, 32, 33);
    }

    #[test]
    fn copy_and_zero_write_exactly_their_range_at_every_alignment() {
        let src: Vec<u8> = (0..300u32).map(|i| (i * 7 + 1) as u8).collect();
        for start in 0..20 {
            for len in [0, 1, 15, 16, 17, 31, 64, 100, 255] {
                let mut buf = vec![0xAAu8; 320];
                super::copy(&mut buf[start..start + len], &src[..len]);
                super::fence();
                assert_eq!(&buf[start..start + len], &src[..len]);
                assert!(buf[..start].iter().all(|&b| b == 0xAA));
                assert!(buf[start + len..].iter().all(|&b| b == 0xAA));
                super::zero(&mut buf[start..start + len]);
                super::fence();
                assert!(buf[start..start + len].iter().all(|&b| b == 0));
                assert!(buf[..start].iter().all(|&b| b == 0xAA));
                assert!(buf[start + len..].iter().all(|&b| b == 0xAA));
            }
        }
    }
}
