//! Parity of the ONNX exports run in tract against edge-runtime (f32 reference and int8
//! encoder) and against the burn model.

use super::bench::Rng;
use super::*;
use edge_runtime::blob::ModelBlob;
use edge_runtime::encoder::{Encoder, IntTrace, SparseCode, exp_q15};
use edge_runtime::preprocess::{ChannelSet, WINDOW_LEN};
use edge_runtime::spike::sigmoid_q15;

/// `n` raw windows; the random encoders map [−2, 2] onto [0, 1], so values in
/// [−2.5, 2.5] also exercise the clamp at both ends.
fn random_windows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    (0..n * dim).map(|_| rng.uniform(-2.5, 2.5)).collect()
}

/// Smooth-ish windows (a random walk per channel), closer to real signals than noise,
/// so the hidden layer sees correlated inputs and the heads a realistic mix of
/// active and inactive dims.
fn walk_windows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let mut v = rng.uniform(-1.5, 1.5);
        for i in 0..dim {
            if i % WINDOW_LEN == 0 {
                v = rng.uniform(-1.5, 1.5);
            }
            v = (v + rng.uniform(-0.15, 0.15)).clamp(-2.2, 2.2);
            out.push(v);
        }
    }
    out
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// The `edge` preset's shape: acc-only (6 channels), H = 128, J = 32.
fn edge_encoder(seed: u64) -> F32Encoder {
    F32Encoder::random(ChannelSet::ACC_ONLY, WINDOW_LEN, 128, 32, seed)
}

#[test]
fn f32_export_matches_reference_encoder() {
    for head in SpikeHead::ALL {
        f32_export_matches_reference_encoder_for(head);
    }
}

fn f32_export_matches_reference_encoder_for(head: SpikeHead) {
    let enc = edge_encoder(7).with_spike_head(head);
    let bytes = to_bytes(&f32_model(&enc).unwrap());
    let n = 24;
    let x = random_windows(n, enc.input_dim, 11);
    let model = TractModel::load(&bytes, n, enc.input_dim).unwrap();
    let out = model.run(&x).unwrap();
    assert_eq!(out.len(), F32_OUTPUTS.len());
    let got: Vec<Vec<f32>> = out.iter().map(|t| values::<f32>(t).unwrap()).collect();
    let mut want = [Vec::new(), Vec::new(), Vec::new()];
    for w in x.chunks_exact(enc.input_dim) {
        let (mu, logvar, log_gamma) = enc.forward(w);
        want[0].extend(mu);
        want[1].extend(logvar);
        want[2].extend(log_gamma);
    }
    for (k, name) in F32_OUTPUTS.iter().enumerate() {
        let d = max_abs_diff(&got[k], &want[k]);
        assert!(d <= 1e-4, "{name}: max abs diff {d}");
    }
    // The comparison is not vacuous: outputs vary and γ is on both sides of ½.
    let ln_half = 0.5f32.ln();
    assert!(want[0].iter().any(|&v| v.abs() > 0.1));
    assert!(want[2].iter().any(|&v| v > ln_half) && want[2].iter().any(|&v| v < ln_half - 0.1));
    if head == SpikeHead::Paper {
        assert!(want[2].contains(&0.0));
    }
}

