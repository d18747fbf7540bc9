//! `cargo xtask ffi`: the C ABI of edge-runtime (crate `edge-runtime-ffi`, library
//! `vsc_edge`) as a native app sees it.
//!
//! 1. Regenerates `edge-runtime/ffi/include/vsc_edge.h` with cbindgen (installing the
//!    pinned version when missing); with `--check` (CI) the committed header must equal
//!    the generated one instead.
//! 2. Builds the static and the shared library for the host.
//! 3. Compiles `edge-runtime/ffi/tests/c/golden.c` with the system C compiler twice, once
//!    linked against each library, and runs both on the firmware's HAPT excerpt (user 2,
//!    experiment 3, 512 samples with 20 ms timestamps). The frames they write, as integer
//!    fields and as wire bytes, must equal the firmware's golden frames (what edge-runtime
//!    computes on the host), frame for frame; the program also checks corrupt blobs,
//!    NULL pointers and bad samples itself.
//! 4. Builds the JNI bindings of the Android app (`edge-runtime/ffi/android/vsc_jni.c`)
//!    for the host against the JDK's `jni.h`, linked with the static library, and runs
//!    them under the host JVM through a Java twin of the app's Kotlin object
//!    (`edge-runtime/ffi/tests/jni`): the same frames again, and the exceptions.
//! 5. With `--android` (CI), builds the static library for `aarch64-linux-android`; the
//!    shared one needs the NDK's linker, which this machine does not have.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use edge_runtime::frame::Frame;
use edge_runtime::sensor::Excerpt;

use crate::firmware::{self, FirmwareArgs};
use crate::test::{is_root, run_step, workspace_root};

/// cbindgen version that generates the committed header (other versions format it
/// differently, so the up-to-date check pins it).
pub const CBINDGEN_VERSION: &str = "0.29.4";
/// The Android ABI whose static library CI builds (arm64-v8a).
pub const ANDROID_TARGET: &str = "aarch64-linux-android";
/// Timestamp of the first replayed sample: an arbitrary monotonic clock reading (the
/// frames count time from the first sample, so it must not matter).
const FIRST_SAMPLE_US: u64 = 86_400_000_000;
/// Sample period of the excerpt.
const PERIOD_US: u64 = 20_000;

#[derive(clap::Args, Debug, Clone)]
pub struct FfiArgs {
    /// CI mode: fail when the committed header differs from cbindgen's output instead of
    /// rewriting it.
    #[arg(long)]
    pub check: bool,
    /// Also build the static library for aarch64-linux-android.
    #[arg(long)]
    pub android: bool,
    /// Folder holding HAPT_RawData.zip (default: $VSC_DATA_DIR, then ../shared/data).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Model blob (.vscq). Default: the firmware's (the first `models/*.vscq`).
    #[arg(long)]
    pub model: Option<PathBuf>,
}

fn ffi_dir() -> PathBuf {
    workspace_root().join("edge-runtime/ffi")
}

fn header_path() -> PathBuf {
    ffi_dir().join("include/vsc_edge.h")
}

fn cargo_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Scratch files of this check.
fn out_dir() -> PathBuf {
    cargo_target_dir().join("ffi")
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// `cbindgen` if it is the pinned version (on PATH or in cargo's bin folder).
fn find_cbindgen() -> Option<PathBuf> {
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .map(|home| home.join("bin/cbindgen"));
    [Some(PathBuf::from("cbindgen")), cargo_bin]
        .into_iter()
        .flatten()
        .find(|exe| {
            Command::new(exe).arg("--version").output().is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout).trim() == format!("cbindgen {CBINDGEN_VERSION}")
            })
        })
}

