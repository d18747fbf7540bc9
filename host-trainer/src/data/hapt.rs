//! The HAPT raw recordings (UCI dataset id 341): 61 experiments of 30 volunteers,
//! 50 Hz accelerometer (g) and gyroscope (rad/s), with labelled runs.
//!
//! Layout, in a zip or an unpacked folder (any prefix before `RawData/`):
//! `RawData/acc_expEE_userUU.txt`, `RawData/gyro_expEE_userUU.txt` (3 values per line,
//! line k = sample k) and `RawData/labels.txt` (`exp user activity start end`, where
//! `start` and `end` are **1-based, inclusive** sample numbers: `250 1232` is lines
//! 250..=1232 of the signal files). We store runs 0-based and half-open.

use std::path::Path;

use edge_runtime::preprocess::ImuSample;

use super::DataError;
use super::source::{Source, find_suffix};
use super::text::{FloatTable, IntField, parse_float_table, parse_int_rows};

/// File names tried, in order, when [`HaptDataset::open`] is given a folder without
/// unpacked `RawData/`: the project's data zip, the official download, its old name.
pub const HAPT_ZIP_NAMES: [&str; 3] = [
    "HAPT_RawData.zip",
    "smartphone+based+recognition+of+human+activities+and+postural+transitions.zip",
    "HAPT Data Set.zip",
];

/// One experiment: a continuous recording of one volunteer.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// Experiment number `EE` from the file name.
    pub exp: u16,
    /// Volunteer `UU` from the file name, 1..=30.
    pub user: u8,
    /// One sample per line of the acc/gyro files, in order (50 Hz).
    pub samples: Vec<ImuSample>,
    /// The accelerometer file, for messages.
    pub acc_file: String,
}

/// One line of `labels.txt`, converted to 0-based half-open sample indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelRun {
    pub exp: u16,
    pub user: u8,
    /// Activity 1..=12 (see [`super::ACTIVITY_NAMES`]).
    pub activity: u8,
    /// Index of the run's first sample (file value `start` − 1).
    pub start: usize,
    /// Index one past the run's last sample (file value `end`, inclusive 1-based).
    pub end: usize,
    /// Line of `labels.txt`, for messages.
    pub line: usize,
}

impl LabelRun {
    /// Number of samples in the run.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Whether samples `start..start + len` all lie inside this run.
    pub fn contains_span(&self, start: usize, len: usize) -> bool {
        start >= self.start && start + len <= self.end
    }
}

/// All HAPT recordings with their labelled runs.
#[derive(Debug, Clone, PartialEq)]
pub struct HaptDataset {
    /// The folder or zip it was read from.
    pub source: String,
    /// Sorted by experiment number.
    pub recordings: Vec<Recording>,
    /// Sorted by experiment, then start; runs of one experiment never overlap.
    pub runs: Vec<LabelRun>,
    /// The labels file, for messages.
    pub labels_file: String,
}

/// `acc_exp01_user01.txt` → `(1, 1)`.
fn parse_signal_name(base: &str, kind: &str) -> Option<(u16, u8)> {
    let rest = base.strip_prefix(kind)?.strip_prefix("_exp")?;
    let rest = rest.strip_suffix(".txt")?;
    let (exp, user) = rest.split_once("_user")?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(exp) || !all_digits(user) {
        return None;
    }
    Some((exp.parse().ok()?, user.parse().ok()?))
}

/// Where `RawData/labels.txt` is: the prefix before `labels.txt` (ends in `/` or empty).
fn raw_data_prefix(names: &[String]) -> Option<String> {
    let labels = find_suffix(names, "RawData/labels.txt").or_else(|| {
        // A folder that *is* RawData: labels.txt next to acc_exp files.
        let has_acc = names
            .iter()
            .any(|n| !n.contains('/') && parse_signal_name(n, "acc").is_some());
        (has_acc && names.iter().any(|n| n == "labels.txt")).then_some("labels.txt")
    })?;
    Some(labels[..labels.len() - "labels.txt".len()].to_owned())
}

fn has_hapt_layout(names: &[String]) -> bool {
    raw_data_prefix(names).is_some()
}

