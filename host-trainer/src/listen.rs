//! `vsc listen [FILE|-|/dev/tty…]` and `vsc listen --ble [NAME|ADDRESS]`: decodes the
//! device's framed code stream, prints a live table (one row per window: time, flags,
//! which latent dimensions are active) and can write every frame to CSV.
//!
//! Garbage, truncated and corrupted frames between valid ones are skipped (see
//! [`edge_runtime::frame`]). Every input ends in the same [`Listener`]: a file or stdin
//! (e.g. `cargo xtask firmware --run` output piped in), a serial device such as a board's
//! USB CDC-ACM port (put in raw mode by [`serial`]), or BLE notifications reassembled by
//! [`edge_runtime::ble::Reassembler`] ([`ble`]). Ctrl-C ends a live session cleanly: the
//! summary is printed and the CSV completed.

#[cfg(unix)]
pub mod serial;

pub mod ble;

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use edge_runtime::frame::{Frame, FrameDecoder, flags};

/// Arguments of `vsc listen`.
#[derive(clap::Args, Debug, Clone)]
pub struct ListenArgs {
    /// Byte stream to read: a file, `-` for stdin, or a serial device such as
    /// /dev/ttyACM0 (put in raw mode, 8N1).
    #[arg(default_value = "-")]
    pub input: PathBuf,
    /// Also write every decoded frame to this CSV file (dense γ and μ per dimension).
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Do not print the table (e.g. with `--csv` only).
    #[arg(long)]
    pub quiet: bool,
    /// Baud rate of a serial device (a USB CDC-ACM port ignores it).
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
    /// Listen over Bluetooth LE instead of INPUT: connect to the first device advertising
    /// this name (e.g. VSC-1A2B3C) or address (AA:BB:CC:DD:EE:FF); without a value, to any
    /// device named VSC-… or advertising the VSC service.
    #[arg(
        long,
        value_name = "NAME|ADDRESS",
        num_args = 0..=1,
        default_missing_value = "",
        conflicts_with = "input"
    )]
    pub ble: Option<String>,
    /// Seconds to scan for the BLE device before giving up.
    #[arg(long, default_value_t = 20, value_name = "SECONDS")]
    pub scan_timeout: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: cannot write: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error(
        "{path}: no such device; is the board plugged in and running? \
         (`ls /dev/ttyACM* /dev/ttyUSB*` lists the serial devices)"
    )]
    DeviceMissing { path: PathBuf },
    #[error(
        "{path}: permission denied; add your user to the `{group}` group that owns it \
         (`sudo usermod -aG {group} $USER`, then log in again)"
    )]
    DevicePermission { path: PathBuf, group: String },
    #[error("{path}: cannot configure the serial port ({what}): {source}")]
    Serial {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
    #[error(transparent)]
    Ble(#[from] ble::BleError),
}

/// Counts of one listening session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenSummary {
    pub frames: u64,
    /// Non-empty chunks that were not valid frames.
    pub rejected_chunks: u64,
    /// Frames missing according to gaps in the sequence numbers.
    pub lost_frames: u64,
    /// Frames with any flag set.
    pub flagged_frames: u64,
    /// Frames received twice in a row and shown once (BLE only).
    pub duplicate_frames: u64,
}

/// The predicted activity of a frame and its int8 score (margin over the runner-up in
/// 1/16 nat), or `-` when the model has no activity head or the frame no code.
fn activity_cell(frame: &Frame) -> String {
    if frame.activity == 0 {
        return "-".into();
    }
    let name = crate::data::activity_name(frame.activity);
    format!("{name} {:>3}", frame.activity_score)
}

