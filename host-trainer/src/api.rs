//! VSC on any numeric matrix, as a library: `train`, `encode`, `decode` and `generate`
//! over plain row-major `&[f32]` slices (rows = samples), in the data's own units.
//!
//! The per-column min/max scaling into [0, 1] (the decoder mean is a sigmoid) is fitted on
//! the training matrix, stored in the run directory with the model, applied by `encode`
//! and undone by `decode`, so callers never see [0, 1] values.
//!
//! ```
//! use host_trainer::api::{self, Model};
//! use host_trainer::model::TrainConfig;
//! use host_trainer::train::TrainOptions;
//!
//! // 64 samples × 5 features, in any units.
//! let (rows, cols) = (64, 5);
//! let x: Vec<f32> = (0..rows * cols).map(|i| ((i * 37) % 11) as f32 * 0.5 - 2.0).collect();
//!
//! let run_dir = tempfile::tempdir()?;
//! let mut cfg = TrainConfig::tiny(cols); // or "paper", "edge"; see TrainConfig::preset
//! cfg.main_iters = 20; // keep the example fast
//! let model: Model = api::train(&x, rows, cols, &cfg, run_dir.path(), &TrainOptions::default())?;
//!
//! // Later (or in another program): open the run and use it.
//! let model = Model::open(run_dir.path())?;
//! let codes = model.encode(&x, rows)?; // μ, log σ², γ: rows × J each
//! let z = codes.sparse_code(); // μ ⊙ 1[γ > 0.5]
//! let recon = model.decode(&z, rows)?; // means and standard deviations, original units
//! assert_eq!(recon.mean.len(), rows * cols);
//!
//! // Conditional generation: 3 samples that share row 0's active dimensions.
//! let samples = model.generate(&x[..cols], 1, 3, 42)?;
//! assert_eq!(samples.decoded.rows, 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::matrix::{
    MatrixBatches, MatrixError, MatrixWriter, ReadOptions, check_width, count_rows,
};
use crate::model::TrainConfig;
use crate::scaling::{self, InputScaling, MinMaxFitter, MinMaxScaling};
use crate::train::{self, TrainData, TrainError, TrainOptions, TrainedModel};

/// A latent dimension is active (its spike is on) when γ exceeds this.
pub const SPIKE_THRESHOLD: f32 = 0.5;

/// Errors of the matrix API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Matrix(#[from] MatrixError),
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A slice does not have the length its shape says, or an argument is out of range.
    #[error("{0}")]
    BadInput(String),
}

pub use crate::train::Codes;

impl Codes {
    /// The sparse code μ ⊙ 1[γ > 0.5], `rows × latent_dim`.
    pub fn sparse_code(&self) -> Vec<f32> {
        self.mu
            .iter()
            .zip(&self.gamma)
            .map(|(m, g)| if *g > SPIKE_THRESHOLD { *m } else { 0.0 })
            .collect()
    }

    /// Active dimensions (γ > 0.5) of row `r`.
    pub fn active_dims(&self, r: usize) -> Vec<usize> {
        let j = self.latent_dim;
        (0..j)
            .filter(|&d| self.gamma[r * j + d] > SPIKE_THRESHOLD)
            .collect()
    }
}

/// Decoder outputs in the data's original units, each `rows × cols` row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    pub rows: usize,
    pub cols: usize,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// Latent vectors that were decoded, with their decodings.
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    /// `rows × latent_dim` latent vectors.
    pub z: Vec<f32>,
    /// For each output row, the input row it was derived from.
    pub source_row: Vec<usize>,
    pub decoded: Decoded,
}

fn check_len(what: &str, len: usize, rows: usize, cols: usize) -> Result<(), ApiError> {
    if rows.checked_mul(cols) != Some(len) || rows == 0 || cols == 0 {
        return Err(ApiError::BadInput(format!(
            "{what}: {len} values do not form {rows} rows × {cols} columns (both ≥ 1)"
        )));
    }
    Ok(())
}

fn check_finite(what: &str, x: &[f32], cols: usize) -> Result<(), ApiError> {
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(ApiError::BadInput(format!(
            "{what}: value {} at row {}, column {} (0-based) is not finite",
            x[i],
            i / cols,
            i % cols
        )));
    }
    Ok(())
}

