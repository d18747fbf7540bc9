//! Loader for the official UCI HAR text format (dataset id 240).
//!
//! Reads, under `UCI HAR Dataset/`:
//! `train/X_train.txt` (561 features, `%16.7e` fields), `train/y_train.txt` (labels 1..=6),
//! `train/subject_train.txt` (1..=30), optionally `train/Inertial Signals/*_train.txt`
//! (9 files of 128-sample windows), the same for `test`, and `features.txt`.
//!
//! Sources: the official zip, the wrapper zip the UCI site serves today (which holds the
//! official zip as a member), an unpacked folder, or a data folder holding one of those.
//! macOS litter (`__MACOSX/`, `.DS_Store`) is ignored.
//!
//! The number of feature columns is a parameter ([`UciOptions::n_features`]) or inferred
//! from the first row, so the partial file `X_train_cols001-265.txt` (265 of the 561
//! columns) in the project's data folder loads too: a split's `X` file is `X_<split>.txt`
//! if present, else the one `X_<split>*.txt` beside `y_<split>.txt`.

use std::path::Path;

use super::DataError;
use super::source::{Source, find_suffix};
use super::text::{IntField, parse_float_table, parse_u8_column};

/// Feature columns of the complete official `X_*.txt`.
pub const UCI_N_FEATURES: usize = 561;
/// Samples per window in `Inertial Signals/` (2.56 s at 50 Hz).
pub const INERTIAL_WINDOW_LEN: usize = 128;
/// The 9 `Inertial Signals` files, in the project's channel order (total_acc, body_acc,
/// body_gyro; x, y, z), which is `edge_runtime::preprocess::Channel`'s order.
pub const INERTIAL_SIGNALS: [&str; 9] = [
    "total_acc_x",
    "total_acc_y",
    "total_acc_z",
    "body_acc_x",
    "body_acc_y",
    "body_acc_z",
    "body_gyro_x",
    "body_gyro_y",
    "body_gyro_z",
];

/// File names tried, in order, when [`UciHar::open`] is given a folder without an
/// unpacked dataset: the current UCI download (a wrapper), the older direct zip.
pub const UCI_ZIP_NAMES: [&str; 2] = [
    "human+activity+recognition+using+smartphones.zip",
    "UCI HAR Dataset.zip",
];

/// Which split of UCI HAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    /// `"train"` or `"test"`, as in the file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// Whether to read `Inertial Signals/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InertialSignals {
    /// Do not read them (saves ~280 MB of text when only features are wanted).
    #[default]
    Skip,
    /// Read them when all 9 files exist; `None` when the folder is absent.
    IfPresent,
    /// Fail with [`DataError::MissingFile`] when they are absent.
    Require,
}

/// What [`UciHar::open`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UciOptions {
    /// `Some(n)`: every `X` row must have `n` values (e.g. [`UCI_N_FEATURES`]).
    /// `None`: the train file's first row sets the count; the rest and test must match.
    pub n_features: Option<usize>,
    pub inertial: InertialSignals,
}

/// One split of UCI HAR. Row `i` of every field is the same window.
#[derive(Debug, Clone, PartialEq)]
pub struct UciSplit {
    pub split: Split,
    /// `len() × n_features`, row-major, as in the file.
    pub features: Vec<f32>,
    pub n_features: usize,
    /// Activity labels 1..=6.
    pub labels: Vec<u8>,
    /// Volunteers 1..=30.
    pub subjects: Vec<u8>,
    /// `len() × 9 × 128`, per window channel-major in [`INERTIAL_SIGNALS`] order
    /// (the layout of `HarWindows::x` with all channels), when read.
    pub inertial: Option<Vec<f32>>,
    /// Where the features came from (for messages and model cards).
    pub x_file: String,
}

impl UciSplit {
    /// Number of windows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The features of window `i`.
    pub fn features_row(&self, i: usize) -> &[f32] {
        &self.features[i * self.n_features..(i + 1) * self.n_features]
    }

    /// Windows per label: `counts[label - 1]`.
    pub fn label_counts(&self) -> [usize; 6] {
        let mut counts = [0; 6];
        for &l in &self.labels {
            counts[usize::from(l) - 1] += 1;
        }
        counts
    }
}

/// The UCI HAR dataset in the official text format.
#[derive(Debug, Clone, PartialEq)]
pub struct UciHar {
    /// The folder or zip it was read from.
    pub source: String,
    pub train: UciSplit,
    pub test: UciSplit,
    /// Names of the loaded feature columns from `features.txt` (its first
    /// `n_features` lines), if that file is present. Not unique: key columns by index.
    pub feature_names: Option<Vec<String>>,
}

fn has_uci_layout(names: &[String]) -> bool {
    find_suffix(names, "train/y_train.txt").is_some()
}

