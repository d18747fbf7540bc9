//! `cargo xtask firmware [--run]`, the firmware golden check and `cargo xtask bench mcu`.
//!
//! 1. Cuts a short excerpt of a test subject's HAPT recording (user 2, experiment 3) and
//!    stores it as MPU-6050 register values (`target/firmware/excerpt.bin`), so the
//!    firmware's sensor driver scales real counts.
//! 2. Builds `firmware-example` for thumbv7em-none-eabihf into `target/firmware`.
//! 3. Reports text/data/bss of the ELF and checks them against
//!    `firmware-example/size-budget.toml`.
//! 4. With `--run` (and in the golden check), runs it under
//!    `qemu-system-arm -machine mps2-an386`, decodes the frames on its stdout and, for the
//!    golden check, demands they equal what edge-runtime computes on the host.

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

use crate::test::{THUMB_TARGET, ensure_qemu, ensure_rust_tools, workspace_root};

/// HAPT user of the excerpt: a UCI HAR *test* subject, so the model never trained on it.
pub const EXCERPT_USER: u8 = 2;
pub const EXCERPT_EXP: u16 = 3;
/// 0-based first sample: one window before the first WALKING run (labels.txt: 8434–9501,
/// 1-based), so the excerpt holds standing, the start of walking, and walking.
pub const EXCERPT_START: usize = 8434 - 1 - 128;
/// 512 samples at 50 Hz (10.24 s) → 7 windows.
pub const EXCERPT_SAMPLES: usize = 512;

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
    /// Model blob (.vscq) to embed. Default: the first `models/*.vscq`; without one, a
    /// randomly initialised `edge`-sized encoder (H 128, J 32, all nine channels)
    /// quantised on the excerpt's windows (`target/firmware/random-edge.vscq`).
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

fn firmware_dir() -> PathBuf {
    workspace_root().join("firmware-example")
}

fn target_dir() -> PathBuf {
    workspace_root().join("target/firmware")
}

fn elf_path() -> PathBuf {
    target_dir()
        .join(THUMB_TARGET)
        .join("release/firmware-example")
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

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).with_context(|| tmp.display().to_string())?;
    fs::rename(&tmp, path).with_context(|| path.display().to_string())
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
    write_atomically(&path, &blob)?;
    eprintln!(
        "note: no models/*.vscq yet; embedding a random-weight placeholder ({})",
        path.display()
    );
    Ok(path)
}

/// Writes the excerpt and builds the firmware; returns the excerpt and the model path.
pub fn build(args: &FirmwareArgs) -> Result<(Vec<u8>, PathBuf)> {
    ensure_rust_tools()?;
    let excerpt = make_excerpt(args.data.as_deref())?;
    fs::create_dir_all(target_dir())?;
    let excerpt_path = target_dir().join("excerpt.bin");
    write_atomically(&excerpt_path, &excerpt)?;
    let model = resolve_model(args, &excerpt)?;
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "--release", "--target", THUMB_TARGET])
        .current_dir(firmware_dir())
        .env("CARGO_TARGET_DIR", target_dir())
        .env("VSC_FW_EXCERPT", &excerpt_path)
        .env("VSC_FW_MODEL", &model);
    eprintln!("==> [firmware build] {cmd:?}");
    let status = cmd.status().context("could not start cargo")?;
    ensure!(status.success(), "[firmware build] failed ({status})");
    Ok((excerpt, model))
}

fn read_blob(model: &Path) -> Result<Vec<u8>> {
    let bytes = fs::read(model).with_context(|| model.display().to_string())?;
    ModelBlob::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", model.display()))?;
    Ok(bytes)
}

/// Sizes in the sense of `arm-none-eabi-size` (Berkeley format).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ElfSizes {
    /// Allocated, read-only (code, vector table, constants): lives in flash.
    pub text: u64,
    /// Allocated, writable, with contents: flash (initial values) and RAM.
    pub data: u64,
    /// Allocated, writable, no contents: RAM only.
    pub bss: u64,
}

struct Section {
    name: String,
    kind: u32,
    flags: u32,
    offset: u32,
    size: u32,
    link: u32,
}