/// Trains `cfg` on the raw matrix `x` (`rows × cols`) and writes the run to `run_dir`.
///
/// `cfg.model.input_dim` is set to `cols` (a preset built for another width is fine).
/// The min/max scaling is fitted on `x` and stored in `RUN_DIR/config.toml`.
pub fn train(
    x: &[f32],
    rows: usize,
    cols: usize,
    cfg: &TrainConfig,
    run_dir: &Path,
    opts: &TrainOptions,
) -> Result<Model, ApiError> {
    check_len("training matrix", x.len(), rows, cols)?;
    check_finite("training matrix", x, cols)?;
    let mut fitter = MinMaxFitter::new(cols);
    fitter.update(x);
    let scaling = fitter
        .finish()
        .ok_or_else(|| ApiError::BadInput("training matrix has no rows".into()))?;
    train_scaled(x, rows, cols, &scaling, cfg, run_dir, opts)
}

/// [`train`] with a scaling fitted elsewhere (e.g. streamed over a file).
pub fn train_scaled(
    x: &[f32],
    rows: usize,
    cols: usize,
    scaling: &MinMaxScaling,
    cfg: &TrainConfig,
    run_dir: &Path,
    opts: &TrainOptions,
) -> Result<Model, ApiError> {
    check_len("training matrix", x.len(), rows, cols)?;
    if scaling.cols() != cols {
        return Err(ApiError::BadInput(format!(
            "scaling has {} columns, the training matrix {cols}",
            scaling.cols()
        )));
    }
    let input_scaling = InputScaling::MinMax(scaling.clone());
    let x01 = input_scaling.apply(x, cols);
    let mut cfg = cfg.clone();
    cfg.model.input_dim = cols;
    let data = TrainData { x01, rows, cols };
    let outcome = train::train(&cfg, &data, input_scaling, run_dir, opts)?;
    if !outcome.finished {
        return Err(ApiError::BadInput(format!(
            "training stopped after {} steps before the end; resume it to get a model",
            outcome.steps_done
        )));
    }
    Model::open(run_dir)
}

/// A trained model opened from a run directory, taking and returning original units.
#[derive(Debug)]
pub struct Model {
    trained: TrainedModel,
    /// Per input column: x = lo + x01 · range (the inverse of the stored scaling).
    inverse: Vec<(f32, f32)>,
}

impl Model {
    /// Opens `RUN_DIR` (any run: matrix or HAR; HAR runs scale per channel).
    pub fn open(run_dir: &Path) -> Result<Model, ApiError> {
        Ok(Model::from_trained(TrainedModel::open(run_dir)?))
    }

    /// Wraps a model that is already loaded.
    pub fn from_trained(trained: TrainedModel) -> Model {
        let cols = trained.model_config().input_dim;
        let inverse = trained.scaling().column_ranges(cols);
        Model { trained, inverse }
    }

    /// The loaded model (burn network, configuration, prior selection).
    pub fn trained(&self) -> &TrainedModel {
        &self.trained
    }

    pub fn run_dir(&self) -> &Path {
        &self.trained.run_dir
    }

    /// Width of an input row.
    pub fn input_dim(&self) -> usize {
        self.trained.model_config().input_dim
    }

    /// J, the number of latent dimensions.
    pub fn latent_dim(&self) -> usize {
        self.trained.model_config().latent_dim
    }

    /// Maps raw rows into the model's [0, 1] space (clamping values outside the training range).
    pub fn scale(&self, x: &[f32], rows: usize) -> Result<Vec<f32>, ApiError> {
        let m = self.input_dim();
        check_len("input matrix", x.len(), rows, m)?;
        check_finite("input matrix", x, m)?;
        Ok(self.trained.scaling().apply(x, m))
    }

    /// Posterior parameters (μ, log σ², γ) of raw rows `x` (`rows × input_dim`).
    pub fn encode(&self, x: &[f32], rows: usize) -> Result<Codes, ApiError> {
        let x01 = self.scale(x, rows)?;
        Ok(self.trained.encode(&x01, rows)?)
    }

    /// Decoder means and standard deviations of latent rows `z` (`rows × latent_dim`),
    /// in the original units of the training data.
    pub fn decode(&self, z: &[f32], rows: usize) -> Result<Decoded, ApiError> {
        let j = self.latent_dim();
        check_len("latent matrix", z.len(), rows, j)?;
        check_finite("latent matrix", z, j)?;
        let (mut mean, mut std) = self.trained.decode(z, rows)?;
        let m = self.input_dim();
        for (row_m, row_s) in mean.chunks_exact_mut(m).zip(std.chunks_exact_mut(m)) {
            scaling::unscale_row(row_m, &self.inverse);
            scaling::unscale_std_row(row_s, &self.inverse);
        }
        Ok(Decoded {
            rows,
            cols: m,
            mean,
            std,
        })
    }

