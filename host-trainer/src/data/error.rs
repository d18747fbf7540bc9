//! The one error type of the data loaders.
//!
//! Every variant caused by bad input names the file (for a zip member:
//! `archive.zip:member/path.txt`) and, where the problem sits on a line, the 1-based
//! line number, so a user can open the file and look.

use std::path::PathBuf;

/// Errors of [`crate::data`]. Display texts are meant to be shown to users as they are.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Neither `--data` nor `VSC_DATA_DIR` says where the data is.
    #[error(
        "no data folder given: pass `--data DIR` or set the environment variable \
         VSC_DATA_DIR to the folder that holds HAPT_RawData.zip (or the unpacked \
         `HAPT Data Set/`); in this project's checkout that is `../shared/data`, and \
         `cargo xtask data --dir DIR` downloads the official zips into DIR"
    )]
    NoDataDir,

    /// The data folder (or a file the user named) does not exist.
    #[error("{path}: does not exist ({what})")]
    NotFound { path: PathBuf, what: String },

    /// A folder holds none of the layouts we know.
    #[error("{path}: found no {dataset} data here; looked for {looked_for}")]
    DatasetNotFound {
        path: PathBuf,
        dataset: &'static str,
        looked_for: String,
    },

    /// A file that the dataset layout needs is missing from the folder or zip.
    #[error("{container}: missing file `{name}`")]
    MissingFile { container: String, name: String },

    /// Reading a file failed at the operating-system level.
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },

    /// The zip archive (or a member of it) is damaged or truncated.
    #[error("{file}: not a readable zip archive (truncated or damaged?): {source}")]
    Zip {
        file: String,
        #[source]
        source: zip::result::ZipError,
    },

    /// A text file is not valid UTF-8.
    #[error("{file}:{line}: not valid UTF-8 text")]
    NotUtf8 { file: String, line: usize },

    /// A row has a different number of fields than the file's other rows (or than asked for).
    #[error("{file}:{line}: expected {expected} values, found {found} (ragged row)")]
    Ragged {
        file: String,
        line: usize,
        expected: usize,
        found: usize,
    },

    /// A field is not a number (or not an integer where one is expected).
    #[error("{file}:{line}: field {field}: `{text}` is not {expected}")]
    NotANumber {
        file: String,
        line: usize,
        field: usize,
        text: String,
        /// "a number" or "an integer".
        expected: &'static str,
    },

    /// A field is NaN or infinite.
    #[error("{file}:{line}: field {field}: `{text}` is not a finite number")]
    NonFinite {
        file: String,
        line: usize,
        field: usize,
        text: String,
    },

    /// An integer field (label, subject, experiment, sample number) is out of its range.
    #[error("{file}:{line}: {what} {value} is out of range {min}..={max}")]
    OutOfRange {
        file: String,
        line: usize,
        what: &'static str,
        value: i64,
        min: i64,
        max: i64,
    },

    /// A file has no data rows.
    #[error("{file}: no data rows")]
    Empty { file: String },

    /// The accelerometer and gyroscope files of one experiment differ in length.
    #[error(
        "{gyro_file}:{line}: the gyroscope file has {gyro_rows} samples but \
         {acc_file} has {acc_rows}; both must have one line per 50 Hz sample"
    )]
    LengthMismatch {
        acc_file: String,
        acc_rows: usize,
        gyro_file: String,
        gyro_rows: usize,
        /// First line that exists in only one of the two files.
        line: usize,
    },

    /// Two files that describe the same rows (e.g. `X_train` and `y_train`) differ in length.
    #[error("{file}:{line}: has {rows} rows but {other_file} has {other_rows}")]
    RowCountMismatch {
        file: String,
        rows: usize,
        other_file: String,
        other_rows: usize,
        /// First line that exists in only one of the two files.
        line: usize,
    },

    /// A labelled run in `labels.txt` ends past the last sample of its recording.
    #[error(
        "{file}:{line}: experiment {exp} run {start}..={end} (1-based, inclusive) ends \
         past the recording's last sample {len}"
    )]
    RangePastEnd {
        file: String,
        line: usize,
        exp: u16,
        start: usize,
        end: usize,
        len: usize,
    },

    /// A labelled run is empty or starts before sample 1.
    #[error("{file}:{line}: run {start}..={end} is empty or starts before sample 1")]
    BadRange {
        file: String,
        line: usize,
        start: usize,
        end: usize,
    },

    /// Two labelled runs of one experiment overlap.
    #[error(
        "{file}:{line}: run {start}..={end} of experiment {exp} overlaps the run on line {other_line}"
    )]
    OverlappingRuns {
        file: String,
        line: usize,
        other_line: usize,
        exp: u16,
        start: usize,
        end: usize,
    },

    /// `labels.txt` refers to an experiment with no signal files, or to the wrong user.
    #[error("{file}:{line}: {msg}")]
    Inconsistent {
        file: String,
        line: usize,
        msg: String,
    },

    /// A file name does not follow the dataset's naming scheme.
    #[error("{file}: unexpected file name ({msg})")]
    BadFileName { file: String, msg: String },

    /// Arrays handed to a function do not fit together (a caller's mistake, not bad data).
    #[error("{msg}")]
    Shape { msg: String },

    /// The shared preprocessing rejected a recording (e.g. a non-finite sample).
    #[error("{file}: preprocessing failed: {msg}")]
    Preprocess { file: String, msg: String },
}

impl DataError {
    pub(crate) fn io(file: impl Into<String>, source: std::io::Error) -> Self {
        DataError::Io {
            file: file.into(),
            source,
        }
    }
}