fn elf_sections(elf: &[u8]) -> Result<Vec<Section>> {
    ensure!(
        elf.len() >= 52 && elf[..4] == *b"\x7fELF" && elf[4] == 1 && elf[5] == 1,
        "not a 32-bit little-endian ELF"
    );
    let u16_at = |o: usize| -> Result<u16> {
        Ok(u16::from_le_bytes(
            elf.get(o..o + 2).context("ELF truncated")?.try_into()?,
        ))
    };
    let u32_at = |o: usize| -> Result<u32> {
        Ok(u32::from_le_bytes(
            elf.get(o..o + 4).context("ELF truncated")?.try_into()?,
        ))
    };
    let shoff = u32_at(32)? as usize;
    let shentsize = u16_at(46)? as usize;
    let shnum = u16_at(48)? as usize;
    let shstrndx = u16_at(50)? as usize;
    let mut sections = Vec::with_capacity(shnum);
    for i in 0..shnum {
        let h = shoff + i * shentsize;
        sections.push(Section {
            name: u32_at(h)?.to_string(),
            kind: u32_at(h + 4)?,
            flags: u32_at(h + 8)?,
            offset: u32_at(h + 16)?,
            size: u32_at(h + 20)?,
            link: u32_at(h + 24)?,
        });
    }
    let names_at = sections
        .get(shstrndx)
        .context("ELF: no section-name table")?
        .offset as usize;
    for s in &mut sections {
        let start = names_at + s.name.parse::<usize>()?;
        let end = elf[start..]
            .iter()
            .position(|&b| b == 0)
            .context("ELF name")?
            + start;
        s.name = String::from_utf8_lossy(&elf[start..end]).into_owned();
    }
    Ok(sections)
}

pub fn elf_sizes(elf: &[u8]) -> Result<ElfSizes> {
    const SHT_NOBITS: u32 = 8;
    const SHF_WRITE: u32 = 1;
    const SHF_ALLOC: u32 = 2;
    let mut sizes = ElfSizes::default();
    for s in elf_sections(elf)? {
        if s.flags & SHF_ALLOC == 0 {
            continue;
        }
        let size = u64::from(s.size);
        if s.kind == SHT_NOBITS {
            sizes.bss += size;
        } else if s.flags & SHF_WRITE != 0 {
            sizes.data += size;
        } else {
            sizes.text += size;
        }
    }
    Ok(sizes)
}

/// A symbol of the ELF's symbol table.
struct ElfSymbol<'e> {
    name: &'e [u8],
    /// Address, Thumb bit cleared for functions.
    value: u32,
    size: u32,
    is_function: bool,
}

/// Every symbol of the ELF's symbol table.
fn elf_symbols(elf: &[u8]) -> Result<Vec<ElfSymbol<'_>>> {
    const SHT_SYMTAB: u32 = 2;
    const STT_FUNC: u8 = 2;
    let sections = elf_sections(elf)?;
    let symtab = sections
        .iter()
        .find(|s| s.kind == SHT_SYMTAB)
        .context("ELF has no symbol table")?;
    let strtab = sections
        .get(symtab.link as usize)
        .context("ELF symtab link")?;
    let entries = elf
        .get(symtab.offset as usize..(symtab.offset + symtab.size) as usize)
        .context("ELF symtab truncated")?;
    let mut symbols = Vec::new();
    for sym in entries.chunks_exact(16) {
        let name_off = u32::from_le_bytes(sym[0..4].try_into()?) as usize;
        let Some(rest) = elf.get(strtab.offset as usize + name_off..) else {
            continue;
        };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(0);
        let is_function = sym[12] & 0xF == STT_FUNC;
        let value = u32::from_le_bytes(sym[4..8].try_into()?);
        symbols.push(ElfSymbol {
            name: &rest[..end],
            value: if is_function { value & !1 } else { value },
            size: u32::from_le_bytes(sym[8..12].try_into()?),
            is_function,
        });
    }
    Ok(symbols)
}

/// Address of a function symbol (Thumb bit cleared).
pub fn elf_symbol(elf: &[u8], name: &str) -> Result<u32> {
    elf_symbols(elf)?
        .into_iter()
        .find(|s| s.name == name.as_bytes())
        .map(|s| s.value & !1)
        .with_context(|| format!("symbol {name} not found in the firmware ELF"))
}

/// Function symbols with a size, sorted by address: `(start, end, demangled name)`.
fn elf_functions(elf: &[u8]) -> Result<Vec<(u32, u32, String)>> {
    let mut functions: Vec<(u32, u32, String)> = elf_symbols(elf)?
        .into_iter()
        .filter(|s| s.is_function && s.size > 0)
        .map(|s| {
            let name = String::from_utf8_lossy(s.name);
            // `{:#}`: without the hash suffix.
            let name = format!("{:#}", rustc_demangle::demangle(&name));
            (s.value, s.value + s.size, name)
        })
        .collect();
    functions.sort();
    functions.dedup_by_key(|f| f.0);
    Ok(functions)
}

