//! `vsc encode`, `vsc decode`, `vsc generate` and the flags of `vsc train --input` (the
//! training itself is in `cli::train`): VSC on any numeric matrix (rows = samples). The
//! work is done by [`crate::api`]; this module parses arguments, prints summaries and
//! documents the file layouts.
//!
//! Output layouts (also in `vsc encode --help` etc.):
//! - `encode --out C.csv`: one file, columns `mu_0..`, `logvar_0..`, `gamma_0..`, `code_0..`
//!   (J each; `code = μ ⊙ 1[γ > 0.5]`). `--out C.npy`: four `rows × J` files `C.mu.npy`,
//!   `C.logvar.npy`, `C.gamma.npy`, `C.code.npy`.
//! - `decode --codes Z`: `Z` is a `rows × J` NPY/CSV, or an encode CSV (its `code_*` columns
//!   are used), or `C.npy` meaning `C.code.npy`. `--out X.csv`: columns `mean_0..`,
//!   `std_0..`; `--out X.npy`: `X.mean.npy` and `X.std.npy`. Original units.
//! - `generate --out G.csv`: columns `source_row`, `z_0..`, `mean_0..`, `std_0..`;
//!   `--out G.npy`: `G.source_row.npy`, `G.z.npy`, `G.mean.npy`, `G.std.npy`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use crate::api::{self, Generated, Model, with_suffix};
use crate::matrix::{CsvHeader, Matrix, MatrixBatches, ReadOptions, write_matrix};

/// File in RUN_DIR describing the training matrix of a `--input` run.
pub const MATRIX_INFO_FILE: &str = "matrix.json";
/// File in RUN_DIR holding the `--labels` (one integer per training row, evaluation only).
pub const LABELS_FILE: &str = "labels.csv";

/// Whether a CSV input has a header row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum HeaderChoice {
    /// A header when any cell of the first row is not a number.
    #[default]
    Auto,
    Yes,
    No,
}

impl HeaderChoice {
    pub fn read_options(self) -> ReadOptions {
        ReadOptions {
            csv_header: match self {
                HeaderChoice::Auto => CsvHeader::Auto,
                HeaderChoice::Yes => CsvHeader::Present,
                HeaderChoice::No => CsvHeader::Absent,
            },
        }
    }
}

/// Extra `vsc train` flags for matrix input (flattened into [`TrainArgs`]).
#[derive(Clone, Debug, Default, Args)]
pub struct MatrixTrainArgs {
    /// Train on any float matrix (rows = samples) from X.npy or X.csv instead of HAR
    /// windows; the [0, 1] scaling is fitted on it and stored with the model.
    #[arg(long, value_name = "X.npy|X.csv")]
    pub input: Option<PathBuf>,
    /// Integer labels, one per row (NPY or single-column CSV), kept in RUN_DIR for
    /// evaluation only (training never sees them).
    #[arg(long, value_name = "y.csv|y.npy", requires = "input")]
    pub labels: Option<PathBuf>,
    /// Whether the CSV input has a header row.
    #[arg(long, value_enum, default_value = "auto")]
    pub csv_header: HeaderChoice,
}

/// Options of `vsc encode`.
#[derive(Debug, Args)]
pub struct EncodeArgs {
    /// Run directory written by `vsc train`.
    pub run_dir: PathBuf,
    /// Matrix to encode (NPY or CSV, same width as the training matrix).
    #[arg(long, value_name = "X.npy|X.csv")]
    pub input: PathBuf,
    /// C.csv: one file with columns mu_*, logvar_*, gamma_*, code_* (code = μ⊙1[γ>0.5]);
    /// C.npy: four files C.mu.npy, C.logvar.npy, C.gamma.npy, C.code.npy.
    #[arg(long, value_name = "CODES.npy|CODES.csv")]
    pub out: PathBuf,
    /// Rows per batch (memory holds one batch of inputs and codes).
    #[arg(long, default_value_t = 4096)]
    pub batch_rows: usize,
    #[arg(long, value_enum, default_value = "auto")]
    pub csv_header: HeaderChoice,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub fn encode(args: &EncodeArgs) -> anyhow::Result<()> {
    let model = Model::open(&args.run_dir)?;
    let t0 = Instant::now();
    let rows = model.encode_file(
        &args.input,
        &args.out,
        &args.csv_header.read_options(),
        args.batch_rows,
        !args.quiet,
    )?;
    let outs: Vec<String> = api::code_outputs(&args.out)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    println!(
        "encoded {rows} rows in {:.1} s → {}",
        t0.elapsed().as_secs_f64(),
        outs.join(", ")
    );
    Ok(())
}

/// Options of `vsc decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// Run directory written by `vsc train`.
    pub run_dir: PathBuf,
    /// Latent rows: rows × J (NPY/CSV), an encode CSV (its code_* columns), or C.npy for C.code.npy.
    #[arg(long, value_name = "Z")]
    pub codes: PathBuf,
    /// X.csv: columns mean_*, std_*; X.npy: X.mean.npy and X.std.npy (original units).
    #[arg(long, value_name = "XHAT.npy|XHAT.csv")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 4096)]
    pub batch_rows: usize,
    #[arg(long)]
    pub quiet: bool,
}

