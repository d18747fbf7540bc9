//! HAPT raw-data loading and windowing on generated recordings, and one test per kind
//! of malformed input (each error must name the file and, where it has one, the line).

mod data_support;

use data_support::*;
use edge_runtime::preprocess::{
    ChannelSet, HOP_LEN, InputFeatures, WINDOW_LEN, windows_of_recording,
};
use host_trainer::data::hapt::HaptDataset;
use host_trainer::data::windows::{WindowConfig, for_each_window};
use host_trainer::data::{DataError, har_training_data, load_har_windows};

fn open_folder(files: &[(String, Vec<u8>)]) -> (tempfile::TempDir, Result<HaptDataset, DataError>) {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), files);
    let result = HaptDataset::open(dir.path());
    (dir, result)
}

fn open_zip(files: &[(String, Vec<u8>)]) -> (tempfile::TempDir, Result<HaptDataset, DataError>) {
    let dir = tempfile::tempdir().unwrap();
    write_zip(&dir.path().join("HAPT_RawData.zip"), files);
    let result = HaptDataset::open(dir.path());
    (dir, result)
}

/// Asserts that `err` is `what` and that its message names `file` and `line`.
fn assert_names(err: &DataError, file: &str, line: Option<usize>) {
    let msg = err.to_string();
    assert!(msg.contains(file), "message does not name {file}: {msg}");
    if let Some(line) = line {
        assert!(
            msg.contains(&format!("{file}:{line}:")),
            "message does not name line {line}: {msg}"
        );
    }
}

#[test]
fn folder_and_zip_give_the_same_recordings_with_one_based_labels() {
    let files = small_hapt();
    let (_d1, from_folder) = open_folder(&files);
    let (_d2, from_zip) = open_zip(&files);
    let (from_folder, from_zip) = (from_folder.unwrap(), from_zip.unwrap());
    assert_eq!(from_folder.recordings, {
        // Same values; only the message-file names differ between folder and zip.
        let mut r = from_zip.recordings.clone();
        for (a, b) in r.iter_mut().zip(&from_folder.recordings) {
            a.acc_file = b.acc_file.clone();
        }
        r
    });
    assert!(
        from_zip.source.ends_with("HAPT_RawData.zip"),
        "{}",
        from_zip.source
    );
    assert!(
        from_zip.recordings[0]
            .acc_file
            .ends_with(":HAPT Data Set/RawData/acc_exp01_user01.txt")
    );

    let ds = from_zip;
    assert_eq!(ds.recordings.len(), 2);
    assert_eq!((ds.recordings[1].exp, ds.recordings[1].user), (2, 2));
    assert_eq!(ds.total_samples(), 3500);
    // Values are parsed exactly (then narrowed to f32).
    let s = hapt_sample(2, 1234);
    let got = ds.recording(2).unwrap().samples[1234];
    assert_eq!(got.acc_g, [s[0] as f32, s[1] as f32, s[2] as f32]);
    assert_eq!(got.gyro_rad_s, [s[3] as f32, s[4] as f32, s[5] as f32]);
    // labels.txt `1 1 5 250 700` = lines 250..=700 = indices 249..700.
    let first = ds.runs_of(1)[0];
    assert_eq!(
        (first.activity, first.start, first.end, first.line),
        (5, 249, 700, 1)
    );
    assert_eq!(first.len(), 451);
    assert_eq!(ds.runs_of(2).len(), 2);
    assert!(ds.runs_of(3).is_empty());
}

/// Independent reference: which 0-based window starts lie inside one run (and its label).
fn expected_windows(ds: &HaptDataset, exp: u16, max_label: u8) -> Vec<(usize, u8)> {
    let n = ds.recording(exp).unwrap().samples.len();
    let mut out = Vec::new();
    let mut start = 0;
    while start + WINDOW_LEN <= n {
        for run in ds.runs_of(exp) {
            if run.start <= start && start + WINDOW_LEN <= run.end && run.activity <= max_label {
                out.push((start, run.activity));
            }
        }
        start += HOP_LEN;
    }
    out
}

