//! NumPy `.npy` files: header parsing (format versions 1.0, 2.0 and 3.0), a row-batch
//! reader that never holds more than the rows asked for, and a streaming `<f4` writer.
//!
//! What the reader accepts, and why:
//! - dtypes: little- or big-endian floats (`f2` is not supported, `f4`, `f8`), signed and
//!   unsigned integers of 1, 2, 4 and 8 bytes, and `|b1` booleans; every value becomes an
//!   `f32` (integers above 2^24 lose precision, which is harmless for data that a sigmoid
//!   decoder models in [0, 1] after scaling). Strings, objects, complex numbers and
//!   structured dtypes are refused with [`MatrixError::NpyDtype`].
//! - shapes: `(n,)` is read as n rows × 1 column, `(n, m)` as n × m, and `(n, a, b, …)`
//!   as n rows of a·b·… values flattened in C order (so a stack of images works as is).
//! - `fortran_order: True` 2-D arrays (what `np.save(X.T)` writes) are transposed while
//!   reading: each row batch reads one contiguous run per column. For 3 or more
//!   dimensions in Fortran order the flattening order would be ambiguous, so that is an
//!   error ([`MatrixError::NpyShape`]).
//! - A file shorter or longer than its header says is an error, checked before any row
//!   is returned; NaN and ±inf (and `f8` values beyond the `f32` range) are errors naming
//!   the row and column.
//!
//! The writer always writes format 1.0, `<f4`, C order, 2-D, with a header padded to a
//! fixed 128 bytes so the row count can be patched in once the last row is written.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::error::MatrixError;
use super::{AtomicFile, Matrix};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Element types of an NPY file that can be read as real numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NpyKind {
    Float,
    Int,
    UInt,
    Bool,
}

/// A parsed NPY `descr`: kind, item size in bytes and byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NpyDtype {
    pub kind: NpyKind,
    pub item_bytes: usize,
    pub big_endian: bool,
}

impl NpyDtype {
    /// Parses a simple dtype string such as `<f4`, `>i8`, `|u1`; None if not numeric.
    pub fn parse(descr: &str) -> Option<NpyDtype> {
        let mut chars = descr.chars();
        let order = chars.next()?;
        let big_endian = match order {
            '<' | '|' => false,
            '>' => true,
            // '=' is native order; every platform this project builds for is little-endian.
            '=' => cfg!(target_endian = "big"),
            _ => return None,
        };
        let kind = match chars.next()? {
            'f' => NpyKind::Float,
            'i' => NpyKind::Int,
            'u' => NpyKind::UInt,
            'b' => NpyKind::Bool,
            _ => return None,
        };
        let item_bytes: usize = chars.as_str().parse().ok()?;
        let ok = match kind {
            NpyKind::Float => matches!(item_bytes, 4 | 8),
            NpyKind::Int | NpyKind::UInt => matches!(item_bytes, 1 | 2 | 4 | 8),
            NpyKind::Bool => item_bytes == 1,
        };
        ok.then_some(NpyDtype {
            kind,
            item_bytes,
            big_endian,
        })
    }

    /// Decodes one item (exactly `item_bytes` long) into an f64 (exact for every kind
    /// except 64-bit integers beyond 2^53, which are rounded).
    fn decode(&self, b: &[u8]) -> f64 {
        macro_rules! num {
            ($t:ty) => {{
                let arr: [u8; std::mem::size_of::<$t>()] = b.try_into().expect("item size");
                if self.big_endian {
                    <$t>::from_be_bytes(arr) as f64
                } else {
                    <$t>::from_le_bytes(arr) as f64
                }
            }};
        }
        match (self.kind, self.item_bytes) {
            (NpyKind::Float, 4) => num!(f32),
            (NpyKind::Float, _) => num!(f64),
            (NpyKind::Int, 1) => num!(i8),
            (NpyKind::Int, 2) => num!(i16),
            (NpyKind::Int, 4) => num!(i32),
            (NpyKind::Int, _) => num!(i64),
            (NpyKind::UInt, 1) => num!(u8),
            (NpyKind::UInt, 2) => num!(u16),
            (NpyKind::UInt, 4) => num!(u32),
            (NpyKind::UInt, _) => num!(u64),
            (NpyKind::Bool, _) => f64::from(u8::from(b[0] != 0)),
        }
    }
}

