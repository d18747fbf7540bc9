//! `cargo xtask firmware --board NAME [--run | --golden]`, the firmware checks of CI and
//! `cargo xtask bench mcu`.
//!
//! Boards (`firmware-example/boards/NAME`, each a small crate around the shared device
//! loop): `qemu` (mps2-an386 under QEMU, a replayed MPU-6050, frames on semihosting),
//! `xiao-sense` (Seeed XIAO nRF52840 Sense) and `nano33-ble-sense-rev2` (Arduino Nano 33
//! BLE Sense Rev2). Every board builds in release for thumbv7em-none-eabihf into
//! `target/firmware`, and its size report is checked against
//! `firmware-example/size-budget.toml`.
//!
//! For `qemu`:
//! 1. Cuts a short excerpt of a test subject's HAPT recording (user 2, experiment 3) and
//!    stores it as MPU-6050 register values (`target/firmware/excerpt.bin`), so the
//!    firmware's sensor driver scales real counts.
//! 2. Links the chosen model blob into the board's model region.
//! 3. With `--run` (and in the golden check), runs it under
//!    `qemu-system-arm -machine mps2-an386`, decodes the frames on its stdout and, for the
//!    golden check, demands they equal what edge-runtime computes on the host.
//!
//! The nRF boards' firmware holds no model (it lives in its own flash region, written by
//! `cargo xtask flash` / `cargo xtask uf2`); they link with flip-link (installed here when
//! missing) and need libclang for the SoftDevice Controller's bindings (Debian's `clang`,
//! installed here when root).

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use edge_runtime::blob::ModelBlob;
use edge_runtime::encoder::Encoder;
use edge_runtime::frame::{Frame, FrameDecoder, flags};
use edge_runtime::preprocess::{ChannelSet, ImuSample, WINDOW_LEN, windows_of_recording};
use edge_runtime::sensor::{AccelRange, Excerpt, GyroRange, Mpu6050Config, RawSample};
use edge_runtime::stream::{self, WindowEncoder};

use crate::elf::ElfSizes;
use crate::test::{
    THUMB_TARGET, ensure_qemu, ensure_rust_tools, is_root, run_step, workspace_root,
};

/// HAPT user of the excerpt: a UCI HAR *test* subject, so the model never trained on it.
pub const EXCERPT_USER: u8 = 2;
pub const EXCERPT_EXP: u16 = 3;
/// 0-based first sample: one window before the first WALKING run (labels.txt: 8434–9501,
/// 1-based), so the excerpt holds standing, the start of walking, and walking.
pub const EXCERPT_START: usize = 8434 - 1 - 128;
/// 512 samples at 50 Hz (10.24 s) → 7 windows.
pub const EXCERPT_SAMPLES: usize = 512;

/// Options of the QEMU board (`--board qemu`, the default).
#[derive(clap::Args, Debug, Clone)]
pub struct FirmwareArgs {
    /// Run the firmware in QEMU and print the decoded frames.
    #[arg(long)]
    pub run: bool,
    /// The CI golden check: run in QEMU and demand the host's frames, frame for frame.
    #[arg(long, conflicts_with = "run")]
    pub golden: bool,
    /// Folder holding HAPT_RawData.zip (default: $VSC_DATA_DIR, then ../shared/data).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Model blob (.vscq) to link into the QEMU board's model region. Default: the first
    /// `models/*.vscq`; without one, a randomly initialised `edge`-sized encoder (H 128,
    /// J 32, all nine channels) quantised on the excerpt's windows
    /// (`target/firmware/random-edge.vscq`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Seconds before QEMU is stopped.
    #[arg(long, default_value_t = 120)]
    pub timeout_s: u64,
}

#[derive(clap::Args, Debug, Clone)]
pub struct BenchMcuArgs {
    #[command(flatten)]
    pub firmware: FirmwareArgs,
    /// Also print where an encode's instructions go: executed instructions per encode
    /// summed per function of the firmware ELF (inlined code counts for its caller).
    #[arg(long)]
    pub profile: bool,
    /// Functions listed by --profile (the rest are summed in one line).
    #[arg(long, default_value_t = 15)]
    pub top: usize,
}

pub(crate) fn firmware_dir() -> PathBuf {
    workspace_root().join("firmware-example")
}

pub fn target_dir() -> PathBuf {
    workspace_root().join("target/firmware")
}

/// The QEMU board's ELF (`cargo xtask bench mcu` reads its symbols).
fn elf_path() -> PathBuf {
    Board::Qemu.elf()
}

/// The boards of `firmware-example/boards/`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Board {
    /// QEMU's mps2-an386 (Cortex-M4): a replayed MPU-6050, frames on semihosting.
    #[default]
    #[value(name = "qemu")]
    Qemu,
    /// Seeed XIAO nRF52840 Sense: LSM6DS3TR-C, BLE, USB; UF2 bootloader.
    #[value(name = "xiao-sense")]
    XiaoSense,
    /// Arduino Nano 33 BLE Sense Rev2: BMI270, BLE, USB.
    #[value(name = "nano33-ble-sense-rev2")]
    Nano33BleSenseRev2,
}

impl Board {
    pub const ALL: [Board; 3] = [Board::Qemu, Board::XiaoSense, Board::Nano33BleSenseRev2];

    pub const fn name(self) -> &'static str {
        match self {
            Board::Qemu => "qemu",
            Board::XiaoSense => "xiao-sense",
            Board::Nano33BleSenseRev2 => "nano33-ble-sense-rev2",
        }
    }

    pub const fn is_nrf(self) -> bool {
        !matches!(self, Board::Qemu)
    }

    /// Its crate (and binary) name.
    pub fn package(self) -> String {
        format!("vsc-fw-{}", self.name())
    }

    /// Its folder: cargo runs there, so its `.cargo/config.toml` (linker, runner) applies.
    pub fn dir(self) -> PathBuf {
        firmware_dir().join("boards").join(self.name())
    }

    /// Its cargo target folder. The nRF boards link with flip-link and QEMU's does not;
    /// cargo counts the linker in every artifact's fingerprint, so sharing one folder would
    /// rebuild all common dependencies at each switch.
    pub fn target_dir(self) -> PathBuf {
        match self {
            Board::Qemu => target_dir(),
            _ => target_dir().join("nrf"),
        }
    }

    pub fn elf(self) -> PathBuf {
        self.target_dir()
            .join(THUMB_TARGET)
            .join("release")
            .join(self.package())
    }

    /// Flash, model region and RAM, as its `memory.x` lays them out.
    pub fn memory(self) -> Result<MemoryMap> {
        let path = self.dir().join("memory.x");
        let text = fs::read_to_string(&path).with_context(|| path.display().to_string())?;
        parse_memory_x(&text).with_context(|| path.display().to_string())
    }
}

