//! Just enough protobuf for `tf.train.Example` / `tf.train.SequenceExample`
//! (tensorflow/core/example/{example,feature}.proto), parsed by key with borrowed slices.
//! Packed and unpacked repeated scalars are both accepted; unknown fields are skipped.

/// A wire-format problem; the caller adds file / record context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoError(pub String);

type R<T> = Result<T, ProtoError>;

fn err<T>(msg: impl Into<String>) -> R<T> {
    Err(ProtoError(msg.into()))
}

/// A cursor over one message's bytes.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// One field of a message.
pub enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// A base-128 varint (at most 10 bytes, no bits past 64).
    pub fn varint(&mut self) -> R<u64> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return err("truncated varint");
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                return err("varint overflows 64 bits");
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        err("varint longer than 10 bytes")
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return err(format!(
                "field of {n} bytes runs past the end of its message ({} bytes left)",
                self.buf.len() - self.pos
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Next `(field number, value)`, or `None` at the end.
    pub fn next_field(&mut self) -> R<Option<(u32, Field<'a>)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let num = (tag >> 3) as u32;
        if num == 0 {
            return err("field number 0");
        }
        let f = match tag & 7 {
            0 => Field::Varint(self.varint()?),
            1 => Field::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().unwrap())),
            2 => {
                let n = self.varint()? as usize;
                Field::Bytes(self.take(n)?)
            }
            5 => Field::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().unwrap())),
            w => return err(format!("unsupported wire type {w} (field {num})")),
        };
        Ok(Some((num, f)))
    }
}

/// A decoded `tf.train.Feature`.
#[derive(Debug, Clone, PartialEq)]
pub enum Feature<'a> {
    Bytes(Vec<&'a [u8]>),
    Float(Vec<f32>),
    Int64(Vec<i64>),
    /// A Feature with no kind set.
    Empty,
}

impl Feature<'_> {
    pub fn kind_name(&self) -> &'static str {
        match self {
            Feature::Bytes(_) => "bytes_list",
            Feature::Float(_) => "float_list",
            Feature::Int64(_) => "int64_list",
            Feature::Empty => "empty",
        }
    }
    pub fn len(&self) -> usize {
        match self {
            Feature::Bytes(v) => v.len(),
            Feature::Float(v) => v.len(),
            Feature::Int64(v) => v.len(),
            Feature::Empty => 0,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn parse_list<'a, T>(
    buf: &'a [u8],
    mut on_varint: impl FnMut(u64) -> Option<T>,
    mut on_fixed32: impl FnMut(u32) -> Option<T>,
    packed: impl Fn(&'a [u8], &mut Vec<T>) -> R<()>,
) -> R<Vec<T>> {
    let mut out = Vec::new();
    let mut c = Cursor::new(buf);
    while let Some((num, f)) = c.next_field()? {
        if num != 1 {
            continue;
        }
        match f {
            Field::Bytes(b) => packed(b, &mut out)?,
            Field::Varint(v) => out.extend(on_varint(v)),
            Field::Fixed32(v) => out.extend(on_fixed32(v)),
            Field::Fixed64(_) => return err("unexpected fixed64 in a list"),
        }
    }
    Ok(out)
}

/// Decodes a `Feature` message.
pub fn parse_feature(buf: &[u8]) -> R<Feature<'_>> {
    let mut c = Cursor::new(buf);
    let mut out = Feature::Empty;
    while let Some((num, f)) = c.next_field()? {
        let Field::Bytes(b) = f else { continue };
        out = match num {
            1 => {
                let mut v = Vec::new();
                let mut lc = Cursor::new(b);
                while let Some((n, f)) = lc.next_field()? {
                    if let (1, Field::Bytes(x)) = (n, f) {
                        v.push(x);
                    }
                }
                Feature::Bytes(v)
            }
            2 => Feature::Float(parse_list(
                b,
                |_| None,
                |x| Some(f32::from_bits(x)),
                |p, out| {
                    if p.len() % 4 != 0 {
                        return err(format!(
                            "packed float list of {} bytes (not a multiple of 4)",
                            p.len()
                        ));
                    }
                    out.extend(
                        p.chunks_exact(4)
                            .map(|c| f32::from_le_bytes(c.try_into().unwrap())),
                    );
                    Ok(())
                },
            )?),
            3 => Feature::Int64(parse_list(
                b,
                |x| Some(x as i64),
                |_| None,
                |p, out| {
                    let mut pc = Cursor::new(p);
                    while pc.pos < p.len() {
                        out.push(pc.varint()? as i64);
                    }
                    Ok(())
                },
            )?),
            _ => continue,
        };
    }
    Ok(out)
}

/// Walks a `map<string, V>` message (`Features` or `FeatureLists`): calls `f(key, value bytes)`.
fn walk_map<'a>(buf: &'a [u8], mut f: impl FnMut(&'a [u8], &'a [u8]) -> R<()>) -> R<()> {
    let mut c = Cursor::new(buf);
    while let Some((num, field)) = c.next_field()? {
        let (1, Field::Bytes(entry)) = (num, field) else {
            continue;
        };
        let mut ec = Cursor::new(entry);
        let (mut key, mut val): (&[u8], &[u8]) = (&[], &[]);
        while let Some((n, fv)) = ec.next_field()? {
            match (n, fv) {
                (1, Field::Bytes(k)) => key = k,
                (2, Field::Bytes(v)) => val = v,
                _ => {}
            }
        }
        f(key, val)?;
    }
    Ok(())
}