#[test]
fn windows_lie_wholly_inside_one_run_and_match_the_preprocessing() {
    let (_dir, ds) = open_zip(&small_hapt());
    let ds = ds.unwrap();
    for include_transitions in [false, true] {
        let config = WindowConfig {
            channels: ChannelSet::ALL,
            include_transitions,
        };
        let mut got: Vec<(u16, usize, u8)> = Vec::new();
        let stats = for_each_window(&ds, &config, |meta, values| {
            assert_eq!(values.len(), 9 * WINDOW_LEN);
            got.push((meta.exp, meta.start_sample, meta.activity));
        })
        .unwrap();
        let mut expected = Vec::new();
        for exp in [1, 2] {
            for (start, label) in expected_windows(&ds, exp, config.max_label()) {
                expected.push((exp, start, label));
            }
        }
        assert_eq!(got, expected, "transitions: {include_transitions}");
        assert_eq!(stats.kept, expected.len());
        assert_eq!(
            stats.cut,
            stats.kept + stats.unlabelled + stats.straddling + stats.transitions_skipped
        );
        // 2000 and 1500 samples give 30 and 22 windows.
        assert_eq!(stats.cut, 30 + 22);
        assert!(stats.straddling > 0 && stats.unlabelled > 0);
        assert_eq!(stats.transitions_skipped > 0, !include_transitions);
        assert!(include_transitions == got.iter().any(|w| w.2 == 7));
    }

    // The values are exactly what the shared preprocessing yields for that window.
    let config = WindowConfig {
        channels: ChannelSet::ACC_ONLY,
        include_transitions: false,
    };
    let mut reference = Vec::new();
    windows_of_recording(&ds.recording(2).unwrap().samples, config.channels, |w| {
        reference.push((w.start_sample as usize, w.as_slice().to_vec()))
    })
    .unwrap();
    let mut checked = 0;
    for_each_window(&ds, &config, |meta, values| {
        if meta.exp == 2 {
            let (_, expected) = reference
                .iter()
                .find(|(s, _)| *s == meta.start_sample)
                .unwrap();
            assert_eq!(values, expected.as_slice());
            checked += 1;
        }
    })
    .unwrap();
    assert!(checked > 0);
}

#[test]
fn split_by_uci_subjects_and_scaling_fitted_on_train() {
    let dir = tempfile::tempdir().unwrap();
    write_zip(&dir.path().join("HAPT_RawData.zip"), &small_hapt());
    let config = WindowConfig {
        channels: ChannelSet::TOTAL_ACC,
        include_transitions: false,
    };
    let (train, test) = load_har_windows(dir.path(), &config).unwrap();
    // User 1 is a UCI train subject, user 2 a test subject.
    assert!(train.subjects.iter().all(|&s| s == 1) && !train.is_empty());
    assert!(test.subjects.iter().all(|&s| s == 2) && !test.is_empty());
    assert_eq!(train.dim, 3 * WINDOW_LEN);
    assert_eq!(train.x.len(), train.len() * train.dim);
    assert_eq!(train.label_counts()[6..].iter().sum::<usize>(), 0);

    let (data, scaling) = har_training_data(&train, InputFeatures::Waveform).unwrap();
    let per_channel = scaling.har_channels().expect("HAR scaling");
    assert_eq!(per_channel.len(), 3);
    let scaled = data.x01;
    for channel in 0..3 {
        let values = scaled
            .chunks_exact(train.dim)
            .flat_map(|w| &w[channel * WINDOW_LEN..(channel + 1) * WINDOW_LEN]);
        let (lo, hi) = values.fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        assert_eq!(lo, 0.0, "train minimum maps to 0");
        assert!((hi - 1.0).abs() < 1e-6, "train maximum maps to 1, got {hi}");
    }
    // Scaling comes from train only: fitting on test gives other constants.
    let (_, test_scaling) = har_training_data(&test, InputFeatures::Waveform).unwrap();
    assert_ne!(test_scaling, scaling);
}