/// One `MEMORY` region of a linker script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub origin: u64,
    pub length: u64,
}

/// The `FLASH`, `MODEL` and `RAM` regions of a board's `memory.x`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryMap {
    pub flash: Region,
    pub model: Region,
    pub ram: Region,
}

/// A linker-script number expression as `memory.x` writes them: terms joined by `+` and
/// `-`, each decimal or `0x` hex with an optional `K` or `M` suffix.
fn linker_expr(expr: &str) -> Result<u64> {
    let mut total: i128 = 0;
    let mut sign = 1i128;
    let mut expect_term = true;
    let mut rest = expr.trim();
    while !rest.is_empty() {
        if !expect_term {
            sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => bail!("expected + or - in {expr:?}"),
            };
            rest = rest[1..].trim_start();
            expect_term = true;
            continue;
        }
        let end = rest
            .find(|c: char| c == '+' || c == '-' || c.is_whitespace())
            .unwrap_or(rest.len());
        let term = &rest[..end];
        let (digits, scale) = match term.as_bytes().last() {
            Some(b'K') | Some(b'k') => (&term[..term.len() - 1], 1024),
            Some(b'M') | Some(b'm') => (&term[..term.len() - 1], 1024 * 1024),
            _ => (term, 1),
        };
        let value = match digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
        {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => digits.parse::<u64>(),
        }
        .with_context(|| format!("bad number {term:?} in {expr:?}"))?;
        total += sign * i128::from(value) * scale;
        rest = rest[end..].trim_start();
        expect_term = false;
    }
    ensure!(!expect_term, "incomplete expression {expr:?}");
    u64::try_from(total).with_context(|| format!("{expr:?} is negative"))
}

/// Finds `NAME : ORIGIN = …, LENGTH = …` for FLASH, MODEL and RAM (comments ignored).
fn parse_memory_x(text: &str) -> Result<MemoryMap> {
    let mut uncommented = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        uncommented.push_str(&rest[..start]);
        let end = rest[start..]
            .find("*/")
            .context("unterminated /* comment")?;
        rest = &rest[start + end + 2..];
    }
    uncommented.push_str(rest);
    let region = |name: &str| -> Result<Region> {
        for line in uncommented.lines() {
            let Some((head, body)) = line.split_once(':') else {
                continue;
            };
            if head.trim() != name {
                continue;
            }
            let (origin, length) = body
                .split_once(',')
                .with_context(|| format!("region {name}: expected ORIGIN = …, LENGTH = …"))?;
            let value = |part: &str, key: &str| -> Result<u64> {
                let (k, v) = part
                    .split_once('=')
                    .with_context(|| format!("region {name}: {key} = … missing"))?;
                ensure!(
                    k.trim() == key,
                    "region {name}: expected {key}, found {k:?}"
                );
                linker_expr(v).with_context(|| format!("region {name}: {key}"))
            };
            return Ok(Region {
                origin: value(origin, "ORIGIN")?,
                length: value(length, "LENGTH")?,
            });
        }
        bail!("no memory region {name}")
    };
    Ok(MemoryMap {
        flash: region("FLASH")?,
        model: region("MODEL")?,
        ram: region("RAM")?,
    })
}

/// `cargo xtask firmware`: the board, and the QEMU options.
#[derive(clap::Args, Debug, Clone)]
pub struct FirmwareCmd {
    /// Which board to build.
    #[arg(long, value_enum, default_value_t = Board::Qemu)]
    pub board: Board,
    #[command(flatten)]
    pub qemu: FirmwareArgs,
}

