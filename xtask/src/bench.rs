//! `cargo xtask bench train`: training throughput at the four fixed shapes of issue 15.

use clap::Args;
use host_trainer::train::{BENCH_SHAPES, bench_train, device_from_name};

/// Options of `cargo xtask bench train`.
#[derive(Debug, Args)]
pub struct BenchTrainArgs {
    /// Rows to time (1–4, comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4")]
    pub rows: Vec<usize>,
    /// Seconds of timed training per repeat; the step count follows from a short trial.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Timed runs per row: the median and the best are printed.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Worker threads (one rayon pool for the whole run); default: every core.
    #[arg(long)]
    pub threads: Option<usize>,
    /// flex, ndarray, wgpu or cuda (all but flex need host-trainer's feature of the same name).
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Train with IEEE subnormals instead of flushing them in the dense layers and Adam
    /// (`flush_subnormals`: the presets flush them, configs written before it existed do
    /// not): the A/B of that option.
    #[arg(long)]
    pub keep_subnormals: bool,
}

/// Prints one line per row: samples/s, ms/step, GFLOP/s and threads.
pub fn train(args: &BenchTrainArgs) -> anyhow::Result<()> {
    if let Some(&bad) = args
        .rows
        .iter()
        .find(|&&r| r == 0 || r > BENCH_SHAPES.len())
    {
        anyhow::bail!("--rows: no row {bad} (rows are 1..={})", BENCH_SHAPES.len());
    }
    if args.repeats == 0 || args.seconds.is_nan() || args.seconds <= 0.0 {
        anyhow::bail!("--repeats and --seconds must be positive");
    }
    let device = device_from_name(&args.device)?;
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = args.threads {
        pool = pool.num_threads(n);
    }
    let pool = pool.build()?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "bench train on {}, {} threads, subnormals {}, load average at start {}",
        args.device,
        pool.current_num_threads(),
        if args.keep_subnormals {
            "kept"
        } else {
            "flushed"
        },
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "row  {:<42} {:>9}  {:>15}  {:>7}  {:>7}",
        "shape (M→H→J, batch)", "samples/s", "ms/step (best)", "GFLOP/s", "threads"
    );
    pool.install(|| -> anyhow::Result<()> {
        for &row in &args.rows {
            let shape = BENCH_SHAPES[row - 1];
            let mut cfg = shape.config();
            cfg.flush_subnormals = !args.keep_subnormals;
            let trial = bench_train(&cfg, 2, &device)?;
            let steps = ((args.seconds / trial.seconds * 2.0).round() as u64).max(2);
            let mut ms: Vec<f64> = (0..args.repeats)
                .map(|_| bench_train(&cfg, steps, &device).map(|r| r.ms_per_step()))
                .collect::<Result<_, _>>()?;
            ms.sort_by(f64::total_cmp);
            let median = ms[ms.len() / 2];
            let shape_text = format!(
                "{}→{}→{}, b{} ({})",
                shape.input_dim, shape.hidden_dim, shape.latent_dim, shape.batch_size, shape.name
            );
            println!(
                "{row:>3}  {shape_text:<42} {:>9.0}  {:>6.2} ({:>6.2})  {:>7.1}  {:>7}",
                shape.batch_size as f64 * 1e3 / median,
                median,
                ms[0],
                shape.step_flops() / (median * 1e-3) / 1e9,
                rayon::current_num_threads()
            );
        }
        Ok(())
    })
}
