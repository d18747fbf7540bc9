//! ONNX export of the VSC encoder, written directly as `tract_onnx::pb` protobuf messages
//! (burn has no int8 ONNX export), and a small tract wrapper that loads and runs them.
//!
//! Two graphs, both with input `x`: f32 `[batch, input_dim]`, one raw channel-major
//! window per row (physical units, exactly what `edge_runtime::encoder::Encoder::encode`
//! takes):
//!
//! - **f32** ([`f32_model`]): per-channel `clamp((x − offset) · scale, 0, 1)` as
//!   `Sub, Mul, Clip` with constant per-element vectors, `Gemm → Relu`, three `Gemm`
//!   heads. Outputs [`F32_OUTPUTS`]: `mu`, `logvar`, `log_gamma = −Relu(−v)` (paper
//!   spike head) or `−Softplus(−v)` (sigmoid spike head).
//! - **int8** ([`int8_model`]): the integer semantics of `edge_runtime::encoder`
//!   (module docs there are normative), operator by operator: `Sub, Mul, Clip, Mul(255),
//!   Round, Cast(uint8)` for the input, `MatMulInteger` (uint8 × uint8: the int8 weights
//!   stored +128 with zero point 128) + int32 bias, requantisation as int64 `Mul, Add, Div`
//!   (and `Mod` for the signed floor shift), the spike decision as `Greater` on the γ
//!   accumulator, γ = exp via `Gather` from the same Q15 table with the same interpolation
//!   (for sigmoid heads after the same range reduction and division as
//!   `edge_runtime::spike::sigmoid_q15`). Outputs [`INT8_OUTPUTS`]: the
//!   final sparse code (`spike`, `gamma_q15`, `mu_q`, and their f32 values `gamma`, `mu`)
//!   and every integer intermediate (`x_q`, `hidden_acc`, `h_q`, `mu_acc`, `gamma_acc`),
//!   so a parity test can show *where* two runtimes would diverge.
//!
//!   Runtimes implement different subsets of the integer kernels; every (operator, element
//!   type) pair in both graphs is one that onnxruntime's CPU provider has (it has no int16
//!   `Where`, `Max`, `Min` or `Relu`, for example), so the integer steps run on int32 or
//!   int64 and narrow to int16/uint8 only with a final `Cast`. The tests check the pairs
//!   against a list measured on onnxruntime 1.32; `cargo xtask test` runs the committed
//!   files in onnxruntime itself ([`onnxruntime`]).
//!
//!   Why integer operators and not a QDQ graph (`QuantizeLinear → DequantizeLinear →
//!   MatMul`): QDQ dequantises to f32 before the matrix product, so the result depends on
//!   the runtime's float summation order and cannot be bit-identical to the device.
//!   The weights and scales are still the blob's int8 weights and int32 multipliers.
//!
//! Opset 15, IR version 8; every initializer is stored little-endian in `raw_data`.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use edge_runtime::F32Encoder;
use edge_runtime::encoder::V_Q16_MIN;
use edge_runtime::quant::{LayerParams, QuantParams};
use edge_runtime::spike::{LN2_Q16, MAX_HALVINGS, SpikeHead};
use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::prelude::*;

pub mod bench;
pub mod onnxruntime;
#[cfg(test)]
mod tests;

/// ONNX operator set the graphs are written for (15 for `CastLike`, see [`wire_to_i64`]).
pub const OPSET: i64 = 15;
/// IR version matching [`OPSET`].
pub const IR_VERSION: i64 = 8;
/// Symbolic name of the batch dimension of inputs and outputs.
pub const BATCH_DIM: &str = "batch";
/// Name of the graph input of both models.
pub const INPUT: &str = "x";

/// Outputs of the f32 model, in graph order (each `[batch, latent_dim]` f32).
pub const F32_OUTPUTS: [&str; 3] = ["mu", "logvar", "log_gamma"];

/// Outputs of the int8 model, in graph order.
///
/// | name | type | shape | meaning (edge-runtime name) |
/// |---|---|---|---|
/// | `spike` | bool | J | `spike_bits` bit j |
/// | `gamma_q15` | int16 | J | `SparseCode::gamma_q15` (0 where inactive) |
/// | `mu_q` | int16 | J | `SparseCode::mu_q` (0 where inactive) |
/// | `gamma` | f32 | J | `SparseCode::gamma(j)` |
/// | `mu` | f32 | J | `SparseCode::mu(j)` |
/// | `x_q` | uint8 | M | `IntTrace::x_q` |
/// | `hidden_acc` | int32 | H | `IntTrace::hidden_acc` |
/// | `h_q` | uint8 | H | `IntTrace::h_q` |
/// | `mu_acc` | int32 | J | `IntTrace::mu_acc` |
/// | `gamma_acc` | int32 | J | `IntTrace::gamma_acc` |
pub const INT8_OUTPUTS: [&str; 10] = [
    "spike",
    "gamma_q15",
    "mu_q",
    "gamma",
    "mu",
    "x_q",
    "hidden_acc",
    "h_q",
    "mu_acc",
    "gamma_acc",
];

