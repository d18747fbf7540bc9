//! Whitespace-separated numeric text files (HAPT raw signals, UCI HAR `X_*`, `y_*`, …).
//!
//! Files are read whole and split on `\n` (a trailing `\r` is stripped, so CRLF and LF
//! both work). Fields are split with `split_ascii_whitespace`, which also covers the
//! UCI `%16.7e` padding. Floats go through `str::parse::<f64>`: std's parser is compiled
//! with optimisation even in our opt-level-1 dev profile, so this stays fast.

use super::DataError;

/// Decodes a file's bytes as UTF-8; the error names the line of the first bad byte.
pub(crate) fn decode_utf8(bytes: Vec<u8>, file: &str) -> Result<String, DataError> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
        DataError::NotUtf8 {
            file: file.to_owned(),
            line,
        }
    })
}

/// Iterates over the non-blank lines of `text` as `(line_number_1_based, line)`.
///
/// Blank lines at the end of a file are allowed (editors add them); a blank line
/// between data lines is reported as a row with zero fields, i.e. a ragged row.
pub(crate) struct DataLines<'a> {
    inner: std::iter::Enumerate<std::str::Split<'a, char>>,
    pending_blank: Option<usize>,
}

impl<'a> DataLines<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        DataLines {
            inner: text.split('\n').enumerate(),
            pending_blank: None,
        }
    }
}

/// One item of [`DataLines`]: a data line, or a blank line followed by more data.
pub(crate) enum Line<'a> {
    Data(usize, &'a str),
    /// A blank line (its number) in the middle of the data.
    InteriorBlank(usize),
}

impl<'a> Iterator for DataLines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        for (index, raw) in self.inner.by_ref() {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.trim_ascii().is_empty() {
                self.pending_blank.get_or_insert(index + 1);
                continue;
            }
            if let Some(blank) = self.pending_blank.take() {
                return Some(Line::InteriorBlank(blank));
            }
            return Some(Line::Data(index + 1, line));
        }
        None
    }
}

/// A dense row-major table of finite `f32` values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FloatTable {
    pub rows: usize,
    pub cols: usize,
    pub values: Vec<f32>,
}

/// Parses a table of finite floats. `expected_cols`: `Some(n)` demands `n` values on
/// every row; `None` takes the first row's count and demands it on the others.
pub(crate) fn parse_float_table(
    text: &str,
    file: &str,
    expected_cols: Option<usize>,
) -> Result<FloatTable, DataError> {
    let mut cols = expected_cols;
    let mut rows = 0usize;
    // A rough guess (about 8 bytes per value) saves most reallocations on big files.
    let mut values = Vec::with_capacity(text.len() / 8);
    for item in DataLines::new(text) {
        let (line_no, line) = match item {
            Line::Data(n, l) => (n, l),
            Line::InteriorBlank(n) => {
                return Err(DataError::Ragged {
                    file: file.to_owned(),
                    line: n,
                    expected: cols.unwrap_or(1),
                    found: 0,
                });
            }
        };
        let row_start = values.len();
        for (field_index, field) in line.split_ascii_whitespace().enumerate() {
            values.push(parse_finite(field, file, line_no, field_index + 1)?);
        }
        let found = values.len() - row_start;
        match cols {
            Some(expected) if expected != found => {
                return Err(DataError::Ragged {
                    file: file.to_owned(),
                    line: line_no,
                    expected,
                    found,
                });
            }
            Some(_) => {}
            None => cols = Some(found),
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(DataError::Empty {
            file: file.to_owned(),
        });
    }
    Ok(FloatTable {
        rows,
        cols: cols.unwrap_or(0),
        values,
    })
}

/// Parses one field as a finite float that also fits in `f32`.
pub(crate) fn parse_finite(
    field: &str,
    file: &str,
    line: usize,
    field_no: usize,
) -> Result<f32, DataError> {
    let value: f64 = field.parse().map_err(|_| DataError::NotANumber {
        file: file.to_owned(),
        line,
        field: field_no,
        text: field.to_owned(),
        expected: "a number",
    })?;
    let narrowed = value as f32;
    if !value.is_finite() || !narrowed.is_finite() {
        return Err(DataError::NonFinite {
            file: file.to_owned(),
            line,
            field: field_no,
            text: field.to_owned(),
        });
    }
    Ok(narrowed)
}

/// An integer field's name and allowed range, for [`parse_int_rows`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct IntField {
    pub what: &'static str,
    pub min: i64,
    pub max: i64,
}

