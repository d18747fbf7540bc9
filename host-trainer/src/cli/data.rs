//! `vsc data …`: look at the HAR data the models are trained on.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use edge_runtime::preprocess::{ChannelSet, HOP_LEN, WINDOW_LEN, window_count};
use indicatif::{ProgressBar, ProgressStyle};

use crate::data::hapt::HaptDataset;
use crate::data::uci::{UCI_TEST_WINDOWS, UCI_TRAIN_WINDOWS, UciLabels};
use crate::data::windows::{HarWindows, WindowConfig, WindowStats, split_windows};
use crate::data::{ACTIVITY_NAMES, is_test_subject, resolve_data_dir};

/// `vsc data <command>`.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Windows per split × activity and per subject, cut from the HAPT raw recordings
    /// by the device's preprocessing, next to UCI HAR's official window counts.
    Summary(SummaryArgs),
    /// Generate the Smiley sparse data set (VSC.md §6) as NPY files (added by helper EVAL).
    Smiley(super::eval::SmileyArgs),
}

/// Options of `vsc data summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// Data folder (or zip) holding HAPT_RawData.zip; default: $VSC_DATA_DIR.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Channels in each window: all, acc, gyro, total_acc, body_acc, body_gyro or
    /// single channels such as body_acc_x, comma-separated.
    #[arg(long, default_value = "all", value_parser = super::parse_channel_set)]
    pub channels: ChannelSet,
    /// Also keep windows inside postural transitions (labels 7–12).
    #[arg(long)]
    pub transitions: bool,
}

/// Runs a `vsc data` command, printing to stdout.
pub fn run(command: DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Summary(args) => summary(&args, &mut std::io::stdout().lock()),
        DataCommand::Smiley(args) => super::eval::data_smiley(&args),
    }
}

fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// `vsc data summary`: loads the HAPT recordings, cuts windows, prints the tables to `out`.
pub fn summary(args: &SummaryArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let data_dir = resolve_data_dir(args.data.as_deref())?;
    let config = WindowConfig {
        channels: args.channels,
        include_transitions: args.transitions,
    };

    let started = Instant::now();
    let bar = progress_bar(0, "reading HAPT recordings");
    let dataset = HaptDataset::open_with_progress(&data_dir, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .with_context(|| format!("loading the HAPT raw data from {}", data_dir.display()))?;
    bar.finish_and_clear();
    let load_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let (train, test, stats) = split_windows(&dataset, &config)?;
    let window_s = started.elapsed().as_secs_f64();

    // UCI's own label files, when the data folder has them, for the comparison columns.
    let uci = UciLabels::open(&data_dir).ok();

    write_header(out, &dataset, &config, &stats, load_s, window_s)?;
    write_activity_table(out, &dataset, &config, &train, &test, uci.as_ref())?;
    write_subject_table(out, &config, &train, &test, uci.as_ref())?;
    Ok(())
}

fn write_header(
    out: &mut dyn Write,
    dataset: &HaptDataset,
    config: &WindowConfig,
    stats: &WindowStats,
    load_s: f64,
    window_s: f64,
) -> std::io::Result<()> {
    let users: std::collections::BTreeSet<u8> = dataset.recordings.iter().map(|r| r.user).collect();
    writeln!(out, "HAPT raw data: {}", dataset.source)?;
    writeln!(
        out,
        "  {} experiments, {} subjects, {} samples per sensor, {} labelled runs; read in {load_s:.2} s",
        dataset.recordings.len(),
        users.len(),
        dataset.total_samples(),
        dataset.runs.len()
    )?;
    writeln!(
        out,
        "Windows: {WINDOW_LEN} samples every {HOP_LEN} over each whole recording, channels {} \
         ({} values per window), labels 1–{}; cut in {window_s:.2} s",
        config.channels,
        config.channels.len() * WINDOW_LEN,
        config.max_label()
    )?;
    writeln!(
        out,
        "  cut {}, kept {} (inside one labelled run); dropped {} touching unlabelled samples, \
         {} spanning two runs, {} inside transitions",
        stats.cut, stats.kept, stats.unlabelled, stats.straddling, stats.transitions_skipped
    )?;
    Ok(())
}

fn write_activity_table(
    out: &mut dyn Write,
    dataset: &HaptDataset,
    config: &WindowConfig,
    train: &HarWindows,
    test: &HarWindows,
    uci: Option<&UciLabels>,
) -> std::io::Result<()> {
    let n_labels = usize::from(config.max_label());
    let (train_counts, test_counts) = (train.label_counts(), test.label_counts());
    // Windows if every labelled run were windowed on its own from its first sample
    // (runs shorter than a window give none): a yardstick for the alignment loss.
    let mut per_run = [[0usize; 12]; 2];
    for run in &dataset.runs {
        per_run[usize::from(is_test_subject(run.user))][usize::from(run.activity) - 1] +=
            window_count(run.len());
    }
    let uci_counts = uci.map(|u| (counts(&u.train.0), counts(&u.test.0)));

    writeln!(out)?;
    writeln!(
        out,
        "Windows per split × activity (train: 21 subjects, test: {:?})",
        crate::data::UCI_TEST_SUBJECTS
    )?;
    write!(
        out,
        "  {:<3} {:<20} {:>7} {:>7} {:>7}   {:>13}",
        "id", "activity", "train", "test", "total", "per-run tr/te"
    )?;
    match uci {
        Some(_) => writeln!(out, "   {:>13}", "UCI HAR tr/te")?,
        None => writeln!(out)?,
    }
    for label in 0..n_labels {
        write!(
            out,
            "  {:<3} {:<20} {:>7} {:>7} {:>7}   {:>6}/{:<6}",
            label + 1,
            ACTIVITY_NAMES[label],
            train_counts[label],
            test_counts[label],
            train_counts[label] + test_counts[label],
            per_run[0][label],
            per_run[1][label]
        )?;
        match &uci_counts {
            Some((tr, te)) if label < 6 => writeln!(out, "   {:>6}/{:<6}", tr[label], te[label])?,
            _ => writeln!(out)?,
        }
    }
    let per_run_total = |split: usize| per_run[split][..n_labels].iter().sum::<usize>();
    write!(
        out,
        "  {:<3} {:<20} {:>7} {:>7} {:>7}   {:>6}/{:<6}",
        "",
        "total",
        train.len(),
        test.len(),
        train.len() + test.len(),
        per_run_total(0),
        per_run_total(1)
    )?;
    match uci {
        Some(u) => writeln!(out, "   {:>6}/{:<6}", u.train.0.len(), u.test.0.len())?,
        None => writeln!(out)?,
    }
    match uci {
        Some(u) => writeln!(out, "  UCI HAR counts read from {}", u.source)?,
        None => writeln!(
            out,
            "  UCI HAR (published): {UCI_TRAIN_WINDOWS} train / {UCI_TEST_WINDOWS} test windows, \
             activities 1–6 only"
        )?,
    }
    Ok(())
}

fn counts(labels: &[u8]) -> [usize; 12] {
    let mut c = [0usize; 12];
    for &l in labels {
        if let Some(slot) = usize::from(l).checked_sub(1).and_then(|i| c.get_mut(i)) {
            *slot += 1;
        }
    }
    c
}

fn write_subject_table(
    out: &mut dyn Write,
    config: &WindowConfig,
    train: &HarWindows,
    test: &HarWindows,
    uci: Option<&UciLabels>,
) -> std::io::Result<()> {
    let n_labels = usize::from(config.max_label());
    let mut by_subject = train.subject_label_counts();
    by_subject.extend(test.subject_label_counts());
    let uci_by_subject = uci.map(|u| {
        let mut m = std::collections::BTreeMap::<u8, usize>::new();
        for &s in u.train.1.iter().chain(&u.test.1) {
            *m.entry(s).or_default() += 1;
        }
        m
    });

    writeln!(out)?;
    writeln!(out, "Windows per subject × activity")?;
    write!(out, "  {:>7} {:<5}", "subject", "split")?;
    for label in 1..=n_labels {
        write!(out, " {label:>5}")?;
    }
    write!(out, " {:>6}", "total")?;
    match uci_by_subject {
        Some(_) => writeln!(out, " {:>7}", "UCI HAR")?,
        None => writeln!(out)?,
    }
    for (subject, label_counts) in &by_subject {
        let split = if is_test_subject(*subject) {
            "test"
        } else {
            "train"
        };
        write!(out, "  {subject:>7} {split:<5}")?;
        for count in &label_counts[..n_labels] {
            write!(out, " {count:>5}")?;
        }
        write!(out, " {:>6}", label_counts.iter().sum::<usize>())?;
        match &uci_by_subject {
            Some(m) => writeln!(out, " {:>7}", m.get(subject).copied().unwrap_or(0))?,
            None => writeln!(out)?,
        }
    }
    Ok(())
}
