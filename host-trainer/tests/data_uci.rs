//! The official UCI HAR format loader on generated files (folder, official zip with
//! macOS litter, the wrapper zip, partial column files), one test per kind of
//! malformed input, and the real partial feature file from the data folder.

mod data_support;

use std::path::Path;

use data_support::*;
use edge_runtime::preprocess::{Channel, ChannelSet, WINDOW_LEN};
use host_trainer::data::DataError;
use host_trainer::data::uci::{
    INERTIAL_SIGNALS, InertialSignals, UCI_N_FEATURES, UciHar, UciLabels, UciOptions,
};
use host_trainer::data::windows::HarWindows;

const ALL_561: UciOptions = UciOptions {
    n_features: Some(UCI_N_FEATURES),
    inertial: InertialSignals::Require,
};

/// All 561 features, no Inertial Signals (the error tests' files have none).
const FEATURES_561: UciOptions = UciOptions {
    n_features: Some(UCI_N_FEATURES),
    inertial: InertialSignals::Skip,
};

fn folder(files: &[(String, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), files);
    dir
}

/// The value the loader must produce for a generated field: the text's own parse.
fn expected(seed: usize, row: usize, col: usize) -> f32 {
    uci_field(uci_value(seed, row, col))
        .trim()
        .parse::<f64>()
        .unwrap() as f32
}

fn check_generated(har: &UciHar, n_features: usize, inertial: bool) {
    assert_eq!((har.train.len(), har.test.len()), (12, 6));
    assert_eq!(
        (har.train.n_features, har.test.n_features),
        (n_features, n_features)
    );
    assert_eq!(har.train.features.len(), 12 * n_features);
    assert_eq!(
        har.train.features_row(3)[n_features - 1],
        expected(1, 3, n_features - 1)
    );
    assert_eq!(har.test.features_row(5)[0], expected(2, 5, 0));
    assert_eq!(har.train.labels[..7], [1, 2, 3, 4, 5, 6, 1]);
    assert_eq!(har.train.subjects, [1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3]);
    assert_eq!(har.test.subjects, [2, 2, 2, 4, 4, 4]);
    assert_eq!(har.train.label_counts(), [2, 2, 2, 2, 2, 2]);
    let names = har.feature_names.as_ref().unwrap();
    assert_eq!(names.len(), n_features);
    assert_eq!(names[0], "feature-1");
    match (&har.test.inertial, inertial) {
        (Some(x), true) => {
            assert_eq!(x.len(), 6 * 9 * WINDOW_LEN);
            // Window 4, channel body_gyro_y (index 7), sample 100 comes from file 7 row 4.
            assert_eq!(x[(4 * 9 + 7) * WINDOW_LEN + 100], expected(200 + 7, 4, 100));
        }
        (None, false) => {}
        (got, want) => panic!("inertial present: {}, wanted {want}", got.is_some()),
    }
}

#[test]
fn official_layout_from_folder() {
    let dir = folder(&official_uci(true));
    let har = UciHar::open(dir.path(), &ALL_561).unwrap();
    check_generated(&har, 561, true);
    assert!(har.has_all_features());
    // Inferred column count and skipped inertial signals give the same features.
    let inferred =
        UciHar::open(&dir.path().join("UCI HAR Dataset"), &UciOptions::default()).unwrap();
    check_generated(&inferred, 561, false);
    assert_eq!(inferred.train.features, har.train.features);
}

#[test]
fn official_zip_ignores_macos_litter() {
    let mut files = official_uci(true);
    files.extend(macos_litter());
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("UCI HAR Dataset.zip");
    write_zip(&zip, &files);
    check_generated(&UciHar::open(&zip, &ALL_561).unwrap(), 561, true);
    // Found by name in a data folder as well.
    let har = UciHar::open(dir.path(), &ALL_561).unwrap();
    assert!(
        har.source.ends_with("UCI HAR Dataset.zip"),
        "{}",
        har.source
    );
}

#[test]
fn wrapper_zip_holding_the_official_zip() {
    let mut inner = official_uci(true);
    inner.extend(macos_litter());
    let wrapper = vec![
        ("UCI HAR Dataset.names".to_owned(), b"readme".to_vec()),
        ("UCI HAR Dataset.zip".to_owned(), zip_bytes(&inner)),
    ];
    let dir = tempfile::tempdir().unwrap();
    write_zip(
        &dir.path()
            .join("human+activity+recognition+using+smartphones.zip"),
        &wrapper,
    );
    let har = UciHar::open(dir.path(), &ALL_561).unwrap();
    check_generated(&har, 561, true);
    assert!(
        har.source.ends_with("smartphones.zip:UCI HAR Dataset.zip"),
        "{}",
        har.source
    );
    assert!(
        har.train
            .x_file
            .ends_with("UCI HAR Dataset.zip:UCI HAR Dataset/train/X_train.txt")
    );
}