/// A parsed `Example` or `SequenceExample`. Feature lists stay as raw bytes until asked for.
#[derive(Default)]
pub struct ParsedExample<'a> {
    /// `Example.features` or `SequenceExample.context`, in file order.
    pub features: Vec<(&'a [u8], Feature<'a>)>,
    /// `SequenceExample.feature_lists` entries: key and the raw `FeatureList` bytes.
    pub feature_lists: Vec<(&'a [u8], &'a [u8])>,
    /// True if field 2 (feature_lists) holds at least one list: a SequenceExample.
    pub is_sequence: bool,
}

impl<'a> ParsedExample<'a> {
    pub fn feature(&self, key: &str) -> Option<&Feature<'a>> {
        self.features
            .iter()
            .rev()
            .find(|(k, _)| *k == key.as_bytes())
            .map(|(_, f)| f)
    }
    pub fn feature_list(&self, key: &str) -> Option<&'a [u8]> {
        self.feature_lists
            .iter()
            .rev()
            .find(|(k, _)| *k == key.as_bytes())
            .map(|(_, f)| *f)
    }
    pub fn keys(&self) -> Vec<String> {
        self.features
            .iter()
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect()
    }
    pub fn list_keys(&self) -> Vec<String> {
        self.feature_lists
            .iter()
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect()
    }
}