/// The pinned cbindgen, installed with `cargo install` when missing.
pub fn ensure_cbindgen() -> Result<PathBuf> {
    if let Some(exe) = find_cbindgen() {
        return Ok(exe);
    }
    run_step(
        "cargo install cbindgen",
        cargo().args([
            "install",
            "cbindgen",
            "--locked",
            "--version",
            &format!("={CBINDGEN_VERSION}"),
        ]),
    )?;
    find_cbindgen().with_context(|| {
        format!("cbindgen {CBINDGEN_VERSION} installed but not found on PATH or in ~/.cargo/bin")
    })
}

/// Regenerates the header, or (with `check`) demands the committed one is current.
fn header(check: bool) -> Result<()> {
    let cbindgen = ensure_cbindgen()?;
    fs::create_dir_all(out_dir())?;
    let generated = out_dir().join("vsc_edge.h");
    run_step(
        "cbindgen",
        Command::new(&cbindgen)
            .arg("--quiet")
            .arg("--config")
            .arg(ffi_dir().join("cbindgen.toml"))
            .arg("--output")
            .arg(&generated)
            .arg(ffi_dir()),
    )?;
    let new = fs::read_to_string(&generated).with_context(|| generated.display().to_string())?;
    let committed_path = header_path();
    let committed = fs::read_to_string(&committed_path).unwrap_or_default();
    if new == committed {
        eprintln!("header: {} is up to date", committed_path.display());
        return Ok(());
    }
    if check {
        let (line, ours, theirs) = first_difference(&committed, &new);
        bail!(
            "{} is out of date with edge-runtime/ffi/src/lib.rs (first difference at line \
             {line}: committed {ours:?}, cbindgen {CBINDGEN_VERSION} writes {theirs:?}); \
             run `cargo xtask ffi` and commit the header",
            committed_path.display()
        );
    }
    fs::rename(&generated, &committed_path)
        .with_context(|| format!("writing {}", committed_path.display()))?;
    eprintln!("header: wrote {}", committed_path.display());
    Ok(())
}

/// 1-based line number and the two lines where `a` and `b` first differ.
fn first_difference<'a>(a: &'a str, b: &'a str) -> (usize, &'a str, &'a str) {
    let (mut la, mut lb) = (a.lines(), b.lines());
    let mut line = 1;
    loop {
        match (la.next(), lb.next()) {
            (Some(x), Some(y)) if x == y => line += 1,
            (x, y) => return (line, x.unwrap_or("<end>"), y.unwrap_or("<end>")),
        }
    }
}