#[test]
fn f32_export_matches_burn_model() {
    use host_trainer::model::TrainConfig;
    use host_trainer::train::{InputScaling, RunMeta, TrainedModel, init_net};

    let channels = ChannelSet::ACC_ONLY;
    let cfg = TrainConfig::preset("edge", channels.len() * WINDOW_LEN).unwrap();
    let device = burn::tensor::Device::flex();
    let net = init_net(&cfg, None, &device);
    let scaling = (0..channels.len())
        .map(|c| edge_runtime::preprocess::ChannelScaling::from_min_max(-2.0 + c as f32 * 0.1, 2.0))
        .collect();
    let meta = RunMeta {
        train: cfg,
        scaling: InputScaling::HarChannels {
            channel_bits: channels.bits(),
            window_len: WINDOW_LEN,
            scaling,
            features: edge_runtime::preprocess::InputFeatures::Waveform,
        },
        train_rows: 0,
    };
    let trained = TrainedModel::from_parts(meta, net, device);
    let enc = trained.to_f32_encoder().unwrap();
    let n = 16;
    let x = walk_windows(n, enc.input_dim, 5);
    let x01: Vec<f32> = x
        .chunks_exact(enc.input_dim)
        .flat_map(|w| enc.normalise(w).unwrap())
        .collect();
    let codes = trained.encode(&x01, n).unwrap();

    let bytes = to_bytes(&f32_model(&enc).unwrap());
    let out = TractModel::load(&bytes, n, enc.input_dim)
        .unwrap()
        .run(&x)
        .unwrap();
    let mu = values::<f32>(&out[0]).unwrap();
    let logvar = values::<f32>(&out[1]).unwrap();
    let gamma: Vec<f32> = values::<f32>(&out[2])
        .unwrap()
        .iter()
        .map(|v| v.exp())
        .collect();
    for (name, got, want) in [
        ("mu", &mu, &codes.mu),
        ("logvar", &logvar, &codes.logvar),
        ("gamma", &gamma, &codes.gamma),
    ] {
        let d = max_abs_diff(got, want);
        assert!(d <= 1e-4, "burn vs tract {name}: max abs diff {d}");
    }
}

/// Quantises `enc` on calibration windows and returns the blob bytes.
fn blob_for(enc: &F32Encoder, seed: u64) -> Vec<u8> {
    let calib = walk_windows(64, enc.input_dim, seed);
    let calib: Vec<&[f32]> = calib.chunks_exact(enc.input_dim).collect();
    edge_runtime::quant::quantise(enc, &calib).unwrap()
}

/// Everything the int8 graph outputs, for one batch, from the edge-runtime encoder.
#[derive(Default, Debug, PartialEq)]
struct IntOutputs {
    spike: Vec<bool>,
    gamma_q15: Vec<i16>,
    mu_q: Vec<i16>,
    gamma: Vec<f32>,
    mu: Vec<f32>,
    x_q: Vec<u8>,
    hidden_acc: Vec<i32>,
    h_q: Vec<u8>,
    mu_acc: Vec<i32>,
    gamma_acc: Vec<i32>,
}

fn edge_runtime_outputs(blob: &ModelBlob<'_>, x: &[f32]) -> IntOutputs {
    let (m, h, j) = (blob.input_dim(), blob.hidden_dim(), blob.latent_dim());
    let enc = Encoder::new(*blob);
    let mut o = IntOutputs::default();
    let mut trace = IntTrace::default();
    let mut code = SparseCode::default();
    for w in x.chunks_exact(m) {
        enc.encode_traced(w, &mut code, &mut trace).unwrap();
        // encode (no trace) must give the same code.
        let mut plain = SparseCode::default();
        enc.encode(w, &mut plain).unwrap();
        assert_eq!(plain, code);
        o.spike.extend((0..j).map(|k| code.is_active(k)));
        o.gamma_q15.extend(&code.gamma_q15[..j]);
        o.mu_q.extend(&code.mu_q[..j]);
        o.gamma.extend((0..j).map(|k| code.gamma(k)));
        o.mu.extend((0..j).map(|k| code.mu(k)));
        o.x_q.extend(&trace.x_q[..m]);
        o.hidden_acc.extend(&trace.hidden_acc[..h]);
        o.h_q.extend(&trace.h_q[..h]);
        o.mu_acc.extend(&trace.mu_acc[..j]);
        o.gamma_acc.extend(&trace.gamma_acc[..j]);
    }
    o
}

fn tract_outputs(model: &TractModel, x: &[f32]) -> IntOutputs {
    let out = model.run(x).unwrap();
    assert_eq!(out.len(), INT8_OUTPUTS.len());
    IntOutputs {
        spike: values(&out[0]).unwrap(),
        gamma_q15: values(&out[1]).unwrap(),
        mu_q: values(&out[2]).unwrap(),
        gamma: values(&out[3]).unwrap(),
        mu: values(&out[4]).unwrap(),
        x_q: values(&out[5]).unwrap(),
        hidden_acc: values(&out[6]).unwrap(),
        h_q: values(&out[7]).unwrap(),
        mu_acc: values(&out[8]).unwrap(),
        gamma_acc: values(&out[9]).unwrap(),
    }
}