    /// Conditional generation (VSC.md §4): for each raw row of `x`, `n_per_row` samples
    /// whose active dimensions A = {j : γ_j > 0.5} are drawn from the slab of the prior
    /// selected for that row and whose other dimensions are 0. Seeded.
    pub fn generate(
        &self,
        x: &[f32],
        rows: usize,
        n_per_row: usize,
        seed: u64,
    ) -> Result<Generated, ApiError> {
        let x01 = self.scale(x, rows)?;
        let codes = self.trained.encode(&x01, rows)?;
        let prior = self.prior(&x01, rows)?;
        let j = self.latent_dim();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut z = Vec::with_capacity(rows * n_per_row * j);
        let mut source_row = Vec::with_capacity(rows * n_per_row);
        for r in 0..rows {
            let active = codes.active_dims(r);
            for _ in 0..n_per_row {
                let mut zi = vec![0.0f32; j];
                for &d in &active {
                    let eps: f32 = rng.sample(StandardNormal);
                    let (mu, logvar) = (prior.0[r * j + d], prior.1[r * j + d]);
                    zi[d] = mu + (0.5 * logvar).exp() * eps;
                }
                z.extend(zi);
                source_row.push(r);
            }
        }
        let decoded = self.decode(&z, rows * n_per_row)?;
        Ok(Generated {
            z,
            source_row,
            decoded,
        })
    }

    /// Controlled generation (traversal): for each raw row, its sparse code with dimension
    /// `dim` set to each of `values` in turn, decoded.
    pub fn traverse(
        &self,
        x: &[f32],
        rows: usize,
        dim: usize,
        values: &[f32],
    ) -> Result<Generated, ApiError> {
        self.check_dim(dim)?;
        let codes = self.encode(x, rows)?;
        let code = codes.sparse_code();
        let j = self.latent_dim();
        let mut z = Vec::with_capacity(rows * values.len() * j);
        let mut source_row = Vec::new();
        for r in 0..rows {
            for &v in values {
                let mut zi = code[r * j..(r + 1) * j].to_vec();
                zi[dim] = v;
                z.extend(zi);
                source_row.push(r);
            }
        }
        let decoded = self.decode(&z, source_row.len())?;
        Ok(Generated {
            z,
            source_row,
            decoded,
        })
    }

    /// Controlled generation (switch): for each raw row, two outputs: its sparse code as
    /// is, then with dimension `dim` switched — off (0) if active, else on at `on_value`
    /// or, when None, at the mean of the slab of the prior selected for the row.
    pub fn toggle(
        &self,
        x: &[f32],
        rows: usize,
        dim: usize,
        on_value: Option<f32>,
    ) -> Result<Generated, ApiError> {
        self.check_dim(dim)?;
        let x01 = self.scale(x, rows)?;
        let codes = self.trained.encode(&x01, rows)?;
        let prior_mu = match on_value {
            Some(_) => None,
            None => Some(self.prior(&x01, rows)?.0),
        };
        let code = codes.sparse_code();
        let j = self.latent_dim();
        let mut z = Vec::with_capacity(rows * 2 * j);
        let mut source_row = Vec::new();
        for r in 0..rows {
            let orig = &code[r * j..(r + 1) * j];
            let mut switched = orig.to_vec();
            switched[dim] = if codes.gamma[r * j + dim] > SPIKE_THRESHOLD {
                0.0
            } else {
                on_value.unwrap_or_else(|| prior_mu.as_ref().map_or(1.0, |p| p[r * j + dim]))
            };
            z.extend_from_slice(orig);
            z.extend(switched);
            source_row.extend([r, r]);
        }
        let decoded = self.decode(&z, source_row.len())?;
        Ok(Generated {
            z,
            source_row,
            decoded,
        })
    }

    fn check_dim(&self, dim: usize) -> Result<(), ApiError> {
        if dim >= self.latent_dim() {
            return Err(ApiError::BadInput(format!(
                "latent dimension {dim} out of range: the model has {} (0..{})",
                self.latent_dim(),
                self.latent_dim()
            )));
        }
        Ok(())
    }

    /// (μ, log σ²) of the prior slab selected per row; N(0, 1) for the Gaussian baselines.
    fn prior(&self, x01: &[f32], rows: usize) -> Result<(Vec<f32>, Vec<f32>), ApiError> {
        let j = self.latent_dim();
        Ok(match self.trained.prior_for(x01, rows)? {
            Some(sel) => (sel.mu, sel.logvar),
            None => (vec![0.0; rows * j], vec![0.0; rows * j]),
        })
    }

