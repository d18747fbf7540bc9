//! Shared helpers of the `data_*` tests: generated files in the official formats,
//! zips written with the zip crate, and the location of the real data.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::Write;
use std::path::{Path, PathBuf};

/// The real data folder, or `None` when it is missing outside CI (see
/// [`host_trainer::data::real_data_dir_or_skip`]).
pub fn real_data_dir() -> Option<PathBuf> {
    host_trainer::data::real_data_dir_or_skip("this real-data test")
}

/// Writes `files` (relative name → content) under `dir`, creating folders.
pub fn write_tree(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

/// Writes a deflated zip of `files` to `path`.
pub fn write_zip(path: &Path, files: &[(String, Vec<u8>)]) {
    std::fs::write(path, zip_bytes(files)).unwrap();
}

/// A deflated zip of `files`, in memory.
pub fn zip_bytes(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in files {
        writer.start_file(name.as_str(), options).unwrap();
        writer.write_all(content).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// Replaces the content of file `name` in `files`.
pub fn replace(files: &mut [(String, Vec<u8>)], name: &str, content: impl Into<Vec<u8>>) {
    let entry = files
        .iter_mut()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name}"));
    entry.1 = content.into();
}

/// Replaces line `line` (1-based) of file `name` in `files`.
pub fn replace_line(files: &mut [(String, Vec<u8>)], name: &str, line: usize, new_line: &str) {
    let entry = files
        .iter_mut()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name}"));
    let text = String::from_utf8(entry.1.clone()).unwrap();
    let ending = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut lines: Vec<&str> = text.split(ending).collect();
    lines[line - 1] = new_line;
    entry.1 = lines.join(ending).into_bytes();
}

pub fn remove(files: &mut Vec<(String, Vec<u8>)>, name: &str) {
    files.retain(|(n, _)| n != name);
}

// ---------------------------------------------------------------- HAPT

pub const HAPT_PREFIX: &str = "HAPT Data Set/RawData/";

/// A deterministic raw sample: slow sines with different periods per axis, so every
/// value differs and the filters have something to do.
pub fn hapt_sample(exp: u16, k: usize) -> [f64; 6] {
    let t = k as f64 / 50.0 + f64::from(exp);
    [
        0.9 + 0.1 * (1.3 * t).sin(),
        -0.1 + 0.2 * (2.1 * t).cos(),
        0.5 + 0.05 * (0.7 * t).sin(),
        0.3 * (3.3 * t).sin(),
        -0.2 * (1.9 * t).cos(),
        0.1 * (0.5 * t).sin(),
    ]
}

/// One generated experiment: `(exp, user, samples)`.
pub struct HaptExperiment {
    pub exp: u16,
    pub user: u8,
    pub n_samples: usize,
}

/// The HAPT `RawData` files for `experiments` and `labels` lines
/// (`exp user activity start end`, 1-based inclusive), LF line endings.
pub fn hapt_files(experiments: &[HaptExperiment], labels: &[[usize; 5]]) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for e in experiments {
        let mut acc = String::new();
        let mut gyro = String::new();
        for k in 0..e.n_samples {
            let s = hapt_sample(e.exp, k);
            acc.push_str(&format!("{} {} {}\n", s[0], s[1], s[2]));
            gyro.push_str(&format!("{} {} {}\n", s[3], s[4], s[5]));
        }
        files.push((
            format!("{HAPT_PREFIX}acc_exp{:02}_user{:02}.txt", e.exp, e.user),
            acc.into_bytes(),
        ));
        files.push((
            format!("{HAPT_PREFIX}gyro_exp{:02}_user{:02}.txt", e.exp, e.user),
            gyro.into_bytes(),
        ));
    }
    let labels_text: String = labels
        .iter()
        .map(|l| format!("{} {} {} {} {}\n", l[0], l[1], l[2], l[3], l[4]))
        .collect();
    files.push((format!("{HAPT_PREFIX}labels.txt"), labels_text.into_bytes()));
    files.push((
        "HAPT Data Set/activity_labels.txt".to_owned(),
        b"1 WALKING\n2 WALKING_UPSTAIRS\n".to_vec(),
    ));
    files
}

