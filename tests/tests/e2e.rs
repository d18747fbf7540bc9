//! End to end on real HAPT data, in seconds: train the `tiny` preset on a subset of the
//! training windows → export the f32 reference encoder → quantise to an int8 blob →
//! check the ONNX exports in tract (f32 against burn, int8 against edge-runtime, bit for
//! bit) → stream a test subject's raw samples through the device pipeline and check that
//! the frames decode back identically and carry the same codes as the batch encoder.
//!
//! Real data: `$VSC_DATA_DIR`, else `../shared/data` beside the workspace. Missing data is
//! a failure in CI (`CI=true`) and a skip (with a note) elsewhere.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use edge_runtime::blob::ModelBlob;
use edge_runtime::encoder::{Encoder, IntTrace, SparseCode};
use edge_runtime::frame::{Frame, FrameDecoder, MAX_WIRE_LEN};
use edge_runtime::preprocess::{ChannelSet, InputFeatures, WINDOW_LEN, windows_of_recording};
use edge_runtime::quant::QuantParams;
use edge_runtime::stream::Pipeline;
use host_trainer::data::windows::split_windows;
use host_trainer::data::{
    HaptDataset, HarWindows, WindowConfig, har_training_data, is_test_subject, scaled_inputs,
};
use host_trainer::model::TrainConfig;
use host_trainer::train::{RunMeta, TrainOptions, TrainedModel, init_net, train};
use xtask::onnx::{self, F32_OUTPUTS, TractModel};

/// Channels of the `tiny` preset (as `vsc train --preset tiny`): 3 × 128 inputs.
const CHANNELS: ChannelSet = ChannelSet::TOTAL_ACC;
/// Training windows kept (evenly spaced over all training subjects and activities).
const TRAIN_WINDOWS: usize = 1200;
/// Test windows kept (evenly spaced over the test subjects).
const TEST_WINDOWS: usize = 300;
/// Raw samples of the test recording streamed through the device pipeline (20 windows).
const STREAM_SAMPLES: usize = WINDOW_LEN + 19 * 64;

fn data_dir() -> Option<PathBuf> {
    host_trainer::data::real_data_dir_or_skip("the end-to-end test")
}