pub fn decode(args: &DecodeArgs) -> anyhow::Result<()> {
    let model = Model::open(&args.run_dir)?;
    let rows = model.decode_file(&args.codes, &args.out, args.batch_rows, !args.quiet)?;
    let (mean, std) = api::decode_outputs(&args.out);
    println!(
        "decoded {rows} rows → {}{}",
        mean.display(),
        std.map(|s| format!(", {}", s.display()))
            .unwrap_or_default()
    );
    Ok(())
}

/// Values of a traversal (`--values a:b:n`).
#[derive(Clone, Debug, PartialEq)]
pub struct ValueRange(pub Vec<f32>);

/// `a:b:n` → n evenly spaced values from a to b.
pub fn parse_values(s: &str) -> Result<ValueRange, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let [a, b, n] = parts.as_slice() else {
        return Err(format!("expected START:END:COUNT, got {s:?}"));
    };
    let a: f32 = a.parse().map_err(|_| format!("bad start {a:?}"))?;
    let b: f32 = b.parse().map_err(|_| format!("bad end {b:?}"))?;
    let n: usize = n.parse().map_err(|_| format!("bad count {n:?}"))?;
    if n == 0 || !a.is_finite() || !b.is_finite() {
        return Err("need COUNT ≥ 1 and finite START, END".into());
    }
    Ok(ValueRange(
        (0..n)
            .map(|i| {
                if n == 1 {
                    a
                } else {
                    a + (b - a) * i as f32 / (n - 1) as f32
                }
            })
            .collect(),
    ))
}

/// Options of `vsc generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Run directory written by `vsc train`.
    pub run_dir: PathBuf,
    /// Matrix holding the example rows (NPY or CSV).
    #[arg(long, value_name = "X.npy|X.csv")]
    pub like: PathBuf,
    /// 0-based indices of the example rows in --like.
    #[arg(long, num_args = 1.., value_delimiter = ',', required = true)]
    pub rows: Vec<usize>,
    /// Conditional samples per example row (sample the row's active dims from the slab of
    /// the prior selected for it; other dims 0).
    #[arg(long, default_value_t = 8)]
    pub n: usize,
    /// Instead: traverse this latent dim over --values (from each row's sparse code).
    #[arg(
        long,
        value_name = "DIM",
        conflicts_with = "toggle",
        requires = "values"
    )]
    pub traverse: Option<usize>,
    /// Values of the traversal, START:END:COUNT.
    #[arg(long, value_parser = parse_values, value_name = "A:B:N", allow_hyphen_values = true)]
    pub values: Option<ValueRange>,
    /// Instead: switch this latent dim (off if active, else on) and output each row's code
    /// before and after.
    #[arg(long, value_name = "DIM")]
    pub toggle: Option<usize>,
    /// Value of a dim switched on by --toggle (default: the selected prior's slab mean).
    #[arg(long, requires = "toggle", allow_hyphen_values = true)]
    pub value: Option<f32>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// G.csv: columns source_row, z_*, mean_*, std_*; G.npy: G.source_row.npy, G.z.npy,
    /// G.mean.npy, G.std.npy.
    #[arg(long, value_name = "OUT.npy|OUT.csv")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "auto")]
    pub csv_header: HeaderChoice,
}

