//! The Open Inference Protocol's gRPC service (`inference.GRPCInferenceService`, the methods
//! `tritonclient.grpc` calls for inference), on the same queue and model threads as REST.
//! Tensors arrive in `raw_input_contents` (what tritonclient sends) or typed `contents`;
//! answers go back in `raw_output_contents`, as Triton does.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use tonic::{Request, Response, Status};

use super::tensor::{self, DataType, Input, Values};
use super::{Call, Server};

#[allow(clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("inference");
}

/// prost's codec, except that a request that does not decode is INVALID_ARGUMENT: the bytes
/// came from the client, and KServe/Triton clients branch on INVALID_ARGUMENT for "fix your
/// request" (prost answers INTERNAL, which reads as a server bug). Used by the generated service
/// (build.rs `codec_path`).
#[derive(Debug, Clone)]
pub struct RequestCodec<T, U>(std::marker::PhantomData<(T, U)>);

impl<T, U> Default for RequestCodec<T, U> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for RequestCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstCodec::<T, U>::raw_encoder(Default::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(tonic_prost::ProstDecoder::default())
    }
}

/// [`RequestCodec`]'s decoder.
pub struct RequestDecoder<U>(tonic_prost::ProstDecoder<U>);

impl<U: prost::Message + Default> tonic::codec::Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|s| {
            if s.code() == tonic::Code::Internal {
                Status::invalid_argument(format!(
                    "cannot decode the request message: {} (send an inference.ModelInferRequest, as tritonclient does)",
                    s.message()
                ))
            } else {
                s
            }
        })
    }

    fn buffer_settings(&self) -> tonic::codec::BufferSettings {
        self.0.buffer_settings()
    }
}

use pb::grpc_inference_service_server::GrpcInferenceService;
pub use pb::grpc_inference_service_server::GrpcInferenceServiceServer;
use pb::infer_parameter::ParameterChoice;

pub struct Service(pub Arc<Server>);

fn status((code, msg): (StatusCode, String)) -> Status {
    match code {
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => Status::invalid_argument(msg),
        StatusCode::NOT_FOUND => Status::not_found(msg),
        StatusCode::SERVICE_UNAVAILABLE => Status::unavailable(msg),
        StatusCode::GATEWAY_TIMEOUT => Status::deadline_exceeded(msg),
        _ => Status::internal(msg),
    }
}

fn model(s: &Server, name: &str, version: &str) -> Result<Arc<super::Model>, Status> {
    s.model(name, version).map_err(status)
}

fn shape_of(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_i64).collect())
        .unwrap_or_default()
}

fn tensors(list: &serde_json::Value) -> Vec<pb::model_metadata_response::TensorMetadata> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|t| pb::model_metadata_response::TensorMetadata {
            name: t["name"].as_str().unwrap_or("").into(),
            datatype: t["datatype"].as_str().unwrap_or("").into(),
            shape: shape_of(&t["shape"]),
        })
        .collect()
}

/// Typed `contents` of one input as decoded values.
fn from_contents(
    dt: DataType,
    c: &pb::InferTensorContents,
    n: usize,
    name: &str,
) -> Result<Values, tensor::BadRequest> {
    let bad = |got: usize| {
        tensor::BadRequest(format!(
            "input '{name}': {got} values in contents for a shape of {n} elements"
        ))
    };
    let v = match dt {
        DataType::Uint8 => {
            let x: Vec<u8> = c
                .uint_contents
                .iter()
                .map(|&u| {
                    u8::try_from(u).map_err(|_| {
                        tensor::BadRequest(format!("input '{name}': {u} is not a UINT8"))
                    })
                })
                .collect::<Result<_, _>>()?;
            Values::U8(x)
        }
        DataType::Int32 => Values::I64(c.int_contents.iter().map(|&x| x as i64).collect()),
        DataType::Int64 => Values::I64(c.int64_contents.clone()),
        DataType::Fp32 => Values::F32(c.fp32_contents.clone()),
        DataType::Fp64 => Values::F32(c.fp64_contents.iter().map(|&x| x as f32).collect()),
        DataType::Bytes => Values::Bytes(c.bytes_contents.clone()),
    };
    let len = match &v {
        Values::U8(x) => x.len(),
        Values::I64(x) => x.len(),
        Values::F32(x) => x.len(),
        Values::Bytes(x) => x.len(),
    };
    if len != n {
        return Err(bad(len));
    }
    Ok(v)
}

/// The request's `top_k` parameter, when given (an integer of either sign type).
fn top_k_parameter(r: &pb::ModelInferRequest) -> Result<Option<i64>, tensor::BadRequest> {
    match r
        .parameters
        .get("top_k")
        .and_then(|p| p.parameter_choice.as_ref())
    {
        None => Ok(None),
        Some(ParameterChoice::Int64Param(k)) => Ok(Some(*k)),
        Some(ParameterChoice::Uint64Param(k)) => Ok(Some(i64::try_from(*k).unwrap_or(i64::MAX))),
        Some(_) => Err(tensor::BadRequest(
            "parameter top_k must be an integer".into(),
        )),
    }
}