/// The parsed header of an NPY file.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyHeader {
    /// The `descr` string as written in the file.
    pub descr: String,
    pub dtype: NpyDtype,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
    /// Byte offset of the first data byte.
    pub data_offset: u64,
}

impl NpyHeader {
    /// Rows × columns as this module reads the shape (see the module docs).
    pub fn rows_cols(&self, file: &Path) -> Result<(usize, usize), MatrixError> {
        let shape_err = |reason: &str| MatrixError::NpyShape {
            file: file.to_owned(),
            shape: self.shape.clone(),
            reason: reason.to_owned(),
        };
        let (rows, cols) = match self.shape.as_slice() {
            [] => return Err(shape_err("a 0-d scalar is not a matrix")),
            [n] => (*n, 1),
            [n, m] => (*n, *m),
            [n, rest @ ..] => {
                if self.fortran_order {
                    return Err(shape_err(
                        "Fortran-ordered arrays with 3 or more dimensions are not supported; \
                         save np.ascontiguousarray(X) or reshape to 2-D first",
                    ));
                }
                let cols = rest
                    .iter()
                    .try_fold(1usize, |acc, d| acc.checked_mul(*d))
                    .ok_or_else(|| shape_err("too many values per row"))?;
                (*n, cols)
            }
        };
        if rows == 0 || cols == 0 {
            return Err(MatrixError::Empty {
                file: file.to_owned(),
                what: format!("NPY shape {:?}", self.shape),
            });
        }
        Ok((rows, cols))
    }
}

/// A value of the Python literal subset that NPY headers use.
#[derive(Clone, Debug, PartialEq)]
enum PyVal {
    Str(String),
    Bool(bool),
    Int(u64),
    Seq(Vec<PyVal>),
    Dict(Vec<(String, PyVal)>),
}

/// A tiny recursive-descent parser for the header's dict literal.
struct PyParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl PyParser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        match self.peek() {
            Some(x) if x == c => {
                self.pos += 1;
                Ok(())
            }
            Some(x) => Err(format!(
                "expected `{}` at byte {}, found `{}`",
                c as char, self.pos, x as char
            )),
            None => Err(format!("expected `{}`, found the end", c as char)),
        }
    }

    fn value(&mut self) -> Result<PyVal, String> {
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => {
                self.pos += 1;
                let start = self.pos;
                while self.pos < self.s.len() && self.s[self.pos] != q {
                    self.pos += 1;
                }
                if self.pos >= self.s.len() {
                    return Err("unterminated string".into());
                }
                let text = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
                self.pos += 1;
                Ok(PyVal::Str(text))
            }
            Some(b'{') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        return Ok(PyVal::Dict(items));
                    }
                    let key = match self.value()? {
                        PyVal::Str(k) => k,
                        other => return Err(format!("dict key {other:?} is not a string")),
                    };
                    self.expect(b':')?;
                    let v = self.value()?;
                    items.push((key, v));
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {}
                        _ => return Err(format!("expected `,` or `}}` at byte {}", self.pos)),
                    }
                }
            }
            Some(open @ (b'(' | b'[')) => {
                let close = if open == b'(' { b')' } else { b']' };
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        return Ok(PyVal::Seq(items));
                    }
                    items.push(self.value()?);
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(c) if c == close => {}
                        _ => return Err(format!("expected `,` or `{}`", close as char)),
                    }
                }
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.pos;
                while self.pos < self.s.len() && self.s[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
                // Python 2 era files may write `3L`.
                if self.s.get(self.pos) == Some(&b'L') {
                    self.pos += 1;
                }
                let digits = std::str::from_utf8(&self.s[start..self.pos])
                    .unwrap_or("")
                    .trim_end_matches('L');
                digits
                    .parse()
                    .map(PyVal::Int)
                    .map_err(|_| format!("bad integer `{digits}`"))
            }
            Some(_) => {
                for (word, v) in [("True", true), ("False", false)] {
                    if self.s[self.pos..].starts_with(word.as_bytes()) {
                        self.pos += word.len();
                        return Ok(PyVal::Bool(v));
                    }
                }
                Err(format!("unexpected text at byte {}", self.pos))
            }
            None => Err("unexpected end of header".into()),
        }
    }
}

