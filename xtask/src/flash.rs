//! `cargo xtask flash --board NAME [--model FILE.vscq] [--model-only]`: writes the model
//! region and the firmware through a debug probe with probe-rs, then shows the board's
//! defmt log.
//!
//! The model goes first, as a plain binary at the board's model region (`MODEL` in its
//! `memory.x`); the firmware ELF holds nothing there, so flashing the firmware leaves the
//! model alone and `--model-only` leaves the firmware alone.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use edge_runtime::blob::ModelBlob;

use crate::firmware::{self, Board, Region};
use crate::test::{in_ci, run_step, workspace_root};
use crate::uf2::Chunk;

/// nRF52840 flash page: the unit probe-rs erases.
pub const FLASH_PAGE: usize = 4096;
/// probe-rs's name of the boards' chip.
pub const PROBE_RS_CHIP: &str = "nRF52840_xxAA";
/// The probe-rs release the commands below are written for.
pub const PROBE_RS_VERSION: &str = "0.32";

#[derive(clap::Args, Debug, Clone)]
pub struct FlashArgs {
    /// The board.
    #[arg(long, value_enum)]
    pub board: Board,
    /// Model blob for the model region (default: the first `models/*.vscq`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Only write the model region (replaces the encoder; the firmware stays).
    #[arg(long)]
    pub model_only: bool,
    /// Which probe, when several are attached (`VID:PID[:SERIAL]`, see `probe-rs list`).
    #[arg(long)]
    pub probe: Option<String>,
}

/// `--model`, else the first `models/*.vscq`.
pub fn model_path(cli: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = cli {
        return fs::canonicalize(path).with_context(|| path.display().to_string());
    }
    let models = workspace_root().join("models");
    let mut blobs: Vec<PathBuf> = fs::read_dir(&models)
        .with_context(|| models.display().to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "vscq"))
        .collect();
    blobs.sort();
    blobs.into_iter().next().with_context(|| {
        format!(
            "no model: pass --model FILE.vscq or quantise one into {}",
            models.display()
        )
    })
}

