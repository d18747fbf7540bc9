//! `cargo xtask bench encode`: nanoseconds per window, single thread, for the
//! edge-runtime int8 encoder, tract on the f32 ONNX export and tract on the int8 ONNX
//! export of the same model.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use edge_runtime::F32Encoder;
use edge_runtime::blob::ModelBlob;
use edge_runtime::encoder::{Encoder, SparseCode};
use edge_runtime::kernels::Kernel;
use edge_runtime::preprocess::{ChannelScaling, ChannelSet, InputFeatures, WINDOW_LEN};
use edge_runtime::quant::QuantParams;
use tract_onnx::prelude::tvec;

use super::{TractModel, f32_model, int8_model, to_bytes};

/// Options of `cargo xtask bench encode`.
#[derive(Debug, Args)]
pub struct BenchEncodeArgs {
    /// Model blob (`.vscq`). Default: a random `edge`-sized model (acc-only, 6 × 128
    /// inputs, H = 128, J = 32) quantised on random-walk windows.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Seconds of timing per runtime (split into rounds of about 2 ms; the fastest is
    /// reported).
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    /// Distinct windows cycled through.
    #[arg(long, default_value_t = 256)]
    pub windows: usize,
    /// Also time tract with this batch size (ns per window); 0 = skip.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
}

/// SplitMix64: seeded, dependency-free randomness for benchmark inputs and tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
    }
}

/// `n` raw windows whose normalised values random-walk inside [0, 1] per channel
/// (so the encoder sees in-range, correlated inputs like real signals).
pub fn walk_windows_for(
    scaling: &[ChannelScaling],
    window_len: usize,
    n: usize,
    seed: u64,
) -> Vec<f32> {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(n * scaling.len() * window_len);
    for _ in 0..n {
        for s in scaling {
            let mut v01 = rng.uniform(0.1, 0.9);
            for _ in 0..window_len {
                v01 = (v01 + rng.uniform(-0.04, 0.04)).clamp(0.0, 1.0);
                let raw = if s.scale > 0.0 {
                    s.offset + v01 / s.scale
                } else {
                    s.offset
                };
                out.push(raw);
            }
        }
    }
    out
}

/// Per-channel raw ranges for [`walk_windows_for`]: a waveform model's own channel
/// scaling; for a spectrum model, the range of each channel's window mean.
pub fn window_ranges(p: &QuantParams) -> Vec<ChannelScaling> {
    match p.features {
        InputFeatures::Waveform => p.scaling.clone(),
        InputFeatures::BandSpectrum => p
            .scaling
            .iter()
            .step_by(InputFeatures::BandSpectrum.values_per_channel())
            .copied()
            .collect(),
    }
}

/// The f32 encoder whose weights are the blob's dequantised int8 weights (the log σ²
/// head, which the blob does not carry, is zero). Same shapes, hence the same cost.
pub fn dequantised_encoder(p: &QuantParams) -> F32Encoder {
    let deq = |l: &edge_runtime::quant::LayerParams, input_scale: f32| {
        let w: Vec<f32> = l
            .weights
            .chunks_exact(l.cols)
            .zip(&l.w_scale)
            .flat_map(|(row, &s)| row.iter().map(move |&q| q as f32 * s))
            .collect();
        let b: Vec<f32> = l
            .bias
            .iter()
            .zip(&l.w_scale)
            .map(|(&b, &s)| b as f32 * s * input_scale)
            .collect();
        (w, b)
    };
    let (w1, b1) = deq(&p.hidden, p.input_scale);
    let (w_mu, b_mu) = deq(&p.mu, p.hidden_scale);
    let (w_gamma, b_gamma) = deq(&p.gamma, p.hidden_scale);
    F32Encoder {
        input_dim: p.input_dim,
        hidden_dim: p.hidden_dim,
        latent_dim: p.latent_dim,
        w_logvar: vec![0.0; w_mu.len()],
        b_logvar: vec![0.0; b_mu.len()],
        w1,
        b1,
        w_mu,
        b_mu,
        w_gamma,
        b_gamma,
        channels: p.channels,
        features: p.features,
        spike_head: p.spike_head,
        scaling: p.scaling.clone(),
    }
}

/// Length of one timing round: short enough that a round often runs without being
/// preempted on a loaded machine (a scheduler time slice is a few ms).
const ROUND_S: f64 = 0.002;