/// One table row: sequence, time, flags, predicted activity and its score, active count
/// and a J-character activity strip.
pub fn table_row(frame: &Frame) -> String {
    let strip: String = (0..usize::from(frame.latent_dim).min(64))
        .map(|j| {
            if frame.spike_bits >> j & 1 == 1 {
                '#'
            } else {
                '.'
            }
        })
        .collect();
    let top: Vec<String> = frame
        .active()
        .map(|(j, g, m)| format!("{j}:{g:.2}/{m:+.2}"))
        .take(6)
        .collect();
    format!(
        "{:>6} {:>10.2} {:<10} {:<22} {:>3}  {}  {}",
        frame.sequence,
        f64::from(frame.timestamp_ms) / 1000.0,
        flag_names(frame.flags),
        activity_cell(frame),
        frame.spike_bits.count_ones(),
        strip,
        top.join(" ")
    )
}

fn flag_names(bits: u8) -> String {
    let names: Vec<&str> = flags::NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| bits >> bit & 1 == 1)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "-".into()
    } else {
        names.join(",")
    }
}

fn csv_header(latent_dim: usize) -> String {
    let mut h = String::from(
        "sequence,timestamp_ms,flags,latent_dim,active,spike_bits,activity,activity_score",
    );
    for j in 0..latent_dim {
        h.push_str(&format!(",gamma_{j}"));
    }
    for j in 0..latent_dim {
        h.push_str(&format!(",mu_{j}"));
    }
    h
}

/// A CSV row with dense γ and μ (0 for inactive dimensions) for `latent_dim` dimensions.
fn csv_row(frame: &Frame, latent_dim: usize) -> String {
    let mut gamma = vec![0f32; latent_dim];
    let mut mu = vec![0f32; latent_dim];
    for (j, g, m) in frame.active() {
        if j < latent_dim {
            gamma[j] = g;
            mu[j] = m;
        }
    }
    let mut row = format!(
        "{},{},{},{},{},{:#x},{},{}",
        frame.sequence,
        frame.timestamp_ms,
        frame.flags,
        frame.latent_dim,
        frame.spike_bits.count_ones(),
        frame.spike_bits,
        frame.activity,
        frame.activity_score
    );
    for v in gamma.iter().chain(&mu) {
        row.push_str(&format!(",{v}"));
    }
    row
}

/// Decoded frames → table rows, CSV lines and counts: the one sink of every input.
pub struct Listener<'w> {
    table: Option<&'w mut dyn Write>,
    csv: Option<&'w mut dyn Write>,
    csv_dims: Option<usize>,
    last_sequence: Option<u32>,
    summary: ListenSummary,
}

impl<'w> Listener<'w> {
    /// Prints the table header to `table` (if any); the CSV header comes with the first
    /// frame, sized by its `latent_dim`.
    pub fn new(
        mut table: Option<&'w mut dyn Write>,
        csv: Option<&'w mut dyn Write>,
    ) -> io::Result<Self> {
        if let Some(t) = table.as_mut() {
            writeln!(
                t,
                "{:>6} {:>10} {:<10} {:<22} {:>3}  active dimensions",
                "seq", "t [s]", "flags", "activity  score", "n"
            )?;
        }
        Ok(Listener {
            table,
            csv,
            csv_dims: None,
            last_sequence: None,
            summary: ListenSummary::default(),
        })
    }

    /// One decoded frame: a table row, a CSV line, the counts.
    pub fn frame(&mut self, frame: &Frame) -> io::Result<()> {
        let summary = &mut self.summary;
        summary.frames += 1;
        if frame.flags != 0 {
            summary.flagged_frames += 1;
        }
        if let Some(prev) = self.last_sequence {
            let gap = frame.sequence.wrapping_sub(prev).wrapping_sub(1);
            // A restart (sequence back to 0) is not a loss.
            if frame.sequence != 0 && gap < u32::MAX / 2 {
                summary.lost_frames += u64::from(gap);
            }
        }
        self.last_sequence = Some(frame.sequence);
        if let Some(t) = self.table.as_mut() {
            writeln!(t, "{}", table_row(frame))?;
            t.flush()?;
        }
        if let Some(c) = self.csv.as_mut() {
            let dims = match self.csv_dims {
                Some(dims) => dims,
                None => {
                    let dims = usize::from(frame.latent_dim);
                    writeln!(c, "{}", csv_header(dims))?;
                    *self.csv_dims.insert(dims)
                }
            };
            writeln!(c, "{}", csv_row(frame, dims))?;
        }
        Ok(())
    }