/// Field-by-field, so a failure names the first stage that differs.
fn assert_identical(got: &IntOutputs, want: &IntOutputs) {
    assert_eq!(got.x_q, want.x_q, "x_q");
    assert_eq!(got.hidden_acc, want.hidden_acc, "hidden_acc");
    assert_eq!(got.h_q, want.h_q, "h_q");
    assert_eq!(got.mu_acc, want.mu_acc, "mu_acc");
    assert_eq!(got.gamma_acc, want.gamma_acc, "gamma_acc");
    assert_eq!(got.spike, want.spike, "spike");
    assert_eq!(got.mu_q, want.mu_q, "mu_q");
    assert_eq!(got.gamma_q15, want.gamma_q15, "gamma_q15");
    // f32 views compared bitwise.
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&got.mu), bits(&want.mu), "mu");
    assert_eq!(bits(&got.gamma), bits(&want.gamma), "gamma");
}

#[test]
fn int8_export_is_bit_identical_to_edge_runtime() {
    for (seed, channels, hidden, latent, head) in [
        (3u64, ChannelSet::ACC_ONLY, 128, 32, SpikeHead::Paper),
        (4, ChannelSet::ALL, 96, 64, SpikeHead::Paper),
        (5, ChannelSet::TOTAL_ACC, 32, 8, SpikeHead::Paper),
        (6, ChannelSet::ACC_ONLY, 128, 32, SpikeHead::Sigmoid),
    ] {
        let enc =
            F32Encoder::random(channels, WINDOW_LEN, hidden, latent, seed).with_spike_head(head);
        let bytes = blob_for(&enc, seed + 100);
        let blob = ModelBlob::parse(&bytes).unwrap();
        let params = QuantParams::from_blob(&blob);
        let onnx = to_bytes(&int8_model(&params).unwrap());
        // Windows like the calibration set, beyond it (saturation), and noise.
        let n = 48;
        let mut x = walk_windows(n / 2, enc.input_dim, seed + 200);
        x.extend(random_windows(n / 4, enc.input_dim, seed + 300));
        x.extend(
            walk_windows(n / 4, enc.input_dim, seed + 400)
                .iter()
                .map(|v| v * 3.0),
        );
        let model = TractModel::load(&onnx, n, enc.input_dim).unwrap();
        let want = edge_runtime_outputs(&blob, &x);
        let got = tract_outputs(&model, &x);
        assert_identical(&got, &want);
        // Not vacuous: both active and inactive dims, nonzero μ, clamped and
        // interior inputs, saturated and interior hidden units.
        let active = want.spike.iter().filter(|&&s| s).count();
        assert!(
            active > 0 && active < want.spike.len(),
            "seed {seed}: {active} active"
        );
        assert!(want.mu_q.iter().any(|&m| m != 0));
        assert!(want.x_q.contains(&0) && want.x_q.contains(&255));
        assert!(want.x_q.iter().any(|&q| q > 0 && q < 255));
        assert!(want.h_q.iter().any(|&q| q > 0 && q < 255));
    }
}

#[test]
fn int8_export_batch_one_matches_too() {
    let enc = edge_encoder(21);
    let bytes = blob_for(&enc, 22);
    let blob = ModelBlob::parse(&bytes).unwrap();
    let onnx = to_bytes(&int8_model(&QuantParams::from_blob(&blob)).unwrap());
    let model = TractModel::load(&onnx, 1, enc.input_dim).unwrap();
    for w in walk_windows(8, enc.input_dim, 23).chunks_exact(enc.input_dim) {
        assert_identical(&tract_outputs(&model, w), &edge_runtime_outputs(&blob, w));
    }
}

