//! `cargo xtask bench fft`: issue 16's library comparison. edge-runtime's band spectrum
//! (its own FFT) against the same band spectrum from `microfft::real::rfft_128`, both on
//! nine channels of 128 samples, measured by `firmware-example/benches/fft`:
//! - Cortex-M4F: guest instructions per 9-channel spectrum in QEMU (mps2-an386, release),
//!   counted by the instruction-count plugin of `bench mcu` between marker functions, less
//!   the markers' own cost; code as the text bytes of the functions executed in between;
//! - host: ns per 9-channel spectrum, one thread, median of timed batches;
//! - accuracy: microfft's values against edge-runtime's (the radix-2 oracle's bits), and
//!   whether each side gives the host's bits on the M4 (hashes of the outputs).
//!
//! Not part of `cargo xtask test` (only the M4 binary's build is, a few seconds there).

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, ensure};

use crate::firmware::{self, RegionCount, region_count};
use crate::test::{THUMB_TARGET, ensure_qemu, ensure_rust_tools};

const PACKAGE: &str = "vsc-bench-fft";

/// The two sides, as the bench names them: (plugin region and marker infix, row label,
/// name in the M4's and the host's output).
const SIDES: [(&str, &str, &str); 2] = [
    ("edge", "edge-runtime (own FFT)", "edge-runtime"),
    ("microfft", "microfft 0.6 rfft_128", "microfft"),
];

#[derive(clap::Args)]
pub struct BenchFftArgs {
    /// Seconds QEMU may run (each of its two runs takes well under one).
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
    /// Also list the functions each side executed on the M4, with their sizes.
    #[arg(long)]
    pub functions: bool,
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Runs cargo for the bench crate from the firmware workspace (whose `.cargo/config.toml`
/// and release profile apply), in the QEMU board's target folder so that edge-runtime's
/// thumb build is shared with it.
fn bench_cargo(subcommand: &str, target: &str) -> Command {
    let mut cmd = cargo();
    cmd.args([subcommand, "--release", "--target", target, "-p", PACKAGE])
        .current_dir(firmware::firmware_dir())
        .env("CARGO_TARGET_DIR", firmware::target_dir());
    cmd
}

/// Builds the Cortex-M4 half (thumb target installed first when missing); returns its ELF.
pub fn build_m4() -> Result<PathBuf> {
    ensure_rust_tools()?;
    let started = Instant::now();
    let mut cmd = bench_cargo("build", THUMB_TARGET);
    eprintln!("==> [bench fft M4 build] {cmd:?}");
    let status = cmd.status().context("could not start cargo")?;
    ensure!(
        status.success(),
        "[bench fft M4 build] {PACKAGE} for {THUMB_TARGET} failed ({status})"
    );
    eprintln!(
        "<== [bench fft M4 build] ok in {:.0} s",
        started.elapsed().as_secs_f32()
    );
    Ok(firmware::target_dir()
        .join(THUMB_TARGET)
        .join("release")
        .join(PACKAGE))
}

/// The host's target triple (`rustc -vV`): the bench's host half is built for it
/// explicitly, the firmware workspace's default being the thumb target.
fn host_triple() -> Result<String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("could not run `rustc -vV`")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .context("`rustc -vV` printed no `host:` line")
}

/// `key=value` fields of the first line starting with `prefix`.
fn fields<'a>(text: &'a str, prefix: &str) -> Result<HashMap<&'a str, &'a str>> {
    let line = text
        .lines()
        .find(|l| l.starts_with(prefix))
        .with_context(|| format!("no line starting with {prefix:?}"))?;
    Ok(line[prefix.len()..]
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect())
}

fn field<T: std::str::FromStr>(fields: &HashMap<&str, &str>, key: &str, what: &str) -> Result<T> {
    let value = fields
        .get(key)
        .with_context(|| format!("`{key}=` missing in the {what} line"))?;
    value
        .parse()
        .ok()
        .with_context(|| format!("bad `{key}={value}` in the {what} line"))
}

fn hex_u32(text: &str) -> Option<u32> {
    u32::from_str_radix(text.strip_prefix("0x")?, 16).ok()
}