/// The samples, 32 bytes each: `t_us` u64, acc x y z (g), gyro x y z (rad/s) f32, all
/// little-endian: the layout `golden.c` reads.
fn samples_file(excerpt_bytes: &[u8]) -> Result<Vec<u8>> {
    let excerpt = Excerpt::parse(excerpt_bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let samples = firmware::excerpt_samples(&excerpt);
    ensure!(
        samples.len() == excerpt.len(),
        "excerpt: {} of {} samples readable",
        samples.len(),
        excerpt.len()
    );
    let mut bytes = Vec::with_capacity(samples.len() * 32);
    for (k, s) in samples.iter().enumerate() {
        bytes.extend((FIRST_SAMPLE_US + k as u64 * PERIOD_US).to_le_bytes());
        for v in s.acc_g.iter().chain(&s.gyro_rad_s) {
            bytes.extend(v.to_le_bytes());
        }
    }
    Ok(bytes)
}

/// The line `golden.c` writes for a frame (`write_golden_line`), from the host's frame.
fn golden_line(f: &Frame) -> String {
    let list = |v: &mut dyn Iterator<Item = String>| v.collect::<Vec<_>>().join(",");
    let mut line = format!(
        "seq={} t_ms={} flags=0x{:02x} J={} n={} act={} score={}",
        f.sequence,
        f.timestamp_ms,
        f.flags,
        f.latent_dim,
        f.spike_bits.count_ones(),
        f.activity,
        f.activity_score
    );
    let _ = write!(
        line,
        " bits=0x{:016x} mu_scale=0x{:08x} dims={} gamma_q15={} mu_q={}",
        f.spike_bits,
        f.mu_scale.to_bits(),
        list(&mut f.active().map(|(j, _, _)| j.to_string())),
        list(&mut f.gamma_q15.iter().map(i16::to_string)),
        list(&mut f.mu_q.iter().map(i16::to_string)),
    );
    line
}

/// Compiles `golden.c` against one library; `link` are the linker arguments.
fn compile(exe: &Path, link: &[&std::ffi::OsStr]) -> Result<()> {
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    run_step(
        "cc golden.c",
        Command::new(cc)
            .args([
                "-std=c11",
                "-O1",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
            ])
            .arg("-I")
            .arg(ffi_dir().join("include"))
            .arg(ffi_dir().join("tests/c/golden.c"))
            .args(link)
            .arg("-o")
            .arg(exe),
    )
}

/// Runs one build of `golden.c`; returns its stdout and the frames it wrote.
fn run_golden(
    exe: &Path,
    model: &Path,
    samples: &Path,
    name: &str,
) -> Result<(String, Vec<String>, Vec<u8>)> {
    let (text, wire) = (
        out_dir().join(format!("{name}.frames.txt")),
        out_dir().join(format!("{name}.frames.wire")),
    );
    eprintln!("==> [golden.c {name}] {}", exe.display());
    let out = Command::new(exe)
        .arg(model)
        .arg(samples)
        .arg(&text)
        .arg(&wire)
        .output()
        .with_context(|| format!("could not start {}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "[golden.c {name}] failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = fs::read_to_string(&text)
        .with_context(|| text.display().to_string())?
        .lines()
        .map(str::to_owned)
        .collect();
    let wire = fs::read(&wire).with_context(|| wire.display().to_string())?;
    Ok((stdout, lines, wire))
}

/// Builds both libraries and runs `golden.c` against each; the frames must be the
/// firmware's golden frames.
fn golden(args: &FfiArgs) -> Result<()> {
    run_step(
        "ffi build",
        cargo().args(["build", "-p", "edge-runtime-ffi"]),
    )?;
    let lib_dir = cargo_target_dir().join("debug");
    let excerpt = firmware::make_excerpt(args.data.as_deref())?;
    let firmware_args = FirmwareArgs {
        run: false,
        golden: false,
        data: args.data.clone(),
        model: args.model.clone(),
        timeout_s: 0,
    };
    let model = firmware::resolve_model(&firmware_args, &excerpt)?;
    let host = firmware::host_frames(&excerpt, &model)?;
    ensure!(!host.is_empty(), "the excerpt yields no window");
    let samples = out_dir().join("excerpt-samples.bin");
    fs::create_dir_all(out_dir())?;
    fs::write(&samples, samples_file(&excerpt)?).with_context(|| samples.display().to_string())?;

    let static_exe = out_dir().join("golden-static");
    let static_lib = lib_dir.join("libvsc_edge.a");
    // The system libraries Rust's std needs in a static link on Linux (as listed by
    // `rustc --print native-static-libs`).
    let mut link: Vec<&std::ffi::OsStr> = vec![static_lib.as_os_str()];
    link.extend(
        [
            "-lgcc_s",
            "-lutil",
            "-lrt",
            "-lpthread",
            "-lm",
            "-ldl",
            "-lc",
        ]
        .map(std::ffi::OsStr::new),
    );
    compile(&static_exe, &link)?;
    let shared_exe = out_dir().join("golden-shared");
    let rpath = format!("-Wl,-rpath,{}", lib_dir.display());
    let lib_flag = format!("-L{}", lib_dir.display());
    compile(
        &shared_exe,
        &[lib_flag.as_ref(), "-lvsc_edge".as_ref(), rpath.as_ref()],
    )?;
    let ldd = Command::new("ldd").arg(&shared_exe).output();
    ensure!(
        ldd.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("libvsc_edge.so")),
        "{} is not linked against libvsc_edge.so",
        shared_exe.display()
    );

    let want_lines: Vec<String> = host.iter().map(golden_line).collect();
    let mut outputs = Vec::new();
    for (name, exe) in [("static", &static_exe), ("shared", &shared_exe)] {
        let (stdout, lines, wire) = run_golden(exe, &model, &samples, name)?;
        ensure!(
            lines.len() == want_lines.len(),
            "[golden.c {name}] wrote {} frames, the firmware's golden run has {}",
            lines.len(),
            want_lines.len()
        );
        for (got, want) in lines.iter().zip(&want_lines) {
            ensure!(
                got == want,
                "[golden.c {name}] frame differs:\n  C ABI: {got}\n  host:  {want}"
            );
        }
        let (decoded, rejected) = firmware::decode_frames(&wire);
        ensure!(
            rejected == 0,
            "[golden.c {name}] {rejected} corrupt chunks in its wire output"
        );
        ensure!(
            decoded == host,
            "[golden.c {name}] wire frames differ from the host's ({} vs {} frames)",
            decoded.len(),
            host.len()
        );
        outputs.push(stdout);
    }
    ensure!(
        outputs[0] == outputs[1],
        "the static and shared builds of golden.c print different output"
    );
    eprintln!(
        "---- golden.c output ----\n{}-------------------------",
        outputs[0]
    );
    eprintln!(
        "ffi golden: {} frames through the C ABI (static and shared library) equal the \
         firmware's golden frames, as integer fields and as wire bytes",
        host.len()
    );
    jni(&static_lib, &model, &samples, &host)
}

/// A JDK's home (the folder holding `include/jni.h` and `bin/javac`), installing Debian's
/// headless JDK when root and none is found.
fn ensure_jdk() -> Result<PathBuf> {
    let has_jni =
        |home: &Path| home.join("include/jni.h").exists() && home.join("bin/javac").exists();
    let find = || {
        let from_env = std::env::var_os("JAVA_HOME").map(PathBuf::from);
        // `javac` on PATH is usually a symlink chain into the JDK's bin folder.
        let from_path = std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("javac"))
                .find(|javac| javac.exists())
                .and_then(|javac| fs::canonicalize(javac).ok())
                .and_then(|javac| Some(javac.parent()?.parent()?.to_path_buf()))
        });
        [from_env, from_path]
            .into_iter()
            .flatten()
            .find(|home| has_jni(home))
    };
    if let Some(home) = find() {
        return Ok(home);
    }
    if is_root() && Path::new("/usr/bin/apt-get").exists() {
        run_step("apt-get update", Command::new("apt-get").arg("update"))?;
        run_step(
            "apt-get install openjdk-17-jdk-headless",
            Command::new("apt-get")
                .args([
                    "install",
                    "-y",
                    "--no-install-recommends",
                    "openjdk-17-jdk-headless",
                ])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
        if let Some(home) = find() {
            return Ok(home);
        }
    }
    bail!(
        "no JDK (include/jni.h and bin/javac) found via JAVA_HOME or javac on PATH; install \
         one, e.g. `sudo apt-get install -y openjdk-17-jdk-headless`"
    )
}