/// Entries of the γ lookup table (`round(32768 · exp(−k/256))`, k in 0..180), the same
/// table `edge_runtime::encoder::exp_q15` interpolates in.
const EXP_TABLE_LEN: usize = 180;

/// A scalar type that can be an initializer.
trait Element: Copy {
    const DATA_TYPE: DataType;
    fn put_le(self, out: &mut Vec<u8>);
}

macro_rules! element {
    ($t:ty, $dt:ident) => {
        impl Element for $t {
            const DATA_TYPE: DataType = DataType::$dt;
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}
element!(f32, Float);
element!(u8, Uint8);
element!(i8, Int8);
element!(i16, Int16);
element!(i32, Int32);
element!(i64, Int64);

/// An integer attribute.
fn attr_int(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

/// `to` attribute of a `Cast`.
fn cast_to(dt: DataType) -> pb::AttributeProto {
    attr_int("to", dt as i64)
}

/// A `[batch, cols]` tensor value description.
fn value_info(name: &str, dt: DataType, cols: usize) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = |v| Dimension {
        denotation: String::new(),
        value: Some(v),
    };
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: dt as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: vec![
                        dim(Value::DimParam(BATCH_DIM.into())),
                        dim(Value::DimValue(cols as i64)),
                    ],
                }),
            })),
        }),
        doc_string: String::new(),
    }
}

/// Collects nodes, initializers and graph inputs/outputs. Every node has one output,
/// named like the node, so graphs read well in a viewer.
#[derive(Default)]
struct Graph {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
    inputs: Vec<pb::ValueInfoProto>,
    outputs: Vec<pb::ValueInfoProto>,
}