/// Parses rows of exactly `N` integers, each within its field's range.
/// Returns `(line_number, values)` per row.
pub(crate) fn parse_int_rows<const N: usize>(
    text: &str,
    file: &str,
    fields: &[IntField; N],
) -> Result<Vec<(usize, [i64; N])>, DataError> {
    let mut out = Vec::new();
    for item in DataLines::new(text) {
        let (line_no, line) = match item {
            Line::Data(n, l) => (n, l),
            Line::InteriorBlank(n) => {
                return Err(DataError::Ragged {
                    file: file.to_owned(),
                    line: n,
                    expected: N,
                    found: 0,
                });
            }
        };
        let mut row = [0i64; N];
        let mut found = 0usize;
        for (i, token) in line.split_ascii_whitespace().enumerate() {
            found += 1;
            if i >= N {
                continue;
            }
            let value: i64 = token.parse().map_err(|_| DataError::NotANumber {
                file: file.to_owned(),
                line: line_no,
                field: i + 1,
                text: token.to_owned(),
                expected: "an integer",
            })?;
            let spec = fields[i];
            if value < spec.min || value > spec.max {
                return Err(DataError::OutOfRange {
                    file: file.to_owned(),
                    line: line_no,
                    what: spec.what,
                    value,
                    min: spec.min,
                    max: spec.max,
                });
            }
            row[i] = value;
        }
        if found != N {
            return Err(DataError::Ragged {
                file: file.to_owned(),
                line: line_no,
                expected: N,
                found,
            });
        }
        out.push((line_no, row));
    }
    if out.is_empty() {
        return Err(DataError::Empty {
            file: file.to_owned(),
        });
    }
    Ok(out)
}

/// Parses a one-integer-per-line file (UCI `y_*.txt`, `subject_*.txt`) into `u8`s.
/// `field.max` must not exceed 255.
pub(crate) fn parse_u8_column(
    text: &str,
    file: &str,
    field: IntField,
) -> Result<Vec<u8>, DataError> {
    assert!(field.min >= 0 && field.max <= i64::from(u8::MAX));
    Ok(parse_int_rows(text, file, &[field])?
        .into_iter()
        // In range by the check above, so the cast cannot truncate.
        .map(|(_, [v])| v as u8)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_padding_and_trailing_blank_lines() {
        let text = "  2.8858451e-001 -2.0294171e-002\r\n  1.0e+000  -3.5e-003\r\n\r\n";
        let t = parse_float_table(text, "f", None).unwrap();
        assert_eq!((t.rows, t.cols), (2, 2));
        assert_eq!(t.values, vec![0.288_584_5, -0.020_294_17, 1.0, -0.0035]);
    }

    #[test]
    fn interior_blank_line_is_ragged() {
        let err = parse_float_table("1 2\n\n3 4\n", "f.txt", None).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Ragged {
                    line: 2,
                    found: 0,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn f32_overflow_is_non_finite() {
        let err = parse_float_table("1e300\n", "f.txt", None).unwrap_err();
        assert!(matches!(err, DataError::NonFinite { line: 1, .. }), "{err}");
    }

    #[test]
    fn utf8_error_names_line() {
        let err = decode_utf8(b"1\n2\n\xff\n".to_vec(), "f.txt").unwrap_err();
        assert!(matches!(err, DataError::NotUtf8 { line: 3, .. }), "{err}");
    }

    #[test]
    fn int_rows_check_count_and_range() {
        let f = [
            IntField {
                what: "a",
                min: 1,
                max: 5,
            },
            IntField {
                what: "b",
                min: 0,
                max: 9,
            },
        ];
        assert_eq!(
            parse_int_rows("1 2\n5 9\n", "f", &f).unwrap(),
            vec![(1, [1, 2]), (2, [5, 9])]
        );
        let err = parse_int_rows("1 2 3\n", "f", &f).unwrap_err();
        assert!(matches!(err, DataError::Ragged { found: 3, .. }), "{err}");
        let err = parse_int_rows("1 2\n6 2\n", "f", &f).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::OutOfRange {
                    line: 2,
                    value: 6,
                    ..
                }
            ),
            "{err}"
        );
        let err = parse_int_rows("1 2.0\n", "f", &f).unwrap_err();
        assert!(
            matches!(err, DataError::NotANumber { field: 2, .. }),
            "{err}"
        );
    }
}
