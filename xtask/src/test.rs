//! `cargo xtask test`: the project's one test entry point (CI calls it through `.ci/run`).
//!
//! It installs what it can (rustup target and components, Debian's qemu-system-arm when
//! root; the web, ONNX and C ABI steps install their own tools), checks that the HAPT data
//! is there (a failure in CI), then runs, in order:
//!
//! 1. `cargo fmt --check` of the workspace and of `firmware-example/`;
//! 2. clippy on the workspace with `-D warnings`;
//! 3. a compile of host-trainer's `wgpu` feature (unless `--skip-gpu-check`) and clippy of
//!    its `ndarray` feature (burn-ndarray with OpenBLAS);
//! 4. every workspace test;
//! 5. the phone web app: wasm build, then the headless-Chromium replay whose frames must
//!    equal the host's (`cargo xtask web --check`);
//! 6. the committed ONNX encoders in onnxruntime against edge-runtime
//!    (`cargo xtask onnxruntime-check`);
//! 7. the thumbv7em build of edge-runtime;
//! 8. the C ABI: header up to date, C golden test against the static and shared library,
//!    the JNI bindings under the host JVM, the Android static library (`cargo xtask ffi`);
//! 9. unless `--skip-firmware`: the firmware golden test under QEMU with its size and
//!    stack budgets, then a release build of every nRF board checked against its flash,
//!    RAM and stack budgets (`firmware-example/size-budget.toml`), and the build of
//!    `cargo xtask bench fft`'s Cortex-M4 program (not its run).
//!
//! It stops at the first failure and names the step.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// The microcontroller target that edge-runtime and the firmware must build for.
pub const THUMB_TARGET: &str = "thumbv7em-none-eabihf";

#[derive(clap::Args, Debug, Clone)]
pub struct TestArgs {
    /// Skip `cargo check --features wgpu` (the GPU backend compile takes minutes cold).
    #[arg(long)]
    pub skip_gpu_check: bool,
    /// Skip building and running the firmware under QEMU.
    #[arg(long)]
    pub skip_firmware: bool,
    /// Extra arguments passed to `cargo test` (e.g. a test name filter).
    #[arg(last = true)]
    pub cargo_test_args: Vec<String>,
}

pub use xtask::{in_ci, workspace_root};

/// Runs a command in the workspace root, echoing it, and fails with the step's name.
pub fn run_step(step: &str, cmd: &mut Command) -> Result<()> {
    let started = Instant::now();
    eprintln!("==> [{step}] {cmd:?}");
    let status = cmd
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("[{step}] could not start {cmd:?}"))?;
    let secs = started.elapsed().as_secs_f32();
    if !status.success() {
        bail!("[{step}] failed ({status}) after {secs:.0} s: {cmd:?}");
    }
    eprintln!("<== [{step}] ok in {secs:.0} s");
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Makes sure the thumb target and the rustfmt/clippy components are installed.
pub fn ensure_rust_tools() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("`rustup` is needed to add the thumbv7em-none-eabihf target")?;
    if !String::from_utf8_lossy(&installed.stdout).contains(THUMB_TARGET) {
        run_step(
            "rustup target",
            Command::new("rustup").args(["target", "add", THUMB_TARGET]),
        )?;
    }
    for component in ["rustfmt", "clippy"] {
        let present = Command::new("rustup")
            .args(["component", "list", "--installed"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(component));
        if !present {
            run_step(
                "rustup component",
                Command::new("rustup").args(["component", "add", component]),
            )?;
        }
    }
    Ok(())
}

/// Makes sure `qemu-system-arm` is on PATH, installing Debian's package when root.
pub fn ensure_qemu() -> Result<()> {
    if Command::new("qemu-system-arm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Ok(());
    }
    if is_root() && Path::new("/usr/bin/apt-get").exists() {
        run_step("apt-get update", Command::new("apt-get").arg("update"))?;
        run_step(
            "apt-get install qemu-system-arm",
            Command::new("apt-get")
                .args([
                    "install",
                    "-y",
                    "--no-install-recommends",
                    "qemu-system-arm",
                ])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
        return Ok(());
    }
    bail!(
        "qemu-system-arm is missing and this user cannot install it; run:\n  \
         sudo apt-get install -y qemu-system-arm"
    )
}

/// Fails early, with the fix, when the data the real-data tests need is absent in CI.
fn check_data_present() -> Result<()> {
    let dir = std::env::var_os("VSC_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/data"));
    let hapt = dir.join("HAPT_RawData.zip");
    if hapt.exists() || dir.join("HAPT Data Set").exists() {
        return Ok(());
    }
    let msg = format!(
        "HAPT data not found in {} (set VSC_DATA_DIR to the folder holding \
         HAPT_RawData.zip, or run `cargo xtask data`)",
        dir.display()
    );
    if in_ci() {
        bail!("{msg}; CI=true, so a missing dataset is a failure");
    }
    eprintln!("note: {msg}; real-data tests will be skipped");
    Ok(())
}

pub fn run(args: &TestArgs) -> Result<()> {
    let started = Instant::now();
    ensure_rust_tools()?;
    check_data_present()?;

    run_step("fmt", cargo().args(["fmt", "--all", "--", "--check"]))?;
    run_step(
        "fmt firmware",
        cargo().args([
            "fmt",
            "--all",
            "--manifest-path",
            "firmware-example/Cargo.toml",
            "--",
            "--check",
        ]),
    )?;
    run_step(
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    if !args.skip_gpu_check {
        run_step(
            "gpu feature compiles",
            cargo().args(["check", "-p", "host-trainer", "--features", "wgpu"]),
        )?;
    }
    // The feature's own code and test (ndarray against flex) stay lint-clean and compiling;
    // a check does not link, so Debian's libopenblas-dev is needed only to run them. About
    // 40 s after the workspace clippy (burn's crates re-checked with burn-ndarray).
    run_step(
        "ndarray feature lints",
        cargo().args([
            "clippy",
            "-p",
            "host-trainer",
            "--all-targets",
            "--features",
            "ndarray",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    let mut test = cargo();
    test.args(["test", "--workspace"]);
    if !args.cargo_test_args.is_empty() {
        test.arg("--").args(&args.cargo_test_args);
    }
    run_step("tests", &mut test)?;
    crate::web::ci_check()?;
    crate::onnx::onnxruntime::onnxruntime_check()?;
    run_step(
        "thumb build",
        cargo().args(["build", "-p", "edge-runtime", "--target", THUMB_TARGET]),
    )?;
    crate::ffi::ci_check()?;
    if !args.skip_firmware {
        ensure_qemu()?;
        crate::firmware_golden_check()?;
        // Builds only (about 5 s): `cargo xtask bench fft` itself is not a check.
        crate::bench_fft::build_m4()?;
    }
    eprintln!(
        "all checks passed in {:.1} min",
        started.elapsed().as_secs_f32() / 60.0
    );
    Ok(())
}