fn locate(path: &Path) -> Result<Source, DataError> {
    if !path.exists() {
        return Err(DataError::NotFound {
            path: path.to_owned(),
            what: "HAPT zip or folder".to_owned(),
        });
    }
    if path.is_file() {
        return Source::zip(path, &has_hapt_layout);
    }
    let folder = Source::folder(path)?;
    if has_hapt_layout(folder.names()) {
        return Ok(folder);
    }
    for name in HAPT_ZIP_NAMES {
        if folder.contains(name) {
            return Source::zip(&path.join(name), &has_hapt_layout);
        }
    }
    Err(DataError::DatasetNotFound {
        path: path.to_owned(),
        dataset: "HAPT raw",
        looked_for: format!(
            "an unpacked `RawData/labels.txt` or a zip named {}",
            HAPT_ZIP_NAMES
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

fn read_signal(source: &mut Source, name: &str) -> Result<(String, FloatTable), DataError> {
    let (file, text) = source.read_text(name)?;
    let table = parse_float_table(&text, &file, Some(3))?;
    Ok((file, table))
}

impl HaptDataset {
    /// Opens the HAPT raw data: a zip (the project's `HAPT_RawData.zip`, the official
    /// download), an unpacked folder, or a data folder holding one of [`HAPT_ZIP_NAMES`].
    pub fn open(path: &Path) -> Result<HaptDataset, DataError> {
        Self::open_with_progress(path, &mut |_, _| {})
    }

    /// As [`HaptDataset::open`], calling `progress(experiments_read, experiments_total)`
    /// after each experiment (loading all 61 takes a few seconds).
    pub fn open_with_progress(
        path: &Path,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<HaptDataset, DataError> {
        let mut source = locate(path)?;
        let prefix = raw_data_prefix(source.names()).ok_or_else(|| DataError::MissingFile {
            container: source.label().to_owned(),
            name: "RawData/labels.txt".to_owned(),
        })?;

        // Pair acc and gyro files by name; either without the other is a missing file.
        let mut experiments: Vec<(u16, u8, String, String)> = Vec::new();
        for name in source.names() {
            let Some(base) = name.strip_prefix(&prefix) else {
                continue;
            };
            if base.contains('/') {
                continue;
            }
            if let Some((exp, user)) = parse_signal_name(base, "acc") {
                let gyro = format!("{prefix}gyro{}", &base["acc".len()..]);
                experiments.push((exp, user, name.clone(), gyro));
            } else if let Some(acc) = base
                .strip_prefix("gyro")
                .filter(|_| parse_signal_name(base, "gyro").is_some())
                .map(|rest| format!("{prefix}acc{rest}"))
                && !source.contains(&acc)
            {
                return Err(DataError::MissingFile {
                    container: source.label().to_owned(),
                    name: acc,
                });
            }
        }
        experiments.sort_by_key(|e| e.0);
        if experiments.is_empty() {
            return Err(DataError::MissingFile {
                container: source.label().to_owned(),
                name: format!("{prefix}acc_expEE_userUU.txt"),
            });
        }
        for pair in experiments.windows(2) {
            if pair[0].0 == pair[1].0 {
                return Err(DataError::BadFileName {
                    file: source.display(&pair[1].2),
                    msg: format!("experiment {} also has {}", pair[0].0, pair[0].2),
                });
            }
        }

        let total = experiments.len();
        let mut recordings = Vec::with_capacity(total);
        for (done, (exp, user, acc_name, gyro_name)) in experiments.into_iter().enumerate() {
            if !(1..=30).contains(&user) {
                return Err(DataError::BadFileName {
                    file: source.display(&acc_name),
                    msg: format!("user {user} is out of range 1..=30"),
                });
            }
            let (acc_file, acc) = read_signal(&mut source, &acc_name)?;
            let (gyro_file, gyro) = read_signal(&mut source, &gyro_name)?;
            if acc.rows != gyro.rows {
                return Err(DataError::LengthMismatch {
                    acc_file,
                    acc_rows: acc.rows,
                    gyro_file,
                    gyro_rows: gyro.rows,
                    line: acc.rows.min(gyro.rows) + 1,
                });
            }
            let samples = acc
                .values
                .chunks_exact(3)
                .zip(gyro.values.chunks_exact(3))
                .map(|(a, g)| ImuSample {
                    acc_g: [a[0], a[1], a[2]],
                    gyro_rad_s: [g[0], g[1], g[2]],
                })
                .collect();
            recordings.push(Recording {
                exp,
                user,
                samples,
                acc_file,
            });
            progress(done + 1, total);
        }

        let (labels_file, runs) = read_labels(&mut source, &prefix, &recordings)?;
        Ok(HaptDataset {
            source: source.label().to_owned(),
            recordings,
            runs,
            labels_file,
        })
    }

    /// The recording of experiment `exp`.
    pub fn recording(&self, exp: u16) -> Option<&Recording> {
        self.recordings
            .binary_search_by_key(&exp, |r| r.exp)
            .ok()
            .map(|i| &self.recordings[i])
    }

    /// The labelled runs of experiment `exp`, sorted by start.
    pub fn runs_of(&self, exp: u16) -> &[LabelRun] {
        let first = self.runs.partition_point(|r| r.exp < exp);
        let end = self.runs.partition_point(|r| r.exp <= exp);
        &self.runs[first..end]
    }

    /// Samples over all recordings.
    pub fn total_samples(&self) -> usize {
        self.recordings.iter().map(|r| r.samples.len()).sum()
    }
}

fn read_labels(
    source: &mut Source,
    prefix: &str,
    recordings: &[Recording],
) -> Result<(String, Vec<LabelRun>), DataError> {
    let (file, text) = source.read_text(&format!("{prefix}labels.txt"))?;
    let fields = [
        IntField {
            what: "experiment",
            min: 1,
            max: i64::from(u16::MAX),
        },
        IntField {
            what: "user",
            min: 1,
            max: 30,
        },
        IntField {
            what: "activity",
            min: 1,
            max: 12,
        },
        IntField {
            what: "start sample",
            min: 1,
            max: i64::from(u32::MAX),
        },
        IntField {
            what: "end sample",
            min: 1,
            max: i64::from(u32::MAX),
        },
    ];
    let rows = parse_int_rows(&text, &file, &fields)?;
    let mut runs = Vec::with_capacity(rows.len());
    for (line, [exp, user, activity, start, end]) in rows {
        // All in range by the field checks above.
        let (exp, user, activity) = (exp as u16, user as u8, activity as u8);
        let (start, end) = (start as usize, end as usize);
        let Ok(index) = recordings.binary_search_by_key(&exp, |r| r.exp) else {
            return Err(DataError::Inconsistent {
                file,
                line,
                msg: format!("experiment {exp} has no acc/gyro files"),
            });
        };
        let recording = &recordings[index];
        if recording.user != user {
            return Err(DataError::Inconsistent {
                file,
                line,
                msg: format!(
                    "experiment {exp} is user {user} here but user {} in {}",
                    recording.user, recording.acc_file
                ),
            });
        }
        if start > end {
            return Err(DataError::BadRange {
                file,
                line,
                start,
                end,
            });
        }
        if end > recording.samples.len() {
            return Err(DataError::RangePastEnd {
                file,
                line,
                exp,
                start,
                end,
                len: recording.samples.len(),
            });
        }
        runs.push(LabelRun {
            exp,
            user,
            activity,
            start: start - 1,
            end,
            line,
        });
    }
    runs.sort_by_key(|r| (r.exp, r.start));
    for pair in runs.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a.exp == b.exp && b.start < a.end {
            let later = if a.line > b.line { a } else { b };
            let other = if a.line > b.line { b } else { a };
            return Err(DataError::OverlappingRuns {
                file,
                line: later.line,
                other_line: other.line,
                exp: later.exp,
                start: later.start + 1,
                end: later.end,
            });
        }
    }
    Ok((file, runs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(
            parse_signal_name("acc_exp01_user01.txt", "acc"),
            Some((1, 1))
        );
        assert_eq!(
            parse_signal_name("gyro_exp61_user30.txt", "gyro"),
            Some((61, 30))
        );
        assert_eq!(parse_signal_name("acc_exp01_user01.txt", "gyro"), None);
        assert_eq!(parse_signal_name("acc_exp_user01.txt", "acc"), None);
        assert_eq!(parse_signal_name("acc_exp01_user01.csv", "acc"), None);
    }

    #[test]
    fn raw_data_prefix_found_at_any_depth() {
        let names = vec![
            "HAPT Data Set/RawData/acc_exp01_user01.txt".to_owned(),
            "HAPT Data Set/RawData/labels.txt".to_owned(),
        ];
        assert_eq!(
            raw_data_prefix(&names).as_deref(),
            Some("HAPT Data Set/RawData/")
        );
        let flat = vec!["acc_exp01_user01.txt".to_owned(), "labels.txt".to_owned()];
        assert_eq!(raw_data_prefix(&flat).as_deref(), Some(""));
        assert_eq!(raw_data_prefix(&flat[1..]), None);
    }

    #[test]
    fn run_containment_is_half_open() {
        let run = LabelRun {
            exp: 1,
            user: 1,
            activity: 5,
            start: 249,
            end: 1232,
            line: 1,
        };
        assert_eq!(run.len(), 983);
        assert!(run.contains_span(249, 128));
        assert!(run.contains_span(1232 - 128, 128));
        assert!(!run.contains_span(1232 - 127, 128));
        assert!(!run.contains_span(248, 128));
    }
}