/// The line `JniGolden.java` prints for a frame, from the host's frame.
fn jni_line(f: &Frame) -> String {
    let join = |v: Vec<String>| v.join(",");
    format!(
        "frame seq={} t_ms={} flags=0x{:02x} act={} score={} dims={} gamma_q15={} mu_bits={}",
        f.sequence,
        f.timestamp_ms,
        f.flags,
        f.activity,
        f.activity_score,
        join(f.active().map(|(j, _, _)| j.to_string()).collect()),
        join(f.gamma_q15.iter().map(i16::to_string).collect()),
        join(
            f.active()
                .map(|(_, _, mu)| format!("{:08x}", mu.to_bits()))
                .collect()
        ),
    )
}

/// Builds `vsc_jni.c` for the host and runs it under the JVM on the excerpt.
fn jni(static_lib: &Path, model: &Path, samples: &Path, host: &[Frame]) -> Result<()> {
    let jdk = ensure_jdk()?;
    let dir = out_dir().join("jni");
    let classes = dir.join("classes");
    fs::create_dir_all(&classes)?;
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    run_step(
        "cc vsc_jni.c",
        Command::new(cc)
            .args(["-shared", "-fPIC", "-std=c11", "-O1", "-Wall", "-Wextra"])
            .args(["-Werror", "-pedantic", "-I"])
            .arg(jdk.join("include"))
            .arg("-I")
            .arg(jdk.join("include/linux"))
            .arg("-I")
            .arg(ffi_dir().join("include"))
            .arg(ffi_dir().join("android/vsc_jni.c"))
            .arg(static_lib)
            .args(["-lm", "-ldl", "-lpthread", "-o"])
            .arg(dir.join("libvsc_jni.so")),
    )?;
    let sources = ffi_dir().join("tests/jni/org/vsc/edge");
    run_step(
        "javac",
        Command::new(jdk.join("bin/javac"))
            .arg("-d")
            .arg(&classes)
            .arg(sources.join("VscEdge.java"))
            .arg(sources.join("JniGolden.java")),
    )?;
    eprintln!("==> [jni] java org.vsc.edge.JniGolden");
    let out = Command::new(jdk.join("bin/java"))
        .arg(format!("-Djava.library.path={}", dir.display()))
        .arg("-cp")
        .arg(&classes)
        .arg("org.vsc.edge.JniGolden")
        .arg(model)
        .arg(samples)
        .output()
        .context("could not start java")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "[jni] JniGolden failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<&str> = stdout.lines().filter(|l| l.starts_with("frame ")).collect();
    ensure!(
        got.len() == host.len(),
        "[jni] {} frames through JNI, the firmware's golden run has {}",
        got.len(),
        host.len()
    );
    for (line, frame) in got.iter().zip(host) {
        let want = jni_line(frame);
        ensure!(
            *line == want,
            "[jni] frame differs:\n  JNI:  {line}\n  host: {want}"
        );
    }
    for line in stdout.lines().filter(|l| !l.starts_with("frame ")) {
        eprintln!("{line}");
    }
    eprintln!(
        "jni golden: {} frames through vsc_jni.c under the JVM equal the firmware's golden frames",
        host.len()
    );
    Ok(())
}