/// A graph with only a γ stage (`wire_exp_q15` or `wire_sigmoid_q15`): input `v_q`
/// (Q16, as f32, exact below 2²⁴), output γ in Q15 as int64.
fn gamma_stage_model(wire: fn(&mut Graph, &str) -> String) -> Vec<u8> {
    let mut g = Graph::default();
    g.input(INPUT, DataType::Float, 1);
    let v = wire_to_i64(&mut g, INPUT, "v_q");
    let out = wire(&mut g, &v);
    g.op("Identity", &[&out], vec![], "gamma_q15");
    g.output("gamma_q15", DataType::Int64, 1);
    to_bytes(&g.into_model("gamma_stage", "test"))
}

#[test]
fn gamma_stage_matches_exp_q15_for_every_v() {
    // The whole domain of exp_q15 plus margins on both sides (clamping).
    let lo = V_Q16_MIN as i64 - 600;
    let hi = 600i64;
    let v: Vec<f32> = (lo..=hi).map(|v| v as f32).collect();
    let model = TractModel::load(&gamma_stage_model(wire_exp_q15), v.len(), 1).unwrap();
    let got = values::<i64>(&model.run(&v).unwrap()[0]).unwrap();
    for (i, vq) in (lo..=hi).enumerate() {
        assert_eq!(got[i], exp_q15(vq) as i64, "v_q {vq}");
    }
}

#[test]
fn sigmoid_stage_matches_sigmoid_q15() {
    // Negative inputs (clamped to ½), every v_q up to 1.5 ln 2 (the first halving
    // boundary), then a stride past the point where γ saturates and past 16 halvings.
    let mut v_q: Vec<i64> = (-2000..=68_000).collect();
    v_q.extend((68_000..16 * 65_536).step_by(97));
    v_q.push(1 << 23);
    let v: Vec<f32> = v_q.iter().map(|&v| v as f32).collect();
    let model = TractModel::load(&gamma_stage_model(wire_sigmoid_q15), v.len(), 1).unwrap();
    let got = values::<i64>(&model.run(&v).unwrap()[0]).unwrap();
    for (i, &vq) in v_q.iter().enumerate() {
        assert_eq!(got[i], sigmoid_q15(vq) as i64, "v_q {vq}");
    }
}

#[test]
fn int8_export_rejects_inconsistent_params() {
    let enc = edge_encoder(1);
    let bytes = blob_for(&enc, 2);
    let mut params = QuantParams::from_blob(&ModelBlob::parse(&bytes).unwrap());
    params.gamma_threshold.pop();
    assert!(int8_model(&params).is_err());
}

/// The element type of every tensor of `graph`, inferred from the initializers, the input
/// and the operators' typing rules (only the operators the exports use).
fn tensor_types(graph: &pb::GraphProto) -> std::collections::HashMap<String, i32> {
    let mut types: std::collections::HashMap<String, i32> = graph
        .initializer
        .iter()
        .map(|t| (t.name.clone(), t.data_type))
        .chain(graph.input.iter().map(|i| (i.name.clone(), elem_type(i))))
        .collect();
    for node in &graph.node {
        let input = |k: usize| types[&node.input[k]];
        let out = match node.op_type.as_str() {
            "Cast" => node.attribute.iter().find(|a| a.name == "to").unwrap().i as i32,
            "CastLike" | "Where" => input(1),
            "Greater" => DataType::Bool as i32,
            "MatMulInteger" => DataType::Int32 as i32,
            "Gather" => input(0),
            "Sub" | "Mul" | "Add" | "Div" | "Mod" | "Max" | "Min" | "Neg" | "Clip" | "Relu"
            | "Round" | "Gemm" | "Softplus" | "Identity" => {
                // ONNX requires one element type across these operators' inputs.
                assert!(
                    node.input.iter().all(|i| types[i] == input(0)),
                    "{}: mixed input types",
                    node.name
                );
                input(0)
            }
            other => panic!("{}: operator {other} has no typing rule here", node.name),
        };
        types.insert(node.output[0].clone(), out);
    }
    types
}

