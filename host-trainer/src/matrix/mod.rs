//! Plain numeric matrices (rows = samples) from NPY and CSV files, for training and using
//! VSC on any data: readers that stream row batches and writers that stream rows (the
//! per-column [0, 1] scaling fitted on them is [`crate::scaling::MinMaxScaling`]).
//!
//! - [`read_matrix`]: a whole file, format by extension (`.npy`; `.csv`, `.tsv`, `.txt`).
//! - [`MatrixBatches`]: the same, `batch_rows` rows at a time (encode a million-row file
//!   holding one batch).
//! - [`MatrixWriter`] / [`write_npy`] / [`write_csv`]: streaming, atomic (temp file +
//!   rename) writers; NPY files are `<f4`, CSV files may carry column names.
//! - Every error names the file and, where it applies, the row or line ([`MatrixError`]).
//!   See [`npy`] and [`csv`] for exactly what each reader accepts.

mod batches;
pub mod csv;
pub mod error;
pub mod npy;

pub use self::batches::{MatrixBatches, ReadOptions, count_rows};
pub use self::csv::{CsvHeader, CsvWriter, write_csv};
pub use self::error::MatrixError;
pub use self::npy::{NpyWriter, write_npy};

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A dense row-major f32 matrix: `data[r * cols + c]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Matrix {
    /// A matrix from row-major values; `data.len()` must be `rows * cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Matrix, MatrixError> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(MatrixError::BadShape {
                rows,
                cols,
                len: data.len(),
            });
        }
        Ok(Matrix { rows, cols, data })
    }

    /// Row `r` (panics if out of range, like slice indexing).
    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }
}

/// File formats this module reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Npy,
    Csv,
}

impl Format {
    /// The format a file name's extension names.
    pub fn from_path(path: &Path) -> Result<Format, MatrixError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("npy") => Ok(Format::Npy),
            Some("csv" | "tsv" | "txt") => Ok(Format::Csv),
            _ => Err(MatrixError::UnknownFormat {
                file: path.to_owned(),
            }),
        }
    }
}

/// Reads a whole matrix (format by extension, CSV header detected).
pub fn read_matrix(path: &Path) -> Result<Matrix, MatrixError> {
    read_matrix_with(path, &ReadOptions::default())
}

/// Reads a whole matrix with explicit options.
pub fn read_matrix_with(path: &Path, opts: &ReadOptions) -> Result<Matrix, MatrixError> {
    let mut batches = MatrixBatches::open_with(path, 1 << 14, opts)?;
    let cols = batches.cols();
    let mut data = Vec::with_capacity(batches.total_rows().unwrap_or(0) * cols);
    while let Some(b) = batches.next_batch()? {
        data.extend_from_slice(&b.data);
    }
    let rows = data.len() / cols;
    Matrix::new(rows, cols, data)
}

/// The error for a file whose width is not what `what` (e.g. "the model in runs/x")
/// expects, or Ok.
pub fn check_width(
    file: &Path,
    found: usize,
    expected: usize,
    what: &str,
) -> Result<(), MatrixError> {
    if found == expected {
        Ok(())
    } else {
        Err(MatrixError::WidthMismatch {
            file: file.to_owned(),
            expected,
            found,
            what: what.to_owned(),
        })
    }
}

/// Reads integer labels, one per row: a 1-D or single-column NPY array of any numeric
/// dtype, or a single-column CSV (optional header). Values must be whole numbers.
pub fn read_labels(path: &Path) -> Result<Vec<i64>, MatrixError> {
    match Format::from_path(path)? {
        Format::Npy => npy::read_npy_labels(path),
        Format::Csv => {
            let m = read_matrix(path)?;
            check_width(path, m.cols, 1, "a label file (one label per row)")?;
            m.data
                .iter()
                .enumerate()
                .map(|(row, &v)| {
                    if v.fract() == 0.0 {
                        Ok(v as i64)
                    } else {
                        Err(MatrixError::LabelNotInteger {
                            file: path.to_owned(),
                            row,
                            value: f64::from(v),
                        })
                    }
                })
                .collect()
        }
    }
}