/// `--data`, else `$VSC_DATA_DIR`, else `../shared/data` next to the workspace.
pub fn data_dir(cli: Option<&Path>) -> Result<PathBuf> {
    match host_trainer::data::resolve_data_dir(cli) {
        Ok(dir) => Ok(dir),
        Err(e) if cli.is_none() => {
            let fallback = workspace_root().join("../shared/data");
            ensure!(fallback.exists(), "{e}");
            Ok(fallback)
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads one RawData member (`acc_exp03_user02.txt`) from the zip or an unpacked folder.
fn read_raw_member(dir: &Path, name: &str) -> Result<String> {
    let member = format!("HAPT Data Set/RawData/{name}");
    let unpacked = dir.join(&member);
    if unpacked.exists() {
        return fs::read_to_string(&unpacked).with_context(|| unpacked.display().to_string());
    }
    let zip_path = dir.join("HAPT_RawData.zip");
    let file = fs::File::open(&zip_path)
        .with_context(|| format!("{}: cannot open (set VSC_DATA_DIR)", zip_path.display()))?;
    let mut archive = zip::ZipArchive::new(file).with_context(|| zip_path.display().to_string())?;
    let mut entry = archive
        .by_name(&member)
        .with_context(|| format!("{}: no member {member}", zip_path.display()))?;
    let mut text = String::new();
    entry
        .read_to_string(&mut text)
        .with_context(|| format!("{}: {member}", zip_path.display()))?;
    Ok(text)
}

/// Rows `start..start + n` of a "x y z" file as f32 triples.
fn parse_rows(text: &str, file: &str, start: usize, n: usize) -> Result<Vec<[f32; 3]>> {
    let mut rows = Vec::with_capacity(n);
    for (line_no, line) in text.lines().enumerate().skip(start).take(n) {
        let mut row = [0f32; 3];
        let mut fields = line.split_ascii_whitespace();
        for (axis, v) in row.iter_mut().enumerate() {
            let field = fields
                .next()
                .with_context(|| format!("{file}:{}: field {} missing", line_no + 1, axis + 1))?;
            *v = field.parse::<f64>().with_context(|| {
                format!(
                    "{file}:{}: field {} {field:?} is not a number",
                    line_no + 1,
                    axis + 1
                )
            })? as f32;
        }
        rows.push(row);
    }
    ensure!(
        rows.len() == n,
        "{file}: {} lines, the excerpt needs lines {}..{}",
        text.lines().count(),
        start + 1,
        start + n
    );
    Ok(rows)
}

/// Builds the excerpt bytes from the HAPT data.
pub fn make_excerpt(data: Option<&Path>) -> Result<Vec<u8>> {
    let dir = data_dir(data)?;
    let stem = format!("exp{EXCERPT_EXP:02}_user{EXCERPT_USER:02}.txt");
    let (acc_name, gyro_name) = (format!("acc_{stem}"), format!("gyro_{stem}"));
    let acc = parse_rows(
        &read_raw_member(&dir, &acc_name)?,
        &acc_name,
        EXCERPT_START,
        EXCERPT_SAMPLES,
    )?;
    let gyro = parse_rows(
        &read_raw_member(&dir, &gyro_name)?,
        &gyro_name,
        EXCERPT_START,
        EXCERPT_SAMPLES,
    )?;
    let config = Mpu6050Config::HAR_50HZ;
    let (ar, gr): (AccelRange, GyroRange) = (config.accel_range, config.gyro_range);
    let mut bytes = Excerpt::header(
        ar,
        gr,
        EXCERPT_USER,
        EXCERPT_EXP,
        EXCERPT_START as u32,
        EXCERPT_SAMPLES as u32,
    )
    .to_vec();
    for (a, g) in acc.iter().zip(&gyro) {
        let raw = RawSample {
            acc: a.map(|v| ar.g_to_counts(v)),
            // 25 °C, as the die would read at room temperature (counts/340 + 36.53).
            temperature: -3920,
            gyro: g.map(|v| gr.rad_s_to_counts(v)),
        };
        bytes.extend_from_slice(&raw.to_registers());
    }
    Ok(bytes)
}

/// The samples the firmware's driver will produce from the excerpt (same scaling code).
pub fn excerpt_samples(excerpt: &Excerpt<'_>) -> Vec<ImuSample> {
    (0..excerpt.len())
        .filter_map(|i| excerpt.registers(i))
        .map(|r| RawSample::from_registers(r).scale(excerpt.accel_range, excerpt.gyro_range))
        .collect()
}

/// Seed of the placeholder model, so every build embeds the same one.
const RANDOM_MODEL_SEED: u64 = 6;

/// Picks the blob to embed (see [`FirmwareArgs::model`]); writes the random one if needed.
pub fn resolve_model(args: &FirmwareArgs, excerpt_bytes: &[u8]) -> Result<PathBuf> {
    if let Some(model) = &args.model {
        return fs::canonicalize(model).with_context(|| model.display().to_string());
    }
    let models = workspace_root().join("models");
    if let Ok(entries) = fs::read_dir(&models) {
        let mut blobs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "vscq"))
            .collect();
        blobs.sort();
        if let Some(first) = blobs.into_iter().next() {
            return Ok(first);
        }
    }
    let excerpt = Excerpt::parse(excerpt_bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut windows = Vec::new();
    windows_of_recording(&excerpt_samples(&excerpt), ChannelSet::ALL, |w| {
        windows.push(w.as_slice().to_vec())
    })
    .map_err(|e| anyhow::anyhow!("excerpt: {e}"))?;
    let f32_encoder =
        edge_runtime::F32Encoder::random(ChannelSet::ALL, WINDOW_LEN, 128, 32, RANDOM_MODEL_SEED);
    let blob = edge_runtime::quant::quantise(&f32_encoder, &windows)
        .map_err(|e| anyhow::anyhow!("quantising the placeholder model: {e}"))?;
    let path = target_dir().join("random-edge.vscq");
    xtask::write_atomic(&path, &blob)?;
    eprintln!(
        "note: no models/*.vscq yet; embedding a random-weight placeholder ({})",
        path.display()
    );
    Ok(path)
}

/// Writes the excerpt and builds the QEMU firmware; returns the excerpt and the model path.
pub fn build(args: &FirmwareArgs) -> Result<(Vec<u8>, PathBuf)> {
    ensure_rust_tools()?;
    let excerpt = make_excerpt(args.data.as_deref())?;
    fs::create_dir_all(target_dir())?;
    let excerpt_path = target_dir().join("excerpt.bin");
    xtask::write_atomic(&excerpt_path, &excerpt)?;
    let model = resolve_model(args, &excerpt)?;
    let mut cmd = cargo_build(Board::Qemu);
    cmd.env("VSC_FW_EXCERPT", &excerpt_path)
        .env("VSC_FW_MODEL", &model);
    eprintln!("==> [firmware build] {cmd:?}");
    let status = cmd.status().context("could not start cargo")?;
    ensure!(status.success(), "[firmware build] failed ({status})");
    Ok((excerpt, model))
}

/// `cargo build --release` of one board, from its folder.
fn cargo_build(board: Board) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "--release", "--target", THUMB_TARGET, "-p"])
        .arg(board.package())
        .current_dir(board.dir())
        .env("CARGO_TARGET_DIR", board.target_dir());
    cmd
}