#[test]
fn partial_column_files_load_with_inferred_or_given_count() {
    let files = uci_files(7, false, |split| format!("X_{split}_cols001-007.txt"));
    let dir = tempfile::tempdir().unwrap();
    write_zip(&dir.path().join("UCI_HAR_features_cols001-007.zip"), &files);
    let har = UciHar::open(dir.path(), &UciOptions::default()).unwrap();
    check_generated(&har, 7, false);
    assert!(!har.has_all_features());
    let given = UciOptions {
        n_features: Some(7),
        inertial: InertialSignals::IfPresent,
    };
    check_generated(&UciHar::open(dir.path(), &given).unwrap(), 7, false);
    // Asking for all 561 columns of a 7-column file fails on its first line.
    let err = UciHar::open(dir.path(), &ALL_561).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Ragged {
                line: 1,
                expected: 561,
                found: 7,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("X_train_cols001-007.txt:1:"),
        "{err}"
    );
}

#[test]
fn inertial_signals_become_har_windows() {
    let dir = folder(&official_uci(true));
    let har = UciHar::open(dir.path(), &ALL_561).unwrap();
    let channels = ChannelSet::single(Channel::BodyAccY).union(ChannelSet::BODY_GYRO);
    let w = HarWindows::from_uci_inertial(&har.train, channels).unwrap();
    assert_eq!((w.len(), w.dim), (12, 4 * WINDOW_LEN));
    // Row 1 of window 5 is body_gyro_x (file index 6).
    assert_eq!(w.window(5)[WINDOW_LEN + 9], expected(100 + 6, 5, 9));
    assert_eq!(w.window(5)[9], expected(100 + 4, 5, 9));
    assert_eq!(w.labels, har.train.labels);
    assert_eq!(INERTIAL_SIGNALS[Channel::BodyGyroX.index()], "body_gyro_x");
}

fn open_err(files: &[(String, Vec<u8>)], options: &UciOptions) -> DataError {
    let dir = folder(files);
    UciHar::open(dir.path(), options).unwrap_err()
}

fn assert_names(err: &DataError, file: &str, line: Option<usize>) {
    let msg = err.to_string();
    match line {
        Some(line) => assert!(
            msg.contains(&format!("{file}:{line}:")),
            "no {file}:{line}: in {msg}"
        ),
        None => assert!(msg.contains(file), "no {file} in {msg}"),
    }
}

const TRAIN_X: &str = "UCI HAR Dataset/train/X_train.txt";