    /// Streams a matrix file through the encoder, `batch_rows` at a time, writing μ, log σ²,
    /// γ and the sparse code (see [`code_outputs`] for the file layout). Returns the row count.
    pub fn encode_file(
        &self,
        input: &Path,
        out: &Path,
        read: &ReadOptions,
        batch_rows: usize,
        progress: bool,
    ) -> Result<usize, ApiError> {
        let mut batches = MatrixBatches::open_with(input, batch_rows, read)?;
        check_width(
            input,
            batches.cols(),
            self.input_dim(),
            &format!("the model in {}", self.run_dir().display()),
        )?;
        let total = match batches.total_rows() {
            Some(n) => n,
            None if progress => count_rows(input, read)?,
            None => 0,
        };
        let bar = progress_bar(progress, total as u64, "encoding");
        let j = self.latent_dim();
        let mut writers = CodeWriters::create(out, j)?;
        let mut rows = 0;
        while let Some(batch) = batches.next_batch()? {
            let codes = self
                .encode(&batch.data, batch.rows)
                .map_err(|e| at_rows(e, input, rows))?;
            writers.write(&codes)?;
            rows += batch.rows;
            bar.set_position(rows as u64);
        }
        writers.finish()?;
        bar.finish_and_clear();
        Ok(rows)
    }

    /// Streams a latent matrix file (J columns, or an encode CSV whose `code_*` columns are
    /// used) through the decoder; writes means and stds in original units (see
    /// [`decode_outputs`]). Returns the row count.
    pub fn decode_file(
        &self,
        codes: &Path,
        out: &Path,
        batch_rows: usize,
        progress: bool,
    ) -> Result<usize, ApiError> {
        let codes = resolve_codes_path(codes);
        let read = ReadOptions::default();
        let mut batches = MatrixBatches::open_with(&codes, batch_rows, &read)?;
        let j = self.latent_dim();
        // An encode CSV holds mu/logvar/gamma/code blocks; decode its sparse code.
        let code_cols: Option<Vec<usize>> = batches.column_names().and_then(|names| {
            let idx: Vec<usize> = (0..j)
                .map(|d| names.iter().position(|n| *n == format!("code_{d}")))
                .collect::<Option<_>>()?;
            Some(idx)
        });
        if code_cols.is_none() {
            check_width(
                &codes,
                batches.cols(),
                j,
                &format!(
                    "the model in {} (its latent dimension J; or pass an encode CSV with code_* columns)",
                    self.run_dir().display()
                ),
            )?;
        }
        let total = match batches.total_rows() {
            Some(n) => n,
            None if progress => count_rows(&codes, &read)?,
            None => 0,
        };
        let bar = progress_bar(progress, total as u64, "decoding");
        let m = self.input_dim();
        let (mean_path, std_path) = decode_outputs(out);
        let names = |p: &str| (0..m).map(|c| format!("{p}_{c}")).collect::<Vec<_>>();
        let mut mean_w;
        let mut std_w = None;
        match &std_path {
            Some(sp) => {
                mean_w = MatrixWriter::create(&mean_path, m, None)?;
                std_w = Some(MatrixWriter::create(sp, m, None)?);
            }
            None => {
                let mut all = names("mean");
                all.extend(names("std"));
                mean_w = MatrixWriter::create(&mean_path, 2 * m, Some(&all))?;
            }
        }
        let mut rows = 0;
        while let Some(batch) = batches.next_batch()? {
            let z: Vec<f32> = match &code_cols {
                Some(idx) => {
                    let mut z = Vec::with_capacity(batch.rows * j);
                    for row in batch.data.chunks_exact(batch.cols) {
                        z.extend(idx.iter().map(|&c| row[c]));
                    }
                    z
                }
                None => batch.data,
            };
            let d = self
                .decode(&z, batch.rows)
                .map_err(|e| at_rows(e, &codes, rows))?;
            write_decoded(&d, &mut mean_w, std_w.as_mut())?;
            rows += batch.rows;
            bar.set_position(rows as u64);
        }
        mean_w.finish()?;
        if let Some(w) = std_w {
            w.finish()?;
        }
        bar.finish_and_clear();
        Ok(rows)
    }
}