/// The bytes to write at the model region: the validated blob, padded with erased flash
/// (`0xFF`) to whole flash pages. Fails, naming `source`, if the blob is invalid or larger
/// than the region.
pub fn model_image(blob: &[u8], region: Region, source: &Path) -> Result<Chunk> {
    let parsed =
        ModelBlob::parse(blob).map_err(|e| anyhow::anyhow!("{}: {e}", source.display()))?;
    ensure!(
        blob.len() as u64 <= region.length,
        "{}: the model is {} bytes, the board's model region {} bytes",
        source.display(),
        blob.len(),
        region.length
    );
    ensure!(
        region.origin.is_multiple_of(4),
        "model region at {:#x} is not word-aligned (the SMLAD kernel loads weights with LDRD)",
        region.origin
    );
    let padded_len = blob.len().div_ceil(FLASH_PAGE) * FLASH_PAGE;
    let mut bytes = blob.to_vec();
    bytes.resize(padded_len.min(region.length as usize), 0xFF);
    // What the firmware will find there at boot.
    let found = edge_runtime::device::model_in_region(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {}", source.display(), e.reason()))?;
    ensure!(
        found.crc() == parsed.crc(),
        "model image does not read back"
    );
    Ok(Chunk {
        address: u32::try_from(region.origin).context("model region above 4 GiB")?,
        bytes,
    })
}

/// Whether `probe-rs list` found a probe: it prints one `[N]: …` line per probe.
pub fn probes_listed(list_output: &str) -> usize {
    list_output
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with('[')
                && l[1..]
                    .split_once(']')
                    .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .count()
}

fn probe_rs_installed() -> bool {
    Command::new("probe-rs")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs probe-rs (only here, for flashing: CI never needs it).
fn ensure_probe_rs() -> Result<()> {
    if probe_rs_installed() {
        return Ok(());
    }
    ensure!(
        !in_ci(),
        "probe-rs is not installed, and CI never flashes a board"
    );
    eprintln!("probe-rs is missing; installing probe-rs-tools {PROBE_RS_VERSION} (a few minutes)");
    run_step(
        "cargo install probe-rs-tools",
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args([
            "install",
            "probe-rs-tools",
            "--version",
            &format!("^{PROBE_RS_VERSION}"),
            "--locked",
        ]),
    )
}

fn probe_args(args: &FlashArgs) -> Vec<String> {
    let mut out = vec!["--chip".to_string(), PROBE_RS_CHIP.to_string()];
    if let Some(probe) = &args.probe {
        out.extend(["--probe".to_string(), probe.clone()]);
    }
    out
}

/// `cargo xtask flash`.
pub fn run(args: &FlashArgs) -> Result<()> {
    ensure!(
        args.board.is_nrf(),
        "the qemu board is not flashed: `cargo xtask firmware --board qemu --run` runs it"
    );
    let memory = args.board.memory()?;
    let model_path = model_path(args.model.as_deref())?;
    let blob = fs::read(&model_path).with_context(|| model_path.display().to_string())?;
    let model = model_image(&blob, memory.model, &model_path)?;
    if !args.model_only {
        firmware::build_board(args.board)?;
    }

    ensure_probe_rs()?;
    let list = Command::new("probe-rs")
        .arg("list")
        .output()
        .context("could not run `probe-rs list`")?;
    let listed = String::from_utf8_lossy(&list.stdout).into_owned();
    if probes_listed(&listed) == 0 {
        bail!(
            "no debug probe attached (`probe-rs list` found none).\n\
             Connect a CMSIS-DAP, J-Link or ST-Link probe to the board's SWD pads (SWDIO, \
             SWCLK, GND, 3V3) and plug the board into USB.{}",
            if args.board == Board::XiaoSense {
                "\nWithout a probe, use the XIAO's UF2 bootloader: `cargo xtask uf2 --board \
                 xiao-sense` and copy the file onto its drive."
            } else {
                ""
            }
        );
    }

    let image = firmware::target_dir().join(format!("{}-model.bin", args.board.name()));
    fs::write(&image, &model.bytes).with_context(|| image.display().to_string())?;
    run_step(
        "probe-rs download (model region)",
        Command::new("probe-rs")
            .arg("download")
            .args(probe_args(args))
            .args(["--binary-format", "bin", "--base-address"])
            .arg(format!("{:#x}", model.address))
            .arg(&image),
    )?;
    eprintln!(
        "model {} ({} bytes) written at {:#x}",
        model_path.display(),
        blob.len(),
        model.address
    );
    if args.model_only {
        return run_step(
            "probe-rs reset",
            Command::new("probe-rs").arg("reset").args(probe_args(args)),
        );
    }
    // Flashes the firmware, resets, and prints the defmt log until Ctrl-C.
    eprintln!("flashing the firmware; its log follows (Ctrl-C to stop watching)");
    run_step(
        "probe-rs run",
        Command::new("probe-rs")
            .arg("run")
            .args(probe_args(args))
            .arg(args.board.elf()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_runtime::preprocess::{ChannelSet, WINDOW_LEN};

    fn blob() -> Vec<u8> {
        let f32_encoder = edge_runtime::F32Encoder::random(ChannelSet::ALL, WINDOW_LEN, 16, 8, 1);
        let windows = vec![vec![0.25f32; ChannelSet::ALL.len() * WINDOW_LEN]; 2];
        edge_runtime::quant::quantise(&f32_encoder, &windows).unwrap()
    }

    const REGION: Region = Region {
        origin: 0xAD000,
        length: 0x40000,
    };

    #[test]
    fn the_model_image_is_the_blob_padded_to_erased_pages() {
        let blob = blob();
        let image = model_image(&blob, REGION, Path::new("m.vscq")).unwrap();
        assert_eq!(image.address, 0xAD000);
        assert_eq!(image.bytes.len() % FLASH_PAGE, 0);
        assert!(image.bytes.len() >= blob.len() && image.bytes.len() < blob.len() + FLASH_PAGE);
        assert_eq!(&image.bytes[..blob.len()], &blob[..]);
        assert!(image.bytes[blob.len()..].iter().all(|&b| b == 0xFF));
        // The firmware finds the same model in the flashed region.
        let mut region = image.bytes.clone();
        region.resize(REGION.length as usize, 0xFF);
        let found = edge_runtime::device::model_in_region(&region).unwrap();
        assert_eq!(found.as_bytes(), &blob[..]);
    }

    #[test]
    fn an_invalid_or_oversized_model_is_refused_with_its_file_name() {
        let mut bad = blob();
        bad[60] ^= 0xFF;
        let err = model_image(&bad, REGION, Path::new("models/bad.vscq")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("models/bad.vscq") && text.contains("CRC"),
            "{text}"
        );

        let small = Region {
            origin: 0xAD000,
            length: 1024,
        };
        let err = model_image(&blob(), small, Path::new("m.vscq")).unwrap_err();
        assert!(err.to_string().contains("model region 1024 bytes"), "{err}");
    }

    #[test]
    fn probe_lists_are_counted() {
        let none = "No debug probes were found.\n";
        let two = "The following debug probes were found:\n\
                   [0]: J-Link (J-Link) (VID: 1366, PID: 0101, Serial: 000123456789, JLink)\n\
                   [1]: CMSIS-DAP (VID: 2e8a, PID: 000c, Serial: E6614C311B, CmsisDap)\n";
        assert_eq!(probes_listed(none), 0);
        assert_eq!(probes_listed(""), 0);
        assert_eq!(probes_listed(two), 2);
        assert_eq!(probes_listed("[x]: not a probe\n[]: nor this"), 0);
    }
}