/// What the host half printed.
#[derive(Debug, PartialEq)]
struct HostResults {
    /// ns per 9-channel spectrum, in [`SIDES`] order.
    ns: [f64; 2],
    values: u64,
    identical: u64,
    max_abs: f64,
    max_rel: f64,
    /// Output hashes of the M4's windows, in [`SIDES`] order.
    hashes: [u32; 2],
}

fn parse_host(stdout: &str) -> Result<HostResults> {
    let mut ns = [0.0; 2];
    for (slot, (_, _, name)) in ns.iter_mut().zip(SIDES) {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("vsc-fft-host: impl={name} ")))
            .with_context(|| format!("the host bench printed no timing for {name}"))?;
        *slot = field(&fields(line, "vsc-fft-host:")?, "ns", "timing")?;
    }
    let accuracy = fields(stdout, "vsc-fft-host: accuracy ")?;
    let hashes_line = fields(stdout, "vsc-fft-host: hashes ")?;
    let mut hashes = [0; 2];
    for (slot, (_, _, name)) in hashes.iter_mut().zip(SIDES) {
        let text = hashes_line
            .get(name)
            .with_context(|| format!("no hash for {name} in the host's hashes line"))?;
        *slot = hex_u32(text).with_context(|| format!("bad hash {text:?} for {name}"))?;
    }
    Ok(HostResults {
        ns,
        values: field(&accuracy, "values", "accuracy")?,
        identical: field(&accuracy, "identical", "accuracy")?,
        max_abs: field(&accuracy, "max_abs", "accuracy")?,
        max_rel: field(&accuracy, "max_rel", "accuracy")?,
        hashes,
    })
}

/// The M4's `vsc-fft: NAME hash=0x…` line.
fn m4_hash(stderr: &str, name: &str) -> Result<u32> {
    let f = fields(stderr, &format!("vsc-fft: {name} "))
        .with_context(|| format!("the M4 bench printed no hash for {name}"))?;
    let text = f.get("hash").context("`hash=` missing")?;
    hex_u32(text).with_context(|| format!("bad hash {text:?} for {name}"))
}

/// The functions (start, end, name) that executed at least one profiled instruction,
/// from the plugin's `vsc-bench: pc=0x… count=…` lines; `skip` names are left out (the
/// markers).
fn executed_functions<'a>(
    functions: &'a [(u32, u32, String)],
    plugin_log: &str,
    skip: &[&str],
) -> Result<Vec<&'a (u32, u32, String)>> {
    let mut hit = vec![false; functions.len()];
    for line in plugin_log.lines() {
        let Some((pc, count)) = crate::firmware::profile_line(line)? else {
            continue;
        };
        let at = functions.partition_point(|f| f.0 <= pc);
        if let Some(i) = at.checked_sub(1).filter(|&i| pc < functions[i].1)
            && count > 0
        {
            hit[i] = true;
        }
    }
    Ok(functions
        .iter()
        .zip(hit)
        .filter(|(f, hit)| *hit && !skip.contains(&f.2.as_str()))
        .map(|(f, _)| f)
        .collect())
}

/// Functions of the compiler's runtime (memcpy, memset) that either side may call: shared
/// code in a firmware, so the table also gives each side's text without them.
fn is_runtime(name: &str) -> bool {
    name.starts_with("__aeabi_mem") || name.starts_with("compiler_builtins::mem::")
}

/// One side on the M4.
struct M4Side {
    per_run: f64,
    count: RegionCount,
    text_bytes: u32,
    /// Without [`is_runtime`] functions.
    own_text_bytes: u32,
    functions: Vec<(u32, String)>,
}