fn elem_type(v: &pb::ValueInfoProto) -> i32 {
    match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => t.elem_type,
        other => panic!("{}: not a tensor type: {other:?}", v.name),
    }
}

/// (operator, input element types, output element type) of every node the exports
/// write, each one onnxruntime 1.32's CPU provider has a kernel for: measured by creating
/// an onnxruntime session for a one-node graph of each (opset 15). Among the pairs it
/// lacks: int16 `Where`, `Max`, `Min`, `Relu`, `Clip`; int64 `Relu`.
const ORT_CPU_KERNELS: &[(&str, &[DataType], DataType)] = {
    use DataType::{Bool, Float as F32, Int16, Int32 as I32, Int64 as I64, Uint8};
    &[
        ("Sub", &[F32, F32], F32),
        ("Mul", &[F32, F32], F32),
        ("Div", &[F32, F32], F32),
        ("Clip", &[F32, F32, F32], F32),
        ("Round", &[F32], F32),
        ("Gemm", &[F32, F32, F32], F32),
        ("Relu", &[F32], F32),
        ("Neg", &[F32], F32),
        ("Softplus", &[F32], F32),
        ("Cast", &[F32], Uint8),
        ("MatMulInteger", &[Uint8, Uint8, Uint8, Uint8], I32),
        ("Add", &[I32, I32], I32),
        ("Max", &[I32, I32], I32),
        ("Greater", &[I32, I32], Bool),
        ("CastLike", &[I32, I64], I64),
        ("Add", &[I64, I64], I64),
        ("Sub", &[I64, I64], I64),
        ("Mul", &[I64, I64], I64),
        ("Div", &[I64, I64], I64),
        ("Mod", &[I64, I64], I64),
        ("Max", &[I64, I64], I64),
        ("Min", &[I64, I64], I64),
        ("Neg", &[I64], I64),
        ("Gather", &[I64, I64], I64),
        ("Where", &[Bool, I64, I64], I64),
        ("Cast", &[I64], Uint8),
        ("Cast", &[I64], Int16),
        ("Cast", &[Int16], F32),
    ]
};

/// Every (operator, types) of `model` that is not in [`ORT_CPU_KERNELS`], as text.
fn missing_ort_kernels(model: &pb::ModelProto) -> Vec<String> {
    let graph = model.graph.as_ref().unwrap();
    let types = tensor_types(graph);
    for out in &graph.output {
        assert_eq!(
            types[&out.name],
            elem_type(out),
            "declared type of {}",
            out.name
        );
    }
    let name = |t: i32| format!("{:?}", DataType::try_from(t).unwrap());
    let mut missing = Vec::new();
    for node in &graph.node {
        let ins: Vec<i32> = node.input.iter().map(|i| types[i]).collect();
        let out = types[&node.output[0]];
        let known = ORT_CPU_KERNELS.iter().any(|(op, i, o)| {
            *op == node.op_type
                && i.iter().map(|&t| t as i32).eq(ins.iter().copied())
                && *o as i32 == out
        });
        if !known {
            missing.push(format!(
                "{} {}({}) -> {}",
                node.name,
                node.op_type,
                ins.iter().map(|&t| name(t)).collect::<Vec<_>>().join(", "),
                name(out)
            ));
        }
    }
    missing
}

#[test]
fn every_node_has_an_onnxruntime_cpu_kernel() {
    for head in SpikeHead::ALL {
        let enc = edge_encoder(31).with_spike_head(head);
        let f32_missing = missing_ort_kernels(&f32_model(&enc).unwrap());
        assert!(f32_missing.is_empty(), "f32 {head:?}: {f32_missing:#?}");
        let bytes = blob_for(&enc, 32);
        let params = QuantParams::from_blob(&ModelBlob::parse(&bytes).unwrap());
        let int8 = int8_model(&params).unwrap();
        let int8_missing = missing_ort_kernels(&int8);
        assert!(int8_missing.is_empty(), "int8 {head:?}: {int8_missing:#?}");
    }
}

