//! Labelled windows from the HAPT recordings, cut by the device's own preprocessing.
//!
//! Each experiment is run whole through `edge_runtime::preprocess::windows_of_recording`
//! (filters settle once per recording, as on the device), which yields a window of
//! [`WINDOW_LEN`] samples every [`HOP_LEN`]. A window is kept only if all its samples lie
//! inside one labelled run; windows that touch unlabelled samples or span two runs are
//! dropped and counted in [`WindowStats`]. Subjects are split as in UCI HAR.

use std::collections::BTreeMap;
use std::path::Path;

use edge_runtime::preprocess::{ChannelSet, WINDOW_LEN, windows_of_recording};

use super::hapt::{HaptDataset, LabelRun};
use super::uci::{INERTIAL_SIGNALS, UciSplit};
use super::{DataError, N_ACTIVITIES, N_LABELS_WITH_TRANSITIONS, is_test_subject};

/// Which windows to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    /// Channels in each window (in `Channel` order whatever the selection order).
    pub channels: ChannelSet,
    /// Keep windows inside postural-transition runs (labels 7..=12) too.
    pub include_transitions: bool,
}

impl Default for WindowConfig {
    /// All 9 channels, activities 1..=6.
    fn default() -> Self {
        WindowConfig {
            channels: ChannelSet::ALL,
            include_transitions: false,
        }
    }
}

impl WindowConfig {
    /// The highest label a kept window can have: 6, or 12 with transitions.
    pub fn max_label(&self) -> u8 {
        if self.include_transitions {
            N_LABELS_WITH_TRANSITIONS
        } else {
            N_ACTIVITIES
        }
    }
}

/// Labelled windows of one split. Window `i` is `x[i * dim..(i + 1) * dim]`,
/// channel-major (the selected channels in `Channel` order, [`WINDOW_LEN`] samples
/// each), in raw physical units (g, rad/s); scale with [`super::scaling`].
#[derive(Debug, Clone, PartialEq)]
pub struct HarWindows {
    pub x: Vec<f32>,
    /// Values per window: `channels.len() * WINDOW_LEN`.
    pub dim: usize,
    /// Activity labels 1..=12 (1..=6 without transitions).
    pub labels: Vec<u8>,
    /// Volunteer of each window, 1..=30.
    pub subjects: Vec<u8>,
    pub channels: ChannelSet,
}

impl HarWindows {
    /// No windows yet, for `channels`.
    pub fn new(channels: ChannelSet) -> Self {
        HarWindows {
            x: Vec::new(),
            dim: channels.len() * WINDOW_LEN,
            labels: Vec::new(),
            subjects: Vec::new(),
            channels,
        }
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The values of window `i` (panics if `i >= len()`, like slice indexing).
    pub fn window(&self, i: usize) -> &[f32] {
        &self.x[i * self.dim..(i + 1) * self.dim]
    }

    /// Appends one window; `x.len()` must be `dim` (checked: a programming error otherwise).
    pub fn push(&mut self, x: &[f32], label: u8, subject: u8) {
        assert_eq!(
            x.len(),
            self.dim,
            "window length must equal HarWindows::dim"
        );
        self.x.extend_from_slice(x);
        self.labels.push(label);
        self.subjects.push(subject);
    }

    /// Windows per label: `counts[label - 1]`, labels 1..=12.
    pub fn label_counts(&self) -> [usize; 12] {
        let mut counts = [0; 12];
        for &label in &self.labels {
            if let Some(c) = usize::from(label)
                .checked_sub(1)
                .and_then(|i| counts.get_mut(i))
            {
                *c += 1;
            }
        }
        counts
    }

    /// Windows per subject and label: `map[subject][label - 1]`.
    pub fn subject_label_counts(&self) -> BTreeMap<u8, [usize; 12]> {
        let mut map: BTreeMap<u8, [usize; 12]> = BTreeMap::new();
        for (&subject, &label) in self.subjects.iter().zip(&self.labels) {
            let counts = map.entry(subject).or_insert([0; 12]);
            if let Some(c) = usize::from(label)
                .checked_sub(1)
                .and_then(|i| counts.get_mut(i))
            {
                *c += 1;
            }
        }
        map
    }

    /// The windows of UCI HAR's `Inertial Signals/` (if loaded), restricted to `channels`.
    /// They were cut by UCI's own pipeline, not ours: useful for comparison.
    pub fn from_uci_inertial(split: &UciSplit, channels: ChannelSet) -> Option<HarWindows> {
        let inertial = split.inertial.as_ref()?;
        let per_window = INERTIAL_SIGNALS.len() * WINDOW_LEN;
        let mut out = HarWindows::new(channels);
        out.x.reserve(split.len() * out.dim);
        for (i, window) in inertial.chunks_exact(per_window).enumerate() {
            for channel in channels.iter() {
                let at = channel.index() * WINDOW_LEN;
                out.x.extend_from_slice(&window[at..at + WINDOW_LEN]);
            }
            out.labels.push(split.labels[i]);
            out.subjects.push(split.subjects[i]);
        }
        Some(out)
    }
}

/// Where a window came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowMeta {
    pub exp: u16,
    pub user: u8,
    pub activity: u8,
    /// 0-based index of the window's first sample in its recording.
    pub start_sample: usize,
}