/// Builds an nRF board's firmware (release); installs flip-link and libclang first when
/// missing.
pub fn build_board(board: Board) -> Result<()> {
    ensure!(
        board.is_nrf(),
        "build the qemu board with `cargo xtask firmware --board qemu`"
    );
    ensure_rust_tools()?;
    ensure_nrf_tools()?;
    fs::create_dir_all(target_dir())?;
    let mut cmd = cargo_build(board);
    let started = Instant::now();
    eprintln!("==> [firmware build {}] {cmd:?}", board.name());
    let status = cmd.status().context("could not start cargo")?;
    ensure!(
        status.success(),
        "[firmware build {}] failed ({status})",
        board.name()
    );
    eprintln!(
        "<== [firmware build {}] ok in {:.0} s",
        board.name(),
        started.elapsed().as_secs_f32()
    );
    Ok(())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// flip-link (the nRF boards' linker) and libclang (bindgen of nrf-sdc-sys/nrf-mpsl-sys).
fn ensure_nrf_tools() -> Result<()> {
    if !on_path("flip-link") {
        run_step(
            "cargo install flip-link",
            Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args([
                "install",
                "flip-link",
                "--version",
                "^0.1",
                "--locked",
            ]),
        )?;
    }
    if !on_path("clang") {
        if is_root() && Path::new("/usr/bin/apt-get").exists() {
            run_step("apt-get update", Command::new("apt-get").arg("update"))?;
            run_step(
                "apt-get install clang",
                Command::new("apt-get")
                    .args(["install", "-y", "--no-install-recommends", "clang"])
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            )?;
        } else {
            bail!(
                "the nRF boards need libclang (bindings of Nordic's SoftDevice Controller) \
                 and this user cannot install it; run:\n  sudo apt-get install -y clang"
            );
        }
    }
    Ok(())
}

fn read_blob(model: &Path) -> Result<Vec<u8>> {
    let bytes = fs::read(model).with_context(|| model.display().to_string())?;
    ModelBlob::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", model.display()))?;
    Ok(bytes)
}

/// One line of the plugin's per-address histogram, `vsc-bench: pc=0x… count=…`, as
/// `(pc, count)`; `None` for the log's other lines.
pub(crate) fn profile_line(line: &str) -> Result<Option<(u32, u64)>> {
    let Some(rest) = line.strip_prefix("vsc-bench: pc=0x") else {
        return Ok(None);
    };
    let (pc, count) = rest
        .split_once(" count=")
        .with_context(|| format!("bad profile line {line:?}"))?;
    let pc = u32::from_str_radix(pc, 16).with_context(|| format!("bad address in {line:?}"))?;
    let count = count
        .trim()
        .parse()
        .with_context(|| format!("bad count in {line:?}"))?;
    Ok(Some((pc, count)))
}

/// The plugin's per-address histogram (`vsc-bench: pc=0x… count=…` lines) summed per
/// function of the ELF, most instructions first; addresses outside every function symbol
/// are summed under "(no symbol)".
pub fn profile_by_function(elf: &[u8], plugin_log: &str) -> Result<Vec<(String, u64)>> {
    let functions = crate::elf::functions(elf)?;
    let mut totals = std::collections::HashMap::<&str, u64>::new();
    for line in plugin_log.lines() {
        let Some((pc, count)) = profile_line(line)? else {
            continue;
        };
        // The last function starting at or below `pc`, if `pc` is inside it.
        let at = functions.partition_point(|f| f.0 <= pc);
        let name = at
            .checked_sub(1)
            .map(|i| &functions[i])
            .filter(|f| pc < f.1)
            .map_or("(no symbol)", |f| f.2.as_str());
        *totals.entry(name).or_default() += count;
    }
    let mut rows: Vec<(String, u64)> = totals
        .into_iter()
        .map(|(n, c)| (n.to_string(), c))
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(rows)
}

/// The committed budgets (`firmware-example/size-budget.toml`).
#[derive(Debug, Clone)]
pub struct SizeBudget {
    /// Stack of the device loop and an encode: QEMU's painted high-water, rounded up.
    pub loop_stack_max: u64,
    pub qemu: QemuBudget,
    pub xiao_sense: NrfBudget,
    pub nano33_ble_sense_rev2: NrfBudget,
}

/// The QEMU board's budget: the program beside the model and the recording it replays.
#[derive(Debug, Clone, Copy)]
pub struct QemuBudget {
    pub code_and_constants_max: u64,
    pub ram_beyond_windows_max: u64,
    pub window_buffer_bytes: u64,
}

/// An nRF board's budget (its firmware holds no model: that has its own region).
#[derive(Debug, Clone, Copy)]
pub struct NrfBudget {
    /// text + data: code, constants and initial values in the application flash.
    pub flash_max: u64,
    /// data + bss: statics, the tasks' futures, the BLE controller's memory.
    pub static_ram_max: u64,
    /// Stack for interrupt handlers and the executor on top of the device loop's.
    pub interrupt_stack_bytes: u64,
}

impl SizeBudget {
    fn nrf(&self, board: Board) -> Option<NrfBudget> {
        match board {
            Board::Qemu => None,
            Board::XiaoSense => Some(self.xiao_sense),
            Board::Nano33BleSenseRev2 => Some(self.nano33_ble_sense_rev2),
        }
    }
}

fn budget_path() -> PathBuf {
    firmware_dir().join("size-budget.toml")
}

/// Parses the budget file's text; errors name the file and the key.
fn parse_budget(text: &str, path: &Path) -> Result<SizeBudget> {
    let root: toml::Table = text.parse().with_context(|| path.display().to_string())?;
    let get = |table: &toml::Table, section: &str, key: &str| -> Result<u64> {
        let v = table
            .get(key)
            .and_then(|v| v.as_integer())
            .with_context(|| format!("{}: integer `{section}{key}` missing", path.display(),))?;
        u64::try_from(v)
            .with_context(|| format!("{}: `{section}{key}` is negative", path.display()))
    };
    let section = |name: &str| -> Result<&toml::Table> {
        root.get(name)
            .and_then(|v| v.as_table())
            .with_context(|| format!("{}: table [{name}] missing", path.display()))
    };
    let nrf = |name: &str| -> Result<NrfBudget> {
        let t = section(name)?;
        let prefix = format!("{name}.");
        Ok(NrfBudget {
            flash_max: get(t, &prefix, "flash_max")?,
            static_ram_max: get(t, &prefix, "static_ram_max")?,
            interrupt_stack_bytes: get(t, &prefix, "interrupt_stack_bytes")?,
        })
    };
    let qemu = section("qemu")?;
    Ok(SizeBudget {
        loop_stack_max: get(&root, "", "loop_stack_max")?,
        qemu: QemuBudget {
            code_and_constants_max: get(qemu, "qemu.", "code_and_constants_max")?,
            ram_beyond_windows_max: get(qemu, "qemu.", "ram_beyond_windows_max")?,
            window_buffer_bytes: get(qemu, "qemu.", "window_buffer_bytes")?,
        },
        xiao_sense: nrf("xiao-sense")?,
        nano33_ble_sense_rev2: nrf("nano33-ble-sense-rev2")?,
    })
}

fn read_budget() -> Result<SizeBudget> {
    let path = budget_path();
    let text = fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    parse_budget(&text, &path)
}

/// Prints the QEMU board's size report; fails when a budget is exceeded. With the
/// measured stack, also checks it against the device loop's stack budget.
pub fn check_sizes(model: &Path, stack_bytes: Option<u64>) -> Result<ElfSizes> {
    let elf = fs::read(elf_path()).with_context(|| elf_path().display().to_string())?;
    let sizes = crate::elf::sizes(&elf)?;
    let budgets = read_budget()?;
    let budget = budgets.qemu;
    let blob = read_blob(model)?;
    let weights = ModelBlob::parse(&blob)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .weight_bytes() as u64;
    // The blob sits in its own flash region (replaced on its own by `flash --model-only`;
    // the nRF images carry none), and the excerpt stands in for the sensor: neither is
    // the firmware's code or constants.
    let excerpt_bytes = fs::metadata(target_dir().join("excerpt.bin"))?.len();
    let blob_bytes = blob.len() as u64;
    let flash = sizes.text + sizes.data;
    let code_and_constants = flash.saturating_sub(blob_bytes + excerpt_bytes);
    eprintln!("   text    data     bss     dec  filename");
    eprintln!(
        "{:>7} {:>7} {:>7} {:>7}  {}",
        sizes.text,
        sizes.data,
        sizes.bss,
        sizes.text + sizes.data + sizes.bss,
        elf_path().display()
    );
    eprintln!(
        "flash: {flash} B = model region {blob_bytes} B ({weights} B int8 weights) + \
         {excerpt_bytes} B sensor excerpt + {code_and_constants} B code and constants \
         (budget {} B)",
        budget.code_and_constants_max,
    );
    let mut failures = Vec::new();
    if code_and_constants > budget.code_and_constants_max {
        failures.push(format!(
            "code and constants {code_and_constants} B > budget {} B",
            budget.code_and_constants_max
        ));
    }
    if let Some(stack) = stack_bytes {
        let ram = sizes.data + sizes.bss + stack;
        let beyond = ram.saturating_sub(budget.window_buffer_bytes);
        eprintln!(
            "RAM: {ram} B = data {} + bss {} + stack high-water {stack}; beyond the {} B \
             window buffers: {beyond} B (budget {} B); device-loop stack budget {} B",
            sizes.data,
            sizes.bss,
            budget.window_buffer_bytes,
            budget.ram_beyond_windows_max,
            budgets.loop_stack_max
        );
        if beyond > budget.ram_beyond_windows_max {
            failures.push(format!(
                "RAM beyond window buffers {beyond} B > budget {} B",
                budget.ram_beyond_windows_max
            ));
        }
        if stack > budgets.loop_stack_max {
            failures.push(format!(
                "stack high-water {stack} B > loop_stack_max {} B (the nRF boards' stack \
                 check starts from it)",
                budgets.loop_stack_max
            ));
        }
    }
    ensure!(
        failures.is_empty(),
        "size budget exceeded: {}",
        failures.join("; ")
    );
    Ok(sizes)
}

/// An nRF board's size report: flash, static RAM and the stack bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NrfSizes {
    pub flash: u64,
    pub static_ram: u64,
    /// RAM left for the stack (flip-link gives the stack everything below .data/.bss).
    pub stack_room: u64,
    /// What the stack may need: the device loop's (QEMU-measured) plus the interrupt and
    /// executor margin.
    pub stack_need: u64,
}

