//! `yt8m engine`: the model of a bundle behind standard input and output, for the Python
//! package's `yt8m.Bundle` (one engine process per bundle: libtorch stays out of the Python
//! process, and Python's threads run while the engine computes).
//!
//! The messages are the Open Inference Protocol's REST bodies with Triton's binary extension
//! ([`super::kserve`]), each in a frame: `u64` (little-endian) length of the JSON header, `u64`
//! length of the whole body, the body. On start the engine writes one frame with the model's
//! metadata (the server's, plus `classes`: the names by index); then it answers each request
//! frame with a response frame, in order, until its input ends (exit 0). A request it cannot
//! use gets a frame whose body is `{"error": "...", "kind": K}` (the server's 400 message; K one
//! of [`crate::error::ErrorKind`]'s snake_case names) and the engine
//! goes on; only a broken frame or a failed write ends it (exit 1). One request of its own:
//! a header `{"records": [paths]}` predicts shards as `yt8m predict` reads them ([`records`]).

use super::kserve;
use super::tensor;
use crate::bundle::Bundle;
use crate::error::{Error, Result};
use std::io::{Read, Write};

/// A request body's bound (the server's `--max-body-bytes` default is far lower; a Python
/// batch of 64 full-length videos is 22 MB).
pub const MAX_BODY: u64 = 4 << 30;

fn write_frame(out: &mut dyn Write, json_len: usize, body: &[u8]) -> Result<()> {
    let io = |e: std::io::Error| Error::Internal(format!("engine: writing a response: {e}"));
    out.write_all(&(json_len as u64).to_le_bytes())
        .map_err(io)?;
    out.write_all(&(body.len() as u64).to_le_bytes())
        .map_err(io)?;
    out.write_all(body).map_err(io)?;
    out.flush().map_err(io)
}

/// A request the engine could not answer: the message, and what kind of failure it is
/// ([`crate::error::ErrorKind`]'s names) so the Python side raises the matching exception.
fn error(msg: String) -> (usize, Vec<u8>) {
    error_of_kind(msg, crate::error::ErrorKind::InvalidInput)
}

fn error_of_kind(msg: String, kind: crate::error::ErrorKind) -> (usize, Vec<u8>) {
    let j = serde_json::json!({ "error": msg, "kind": kind })
        .to_string()
        .into_bytes();
    (j.len(), j)
}

/// `{"records": [paths]}`: every video of those shards, read and predicted exactly as
/// `yt8m predict --format npz` does (length-sorted windows, input order kept); the answer's
/// header is `{"npz": bytes}`, its tail the `.npz` (`ids`, `predictions`).
fn records(b: &Bundle, batch_size: usize, list: &serde_json::Value) -> (usize, Vec<u8>) {
    let paths: Option<Vec<String>> = list
        .as_array()
        .and_then(|a| a.iter().map(|x| x.as_str().map(String::from)).collect());
    let Some(paths) = paths.filter(|p| !p.is_empty()) else {
        return error("\"records\" must be a non-empty list of paths".into());
    };
    let opt = crate::predict::PredictOptions {
        top_k: 1,
        batch_size,
        bucket_window: crate::predict::DEFAULT_BUCKET_WINDOW,
        format: crate::predict::Format::Npz,
        score: crate::predict::ScoreFn::Sigmoid,
        show_labels: false,
        skip_corrupt: false,
        segments: None,
        video: Default::default(),
    };
    let mut npz = Vec::new();
    match crate::predict::predict(b, &paths, &opt, &mut npz) {
        Ok(_) => {
            let mut body = serde_json::json!({ "npz": npz.len() })
                .to_string()
                .into_bytes();
            let n = body.len();
            body.extend(npz);
            (n, body)
        }
        Err(e) => error_of_kind(e.to_string(), e.kind()),
    }
}

/// The answer to one request body (`json_len` bytes of JSON, then the binary tail).
fn answer(b: &Bundle, batch_size: usize, json_len: usize, body: &[u8]) -> (usize, Vec<u8>) {
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice(&body[..json_len]) {
        if let Some(list) = m.get("records") {
            return records(b, batch_size, list);
        }
    }
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        "inference-header-content-length",
        axum::http::HeaderValue::from(json_len),
    );
    let mut req = match kserve::parse(&headers, body, MAX_BODY as usize) {
        Ok(r) => r,
        Err(e) => return error(e.0),
    };
    let id = req.id.take();
    let call = super::Call::from(req);
    let (k, wanted) = match call.plan(b.manifest.num_classes) {
        Ok(p) => p,
        Err(e) => return error(e.0),
    };
    let videos = match tensor::videos(&call.inputs, &b.config.feature_spec()) {
        Ok(v) => v,
        Err(e) => return error(e.0),
    };
    crate::threads::adapt_torch_threads();
    let probs = match crate::predict::probabilities(b, &videos, batch_size) {
        Ok(p) => p,
        Err(e) => return error_of_kind(e.to_string(), e.kind()),
    };
    let names: Vec<&str> = wanted.iter().map(|w| w.0).collect();
    let outs = tensor::outputs(&probs, k, &b.names, &names);
    let outs: Vec<_> = outs
        .into_iter()
        .zip(wanted)
        .map(|(o, (_, bin))| (o, bin))
        .collect();
    kserve::response(&b.manifest.architecture, id.as_ref(), &outs)
}

/// Serves `b` on `input` / `output` until `input` ends.
/// In place of the metadata frame when the bundle cannot be loaded: the error frame, so the
/// Python side raises the exception of its kind (a missing bundle is a `FileNotFoundError`).
pub fn refuse(output: &mut dyn Write, e: &Error) -> Result<()> {
    let (n, body) = error_of_kind(e.to_string(), e.kind());
    write_frame(output, n, &body)
}

pub fn run(
    b: &Bundle,
    batch_size: usize,
    input: &mut dyn Read,
    output: &mut dyn Write,
) -> Result<()> {
    let mut meta = tensor::metadata(
        &b.manifest.architecture,
        &b.config.feature_spec(),
        b.manifest.num_classes,
        false,
    );
    meta["classes"] = serde_json::json!(b.names);
    let meta = meta.to_string().into_bytes();
    write_frame(output, meta.len(), &meta)?;
    let mut head = [0u8; 16];
    loop {
        match input.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(Error::Internal(format!("engine: reading a request: {e}"))),
        }
        let json_len = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        let body_len = u64::from_le_bytes(head[8..].try_into().expect("8 bytes"));
        if body_len > MAX_BODY || json_len > body_len {
            return Err(Error::Invalid(format!(
                "engine: a request frame of {body_len} bytes with a {json_len}-byte header: not a yt8m.Bundle request (at most {MAX_BODY} bytes)"
            )));
        }
        // Filled by the read, not zeroed first (a batch of full-length videos is 22 MB).
        let mut body = Vec::with_capacity(body_len as usize);
        let got = input
            .take(body_len)
            .read_to_end(&mut body)
            .map_err(|e| Error::Internal(format!("engine: reading a request body: {e}")))?;
        if got as u64 != body_len {
            return Err(Error::Invalid(format!(
                "engine: the request body ended after {got} of its {body_len} bytes"
            )));
        }
        let (n, reply) = answer(b, batch_size, json_len as usize, &body);
        write_frame(output, n, &reply)?;
    }
}
