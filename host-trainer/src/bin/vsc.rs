use clap::{Parser, Subcommand};
use host_trainer::cli;

/// Variational Sparse Coding: train, evaluate and use sparse activity codes.
#[derive(Parser)]
#[command(name = "vsc", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// One variant per top-level command; each command's arguments and code live in
/// `host_trainer::cli::<command>`.
#[derive(Subcommand)]
enum Command {
    /// HAR data: windows per split, activity and subject.
    #[command(subcommand)]
    Data(cli::data::DataCommand),
    /// Train VSC (or a β-VAE/β-TCVAE baseline) on HAR windows; see `vsc train --help`.
    Train(cli::train::TrainArgs),
    /// Encode a matrix (NPY/CSV) into μ, log σ², γ and sparse codes with a trained run.
    Encode(cli::matrix::EncodeArgs),
    /// Decode latent codes into means and standard deviations in the data's units.
    Decode(cli::matrix::DecodeArgs),
    /// Conditional (--n) or controlled (--traverse / --toggle) generation from example rows.
    Generate(cli::matrix::GenerateArgs),
    /// Decode the device's framed code stream (FILE, `-` or /dev/tty…): live table, CSV.
    Listen(host_trainer::listen::ListenArgs),
    /// Serve the phone web app (motion sensors → int8 encoder in wasm) on 127.0.0.1.
    Serve(host_trainer::serve::ServeArgs),
    /// Evaluate a run on its test split: ELBO, active dims, probes, E2–E5 figures, metrics.json.
    Eval(cli::eval::EvalArgs),
    /// E1: train VSC over α and β-VAE over β (several seeds) and plot test ELBO ± sd.
    Sweep(cli::eval::SweepArgs),
    /// One self-contained HTML page from run directories (figures inlined, metrics tables).
    Report(cli::eval::ReportArgs),
    /// Smiley ablation: train a plan's steps over seeds; table and figure of dims and E2 gap.
    Ablation(cli::ablation::AblationArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Data(command) => cli::data::run(command),
        Command::Train(args) => cli::train::run(&args),
        Command::Encode(args) => cli::matrix::encode(&args),
        Command::Decode(args) => cli::matrix::decode(&args),
        Command::Generate(args) => cli::matrix::generate(&args),
        Command::Eval(args) => cli::eval::eval(&args),
        Command::Sweep(args) => cli::eval::sweep(&args),
        Command::Report(args) => cli::eval::report(&args),
        Command::Ablation(args) => cli::ablation::run(&args),
        Command::Serve(args) => host_trainer::serve::run(&args),
        Command::Listen(args) => host_trainer::listen::run(&args)
            .map(|_| ())
            .map_err(Into::into),
    }
}