/// Checks an nRF board's ELF against its budget and memory map. The stack bound: the
/// deepest path of the firmware is the device loop's encode, the same code QEMU runs and
/// measures (`loop_stack_max` covers QEMU's high-water, which also holds the pipeline
/// state that the nRF task keeps in .bss, so it over-counts here); on top of it at most
/// the interrupt handlers nest (the MPSL's radio handlers at priority 0, our peripherals
/// at 2, the executor's wake-ups), bounded by `interrupt_stack_bytes`.
pub fn check_board_sizes(board: Board) -> Result<NrfSizes> {
    let budgets = read_budget()?;
    let budget = budgets
        .nrf(board)
        .with_context(|| format!("{} has no nRF budget", board.name()))?;
    let memory = board.memory()?;
    let elf = fs::read(board.elf()).with_context(|| board.elf().display().to_string())?;
    let sizes = crate::elf::sizes(&elf)?;
    let report = nrf_sizes(sizes, memory, budgets.loop_stack_max, budget);
    eprintln!(
        "{}: flash {} B (text {} + data {}; budget {} B, region {} B), static RAM {} B \
         (data {} + bss {}; budget {} B), stack room {} B for a need of {} B \
         (loop {} + interrupts {}); model region {} KiB at {:#x}",
        board.name(),
        report.flash,
        sizes.text,
        sizes.data,
        budget.flash_max,
        memory.flash.length,
        report.static_ram,
        sizes.data,
        sizes.bss,
        budget.static_ram_max,
        report.stack_room,
        report.stack_need,
        budgets.loop_stack_max,
        budget.interrupt_stack_bytes,
        memory.model.length / 1024,
        memory.model.origin
    );
    let failures = nrf_failures(&report, memory, budget);
    ensure!(
        failures.is_empty(),
        "{}: size budget exceeded: {}",
        board.name(),
        failures.join("; ")
    );
    Ok(report)
}

fn nrf_sizes(sizes: ElfSizes, memory: MemoryMap, loop_stack: u64, budget: NrfBudget) -> NrfSizes {
    let static_ram = sizes.data + sizes.bss;
    NrfSizes {
        flash: sizes.text + sizes.data,
        static_ram,
        stack_room: memory.ram.length.saturating_sub(static_ram),
        stack_need: loop_stack + budget.interrupt_stack_bytes,
    }
}

fn nrf_failures(report: &NrfSizes, memory: MemoryMap, budget: NrfBudget) -> Vec<String> {
    let mut failures = Vec::new();
    if report.flash > budget.flash_max {
        failures.push(format!(
            "flash {} B > budget {} B",
            report.flash, budget.flash_max
        ));
    }
    if report.flash > memory.flash.length {
        failures.push(format!(
            "flash {} B > the {} B application region",
            report.flash, memory.flash.length
        ));
    }
    if report.static_ram > budget.static_ram_max {
        failures.push(format!(
            "static RAM {} B > budget {} B",
            report.static_ram, budget.static_ram_max
        ));
    }
    if report.stack_need > report.stack_room {
        failures.push(format!(
            "stack needs {} B, only {} B of RAM are left",
            report.stack_need, report.stack_room
        ));
    }
    failures
}

