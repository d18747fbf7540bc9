//! [`MatrixBatches`]: a matrix file read `batch_rows` rows at a time, whatever its format.

use std::path::{Path, PathBuf};

use super::csv::{CsvHeader, CsvReader, count_csv_rows};
use super::error::MatrixError;
use super::npy::NpyReader;
use super::{Format, Matrix};

/// How to read a matrix file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Header handling for CSV files (ignored for NPY).
    pub csv_header: CsvHeader,
}

enum Source {
    Npy(NpyReader),
    Csv(CsvReader),
}

/// Reads a matrix file in batches of rows; memory use is one batch, not the file.
///
/// ```no_run
/// use host_trainer::matrix::MatrixBatches;
/// let mut batches = MatrixBatches::open("X.npy".as_ref(), 4096)?;
/// while let Some(batch) = batches.next_batch()? {
///     // batch.rows ≤ 4096, batch.cols == batches.cols()
/// }
/// # Ok::<(), host_trainer::matrix::MatrixError>(())
/// ```
pub struct MatrixBatches {
    file: PathBuf,
    source: Source,
    batch_rows: usize,
    rows_read: usize,
    failed: bool,
}

impl MatrixBatches {
    /// Opens `path` (format by extension; CSV header detected). `batch_rows` ≥ 1.
    pub fn open(path: &Path, batch_rows: usize) -> Result<MatrixBatches, MatrixError> {
        MatrixBatches::open_with(path, batch_rows, &ReadOptions::default())
    }

    pub fn open_with(
        path: &Path,
        batch_rows: usize,
        opts: &ReadOptions,
    ) -> Result<MatrixBatches, MatrixError> {
        let source = match Format::from_path(path)? {
            Format::Npy => Source::Npy(NpyReader::open(path)?),
            Format::Csv => Source::Csv(CsvReader::open(path, opts.csv_header)?),
        };
        Ok(MatrixBatches {
            file: path.to_owned(),
            source,
            batch_rows: batch_rows.max(1),
            rows_read: 0,
            failed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.file
    }

    /// Width of every row.
    pub fn cols(&self) -> usize {
        match &self.source {
            Source::Npy(r) => r.cols(),
            Source::Csv(r) => r.cols(),
        }
    }

    /// Number of rows when known without reading the file (NPY); see [`count_rows`].
    pub fn total_rows(&self) -> Option<usize> {
        match &self.source {
            Source::Npy(r) => Some(r.rows()),
            Source::Csv(_) => None,
        }
    }

    /// Column names from a CSV header row, if any.
    pub fn column_names(&self) -> Option<&[String]> {
        match &self.source {
            Source::Npy(_) => None,
            Source::Csv(r) => r.column_names(),
        }
    }

    /// Rows returned so far (the index of the next batch's first row).
    pub fn rows_read(&self) -> usize {
        self.rows_read
    }

    /// The next batch, or None at the end. After an error, always None.
    pub fn next_batch(&mut self) -> Result<Option<Matrix>, MatrixError> {
        if self.failed {
            return Ok(None);
        }
        let cols = self.cols();
        let mut data = Vec::with_capacity(self.batch_rows * cols);
        let res = match &mut self.source {
            Source::Npy(r) => r.read_rows(self.batch_rows, &mut data),
            Source::Csv(r) => r.read_rows(self.batch_rows, &mut data),
        };
        match res {
            Ok(0) => Ok(None),
            Ok(n) => {
                self.rows_read += n;
                Ok(Some(Matrix {
                    rows: n,
                    cols,
                    data,
                }))
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}

impl Iterator for MatrixBatches {
    type Item = Result<Matrix, MatrixError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().transpose()
    }
}

/// Number of data rows of a matrix file: from the header for NPY, by a fast pass that
/// does not parse numbers for CSV (for progress bars).
pub fn count_rows(path: &Path, opts: &ReadOptions) -> Result<usize, MatrixError> {
    match Format::from_path(path)? {
        Format::Npy => Ok(NpyReader::open(path)?.rows()),
        Format::Csv => count_csv_rows(path, opts.csv_header),
    }
}
