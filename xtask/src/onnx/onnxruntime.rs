//! onnxruntime parity of the committed ONNX encoders (`models/NAME.f32.onnx`,
//! `models/NAME.int8.onnx`), a step of `cargo xtask test`.
//!
//! onnxruntime is what most apps run ONNX with, and its CPU provider implements fewer
//! integer kernels than tract, so loading in tract proves little. Its Python wheel is the
//! easiest build of it to get, so the check is split in two: this module computes the
//! reference on the HAR test windows with edge-runtime and writes the model inputs and
//! the expected outputs as `.npy` files; `xtask/onnxruntime_check.py` runs both files in
//! onnxruntime (with and without its graph optimisations, whole batch and one window at a
//! time) and compares:
//!
//! - int8: every output (spike bits, γ Q15, μ int16, their f32 views bit for bit, and all
//!   integer intermediates) equal to `edge_runtime::encoder::Encoder::encode_traced`;
//! - f32: max |onnxruntime − `edge_runtime::F32Encoder::forward`| ≤ [`F32_TOLERANCE`] on
//!   μ, log σ² and log γ.
//!
//! The f32 reference weights are read back from the f32 file itself (the training run is
//! not committed). That the file is the committed model's f32 encoder, not any encoder, is
//! checked by quantising it again on the training windows: the int8 graph of the result
//! must equal the committed blob's.
//!
//! The wheels go into `target/onnxruntime-py-VERSION` (`pip install --target`, no
//! virtual environment or user site needed), installed once per version.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use edge_runtime::blob::ModelBlob;
use edge_runtime::encoder::{Encoder, IntTrace, SparseCode};
use edge_runtime::quant::QuantParams;
use host_trainer::data::{HarWindows, WindowConfig, load_har_windows};

use super::{F32_OUTPUTS, INT8_OUTPUTS, int8_model, model_inputs, read_f32_model};

/// The onnxruntime wheel the check installs (the version the phones issue was filed with).
pub const ONNXRUNTIME_VERSION: &str = "1.32.0";
/// numpy requirement beside it (any recent numpy reads and compares the arrays alike).
const NUMPY_REQUIREMENT: &str = "numpy>=1.24";
/// Max |onnxruntime − F32Encoder| allowed on the f32 outputs.
pub const F32_TOLERANCE: f32 = 1e-4;
/// The comparison script, relative to the workspace root.
const SCRIPT: &str = "xtask/onnxruntime_check.py";
/// Windows also run one at a time (batch 1, as an app streams them).
const SINGLE_WINDOW_RUNS: usize = 64;

use crate::{in_ci, workspace_root};

/// Options of `cargo xtask onnxruntime-check`.
#[derive(Debug, clap::Args)]
pub struct OnnxruntimeCheckArgs {
    /// Model prefix: runs PREFIX.f32.onnx and PREFIX.int8.onnx, compares with PREFIX.vscq.
    #[arg(long, value_name = "PREFIX", default_value = "models/edge")]
    pub model: PathBuf,
    /// Data directory holding HAPT_RawData.zip (default: $VSC_DATA_DIR, then
    /// ../shared/data beside the workspace).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The model was quantised with `--transitions` (windows include labels 7..=12).
    #[arg(long)]
    pub transitions: bool,
}

/// `cargo xtask onnxruntime-check`.
pub fn run(args: &OnnxruntimeCheckArgs) -> Result<()> {
    let data = args.data.clone().unwrap_or_else(default_data_dir);
    check(&args.model, &data, args.transitions)
}

fn default_data_dir() -> PathBuf {
    std::env::var_os("VSC_DATA_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/data"))
}

/// `cargo xtask test`'s step: the committed `models/edge.*` files on the HAPT test
/// windows. Outside CI, missing data is a skip with a note (as for the other real-data
/// tests); in CI it is a failure.
pub fn onnxruntime_check() -> Result<()> {
    let data = default_data_dir();
    if !data.join("HAPT_RawData.zip").exists() && !data.join("HAPT Data Set").exists() {
        if in_ci() {
            bail!(
                "onnxruntime check: no HAPT data in {} (set VSC_DATA_DIR)",
                data.display()
            );
        }
        eprintln!(
            "note: skipping the onnxruntime check, no HAPT data in {} (set VSC_DATA_DIR)",
            data.display()
        );
        return Ok(());
    }
    check(&workspace_root().join("models/edge"), &data, false)
}