    /// The counts so far; `rejected_chunks` and `duplicate_frames` come from the decoder.
    pub fn summary(&self) -> ListenSummary {
        self.summary
    }
}

/// Decodes `input` until EOF; prints a row per frame to `table` (if any) and a CSV line
/// to `csv` (if any; the header comes with the first frame, sized by its `latent_dim`).
pub fn listen<'w>(
    mut input: impl Read,
    table: Option<&'w mut dyn Write>,
    csv: Option<&'w mut dyn Write>,
) -> io::Result<ListenSummary> {
    let mut decoder = FrameDecoder::new();
    let mut listener = Listener::new(table, csv)?;
    let mut buffer = [0u8; 4096];
    loop {
        let n = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for &byte in &buffer[..n] {
            if let Some(Ok(frame)) = decoder.push(byte) {
                listener.frame(&frame)?;
            }
        }
    }
    let mut summary = listener.summary();
    summary.rejected_chunks = decoder.rejected_chunks;
    Ok(summary)
}

/// Set by the first SIGINT/SIGTERM once [`run`] has installed its handler; live inputs
/// end at it.
static STOP: AtomicBool = AtomicBool::new(false);

/// Makes the first Ctrl-C (or SIGTERM) set [`STOP`], and a second one exit at once, so a
/// stuck device or link can still be interrupted.
fn install_stop_handler() {
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Failure leaves the default action (terminate): listening still works, only the
        // CSV of a live session stays in its temporary file. The shutdown action comes
        // first so that it sees the flag as the previous signal left it.
        let _ = signal_hook::flag::register_conditional_shutdown(signal, 130, &STOP);
        let _ = signal_hook::flag::register(signal, &STOP);
    }
}