pub fn run(args: &BenchFftArgs) -> Result<()> {
    let elf_path = build_m4()?;
    ensure_qemu()?;
    let plugin = firmware::build_plugin()?;
    let elf = fs::read(&elf_path).with_context(|| elf_path.display().to_string())?;
    let functions = crate::elf::functions(&elf)?;
    let mut regions = Vec::new();
    let mut markers = Vec::new();
    for name in ["edge", "microfft", "empty"] {
        let (start, end) = (
            format!("vsc_fft_{name}_start"),
            format!("vsc_fft_{name}_end"),
        );
        regions.push(format!(
            "region={name}:{:#x}:{:#x}",
            crate::elf::symbol(&elf, &start)?,
            crate::elf::symbol(&elf, &end)?
        ));
        markers.push(start);
        markers.push(end);
    }
    let markers: Vec<&str> = markers.iter().map(String::as_str).collect();

    // One QEMU run per side: the plugin profiles one region at a time.
    let mut m4 = Vec::new();
    let mut m4_hashes = [0u32; 2];
    for (i, (region, _, name)) in SIDES.iter().enumerate() {
        let qemu = firmware::run_qemu_elf(
            &elf_path,
            "bench-fft-qemu",
            args.timeout_s,
            &[
                "-d".into(),
                "plugin".into(),
                "-plugin".into(),
                format!(
                    "{},{},profile={region}",
                    plugin.display(),
                    regions.join(",")
                ),
            ],
        )?;
        let count = region_count(&qemu.stderr, region)?;
        let empty = region_count(&qemu.stderr, "empty")?;
        ensure!(count.runs > 0, "the M4 bench ran no {name} spectrum");
        let executed = executed_functions(&functions, &qemu.stderr, &markers)?;
        m4.push(M4Side {
            per_run: count.per_run() - empty.per_run(),
            count,
            text_bytes: executed.iter().map(|f| f.1 - f.0).sum(),
            own_text_bytes: executed
                .iter()
                .filter(|f| !is_runtime(&f.2))
                .map(|f| f.1 - f.0)
                .sum(),
            functions: executed.iter().map(|f| (f.1 - f.0, f.2.clone())).collect(),
        });
        m4_hashes[i] = m4_hash(&qemu.stderr, name)?;
    }

    let host_target = host_triple()?;
    eprintln!("==> [bench fft] host half for {host_target}");
    let out = bench_cargo("run", &host_target)
        .output()
        .context("could not start cargo")?;
    ensure!(
        out.status.success(),
        "the host half of {PACKAGE} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let host = parse_host(&String::from_utf8_lossy(&out.stdout))?;

    println!("band spectrum of one window (9 channels × 128 samples), issue 16");
    println!(
        "{:<24} {:>14} {:>12} {:>10} {:>12} {:>12}  bits on M4",
        "", "M4 instr", "M4 text B", "host ns", "max abs Δ", "max rel Δ"
    );
    for (i, (_, label, _)) in SIDES.iter().enumerate() {
        let (abs, rel) = if i == 0 {
            ("(oracle)".to_string(), "(oracle)".to_string())
        } else {
            (
                format!("{:.2e}", host.max_abs),
                format!("{:.2e}", host.max_rel),
            )
        };
        let same_bits = if m4_hashes[i] == host.hashes[i] {
            "= host"
        } else {
            "DIFFER from host"
        };
        println!(
            "{label:<24} {:>14.0} {:>12} {:>10.0} {abs:>12} {rel:>12}  {same_bits}",
            m4[i].per_run, m4[i].text_bytes, host.ns[i]
        );
    }
    println!(
        "M4: {} runs each (min/max {}/{} and {}/{} with the markers); host: one thread, \
         median; Δ of microfft against edge-runtime over {} values, {:.1} % the same bits",
        m4[0].count.runs,
        m4[0].count.min,
        m4[0].count.max,
        m4[1].count.min,
        m4[1].count.max,
        host.values,
        100.0 * host.identical as f64 / host.values.max(1) as f64
    );
    println!(
        "M4 text without memcpy/memset (shared runtime): {} B and {} B; constant tables not counted",
        m4[0].own_text_bytes, m4[1].own_text_bytes
    );
    if args.functions {
        for ((_, label, _), side) in SIDES.iter().zip(&m4) {
            println!("functions executed by {label}:");
            for (bytes, name) in &side.functions {
                println!("  {bytes:>6} B  {name}");
            }
        }
    }
    let choice = if m4[0].per_run <= m4[1].per_run {
        "keep edge-runtime's kernel (fewer M4 instructions)"
    } else {
        "microfft takes fewer M4 instructions: see issue 16 before switching \
         (every target must compute the same bits)"
    };
    println!("choice by the M4 instruction count: {choice}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_OUTPUT: &str = "\
vsc-fft-host: impl=edge-runtime ns=1551
vsc-fft-host: impl=microfft ns=4986
vsc-fft-host: accuracy values=594000 identical=514663 max_abs=3.0517578125e-5 max_rel=1.3e-5
vsc-fft-host: hashes edge-runtime=0xd713dbcf microfft=0x884bbb0d
";

    #[test]
    fn host_output_parses_into_both_rows() {
        let got = parse_host(HOST_OUTPUT).unwrap();
        assert_eq!(
            got,
            HostResults {
                ns: [1551.0, 4986.0],
                values: 594_000,
                identical: 514_663,
                max_abs: 3.0517578125e-5,
                max_rel: 1.3e-5,
                hashes: [0xd713_dbcf, 0x884b_bb0d],
            }
        );
    }

    #[test]
    fn host_output_errors_name_what_is_missing() {
        let no_micro = HOST_OUTPUT.replace("impl=microfft", "impl=other");
        let err = parse_host(&no_micro).unwrap_err().to_string();
        assert!(err.contains("microfft"), "{err}");
        let bad_ns = HOST_OUTPUT.replace("ns=1551", "ns=fast");
        let err = format!("{:#}", parse_host(&bad_ns).unwrap_err());
        assert!(err.contains("ns=fast"), "{err}");
        let bad_hash = HOST_OUTPUT.replace("=0x884bbb0d", "=884bbb0d");
        let err = format!("{:#}", parse_host(&bad_hash).unwrap_err());
        assert!(err.contains("microfft"), "{err}");
    }

    #[test]
    fn m4_hashes_are_read_by_name() {
        let log = "vsc-bench: region=edge runs=8 total=1 min=1 max=1\n\
                   vsc-fft: edge-runtime hash=0x0000beef\n\
                   vsc-fft: microfft hash=0xcafe0001\n";
        assert_eq!(m4_hash(log, "edge-runtime").unwrap(), 0xbeef);
        assert_eq!(m4_hash(log, "microfft").unwrap(), 0xcafe_0001);
        assert!(m4_hash(log, "other").is_err());
        assert!(m4_hash("vsc-fft: microfft hash=zz\n", "microfft").is_err());
    }

    #[test]
    fn runtime_functions_are_recognised() {
        assert!(is_runtime("__aeabi_memcpy4"));
        assert!(is_runtime("compiler_builtins::mem::memcpy"));
        assert!(!is_runtime(
            "microfft::impls::cfft::CFft::compute_butterflies"
        ));
    }

    #[test]
    fn executed_functions_are_those_with_counted_addresses() {
        let functions = vec![
            (0x100, 0x140, "a".to_string()),
            (0x140, 0x150, "marker".to_string()),
            (0x200, 0x280, "b".to_string()),
            (0x300, 0x310, "never".to_string()),
        ];
        let log = "noise\n\
                   vsc-bench: pc=0x104 count=9\n\
                   vsc-bench: pc=0x144 count=1\n\
                   vsc-bench: pc=0x27e count=3\n\
                   vsc-bench: pc=0x180 count=5\n\
                   vsc-bench: pc=0x300 count=0\n";
        let got = executed_functions(&functions, log, &["marker"]).unwrap();
        let names: Vec<&str> = got.iter().map(|f| f.2.as_str()).collect();
        // 0x180 lies between functions; a zero count is not an execution.
        assert_eq!(names, ["a", "b"]);
        let sizes: u32 = got.iter().map(|f| f.1 - f.0).sum();
        assert_eq!(sizes, 0x40 + 0x80);
        assert!(executed_functions(&functions, "vsc-bench: pc=0xzz count=1", &[]).is_err());
        assert!(executed_functions(&functions, "vsc-bench: pc=0x104 count=", &[]).is_err());
    }
}
