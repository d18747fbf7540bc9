//! Delimited text matrices: a row-batch reader with header detection and a streaming
//! writer with named columns.
//!
//! Reading rules:
//! - The delimiter is `\t` for `.tsv`; otherwise it is sniffed from the first line: the
//!   most frequent of `,` `\t` `;`, or a single space when none occurs (what
//!   `numpy.savetxt` writes by default). Cells are trimmed of surrounding whitespace.
//! - A header row is detected ([`CsvHeader::Auto`]) when any cell of the first row is not
//!   a number; [`CsvHeader::Present`] / [`CsvHeader::Absent`] force the choice (use
//!   `Present` for headers whose names are numbers, such as `0,1,2`).
//! - Every row must have as many cells as the first; cells must parse as finite `f32`.
//!   Errors give the 1-based line and column.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::error::MatrixError;
use super::{AtomicFile, Matrix};

/// Whether the first row of a CSV file holds column names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CsvHeader {
    /// A header when any first-row cell is not a number.
    #[default]
    Auto,
    Present,
    Absent,
}

fn sniff_delimiter(path: &Path) -> Result<u8, MatrixError> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tsv"))
    {
        return Ok(b'\t');
    }
    let f = File::open(path).map_err(|e| MatrixError::io(path, e))?;
    let mut first = Vec::new();
    BufReader::new(f)
        .read_until(b'\n', &mut first)
        .map_err(|e| MatrixError::io(path, e))?;
    let count = |c: u8| first.iter().filter(|&&b| b == c).count();
    let best = [b',', b'\t', b';']
        .into_iter()
        .map(|c| (count(c), c))
        .max_by_key(|(n, _)| *n)
        .filter(|(n, _)| *n > 0);
    Ok(match best {
        Some((_, c)) => c,
        None => b' ',
    })
}

fn csv_error(file: &Path, e: &::csv::Error) -> MatrixError {
    let line = e.position().map_or(0, |p| p.line());
    let message = match e.kind() {
        ::csv::ErrorKind::Utf8 { .. } => "not valid UTF-8 text".to_owned(),
        ::csv::ErrorKind::Io(io) => io.to_string(),
        _ => e.to_string(),
    };
    MatrixError::Csv {
        file: file.to_owned(),
        line,
        message,
    }
}

/// Parses one data record into `out`; `line` is for messages.
fn parse_record(
    file: &Path,
    record: &::csv::StringRecord,
    cols: usize,
    line: u64,
    out: &mut Vec<f32>,
) -> Result<(), MatrixError> {
    if record.len() != cols {
        return Err(MatrixError::Ragged {
            file: file.to_owned(),
            line,
            expected: cols,
            found: record.len(),
        });
    }
    for (i, cell) in record.iter().enumerate() {
        let cell = cell.trim_start_matches('\u{feff}');
        let value: f32 = cell.parse().map_err(|_| MatrixError::NotNumeric {
            file: file.to_owned(),
            line,
            column: i + 1,
            value: if cell.is_empty() {
                "(empty cell)".to_owned()
            } else {
                cell.to_owned()
            },
        })?;
        if !value.is_finite() {
            return Err(MatrixError::NonFiniteCsv {
                file: file.to_owned(),
                line,
                column: i + 1,
                value: cell.to_owned(),
            });
        }
        out.push(value);
    }
    Ok(())
}

/// Reads a CSV matrix a batch of rows at a time.
pub struct CsvReader {
    file: PathBuf,
    reader: ::csv::Reader<BufReader<File>>,
    cols: usize,
    column_names: Option<Vec<String>>,
    /// The first data row when it was read while looking for a header.
    pending: Option<Vec<f32>>,
    record: ::csv::StringRecord,
}

