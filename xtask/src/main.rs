use clap::{Parser, Subcommand};

mod activity;
mod bench;
mod bench_fft;
mod data;
mod elf;
mod ffi;
mod firmware;
mod flash;
use xtask::onnx;
mod quantise;
mod run;
mod test;
mod uf2;
mod web;

/// `cargo xtask …`: project automation.
#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The main job: train `edge` → evaluate → quantise → export ONNX → firmware in QEMU → summary.
    Run(run::RunArgs),
    /// Download the official UCI HAR (id 240) and HAPT (id 341) zips, verifying sha256.
    Data(data::DataArgs),
    /// Every check CI runs: fmt, clippy, GPU compile, tests, web app in Chromium, ONNX in
    /// onnxruntime, thumb build, C ABI and JNI, firmware golden test in QEMU, nRF board
    /// builds and size budgets.
    Test(test::TestArgs),
    /// Build one board's firmware (size report vs budget); `--run` runs the qemu board.
    Firmware(firmware::FirmwareCmd),
    /// Flash a board through a debug probe (probe-rs): model region, then firmware.
    Flash(flash::FlashArgs),
    /// Write a UF2 image for the XIAO's bootloader (firmware and model, or the model only).
    Uf2(uf2::Uf2Args),
    /// Quantise a trained run into an int8 blob (`models/NAME.vscq`) and its model card.
    Quantise(quantise::QuantiseArgs),
    /// Fit the activity head on a blob's own sparse codes and store it in the blob (format 4).
    ActivityHead(activity::ActivityHeadArgs),
    /// Write the f32 and int8 ONNX encoders of a run or blob (`NAME.f32.onnx`, `NAME.int8.onnx`).
    ExportOnnx(quantise::ExportOnnxArgs),
    /// The C ABI: regenerate its header, build the static and shared library, run the C golden test.
    Ffi(ffi::FfiArgs),
    /// Run `PREFIX.f32.onnx` and `PREFIX.int8.onnx` in onnxruntime on the HAR test windows, against edge-runtime.
    OnnxruntimeCheck(onnx::onnxruntime::OnnxruntimeCheckArgs),
    /// Build the phone web app into target/web; `--check` replays HAPT in headless Chromium.
    Web(web::WebArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        which: BenchCmd,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Guest instructions per encode on the emulated Cortex-M4 (QEMU plugin), per MAC.
    Mcu(firmware::BenchMcuArgs),
    /// Training throughput (samples/s, ms/step, GFLOP/s) at issue 15's four fixed shapes.
    Train(bench::BenchTrainArgs),
    /// ns per window: edge-runtime int8 vs tract f32 and int8 ONNX, single thread.
    Encode(onnx::bench::BenchEncodeArgs),
    /// Band spectrum, edge-runtime's FFT vs microfft: M4 instructions and code, host ns, accuracy.
    Fft(bench_fft::BenchFftArgs),
}

/// The firmware checks `cargo xtask test` ends with: the QEMU golden test, then every
/// nRF board's release build against its size budget.
pub fn firmware_golden_check() -> anyhow::Result<()> {
    firmware::ci_check(&firmware::FirmwareArgs {
        run: true,
        golden: true,
        data: None,
        model: None,
        timeout_s: 120,
    })
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Run(args) => run::run(&args),
        Cmd::Data(args) => data::run(&args),
        Cmd::Test(args) => test::run(&args),
        Cmd::Firmware(args) => firmware::run(&args),
        Cmd::Flash(args) => flash::run(&args),
        Cmd::Uf2(args) => uf2::run(&args),
        Cmd::Ffi(args) => ffi::run(&args),
        Cmd::Quantise(args) => quantise::quantise(&args).map(|_| ()),
        Cmd::ActivityHead(args) => activity::run(&args),
        Cmd::ExportOnnx(args) => quantise::export_onnx(&args),
        Cmd::OnnxruntimeCheck(args) => onnx::onnxruntime::run(&args),
        Cmd::Web(args) => web::run(&args),
        Cmd::Bench { which } => match which {
            BenchCmd::Mcu(args) => firmware::bench_mcu(&args),
            BenchCmd::Train(args) => bench::train(&args),
            BenchCmd::Encode(args) => onnx::bench::run(&args),
            BenchCmd::Fft(args) => bench_fft::run(&args),
        },
    }
}