#[test]
fn the_kernel_check_finds_an_int16_where() {
    // The form the int8 export had before: the select on int16.
    let mut g = Graph::default();
    g.input("on", DataType::Bool, 1);
    g.input("x16", DataType::Int16, 1);
    let zero16 = g.scalar("zero_i16", 0i16);
    g.op("Where", &["on", "x16", &zero16], vec![], "y");
    g.output("y", DataType::Int16, 1);
    let missing = missing_ort_kernels(&g.into_model("where16", "test"));
    assert_eq!(missing, ["y Where(Bool, Int16, Int16) -> Int16"]);
}

#[test]
fn f32_model_reads_back_to_the_same_encoder() {
    use edge_runtime::preprocess::InputFeatures;
    for (enc, seed) in [
        (edge_encoder(41), 0u64),
        (
            F32Encoder::random_with(ChannelSet::ALL, InputFeatures::BandSpectrum, 64, 16, 42)
                .with_spike_head(SpikeHead::Sigmoid),
            1,
        ),
    ] {
        let bytes = to_bytes(&f32_model(&enc).unwrap());
        let back = read_f32_model(&bytes, enc.channels, enc.features).unwrap();
        assert_eq!(back, enc, "encoder {seed}");
    }
}

#[test]
fn read_f32_model_names_what_is_wrong() {
    let enc = edge_encoder(43);
    // The error text (an Ok would print every weight, so it is not unwrapped).
    let error = |bytes: &[u8]| match read_f32_model(bytes, enc.channels, enc.features) {
        Ok(_) => panic!("a malformed file was read"),
        Err(e) => format!("{e:#}"),
    };
    let mut model = f32_model(&enc).unwrap();
    let graph = model.graph.as_mut().unwrap();
    // A waveform model's scaling is per channel: vary it inside channel 2's block.
    let t = graph
        .initializer
        .iter_mut()
        .find(|t| t.name == "scaling_scale")
        .unwrap();
    let i = 2 * WINDOW_LEN + 5;
    assert_ne!(enc.scaling[2].scale, 0.5);
    t.raw_data[4 * i..4 * i + 4].copy_from_slice(&0.5f32.to_le_bytes());
    let e = error(&to_bytes(&model));
    assert!(e.contains("scaling block 2 (inputs 256..384)"), "{e}");

    let mut model = f32_model(&enc).unwrap();
    let graph = model.graph.as_mut().unwrap();
    graph.initializer.retain(|t| t.name != "b_v");
    let e = error(&to_bytes(&model));
    assert!(e.contains("`b_v` is missing"), "{e}");

    let e = error(b"not onnx");
    assert!(e.contains("not an ONNX model"), "{e}");
}

#[test]
fn card_section_is_replaced_or_inserted_before_reproduce() {
    let files = [CardFile {
        file_name: "m.int8.onnx".into(),
        bytes: b"abc",
        contents: "spike bits".into(),
    }];
    let section = card_section(
        "cargo xtask export-onnx m.vscq --out m",
        "f32 [batch, 3]",
        &files,
        "bit-identical",
        "m",
    );
    // sha256("abc"), a published test vector.
    assert!(section.contains(
        "| `m.int8.onnx` | 3 | `ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad` | spike bits |"
    ));
    let card = "# Card\n\n## Blob\n\nb\n\n## Reproduce\n\n```sh\nx\n```\n";
    let once = with_card_section(card, &section);
    assert_eq!(
        once,
        format!("# Card\n\n## Blob\n\nb\n\n{section}\n## Reproduce\n\n```sh\nx\n```\n")
    );
    // Replacing keeps one section, with the new text.
    let other = section.replace("spike bits", "codes");
    let twice = with_card_section(&once, &other);
    assert_eq!(twice.matches(CARD_SECTION).count(), 1);
    assert_eq!(twice, once.replace("spike bits", "codes"));
    // Last section of a card without Reproduce: appended, then replaced in place.
    let appended = with_card_section("# Card\n\n## Blob\nb\n", &section);
    assert_eq!(appended, format!("# Card\n\n## Blob\nb\n\n{section}"));
    assert_eq!(with_card_section(&appended, &section), appended);
}
