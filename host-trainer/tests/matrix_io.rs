//! NPY/CSV readers and writers of `host_trainer::matrix`: round trips, streaming,
//! NumPy-style files built byte by byte, and one test per bad-input case.

use std::path::{Path, PathBuf};

use host_trainer::matrix::{
    CsvHeader, Matrix, MatrixBatches, MatrixError, MatrixWriter, ReadOptions, check_width,
    count_rows, read_labels, read_matrix, read_matrix_with, write_csv, write_npy,
};
use host_trainer::scaling::MinMaxScaling;

/// An NPY file as `numpy.save` lays it out (format 1.0, header padded to 64 bytes).
fn npy_bytes(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let py_bool = if fortran { "True" } else { "False" };
    let mut dict =
        format!("{{'descr': '{descr}', 'fortran_order': {py_bool}, 'shape': {shape}, }}");
    let total = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(data);
    out
}

fn f8_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn put(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn sample(rows: usize, cols: usize) -> Matrix {
    let data = (0..rows * cols)
        .map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0)
        .collect();
    Matrix::new(rows, cols, data).unwrap()
}

#[test]
fn npy_and_csv_round_trip_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let m = sample(57, 5);
    let npy = dir.path().join("m.npy");
    let csv = dir.path().join("m.csv");
    write_npy(&npy, &m).unwrap();
    let names: Vec<String> = (0..5).map(|i| format!("c{i}")).collect();
    write_csv(&csv, Some(&names), &m).unwrap();
    let a = read_matrix(&npy).unwrap();
    let b = read_matrix(&csv).unwrap();
    assert_eq!(a, m);
    assert_eq!(b, m);
    // The CSV header is detected and available.
    let batches = MatrixBatches::open(&csv, 10).unwrap();
    assert_eq!(batches.column_names().unwrap(), names.as_slice());
    // No temporary files are left beside the outputs.
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, vec!["m.csv", "m.npy"]);
}

#[test]
fn reads_numpy_layout_f8_and_converts_to_f32() {
    let dir = tempfile::tempdir().unwrap();
    let vals = [0.1, -2.5, 3.0, 1e-3, 7.25, 1e6];
    let p = put(
        dir.path(),
        "a.npy",
        &npy_bytes("<f8", false, "(2, 3)", &f8_bytes(&vals)),
    );
    let m = read_matrix(&p).unwrap();
    assert_eq!((m.rows, m.cols), (2, 3));
    let want: Vec<f32> = vals.iter().map(|v| *v as f32).collect();
    assert_eq!(m.data, want);
}

#[test]
fn version_2_header_and_one_d_and_integer_dtypes() {
    let dir = tempfile::tempdir().unwrap();
    // Format 2.0: 4-byte header length.
    let dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }\n";
    let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
    bytes.extend_from_slice(&(dict.len() as u32).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    for v in [3i32, -1, 0, 12] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let p = put(dir.path(), "y.npy", &bytes);
    let m = read_matrix(&p).unwrap();
    assert_eq!((m.rows, m.cols), (4, 1));
    assert_eq!(m.data, vec![3.0, -1.0, 0.0, 12.0]);
    assert_eq!(read_labels(&p).unwrap(), vec![3, -1, 0, 12]);
    // <i8 labels
    let y8: Vec<u8> = [5i64, 6, 1].iter().flat_map(|v| v.to_le_bytes()).collect();
    let p = put(dir.path(), "y8.npy", &npy_bytes("<i8", false, "(3,)", &y8));
    assert_eq!(read_labels(&p).unwrap(), vec![5, 6, 1]);
    // u1 images, 3-D shape flattened per row in C order
    let px: Vec<u8> = (0..2 * 2 * 3).map(|i| i as u8 * 10).collect();
    let p = put(
        dir.path(),
        "img.npy",
        &npy_bytes("|u1", false, "(2, 2, 3)", &px),
    );
    let m = read_matrix(&p).unwrap();
    assert_eq!((m.rows, m.cols), (2, 6));
    assert_eq!(m.row(1), &[60.0, 70.0, 80.0, 90.0, 100.0, 110.0]);
}