/// `PREFIX.vscq`, `PREFIX.f32.onnx`, `PREFIX.int8.onnx`.
pub fn model_files(prefix: &Path) -> [PathBuf; 3] {
    let name = prefix
        .file_name()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    ["vscq", "f32.onnx", "int8.onnx"].map(|ext| prefix.with_file_name(format!("{name}.{ext}")))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Runs the check for the blob and ONNX files at `prefix` (see [`model_files`]) on the
/// HAPT test windows of `data_dir` (with postural transitions if `transitions`, as the
/// model was quantised).
pub fn check(prefix: &Path, data_dir: &Path, transitions: bool) -> Result<()> {
    let started = Instant::now();
    let [blob_path, f32_path, int8_path] = model_files(prefix);
    let blob_bytes = read(&blob_path)?;
    let blob = ModelBlob::parse(&blob_bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", blob_path.display()))?;
    let params = QuantParams::from_blob(&blob);
    let f32_bytes = read(&f32_path)?;
    // Present before any work: the script reads it.
    read(&int8_path)?;

    let config = WindowConfig {
        channels: blob.channels(),
        include_transitions: transitions,
    };
    let (train, test) = load_har_windows(data_dir, &config)
        .with_context(|| format!("loading HAR windows from {}", data_dir.display()))?;
    if test.dim != blob.window_dim() || test.is_empty() {
        bail!(
            "{} test windows of {} values; {} expects windows of {}",
            test.len(),
            test.dim,
            blob_path.display(),
            blob.window_dim()
        );
    }

    let encoder = read_f32_model(&f32_bytes, blob.channels(), blob.features())
        .with_context(|| format!("reading the f32 encoder from {}", f32_path.display()))?;
    same_model(&encoder, &params, &train).with_context(|| {
        format!(
            "{} is not the f32 encoder of {} (re-export both from the training run: \
             cargo xtask export-onnx RUN_DIR --blob {} --out {})",
            f32_path.display(),
            blob_path.display(),
            blob_path.display(),
            prefix.display()
        )
    })?;

    let dir = workspace_root().join("target/onnxruntime-check");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let summary = write_reference(&dir, &blob, &encoder, &test)?;
    eprintln!(
        "onnxruntime check: reference for {} test windows written to {} in {:.1} s \
         (edge-runtime: {:.2} active dims per window)",
        test.len(),
        dir.display(),
        started.elapsed().as_secs_f32(),
        summary.active_per_window
    );

    let site = ensure_wheels()?;
    let mut cmd = Command::new("python3");
    cmd.arg(workspace_root().join(SCRIPT))
        .arg("--dir")
        .arg(&dir)
        .arg("--int8")
        .arg(&int8_path)
        .arg("--f32")
        .arg(&f32_path)
        .args(["--tolerance", &F32_TOLERANCE.to_string()])
        .args(["--single-window-runs", &SINGLE_WINDOW_RUNS.to_string()])
        .args(["--onnxruntime-version", ONNXRUNTIME_VERSION])
        .env("PYTHONPATH", &site)
        // Only the pinned wheels: nothing from the user's site-packages.
        .env("PYTHONNOUSERSITE", "1");
    eprintln!("==> {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start python3 {SCRIPT}"))?;
    if !status.success() {
        bail!(
            "onnxruntime check failed ({status}); inputs and expected outputs are in {}",
            dir.display()
        );
    }
    eprintln!(
        "onnxruntime check passed in {:.1} s",
        started.elapsed().as_secs_f32()
    );
    Ok(())
}

/// Checks that `encoder` quantises, on every training window as `cargo xtask quantise`
/// calibrates, to the int8 encoder in `params` (compared as int8 ONNX graphs, which hold
/// every number the int8 encoder uses and nothing else).
fn same_model(
    encoder: &edge_runtime::F32Encoder,
    params: &QuantParams,
    train: &HarWindows,
) -> Result<()> {
    let windows: Vec<&[f32]> = (0..train.len()).map(|i| train.window(i)).collect();
    let again = QuantParams::calibrate(encoder, &windows)
        .map_err(|e| anyhow::anyhow!("quantising it on the training windows: {e}"))?;
    let graph = |p: &QuantParams| -> Result<_> { Ok(int8_model(p)?.graph) };
    if graph(&again)? != graph(params)? {
        bail!(
            "quantised on the {} training windows it gives another int8 encoder",
            train.len()
        );
    }
    Ok(())
}

struct ReferenceSummary {
    active_per_window: f64,
}

/// Writes `x.npy` (model inputs), `int8.NAME.npy` for every [`INT8_OUTPUTS`] name and
/// `f32.NAME.npy` for every [`F32_OUTPUTS`] name, one row per test window.
fn write_reference(
    dir: &Path,
    blob: &ModelBlob<'_>,
    encoder: &edge_runtime::F32Encoder,
    test: &HarWindows,
) -> Result<ReferenceSummary> {
    let (m, h, j) = (blob.input_dim(), blob.hidden_dim(), blob.latent_dim());
    let n = test.len();
    let inputs = model_inputs(blob.features(), blob.channels(), test.dim, &test.x)?;
    write_npy(&dir.join("x.npy"), n, m, &inputs)?;

    let enc = Encoder::new(*blob);
    let (mut spike, mut gamma_q15, mut mu_q) =
        (Vec::<bool>::new(), Vec::<i16>::new(), Vec::<i16>::new());
    let (mut gamma, mut mu) = (Vec::<f32>::new(), Vec::<f32>::new());
    let (mut x_q, mut h_q) = (Vec::<u8>::new(), Vec::<u8>::new());
    let (mut hidden_acc, mut mu_acc, mut gamma_acc) =
        (Vec::<i32>::new(), Vec::<i32>::new(), Vec::<i32>::new());
    let mut code = SparseCode::default();
    let mut trace = IntTrace::default();
    for i in 0..n {
        enc.encode_traced(test.window(i), &mut code, &mut trace)
            .map_err(|e| anyhow::anyhow!("edge-runtime rejects test window {i}: {e:?}"))?;
        spike.extend((0..j).map(|k| code.is_active(k)));
        gamma_q15.extend(&code.gamma_q15[..j]);
        mu_q.extend(&code.mu_q[..j]);
        gamma.extend((0..j).map(|k| code.gamma(k)));
        mu.extend((0..j).map(|k| code.mu(k)));
        x_q.extend(&trace.x_q[..m]);
        hidden_acc.extend(&trace.hidden_acc[..h]);
        h_q.extend(&trace.h_q[..h]);
        mu_acc.extend(&trace.mu_acc[..j]);
        gamma_acc.extend(&trace.gamma_acc[..j]);
    }
    let active = spike.iter().filter(|&&s| s).count();
    let file = |name: &str| dir.join(format!("int8.{name}.npy"));
    // In INT8_OUTPUTS order; the assertion below keeps the two lists together.
    let written = [
        ("spike", write_npy(&file("spike"), n, j, &spike)),
        ("gamma_q15", write_npy(&file("gamma_q15"), n, j, &gamma_q15)),
        ("mu_q", write_npy(&file("mu_q"), n, j, &mu_q)),
        ("gamma", write_npy(&file("gamma"), n, j, &gamma)),
        ("mu", write_npy(&file("mu"), n, j, &mu)),
        ("x_q", write_npy(&file("x_q"), n, m, &x_q)),
        (
            "hidden_acc",
            write_npy(&file("hidden_acc"), n, h, &hidden_acc),
        ),
        ("h_q", write_npy(&file("h_q"), n, h, &h_q)),
        ("mu_acc", write_npy(&file("mu_acc"), n, j, &mu_acc)),
        ("gamma_acc", write_npy(&file("gamma_acc"), n, j, &gamma_acc)),
    ];
    debug_assert!(written.iter().map(|(name, _)| *name).eq(INT8_OUTPUTS));
    for (_, result) in written {
        result?;
    }

    let mut outs: [Vec<f32>; 3] = Default::default();
    for i in 0..n {
        let code = encoder
            .try_forward(test.window(i))
            .map_err(|e| anyhow::anyhow!("F32Encoder rejects test window {i}: {e}"))?;
        outs[0].extend(code.mu);
        outs[1].extend(code.logvar);
        outs[2].extend(code.log_gamma);
    }
    for (name, values) in F32_OUTPUTS.iter().zip(&outs) {
        write_npy(&dir.join(format!("f32.{name}.npy")), n, j, values)?;
    }
    Ok(ReferenceSummary {
        active_per_window: active as f64 / n as f64,
    })
}

/// An element type `.npy` files can hold (little-endian).
trait NpyElement: Copy {
    /// numpy `descr` of the type.
    const DESCR: &'static str;
    fn put(self, out: &mut Vec<u8>);
}

macro_rules! npy_element {
    ($t:ty, $descr:literal) => {
        impl NpyElement for $t {
            const DESCR: &'static str = $descr;
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}
npy_element!(f32, "<f4");
npy_element!(u8, "|u1");
npy_element!(i16, "<i2");
npy_element!(i32, "<i4");

impl NpyElement for bool {
    const DESCR: &'static str = "|b1";
    fn put(self, out: &mut Vec<u8>) {
        out.push(u8::from(self));
    }
}

/// The bytes of a `rows × cols` C-order `.npy` file (format 1.0).
fn npy_bytes<T: NpyElement>(rows: usize, cols: usize, values: &[T]) -> Vec<u8> {
    debug_assert_eq!(values.len(), rows * cols);
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}",
        T::DESCR
    );
    // Magic (6) + version (2) + length (2) + header, newline-terminated, padded to 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + values.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    let header_len = u16::try_from(header.len()).expect("a 2-D header is short");
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &v in values {
        v.put(&mut out);
    }
    out
}

/// Writes a `.npy` file atomically (temporary file + rename).
fn write_npy<T: NpyElement>(path: &Path, rows: usize, cols: usize, values: &[T]) -> Result<()> {
    crate::write_atomic(path, &npy_bytes(rows, cols, values))
}

/// Makes sure `python3` can import the pinned onnxruntime and numpy from
/// `target/onnxruntime-py-VERSION`, installing them there with pip the first time.
/// Returns that folder (the `PYTHONPATH` of the script).
fn ensure_wheels() -> Result<PathBuf> {
    let site = workspace_root().join(format!("target/onnxruntime-py-{ONNXRUNTIME_VERSION}"));
    let imports = |dir: &Path| {
        Command::new("python3")
            .args([
                "-c",
                "import numpy, onnxruntime, sys; sys.exit(onnxruntime.__version__ != sys.argv[1])",
            ])
            .arg(ONNXRUNTIME_VERSION)
            .env("PYTHONPATH", dir)
            .env("PYTHONNOUSERSITE", "1")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if imports(&site) {
        return Ok(site);
    }
    let python = Command::new("python3").arg("--version").output();
    if !python.is_ok_and(|o| o.status.success()) {
        bail!(
            "the onnxruntime check needs python3 (3.10 or newer) with pip; install it \
             (Debian: apt-get install -y python3 python3-pip)"
        );
    }
    let pip = Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output();
    if !pip.is_ok_and(|o| o.status.success()) {
        bail!(
            "python3 has no pip, which the onnxruntime check needs to install the \
             onnxruntime=={ONNXRUNTIME_VERSION} and numpy wheels; install it \
             (Debian: apt-get install -y python3-pip, or: python3 -m ensurepip --user)"
        );
    }
    let tmp = site.with_file_name(format!("onnxruntime-py-{ONNXRUNTIME_VERSION}.partial"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("clearing {}", tmp.display()))?;
    }
    let started = Instant::now();
    let mut install = Command::new("python3");
    install
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-warn-script-location",
            "--target",
        ])
        .arg(&tmp)
        .arg(format!("onnxruntime=={ONNXRUNTIME_VERSION}"))
        .arg(NUMPY_REQUIREMENT)
        // CI runs as root; pip's warning about that is for system-wide installs.
        .env("PIP_ROOT_USER_ACTION", "ignore");
    eprintln!("==> {install:?}");
    let status = install.status().context("could not start python3 -m pip")?;
    if !status.success() {
        bail!(
            "pip could not install onnxruntime=={ONNXRUNTIME_VERSION} and {NUMPY_REQUIREMENT} \
             into {} ({status}); is PyPI reachable?",
            tmp.display()
        );
    }
    if site.exists() {
        std::fs::remove_dir_all(&site).with_context(|| format!("clearing {}", site.display()))?;
    }
    std::fs::rename(&tmp, &site).with_context(|| format!("renaming to {}", site.display()))?;
    if !imports(&site) {
        bail!(
            "onnxruntime {ONNXRUNTIME_VERSION} was installed into {} but python3 cannot \
             import it",
            site.display()
        );
    }
    eprintln!(
        "installed onnxruntime {ONNXRUNTIME_VERSION} and numpy into {} in {:.0} s",
        site.display(),
        started.elapsed().as_secs_f32()
    );
    Ok(site)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_padded_and_describes_the_array() {
        let bytes = npy_bytes(2, 3, &[1i16, -2, 3, 4, 5, -32768]);
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.starts_with("{'descr': '<i2', 'fortran_order': False, 'shape': (2, 3), }"));
        assert!(header.ends_with('\n'));
        let data = &bytes[10 + header_len..];
        assert_eq!(data.len(), 12);
        assert_eq!(&data[10..], &(-32768i16).to_le_bytes());
        let bools = npy_bytes(1, 2, &[true, false]);
        assert_eq!(&bools[bools.len() - 2..], &[1, 0]);
    }

    #[test]
    fn model_files_sit_beside_each_other() {
        let [blob, f32, int8] = model_files(Path::new("models/edge"));
        assert_eq!(blob, Path::new("models/edge.vscq"));
        assert_eq!(f32, Path::new("models/edge.f32.onnx"));
        assert_eq!(int8, Path::new("models/edge.int8.onnx"));
    }
}