impl CsvReader {
    pub fn open(path: &Path, header: CsvHeader) -> Result<CsvReader, MatrixError> {
        let delimiter = sniff_delimiter(path)?;
        let f = File::open(path).map_err(|e| MatrixError::io(path, e))?;
        let mut reader = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .trim(::csv::Trim::All)
            .from_reader(BufReader::with_capacity(1 << 16, f));
        let mut record = ::csv::StringRecord::new();
        let empty = || MatrixError::Empty {
            file: path.to_owned(),
            what: "no data rows".into(),
        };
        if !reader
            .read_record(&mut record)
            .map_err(|e| csv_error(path, &e))?
        {
            return Err(empty());
        }
        let line = record.position().map_or(1, |p| p.line());
        let cols = record.len();
        let mut first = Vec::with_capacity(cols);
        let parsed = parse_record(path, &record, cols, line, &mut first);
        let is_header = match header {
            CsvHeader::Present => true,
            CsvHeader::Absent => false,
            CsvHeader::Auto => matches!(parsed, Err(MatrixError::NotNumeric { .. })),
        };
        let (column_names, pending) = if is_header {
            let names = record
                .iter()
                .map(|s| s.trim_start_matches('\u{feff}').to_owned())
                .collect();
            (Some(names), None)
        } else {
            parsed?;
            (None, Some(first))
        };
        let mut reader = CsvReader {
            file: path.to_owned(),
            reader,
            cols,
            column_names,
            pending,
            record,
        };
        if reader.pending.is_none() {
            // Only a header: make sure at least one data row follows.
            let mut row = Vec::with_capacity(cols);
            if reader.read_rows(1, &mut row)? == 0 {
                return Err(empty());
            }
            reader.pending = Some(row);
        }
        Ok(reader)
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The header's column names, if the file has a header row.
    pub fn column_names(&self) -> Option<&[String]> {
        self.column_names.as_deref()
    }

    /// Appends up to `max_rows` further rows to `out` (row-major) and returns how many;
    /// 0 at the end of the file.
    pub fn read_rows(&mut self, max_rows: usize, out: &mut Vec<f32>) -> Result<usize, MatrixError> {
        let mut n = 0;
        if max_rows > 0
            && let Some(row) = self.pending.take()
        {
            out.extend_from_slice(&row);
            n += 1;
        }
        while n < max_rows {
            if !self
                .reader
                .read_record(&mut self.record)
                .map_err(|e| csv_error(&self.file, &e))?
            {
                break;
            }
            let line = self.record.position().map_or(0, |p| p.line());
            parse_record(&self.file, &self.record, self.cols, line, out)?;
            n += 1;
        }
        Ok(n)
    }
}

/// Counts the data rows of a CSV file without parsing numbers (for progress bars).
pub fn count_csv_rows(path: &Path, header: CsvHeader) -> Result<usize, MatrixError> {
    let mut rdr = CsvReader::open(path, header)?.reader;
    let mut rec = ::csv::ByteRecord::new();
    // The first data row was already consumed by `open` (pending).
    let mut n = 1;
    while rdr
        .read_byte_record(&mut rec)
        .map_err(|e| csv_error(path, &e))?
    {
        n += 1;
    }
    Ok(n)
}

/// Formats a value so that `f32::from_str` gives back the same bits, without the very
/// long digit strings that plain `{}` prints for tiny or huge magnitudes.
pub fn format_f32(v: f32) -> String {
    let a = v.abs();
    if a == 0.0 || (1e-4..1e7).contains(&a) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// Writes a CSV matrix row by row, with an optional header of column names; moved into
/// place atomically by [`CsvWriter::finish`].
pub struct CsvWriter {
    dest: PathBuf,
    writer: ::csv::Writer<AtomicFile>,
    cols: usize,
    rows_written: usize,
}

impl CsvWriter {
    pub fn create(
        path: &Path,
        cols: usize,
        column_names: Option<&[String]>,
    ) -> Result<CsvWriter, MatrixError> {
        let out = AtomicFile::create(path)?;
        let delimiter = if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("tsv"))
        {
            b'\t'
        } else {
            b','
        };
        let mut writer = ::csv::WriterBuilder::new()
            .delimiter(delimiter)
            .from_writer(out);
        if let Some(names) = column_names {
            if names.len() != cols {
                return Err(MatrixError::WriteShape {
                    file: path.to_owned(),
                    len: names.len(),
                    cols,
                });
            }
            writer
                .write_record(names)
                .map_err(|e| csv_error(path, &e))?;
        }
        Ok(CsvWriter {
            dest: path.to_owned(),
            writer,
            cols,
            rows_written: 0,
        })
    }

    /// Appends whole rows (`values.len()` must be a multiple of the width).
    pub fn write_rows(&mut self, values: &[f32]) -> Result<(), MatrixError> {
        if self.cols == 0 || !values.len().is_multiple_of(self.cols) {
            return Err(MatrixError::WriteShape {
                file: self.dest.clone(),
                len: values.len(),
                cols: self.cols,
            });
        }
        for row in values.chunks_exact(self.cols) {
            self.writer
                .write_record(row.iter().map(|v| format_f32(*v)))
                .map_err(|e| csv_error(&self.dest, &e))?;
            self.rows_written += 1;
        }
        Ok(())
    }

    pub fn finish(self) -> Result<usize, MatrixError> {
        let dest = self.dest;
        let out = self
            .writer
            .into_inner()
            .map_err(|e| MatrixError::io(&dest, std::io::Error::other(e.to_string())))?;
        out.commit()?;
        Ok(self.rows_written)
    }
}

/// Writes a whole matrix as CSV (atomically), with a header row when `column_names` is given.
pub fn write_csv(
    path: &Path,
    column_names: Option<&[String]>,
    m: &Matrix,
) -> Result<(), MatrixError> {
    let mut w = CsvWriter::create(path, m.cols, column_names)?;
    w.write_rows(&m.data)?;
    w.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_round_trips_bits() {
        for v in [
            0.0f32,
            -0.0,
            1.0,
            0.1,
            -3.25e-7,
            1.0e-30,
            f32::MIN_POSITIVE,
            f32::MAX,
            123456.79,
            1.0e7,
        ] {
            let s = format_f32(v);
            assert_eq!(s.parse::<f32>().unwrap().to_bits(), v.to_bits(), "{s}");
            assert!(s.len() <= 16, "{s}");
        }
    }
}