#[test]
fn error_ragged_row() {
    let mut files = official_uci(false);
    replace_line(&mut files, TRAIN_X, 5, &uci_field(0.5).repeat(560));
    let err = open_err(&files, &UciOptions::default());
    assert!(
        matches!(
            err,
            DataError::Ragged {
                line: 5,
                expected: 561,
                found: 560,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, "X_train.txt", Some(5));
}

#[test]
fn error_non_number() {
    let mut files = official_uci(false);
    let row = format!(
        "{}{:>16}{}",
        uci_field(0.1),
        "2.5e-00x",
        uci_field(0.3).repeat(559)
    );
    replace_line(&mut files, TRAIN_X, 2, &row);
    let err = open_err(&files, &FEATURES_561);
    assert!(
        matches!(
            err,
            DataError::NotANumber {
                line: 2,
                field: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, "X_train.txt", Some(2));
}

#[test]
fn error_nan_value() {
    let mut files = official_uci(false);
    let row = format!("{}{:>16}", uci_field(0.1).repeat(560), "NaN");
    replace_line(&mut files, "UCI HAR Dataset/test/X_test.txt", 6, &row);
    let err = open_err(&files, &FEATURES_561);
    assert!(
        matches!(
            err,
            DataError::NonFinite {
                line: 6,
                field: 561,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, "X_test.txt", Some(6));
}

#[test]
fn error_label_out_of_range() {
    let mut files = official_uci(false);
    replace_line(&mut files, "UCI HAR Dataset/test/y_test.txt", 3, "7");
    let err = open_err(&files, &FEATURES_561);
    assert!(
        matches!(
            err,
            DataError::OutOfRange {
                line: 3,
                value: 7,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, "y_test.txt", Some(3));
    let mut files = official_uci(false);
    replace_line(
        &mut files,
        "UCI HAR Dataset/train/subject_train.txt",
        12,
        "31",
    );
    let err = open_err(&files, &FEATURES_561);
    assert_names(&err, "subject_train.txt", Some(12));
}

#[test]
fn error_missing_file() {
    let mut files = official_uci(true);
    remove(&mut files, "UCI HAR Dataset/test/subject_test.txt");
    let err = open_err(&files, &ALL_561);
    assert!(matches!(err, DataError::MissingFile { .. }), "{err}");
    assert_names(&err, "subject_test.txt", None);

    let mut files = official_uci(true);
    remove(
        &mut files,
        "UCI HAR Dataset/train/Inertial Signals/body_gyro_z_train.txt",
    );
    let err = open_err(&files, &ALL_561);
    assert_names(&err, "body_gyro_z_train.txt", None);

    // Without Inertial Signals, `Require` fails and `IfPresent` loads the features.
    let files = official_uci(false);
    let err = open_err(&files, &ALL_561);
    assert_names(&err, "Inertial Signals/total_acc_x_train.txt", None);
    let dir = folder(&files);
    let lenient = UciOptions {
        n_features: Some(561),
        inertial: InertialSignals::IfPresent,
    };
    assert!(
        UciHar::open(dir.path(), &lenient)
            .unwrap()
            .train
            .inertial
            .is_none()
    );

    let mut files = official_uci(false);
    remove(&mut files, TRAIN_X);
    assert_names(&open_err(&files, &ALL_561), "X_train.txt", None);
}

#[test]
fn error_truncated_zip() {
    let bytes = zip_bytes(&official_uci(false));
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("UCI HAR Dataset.zip");
    std::fs::write(&zip, &bytes[..bytes.len() - 100]).unwrap();
    let err = UciHar::open(&zip, &FEATURES_561).unwrap_err();
    assert!(matches!(err, DataError::Zip { .. }), "{err}");
    assert_names(&err, "UCI HAR Dataset.zip", None);
    // A truncated inner zip inside an intact wrapper names both.
    let wrapper = vec![(
        "UCI HAR Dataset.zip".to_owned(),
        bytes[..bytes.len() / 2].to_vec(),
    )];
    let outer = dir.path().join("wrapper.zip");
    write_zip(&outer, &wrapper);
    let err = UciHar::open(&outer, &FEATURES_561).unwrap_err();
    assert_names(&err, "wrapper.zip:UCI HAR Dataset.zip", None);
}

#[test]
fn error_row_count_mismatch() {
    let mut files = official_uci(false);
    replace(
        &mut files,
        "UCI HAR Dataset/train/y_train.txt",
        "1\n2\n3\n4\n5\n6\n1\n2\n3\n4\n5\n",
    );
    let err = open_err(&files, &FEATURES_561);
    assert!(
        matches!(
            err,
            DataError::RowCountMismatch {
                rows: 12,
                other_rows: 11,
                line: 12,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, "subject_train.txt", Some(12));
}

/// Real data: the project's partial UCI HAR features (265 of 561 columns).
#[test]
fn real_partial_feature_file() {
    let Some(data) = real_data_dir() else { return };
    let started = std::time::Instant::now();
    let har = UciHar::open(&data, &UciOptions::default()).unwrap();
    eprintln!(
        "loaded {} in {:.2} s",
        har.source,
        started.elapsed().as_secs_f64()
    );
    assert!(
        har.source.ends_with("UCI_HAR_features_cols001-265.zip"),
        "{}",
        har.source
    );
    assert_eq!((har.train.len(), har.train.n_features), (7352, 265));
    assert_eq!((har.test.len(), har.test.n_features), (2947, 265));
    assert_eq!(har.train.features.len(), 7352 * 265);
    assert_eq!(
        har.train.label_counts(),
        [1226, 1073, 986, 1286, 1374, 1407]
    );
    assert_eq!(har.test.label_counts(), [496, 471, 420, 491, 532, 537]);
    let subjects = |s: &[u8]| {
        s.iter()
            .copied()
            .collect::<std::collections::BTreeSet<u8>>()
    };
    assert_eq!(
        subjects(&har.test.subjects),
        host_trainer::data::UCI_TEST_SUBJECTS.into_iter().collect()
    );
    assert_eq!(subjects(&har.train.subjects).len(), 21);
    assert!(har.train.subjects.is_sorted() && har.test.subjects.is_sorted());
    // Published first field of X_train row 1: `2.8858451e-001`.
    assert_eq!(
        har.train.features[0],
        "2.8858451e-001".parse::<f32>().unwrap()
    );
    assert!(
        har.train
            .features
            .iter()
            .chain(&har.test.features)
            .all(|v| (-1.0..=1.0).contains(v))
    );
    let names = har.feature_names.as_ref().unwrap();
    assert_eq!(names.len(), 265);
    assert_eq!(names[0], "tBodyAcc-mean()-X");
    assert_eq!(names[264], "tBodyGyroJerkMag-arCoeff()4");
    assert!(har.train.inertial.is_none());
    // The labels-only reader agrees.
    let labels = UciLabels::open(&data).unwrap();
    assert_eq!(
        labels.train,
        (har.train.labels.clone(), har.train.subjects.clone())
    );
    assert_eq!(labels.test.0, har.test.labels);
    // The zip named directly works too.
    let direct = data.join("UCI_HAR_features_cols001-265.zip");
    let labels = UciLabels::open(Path::new(&direct)).unwrap();
    assert_eq!(labels.test.1, har.test.subjects);
}
