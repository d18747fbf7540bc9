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