fn call_of(r: pb::ModelInferRequest, max_elements: usize) -> Result<Call, tensor::BadRequest> {
    let raw = &r.raw_input_contents;
    if !raw.is_empty() && raw.len() != r.inputs.len() {
        return Err(tensor::BadRequest(format!(
            "{} raw_input_contents for {} inputs: give one per input (or none)",
            raw.len(),
            r.inputs.len()
        )));
    }
    let mut inputs = Vec::with_capacity(r.inputs.len());
    for (k, i) in r.inputs.iter().enumerate() {
        let dt = DataType::parse(&i.datatype)?;
        let shape: Vec<usize> = i
            .shape
            .iter()
            .map(|&d| {
                usize::try_from(d).map_err(|_| {
                    tensor::BadRequest(format!(
                        "input '{}': shape entries must be non-negative",
                        i.name
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let n = tensor::numel(&shape, max_elements)?;
        let values = match (raw.get(k), &i.contents) {
            (Some(bytes), _) => tensor::from_raw(dt, bytes, n, &i.name)?,
            (None, Some(c)) => from_contents(dt, c, n, &i.name)?,
            (None, None) => {
                return Err(tensor::BadRequest(format!(
                    "input '{}' carries no data",
                    i.name
                )));
            }
        };
        if inputs.iter().any(|o: &Input| o.name == i.name) {
            return Err(tensor::BadRequest(format!(
                "input '{}' is given twice",
                i.name
            )));
        }
        inputs.push(Input {
            name: i.name.clone(),
            shape,
            values,
        });
    }
    let top_k = top_k_parameter(&r)?;
    let outputs = if r.outputs.is_empty() {
        None
    } else {
        Some(
            r.outputs
                .iter()
                .map(|o| super::kserve::RequestedOutput {
                    name: o.name.clone(),
                    binary: true,
                })
                .collect(),
        )
    };
    Ok(Call {
        inputs,
        top_k,
        outputs,
        all_binary: true,
    })
}

#[tonic::async_trait]
impl GrpcInferenceService for Service {
    async fn server_live(
        &self,
        _: Request<pb::ServerLiveRequest>,
    ) -> Result<Response<pb::ServerLiveResponse>, Status> {
        Ok(Response::new(pb::ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<pb::ServerReadyRequest>,
    ) -> Result<Response<pb::ServerReadyResponse>, Status> {
        Ok(Response::new(pb::ServerReadyResponse {
            ready: !self.0.stopping.load(Ordering::SeqCst),
        }))
    }

    async fn model_ready(
        &self,
        r: Request<pb::ModelReadyRequest>,
    ) -> Result<Response<pb::ModelReadyResponse>, Status> {
        let r = r.into_inner();
        let ready =
            model(&self.0, &r.name, &r.version).is_ok() && !self.0.stopping.load(Ordering::SeqCst);
        Ok(Response::new(pb::ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<pb::ServerMetadataRequest>,
    ) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        Ok(Response::new(pb::ServerMetadataResponse {
            name: "yt8m".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: vec!["binary_tensor_data".into()],
        }))
    }

    async fn model_metadata(
        &self,
        r: Request<pb::ModelMetadataRequest>,
    ) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        let r = r.into_inner();
        let m = model(&self.0, &r.name, &r.version)?;
        Ok(Response::new(pb::ModelMetadataResponse {
            name: m.name.clone(),
            versions: vec!["1".into()],
            platform: m.meta["platform"].as_str().unwrap_or("").into(),
            inputs: tensors(&m.meta["inputs"]),
            outputs: tensors(&m.meta["outputs"]),
        }))
    }

    async fn model_infer(
        &self,
        r: Request<pb::ModelInferRequest>,
    ) -> Result<Response<pb::ModelInferResponse>, Status> {
        let t0 = std::time::Instant::now();
        let r = r.into_inner();
        let m = model(&self.0, &r.model_name, &r.model_version)?;
        let id = r.id.clone();
        let result = match call_of(r, self.0.opts.max_body_bytes) {
            Err(e) => Err((StatusCode::BAD_REQUEST, e.0)),
            Ok(call) => super::run_call(&self.0, &m, call, None).await,
        };
        let code = match &result {
            Ok(_) => StatusCode::OK,
            Err((c, _)) => *c,
        };
        m.stats.answered(code, t0);
        let outs = result.map_err(status)?;
        let mut resp = pb::ModelInferResponse {
            model_name: m.name.clone(),
            model_version: "1".into(),
            id,
            ..Default::default()
        };
        for (o, _) in outs {
            resp.raw_output_contents.push(o.raw());
            resp.outputs
                .push(pb::model_infer_response::InferOutputTensor {
                    name: o.name.into(),
                    datatype: o.datatype.name().into(),
                    shape: o.shape.iter().map(|&d| d as i64).collect(),
                    ..Default::default()
                });
        }
        Ok(Response::new(resp))
    }
}