/// `count` windows evenly spaced over `w` (so every subject and activity is represented).
fn subset(w: &HarWindows, count: usize) -> HarWindows {
    let mut out = HarWindows::new(w.channels);
    let n = w.len();
    for i in 0..count.min(n) {
        let k = i * n / count.min(n);
        out.push(w.window(k), w.labels[k], w.subjects[k]);
    }
    out
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "compared vectors differ in length");
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn tiny_model_from_real_data_to_int8_frames() -> Result<()> {
    let Some(dir) = data_dir() else {
        return Ok(());
    };
    let t0 = Instant::now();
    let dataset = HaptDataset::open(&dir).with_context(|| format!("opening {}", dir.display()))?;
    let config = WindowConfig {
        channels: CHANNELS,
        include_transitions: false,
    };
    let (train_all, test_all, _) = split_windows(&dataset, &config)?;
    let (train_w, test_w) = (
        subset(&train_all, TRAIN_WINDOWS),
        subset(&test_all, TEST_WINDOWS),
    );
    eprintln!(
        "data: {} / {} windows kept of {} / {} ({:.1} s)",
        train_w.len(),
        test_w.len(),
        train_all.len(),
        test_all.len(),
        t0.elapsed().as_secs_f32()
    );
    ensure!(train_w.len() == TRAIN_WINDOWS && test_w.len() == TEST_WINDOWS);
    let m = train_w.dim;
    assert_eq!(m, CHANNELS.len() * WINDOW_LEN);

    // ── train `tiny` (its preset step count: 200 steps of 16) ─────────────────────────
    let t1 = Instant::now();
    let (data, input_scaling) = har_training_data(&train_w, InputFeatures::Waveform)?;
    let cfg = TrainConfig::tiny(m);
    let run_dir = tempfile::tempdir()?;
    let outcome = train(
        &cfg,
        &data,
        input_scaling.clone(),
        run_dir.path(),
        &TrainOptions::default(),
    )?;
    assert!(outcome.finished, "training stopped early");
    let model = TrainedModel::open(run_dir.path())?;
    let test01 = scaled_inputs(&test_w, model.scaling())?;
    let trained_elbo = model.evaluate(&test01, test_w.len(), 1)?.elbo;
    let untrained = TrainedModel::from_parts(
        RunMeta {
            train: cfg.clone(),
            scaling: input_scaling,
            train_rows: data.rows,
        },
        init_net(&cfg, Some(&data), &model.device),
        model.device.clone(),
    );
    let untrained_elbo = untrained.evaluate(&test01, test_w.len(), 1)?.elbo;
    eprintln!(
        "train: {} steps in {:.1} s; test ELBO {trained_elbo:.1} (untrained {untrained_elbo:.1})",
        outcome.steps_done,
        t1.elapsed().as_secs_f32()
    );
    assert!(
        trained_elbo > untrained_elbo + 1.0,
        "training did not improve the test ELBO: {untrained_elbo} → {trained_elbo}"
    );

    // ── burn → f32 reference encoder → tract f32 ONNX (≤ 1e-4) ──────────────────────
    let t2 = Instant::now();
    let enc = model.to_f32_encoder()?;
    enc.validate()?;
    assert_eq!((enc.input_dim, enc.channels), (m, CHANNELS));
    let burn = model.encode(&test01, test_w.len())?;
    let f32_onnx = onnx::to_bytes(&onnx::f32_model(&enc)?);
    let out = TractModel::load(&f32_onnx, test_w.len(), m)?.run(&test_w.x)?;
    let tract: Vec<Vec<f32>> = out.iter().map(onnx::values::<f32>).collect::<Result<_>>()?;
    assert_eq!(tract.len(), F32_OUTPUTS.len());
    let tract_gamma: Vec<f32> = tract[2].iter().map(|lg| lg.exp()).collect();
    for (name, got, want) in [
        ("mu", &tract[0], &burn.mu),
        ("logvar", &tract[1], &burn.logvar),
        ("gamma", &tract_gamma, &burn.gamma),
    ] {
        let d = max_abs_diff(got, want);
        assert!(
            d <= 1e-4,
            "tract f32 ONNX vs burn, {name}: max abs diff {d}"
        );
    }
    // Not vacuous: the codes vary across windows and some dims are on, some off.
    assert!(burn.mu.iter().any(|v| v.abs() > 0.05));
    assert!(burn.gamma.iter().any(|&g| g > 0.5) && burn.gamma.iter().any(|&g| g < 0.5));

    // ── quantise → edge-runtime int8 vs tract int8 ONNX (bit-identical) ─────────────
    let calibration: Vec<&[f32]> = (0..train_w.len()).map(|i| train_w.window(i)).collect();
    let blob_bytes = edge_runtime::quant::quantise(&enc, &calibration)?;
    let blob = ModelBlob::parse(&blob_bytes).map_err(|e| anyhow::anyhow!("blob: {e}"))?;
    let params = QuantParams::from_blob(&blob);
    let int8_onnx = onnx::to_bytes(&onnx::int8_model(&params)?);
    let out = TractModel::load(&int8_onnx, test_w.len(), m)?.run(&test_w.x)?;
    let spike: Vec<bool> = onnx::values(&out[0])?;
    let gamma_q15: Vec<i16> = onnx::values(&out[1])?;
    let mu_q: Vec<i16> = onnx::values(&out[2])?;
    let x_q: Vec<u8> = onnx::values(&out[5])?;
    let hidden_acc: Vec<i32> = onnx::values(&out[6])?;
    let h_q: Vec<u8> = onnx::values(&out[7])?;
    let mu_acc: Vec<i32> = onnx::values(&out[8])?;
    let gamma_acc: Vec<i32> = onnx::values(&out[9])?;
    let int8 = Encoder::new(blob);
    let (j, h) = (enc.latent_dim, enc.hidden_dim);
    let (mut code, mut trace) = (SparseCode::default(), IntTrace::default());
    let (mut agree, mut active) = (0usize, 0usize);
    for r in 0..test_w.len() {
        int8.encode_traced(test_w.window(r), &mut code, &mut trace)?;
        assert_eq!(trace.x_q[..m], x_q[r * m..(r + 1) * m], "window {r}: x_q");
        assert_eq!(
            trace.hidden_acc[..h],
            hidden_acc[r * h..(r + 1) * h],
            "window {r}: hidden accumulators"
        );
        assert_eq!(trace.h_q[..h], h_q[r * h..(r + 1) * h], "window {r}: h_q");
        assert_eq!(trace.mu_acc[..j], mu_acc[r * j..(r + 1) * j], "window {r}");
        assert_eq!(
            trace.gamma_acc[..j],
            gamma_acc[r * j..(r + 1) * j],
            "window {r}"
        );
        for k in 0..j {
            let i = r * j + k;
            assert_eq!(spike[i], code.is_active(k), "window {r} dim {k}: spike");
            assert_eq!(gamma_q15[i], code.gamma_q15[k], "window {r} dim {k}: γ");
            assert_eq!(mu_q[i], code.mu_q[k], "window {r} dim {k}: μ");
            // int8 against the burn model it came from.
            agree += usize::from(code.is_active(k) == (burn.gamma[i] > 0.5));
            active += usize::from(code.is_active(k));
        }
    }
    let agreement = agree as f64 / (test_w.len() * j) as f64;
    eprintln!(
        "int8: {} bytes, tract int8 bit-identical on {} windows, spike agreement with burn {:.2} %, {:.2} active dims per window ({:.1} s)",
        blob_bytes.len(),
        test_w.len(),
        100.0 * agreement,
        active as f64 / test_w.len() as f64,
        t2.elapsed().as_secs_f32()
    );
    assert!(
        agreement >= 0.95,
        "int8 spike bits agree with burn on only {:.2} %",
        100.0 * agreement
    );

    // ── a test subject's raw samples through the device pipeline → frames ───────────
    let recording = dataset
        .recordings
        .iter()
        .find(|r| is_test_subject(r.user) && r.samples.len() >= STREAM_SAMPLES)
        .context("no test-subject recording long enough")?;
    let samples = &recording.samples[..STREAM_SAMPLES];
    let mut pipeline = Pipeline::new(CHANNELS, Encoder::new(blob));
    let frames: Vec<Frame> = samples
        .iter()
        .filter_map(|s| pipeline.push_sample(*s, false))
        .collect();
    // The same windows through the batch path and the plain encoder.
    let mut batch_codes = Vec::new();
    windows_of_recording(samples, CHANNELS, |w| {
        let mut c = SparseCode::default();
        int8.encode(w.as_slice(), &mut c).expect("finite window");
        batch_codes.push(c);
    })?;
    assert_eq!(frames.len(), 20);
    assert_eq!(frames.len(), batch_codes.len());
    let mut wire = Vec::new();
    for (i, (f, c)) in frames.iter().zip(&batch_codes).enumerate() {
        assert_eq!(f.sequence as usize, i);
        assert_eq!(f.flags, 0, "frame {i} is flagged");
        assert_eq!(f.spike_bits, c.spike_bits, "frame {i}: spike bits");
        let active: Vec<usize> = c.active_dims().collect();
        let gammas: Vec<i16> = active.iter().map(|&k| c.gamma_q15[k]).collect();
        let mus: Vec<i16> = active.iter().map(|&k| c.mu_q[k]).collect();
        assert_eq!(f.gamma_q15.as_slice(), gammas.as_slice(), "frame {i}: γ");
        assert_eq!(f.mu_q.as_slice(), mus.as_slice(), "frame {i}: μ");
        let mut buf = [0u8; MAX_WIRE_LEN];
        let n = f.encode(&mut buf).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        wire.extend_from_slice(&buf[..n]);
    }
    let mut decoder = FrameDecoder::new();
    let mut decoded = Vec::new();
    decoder.feed(&wire, |f| decoded.push(f));
    assert_eq!(decoder.rejected_chunks, 0);
    assert_eq!(decoded, frames, "frames do not decode back identically");
    assert!(
        frames.iter().any(|f| f.spike_bits != 0),
        "every frame is empty: nothing was compared"
    );
    eprintln!(
        "frames: {} frames ({} wire bytes) decode back identically; total {:.1} s",
        frames.len(),
        wire.len(),
        t0.elapsed().as_secs_f32()
    );
    Ok(())
}
