//! The Open Inference Protocol's REST messages (KServe v2 / Triton, with Triton's binary tensor
//! extension: a JSON header of `Inference-Header-Content-Length` bytes, then the raw tensors):
//! the typed request a body becomes, and the body of the answer. The wire format is described
//! in `shared/docs/open_inference_protocol.md`; the tensors' own checks are in [`super::tensor`].

use super::tensor::{self, BadRequest, DataType, Input, Output};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

/// One inference request, as the handlers use it.
#[derive(Debug)]
pub struct InferRequest {
    /// Echoed in the answer as the client sent it (the protocol allows any JSON value).
    pub id: Option<Value>,
    pub inputs: Vec<Input>,
    /// `parameters.top_k`: classes per video in the top-k outputs.
    pub top_k: Option<i64>,
    /// `parameters.binary_data_output`: outputs come back binary unless one says otherwise.
    pub all_binary: bool,
    /// `outputs`: the outputs wanted, each binary or JSON; None = every output, in JSON unless
    /// `all_binary`.
    pub outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequestedOutput {
    pub name: String,
    pub binary: bool,
}

// The JSON as sent. Every field is optional here so that a missing one is reported in the
// protocol's words ("inputs[0] has no \"name\"") instead of serde's; unknown fields are
// ignored, as the protocol's extensions add some.
#[derive(Deserialize)]
struct WireRequest {
    id: Option<Value>,
    inputs: Option<Vec<WireInput>>,
    outputs: Option<Vec<WireOutput>>,
    parameters: Option<WireParameters>,
}

#[derive(Deserialize)]
struct WireInput {
    name: Option<String>,
    datatype: Option<String>,
    /// Values, not integers: a bad entry is named with its input.
    shape: Option<Vec<Value>>,
    parameters: Option<WireInputParameters>,
    data: Option<Value>,
}

#[derive(Deserialize)]
struct WireInputParameters {
    binary_data_size: Option<Value>,
}

#[derive(Deserialize)]
struct WireOutput {
    name: Option<String>,
    parameters: Option<WireOutputParameters>,
}

#[derive(Deserialize)]
struct WireOutputParameters {
    binary_data: Option<bool>,
}

#[derive(Deserialize)]
struct WireParameters {
    top_k: Option<Value>,
    binary_data_output: Option<bool>,
}

/// The request in `body` (`headers` for the binary extension's header length); tensors hold
/// at most `max_elements` values each.
pub fn parse(
    headers: &HeaderMap,
    body: &[u8],
    max_elements: usize,
) -> Result<InferRequest, BadRequest> {
    let json_len = json_length(headers, body.len())?;
    let req: WireRequest = serde_json::from_slice(&body[..json_len])
        .map_err(|e| BadRequest(format!("request is not valid JSON for the protocol: {e}")))?;
    let mut bin = &body[json_len..];
    let wire_inputs = req
        .inputs
        .ok_or_else(|| BadRequest("request has no \"inputs\" list".into()))?;
    let mut inputs: Vec<Input> = Vec::with_capacity(wire_inputs.len());
    for (k, i) in wire_inputs.into_iter().enumerate() {
        let input = i.into_input(k, &mut bin, max_elements)?;
        if inputs.iter().any(|o| o.name == input.name) {
            return Err(BadRequest(format!("input '{}' is given twice", input.name)));
        }
        inputs.push(input);
    }
    if !bin.is_empty() {
        return Err(BadRequest(format!(
            "{} bytes after the last binary input: the binary_data_size values do not add up",
            bin.len()
        )));
    }
    let (top_k, all_binary) = match req.parameters {
        None => (None, false),
        Some(p) => {
            let top_k = match p.top_k {
                None => None,
                Some(v) => Some(v.as_i64().ok_or_else(|| {
                    BadRequest(format!("parameter top_k {v} must be an integer"))
                })?),
            };
            (top_k, p.binary_data_output.unwrap_or(false))
        }
    };
    let outputs = req.outputs.map(|outs| {
        outs.into_iter()
            .map(|o| RequestedOutput {
                name: o.name.unwrap_or_default(),
                binary: o
                    .parameters
                    .and_then(|p| p.binary_data)
                    .unwrap_or(all_binary),
            })
            .collect()
    });
    Ok(InferRequest {
        id: req.id,
        inputs,
        top_k,
        all_binary,
        outputs,
    })
}

/// Where the JSON header ends: Triton's `Inference-Header-Content-Length`, else the whole body.
fn json_length(headers: &HeaderMap, body_len: usize) -> Result<usize, BadRequest> {
    match headers.get("inference-header-content-length") {
        None => Ok(body_len),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .filter(|&n| n <= body_len)
            .ok_or_else(|| {
                BadRequest(format!(
                    "Inference-Header-Content-Length {v:?} is not a byte count within the body ({body_len} bytes)"
                ))
            }),
    }
}

impl WireInput {
    /// The `k`-th input checked (name, datatype, shape within `max_elements`), its values
    /// from JSON `data` or taken off the front of the binary tail `bin`.
    fn into_input(
        self,
        k: usize,
        bin: &mut &[u8],
        max_elements: usize,
    ) -> Result<Input, BadRequest> {
        let name = self
            .name
            .ok_or_else(|| BadRequest(format!("inputs[{k}] has no \"name\"")))?;
        let dt = DataType::parse(
            self.datatype
                .as_deref()
                .ok_or_else(|| BadRequest(format!("input '{name}' has no \"datatype\"")))?,
        )?;
        let shape: Vec<usize> = self
            .shape
            .ok_or_else(|| BadRequest(format!("input '{name}' has no \"shape\"")))?
            .iter()
            .map(|d| {
                d.as_u64().map(|d| d as usize).ok_or_else(|| {
                    BadRequest(format!(
                        "input '{name}': shape entries must be non-negative integers"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let n = tensor::numel(&shape, max_elements)?;
        let values = match self.parameters.and_then(|p| p.binary_data_size) {
            Some(size) => {
                let size = size
                    .as_u64()
                    .map(|s| s as usize)
                    .filter(|&s| s <= bin.len())
                    .ok_or_else(|| {
                        BadRequest(format!(
                            "input '{name}': binary_data_size {size} exceeds the {} bytes left in the body",
                            bin.len()
                        ))
                    })?;
                let (raw, rest) = bin.split_at(size);
                *bin = rest;
                tensor::from_raw(dt, raw, n, &name)?
            }
            None => {
                let data = self.data.ok_or_else(|| {
                    BadRequest(format!(
                        "input '{name}' has neither \"data\" nor binary_data_size"
                    ))
                })?;
                let v = tensor::from_json(dt, &data, n, &name)?;
                if name == "tfrecord" || name == "video" {
                    tensor::base64_records(v, &name)?
                } else {
                    v
                }
            }
        };
        Ok(Input {
            name,
            shape,
            values,
        })
    }
}

/// The answer's body and the length of its JSON header (the whole body when no output is
/// binary; else Triton's `Inference-Header-Content-Length`): the JSON (outputs in JSON, or
/// their `binary_data_size`), then the binary outputs' bytes in order.
pub fn response(model: &str, id: Option<&Value>, outputs: &[(Output, bool)]) -> (usize, Vec<u8>) {
    let mut json_outs = Vec::new();
    let mut raw = Vec::new();
    for (o, binary) in outputs {
        let mut j = json!({"name": o.name, "datatype": o.datatype.name(), "shape": o.shape});
        if *binary {
            let r = o.raw();
            j["parameters"] = json!({"binary_data_size": r.len()});
            raw.extend(r);
        } else {
            j["data"] = o.json_data();
        }
        json_outs.push(j);
    }
    let mut head = json!({"model_name": model, "model_version": "1", "outputs": json_outs});
    if let Some(id) = id {
        head["id"] = id.clone();
    }
    let mut body = head.to_string().into_bytes();
    let json_len = body.len();
    body.extend(raw);
    (json_len, body)
}