/// A small HAPT set: user 1 (train) exp 1 with 2000 samples, user 2 (test) exp 2 with
/// 1500. Runs (1-based inclusive) include a transition, adjacent runs and gaps.
pub fn small_hapt() -> Vec<(String, Vec<u8>)> {
    hapt_files(
        &[
            HaptExperiment {
                exp: 1,
                user: 1,
                n_samples: 2000,
            },
            HaptExperiment {
                exp: 2,
                user: 2,
                n_samples: 1500,
            },
        ],
        &SMALL_HAPT_LABELS,
    )
}

pub const SMALL_HAPT_LABELS: [[usize; 5]; 6] = [
    [1, 1, 5, 250, 700],
    [1, 1, 7, 701, 900],
    [1, 1, 4, 901, 1500],
    [1, 1, 1, 1600, 1999],
    [2, 2, 2, 100, 800],
    [2, 2, 6, 801, 1400],
];

// ---------------------------------------------------------------- UCI HAR

/// One value in the official `%16.7e` field format with a 3-digit exponent.
pub fn uci_field(v: f64) -> String {
    let s = format!("{v:.7e}");
    let (mantissa, exponent) = s.split_once('e').unwrap();
    let exponent: i32 = exponent.parse().unwrap();
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{:>16}", format!("{mantissa}e{sign}{:03}", exponent.abs()))
}

/// The value generated for feature `col` of row `row` (within [-1, 1]).
pub fn uci_value(split_seed: usize, row: usize, col: usize) -> f64 {
    ((split_seed * 7919 + row * 131 + col * 17) as f64 * 0.618_033_988_7).sin()
}

/// Rows of values in the official format, CRLF endings.
pub fn uci_rows(rows: usize, cols: usize, seed: usize) -> Vec<u8> {
    let mut out = String::new();
    for r in 0..rows {
        for c in 0..cols {
            out.push_str(&uci_field(uci_value(seed, r, c)));
        }
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// A generated UCI HAR tree under `UCI HAR Dataset/`: `n_features` columns, 12 train
/// rows (subjects 1, 3), 6 test rows (subjects 2, 4), optionally Inertial Signals.
/// `x_name(split)` gives the X file's base name (official: `X_train.txt`).
pub fn uci_files(
    n_features: usize,
    inertial: bool,
    x_name: impl Fn(&str) -> String,
) -> Vec<(String, Vec<u8>)> {
    let root = "UCI HAR Dataset";
    let mut files = vec![
        (format!("{root}/activity_labels.txt"), b"1 WALKING\n2 WALKING_UPSTAIRS\n3 WALKING_DOWNSTAIRS\n4 SITTING\n5 STANDING\n6 LAYING\n".to_vec()),
        (
            format!("{root}/features.txt"),
            (1..=561).map(|i| format!("{i} feature-{i}\n")).collect::<String>().into_bytes(),
        ),
    ];
    for (seed, split, rows) in [(1usize, "train", 12usize), (2, "test", 6)] {
        let labels: String = (0..rows).map(|r| format!("{}\n", r % 6 + 1)).collect();
        let first_subject = if split == "train" { 1 } else { 2 };
        let subjects: String = (0..rows)
            .map(|r| format!("{}\n", first_subject + 2 * (r * 2 / rows)))
            .collect();
        files.push((format!("{root}/{split}/y_{split}.txt"), labels.into_bytes()));
        files.push((
            format!("{root}/{split}/subject_{split}.txt"),
            subjects.into_bytes(),
        ));
        files.push((
            format!("{root}/{split}/{}", x_name(split)),
            uci_rows(rows, n_features, seed),
        ));
        if inertial {
            for (c, signal) in host_trainer::data::uci::INERTIAL_SIGNALS.iter().enumerate() {
                files.push((
                    format!("{root}/{split}/Inertial Signals/{signal}_{split}.txt"),
                    uci_rows(rows, 128, 100 * seed + c),
                ));
            }
        }
    }
    files
}

/// The official layout with all 561 features.
pub fn official_uci(inertial: bool) -> Vec<(String, Vec<u8>)> {
    uci_files(561, inertial, |split| format!("X_{split}.txt"))
}

/// macOS litter as found in the official zip.
pub fn macos_litter() -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "__MACOSX/UCI HAR Dataset/._README.txt".to_owned(),
            b"\0\x05\x16\x07junk".to_vec(),
        ),
        (
            "__MACOSX/UCI HAR Dataset/train/._y_train.txt".to_owned(),
            b"garbage".to_vec(),
        ),
        (
            "UCI HAR Dataset/.DS_Store".to_owned(),
            b"\0\0\0\x01Bud1".to_vec(),
        ),
    ]
}