#[test]
fn fortran_order_is_transposed_while_streaming() {
    let dir = tempfile::tempdir().unwrap();
    // A 5 × 3 matrix m[r][c] = 10 r + c stored column-major.
    let (rows, cols) = (5usize, 3usize);
    let mut col_major = Vec::new();
    for c in 0..cols {
        for r in 0..rows {
            col_major.push((10 * r + c) as f64);
        }
    }
    let p = put(
        dir.path(),
        "f.npy",
        &npy_bytes("<f8", true, "(5, 3)", &f8_bytes(&col_major)),
    );
    let mut batches = MatrixBatches::open(&p, 2).unwrap();
    let mut all = Vec::new();
    let mut sizes = Vec::new();
    while let Some(b) = batches.next_batch().unwrap() {
        sizes.push(b.rows);
        all.extend(b.data);
    }
    assert_eq!(sizes, vec![2, 2, 1]);
    let want: Vec<f32> = (0..rows)
        .flat_map(|r| (0..cols).map(move |c| (10 * r + c) as f32))
        .collect();
    assert_eq!(all, want);
    // Fortran order with 3 dimensions is refused.
    let p = put(
        dir.path(),
        "f3.npy",
        &npy_bytes("<f8", true, "(1, 2, 2)", &f8_bytes(&[0.0; 4])),
    );
    let e = read_matrix(&p).unwrap_err();
    assert!(matches!(e, MatrixError::NpyShape { .. }), "{e}");
    assert!(e.to_string().contains("f3.npy"), "{e}");
}

#[test]
fn streaming_reader_and_writer_hold_batches_only() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, cols) = (10_007usize, 4usize);
    for ext in ["npy", "csv"] {
        let p = dir.path().join(format!("big.{ext}"));
        let mut w = MatrixWriter::create(&p, cols, None).unwrap();
        for start in (0..rows).step_by(1000) {
            let n = 1000.min(rows - start);
            let chunk: Vec<f32> = (start * cols..(start + n) * cols)
                .map(|i| i as f32)
                .collect();
            w.write_rows(&chunk).unwrap();
        }
        assert_eq!(w.finish().unwrap(), rows);
        assert_eq!(count_rows(&p, &ReadOptions::default()).unwrap(), rows);
        let mut next = 0usize;
        let mut batches = MatrixBatches::open(&p, 512).unwrap();
        assert_eq!(batches.cols(), cols);
        while let Some(b) = batches.next_batch().unwrap() {
            assert!(b.rows <= 512);
            for (k, v) in b.data.iter().enumerate() {
                assert_eq!(*v, (next * cols + k) as f32);
            }
            next += b.rows;
        }
        assert_eq!(next, rows, "{ext}");
        assert_eq!(batches.rows_read(), rows);
    }
}

#[test]
fn csv_header_detection_and_delimiters() {
    let dir = tempfile::tempdir().unwrap();
    let p = put(dir.path(), "h.csv", b"a, b ,c\n1,2,3\n4,5,6\n");
    let m = read_matrix(&p).unwrap();
    assert_eq!((m.rows, m.cols), (2, 3));
    assert_eq!(m.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    // Numeric header names need an explicit flag.
    let p = put(dir.path(), "n.csv", b"0,1\n1.5,2\n");
    assert_eq!(read_matrix(&p).unwrap().rows, 2);
    let opts = ReadOptions {
        csv_header: CsvHeader::Present,
    };
    let m = read_matrix_with(&p, &opts).unwrap();
    assert_eq!((m.rows, m.data.clone()), (1, vec![1.5, 2.0]));
    // Tab and semicolon and numpy.savetxt's single spaces.
    let p = put(dir.path(), "t.tsv", b"1\t2\n3\t4\n");
    assert_eq!(read_matrix(&p).unwrap().data, vec![1.0, 2.0, 3.0, 4.0]);
    let p = put(dir.path(), "s.txt", b"1;2\n3;4\n");
    assert_eq!(read_matrix(&p).unwrap().data, vec![1.0, 2.0, 3.0, 4.0]);
    let p = put(
        dir.path(),
        "sp.txt",
        b"1.000000000000000000e+00 2.500000000000000000e+00\n-3.0e-01 4.0e+00\n",
    );
    assert_eq!(read_matrix(&p).unwrap().data, vec![1.0, 2.5, -0.3, 4.0]);
    // Forcing "no header" turns a text first row into an error.
    let p = put(dir.path(), "x.csv", b"a,b\n1,2\n");
    let opts = ReadOptions {
        csv_header: CsvHeader::Absent,
    };
    let e = read_matrix_with(&p, &opts).unwrap_err();
    assert!(
        matches!(
            e,
            MatrixError::NotNumeric {
                line: 1,
                column: 1,
                ..
            }
        ),
        "{e}"
    );
}

fn err_text(e: &MatrixError) -> String {
    e.to_string()
}

#[test]
fn error_non_numeric_csv_cell_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = put(dir.path(), "bad.csv", b"x,y\n1,2\n3,abc\n");
    let e = read_matrix(&p).unwrap_err();
    assert!(
        matches!(&e, MatrixError::NotNumeric { line: 3, column: 2, value, .. } if value == "abc"),
        "{e:?}"
    );
    let t = err_text(&e);
    assert!(t.contains("bad.csv:3") && t.contains("abc"), "{t}");
    // An empty cell is reported as such.
    let p = put(dir.path(), "empty_cell.csv", b"1,2\n3,\n");
    let t = err_text(&read_matrix(&p).unwrap_err());
    assert!(
        t.contains("empty_cell.csv:2") && t.contains("empty cell"),
        "{t}"
    );
}

