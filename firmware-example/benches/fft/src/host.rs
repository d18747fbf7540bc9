//! The host half of `cargo xtask bench fft`: ns per 9-channel band spectrum for both sides
//! (one thread, median of repeats after a warm-up), how far microfft's values are from
//! edge-runtime's (which are the radix-2 oracle's bits), and the output hashes the M4 run
//! must reproduce. One `vsc-fft-host:` line per result, `key=value` fields, for xtask.

use std::hint::black_box;
use std::time::{Duration, Instant};

use edge_runtime::preprocess::SPECTRUM_VALUES_PER_CHANNEL;
use vsc_bench_fft::{
    Rng, SPECTRUM_VALUES, WINDOW_VALUES, edge_runtime_spectra, microfft_spectra, output_hashes,
    test_window,
};

type Spectra = fn(&[f32; WINDOW_VALUES], &mut [f32; SPECTRUM_VALUES]);

/// Median ns per call of `f` over `REPEATS` timed batches, after `WARM_UP`.
fn time_ns(f: Spectra, windows: &[[f32; WINDOW_VALUES]]) -> f64 {
    const WARM_UP: Duration = Duration::from_millis(300);
    const BATCH: Duration = Duration::from_millis(40);
    const REPEATS: usize = 25;
    let mut out = [0.0f32; SPECTRUM_VALUES];
    let mut run = |n: usize| {
        for i in 0..n {
            f(black_box(&windows[i % windows.len()]), &mut out);
            black_box(&mut out);
        }
    };
    let started = Instant::now();
    let mut calls = 0usize;
    while started.elapsed() < WARM_UP {
        run(64);
        calls += 64;
    }
    let per_batch = (calls as f64 * BATCH.as_secs_f64() / started.elapsed().as_secs_f64())
        .ceil()
        .max(1.0) as usize;
    let mut ns: Vec<f64> = (0..REPEATS)
        .map(|_| {
            let t = Instant::now();
            run(per_batch);
            t.elapsed().as_nanos() as f64 / per_batch as f64
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    ns[REPEATS / 2]
}

/// Largest absolute and relative differences of microfft's values from edge-runtime's,
/// and the share that are the same bits. Relative differences only where the value is at
/// least 1e-3 of its channel's largest (below that a band is rounding noise of the rest).
#[derive(Default)]
struct Accuracy {
    values: usize,
    identical: usize,
    max_abs: f64,
    max_rel: f64,
}

impl Accuracy {
    fn add(&mut self, want: &[f32; SPECTRUM_VALUES], got: &[f32; SPECTRUM_VALUES]) {
        let channels = want.chunks_exact(SPECTRUM_VALUES_PER_CHANNEL);
        for (w, g) in channels.zip(got.chunks_exact(SPECTRUM_VALUES_PER_CHANNEL)) {
            let largest = w.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs())));
            for (&w, &g) in w.iter().zip(g) {
                self.values += 1;
                self.identical += usize::from(w.to_bits() == g.to_bits());
                let abs = (f64::from(w) - f64::from(g)).abs();
                self.max_abs = self.max_abs.max(abs);
                if f64::from(w.abs()) >= 1e-3 * largest && w != 0.0 {
                    self.max_rel = self.max_rel.max(abs / f64::from(w.abs()));
                }
            }
        }
    }
}

pub fn main() {
    let windows: Vec<[f32; WINDOW_VALUES]> = (1..=8).map(test_window).collect();
    for (name, f) in [
        ("edge-runtime", edge_runtime_spectra as Spectra),
        ("microfft", microfft_spectra as Spectra),
    ] {
        println!("vsc-fft-host: impl={name} ns={:.0}", time_ns(f, &windows));
    }

    let mut accuracy = Accuracy::default();
    let (mut want, mut got) = ([0.0f32; SPECTRUM_VALUES], [0.0f32; SPECTRUM_VALUES]);
    let mut rng = Rng(0x2545_f491);
    for seed in 1..=2000u32 {
        // Gait-like windows, then white noise of one magnitude per window.
        let window = if seed % 2 == 0 {
            test_window(seed)
        } else {
            let scale = [1e-3f32, 1.0, 9.81, 1e3][seed as usize / 2 % 4];
            std::array::from_fn(|_| scale * rng.symmetric())
        };
        edge_runtime_spectra(&window, &mut want);
        microfft_spectra(&window, &mut got);
        accuracy.add(&want, &got);
    }
    println!(
        "vsc-fft-host: accuracy values={} identical={} max_abs={:e} max_rel={:e}",
        accuracy.values, accuracy.identical, accuracy.max_abs, accuracy.max_rel
    );
    let (edge, micro) = output_hashes(edge_runtime_spectra, microfft_spectra);
    println!("vsc-fft-host: hashes edge-runtime={edge:#010x} microfft={micro:#010x}");
}