/// Reads and checks the magic, version and header dict; leaves `r` at the first data byte.
pub fn read_header(file: &Path, r: &mut impl Read) -> Result<NpyHeader, MatrixError> {
    let header_err = |reason: String| MatrixError::NpyHeader {
        file: file.to_owned(),
        reason,
    };
    let mut pre = [0u8; 8];
    if let Err(e) = r.read_exact(&mut pre) {
        return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
            MatrixError::NpyMagic {
                file: file.to_owned(),
            }
        } else {
            MatrixError::io(file, e)
        });
    }
    if &pre[..6] != MAGIC {
        return Err(MatrixError::NpyMagic {
            file: file.to_owned(),
        });
    }
    let (major, minor) = (pre[6], pre[7]);
    let (header_len, prefix_len) = match major {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)
                .map_err(|_| header_err("file ends inside the header length".into()))?;
            (u64::from(u16::from_le_bytes(b)), 10u64)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b)
                .map_err(|_| header_err("file ends inside the header length".into()))?;
            (u64::from(u32::from_le_bytes(b)), 12u64)
        }
        _ => {
            return Err(header_err(format!(
                "format version {major}.{minor} is not supported (known: 1.0, 2.0, 3.0)"
            )));
        }
    };
    // Real headers are a few hundred bytes; refuse absurd lengths before allocating.
    if header_len > 1 << 20 {
        return Err(header_err(format!(
            "header length {header_len} is implausible"
        )));
    }
    let mut text = vec![0u8; header_len as usize];
    r.read_exact(&mut text).map_err(|_| {
        header_err(format!(
            "file ends inside the {header_len}-byte header (truncated file?)"
        ))
    })?;
    let mut parser = PyParser { s: &text, pos: 0 };
    let dict = match parser.value().map_err(header_err)? {
        PyVal::Dict(items) => items,
        other => return Err(header_err(format!("header is not a dict but {other:?}"))),
    };
    let get = |key: &str| dict.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let descr = match get("descr") {
        Some(PyVal::Str(s)) => s.clone(),
        Some(PyVal::Seq(_)) => {
            return Err(MatrixError::NpyDtype {
                file: file.to_owned(),
                descr: "structured (record) dtype".into(),
            });
        }
        _ => return Err(header_err("missing or non-string `descr`".into())),
    };
    let fortran_order = match get("fortran_order") {
        Some(PyVal::Bool(b)) => *b,
        _ => return Err(header_err("missing or non-boolean `fortran_order`".into())),
    };
    let shape = match get("shape") {
        Some(PyVal::Seq(items)) => items
            .iter()
            .map(|v| match v {
                PyVal::Int(n) => usize::try_from(*n).map_err(|_| "dimension too large".to_owned()),
                other => Err(format!("shape entry {other:?} is not an integer")),
            })
            .collect::<Result<Vec<usize>, String>>()
            .map_err(header_err)?,
        _ => return Err(header_err("missing or non-tuple `shape`".into())),
    };
    let dtype = NpyDtype::parse(&descr).ok_or_else(|| MatrixError::NpyDtype {
        file: file.to_owned(),
        descr: descr.clone(),
    })?;
    Ok(NpyHeader {
        descr,
        dtype,
        fortran_order,
        shape,
        data_offset: prefix_len + header_len,
    })
}