/// A streaming matrix writer, format by extension.
pub enum MatrixWriter {
    Npy(NpyWriter),
    // Boxed: the csv writer's buffers make it far larger than the NPY variant.
    Csv(Box<CsvWriter>),
}

impl MatrixWriter {
    /// Creates the writer; `column_names` become the CSV header (NPY files have no
    /// column names, so they are ignored there).
    pub fn create(
        path: &Path,
        cols: usize,
        column_names: Option<&[String]>,
    ) -> Result<MatrixWriter, MatrixError> {
        Ok(match Format::from_path(path)? {
            Format::Npy => MatrixWriter::Npy(NpyWriter::create(path, cols)?),
            Format::Csv => {
                MatrixWriter::Csv(Box::new(CsvWriter::create(path, cols, column_names)?))
            }
        })
    }

    /// Appends whole rows.
    pub fn write_rows(&mut self, values: &[f32]) -> Result<(), MatrixError> {
        match self {
            MatrixWriter::Npy(w) => w.write_rows(values),
            MatrixWriter::Csv(w) => w.write_rows(values),
        }
    }

    /// Completes the file and moves it into place; returns the number of rows.
    pub fn finish(self) -> Result<usize, MatrixError> {
        match self {
            MatrixWriter::Npy(w) => w.finish(),
            MatrixWriter::Csv(w) => (*w).finish(),
        }
    }
}

/// Writes a whole matrix, format by extension (column names used for CSV only).
pub fn write_matrix(
    path: &Path,
    column_names: Option<&[String]>,
    m: &Matrix,
) -> Result<(), MatrixError> {
    let mut w = MatrixWriter::create(path, m.cols, column_names)?;
    w.write_rows(&m.data)?;
    w.finish()?;
    Ok(())
}

/// A file written under a temporary name next to its destination and renamed into place
/// by [`AtomicFile::commit`], so a crash or error never leaves a half-written output
/// under the real name. Dropped without commit, the temporary file is removed.
pub struct AtomicFile {
    dest: PathBuf,
    tmp: PathBuf,
    w: Option<BufWriter<File>>,
}

impl AtomicFile {
    pub fn create(dest: &Path) -> Result<AtomicFile, MatrixError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        let tmp = dest.with_file_name(format!(
            ".{name}.tmp-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let f = File::create(&tmp).map_err(|e| MatrixError::io(dest, e))?;
        Ok(AtomicFile {
            dest: dest.to_owned(),
            tmp,
            w: Some(BufWriter::with_capacity(1 << 16, f)),
        })
    }

    /// The final path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    fn writer(&mut self) -> &mut BufWriter<File> {
        self.w.as_mut().expect("AtomicFile used after commit")
    }

    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), MatrixError> {
        let dest = self.dest.clone();
        Write::write_all(self.writer(), bytes).map_err(|e| MatrixError::io(&dest, e))
    }

    /// Overwrites the first bytes of the file (e.g. a header whose size is fixed).
    pub fn patch_start(&mut self, bytes: &[u8]) -> Result<(), MatrixError> {
        let dest = self.dest.clone();
        let w = self.writer();
        let res = (|| {
            w.flush()?;
            let f = w.get_mut();
            f.seek(SeekFrom::Start(0))?;
            f.write_all(bytes)?;
            f.seek(SeekFrom::End(0))?;
            Ok(())
        })();
        res.map_err(|e| MatrixError::io(&dest, e))
    }

    /// Flushes, syncs and renames the file to its destination.
    pub fn commit(mut self) -> Result<(), MatrixError> {
        let dest = self.dest.clone();
        let w = self.w.take().expect("AtomicFile committed twice");
        let res = (|| {
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&self.tmp, &self.dest)
        })();
        res.map_err(|e| MatrixError::io(&dest, e))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer().flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.w.take().is_some() || self.tmp.exists() {
            // Not committed (or the rename failed): do not leave the temporary behind.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
