//! `vsc listen [FILE|-|/dev/tty…]`: decodes the device's framed code stream, prints a
//! live table (one row per window: time, flags, which latent dimensions are active) and
//! can write every frame to CSV.
//!
//! Garbage, truncated and corrupted frames between valid ones are skipped (see
//! [`edge_runtime::frame`]). A serial port must be configured beforehand, e.g.
//! `stty -F /dev/ttyACM0 115200 raw`; the firmware under QEMU writes to stdout, so
//! `cargo xtask firmware --run` output can also be piped in.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use edge_runtime::frame::{Frame, FrameDecoder, flags};

/// Arguments of `vsc listen`.
#[derive(clap::Args, Debug, Clone)]
pub struct ListenArgs {
    /// Byte stream to read: a file, `-` for stdin, or a serial device.
    #[arg(default_value = "-")]
    pub input: PathBuf,
    /// Also write every decoded frame to this CSV file (dense γ and μ per dimension).
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Do not print the table (e.g. with `--csv` only).
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: cannot write: {source}")]
    Write { path: PathBuf, source: io::Error },
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
}

/// One table row: sequence, time, flags, active count and a J-character activity strip.
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
        "{:>6} {:>10.2} {:<10} {:>3}  {}  {}",
        frame.sequence,
        f64::from(frame.timestamp_ms) / 1000.0,
        flag_names(frame.flags),
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
    let mut h = String::from("sequence,timestamp_ms,flags,latent_dim,active,spike_bits");
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
        "{},{},{},{},{},{:#x}",
        frame.sequence,
        frame.timestamp_ms,
        frame.flags,
        frame.latent_dim,
        frame.spike_bits.count_ones(),
        frame.spike_bits
    );
    for v in gamma.iter().chain(&mu) {
        row.push_str(&format!(",{v}"));
    }
    row
}

/// Decodes `input` until EOF; prints a row per frame to `table` (if any) and a CSV line
/// to `csv` (if any; the header comes with the first frame, sized by its `latent_dim`).
pub fn listen(
    mut input: impl Read,
    mut table: Option<&mut dyn Write>,
    mut csv: Option<&mut dyn Write>,
) -> io::Result<ListenSummary> {
    let mut decoder = FrameDecoder::new();
    let mut summary = ListenSummary::default();
    let mut last_sequence: Option<u32> = None;
    let mut csv_dims: Option<usize> = None;
    let mut buffer = [0u8; 4096];
    if let Some(t) = table.as_mut() {
        writeln!(
            t,
            "{:>6} {:>10} {:<10} {:>3}  active dimensions",
            "seq", "t [s]", "flags", "n"
        )?;
    }
    loop {
        let n = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for &byte in &buffer[..n] {
            let Some(Ok(frame)) = decoder.push(byte) else {
                continue;
            };
            summary.frames += 1;
            if frame.flags != 0 {
                summary.flagged_frames += 1;
            }
            if let Some(prev) = last_sequence {
                let gap = frame.sequence.wrapping_sub(prev).wrapping_sub(1);
                // A restart (sequence back to 0) is not a loss.
                if frame.sequence != 0 && gap < u32::MAX / 2 {
                    summary.lost_frames += u64::from(gap);
                }
            }
            last_sequence = Some(frame.sequence);
            if let Some(t) = table.as_mut() {
                writeln!(t, "{}", table_row(&frame))?;
                t.flush()?;
            }
            if let Some(c) = csv.as_mut() {
                let dims = *csv_dims.get_or_insert_with(|| {
                    let dims = usize::from(frame.latent_dim);
                    let _ = writeln!(c, "{}", csv_header(dims));
                    dims
                });
                writeln!(c, "{}", csv_row(&frame, dims))?;
            }
        }
    }
    summary.rejected_chunks = decoder.rejected_chunks;
    Ok(summary)
}

/// `vsc listen`.
pub fn run(args: &ListenArgs) -> Result<ListenSummary, ListenError> {
    let read_err = |source| ListenError::Read {
        path: args.input.clone(),
        source,
    };
    let input: Box<dyn Read> = if args.input == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(&args.input).map_err(read_err)?)
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
    let summary = listen(input, table, csv).map_err(read_err)?;
    if let (Some(mut w), Some(tmp), Some(out)) = (csv_file, csv_tmp, args.csv.as_ref()) {
        let write_err = |source| ListenError::Write {
            path: out.clone(),
            source,
        };
        w.flush().map_err(write_err)?;
        drop(w);
        std::fs::rename(&tmp, out).map_err(write_err)?;
    }
    eprintln!(
        "{} frames ({} flagged), {} rejected chunks, {} frames lost (sequence gaps)",
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

        let csv = String::from_utf8(csv).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[0].split(',').count(), 6 + 2 * 8);
        // Frame 2: dims 1 and 2 active, γ = 20000/32768 and 20001/32768, μ = −1, −0.5.
        let row: Vec<&str> = lines[3].split(',').collect();
        assert_eq!(row[0], "2");
        assert_eq!(row[4], "2");
        let gamma1: f32 = row[6 + 1].parse().unwrap();
        assert!((gamma1 - 20000.0 / 32768.0).abs() < 1e-6);
        let mu2: f32 = row[6 + 8 + 2].parse().unwrap();
        assert_eq!(mu2, -0.5);
        assert_eq!(row[6], "0");
    }

    #[test]
    fn missing_input_names_the_file() {
        let args = ListenArgs {
            input: PathBuf::from("/nonexistent/vsc-frames.bin"),
            csv: None,
            quiet: true,
        };
        let err = run(&args).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/vsc-frames.bin"), "{err}");
    }
}