#[test]
fn error_ragged_csv_row() {
    let dir = tempfile::tempdir().unwrap();
    let p = put(dir.path(), "rag.csv", b"1,2,3\n4,5,6\n7,8\n");
    let e = read_matrix(&p).unwrap_err();
    assert!(
        matches!(
            e,
            MatrixError::Ragged {
                line: 3,
                expected: 3,
                found: 2,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(err_text(&e).contains("rag.csv:3"), "{e}");
}

#[test]
fn error_nan_and_inf_in_csv_and_npy() {
    let dir = tempfile::tempdir().unwrap();
    for (name, body, line) in [
        ("nan.csv", &b"1,2\n3,NaN\n"[..], 2u64),
        ("inf.csv", &b"a,b\n1,2\n-inf,0\n"[..], 3),
        ("big.csv", &b"1e39,2\n"[..], 1),
    ] {
        let p = put(dir.path(), name, body);
        let e = read_matrix(&p).unwrap_err();
        assert!(
            matches!(&e, MatrixError::NonFiniteCsv { line: l, .. } if *l == line),
            "{name}: {e:?}"
        );
        assert!(err_text(&e).contains(name), "{e}");
    }
    let p = put(
        dir.path(),
        "nan.npy",
        &npy_bytes(
            "<f8",
            false,
            "(2, 2)",
            &f8_bytes(&[1.0, 2.0, 3.0, f64::NAN]),
        ),
    );
    let e = read_matrix(&p).unwrap_err();
    assert!(
        matches!(
            e,
            MatrixError::NonFiniteNpy {
                row: 1,
                column: 1,
                ..
            }
        ),
        "{e:?}"
    );
    // f8 values beyond the f32 range are refused, not silently made infinite.
    let p = put(
        dir.path(),
        "huge.npy",
        &npy_bytes("<f8", false, "(1, 2)", &f8_bytes(&[1.0, 1e300])),
    );
    let e = read_matrix(&p).unwrap_err();
    assert!(
        matches!(
            e,
            MatrixError::NonFiniteNpy {
                row: 0,
                column: 1,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(err_text(&e).contains("huge.npy"), "{e}");
}

#[test]
fn error_empty_files() {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in [
        ("empty.csv", &b""[..]),
        ("header_only.csv", &b"a,b,c\n"[..]),
    ] {
        let p = put(dir.path(), name, body);
        let e = read_matrix(&p).unwrap_err();
        assert!(matches!(e, MatrixError::Empty { .. }), "{name}: {e:?}");
        assert!(err_text(&e).contains(name), "{e}");
    }
    let p = put(
        dir.path(),
        "zero.npy",
        &npy_bytes("<f4", false, "(0, 3)", &[]),
    );
    assert!(matches!(
        read_matrix(&p).unwrap_err(),
        MatrixError::Empty { .. }
    ));
    let p = put(dir.path(), "empty.npy", b"");
    assert!(matches!(
        read_matrix(&p).unwrap_err(),
        MatrixError::NpyMagic { .. }
    ));
}

#[test]
fn error_wrong_npy_dtype_names_the_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let p = put(
        dir.path(),
        "c.npy",
        &npy_bytes("<c8", false, "(1, 1)", &[0; 8]),
    );
    let e = read_matrix(&p).unwrap_err();
    assert!(matches!(e, MatrixError::NpyDtype { .. }), "{e:?}");
    let t = err_text(&e);
    assert!(t.contains("c.npy") && t.contains("<c8"), "{t}");
    let p = put(
        dir.path(),
        "s.npy",
        &npy_bytes("<U3", false, "(2,)", &[0; 24]),
    );
    assert!(matches!(
        read_matrix(&p).unwrap_err(),
        MatrixError::NpyDtype { .. }
    ));
}

#[test]
fn error_truncated_and_trailing_npy_data() {
    let dir = tempfile::tempdir().unwrap();
    let full = f8_bytes(&[0.0; 12]); // 4 × 3
    let p = put(
        dir.path(),
        "t.npy",
        &npy_bytes("<f8", false, "(4, 3)", &full[..60]),
    );
    let e = read_matrix(&p).unwrap_err();
    assert!(
        matches!(
            e,
            MatrixError::NpyTruncated {
                expected_bytes: 96,
                found_bytes: 60,
                first_incomplete_row: 2,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(err_text(&e).contains("t.npy"), "{e}");
    let mut long = full.clone();
    long.extend_from_slice(&[0; 8]);
    let p = put(
        dir.path(),
        "l.npy",
        &npy_bytes("<f8", false, "(4, 3)", &long),
    );
    assert!(matches!(
        read_matrix(&p).unwrap_err(),
        MatrixError::NpyTrailing { extra_bytes: 8, .. }
    ));
    // A file cut inside its header.
    let whole = npy_bytes("<f8", false, "(4, 3)", &full);
    let p = put(dir.path(), "h.npy", &whole[..40]);
    assert!(matches!(
        read_matrix(&p).unwrap_err(),
        MatrixError::NpyHeader { .. }
    ));
    // Not an NPY file at all.
    let p = put(dir.path(), "text.npy", b"1,2,3\n");
    assert!(matches!(
        read_matrix(&p).unwrap_err(),
        MatrixError::NpyMagic { .. }
    ));
}

#[test]
fn error_wrong_width_for_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.npy");
    write_npy(&p, &sample(3, 7)).unwrap();
    let b = MatrixBatches::open(&p, 8).unwrap();
    let e = check_width(&p, b.cols(), 10, "the model in runs/r1").unwrap_err();
    assert!(
        matches!(
            e,
            MatrixError::WidthMismatch {
                expected: 10,
                found: 7,
                ..
            }
        ),
        "{e:?}"
    );
    let t = err_text(&e);
    assert!(t.contains("w.npy") && t.contains("runs/r1"), "{t}");
    assert!(check_width(&p, b.cols(), 7, "x").is_ok());
}

#[test]
fn error_unknown_extension_and_non_integer_labels() {
    let dir = tempfile::tempdir().unwrap();
    let p = put(dir.path(), "x.json", b"[]");
    assert!(matches!(
        read_matrix(&p).unwrap_err(),
        MatrixError::UnknownFormat { .. }
    ));
    let p = put(dir.path(), "y.csv", b"label\n1\n2.5\n");
    let e = read_labels(&p).unwrap_err();
    assert!(
        matches!(e, MatrixError::LabelNotInteger { row: 1, .. }),
        "{e:?}"
    );
    let p = put(dir.path(), "y2.csv", b"1,2\n");
    assert!(matches!(
        read_labels(&p).unwrap_err(),
        MatrixError::WidthMismatch { .. }
    ));
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let e = read_matrix(Path::new("/nonexistent/dir/x.npy")).unwrap_err();
    assert!(matches!(e, MatrixError::Io { .. }));
    assert!(err_text(&e).contains("/nonexistent/dir/x.npy"), "{e}");
}

#[test]
fn scaling_json_round_trip_and_validation() {
    let dir = tempfile::tempdir().unwrap();
    let s = MinMaxScaling::fit(&sample(20, 3));
    let p = dir.path().join("scaling.json");
    s.save_json(&p).unwrap();
    assert_eq!(MinMaxScaling::load_json(&p).unwrap(), s);
    let bad = put(dir.path(), "bad.json", br#"{"min":[2.0],"max":[1.0]}"#);
    let e = MinMaxScaling::load_json(&bad).unwrap_err();
    assert!(err_text(&e).contains("bad.json"), "{e}");
}