/// Whether Ctrl-C was pressed since [`install_stop_handler`].
fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// The byte stream `args.input` names: stdin, a file, or a serial device in raw mode.
/// Reads from a live source return end-of-file once Ctrl-C was pressed.
pub fn open_input(args: &ListenArgs) -> Result<Box<dyn Read + Send>, ListenError> {
    let read_err = |source| ListenError::Read {
        path: args.input.clone(),
        source,
    };
    if args.input == Path::new("-") {
        return Ok(stoppable(io::stdin()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        match std::fs::metadata(&args.input) {
            Ok(meta) if meta.file_type().is_char_device() => {
                return Ok(stoppable(serial::open(&args.input, args.baud)?));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && args.input.starts_with("/dev") => {
                return Err(ListenError::DeviceMissing {
                    path: args.input.clone(),
                });
            }
            _ => {}
        }
    }
    Ok(Box::new(File::open(&args.input).map_err(read_err)?))
}

#[cfg(unix)]
fn stoppable<R: Read + std::os::fd::AsFd + Send + 'static>(inner: R) -> Box<dyn Read + Send> {
    Box::new(Stoppable { inner })
}

#[cfg(not(unix))]
fn stoppable<R: Read + Send + 'static>(inner: R) -> Box<dyn Read + Send> {
    Box::new(inner)
}

/// A reader that waits for data in short slices, so Ctrl-C ends a blocked read.
#[cfg(unix)]
struct Stoppable<R> {
    inner: R,
}

#[cfg(unix)]
impl<R: Read + std::os::fd::AsFd> Read for Stoppable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let slice = Timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        loop {
            if stop_requested() {
                return Ok(0);
            }
            let mut fds = [PollFd::new(&self.inner, PollFlags::IN)];
            match poll(&mut fds, Some(&slice)) {
                Ok(0) | Err(rustix::io::Errno::INTR) => continue,
                // Readable, hung up or in error: the read says which.
                Ok(_) => return self.inner.read(buf),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

enum Source {
    Bytes(Box<dyn Read + Send>),
    Ble(ble::BleTarget),
}

/// `vsc listen`.
pub fn run(args: &ListenArgs) -> Result<ListenSummary, ListenError> {
    install_stop_handler();
    // Opened before the CSV is created, so a missing device leaves no temporary file.
    let source = match &args.ble {
        Some(target) => Source::Ble(ble::BleTarget::parse(target)),
        None => Source::Bytes(open_input(args)?),
    };
    let stdout = io::stdout();
    let mut stdout = stdout.lock();
    let table: Option<&mut dyn Write> = if args.quiet { None } else { Some(&mut stdout) };

    // CSV goes to a temporary file renamed at the end, so a partial file never looks
    // complete.
    let csv_tmp = args.csv.as_ref().map(|p| p.with_extension("csv.tmp"));
    let mut csv_file = match &csv_tmp {
        Some(tmp) => Some(BufWriter::new(File::create(tmp).map_err(|source| {
            ListenError::Write {
                path: tmp.clone(),
                source,
            }
        })?)),
        None => None,
    };
    let csv: Option<&mut dyn Write> = csv_file.as_mut().map(|w| w as &mut dyn Write);
    let summary = match source {
        Source::Bytes(input) => listen(input, table, csv).map_err(|source| ListenError::Read {
            path: args.input.clone(),
            source,
        }),
        Source::Ble(target) => ble::run(
            &target,
            std::time::Duration::from_secs(args.scan_timeout),
            table,
            csv,
            &stop_requested,
        )
        .map_err(ListenError::from),
    };
    let summary = match summary {
        Ok(summary) => summary,
        Err(e) => {
            // Nothing complete to keep; the temporary file would only be litter.
            if let Some(tmp) = &csv_tmp {
                drop(csv_file);
                let _ = std::fs::remove_file(tmp);
            }
            return Err(e);
        }
    };
    if let (Some(mut w), Some(tmp), Some(out)) = (csv_file, csv_tmp, args.csv.as_ref()) {
        let write_err = |source| ListenError::Write {
            path: out.clone(),
            source,
        };
        w.flush().map_err(write_err)?;
        drop(w);
        std::fs::rename(&tmp, out).map_err(write_err)?;
    }
    let repeated = match summary.duplicate_frames {
        0 => String::new(),
        n => format!(", {n} repeated frames dropped"),
    };
    eprintln!(
        "{} frames ({} flagged), {} rejected chunks, {} frames lost (sequence gaps){repeated}",
        summary.frames, summary.flagged_frames, summary.rejected_chunks, summary.lost_frames
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_runtime::frame::MAX_WIRE_LEN;

    fn frame(sequence: u32, active: &[usize]) -> Frame {
        let mut f = Frame::without_code(sequence, sequence * 1280, 0, 8);
        f.flags = if sequence == 3 { flags::SATURATED } else { 0 };
        f.mu_scale = 0.5;
        // Frames 0 and 1 come from a model without an activity head.
        if sequence >= 2 {
            f.activity = 1 + (sequence % 6) as u8;
            f.activity_score = 10 * sequence as i8;
        }
        for (k, &j) in active.iter().enumerate() {
            f.spike_bits |= 1 << j;
            f.gamma_q15.push(20000 + k as i16).unwrap();
            f.mu_q.push(k as i16 - 2).unwrap();
        }
        f
    }

    fn wire(f: &Frame) -> Vec<u8> {
        let mut out = [0u8; MAX_WIRE_LEN];
        let n = f.encode(&mut out).unwrap();
        out[..n].to_vec()
    }

    #[test]
    fn listens_through_garbage_and_writes_csv() {
        let frames: Vec<Frame> = (0..6u32)
            .filter(|&s| s != 4) // frame 4 is "lost"
            .map(|s| frame(s, &[1, (s as usize) % 8]))
            .map(|mut f| {
                if f.gamma_q15.len() > f.spike_bits.count_ones() as usize {
                    f.gamma_q15.pop();
                    f.mu_q.pop();
                }
                f
            })
            .collect();
        let mut stream = b"boot log line\n".to_vec();
        for (k, f) in frames.iter().enumerate() {
            stream.extend_from_slice(&[0xAB, 0x00, 0x13, 0x37][..k % 4]);
            let w = wire(f);
            if k == 2 {
                stream.extend_from_slice(&w[..w.len() - 5]); // truncated copy
            }
            stream.extend_from_slice(&w);
        }
        let mut table = Vec::new();
        let mut csv = Vec::new();
        let summary = listen(
            stream.as_slice(),
            Some(&mut table as &mut dyn Write),
            Some(&mut csv as &mut dyn Write),
        )
        .unwrap();
        assert_eq!(summary.frames, 5);
        assert_eq!(summary.lost_frames, 1);
        assert_eq!(summary.flagged_frames, 1);
        assert!(summary.rejected_chunks >= 2);

        let table = String::from_utf8(table).unwrap();
        assert_eq!(table.lines().count(), 6);
        assert!(table.contains("saturated"));
        assert!(table.lines().nth(2).unwrap().contains(" .#...... "));
        // Frame 2 predicts activity 3 with score 20; frame 1 has no head.
        assert!(
            table
                .lines()
                .nth(3)
                .unwrap()
                .contains("WALKING_DOWNSTAIRS  20")
        );
        assert!(table.lines().nth(2).unwrap().contains(" - "));

        let csv = String::from_utf8(csv).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[0].split(',').count(), 8 + 2 * 8);
        assert!(lines[0].starts_with("sequence,timestamp_ms,flags,latent_dim,active,spike_bits,activity,activity_score,gamma_0"));
        // Frame 2: dims 1 and 2 active, γ = 20000/32768 and 20001/32768, μ = −1, −0.5.
        let row: Vec<&str> = lines[3].split(',').collect();
        assert_eq!(row[0], "2");
        assert_eq!(row[4], "2");
        assert_eq!((row[6], row[7]), ("3", "20"));
        let gamma1: f32 = row[8 + 1].parse().unwrap();
        assert!((gamma1 - 20000.0 / 32768.0).abs() < 1e-6);
        let mu2: f32 = row[8 + 8 + 2].parse().unwrap();
        assert_eq!(mu2, -0.5);
        assert_eq!(row[8], "0");
    }

    #[test]
    fn missing_input_names_the_file() {
        let args = ListenArgs {
            input: PathBuf::from("/nonexistent/vsc-frames.bin"),
            csv: None,
            quiet: true,
            baud: 115_200,
            ble: None,
            scan_timeout: 1,
        };
        let err = run(&args).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/vsc-frames.bin"), "{err}");
    }

    #[test]
    fn ble_takes_an_optional_target_and_excludes_an_input() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            listen: ListenArgs,
        }
        let parse = |argv: &[&str]| Cli::try_parse_from(argv).map(|c| c.listen);
        let plain = parse(&["vsc"]).unwrap();
        assert_eq!((plain.input, plain.ble), (PathBuf::from("-"), None));
        assert_eq!(parse(&["vsc", "--ble"]).unwrap().ble.as_deref(), Some(""));
        let named = parse(&["vsc", "--ble", "VSC-1A2B3C", "--csv", "c.csv"]).unwrap();
        assert_eq!(named.ble.as_deref(), Some("VSC-1A2B3C"));
        assert_eq!(named.csv, Some(PathBuf::from("c.csv")));
        let serial = parse(&["vsc", "/dev/ttyACM0", "--baud", "9600"]).unwrap();
        assert_eq!((serial.baud, serial.ble), (9600, None));
        assert!(parse(&["vsc", "frames.bin", "--ble"]).is_err());
    }

    #[test]
    fn a_failed_session_leaves_no_csv_behind() {
        // Reading a directory fails after it was opened, i.e. after the CSV was created.
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("codes.csv");
        let args = ListenArgs {
            input: dir.path().to_path_buf(),
            csv: Some(csv.clone()),
            quiet: true,
            baud: 115_200,
            ble: None,
            scan_timeout: 1,
        };
        let err = run(&args).unwrap_err().to_string();
        assert!(err.contains("cannot read"), "{err}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