/// Writes decoded rows to the decode outputs (one CSV with `mean_*` then `std_*`
/// columns, or two NPY files).
pub fn write_decoded(
    d: &Decoded,
    mean_w: &mut MatrixWriter,
    std_w: Option<&mut MatrixWriter>,
) -> Result<(), ApiError> {
    match std_w {
        Some(sw) => {
            mean_w.write_rows(&d.mean)?;
            sw.write_rows(&d.std)?;
        }
        None => {
            let mut both = Vec::with_capacity(d.mean.len() * 2);
            for r in 0..d.rows {
                both.extend_from_slice(&d.mean[r * d.cols..(r + 1) * d.cols]);
                both.extend_from_slice(&d.std[r * d.cols..(r + 1) * d.cols]);
            }
            mean_w.write_rows(&both)?;
        }
    }
    Ok(())
}

fn at_rows(e: ApiError, file: &Path, first_row: usize) -> ApiError {
    match e {
        ApiError::BadInput(msg) => ApiError::BadInput(format!(
            "{}: in the batch starting at row {first_row} (0-based): {msg}",
            file.display()
        )),
        other => other,
    }
}

fn progress_bar(show: bool, total: u64, what: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(total);
    b.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} rows ({per_sec}, eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    b.set_message(what.to_owned());
    b
}

/// Path of `base` with `.suffix` inserted before its extension: `codes.npy` → `codes.mu.npy`.
pub fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let stem = base
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = base
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    base.with_file_name(format!("{stem}.{suffix}{ext}"))
}

/// The arrays `vsc encode` writes, in order.
pub const CODE_ARRAYS: [&str; 4] = ["mu", "logvar", "gamma", "code"];

/// Files written by `encode --out OUT`: for `.npy`, one `rows × J` `<f4` file per array,
/// `OUT` with `.mu`, `.logvar`, `.gamma`, `.code` inserted before the extension
/// (`codes.npy` → `codes.mu.npy`, …); for CSV, the one file `OUT` with columns
/// `mu_0..mu_{J-1}, logvar_0.., gamma_0.., code_0..`.
pub fn code_outputs(out: &Path) -> Vec<PathBuf> {
    if is_npy(out) {
        CODE_ARRAYS.iter().map(|a| with_suffix(out, a)).collect()
    } else {
        vec![out.to_owned()]
    }
}

/// Files written by `decode --out OUT`: for `.npy`, `OUT` with `.mean` and `.std` inserted
/// (both `rows × M`); for CSV, the one file `OUT` with columns `mean_0.., std_0..`.
pub fn decode_outputs(out: &Path) -> (PathBuf, Option<PathBuf>) {
    if is_npy(out) {
        (with_suffix(out, "mean"), Some(with_suffix(out, "std")))
    } else {
        (out.to_owned(), None)
    }
}

fn is_npy(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

/// `decode --codes X.npy` where only `X.code.npy` exists (what `encode --out X.npy` wrote)
/// means that file.
fn resolve_codes_path(p: &Path) -> PathBuf {
    if !p.exists() && is_npy(p) {
        let alt = with_suffix(p, "code");
        if alt.exists() {
            return alt;
        }
    }
    p.to_owned()
}

/// Streaming writers of the encode outputs.
struct CodeWriters {
    latent_dim: usize,
    writers: Vec<MatrixWriter>,
}

impl CodeWriters {
    fn create(out: &Path, j: usize) -> Result<CodeWriters, ApiError> {
        let paths = code_outputs(out);
        let writers = if paths.len() == 1 {
            let names: Vec<String> = CODE_ARRAYS
                .iter()
                .flat_map(|a| (0..j).map(move |d| format!("{a}_{d}")))
                .collect();
            vec![MatrixWriter::create(&paths[0], 4 * j, Some(&names))?]
        } else {
            paths
                .iter()
                .map(|p| MatrixWriter::create(p, j, None))
                .collect::<Result<_, _>>()?
        };
        Ok(CodeWriters {
            latent_dim: j,
            writers,
        })
    }

    fn write(&mut self, codes: &Codes) -> Result<(), ApiError> {
        let code = codes.sparse_code();
        let arrays = [&codes.mu, &codes.logvar, &codes.gamma, &code];
        if self.writers.len() == 1 {
            let j = self.latent_dim;
            let mut rowbuf = Vec::with_capacity(codes.rows * 4 * j);
            for r in 0..codes.rows {
                for a in arrays {
                    rowbuf.extend_from_slice(&a[r * j..(r + 1) * j]);
                }
            }
            self.writers[0].write_rows(&rowbuf)?;
        } else {
            for (w, a) in self.writers.iter_mut().zip(arrays) {
                w.write_rows(a)?;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<(), ApiError> {
        for w in self.writers {
            w.finish()?;
        }
        Ok(())
    }
}