/// What one QEMU run produced.
pub struct QemuRun {
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// Runs the built firmware in QEMU with a timeout; `extra` goes before `-kernel`.
pub fn run_qemu(timeout_s: u64, extra: &[String]) -> Result<QemuRun> {
    run_qemu_elf(&elf_path(), "qemu", timeout_s, extra)
}

/// Runs the program `elf` on QEMU's mps2-an386 with a timeout, its stdout and stderr kept
/// in `target/firmware/{log_stem}-stdout.bin` and `…-stderr.txt`.
pub fn run_qemu_elf(
    elf: &Path,
    log_stem: &str,
    timeout_s: u64,
    extra: &[String],
) -> Result<QemuRun> {
    ensure_qemu()?;
    let out_path = target_dir().join(format!("{log_stem}-stdout.bin"));
    let err_path = target_dir().join(format!("{log_stem}-stderr.txt"));
    let mut cmd = Command::new("qemu-system-arm");
    cmd.args([
        "-machine",
        "mps2-an386",
        "-cpu",
        "cortex-m4",
        "-semihosting-config",
        "enable=on,target=native",
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        "none",
    ])
    .args(extra)
    .arg("-kernel")
    .arg(elf)
    .stdin(Stdio::null())
    .stdout(fs::File::create(&out_path)?)
    .stderr(fs::File::create(&err_path)?);
    eprintln!("==> [qemu] {cmd:?}");
    let started = Instant::now();
    let mut child = cmd.spawn().context("could not start qemu-system-arm")?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > Duration::from_secs(timeout_s) {
            child.kill().ok();
            child.wait().ok();
            bail!(
                "QEMU did not finish within {timeout_s} s; its stderr is in {}",
                err_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = fs::read(&out_path)?;
    let stderr = fs::read_to_string(&err_path)?;
    eprintln!(
        "<== [qemu] {status} in {:.1} s, {} bytes of frames",
        started.elapsed().as_secs_f32(),
        stdout.len()
    );
    ensure!(
        status.success(),
        "QEMU/firmware failed ({status}):\n{stderr}"
    );
    Ok(QemuRun { stdout, stderr })
}

/// The `vsc-fw: stack used N bytes` line of the firmware's log.
pub fn stack_from_log(stderr: &str) -> Option<u64> {
    BufReader::new(stderr.as_bytes())
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("vsc-fw: stack used ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
}

pub fn decode_frames(bytes: &[u8]) -> (Vec<Frame>, u64) {
    let mut decoder = FrameDecoder::new();
    let mut frames = Vec::new();
    decoder.feed(bytes, |f| frames.push(f));
    (frames, decoder.rejected_chunks)
}

/// What edge-runtime computes on the host for the same excerpt and model.
pub fn host_frames(excerpt_bytes: &[u8], model: &Path) -> Result<Vec<Frame>> {
    let excerpt = Excerpt::parse(excerpt_bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let blob_bytes = read_blob(model)?;
    let blob = ModelBlob::parse(&blob_bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut frames = Vec::new();
    stream::run_recorded(excerpt, blob.channels(), Encoder::new(blob), 0..0, |f| {
        frames.push(f.clone())
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(frames)
}

pub fn print_frames(frames: &[Frame]) {
    println!(
        "{:>4} {:>9} {:>6} {:>3}  active dims (γ, μ)",
        "seq", "t_ms", "flags", "n"
    );
    for f in frames {
        let mut flag_names = String::new();
        for (bit, name) in flags::NAMES.iter().enumerate() {
            if f.flags >> bit & 1 == 1 {
                flag_names.push_str(&name[..1]);
            }
        }
        let active: Vec<String> = f
            .active()
            .map(|(j, g, m)| format!("{j}({g:.2},{m:+.2})"))
            .collect();
        println!(
            "{:>4} {:>9} {:>6} {:>3}  {}",
            f.sequence,
            f.timestamp_ms,
            if flag_names.is_empty() {
                "-".into()
            } else {
                flag_names
            },
            f.spike_bits.count_ones(),
            active.join(" ")
        );
    }
}

/// `cargo xtask firmware --board NAME [--run | --golden]`.
pub fn run(cmd: &FirmwareCmd) -> Result<()> {
    if cmd.board.is_nrf() {
        ensure!(
            !cmd.qemu.run && !cmd.qemu.golden && cmd.qemu.model.is_none(),
            "--run, --golden and --model are for the qemu board; a real board's model is \
             flashed on its own: cargo xtask flash --board {} --model FILE.vscq",
            cmd.board.name()
        );
        build_board(cmd.board)?;
        check_board_sizes(cmd.board)?;
        return Ok(());
    }
    run_qemu_board(&cmd.qemu)
}

fn run_qemu_board(args: &FirmwareArgs) -> Result<()> {
    if args.golden {
        return golden_check(args);
    }
    let (_, model) = build(args)?;
    if !args.run {
        check_sizes(&model, None)?;
        return Ok(());
    }
    let qemu = run_qemu(args.timeout_s, &[])?;
    eprint!("{}", qemu.stderr);
    check_sizes(&model, stack_from_log(&qemu.stderr))?;
    let (frames, rejected) = decode_frames(&qemu.stdout);
    print_frames(&frames);
    eprintln!(
        "{} frames decoded, {rejected} chunks rejected",
        frames.len()
    );
    Ok(())
}

/// The CI check: build, size budget, run in QEMU, frames == host frames.
pub fn golden_check(args: &FirmwareArgs) -> Result<()> {
    let (excerpt, model) = build(args)?;
    let qemu = run_qemu(args.timeout_s, &[])?;
    eprint!("{}", qemu.stderr);
    let stack = stack_from_log(&qemu.stderr)
        .context("the firmware log has no `vsc-fw: stack used` line")?;
    check_sizes(&model, Some(stack))?;
    let (device, rejected) = decode_frames(&qemu.stdout);
    let host = host_frames(&excerpt, &model)?;
    ensure!(
        rejected == 0,
        "{rejected} corrupt chunks in the firmware's output"
    );
    ensure!(!host.is_empty(), "the excerpt yields no window");
    ensure!(
        device.len() == host.len(),
        "firmware sent {} frames, the host computes {}",
        device.len(),
        host.len()
    );
    for (d, h) in device.iter().zip(&host) {
        ensure!(
            d == h,
            "frame {} differs:\n  firmware: {d:?}\n  host:     {h:?}",
            h.sequence
        );
    }
    eprintln!(
        "golden: {} firmware frames equal the host's, frame for frame",
        device.len()
    );
    Ok(())
}

/// What `cargo xtask test` runs for the firmware: the QEMU golden test, then a release
/// build and size check of every nRF board.
pub fn ci_check(qemu: &FirmwareArgs) -> Result<()> {
    golden_check(qemu)?;
    let mut rows = Vec::new();
    for board in Board::ALL.into_iter().filter(|b| b.is_nrf()) {
        build_board(board)?;
        rows.push((board, check_board_sizes(board)?));
    }
    eprintln!("board                   flash B  static RAM B  stack room B  stack need B");
    for (board, r) in rows {
        eprintln!(
            "{:<22} {:>8} {:>13} {:>13} {:>13}",
            board.name(),
            r.flash,
            r.static_ram,
            r.stack_room,
            r.stack_need
        );
    }
    Ok(())
}

pub(crate) fn build_plugin() -> Result<PathBuf> {
    let src = workspace_root().join("xtask/plugin/insn_count.c");
    let lib = target_dir().join("libinsn_count.so");
    let fresh = match (fs::metadata(&src), fs::metadata(&lib)) {
        (Ok(s), Ok(l)) => l.modified()? >= s.modified()?,
        _ => false,
    };
    if !fresh {
        let status = Command::new("gcc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
            .arg(&lib)
            .arg(&src)
            .status()
            .context("gcc is needed to build the QEMU instruction-count plugin")?;
        ensure!(status.success(), "gcc failed on {}", src.display());
    }
    Ok(lib)
}

/// One region line of the instruction-count plugin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegionCount {
    pub runs: u64,
    pub total: u64,
    pub min: u64,
    pub max: u64,
}

impl RegionCount {
    pub fn per_run(&self) -> f64 {
        self.total as f64 / self.runs.max(1) as f64
    }
}

/// The plugin's `vsc-bench: region=NAME runs=… total=… min=… max=…` line for `name`.
pub fn region_count(stderr: &str, name: &str) -> Result<RegionCount> {
    let prefix = format!("vsc-bench: region={name} ");
    let line = stderr
        .lines()
        .find(|l| l.starts_with(&prefix))
        .with_context(|| format!("the plugin printed no `{prefix}…` line"))?;
    let field = |key: &str| -> Result<u64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
            .with_context(|| format!("`{key}` missing in {line:?}"))
    };
    Ok(RegionCount {
        runs: field("runs")?,
        total: field("total")?,
        min: field("min")?,
        max: field("max")?,
    })
}

/// `cargo xtask bench mcu`: guest instructions per encode, split into the input stage
/// (measured in a separate run of `Encoder::model_input` on the same window) and the
/// dense layers (the rest of the encode: both packed-input layouts, the int8 layers,
/// requantisation, spike test, γ and μ), MACs, instructions per MAC.
pub fn bench_mcu(args: &BenchMcuArgs) -> Result<()> {
    let fw = &args.firmware;
    let (_, model) = build(fw)?;
    let elf = fs::read(elf_path())?;
    let mut regions = Vec::new();
    for (name, start, end) in [
        ("encode", "vsc_bench_encode_start", "vsc_bench_encode_end"),
        ("input", "vsc_bench_input_start", "vsc_bench_input_end"),
    ] {
        let (start, end) = (
            crate::elf::symbol(&elf, start)?,
            crate::elf::symbol(&elf, end)?,
        );
        regions.push(format!("region={name}:{start:#x}:{end:#x}"));
    }
    if args.profile {
        regions.push("profile=encode".into());
    }
    let plugin = build_plugin()?;
    let qemu = run_qemu(
        fw.timeout_s,
        &[
            "-d".into(),
            "plugin".into(),
            "-plugin".into(),
            format!("{},{}", plugin.display(), regions.join(",")),
        ],
    )?;
    let encode = region_count(&qemu.stderr, "encode")?;
    let input = region_count(&qemu.stderr, "input")?;
    ensure!(encode.runs > 0, "no encode ran");
    ensure!(
        input.runs == encode.runs,
        "{} input-stage runs for {} encodes",
        input.runs,
        encode.runs
    );
    let all: u64 = qemu
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("vsc-bench: all=")?.trim().parse().ok())
        .context("the plugin printed no `vsc-bench: all=` line")?;
    let blob_bytes = read_blob(&model)?;
    let blob = ModelBlob::parse(&blob_bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let macs = Encoder::new(blob).macs_per_window();
    let (per_encode, per_input) = (encode.per_run(), input.per_run());
    let per_dense = per_encode - per_input;
    println!(
        "model                      : {} (M {} H {} J {}, {} input)",
        model.display(),
        blob.input_dim(),
        blob.hidden_dim(),
        blob.latent_dim(),
        blob.features().name()
    );
    println!("encodes                    : {}", encode.runs);
    println!(
        "instructions per encode    : {per_encode:.0} (min {}, max {})",
        encode.min, encode.max
    );
    println!(
        "  input stage              : {per_input:.0} (min {}, max {}; spectrum/scaling/quantisation)",
        input.min, input.max
    );
    println!("  dense layers             : {per_dense:.0} (encode − input stage)");
    println!("MACs per encode            : {macs}");
    println!(
        "instructions per MAC       : {:.3} dense layers (goal ≤ 1.3, issue 16), {:.3} whole encode",
        per_dense / macs as f64,
        per_encode / macs as f64
    );
    println!("instructions, whole run    : {all}");
    if args.profile {
        print_profile(&elf, &qemu.stderr, encode.runs, args.top)?;
    }
    check_sizes(&model, stack_from_log(&qemu.stderr))?;
    Ok(())
}

/// The `--profile` table: instructions per encode by function, the `top` largest.
fn print_profile(elf: &[u8], plugin_log: &str, runs: u64, top: usize) -> Result<()> {
    let rows = profile_by_function(elf, plugin_log)?;
    let total: u64 = rows.iter().map(|r| r.1).sum();
    ensure!(total > 0, "the plugin printed no profile lines");
    let per_encode = |n: u64| n as f64 / runs.max(1) as f64;
    println!("profile of an encode (instructions per encode, by function):");
    for (name, count) in rows.iter().take(top) {
        println!(
            "  {:>9.0} {:>5.1} %  {name}",
            per_encode(*count),
            100.0 * *count as f64 / total as f64
        );
    }
    let rest: u64 = rows.iter().skip(top).map(|r| r.1).sum();
    if rest > 0 {
        println!(
            "  {:>9.0} {:>5.1} %  ({} more functions)",
            per_encode(rest),
            100.0 * rest as f64 / total as f64,
            rows.len() - top
        );
    }
    println!("  {:>9.0} 100.0 %  total", per_encode(total));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linker_expressions_as_memory_x_writes_them() {
        assert_eq!(linker_expr("0x00027000").unwrap(), 0x27000);
        assert_eq!(linker_expr("256K").unwrap(), 262_144);
        assert_eq!(linker_expr(" 4M ").unwrap(), 4 << 20);
        assert_eq!(linker_expr("0x000AD000 - 0x00027000").unwrap(), 0x86000);
        assert_eq!(linker_expr("256K - 8").unwrap(), 262_136);
        assert_eq!(linker_expr("1K+0x10").unwrap(), 1040);
        for bad in ["", "0x", "12 -", "- 3", "3 * 4", "0x10 - 0x20", "ten"] {
            assert!(linker_expr(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_board_has_a_model_region_beside_its_flash() {
        for board in Board::ALL {
            let m = board.memory().unwrap();
            assert!(m.flash.length > 0 && m.model.length > 0 && m.ram.length > 0);
            // The model region is its own: firmware and model never overlap.
            let flash_end = m.flash.origin + m.flash.length;
            let model_end = m.model.origin + m.model.length;
            assert!(
                flash_end <= m.model.origin || model_end <= m.flash.origin,
                "{board:?}"
            );
            // Flash pages (4 KiB) start the region, so `--model-only` erases nothing else.
            assert_eq!(m.model.origin % 4096, 0, "{board:?}");
            assert_eq!(m.model.length % 4096, 0, "{board:?}");
        }
        // The XIAO's application range of its Adafruit bootloader with S140 7.3.0.
        let xiao = Board::XiaoSense.memory().unwrap();
        assert_eq!(xiao.flash.origin, 0x27000);
        assert_eq!(xiao.model.origin + xiao.model.length, 0xED000);
        // The Nano's Arduino bootloader ends at 0x10000; its storage starts at 0xF8000.
        let nano = Board::Nano33BleSenseRev2.memory().unwrap();
        assert_eq!(nano.flash.origin, 0x10000);
        assert_eq!(nano.model.origin + nano.model.length, 0xF8000);
    }

    #[test]
    fn memory_x_errors_name_the_region() {
        let missing = "MEMORY\n{\n  FLASH : ORIGIN = 0, LENGTH = 1K\n  RAM : ORIGIN = 0x20000000, LENGTH = 4K\n}";
        assert!(
            parse_memory_x(missing)
                .unwrap_err()
                .to_string()
                .contains("MODEL")
        );
        let commented = "/* MODEL : ORIGIN = 0, LENGTH = 1K */\nFLASH : ORIGIN = 0, LENGTH = 1K\n\
                         RAM : ORIGIN = 0, LENGTH = 1K";
        assert!(
            parse_memory_x(commented).is_err(),
            "a region in a comment does not count"
        );
        let bad = "FLASH : ORIGIN = 0, LENGTH = 1K\nMODEL : ORIGIN = 0x1000, LENGHT = 1K\n\
                   RAM : ORIGIN = 0, LENGTH = 1K";
        let err = format!("{:#}", parse_memory_x(bad).unwrap_err());
        assert!(err.contains("MODEL") && err.contains("LENGTH"), "{err}");
    }

    #[test]
    fn the_committed_budget_parses_and_names_missing_keys() {
        let budget = read_budget().unwrap();
        assert!(budget.loop_stack_max > 0);
        assert!(budget.xiao_sense.flash_max > 0);
        let path = Path::new("size-budget.toml");
        let text = "loop_stack_max = 1\n[qemu]\ncode_and_constants_max = 1\n\
                    ram_beyond_windows_max = 1\nwindow_buffer_bytes = 1\n\
                    [xiao-sense]\nflash_max = 1\nstatic_ram_max = 1\ninterrupt_stack_bytes = 1\n\
                    [nano33-ble-sense-rev2]\nflash_max = 1\nstatic_ram_max = 1\n";
        let err = parse_budget(text, path).unwrap_err().to_string();
        assert!(
            err.contains("size-budget.toml")
                && err.contains("nano33-ble-sense-rev2.interrupt_stack_bytes"),
            "{err}"
        );
    }

    #[test]
    fn nrf_checks_fail_on_flash_static_ram_and_stack() {
        let memory = MemoryMap {
            flash: Region {
                origin: 0x27000,
                length: 100_000,
            },
            model: Region {
                origin: 0xAD000,
                length: 0x40000,
            },
            ram: Region {
                origin: 0x2000_0000,
                length: 64_000,
            },
        };
        let budget = NrfBudget {
            flash_max: 90_000,
            static_ram_max: 40_000,
            interrupt_stack_bytes: 4_000,
        };
        let fits = ElfSizes {
            text: 80_000,
            data: 1_000,
            bss: 20_000,
        };
        let report = nrf_sizes(fits, memory, 20_000, budget);
        assert_eq!(report.flash, 81_000);
        assert_eq!(report.static_ram, 21_000);
        assert_eq!(report.stack_room, 43_000);
        assert_eq!(report.stack_need, 24_000);
        assert!(nrf_failures(&report, memory, budget).is_empty());

        let big = ElfSizes {
            text: 95_000,
            data: 1_000,
            bss: 39_000,
        };
        let report = nrf_sizes(big, memory, 20_000, budget);
        let failures = nrf_failures(&report, memory, budget).join("; ");
        assert!(
            failures.contains("flash 96000 B > budget 90000 B"),
            "{failures}"
        );
        // 64,000 − 40,000 = 24,000 B left: exactly enough, so no stack failure yet.
        assert!(!failures.contains("stack"), "{failures}");
        let report = nrf_sizes(big, memory, 20_001, budget);
        let failures = nrf_failures(&report, memory, budget).join("; ");
        assert!(
            failures.contains("stack needs 24001 B, only 24000 B"),
            "{failures}"
        );
        let over_region = ElfSizes {
            text: 100_001,
            data: 0,
            bss: 0,
        };
        let report = nrf_sizes(over_region, memory, 0, budget);
        let failures = nrf_failures(&report, memory, budget).join("; ");
        assert!(failures.contains("application region"), "{failures}");
    }
}