/// ns per window of the fastest of the rounds of about [`ROUND_S`] that fit in `seconds`
/// (at least 5): other processes only ever add time, so the minimum is the figure that
/// stays put while the machine is busy. `step(i)` encodes the windows of iteration `i` and
/// returns how many it encoded.
fn time_ns_per_window(seconds: f64, mut step: impl FnMut(usize) -> usize) -> f64 {
    // Warm-up and rate estimate.
    let t = Instant::now();
    let mut iters = 0usize;
    while t.elapsed().as_secs_f64() < 0.05 || iters < 3 {
        step(iters);
        iters += 1;
    }
    let per_iter_s = t.elapsed().as_secs_f64() / iters as f64;
    let round_iters = ((ROUND_S / per_iter_s) as usize).max(1);
    let rounds = ((seconds / (round_iters as f64 * per_iter_s)) as usize).max(5);
    // One iteration count across rounds, so that the rounds cycle through every window.
    let mut i = 0usize;
    let mut fastest = f64::INFINITY;
    for _ in 0..rounds {
        let t = Instant::now();
        let mut windows = 0usize;
        for _ in 0..round_iters {
            windows += step(i);
            i += 1;
        }
        fastest = fastest.min(t.elapsed().as_nanos() as f64 / windows as f64);
    }
    fastest
}