/// Parses an `Example` (field 1 = Features) or a `SequenceExample`
/// (field 1 = context Features, field 2 = FeatureLists).
pub fn parse_example(buf: &[u8]) -> R<ParsedExample<'_>> {
    let mut out = ParsedExample::default();
    let mut c = Cursor::new(buf);
    while let Some((num, f)) = c.next_field()? {
        let Field::Bytes(b) = f else {
            return err(format!("field {num} of the Example is not a message"));
        };
        match num {
            1 => walk_map(b, |k, v| {
                out.features.push((k, parse_feature(v)?));
                Ok(())
            })?,
            2 => {
                // Real 2018 video-level records carry an empty field 2, so only a non-empty
                // FeatureLists makes a SequenceExample.
                walk_map(b, |k, v| {
                    out.feature_lists.push((k, v));
                    Ok(())
                })?;
                out.is_sequence = !out.feature_lists.is_empty();
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Iterates the `Feature`s of a raw `FeatureList`, calling `f(frame index, feature)`.
pub fn for_each_in_list<'a>(
    list: &'a [u8],
    mut f: impl FnMut(usize, Feature<'a>) -> R<()>,
) -> R<usize> {
    let mut c = Cursor::new(list);
    let mut i = 0;
    while let Some((num, field)) = c.next_field()? {
        if let (1, Field::Bytes(b)) = (num, field) {
            f(i, parse_feature(b)?)?;
            i += 1;
        }
    }
    Ok(i)
}

/// Fast path for frame features: each frame is `Feature{bytes_list{value: [one string]}}`.
/// Calls `f(frame index, bytes of the single value, number of values)`.
pub fn for_each_frame<'a>(
    list: &'a [u8],
    mut f: impl FnMut(usize, &'a [u8], usize) -> R<()>,
) -> R<usize> {
    let mut c = Cursor::new(list);
    let mut i = 0;
    // The header (every tag and length up to the value) of the last frame read as one bytes
    // value, and the value's length: a frame starting with the same header bytes has the same
    // structure, so it is taken without parsing (frames of one list are alike).
    let mut template: Option<(&'a [u8], usize)> = None;
    loop {
        if let Some((hdr, vlen)) = template {
            let rest = &list[c.pos..];
            if rest.len() >= hdr.len() + vlen && rest.starts_with(hdr) {
                f(i, &rest[hdr.len()..hdr.len() + vlen], 1)?;
                c.pos += hdr.len() + vlen;
                i += 1;
                continue;
            }
        }
        let field_start = c.pos;
        let Some((num, field)) = c.next_field()? else {
            break;
        };
        if let (1, Field::Bytes(b)) = (num, field) {
            // The usual encoding is read without building a value list (an allocation per
            // frame); anything else takes the general parser, errors included.
            match single_bytes_value(b) {
                Some(v) => {
                    f(i, v, 1)?;
                    // The value ends the field, so the field is header + value.
                    let value_start = v.as_ptr() as usize - list.as_ptr() as usize;
                    template = Some((&list[field_start..value_start], v.len()));
                }
                None => match parse_feature(b)? {
                    Feature::Bytes(v) => f(i, v.first().copied().unwrap_or(&[]), v.len())?,
                    other => {
                        return err(format!(
                            "frame {i} is a {} (expected bytes_list)",
                            other.kind_name()
                        ));
                    }
                },
            }
            i += 1;
        }
    }
    Ok(i)
}

/// The value of `Feature{bytes_list{value: [x]}}` when encoded as exactly one field holding
/// exactly one field (what `parse_feature` would read as a one-value bytes list).
fn single_bytes_value(b: &[u8]) -> Option<&[u8]> {
    let mut c = Cursor::new(b);
    let Ok(Some((1, Field::Bytes(list)))) = c.next_field() else {
        return None;
    };
    if c.pos != b.len() {
        return None;
    }
    let mut lc = Cursor::new(list);
    let Ok(Some((1, Field::Bytes(v)))) = lc.next_field() else {
        return None;
    };
    (lc.pos == list.len()).then_some(v)
}

// ---------------------------------------------------------------------------------------------
// Encoding (for `yt8m synth` and tests).

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn put_bytes_field(out: &mut Vec<u8>, num: u32, bytes: &[u8]) {
    put_varint(out, ((num as u64) << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A feature value to encode.
pub enum EncFeature<'a> {
    Bytes(Vec<&'a [u8]>),
    Float(&'a [f32]),
    Int64(&'a [i64]),
}

/// Serialized `Feature` (packed scalars, as TensorFlow writes them).
pub fn encode_feature(f: &EncFeature) -> Vec<u8> {
    let mut list = Vec::new();
    let num = match f {
        EncFeature::Bytes(v) => {
            for b in v {
                put_bytes_field(&mut list, 1, b);
            }
            1
        }
        EncFeature::Float(v) => {
            if !v.is_empty() {
                let mut p = Vec::with_capacity(v.len() * 4);
                for x in v.iter() {
                    p.extend_from_slice(&x.to_le_bytes());
                }
                put_bytes_field(&mut list, 1, &p);
            }
            2
        }
        EncFeature::Int64(v) => {
            if !v.is_empty() {
                let mut p = Vec::new();
                for &x in v.iter() {
                    put_varint(&mut p, x as u64);
                }
                put_bytes_field(&mut list, 1, &p);
            }
            3
        }
    };
    let mut out = Vec::with_capacity(list.len() + 8);
    put_bytes_field(&mut out, num, &list);
    out
}

fn encode_map(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in entries {
        let mut e = Vec::with_capacity(k.len() + v.len() + 8);
        put_bytes_field(&mut e, 1, k.as_bytes());
        put_bytes_field(&mut e, 2, v);
        put_bytes_field(&mut out, 1, &e);
    }
    out
}

/// Serialized `Example{features}` from encoded features.
pub fn encode_example(features: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes_field(&mut out, 1, &encode_map(features));
    out
}

/// Serialized `SequenceExample{context, feature_lists}`; each list is a list of encoded Features.
pub fn encode_sequence_example(
    context: &[(&str, Vec<u8>)],
    lists: &[(&str, Vec<Vec<u8>>)],
) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes_field(&mut out, 1, &encode_map(context));
    let mut fl_entries = Vec::new();
    for (k, feats) in lists {
        let mut fl = Vec::new();
        for f in feats {
            // `f` is already an encoded Feature message body.
            put_bytes_field(&mut fl, 1, f);
        }
        fl_entries.push((*k, fl));
    }
    put_bytes_field(&mut out, 2, &encode_map(&fl_entries));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `for_each_frame` by the general parser alone: what the fast paths must reproduce.
    fn frames_reference(list: &[u8]) -> R<Vec<(Vec<u8>, usize)>> {
        let mut out = Vec::new();
        for_each_in_list(list, |i, feat| match feat {
            Feature::Bytes(v) => {
                out.push((v.first().copied().unwrap_or(&[]).to_vec(), v.len()));
                Ok(())
            }
            other => err(format!(
                "frame {i} is a {} (expected bytes_list)",
                other.kind_name()
            )),
        })?;
        Ok(out)
    }

    fn frames_fast(list: &[u8]) -> R<Vec<(Vec<u8>, usize)>> {
        let mut out = Vec::new();
        for_each_frame(list, |_, v, n| {
            out.push((v.to_vec(), n));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn frame_fast_paths_equal_the_general_parser() {
        let frame = |v: &[u8]| encode_feature(&EncFeature::Bytes(vec![v]));
        // A frame with a two-byte varint for a 1-byte length (legal, non-minimal).
        let padded = {
            let mut inner = vec![0x0a, 0x81, 0x00, 7];
            let mut list = vec![0x0a];
            put_varint(&mut list, inner.len() as u64);
            list.append(&mut inner);
            list
        };
        let cases: Vec<Vec<Vec<u8>>> = vec![
            vec![frame(b"abcd"), frame(b"efgh"), frame(b"ijkl")],
            vec![frame(b"abcd"), frame(b"xyz"), frame(b"abcd"), frame(b"")],
            vec![frame(b"abcd"), padded.clone(), frame(b"mnop")],
            vec![
                frame(b"ab"),
                encode_feature(&EncFeature::Bytes(vec![b"c", b"d"])),
                frame(b"ef"),
            ],
            vec![
                frame(b"ab"),
                encode_feature(&EncFeature::Int64(&[5])),
                frame(b"cd"),
            ],
            vec![frame(b"ab"), frame(b"cd")[..3].to_vec()],
        ];
        for (k, feats) in cases.iter().enumerate() {
            let mut list = Vec::new();
            for f in feats {
                put_bytes_field(&mut list, 1, f);
            }
            let (fast, slow) = (frames_fast(&list), frames_reference(&list));
            assert_eq!(fast, slow, "case {k}");
            // Cut anywhere: the same frames or the same error.
            for cut in 0..list.len() {
                assert_eq!(
                    frames_fast(&list[..cut]),
                    frames_reference(&list[..cut]),
                    "case {k} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn roundtrip_example_and_unpacked_lists() {
        let labels = [3i64, 7, 3861];
        let rgb = [0.5f32, -1.0];
        let ex = encode_example(&[
            ("labels", encode_feature(&EncFeature::Int64(&labels))),
            ("id", encode_feature(&EncFeature::Bytes(vec![b"abcd"]))),
            ("mean_rgb", encode_feature(&EncFeature::Float(&rgb))),
        ]);
        let p = parse_example(&ex).unwrap();
        assert!(!p.is_sequence);
        assert_eq!(p.feature("id"), Some(&Feature::Bytes(vec![&b"abcd"[..]])));
        assert_eq!(p.feature("labels"), Some(&Feature::Int64(labels.to_vec())));
        assert_eq!(p.feature("mean_rgb"), Some(&Feature::Float(rgb.to_vec())));

        // Unpacked int64 list: Int64List{ value: 5, value: 9 } as separate varint fields.
        let unpacked_list = [0x08, 5, 0x08, 9];
        let mut feat = Vec::new();
        put_bytes_field(&mut feat, 3, &unpacked_list);
        assert_eq!(parse_feature(&feat).unwrap(), Feature::Int64(vec![5, 9]));
        // Unpacked float list: fixed32 fields.
        let mut fl = vec![0x0d];
        fl.extend_from_slice(&1.5f32.to_le_bytes());
        let mut feat = Vec::new();
        put_bytes_field(&mut feat, 2, &fl);
        assert_eq!(parse_feature(&feat).unwrap(), Feature::Float(vec![1.5]));
    }

    #[test]
    fn truncated_message_is_an_error() {
        let ex = encode_example(&[("id", encode_feature(&EncFeature::Bytes(vec![b"abcd"])))]);
        assert!(parse_example(&ex[..ex.len() - 2]).is_err());
    }
}