/// Reads an NPY matrix a batch of rows at a time.
pub struct NpyReader {
    file: PathBuf,
    reader: BufReader<File>,
    header: NpyHeader,
    rows: usize,
    cols: usize,
    next_row: usize,
    raw: Vec<u8>,
}

impl NpyReader {
    /// Opens `path`, parses the header and checks the file length against the shape.
    pub fn open(path: &Path) -> Result<NpyReader, MatrixError> {
        let f = File::open(path).map_err(|e| MatrixError::io(path, e))?;
        let file_len = f.metadata().map_err(|e| MatrixError::io(path, e))?.len();
        let mut reader = BufReader::with_capacity(1 << 16, f);
        let header = read_header(path, &mut reader)?;
        let (rows, cols) = header.rows_cols(path)?;
        let item = header.dtype.item_bytes as u64;
        let row_bytes = cols as u64 * item;
        let expected_bytes = rows as u64 * row_bytes;
        let found_bytes = file_len.saturating_sub(header.data_offset);
        if found_bytes < expected_bytes {
            // In Fortran order a short file cuts the last columns; still report by rows
            // so the message has one meaning: rows at or after this one are incomplete.
            let first_incomplete_row = if header.fortran_order {
                (found_bytes / item) as usize % rows
            } else {
                (found_bytes / row_bytes) as usize
            };
            return Err(MatrixError::NpyTruncated {
                file: path.to_owned(),
                shape: header.shape.clone(),
                expected_bytes,
                found_bytes,
                first_incomplete_row,
            });
        }
        if found_bytes > expected_bytes {
            return Err(MatrixError::NpyTrailing {
                file: path.to_owned(),
                shape: header.shape.clone(),
                extra_bytes: found_bytes - expected_bytes,
            });
        }
        Ok(NpyReader {
            file: path.to_owned(),
            reader,
            header,
            rows,
            cols,
            next_row: 0,
            raw: Vec::new(),
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn header(&self) -> &NpyHeader {
        &self.header
    }

    /// Appends up to `max_rows` further rows to `out` (row-major) and returns how many;
    /// 0 at the end of the file.
    pub fn read_rows(&mut self, max_rows: usize, out: &mut Vec<f32>) -> Result<usize, MatrixError> {
        let n = max_rows.min(self.rows - self.next_row);
        if n == 0 {
            return Ok(0);
        }
        let item = self.header.dtype.item_bytes;
        let start = out.len();
        out.resize(start + n * self.cols, 0.0);
        if self.header.fortran_order && self.cols > 1 {
            // Column c of rows r0..r0+n is contiguous at (c·rows + r0)·item.
            self.raw.resize(n * item, 0);
            for c in 0..self.cols {
                let offset =
                    self.header.data_offset + ((c * self.rows + self.next_row) * item) as u64;
                self.reader
                    .seek(SeekFrom::Start(offset))
                    .map_err(|e| MatrixError::io(&self.file, e))?;
                self.reader
                    .read_exact(&mut self.raw)
                    .map_err(|e| MatrixError::io(&self.file, e))?;
                for i in 0..n {
                    let v = self
                        .header
                        .dtype
                        .decode(&self.raw[i * item..(i + 1) * item]);
                    out[start + i * self.cols + c] = to_f32(&self.file, v, self.next_row + i, c)?;
                }
            }
        } else {
            self.raw.resize(n * self.cols * item, 0);
            self.reader
                .read_exact(&mut self.raw)
                .map_err(|e| MatrixError::io(&self.file, e))?;
            for (k, chunk) in self.raw.chunks_exact(item).enumerate() {
                let v = self.header.dtype.decode(chunk);
                out[start + k] =
                    to_f32(&self.file, v, self.next_row + k / self.cols, k % self.cols)?;
            }
        }
        self.next_row += n;
        Ok(n)
    }
}

fn to_f32(file: &Path, v: f64, row: usize, column: usize) -> Result<f32, MatrixError> {
    let x = v as f32;
    if x.is_finite() {
        Ok(x)
    } else {
        Err(MatrixError::NonFiniteNpy {
            file: file.to_owned(),
            row,
            column,
            value: v,
        })
    }
}

/// Total header block length of files this module writes (magic + version + length + dict).
const WRITE_HEADER_BYTES: usize = 128;

fn header_block(rows: usize, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let dict_len = WRITE_HEADER_BYTES - 10;
    let mut out = Vec::with_capacity(WRITE_HEADER_BYTES);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(dict_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    // Pad with spaces and end with a newline, as numpy does; 118 bytes always suffice
    // because two usize values print in at most 20 digits each.
    out.resize(WRITE_HEADER_BYTES - 1, b' ');
    out.push(b'\n');
    out
}

/// Writes a `<f4` C-order 2-D NPY file row by row; the row count is patched into the
/// header by [`NpyWriter::finish`], which also moves the file into place atomically.
pub struct NpyWriter {
    out: AtomicFile,
    cols: usize,
    rows_written: usize,
}

impl NpyWriter {
    pub fn create(path: &Path, cols: usize) -> Result<NpyWriter, MatrixError> {
        let mut out = AtomicFile::create(path)?;
        let block = header_block(0, cols);
        out.write_bytes(&block)?;
        Ok(NpyWriter {
            out,
            cols,
            rows_written: 0,
        })
    }

    /// Appends whole rows (`values.len()` must be a multiple of the width).
    pub fn write_rows(&mut self, values: &[f32]) -> Result<(), MatrixError> {
        if self.cols == 0 || !values.len().is_multiple_of(self.cols) {
            return Err(MatrixError::WriteShape {
                file: self.out.dest().to_owned(),
                len: values.len(),
                cols: self.cols,
            });
        }
        let mut bytes = Vec::with_capacity(values.len() * 4);
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.out.write_bytes(&bytes)?;
        self.rows_written += values.len() / self.cols;
        Ok(())
    }

    /// Patches the row count into the header, flushes and renames into place.
    pub fn finish(mut self) -> Result<usize, MatrixError> {
        let block = header_block(self.rows_written, self.cols);
        self.out.patch_start(&block)?;
        self.out.commit()?;
        Ok(self.rows_written)
    }
}

/// Writes a whole matrix as a `<f4` NPY file (atomically).
pub fn write_npy(path: &Path, m: &Matrix) -> Result<(), MatrixError> {
    let mut w = NpyWriter::create(path, m.cols)?;
    w.write_rows(&m.data)?;
    w.finish()?;
    Ok(())
}

/// Reads a 1-D (or n × 1) NPY array of integer labels (any integer or float dtype whose
/// values are whole numbers).
pub fn read_npy_labels(path: &Path) -> Result<Vec<i64>, MatrixError> {
    let f = File::open(path).map_err(|e| MatrixError::io(path, e))?;
    let mut reader = BufReader::new(f);
    let header = read_header(path, &mut reader)?;
    let (rows, cols) = header.rows_cols(path)?;
    if cols != 1 {
        return Err(MatrixError::NpyShape {
            file: path.to_owned(),
            shape: header.shape.clone(),
            reason: "labels must be a 1-D array or a single column".into(),
        });
    }
    let item = header.dtype.item_bytes;
    let mut raw = Vec::new();
    reader
        .read_to_end(&mut raw)
        .map_err(|e| MatrixError::io(path, e))?;
    if raw.len() != rows * item {
        let expected_bytes = (rows * item) as u64;
        let found_bytes = raw.len() as u64;
        return Err(if found_bytes < expected_bytes {
            MatrixError::NpyTruncated {
                file: path.to_owned(),
                shape: header.shape.clone(),
                expected_bytes,
                found_bytes,
                first_incomplete_row: raw.len() / item,
            }
        } else {
            MatrixError::NpyTrailing {
                file: path.to_owned(),
                shape: header.shape.clone(),
                extra_bytes: found_bytes - expected_bytes,
            }
        });
    }
    raw.chunks_exact(item)
        .enumerate()
        .map(|(row, b)| {
            // Decode integers exactly: f64 is exact below 2^53, which covers any label.
            let v = header.dtype.decode(b);
            if v.fract() == 0.0 && v.is_finite() {
                Ok(v as i64)
            } else {
                Err(MatrixError::LabelNotInteger {
                    file: path.to_owned(),
                    row,
                    value: v,
                })
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NpyHeader, MatrixError> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(text.len() as u16).to_le_bytes());
        bytes.extend_from_slice(text.as_bytes());
        read_header(Path::new("t.npy"), &mut bytes.as_slice())
    }

    #[test]
    fn parses_numpy_style_headers() {
        let h = parse("{'descr': '<f8', 'fortran_order': True, 'shape': (3, 4), }    \n").unwrap();
        assert_eq!(h.dtype.kind, NpyKind::Float);
        assert_eq!(h.dtype.item_bytes, 8);
        assert!(h.fortran_order);
        assert_eq!(h.shape, vec![3, 4]);
        let h = parse("{\"shape\": (7,), \"fortran_order\": False, \"descr\": \"|u1\"}").unwrap();
        assert_eq!(h.shape, vec![7]);
        assert_eq!(h.dtype.kind, NpyKind::UInt);
        let h = parse("{'descr': '>i4', 'fortran_order': False, 'shape': (2L, 3L)}").unwrap();
        assert!(h.dtype.big_endian);
        assert_eq!(h.shape, vec![2, 3]);
    }

    #[test]
    fn refuses_bad_dtypes_and_headers() {
        for descr in ["<c8", "|O", "<U5", "<f2", "<M8[ns]", "|S3"] {
            let text = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (1,)}}");
            assert!(
                matches!(parse(&text), Err(MatrixError::NpyDtype { .. })),
                "{descr}"
            );
        }
        let structured = "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}";
        assert!(matches!(
            parse(structured),
            Err(MatrixError::NpyDtype { .. })
        ));
        assert!(matches!(
            parse("{'descr': '<f4', 'shape': (1,)}"),
            Err(MatrixError::NpyHeader { .. })
        ));
        assert!(matches!(
            parse("{'descr': '<f4', 'fortran_order': False, 'shape': (1,"),
            Err(MatrixError::NpyHeader { .. })
        ));
    }

    #[test]
    fn written_header_is_fixed_length_and_parses_back() {
        for (r, c) in [(0, 1), (5, 3), (usize::MAX, usize::MAX)] {
            let block = header_block(r, c);
            assert_eq!(block.len(), WRITE_HEADER_BYTES);
            let h = read_header(Path::new("w.npy"), &mut block.as_slice()).unwrap();
            assert_eq!(h.shape, vec![r, c]);
            assert_eq!(h.data_offset, WRITE_HEADER_BYTES as u64);
        }
    }

    #[test]
    fn decodes_every_supported_kind() {
        let cases: [(&str, Vec<u8>, f64); 6] = [
            ("<f4", 1.5f32.to_le_bytes().to_vec(), 1.5),
            (">f8", (-2.25f64).to_be_bytes().to_vec(), -2.25),
            ("<i2", (-300i16).to_le_bytes().to_vec(), -300.0),
            ("|u1", vec![255], 255.0),
            ("<u8", 7u64.to_le_bytes().to_vec(), 7.0),
            ("|b1", vec![1], 1.0),
        ];
        for (descr, bytes, want) in cases {
            assert_eq!(
                NpyDtype::parse(descr).unwrap().decode(&bytes),
                want,
                "{descr}"
            );
        }
    }
}