/// The plugin's per-address histogram (`vsc-bench: pc=0x… count=…` lines) summed per
/// function of the ELF, most instructions first; addresses outside every function symbol
/// are summed under "(no symbol)".
pub fn profile_by_function(elf: &[u8], plugin_log: &str) -> Result<Vec<(String, u64)>> {
    let functions = elf_functions(elf)?;
    let mut totals = std::collections::HashMap::<&str, u64>::new();
    for line in plugin_log.lines() {
        let Some(rest) = line.strip_prefix("vsc-bench: pc=0x") else {
            continue;
        };
        let (pc, count) = rest
            .split_once(" count=")
            .with_context(|| format!("bad profile line {line:?}"))?;
        let pc = u32::from_str_radix(pc, 16).with_context(|| format!("bad address in {line:?}"))?;
        let count: u64 = count
            .trim()
            .parse()
            .with_context(|| format!("bad count in {line:?}"))?;
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

/// The committed budget (`firmware-example/size-budget.toml`).
#[derive(Debug, Clone, Copy)]
pub struct SizeBudget {
    pub flash_beyond_weights_max: u64,
    pub ram_beyond_windows_max: u64,
    pub window_buffer_bytes: u64,
}

fn read_budget() -> Result<SizeBudget> {
    let path = firmware_dir().join("size-budget.toml");
    let text = fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let table: toml::Table = text.parse().with_context(|| path.display().to_string())?;
    let get = |key: &str| -> Result<u64> {
        let v = table
            .get(key)
            .and_then(|v| v.as_integer())
            .with_context(|| format!("{}: integer field `{key}` missing", path.display()))?;
        u64::try_from(v).with_context(|| format!("{}: `{key}` is negative", path.display()))
    };
    Ok(SizeBudget {
        flash_beyond_weights_max: get("flash_beyond_weights_max")?,
        ram_beyond_windows_max: get("ram_beyond_windows_max")?,
        window_buffer_bytes: get("window_buffer_bytes")?,
    })
}

/// Prints the size report; fails when a budget is exceeded.
pub fn check_sizes(model: &Path, stack_bytes: Option<u64>) -> Result<ElfSizes> {
    let elf = fs::read(elf_path()).with_context(|| elf_path().display().to_string())?;
    let sizes = elf_sizes(&elf)?;
    let budget = read_budget()?;
    let blob = read_blob(model)?;
    let weights = ModelBlob::parse(&blob)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .weight_bytes() as u64;
    // The excerpt stands in for the sensor; a real device has no such table in flash.
    let excerpt_bytes = fs::metadata(target_dir().join("excerpt.bin"))?.len();
    let flash = sizes.text + sizes.data;
    let flash_beyond = flash.saturating_sub(weights + excerpt_bytes);
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
        "flash: {flash} B = {weights} B int8 weights + {excerpt_bytes} B sensor excerpt + \
         {flash_beyond} B code/constants/model header (budget {} B; blob {} B)",
        budget.flash_beyond_weights_max,
        blob.len()
    );
    let mut failures = Vec::new();
    if flash_beyond > budget.flash_beyond_weights_max {
        failures.push(format!(
            "flash beyond weights {flash_beyond} B > budget {} B",
            budget.flash_beyond_weights_max
        ));
    }
    if let Some(stack) = stack_bytes {
        let ram = sizes.data + sizes.bss + stack;
        let beyond = ram.saturating_sub(budget.window_buffer_bytes);
        eprintln!(
            "RAM: {ram} B = data {} + bss {} + stack high-water {stack}; beyond the {} B \
             window buffers: {beyond} B (budget {} B)",
            sizes.data, sizes.bss, budget.window_buffer_bytes, budget.ram_beyond_windows_max
        );
        if beyond > budget.ram_beyond_windows_max {
            failures.push(format!(
                "RAM beyond window buffers {beyond} B > budget {} B",
                budget.ram_beyond_windows_max
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

/// What one QEMU run produced.
pub struct QemuRun {
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// Runs the built firmware in QEMU with a timeout; `extra` goes before `-kernel`.
pub fn run_qemu(timeout_s: u64, extra: &[String]) -> Result<QemuRun> {
    ensure_qemu()?;
    let out_path = target_dir().join("qemu-stdout.bin");
    let err_path = target_dir().join("qemu-stderr.txt");
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
    .arg(elf_path())
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

/// `cargo xtask firmware [--run]`.
pub fn run(args: &FirmwareArgs) -> Result<()> {
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

fn build_plugin() -> Result<PathBuf> {
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
        let (start, end) = (elf_symbol(&elf, start)?, elf_symbol(&elf, end)?);
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
        "instructions per MAC       : {:.3} dense layers (goal ≤ 1.0), {:.3} whole encode",
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