impl UciHar {
    /// Opens a UCI HAR zip (official, wrapper, or a zip in the same layout), an unpacked
    /// folder, or a data folder that holds one of the [`UCI_ZIP_NAMES`] (else another
    /// `*.zip` whose name starts with `UCI`, such as the project's partial feature zip).
    pub fn open(path: &Path, options: &UciOptions) -> Result<UciHar, DataError> {
        let mut source = locate(path)?;
        let train = read_split(
            &mut source,
            Split::Train,
            options.n_features,
            options.inertial,
        )?;
        let test = read_split(
            &mut source,
            Split::Test,
            Some(train.n_features),
            options.inertial,
        )?;
        let feature_names = read_feature_names(&mut source, train.n_features)?;
        Ok(UciHar {
            source: source.label().to_owned(),
            train,
            test,
            feature_names,
        })
    }

    /// True when all 561 official feature columns are loaded.
    pub fn has_all_features(&self) -> bool {
        self.train.n_features == UCI_N_FEATURES
    }
}

fn locate(path: &Path) -> Result<Source, DataError> {
    if !path.exists() {
        return Err(DataError::NotFound {
            path: path.to_owned(),
            what: "UCI HAR zip or folder".to_owned(),
        });
    }
    if path.is_file() {
        return Source::zip(path, &has_uci_layout);
    }
    let folder = Source::folder(path)?;
    if has_uci_layout(folder.names()) {
        return Ok(folder);
    }
    // Zips directly in the folder: the official names first, then other `UCI*.zip`.
    let mut candidates: Vec<String> = UCI_ZIP_NAMES.iter().map(|s| (*s).to_owned()).collect();
    candidates.extend(
        folder
            .names()
            .iter()
            .filter(|n| {
                !n.contains('/')
                    && n.starts_with("UCI")
                    && n.to_ascii_lowercase().ends_with(".zip")
                    && !UCI_ZIP_NAMES.contains(&n.as_str())
            })
            .cloned(),
    );
    for name in &candidates {
        if folder.contains(name) {
            return Source::zip(&path.join(name), &has_uci_layout);
        }
    }
    Err(DataError::DatasetNotFound {
        path: path.to_owned(),
        dataset: "UCI HAR",
        looked_for: format!(
            "an unpacked `UCI HAR Dataset/train/y_train.txt` or a zip named {}",
            candidates
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// The folder prefix (ending in `/`, or empty) that holds `y_<split>.txt`.
fn split_prefix(source: &Source, split: Split) -> Result<String, DataError> {
    let y_name = format!("{0}/y_{0}.txt", split.as_str());
    let found = find_suffix(source.names(), &y_name).ok_or_else(|| DataError::MissingFile {
        container: source.label().to_owned(),
        name: format!("UCI HAR Dataset/{y_name}"),
    })?;
    Ok(found[..found.len() - format!("y_{}.txt", split.as_str()).len()].to_owned())
}

/// `X_<split>.txt`, else the single `X_<split>*.txt` beside it.
fn x_file_name(source: &Source, prefix: &str, split: Split) -> Result<String, DataError> {
    let exact = format!("{prefix}X_{}.txt", split.as_str());
    if source.contains(&exact) {
        return Ok(exact);
    }
    let stem = format!("{prefix}X_{}", split.as_str());
    let mut partial = source.names().iter().filter(|n| {
        n.starts_with(&stem) && n.ends_with(".txt") && !n[prefix.len()..].contains('/')
    });
    match (partial.next(), partial.next()) {
        (Some(one), None) => Ok(one.clone()),
        _ => Err(DataError::MissingFile {
            container: source.label().to_owned(),
            name: exact,
        }),
    }
}

fn check_rows(
    file: &str,
    rows: usize,
    other_file: &str,
    other_rows: usize,
) -> Result<(), DataError> {
    if rows == other_rows {
        return Ok(());
    }
    Err(DataError::RowCountMismatch {
        file: file.to_owned(),
        rows,
        other_file: other_file.to_owned(),
        other_rows,
        line: rows.min(other_rows) + 1,
    })
}

/// `y_<split>.txt` (1..=6) and `subject_<split>.txt` (1..=30), equally long.
/// Returns the `y` file's display name with them.
fn read_labels_subjects(
    source: &mut Source,
    prefix: &str,
    split: Split,
) -> Result<(String, Vec<u8>, Vec<u8>), DataError> {
    let s = split.as_str();
    let (y_file, y_text) = source.read_text(&format!("{prefix}y_{s}.txt"))?;
    let labels = parse_u8_column(
        &y_text,
        &y_file,
        IntField {
            what: "activity label",
            min: 1,
            max: 6,
        },
    )?;
    let (subject_file, subject_text) = source.read_text(&format!("{prefix}subject_{s}.txt"))?;
    let subjects = parse_u8_column(
        &subject_text,
        &subject_file,
        IntField {
            what: "subject",
            min: 1,
            max: 30,
        },
    )?;
    check_rows(&subject_file, subjects.len(), &y_file, labels.len())?;
    Ok((y_file, labels, subjects))
}

fn read_split(
    source: &mut Source,
    split: Split,
    n_features: Option<usize>,
    inertial: InertialSignals,
) -> Result<UciSplit, DataError> {
    let prefix = split_prefix(source, split)?;
    let (y_file, labels, subjects) = read_labels_subjects(source, &prefix, split)?;

    let x_name = x_file_name(source, &prefix, split)?;
    let (x_file, x_text) = source.read_text(&x_name)?;
    let table = parse_float_table(&x_text, &x_file, n_features)?;
    drop(x_text);
    check_rows(&x_file, table.rows, &y_file, labels.len())?;

    let inertial = match inertial {
        InertialSignals::Skip => None,
        mode => read_inertial(source, &prefix, split, mode, &y_file, labels.len())?,
    };

    Ok(UciSplit {
        split,
        features: table.values,
        n_features: table.cols,
        labels,
        subjects,
        inertial,
        x_file,
    })
}

fn read_inertial(
    source: &mut Source,
    prefix: &str,
    split: Split,
    mode: InertialSignals,
    y_file: &str,
    rows: usize,
) -> Result<Option<Vec<f32>>, DataError> {
    let s = split.as_str();
    let names: Vec<String> = INERTIAL_SIGNALS
        .iter()
        .map(|signal| format!("{prefix}Inertial Signals/{signal}_{s}.txt"))
        .collect();
    if mode == InertialSignals::IfPresent && !names.iter().any(|n| source.contains(n)) {
        return Ok(None);
    }
    let n_channels = INERTIAL_SIGNALS.len();
    let mut out = vec![0f32; rows * n_channels * INERTIAL_WINDOW_LEN];
    for (channel, name) in names.iter().enumerate() {
        let (file, text) = source.read_text(name)?;
        let table = parse_float_table(&text, &file, Some(INERTIAL_WINDOW_LEN))?;
        check_rows(&file, table.rows, y_file, rows)?;
        for (row, values) in table.values.chunks_exact(INERTIAL_WINDOW_LEN).enumerate() {
            let at = (row * n_channels + channel) * INERTIAL_WINDOW_LEN;
            out[at..at + INERTIAL_WINDOW_LEN].copy_from_slice(values);
        }
    }
    Ok(Some(out))
}

fn read_feature_names(
    source: &mut Source,
    n_features: usize,
) -> Result<Option<Vec<String>>, DataError> {
    let Some(name) = find_suffix(source.names(), "features.txt").map(str::to_owned) else {
        return Ok(None);
    };
    let (file, text) = source.read_text(&name)?;
    let mut names = Vec::with_capacity(n_features);
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        if i == n_features {
            break;
        }
        let (index, feature) = line
            .trim()
            .split_once(' ')
            .ok_or_else(|| DataError::Ragged {
                file: file.clone(),
                line: i + 1,
                expected: 2,
                found: 1,
            })?;
        if index.parse::<usize>() != Ok(i + 1) {
            return Err(DataError::Inconsistent {
                file: file.clone(),
                line: i + 1,
                msg: format!("expected feature index {}, found `{index}`", i + 1),
            });
        }
        names.push(feature.to_owned());
    }
    Ok(Some(names))
}

/// Windows in the official train split (21 subjects).
pub const UCI_TRAIN_WINDOWS: usize = 7352;
/// Windows in the official test split (9 subjects).
pub const UCI_TEST_WINDOWS: usize = 2947;

/// Only the labels and subjects of UCI HAR (`y_*`, `subject_*`), without the features.
#[derive(Debug, Clone, PartialEq)]
pub struct UciLabels {
    /// The folder or zip they were read from.
    pub source: String,
    /// `(labels 1..=6, subjects 1..=30)` of the train split.
    pub train: (Vec<u8>, Vec<u8>),
    /// The same for the test split.
    pub test: (Vec<u8>, Vec<u8>),
}

impl UciLabels {
    /// Reads `y_*` and `subject_*` of both splits from the same places as [`UciHar::open`];
    /// cheap (a few hundred kB), for comparing window counts.
    pub fn open(path: &Path) -> Result<UciLabels, DataError> {
        let mut source = locate(path)?;
        let mut read = |split: Split| -> Result<(Vec<u8>, Vec<u8>), DataError> {
            let prefix = split_prefix(&source, split)?;
            let (_, labels, subjects) = read_labels_subjects(&mut source, &prefix, split)?;
            Ok((labels, subjects))
        };
        let train = read(Split::Train)?;
        let test = read(Split::Test)?;
        Ok(UciLabels {
            source: source.label().to_owned(),
            train,
            test,
        })
    }
}
