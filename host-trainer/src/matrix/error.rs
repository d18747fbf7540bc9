//! The one error type of the matrix readers and writers.
//!
//! Every variant caused by bad input names the file and, where the problem sits in one
//! place, where: CSV problems give the 1-based line (as an editor shows it) and 1-based
//! column; NPY problems give the 0-based row and column (as NumPy indexes them).

use std::path::PathBuf;

/// Errors of [`crate::matrix`]. Display texts are meant to be shown to users as they are.
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    /// Opening, reading or writing a file failed at the operating-system level.
    #[error("{file}: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file name does not say which format it is.
    #[error(
        "{file}: unknown matrix format; use a file ending in .npy (NumPy array) or \
         .csv / .tsv / .txt (delimited text)"
    )]
    UnknownFormat { file: PathBuf },

    /// The file holds no data rows (or rows without columns).
    #[error("{file}: empty matrix ({what}); need at least one row and one column")]
    Empty { file: PathBuf, what: String },

    /// A CSV cell is not a number.
    #[error("{file}:{line}: column {column}: `{value}` is not a number")]
    NotNumeric {
        file: PathBuf,
        line: u64,
        column: usize,
        value: String,
    },

    /// A CSV row has a different number of cells than the first row.
    #[error(
        "{file}:{line}: expected {expected} values (as in the first row), found {found} (ragged row)"
    )]
    Ragged {
        file: PathBuf,
        line: u64,
        expected: usize,
        found: usize,
    },

    /// A CSV value is NaN or infinite (or too large for f32).
    #[error(
        "{file}:{line}: column {column}: value `{value}` is not a finite number \
         (NaN, ±inf or beyond the f32 range); remove or impute it first"
    )]
    NonFiniteCsv {
        file: PathBuf,
        line: u64,
        column: usize,
        value: String,
    },

    /// An NPY value is NaN or infinite (or too large for f32).
    #[error(
        "{file}: row {row}, column {column} (0-based): value {value} is not a finite \
         f32 (NaN, ±inf or beyond the f32 range); remove or impute it first"
    )]
    NonFiniteNpy {
        file: PathBuf,
        row: usize,
        column: usize,
        value: f64,
    },

    /// The CSV parser failed (invalid UTF-8, broken quoting, …).
    #[error("{file}:{line}: {message}")]
    Csv {
        file: PathBuf,
        line: u64,
        message: String,
    },

    /// The file does not start with the NPY magic string.
    #[error(
        "{file}: not an NPY file (missing the \\x93NUMPY magic; was it saved with numpy.save?)"
    )]
    NpyMagic { file: PathBuf },

    /// The NPY header is malformed or uses a version this reader does not know.
    #[error("{file}: bad NPY header: {reason}")]
    NpyHeader { file: PathBuf, reason: String },

    /// The NPY dtype is not numeric (or not one this reader converts).
    #[error(
        "{file}: unsupported NPY dtype `{descr}`; expected a real number type such as \
         '<f4', '<f8', '<i4', '<i8' or '|u1' (convert with X.astype('float32'))"
    )]
    NpyDtype { file: PathBuf, descr: String },

    /// The NPY shape cannot be read as rows × columns.
    #[error("{file}: NPY shape {shape:?}: {reason}")]
    NpyShape {
        file: PathBuf,
        shape: Vec<usize>,
        reason: String,
    },

    /// The NPY file is shorter than its header says.
    #[error(
        "{file}: truncated NPY data: shape {shape:?} needs {expected_bytes} bytes of data, \
         found {found_bytes} (row {first_incomplete_row} (0-based) is the first incomplete row)"
    )]
    NpyTruncated {
        file: PathBuf,
        shape: Vec<usize>,
        expected_bytes: u64,
        found_bytes: u64,
        first_incomplete_row: usize,
    },

    /// The NPY file is longer than its header says (a damaged or concatenated file).
    #[error(
        "{file}: NPY file has {extra_bytes} bytes after the data its header describes \
         (shape {shape:?}); the file is damaged or not a single array"
    )]
    NpyTrailing {
        file: PathBuf,
        shape: Vec<usize>,
        extra_bytes: u64,
    },

    /// The matrix width does not match what the model (or scaling) expects.
    #[error("{file}: has {found} columns, but {what} expects {expected}")]
    WidthMismatch {
        file: PathBuf,
        expected: usize,
        found: usize,
        what: String,
    },

    /// A label value is not an integer.
    #[error("{file}: row {row} (0-based): label {value} is not an integer")]
    LabelNotInteger {
        file: PathBuf,
        row: usize,
        value: f64,
    },

    /// A JSON side file (e.g. the stored scaling) is malformed.
    #[error("{file}: {message}")]
    Json { file: PathBuf, message: String },

    /// A matrix was built from a value list that does not match its shape.
    #[error("{len} values do not form a {rows} × {cols} matrix")]
    BadShape {
        rows: usize,
        cols: usize,
        len: usize,
    },

    /// A writer was given a row slice whose length is not a multiple of its width.
    #[error("{file}: cannot write {len} values as rows of {cols} columns")]
    WriteShape {
        file: PathBuf,
        len: usize,
        cols: usize,
    },
}

impl MatrixError {
    pub(crate) fn io(file: &std::path::Path, source: std::io::Error) -> Self {
        MatrixError::Io {
            file: file.to_owned(),
            source,
        }
    }
}