/// What happened to the windows cut from the recordings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// All windows the preprocessing produced (every 64 samples over whole recordings).
    pub cut: usize,
    /// Windows inside one run with a wanted label (handed to the caller).
    pub kept: usize,
    /// Dropped: at least one sample is not in any labelled run.
    pub unlabelled: usize,
    /// Dropped: every sample is labelled, but the window spans two or more runs.
    pub straddling: usize,
    /// Dropped: inside one transition run (7..=12) while transitions are excluded.
    pub transitions_skipped: usize,
}

/// Where a window `[start, start + WINDOW_LEN)` falls among an experiment's sorted runs.
enum Placement<'a> {
    Inside(&'a LabelRun),
    Straddling,
    Unlabelled,
}

fn place(runs: &[LabelRun], start: usize) -> Placement<'_> {
    let end = start + WINDOW_LEN;
    // The last run that starts at or before `start` is the only one that can hold it.
    let Some(first) = runs.partition_point(|r| r.start <= start).checked_sub(1) else {
        return Placement::Unlabelled;
    };
    let run = &runs[first];
    if run.contains_span(start, WINDOW_LEN) {
        return Placement::Inside(run);
    }
    // Not inside one run: is it at least covered by adjacent runs without a gap?
    let mut covered_to = start;
    for r in &runs[first..] {
        if r.start > covered_to || r.end <= covered_to {
            return Placement::Unlabelled;
        }
        covered_to = r.end;
        if covered_to >= end {
            return Placement::Straddling;
        }
    }
    Placement::Unlabelled
}

/// Cuts every recording into windows with the shared preprocessing and calls
/// `on_window(meta, values)` for each kept window (values as in [`HarWindows::x`]).
pub fn for_each_window(
    dataset: &HaptDataset,
    config: &WindowConfig,
    mut on_window: impl FnMut(&WindowMeta, &[f32]),
) -> Result<WindowStats, DataError> {
    let mut stats = WindowStats::default();
    let max_label = config.max_label();
    for recording in &dataset.recordings {
        let runs = dataset.runs_of(recording.exp);
        let result = windows_of_recording(&recording.samples, config.channels, |window| {
            stats.cut += 1;
            // Our parser rejects non-finite values, so no sample is skipped and input
            // indices equal sample indices.
            let start = usize::try_from(window.start_sample).unwrap_or(usize::MAX);
            match place(runs, start) {
                Placement::Inside(run) if run.activity <= max_label => {
                    stats.kept += 1;
                    let meta = WindowMeta {
                        exp: recording.exp,
                        user: recording.user,
                        activity: run.activity,
                        start_sample: start,
                    };
                    on_window(&meta, window.as_slice());
                }
                Placement::Inside(_) => stats.transitions_skipped += 1,
                Placement::Straddling => stats.straddling += 1,
                Placement::Unlabelled => stats.unlabelled += 1,
            }
        });
        result.map_err(|e| DataError::Preprocess {
            file: recording.acc_file.clone(),
            msg: e.to_string(),
        })?;
    }
    Ok(stats)
}

/// Windows of a loaded dataset split by subject as in UCI HAR: `(train, test, stats)`.
pub fn split_windows(
    dataset: &HaptDataset,
    config: &WindowConfig,
) -> Result<(HarWindows, HarWindows, WindowStats), DataError> {
    let mut train = HarWindows::new(config.channels);
    let mut test = HarWindows::new(config.channels);
    let stats = for_each_window(dataset, config, |meta, values| {
        let split = if is_test_subject(meta.user) {
            &mut test
        } else {
            &mut train
        };
        split.push(values, meta.activity, meta.user);
    })?;
    Ok((train, test, stats))
}

/// Loads the HAPT data from `data_dir` (a folder or zip, see [`HaptDataset::open`]) and
/// returns the `(train, test)` windows, split by subject as in UCI HAR.
pub fn load_har_windows(
    data_dir: &Path,
    config: &WindowConfig,
) -> Result<(HarWindows, HarWindows), DataError> {
    let dataset = HaptDataset::open(data_dir)?;
    let (train, test, _) = split_windows(&dataset, config)?;
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(activity: u8, start: usize, end: usize) -> LabelRun {
        LabelRun {
            exp: 1,
            user: 1,
            activity,
            start,
            end,
            line: 1,
        }
    }

    #[test]
    fn placement_of_windows() {
        // Runs: [100, 300) act 5, [300, 400) act 7, gap, [500, 1000) act 4.
        let runs = [run(5, 100, 300), run(7, 300, 400), run(4, 500, 1000)];
        assert!(matches!(place(&runs, 0), Placement::Unlabelled));
        assert!(matches!(place(&runs, 100), Placement::Inside(r) if r.activity == 5));
        assert!(matches!(place(&runs, 172), Placement::Inside(r) if r.activity == 5));
        assert!(matches!(place(&runs, 173), Placement::Straddling));
        assert!(matches!(place(&runs, 300), Placement::Unlabelled)); // runs into the gap
        assert!(matches!(place(&runs, 500), Placement::Inside(r) if r.activity == 4));
        assert!(matches!(place(&runs, 900), Placement::Unlabelled)); // past the last run
    }
}