/// The static library for Android (no NDK needed: a staticlib is not linked).
fn android() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("`rustup` is needed to add the aarch64-linux-android target")?;
    if !String::from_utf8_lossy(&installed.stdout).contains(ANDROID_TARGET) {
        run_step(
            "rustup target",
            Command::new("rustup").args(["target", "add", ANDROID_TARGET]),
        )?;
    }
    run_step(
        "ffi android staticlib",
        cargo().args([
            "rustc",
            "-p",
            "edge-runtime-ffi",
            "--lib",
            "--crate-type",
            "staticlib",
            "--target",
            ANDROID_TARGET,
        ]),
    )?;
    let lib = cargo_target_dir().join(format!("{ANDROID_TARGET}/debug/libvsc_edge.a"));
    let len = fs::metadata(&lib)
        .with_context(|| format!("{} missing after the build", lib.display()))?
        .len();
    eprintln!("android: {} ({:.1} MB)", lib.display(), len as f64 / 1e6);
    Ok(())
}

/// `cargo xtask ffi`.
pub fn run(args: &FfiArgs) -> Result<()> {
    header(args.check)?;
    golden(args)?;
    if args.android {
        android()?;
    }
    Ok(())
}

/// What `cargo xtask test` runs: the header check, the C golden test, the Android build.
pub fn ci_check() -> Result<()> {
    run(&FfiArgs {
        check: true,
        android: true,
        data: None,
        model: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_difference_names_the_line() {
        assert_eq!(first_difference("a\nb\nc", "a\nx\nc"), (2, "b", "x"));
        assert_eq!(first_difference("a\nb", "a\nb\nc"), (3, "<end>", "c"));
    }
}