impl Graph {
    /// A constant tensor of shape `dims` (empty = scalar). A name already defined is
    /// reused (shared scalars such as `zero_i64`).
    fn constant<T: Element>(&mut self, name: &str, dims: &[usize], values: &[T]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), values.len(), "{name}");
        let mut raw_data = Vec::with_capacity(std::mem::size_of_val(values));
        for &v in values {
            v.put_le(&mut raw_data);
        }
        if let Some(existing) = self.initializers.iter().find(|t| t.name == name) {
            debug_assert_eq!(existing.raw_data, raw_data, "initializer {name} redefined");
            return name.into();
        }
        self.initializers.push(pb::TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: T::DATA_TYPE as i32,
            name: name.into(),
            raw_data,
            ..Default::default()
        });
        name.into()
    }

    /// A scalar constant.
    fn scalar<T: Element>(&mut self, name: &str, value: T) -> String {
        self.constant(name, &[], &[value])
    }

    /// Node `op_type(inputs)` with output (and node name) `output`.
    fn op(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        attribute: Vec<pb::AttributeProto>,
        output: &str,
    ) -> String {
        self.nodes.push(pb::NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            name: output.into(),
            op_type: op_type.into(),
            attribute,
            ..Default::default()
        });
        output.into()
    }

    fn input(&mut self, name: &str, dt: DataType, cols: usize) {
        self.inputs.push(value_info(name, dt, cols));
    }

    fn output(&mut self, name: &str, dt: DataType, cols: usize) {
        self.outputs.push(value_info(name, dt, cols));
    }

    fn into_model(self, graph_name: &str, doc: &str) -> pb::ModelProto {
        pb::ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            producer_name: "vsc-xtask".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.into(),
            graph: Some(pb::GraphProto {
                node: self.nodes,
                name: graph_name.into(),
                initializer: self.initializers,
                input: self.inputs,
                output: self.outputs,
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// Per-element `(offset, scale)` vectors of a model input whose scaling entries each
/// cover `block_len` consecutive values.
fn per_element_scaling(
    scaling: &[edge_runtime::preprocess::ChannelScaling],
    block_len: usize,
) -> (Vec<f32>, Vec<f32>) {
    scaling
        .iter()
        .flat_map(|s| std::iter::repeat_n((s.offset, s.scale), block_len))
        .unzip()
}

/// The ONNX graphs' input for raw windows (`channels × 128` values each, row-major): the
/// windows themselves for waveform models, their band spectra (computed by edge-runtime,
/// as on the device) for spectrum models.
pub fn model_inputs(
    features: edge_runtime::preprocess::InputFeatures,
    channels: edge_runtime::preprocess::ChannelSet,
    window_dim: usize,
    windows: &[f32],
) -> Result<Vec<f32>> {
    let m = features.input_dim(channels);
    if features == edge_runtime::preprocess::InputFeatures::Waveform {
        return Ok(windows.to_vec());
    }
    let mut out = vec![0f32; windows.len() / window_dim.max(1) * m];
    for (w, o) in windows
        .chunks_exact(window_dim)
        .zip(out.chunks_exact_mut(m))
    {
        features
            .compute(w, o)
            .map_err(|e| anyhow::anyhow!("model input: {e}"))?;
    }
    Ok(out)
}

/// Wires `clamp((x − offset) · scale, 0, 1)` (the device's normalisation, same IEEE
/// operations in the same order) and returns the output name.
fn wire_normalise(
    g: &mut Graph,
    x: &str,
    scaling: &[edge_runtime::preprocess::ChannelScaling],
    block_len: usize,
) -> String {
    let (offset, scale) = per_element_scaling(scaling, block_len);
    let m = offset.len();
    let offset = g.constant("scaling_offset", &[m], &offset);
    let scale = g.constant("scaling_scale", &[m], &scale);
    let zero = g.scalar("zero_f32", 0f32);
    let one = g.scalar("one_f32", 1f32);
    let centred = g.op("Sub", &[x, &offset], vec![], "x_centred");
    let scaled = g.op("Mul", &[&centred, &scale], vec![], "x_scaled");
    g.op("Clip", &[&scaled, &zero, &one], vec![], "x01")
}

/// The f32 encoder graph (see the module docs).
pub fn f32_model(enc: &F32Encoder) -> Result<pb::ModelProto> {
    enc.validate().context("f32 encoder is malformed")?;
    let (m, h, j) = (enc.input_dim, enc.hidden_dim, enc.latent_dim);
    let mut g = Graph::default();
    g.input(INPUT, DataType::Float, m);
    let block = enc.features.scaling_block_len(enc.window_len());
    let x01 = wire_normalise(&mut g, INPUT, &enc.scaling, block);
    let trans_b = || vec![attr_int("transB", 1)];
    let w1 = g.constant("w1", &[h, m], &enc.w1);
    let b1 = g.constant("b1", &[h], &enc.b1);
    let pre = g.op("Gemm", &[&x01, &w1, &b1], trans_b(), "hidden_pre");
    let hidden = g.op("Relu", &[&pre], vec![], "hidden");
    let heads: [(&str, &[f32], &[f32]); 3] = [
        ("mu", &enc.w_mu, &enc.b_mu),
        ("logvar", &enc.w_logvar, &enc.b_logvar),
        ("v", &enc.w_gamma, &enc.b_gamma),
    ];
    for (name, w, b) in heads {
        let w = g.constant(&format!("w_{name}"), &[j, h], w);
        let b = g.constant(&format!("b_{name}"), &[j], b);
        g.op("Gemm", &[&hidden, &w, &b], trans_b(), name);
    }
    let neg_v = g.op("Neg", &["v"], vec![], "neg_v");
    let neg_log_gamma = match enc.spike_head {
        // log γ = min(v, 0), written as −Relu(−v) (the form the paper's code uses).
        SpikeHead::Paper => g.op("Relu", &[&neg_v], vec![], "relu_neg_v"),
        // log γ = log sigmoid(v) = −softplus(−v).
        SpikeHead::Sigmoid => g.op("Softplus", &[&neg_v], vec![], "softplus_neg_v"),
    };
    g.op("Neg", &[&neg_log_gamma], vec![], "log_gamma");
    for name in F32_OUTPUTS {
        g.output(name, DataType::Float, j);
    }
    Ok(g.into_model(
        "vsc_encoder_f32",
        "VSC encoder (f32): raw channel-major window -> mu, logvar, log_gamma",
    ))
}

/// The f32 values and dims of initializer `name` (little-endian `raw_data` as written
/// here, or `float_data` as other tools write it).
fn initializer_f32(graph: &pb::GraphProto, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    let t = graph
        .initializer
        .iter()
        .find(|t| t.name == name)
        .with_context(|| format!("initializer `{name}` is missing"))?;
    if t.data_type != DataType::Float as i32 {
        bail!(
            "initializer `{name}` has data type {}, expected FLOAT ({})",
            t.data_type,
            DataType::Float as i32
        );
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).with_context(|| format!("initializer `{name}`: dim {d}")))
        .collect::<Result<_>>()?;
    let values: Vec<f32> = if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        if t.raw_data.len() % 4 != 0 {
            bail!(
                "initializer `{name}`: {} raw bytes, not a whole number of f32",
                t.raw_data.len()
            );
        }
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    let expected: usize = dims.iter().product();
    if values.len() != expected {
        bail!(
            "initializer `{name}`: {} values for dims {dims:?} ({expected})",
            values.len()
        );
    }
    Ok((dims, values))
}

/// Reads back the encoder of an ONNX file written by [`f32_model`]: weights, biases and
/// normalisation from its initializers, the spike head from its nodes, and what the file
/// does not record (`channels`, `features`; from the int8 blob of the same model).
///
/// Only the names are checked here, not that the nodes compute what [`f32_model`]
/// writes; a caller that needs that compares `f32_model(&read_back).graph` with the file's.
pub fn read_f32_model(
    bytes: &[u8],
    channels: edge_runtime::preprocess::ChannelSet,
    features: edge_runtime::preprocess::InputFeatures,
) -> Result<F32Encoder> {
    let model: pb::ModelProto =
        prost::Message::decode(bytes).context("not an ONNX model (protobuf decode failed)")?;
    let graph = model
        .graph
        .as_ref()
        .context("the ONNX model has no graph")?;
    let matrix = |name: &str| -> Result<(usize, usize, Vec<f32>)> {
        match initializer_f32(graph, name)? {
            (dims, v) if dims.len() == 2 => Ok((dims[0], dims[1], v)),
            (dims, _) => bail!("initializer `{name}` has dims {dims:?}, expected 2"),
        }
    };
    let vector = |name: &str, len: usize| -> Result<Vec<f32>> {
        let (dims, v) = initializer_f32(graph, name)?;
        if dims != [len] {
            bail!("initializer `{name}` has dims {dims:?}, expected [{len}]");
        }
        Ok(v)
    };
    let (h, m, w1) = matrix("w1")?;
    let (j, h_mu, w_mu) = matrix("w_mu")?;
    let mut heads = Vec::new();
    for name in ["w_logvar", "w_v"] {
        let (rows, cols, w) = matrix(name)?;
        if (rows, cols) != (j, h) {
            bail!("initializer `{name}` is {rows}×{cols}, expected {j}×{h}");
        }
        heads.push(w);
    }
    if h_mu != h {
        bail!("initializer `w_mu` has {h_mu} columns, `w1` {h} rows");
    }
    let [w_logvar, w_gamma]: [Vec<f32>; 2] = heads.try_into().expect("two heads pushed");
    let offset = vector("scaling_offset", m)?;
    let scale = vector("scaling_scale", m)?;
    let spike_head = if graph.node.iter().any(|n| n.op_type == "Softplus") {
        SpikeHead::Sigmoid
    } else {
        SpikeHead::Paper
    };
    let mut enc = F32Encoder {
        input_dim: m,
        hidden_dim: h,
        latent_dim: j,
        b1: vector("b1", h)?,
        w1,
        b_mu: vector("b_mu", j)?,
        w_mu,
        b_logvar: vector("b_logvar", j)?,
        w_logvar,
        b_gamma: vector("b_v", j)?,
        w_gamma,
        channels,
        features,
        spike_head,
        scaling: Vec::new(),
    };
    // The file holds one (offset, scale) per input value; the encoder one per block.
    let block = features.scaling_block_len(enc.window_len()).max(1);
    for (b, (offsets, scales)) in offset.chunks(block).zip(scale.chunks(block)).enumerate() {
        let (o, s) = (offsets[0], scales[0]);
        if offsets.iter().chain(scales).any(|v| v.is_nan())
            || offsets.iter().any(|&v| v != o)
            || scales.iter().any(|&v| v != s)
        {
            bail!(
                "scaling block {b} (inputs {}..{}) is not constant, as a {} model's must be",
                b * block,
                (b + 1) * block,
                features.name()
            );
        }
        enc.scaling.push(edge_runtime::preprocess::ChannelScaling {
            offset: o,
            scale: s,
        });
    }
    enc.validate()
        .context("the ONNX file's weights are not a valid encoder for the blob's input")?;
    Ok(enc)
}

/// `[rows][cols]` int8 weights transposed to `[cols][rows]` (MatMulInteger's B) and offset
/// by +128 into uint8, which [`wire_int_layer`] undoes with a zero point of 128.
fn transposed_u8(layer: &LayerParams) -> Vec<u8> {
    let mut out = vec![0u8; layer.rows * layer.cols];
    for (r, row) in layer.weights.chunks_exact(layer.cols).enumerate() {
        for (c, &w) in row.iter().enumerate() {
            out[c * layer.rows + r] = (i16::from(w) + WEIGHT_ZERO_POINT as i16) as u8;
        }
    }
    out
}

/// Zero point of the uint8 weights in the int8 graph: `w_u8 − 128` is the blob's int8 weight.
const WEIGHT_ZERO_POINT: u8 = 128;

/// Wires `acc = x · Wᵀ + bias` in int32 (`MatMulInteger`, uint8 × uint8 with the weights'
/// zero point 128, the same integers as uint8 × int8) for `layer`.
///
/// Why not int8 weights directly: onnxruntime's uint8 × int8 kernel on x86 CPUs without
/// VNNI (AVX2 only) sums pairs of products with `vpmaddubsw`, which saturates at ±32767
/// (2 · 255 · 127 does not fit), so its accumulators differed from the device's on such a
/// CPU (measured with onnxruntime 1.32: off by up to 885,504 on a 64-input row of 255s).
/// Its uint8 × uint8 kernel widens to 16 bits first and is exact.
fn wire_int_layer(g: &mut Graph, x: &str, layer: &LayerParams, name: &str, output: &str) -> String {
    let w = g.constant(
        &format!("{name}_weight_t"),
        &[layer.cols, layer.rows],
        &transposed_u8(layer),
    );
    let x_zero = g.constant("input_zero_point", &[], &[0u8]);
    let w_zero = g.constant("weight_zero_point", &[], &[WEIGHT_ZERO_POINT]);
    let b = g.constant(&format!("{name}_bias"), &[layer.rows], &layer.bias);
    let prod = g.op(
        "MatMulInteger",
        &[x, &w, &x_zero, &w_zero],
        vec![],
        &format!("{name}_matmul"),
    );
    g.op("Add", &[&prod, &b], vec![], output)
}

/// Per-row requantisation constants: multiplier, `2^(s−1)` and `2^s`, all int64, with
/// the shift clamped into 1..=62 as `edge_runtime::encoder::requant` does.
fn requant_constants(g: &mut Graph, layer: &LayerParams, name: &str) -> [String; 3] {
    let shifts: Vec<u32> = layer.shift.iter().map(|&s| s.clamp(1, 62) as u32).collect();
    let mult: Vec<i64> = layer.multiplier.iter().map(|&m| m as i64).collect();
    let half: Vec<i64> = shifts.iter().map(|&s| 1i64 << (s - 1)).collect();
    let pow: Vec<i64> = shifts.iter().map(|&s| 1i64 << s).collect();
    let r = layer.rows;
    [
        g.constant(&format!("{name}_multiplier"), &[r], &mult),
        g.constant(&format!("{name}_round"), &[r], &half),
        g.constant(&format!("{name}_divisor"), &[r], &pow),
    ]
}

/// Widens `x` to int64. Not `Cast(to = INT64)`: tract-onnx maps that to its symbolic
/// dimension type (TDim), whose arithmetic is meant for shapes (a division by 2^s
/// fails there). `CastLike` with an int64 initializer gives a plain int64 tensor.
fn wire_to_i64(g: &mut Graph, x: &str, output: &str) -> String {
    let like = g.scalar("int64_like", 0i64);
    g.op("CastLike", &[x, &like], vec![], output)
}

/// `q = acc·m + 2^(s−1)` in int64; returns `(q, divisor 2^s)`.
fn wire_requant_numerator(
    g: &mut Graph,
    acc: &str,
    layer: &LayerParams,
    name: &str,
) -> (String, String) {
    let [mult, half, pow] = requant_constants(g, layer, name);
    let wide = wire_to_i64(g, acc, &format!("{name}_i64"));
    let prod = g.op("Mul", &[&wide, &mult], vec![], &format!("{name}_scaled"));
    let q = g.op("Add", &[&prod, &half], vec![], &format!("{name}_rounded"));
    (q, pow)
}

/// `floor((acc·m + 2^(s−1)) / 2^s)` for any sign of `acc` (int64):
/// `(q − Mod(q, 2^s)) / 2^s`, exact because the numerator is a multiple of `2^s`.
fn wire_requant_signed(g: &mut Graph, acc: &str, layer: &LayerParams, name: &str) -> String {
    let (q, pow) = wire_requant_numerator(g, acc, layer, name);
    let rem = g.op(
        "Mod",
        &[&q, &pow],
        vec![attr_int("fmod", 0)],
        &format!("{name}_rem"),
    );
    let floored = g.op("Sub", &[&q, &rem], vec![], &format!("{name}_floored"));
    g.op("Div", &[&floored, &pow], vec![], &format!("{name}_requant"))
}

/// The Q15 table `edge_runtime::encoder::exp_q15` interpolates in:
/// `round(32768 · exp(−k/256))`. The device builds it from an integer Taylor series;
/// the tests check the whole γ stage of the graph against `exp_q15` for every `v_q` in
/// its domain, so any difference between the two tables would fail them.
fn exp_table_q15() -> Vec<i64> {
    (0..EXP_TABLE_LEN)
        .map(|k| (32768.0 * (-(k as f64) / 256.0).exp()).round() as i64)
        .collect()
}

/// γ in Q15 from `v_q` (int64, Q16), as `exp_q15`: clamp to `[V_Q16_MIN, 0]`,
/// `d = −v_q`, `k = d / 256`, `f = d − 256k`, `t[k] − ((t[k] − t[k+1])·f + 128) / 256`
/// (non-negative, so the division is the device's shift), clamped to 0..=32767.
/// Returns an int64 tensor.
fn wire_exp_q15(g: &mut Graph, v_q: &str) -> String {
    let table = exp_table_q15();
    let table = g.constant("exp_table_q15", &[table.len()], &table);
    let v_min = g.scalar("v_q16_min", V_Q16_MIN as i64);
    let zero = g.scalar("zero_i64", 0i64);
    let one = g.scalar("one_i64", 1i64);
    let c256 = g.scalar("c256_i64", 256i64);
    let c128 = g.scalar("c128_i64", 128i64);
    let q15_max = g.scalar("q15_max_i64", i16::MAX as i64);
    let lo = g.op("Max", &[v_q, &v_min], vec![], "v_q_lo");
    let clamped = g.op("Min", &[&lo, &zero], vec![], "v_q_clamped");
    let d = g.op("Neg", &[&clamped], vec![], "exp_d");
    let k = g.op("Div", &[&d, &c256], vec![], "exp_k");
    let k256 = g.op("Mul", &[&k, &c256], vec![], "exp_k256");
    let f = g.op("Sub", &[&d, &k256], vec![], "exp_f");
    let k1 = g.op("Add", &[&k, &one], vec![], "exp_k1");
    let t0 = g.op("Gather", &[&table, &k], vec![attr_int("axis", 0)], "exp_t0");
    let t1 = g.op(
        "Gather",
        &[&table, &k1],
        vec![attr_int("axis", 0)],
        "exp_t1",
    );
    let dt = g.op("Sub", &[&t0, &t1], vec![], "exp_dt");
    let dtf = g.op("Mul", &[&dt, &f], vec![], "exp_dtf");
    let dtf_r = g.op("Add", &[&dtf, &c128], vec![], "exp_dtf_rounded");
    let step = g.op("Div", &[&dtf_r, &c256], vec![], "exp_step");
    let interp = g.op("Sub", &[&t0, &step], vec![], "exp_interp");
    let nonneg = g.op("Max", &[&interp, &zero], vec![], "exp_nonneg");
    g.op("Min", &[&nonneg, &q15_max], vec![], "exp_q15")
}

/// γ = sigmoid(v) in Q15 from `v_q` (int64, Q16), as `edge_runtime::spike::sigmoid_q15`:
/// `d = max(v_q, 0)`, `n = min(d / LN2_Q16, MAX_HALVINGS)`, `r = min(d − n·LN2_Q16, LN2_Q16)`,
/// `e = exp_q15(−r) / 2^n`, `min(2^30 / (32768 + e), 32767)`; every division has
/// non-negative operands, so it is the device's shift or truncating division.
fn wire_sigmoid_q15(g: &mut Graph, v_q: &str) -> String {
    let zero = g.scalar("sigmoid_zero_i64", 0i64);
    let ln2 = g.scalar("sigmoid_ln2_q16", LN2_Q16);
    let max_halvings = g.scalar("sigmoid_max_halvings", MAX_HALVINGS);
    let powers: Vec<i64> = (0..=MAX_HALVINGS).map(|n| 1i64 << n).collect();
    let powers = g.constant("sigmoid_pow2", &[powers.len()], &powers);
    let q15_one = g.scalar("sigmoid_q15_one", 32768i64);
    let q30_one = g.scalar("sigmoid_q30_one", 1i64 << 30);
    let q15_max = g.scalar("sigmoid_q15_max", i16::MAX as i64);
    let d = g.op("Max", &[v_q, &zero], vec![], "sigmoid_d");
    let n_all = g.op("Div", &[&d, &ln2], vec![], "sigmoid_n_unclamped");
    let n = g.op("Min", &[&n_all, &max_halvings], vec![], "sigmoid_n");
    let n_ln2 = g.op("Mul", &[&n, &ln2], vec![], "sigmoid_n_ln2");
    let r_all = g.op("Sub", &[&d, &n_ln2], vec![], "sigmoid_r_unclamped");
    let r = g.op("Min", &[&r_all, &ln2], vec![], "sigmoid_r");
    let neg_r = g.op("Neg", &[&r], vec![], "sigmoid_neg_r");
    let e_r = wire_exp_q15(g, &neg_r);
    let pow = g.op(
        "Gather",
        &[&powers, &n],
        vec![attr_int("axis", 0)],
        "sigmoid_2_pow_n",
    );
    let e = g.op("Div", &[&e_r, &pow], vec![], "sigmoid_exp_neg_d");
    let den = g.op("Add", &[&e, &q15_one], vec![], "sigmoid_denominator");
    let gamma = g.op("Div", &[&q30_one, &den], vec![], "sigmoid_unsaturated");
    g.op("Min", &[&gamma, &q15_max], vec![], "sigmoid_q15")
}

/// The int8 encoder graph reproducing `edge_runtime::encoder` bit for bit (see the
/// module docs and [`INT8_OUTPUTS`]).
pub fn int8_model(p: &QuantParams) -> Result<pb::ModelProto> {
    let (m, h, j) = (p.input_dim, p.hidden_dim, p.latent_dim);
    let shapes_ok = p.hidden.rows == h
        && p.hidden.cols == m
        && p.mu.rows == j
        && p.mu.cols == h
        && p.gamma.rows == j
        && p.gamma.cols == h
        && p.gamma_threshold.len() == j
        && p.scaling.len() == p.features.scaling_entries(p.channels, m)
        && p.scaling.len() * p.scaling_block_len() == m;
    if !shapes_ok {
        bail!("quantised model has inconsistent dimensions (M {m}, H {h}, J {j})");
    }
    let mut g = Graph::default();
    g.input(INPUT, DataType::Float, m);

    // 1. Input: x_q = round_half_even(clamp(...) · 255) as uint8.
    let x01 = wire_normalise(&mut g, INPUT, &p.scaling, p.scaling_block_len());
    let c255 = g.scalar("c255_f32", 255f32);
    let x255 = g.op("Mul", &[&x01, &c255], vec![], "x255");
    let rounded = g.op("Round", &[&x255], vec![], "x255_rounded");
    g.op("Cast", &[&rounded], vec![cast_to(DataType::Uint8)], "x_q");

    // 2. Hidden layer: h_q = min(requant(max(acc1, 0)), 255) as uint8.
    wire_int_layer(&mut g, "x_q", &p.hidden, "hidden", "hidden_acc");
    let zero_i32 = g.scalar("zero_i32", 0i32);
    let relu = g.op("Max", &["hidden_acc", &zero_i32], vec![], "hidden_relu");
    // acc ≥ 0 here, so the floor shift is a plain (truncating) integer division.
    let (q, pow) = wire_requant_numerator(&mut g, &relu, &p.hidden, "hidden");
    let hq = g.op("Div", &[&q, &pow], vec![], "hidden_requant");
    let c255_i64 = g.scalar("c255_i64", 255i64);
    let hq = g.op("Min", &[&hq, &c255_i64], vec![], "hidden_saturated");
    g.op("Cast", &[&hq], vec![cast_to(DataType::Uint8)], "h_q");

    // 3. Heads, exact int32 accumulators.
    wire_int_layer(&mut g, "h_q", &p.mu, "mu_head", "mu_acc");
    wire_int_layer(&mut g, "h_q", &p.gamma, "gamma_head", "gamma_acc");

    // 4. Spike bits: acc_g > threshold.
    let thr = g.constant("gamma_threshold", &[j], &p.gamma_threshold);
    g.op("Greater", &["gamma_acc", &thr], vec![], "spike");

    // 5. Active dims: μ in i16 (saturating), γ = exp_q15(v_q); 0 where inactive. The
    // select runs on int64 and only then narrows to int16: onnxruntime's CPU provider
    // has no int16 `Where` (nor int16 `Max`/`Min`), and both values already fit.
    let zero_i64 = g.scalar("zero_i64", 0i64);
    let mu64 = wire_requant_signed(&mut g, "mu_acc", &p.mu, "mu_head");
    let i16_min = g.scalar("i16_min_i64", i16::MIN as i64);
    let i16_max = g.scalar("i16_max_i64", i16::MAX as i64);
    let mu_lo = g.op("Max", &[&mu64, &i16_min], vec![], "mu_lo");
    let mu_sat = g.op("Min", &[&mu_lo, &i16_max], vec![], "mu_saturated");
    let mu_active = g.op("Where", &["spike", &mu_sat, &zero_i64], vec![], "mu_active");
    g.op(
        "Cast",
        &[&mu_active],
        vec![cast_to(DataType::Int16)],
        "mu_q",
    );
    let v_q = wire_requant_signed(&mut g, "gamma_acc", &p.gamma, "gamma_head");
    let gamma64 = match p.spike_head {
        SpikeHead::Paper => wire_exp_q15(&mut g, &v_q),
        SpikeHead::Sigmoid => wire_sigmoid_q15(&mut g, &v_q),
    };
    let gamma_active = g.op(
        "Where",
        &["spike", &gamma64, &zero_i64],
        vec![],
        "gamma_active",
    );
    g.op(
        "Cast",
        &[&gamma_active],
        vec![cast_to(DataType::Int16)],
        "gamma_q15",
    );

    // f32 views, computed as SparseCode::{mu, gamma} do.
    let mu_scale = g.scalar("mu_scale", p.mu_scale);
    let q15_one = g.scalar("q15_one_f32", 32768f32);
    let mu_f = g.op(
        "Cast",
        &["mu_q"],
        vec![cast_to(DataType::Float)],
        "mu_q_f32",
    );
    g.op("Mul", &[&mu_f, &mu_scale], vec![], "mu");
    let g_f = g.op(
        "Cast",
        &["gamma_q15"],
        vec![cast_to(DataType::Float)],
        "gamma_q15_f32",
    );
    g.op("Div", &[&g_f, &q15_one], vec![], "gamma");

    for (name, dt, cols) in [
        ("spike", DataType::Bool, j),
        ("gamma_q15", DataType::Int16, j),
        ("mu_q", DataType::Int16, j),
        ("gamma", DataType::Float, j),
        ("mu", DataType::Float, j),
        ("x_q", DataType::Uint8, m),
        ("hidden_acc", DataType::Int32, h),
        ("h_q", DataType::Uint8, h),
        ("mu_acc", DataType::Int32, j),
        ("gamma_acc", DataType::Int32, j),
    ] {
        g.output(name, dt, cols);
    }
    debug_assert!(g.outputs.iter().map(|o| o.name.as_str()).eq(INT8_OUTPUTS));
    Ok(g.into_model(
        "vsc_encoder_int8",
        "VSC encoder (int8, integer-only): raw channel-major window -> spike bits, \
         gamma (Q15), slab mean (int16) and every integer intermediate; \
         bit-identical to edge_runtime::encoder",
    ))
}

/// Heading of the model card's section on the ONNX files (written by
/// `cargo xtask export-onnx` into the card beside them).
pub const CARD_SECTION: &str = "## ONNX files";

/// One ONNX file as the model card lists it.
pub struct CardFile<'a> {
    pub file_name: String,
    pub bytes: &'a [u8],
    /// What the file computes, one table cell.
    pub contents: String,
}

/// The model card's ONNX section: how the files were made (`command`), their input, each
/// file's size and sha256, what tract measured when they were written (`tract`), and how
/// to run them in onnxruntime (`prefix`: the `--model` of `cargo xtask onnxruntime-check`).
pub fn card_section(
    command: &str,
    input: &str,
    files: &[CardFile<'_>],
    tract: &str,
    prefix: &str,
) -> String {
    use sha2::Digest as _;
    use std::fmt::Write as _;
    let mut s = format!("{CARD_SECTION}\n\n");
    let _ = writeln!(s, "Written by `{command}`. Input `{INPUT}`: {input}.\n");
    let _ = writeln!(s, "| file | bytes | sha256 | outputs |\n|---|---|---|---|");
    for f in files {
        let sha: String = sha2::Sha256::digest(f.bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let _ = writeln!(
            s,
            "| `{}` | {} | `{sha}` | {} |",
            f.file_name,
            f.bytes.len(),
            f.contents
        );
    }
    let _ = writeln!(
        s,
        "\nRun in tract when written: {tract}. `cargo xtask onnxruntime-check --model {prefix}` \
         runs both in onnxruntime {} on the HAR test windows and requires every int8 output \
         bit-identical to edge-runtime and the f32 outputs within {:.0e} of \
         `edge_runtime::F32Encoder` (`cargo xtask test` does this for `models/edge`).",
        onnxruntime::ONNXRUNTIME_VERSION,
        onnxruntime::F32_TOLERANCE
    );
    s
}

/// The ONNX graphs' input `x` of model `p`, in words (for the model card).
pub fn input_description(p: &QuantParams) -> String {
    let (m, c) = (p.input_dim, p.channels.len().max(1));
    match p.features {
        edge_runtime::preprocess::InputFeatures::Waveform => format!(
            "f32 `[batch, {m}]`, one raw window per row ({c} channels × {} samples, \
             channel-major, physical units)",
            m / c
        ),
        edge_runtime::preprocess::InputFeatures::BandSpectrum => format!(
            "f32 `[batch, {m}]`, per row the {c} channels × {} band-spectrum values that \
             `edge_runtime::preprocess::InputFeatures::compute` makes of a raw {}-sample window",
            m / c,
            p.window_len
        ),
    }
}

/// `card` with its [`CARD_SECTION`] replaced by `section` (see [`crate::card::with_section`]).
pub fn with_card_section(card: &str, section: &str) -> String {
    crate::card::with_section(card, CARD_SECTION, section)
}

/// Serialised protobuf bytes of a model.
pub fn to_bytes(model: &pb::ModelProto) -> Vec<u8> {
    prost::Message::encode_to_vec(model)
}

/// A model loaded into tract for a fixed batch size, optimised and ready to run.
#[derive(Clone)]
pub struct TractModel {
    plan: Arc<TypedRunnableModel>,
    pub batch: usize,
    pub input_dim: usize,
}

impl TractModel {
    /// Parses ONNX `bytes`, fixes the input to `[batch, input_dim]` f32, optimises.
    pub fn load(bytes: &[u8], batch: usize, input_dim: usize) -> Result<TractModel> {
        let plan = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .context("tract cannot read the ONNX model")?
            .with_input_fact(0, f32::fact([batch, input_dim]).into())?
            .into_optimized()
            .context("tract cannot optimise the ONNX model")?
            .into_runnable()?;
        Ok(TractModel {
            plan,
            batch,
            input_dim,
        })
    }

    /// The input tensor for `batch` raw windows (row-major `batch × input_dim`).
    pub fn input(&self, windows: &[f32]) -> Result<TValue> {
        if windows.len() != self.batch * self.input_dim {
            bail!(
                "tract input has {} values, expected {} × {}",
                windows.len(),
                self.batch,
                self.input_dim
            );
        }
        Ok(Tensor::from_shape(&[self.batch, self.input_dim], windows)?.into_tvalue())
    }

    /// Runs one batch; outputs in graph order.
    pub fn run(&self, windows: &[f32]) -> Result<TVec<TValue>> {
        self.plan.run(tvec!(self.input(windows)?))
    }

    /// A reusable run state (what a benchmark should time).
    pub fn spawn(&self) -> Result<TypedSimpleState> {
        self.plan.spawn()
    }
}

/// The values of an output tensor.
pub fn values<T: Datum + Copy>(v: &TValue) -> Result<Vec<T>> {
    Ok(v.to_plain_array_view::<T>()?.iter().copied().collect())
}