/// Runs the benchmark and prints the table.
pub fn run(args: &BenchEncodeArgs) -> Result<()> {
    let (blob_bytes, source) = match &args.model {
        Some(path) => (
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
            path.display().to_string(),
        ),
        None => {
            let enc = F32Encoder::random(ChannelSet::ACC_ONLY, WINDOW_LEN, 128, 32, 1);
            let calib = walk_windows_for(&enc.scaling, WINDOW_LEN, 128, 2);
            let calib: Vec<&[f32]> = calib.chunks_exact(enc.input_dim).collect();
            (
                edge_runtime::quant::quantise(&enc, &calib)?,
                "random edge-sized model (acc-only 6×128 → 128 → 32)".to_string(),
            )
        }
    };
    let blob = ModelBlob::parse(&blob_bytes).map_err(|e| anyhow::anyhow!("model blob: {e}"))?;
    let params = QuantParams::from_blob(&blob);
    let (m, wd) = (params.input_dim, params.window_dim());
    let n = args.windows.max(1);
    let x = walk_windows_for(&window_ranges(&params), params.window_len, n, 3);
    let window = |i: usize| &x[(i % n) * wd..(i % n + 1) * wd];
    // tract gets the model input; for spectrum models computing it is part of the work.
    let x_in = super::model_inputs(params.features, params.channels, wd, &x)?;
    let model_input = |i: usize| &x_in[(i % n) * m..(i % n + 1) * m];
    let features_ns = if params.features == InputFeatures::Waveform {
        0.0
    } else {
        let mut buf = vec![0f32; m];
        time_ns_per_window(args.seconds, |i| {
            let _ = params.features.compute(black_box(window(i)), &mut buf);
            black_box(&buf);
            1
        })
    };
    if features_ns > 0.0 {
        println!("band spectrum of one window (edge-runtime f32): {features_ns:.0} ns");
    }
    let tract_suffix = if features_ns > 0.0 { " + spectrum" } else { "" };

    let f32_onnx = to_bytes(&f32_model(&dequantised_encoder(&params))?);
    let int8_onnx = to_bytes(&int8_model(&params)?);

    println!(
        "bench encode: {source}; M {m}, H {}, J {}, {} weight bytes; {n} windows, single thread",
        params.hidden_dim,
        params.latent_dim,
        params.weight_bytes()
    );
    if cfg!(debug_assertions) {
        println!(
            "note: dev profile (workspace crates at opt-level 1, dependencies such as tract at 3)"
        );
    }
    let default_kernel = Encoder::new(blob).kernel();
    println!(
        "edge-runtime default kernel here: {default_kernel:?} (runs {:?})",
        default_kernel.effective()
    );
    let mut rows: Vec<(String, f64)> = Vec::new();
    let mut active = 0u64;
    for kernel in Kernel::ALL {
        let enc = Encoder::new(blob).with_kernel(kernel);
        let mut code = SparseCode::default();
        let ns = time_ns_per_window(args.seconds, |i| {
            // Windows were generated finite and of the right length.
            let _ = enc.encode(black_box(window(i)), &mut code);
            black_box(&code);
            1
        });
        for i in 0..n {
            enc.encode(window(i), &mut code)
                .context("edge-runtime encode")?;
            active += u64::from(code.active_count());
        }
        let runs = kernel.effective();
        rows.push((
            format!("edge-runtime int8 ({kernel:?} kernel, runs {runs:?})"),
            ns,
        ));
    }
    // Measured before tract runs: its worker threads can keep cores busy afterwards.
    let input_ns = {
        let enc = Encoder::new(blob);
        let mut x_q = [0u8; edge_runtime::blob::MAX_INPUT];
        time_ns_per_window(args.seconds, |i| {
            let _ = enc.model_input(black_box(window(i)), &mut x_q);
            black_box(&x_q);
            1
        })
    };
    for (name, bytes) in [("f32", &f32_onnx), ("int8", &int8_onnx)] {
        let model = TractModel::load(bytes, 1, m)?;
        let inputs: Vec<_> = (0..n)
            .map(|i| model.input(model_input(i)))
            .collect::<Result<_>>()?;
        let mut state = model.spawn()?;
        let ns = time_ns_per_window(args.seconds, |i| {
            let out = state.run(tvec!(inputs[i % n].clone()));
            black_box(&out);
            1
        });
        rows.push((
            format!("tract {name} ONNX (batch 1){tract_suffix}"),
            ns + features_ns,
        ));
    }
    if args.batch > 1 {
        let b = args.batch;
        let xb: Vec<f32> = (0..b)
            .flat_map(|i| model_input(i).iter().copied())
            .collect();
        for (name, bytes) in [("f32", &f32_onnx), ("int8", &int8_onnx)] {
            let model = TractModel::load(bytes, b, m)?;
            let input = model.input(&xb)?;
            let mut state = model.spawn()?;
            let ns = time_ns_per_window(args.seconds, |_| {
                let out = state.run(tvec!(input.clone()));
                black_box(&out);
                b
            });
            rows.push((
                format!("tract {name} ONNX (batch {b}, per window){tract_suffix}"),
                ns + features_ns,
            ));
        }
    }
    let reference = rows
        .iter()
        .find(|(name, _)| name.starts_with("tract f32 ONNX (batch 1)"))
        .map_or(f64::NAN, |r| r.1);
    println!(
        "{:<52} {:>12} {:>16}",
        "runtime", "ns/window", "vs tract f32 b1"
    );
    for (name, ns) in &rows {
        println!("{name:<52} {ns:>12.0} {:>15.2}×", reference / ns);
    }
    if features_ns > 0.0 {
        // The band spectrum is the same work for every runtime (tract needs it as input),
        // so also compare the model alone: edge-runtime's encode minus its input stage
        // (spectrum, scaling, quantisation) against tract on a ready model input.
        let encode_ns = rows
            .iter()
            .find(|(name, _)| {
                let default = Encoder::new(blob).kernel().effective();
                name.contains(&format!("runs {default:?}"))
            })
            .map_or(f64::NAN, |r| r.1);
        let dense_ns = encode_ns - input_ns;
        let tract_ns = reference - features_ns;
        println!(
            "model alone: edge-runtime int8 {:.0} ns (encode {encode_ns:.0} − input stage \
             {input_ns:.0}) vs tract f32 {tract_ns:.0} ns (batch 1, spectrum given): {:.2}×",
            dense_ns,
            tract_ns / dense_ns
        );
    }
    println!(
        "mean active dims per window (edge-runtime): {:.1} of {}",
        active as f64 / (Kernel::ALL.len() * n) as f64,
        params.latent_dim
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use edge_runtime::preprocess::{ChannelSet, InputFeatures, SPECTRUM_VALUES_PER_CHANNEL};
    use host_trainer::data::{WindowConfig, load_har_windows};

    fn data_dir() -> Option<PathBuf> {
        host_trainer::data::real_data_dir_or_skip("the spectrum parity test")
    }

    /// The band spectrum that edge-runtime computes (the FFT kernel, in SIMD batches here)
    /// equals its definition (the straightforward radix-2 transform,
    /// `band_spectrum_reference`), bit for bit, on every HAPT window of every subject (all
    /// nine channels, postural transitions included). The mean may differ only in the
    /// sign of a zero (see `edge-runtime/src/preprocess/spectrum/fft.rs`).
    #[test]
    fn band_spectrum_is_the_oracle_on_every_hapt_window() {
        let Some(dir) = data_dir() else {
            return;
        };
        let config = WindowConfig {
            channels: ChannelSet::ALL,
            include_transitions: true,
        };
        let (train, test) = load_har_windows(&dir, &config).expect("HAPT windows");
        let m = InputFeatures::BandSpectrum.input_dim(ChannelSet::ALL);
        let (mut fast, mut oracle) = (vec![0f32; m], vec![0f32; m]);
        let mut windows = 0;
        for (split, w) in [("train", &train), ("test", &test)] {
            for i in 0..w.len() {
                let x = w.window(i);
                InputFeatures::BandSpectrum.compute(x, &mut fast).unwrap();
                InputFeatures::band_spectrum_reference(x, &mut oracle).unwrap();
                for (k, (f, o)) in fast.iter().zip(&oracle).enumerate() {
                    let mean = k % SPECTRUM_VALUES_PER_CHANNEL == 0;
                    assert!(
                        f.to_bits() == o.to_bits() || (mean && f == o),
                        "{split} window {i} value {k}: {f:e} vs oracle {o:e}"
                    );
                }
                windows += 1;
            }
        }
        assert!(windows > 10_000, "only {windows} HAPT windows");
    }
}
