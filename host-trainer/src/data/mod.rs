//! HAR data: the HAPT raw recordings cut into windows by the shared preprocessing, the
//! official UCI HAR text format, the UCI subject split, and windows turned into scaled
//! model inputs ([`inputs`]).
//!
//! - [`resolve_data_dir`]: `--data` flag, then `VSC_DATA_DIR`.
//! - [`hapt::HaptDataset`]: raw 50 Hz recordings + labelled runs, from the zip or a folder.
//! - [`uci::UciHar`]: `X_*`/`y_*`/`subject_*`/`Inertial Signals` in the official format.
//! - Every error on bad input names the file and the line ([`DataError`]).

pub mod error;
pub mod hapt;
pub mod inputs;
mod source;
mod text;
pub mod uci;
pub mod windows;

pub use error::DataError;
pub use hapt::HaptDataset;
pub use inputs::{har_training_data, model_inputs, scaled_inputs};
pub use uci::UciHar;
pub use windows::{HarWindows, WindowConfig, load_har_windows};

use std::path::{Path, PathBuf};

/// Environment variable naming the data folder (used when `--data` is not given).
pub const DATA_DIR_ENV: &str = "VSC_DATA_DIR";

/// Activity names by label: `ACTIVITY_NAMES[label - 1]`, labels 1..=12 as in HAPT's
/// `activity_labels.txt` (1–6 are UCI HAR's activities, 7–12 the postural transitions).
pub const ACTIVITY_NAMES: [&str; 12] = [
    "WALKING",
    "WALKING_UPSTAIRS",
    "WALKING_DOWNSTAIRS",
    "SITTING",
    "STANDING",
    "LAYING",
    "STAND_TO_SIT",
    "SIT_TO_STAND",
    "SIT_TO_LIE",
    "LIE_TO_SIT",
    "STAND_TO_LIE",
    "LIE_TO_STAND",
];

/// Number of activities without transitions (labels 1..=6).
pub const N_ACTIVITIES: u8 = 6;
/// Number of labels with the postural transitions (labels 1..=12).
pub const N_LABELS_WITH_TRANSITIONS: u8 = 12;

/// UCI HAR's test subjects; the other 21 of the 30 volunteers form the training split.
pub const UCI_TEST_SUBJECTS: [u8; 9] = [2, 4, 9, 10, 12, 13, 18, 20, 24];

/// Whether `subject` belongs to UCI HAR's test split.
pub fn is_test_subject(subject: u8) -> bool {
    UCI_TEST_SUBJECTS.contains(&subject)
}

/// The name of a label 1..=12, or `"?"` outside that range.
pub fn activity_name(label: u8) -> &'static str {
    usize::from(label)
        .checked_sub(1)
        .and_then(|i| ACTIVITY_NAMES.get(i))
        .copied()
        .unwrap_or("?")
}

/// The data folder: `cli` if given, else `$VSC_DATA_DIR`. The folder must exist.
/// With neither, the error explains both ways (and where the data lives in this checkout).
pub fn resolve_data_dir(cli: Option<&Path>) -> Result<PathBuf, DataError> {
    let (dir, what) = match cli {
        Some(dir) => (dir.to_owned(), "given with --data"),
        None => match std::env::var_os(DATA_DIR_ENV) {
            Some(dir) if !dir.is_empty() => (PathBuf::from(dir), "from VSC_DATA_DIR"),
            _ => return Err(DataError::NoDataDir),
        },
    };
    if !dir.exists() {
        return Err(DataError::NotFound {
            path: dir,
            what: what.to_owned(),
        });
    }
    Ok(dir)
}

/// Whether this is a CI run (`CI` is `true` or `1`): there a missing data set is a
/// failure, never a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The real data folder for tests and checks: `$VSC_DATA_DIR`, else `../shared/data`
/// beside the checkout. `None` (after a note naming `what` is skipped) when that folder
/// does not exist; in CI ([`in_ci`]) that panics with the fix instead, so no real-data
/// test is ever skipped there.
pub fn real_data_dir_or_skip(what: &str) -> Option<PathBuf> {
    let dir = std::env::var_os(DATA_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map_or_else(
            // Every crate of the workspace sits one level below its root.
            || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")),
            PathBuf::from,
        );
    if dir.exists() {
        return Some(dir);
    }
    assert!(
        !in_ci(),
        "CI=true but the data folder {} is missing: set VSC_DATA_DIR to the folder holding HAPT_RawData.zip",
        dir.display()
    );
    eprintln!(
        "note: skipping {what}: no data at {} (set VSC_DATA_DIR)",
        dir.display()
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_names_by_label() {
        assert_eq!(activity_name(1), "WALKING");
        assert_eq!(activity_name(6), "LAYING");
        assert_eq!(activity_name(12), "LIE_TO_STAND");
        assert_eq!(activity_name(0), "?");
        assert_eq!(activity_name(13), "?");
    }

    #[test]
    fn split_has_nine_test_subjects() {
        assert_eq!((1..=30).filter(|&s| is_test_subject(s)).count(), 9);
        assert!(is_test_subject(24) && !is_test_subject(1));
    }

    #[test]
    fn resolve_prefers_flag_and_checks_existence() {
        let dir = std::env::temp_dir();
        assert_eq!(resolve_data_dir(Some(&dir)).unwrap(), dir);
        let missing = dir.join("vsc-surely-missing-data-dir");
        let err = resolve_data_dir(Some(&missing)).unwrap_err();
        assert!(err.to_string().contains("--data"), "{err}");
    }

    #[test]
    fn no_data_dir_message_explains_both_ways() {
        let msg = DataError::NoDataDir.to_string();
        assert!(
            msg.contains("--data") && msg.contains("VSC_DATA_DIR"),
            "{msg}"
        );
    }
}
