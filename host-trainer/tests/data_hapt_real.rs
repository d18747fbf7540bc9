//! The real HAPT recordings from the data folder (`VSC_DATA_DIR`, else `../shared/data`):
//! counts from the data README, the 1-based label convention, the subject split, windows
//! inside runs, train-only scaling, and the load time.

mod data_support;

use std::collections::BTreeSet;

use data_support::real_data_dir;
use edge_runtime::preprocess::{ChannelSet, InputFeatures, WINDOW_LEN, window_count};
use host_trainer::data::hapt::HaptDataset;
use host_trainer::data::uci::UciLabels;
use host_trainer::data::windows::{WindowConfig, for_each_window, split_windows};
use host_trainer::data::{UCI_TEST_SUBJECTS, har_training_data, scaled_inputs};

#[test]
fn real_hapt_recordings_windows_and_split() {
    let Some(data) = real_data_dir() else { return };
    let started = std::time::Instant::now();
    let ds = HaptDataset::open(&data).unwrap();
    let load_s = started.elapsed().as_secs_f64();

    // Counts from the data README.
    assert_eq!(ds.recordings.len(), 61);
    assert_eq!(
        ds.recordings
            .iter()
            .map(|r| r.user)
            .collect::<BTreeSet<_>>()
            .len(),
        30
    );
    assert_eq!(ds.total_samples(), 1_122_772);
    assert_eq!(ds.runs.len(), 1214);
    let mut per_activity = [0usize; 12];
    let mut runs_per_activity = [0usize; 12];
    for run in &ds.runs {
        per_activity[usize::from(run.activity) - 1] += run.len();
        runs_per_activity[usize::from(run.activity) - 1] += 1;
    }
    assert_eq!(
        per_activity,
        [
            122091, 116707, 107961, 126677, 138105, 136865, 10316, 8029, 12428, 11150, 14418, 10867
        ]
    );
    assert_eq!(
        runs_per_activity,
        [127, 183, 186, 120, 120, 120, 60, 62, 60, 60, 58, 58]
    );
    assert_eq!(per_activity.iter().sum::<usize>(), 815_614);
    let (shortest, longest) = ds.recordings.iter().fold((usize::MAX, 0), |(lo, hi), r| {
        (lo.min(r.samples.len()), hi.max(r.samples.len()))
    });
    assert_eq!((shortest, longest), (9898, 32089));
    // Row 1 of acc_exp01_user01 and the first labels line `1 1 5 250 1232` (1-based).
    let first = &ds.recordings[0];
    assert_eq!((first.exp, first.user), (1, 1));
    assert_eq!(
        first.samples[0].acc_g,
        [0.918_055_6_f32, -0.112_5, 0.509_722_25]
    );
    let run = ds.runs_of(1)[0];
    assert_eq!((run.activity, run.start, run.end), (5, 249, 1232));
    assert_eq!(ds.recording(21).unwrap().user, 10);

    let started = std::time::Instant::now();
    let config = WindowConfig::default();
    let (train, test, stats) = split_windows(&ds, &config).unwrap();
    let window_s = started.elapsed().as_secs_f64();
    eprintln!(
        "HAPT: read 61 experiments in {load_s:.2} s, windowed in {window_s:.2} s: \
         {} train + {} test windows; {stats:?}",
        train.len(),
        test.len()
    );

    // Every window the preprocessing cuts is counted once.
    let cut: usize = ds
        .recordings
        .iter()
        .map(|r| window_count(r.samples.len()))
        .sum();
    assert_eq!(stats.cut, cut);
    assert_eq!(stats.kept, train.len() + test.len());
    assert_eq!(
        stats.cut,
        stats.kept + stats.unlabelled + stats.straddling + stats.transitions_skipped
    );

    // Subject split exactly as UCI HAR.
    let test_subjects: BTreeSet<u8> = test.subjects.iter().copied().collect();
    let train_subjects: BTreeSet<u8> = train.subjects.iter().copied().collect();
    assert_eq!(test_subjects, UCI_TEST_SUBJECTS.into_iter().collect());
    assert_eq!(train_subjects.len(), 21);
    assert!(train_subjects.is_disjoint(&test_subjects));
    assert!(
        train
            .labels
            .iter()
            .chain(&test.labels)
            .all(|l| (1..=6).contains(l))
    );

    // Per activity, between the windows of cutting every run on its own from its first
    // sample and that minus one per run (a grid aligned to the recording start loses at
    // most one window per run). In total within 5 % of UCI HAR's official 10,299.
    let mut per_run = [0usize; 6];
    for run in ds.runs.iter().filter(|r| r.activity <= 6) {
        per_run[usize::from(run.activity) - 1] += window_count(run.len());
    }
    let ours: Vec<usize> = (0..6)
        .map(|i| train.label_counts()[i] + test.label_counts()[i])
        .collect();
    for i in 0..6 {
        let lower = per_run[i] - runs_per_activity[i];
        assert!(
            (lower..=per_run[i]).contains(&ours[i]),
            "activity {}: {} not in {lower}..={}",
            i + 1,
            ours[i],
            per_run[i]
        );
    }
    if let Ok(uci) = UciLabels::open(&data) {
        let official = uci.train.0.len() + uci.test.0.len();
        let diff = stats.kept.abs_diff(official) as f64 / official as f64;
        assert!(
            diff < 0.05,
            "{} windows vs UCI HAR's {official}",
            stats.kept
        );
    }

    // Every kept window lies inside a run with its label.
    let mut checked = 0;
    for_each_window(
        &ds,
        &WindowConfig {
            channels: ChannelSet::TOTAL_ACC,
            include_transitions: true,
        },
        |meta, _| {
            let inside = ds.runs_of(meta.exp).iter().any(|r| {
                r.activity == meta.activity && r.contains_span(meta.start_sample, WINDOW_LEN)
            });
            assert!(inside, "{meta:?}");
            checked += 1;
        },
    )
    .unwrap();
    assert!(checked > stats.kept, "transitions add windows");

    // Scaling from train only: train spans exactly [0, 1]; test may clamp.
    let (data, scaling) = har_training_data(&train, InputFeatures::Waveform).unwrap();
    let per_channel = scaling.har_channels().expect("HAR scaling");
    assert_eq!(per_channel.len(), 9);
    let x = data.x01;
    for channel in 0..9 {
        let (lo, hi) = x
            .chunks_exact(train.dim)
            .flat_map(|w| &w[channel * WINDOW_LEN..(channel + 1) * WINDOW_LEN])
            .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        assert_eq!(lo, 0.0);
        assert!((hi - 1.0).abs() < 1e-6, "channel {channel}: max {hi}");
    }
    let x_test = scaled_inputs(&test, &scaling).unwrap();
    assert!(x_test.iter().all(|v| (0.0..=1.0).contains(v)));
}