/// Reads the given rows (0-based) of a matrix file, streaming.
pub fn read_rows(
    path: &Path,
    wanted: &[usize],
    read: &ReadOptions,
) -> anyhow::Result<(Vec<f32>, usize)> {
    let mut batches = MatrixBatches::open_with(path, 4096, read)?;
    let cols = batches.cols();
    let mut found: Vec<Option<Vec<f32>>> = vec![None; wanted.len()];
    let mut start = 0;
    while let Some(b) = batches.next_batch()? {
        for (k, &r) in wanted.iter().enumerate() {
            if (start..start + b.rows).contains(&r) {
                found[k] = Some(b.row(r - start).to_vec());
            }
        }
        start += b.rows;
    }
    let mut out = Vec::with_capacity(wanted.len() * cols);
    for (k, row) in found.into_iter().enumerate() {
        match row {
            Some(v) => out.extend(v),
            None => bail!(
                "{}: row {} (0-based) does not exist; the file has {start} rows",
                path.display(),
                wanted[k]
            ),
        }
    }
    Ok((out, cols))
}

pub fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let model = Model::open(&args.run_dir)?;
    let (x, cols) = read_rows(&args.like, &args.rows, &args.csv_header.read_options())?;
    crate::matrix::check_width(
        &args.like,
        cols,
        model.input_dim(),
        &format!("the model in {}", args.run_dir.display()),
    )?;
    let rows = args.rows.len();
    let g = if let Some(dim) = args.traverse {
        let values = args.values.as_ref().context("--traverse needs --values")?;
        model.traverse(&x, rows, dim, &values.0)?
    } else if let Some(dim) = args.toggle {
        model.toggle(&x, rows, dim, args.value)?
    } else {
        model.generate(&x, rows, args.n, args.seed)?
    };
    write_generated(&args.out, &g, &args.rows, model.latent_dim())?;
    println!(
        "generated {} rows from {} example rows → {}",
        g.decoded.rows,
        rows,
        args.out.display()
    );
    Ok(())
}

fn write_generated(
    out: &Path,
    g: &Generated,
    example_rows: &[usize],
    j: usize,
) -> anyhow::Result<()> {
    let n = g.decoded.rows;
    let m = g.decoded.cols;
    let src: Vec<f32> = g
        .source_row
        .iter()
        .map(|&k| example_rows[k] as f32)
        .collect();
    let is_npy = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    if is_npy {
        write_matrix(
            &with_suffix(out, "source_row"),
            None,
            &Matrix::new(n, 1, src)?,
        )?;
        write_matrix(
            &with_suffix(out, "z"),
            None,
            &Matrix::new(n, j, g.z.clone())?,
        )?;
        write_matrix(
            &with_suffix(out, "mean"),
            None,
            &Matrix::new(n, m, g.decoded.mean.clone())?,
        )?;
        write_matrix(
            &with_suffix(out, "std"),
            None,
            &Matrix::new(n, m, g.decoded.std.clone())?,
        )?;
    } else {
        let mut names = vec!["source_row".to_owned()];
        names.extend((0..j).map(|d| format!("z_{d}")));
        names.extend((0..m).map(|c| format!("mean_{c}")));
        names.extend((0..m).map(|c| format!("std_{c}")));
        let mut data = Vec::with_capacity(n * names.len());
        for (r, &source) in src.iter().enumerate() {
            data.push(source);
            data.extend_from_slice(&g.z[r * j..(r + 1) * j]);
            data.extend_from_slice(&g.decoded.mean[r * m..(r + 1) * m]);
            data.extend_from_slice(&g.decoded.std[r * m..(r + 1) * m]);
        }
        write_matrix(out, Some(&names), &Matrix::new(n, names.len(), data)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse() {
        assert_eq!(parse_values("-1:1:3").unwrap().0, vec![-1.0, 0.0, 1.0]);
        assert_eq!(parse_values("2:5:1").unwrap().0, vec![2.0]);
        assert!(parse_values("1:2").is_err());
        assert!(parse_values("1:2:0").is_err());
        assert!(parse_values("a:2:3").is_err());
    }
}