#[test]
fn error_missing_data_dir_names_the_path() {
    let err = HaptDataset::open(std::path::Path::new("/nonexistent/vsc-data")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/vsc-data"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = HaptDataset::open(empty.path()).unwrap_err();
    assert!(matches!(err, DataError::DatasetNotFound { .. }), "{err}");
    assert!(err.to_string().contains("HAPT_RawData.zip"), "{err}");
}

#[test]
fn error_ragged_row() {
    let mut files = small_hapt();
    let acc = format!("{HAPT_PREFIX}acc_exp02_user02.txt");
    replace_line(&mut files, &acc, 17, "0.5 0.25");
    let (_d, err) = open_zip(&files);
    let err = err.unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Ragged {
                line: 17,
                expected: 3,
                found: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, "acc_exp02_user02.txt", Some(17));
}

#[test]
fn error_non_number() {
    let mut files = small_hapt();
    let gyro = format!("{HAPT_PREFIX}gyro_exp01_user01.txt");
    replace_line(&mut files, &gyro, 3, "0.1 0.2x 0.3");
    let (_d, err) = open_folder(&files);
    let err = err.unwrap_err();
    assert!(
        matches!(
            err,
            DataError::NotANumber {
                line: 3,
                field: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, "gyro_exp01_user01.txt", Some(3));
}

#[test]
fn error_nan_value() {
    let mut files = small_hapt();
    let acc = format!("{HAPT_PREFIX}acc_exp01_user01.txt");
    replace_line(&mut files, &acc, 1000, "0.1 NaN 0.3");
    let (_d, err) = open_zip(&files);
    let err = err.unwrap_err();
    assert!(
        matches!(
            err,
            DataError::NonFinite {
                line: 1000,
                field: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, "acc_exp01_user01.txt", Some(1000));
}

#[test]
fn error_label_out_of_range() {
    let mut files = small_hapt();
    let labels = format!("{HAPT_PREFIX}labels.txt");
    replace_line(&mut files, &labels, 4, "1 1 13 1600 1999");
    let (_d, err) = open_zip(&files);
    let err = err.unwrap_err();
    assert!(
        matches!(
            err,
            DataError::OutOfRange {
                line: 4,
                value: 13,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, "labels.txt", Some(4));
}

#[test]
fn error_missing_file() {
    let mut files = small_hapt();
    remove(&mut files, &format!("{HAPT_PREFIX}gyro_exp02_user02.txt"));
    let (_d, err) = open_zip(&files);
    let err = err.unwrap_err();
    assert!(matches!(err, DataError::MissingFile { .. }), "{err}");
    assert_names(&err, "gyro_exp02_user02.txt", None);
    assert_names(&err, "HAPT_RawData.zip", None);

    let mut files = small_hapt();
    remove(&mut files, &format!("{HAPT_PREFIX}acc_exp01_user01.txt"));
    let (_d, err) = open_folder(&files);
    let err = err.unwrap_err();
    assert_names(&err, "acc_exp01_user01.txt", None);
}

#[test]
fn error_truncated_zip() {
    let bytes = zip_bytes(&small_hapt());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("HAPT_RawData.zip");
    // Cut off the end: the central directory is lost.
    std::fs::write(&path, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let err = HaptDataset::open(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::Zip { .. }), "{err}");
    assert_names(&err, "HAPT_RawData.zip", None);
}

#[test]
fn error_damaged_zip_member() {
    let mut bytes = zip_bytes(&small_hapt());
    // Flip bytes inside the first member's compressed data (after its local header).
    for b in &mut bytes[200..260] {
        *b ^= 0x5a;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("HAPT_RawData.zip"), &bytes).unwrap();
    let err = HaptDataset::open(dir.path()).unwrap_err();
    assert_names(
        &err,
        "HAPT_RawData.zip:HAPT Data Set/RawData/acc_exp01_user01.txt",
        None,
    );
}

#[test]
fn error_acc_gyro_length_mismatch() {
    let mut files = small_hapt();
    let gyro = format!("{HAPT_PREFIX}gyro_exp02_user02.txt");
    let text = String::from_utf8(files.iter().find(|f| f.0 == gyro).unwrap().1.clone()).unwrap();
    let shorter: String = text.lines().take(1490).map(|l| format!("{l}\n")).collect();
    replace(&mut files, &gyro, shorter);
    let (_d, err) = open_zip(&files);
    let err = err.unwrap_err();
    assert!(
        matches!(
            err,
            DataError::LengthMismatch {
                acc_rows: 1500,
                gyro_rows: 1490,
                line: 1491,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, "gyro_exp02_user02.txt", Some(1491));
    assert_names(&err, "acc_exp02_user02.txt", None);
}

#[test]
fn error_label_range_past_end() {
    let mut files = small_hapt();
    let labels = format!("{HAPT_PREFIX}labels.txt");
    // Experiment 2 has 1500 samples: 1501 is one past its last sample.
    replace_line(&mut files, &labels, 6, "2 2 6 801 1501");
    let (_d, err) = open_zip(&files);
    let err = err.unwrap_err();
    assert!(
        matches!(
            err,
            DataError::RangePastEnd {
                line: 6,
                end: 1501,
                len: 1500,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, "labels.txt", Some(6));
    // Ending exactly on the last sample is fine (inclusive end).
    replace_line(&mut files, &labels, 6, "2 2 6 801 1500");
    assert!(open_zip(&files).1.is_ok());
}

#[test]
fn error_inconsistent_labels() {
    let labels = format!("{HAPT_PREFIX}labels.txt");
    for (bad_line, expected) in [
        ("3 1 5 10 200", "experiment 3 has no acc/gyro files"),
        ("2 7 6 801 1400", "user 7"),
        ("2 2 6 801 700", "empty"),
        ("2 2 6 700 1400", "overlaps"),
    ] {
        let mut files = small_hapt();
        replace_line(&mut files, &labels, 6, bad_line);
        let (_d, err) = open_folder(&files);
        let err = err.unwrap_err();
        assert!(err.to_string().contains(expected), "{bad_line}: {err}");
        assert_names(&err, "labels.txt", Some(6));
    }
}
