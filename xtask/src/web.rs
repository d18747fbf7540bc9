//! `cargo xtask web`: builds the phone web app (edge-runtime in wasm + the static page)
//! into `target/web/`, where `vsc serve` finds it. `--check` then replays a HAPT
//! test-subject recording as DeviceMotion events in headless Chromium and demands that
//! the page's frames equal, field for field, the frames edge-runtime computes on the host
//! from the same events; it saves a screenshot and prints the wasm size and the encode
//! time per window in the browser. `cargo xtask test` runs the check.

mod replay;
mod webdriver;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use edge_runtime_wasm::phone::Mount;
use host_trainer::data::hapt::HaptDataset;
use host_trainer::data::is_test_subject;
use host_trainer::serve::{Server, Site, default_model, default_web_dir};
use serde_json::json;

use crate::test::{run_step, workspace_root};
use replay::{PageFrame, ReplayConfig};
use xtask::write_atomic;

/// The wasm-bindgen-cli that matches the `wasm-bindgen` crate pinned in
/// edge-runtime/wasm/Cargo.toml (the two must be the same version).
pub const WASM_BINDGEN_VERSION: &str = "0.2.130";
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// The module name wasm-bindgen derives from the crate.
const WASM_MODULE: &str = "edge_runtime_wasm";

/// The replayed recording: test subject 2's first experiment from sample 9700 on
/// (walking, then walking downstairs and upstairs).
const REPLAY_USER: u8 = 2;
const REPLAY_START_SAMPLE: usize = 9_699;

#[derive(clap::Args, Debug, Clone)]
pub struct WebArgs {
    /// Output folder (default: target/web, where `vsc serve` looks).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also run the browser check (headless Chromium replaying a HAPT recording).
    #[arg(long)]
    pub check: bool,
    /// Data folder or zip with the HAPT recordings, for --check (default: $VSC_DATA_DIR).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Seconds of recording to replay in --check.
    #[arg(long, default_value_t = 60)]
    pub seconds: u32,
    /// How the replayed phone is worn (har-waist or portrait-hip).
    #[arg(long, default_value = "portrait-hip")]
    pub mount: String,
}

impl Default for WebArgs {
    fn default() -> Self {
        WebArgs {
            out: None,
            check: false,
            data: None,
            seconds: 60,
            mount: Mount::PortraitHip.name().to_owned(),
        }
    }
}

/// The step `cargo xtask test` runs: build, then the browser check.
pub fn ci_check() -> Result<()> {
    run(&WebArgs {
        check: true,
        ..WebArgs::default()
    })
}

pub fn run(args: &WebArgs) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(default_web_dir);
    let wasm_bytes = build(&out)?;
    if args.check {
        check(&out, wasm_bytes, args)?;
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn ensure_wasm_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("`rustup` is needed to add the wasm32-unknown-unknown target")?;
    if !String::from_utf8_lossy(&installed.stdout).contains(WASM_TARGET) {
        run_step(
            "rustup target",
            Command::new("rustup").args(["target", "add", WASM_TARGET]),
        )?;
    }
    Ok(())
}

/// `wasm-bindgen` of exactly [`WASM_BINDGEN_VERSION`]: from PATH or `$CARGO_HOME/bin`,
/// else installed with `cargo install` (a few minutes, once per machine).
fn ensure_wasm_bindgen() -> Result<PathBuf> {
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin").join("wasm-bindgen"));
    let wanted = format!("wasm-bindgen {WASM_BINDGEN_VERSION}");
    let matches = |program: &Path| {
        Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == wanted)
    };
    let candidates: Vec<PathBuf> = webdriver::find_program(&["wasm-bindgen"])
        .into_iter()
        .chain(cargo_bin.clone())
        .collect();
    if let Some(found) = candidates.iter().find(|p| matches(p)) {
        return Ok(found.clone());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let install = |locked: bool| {
        let mut cmd = Command::new(&cargo);
        cmd.args([
            "install",
            "wasm-bindgen-cli",
            "--version",
            WASM_BINDGEN_VERSION,
        ]);
        if locked {
            cmd.arg("--locked");
        }
        run_step("install wasm-bindgen-cli", &mut cmd)
    };
    if let Err(locked_err) = install(true) {
        // The lock file of wasm-bindgen-cli names exact versions of its dependencies; a
        // registry mirror that lacks one of them fails `--locked`, so resolve afresh.
        eprintln!("note: {locked_err:#}; trying again without --locked");
        install(false)?;
    }
    let installed = cargo_bin.context("neither CARGO_HOME nor HOME is set")?;
    ensure!(
        matches(&installed),
        "{} is not {wanted} after `cargo install`",
        installed.display()
    );
    Ok(installed)
}

fn file_len(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len())
}

/// Builds the wasm module and the page into `out` (replaced as a whole, via a sibling
/// `.partial` folder); returns the size of the .wasm file.
pub fn build(out: &Path) -> Result<u64> {
    ensure_wasm_target()?;
    let wasm_bindgen = ensure_wasm_bindgen()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run_step(
        "wasm build",
        Command::new(cargo).args([
            "build",
            "-p",
            "edge-runtime-wasm",
            "--release",
            "--target",
            WASM_TARGET,
        ]),
    )?;
    let target_dir = default_web_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace_root().join("target"));
    let module = target_dir
        .join(WASM_TARGET)
        .join("release")
        .join(format!("{WASM_MODULE}.wasm"));

    let partial = out.with_extension("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("removing {}", partial.display()))?;
    }
    run_step(
        "wasm-bindgen",
        Command::new(&wasm_bindgen)
            .args(["--target", "web", "--no-typescript", "--out-dir"])
            .arg(partial.join("pkg"))
            .arg(&module),
    )?;
    let www = workspace_root().join("edge-runtime/wasm/www");
    for entry in std::fs::read_dir(&www).with_context(|| format!("reading {}", www.display()))? {
        let path = entry?.path();
        if path.is_file()
            && let Some(name) = path.file_name()
        {
            std::fs::copy(&path, partial.join(name))
                .with_context(|| format!("copying {}", path.display()))?;
        }
    }
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("removing {}", out.display()))?;
    }
    std::fs::rename(&partial, out)
        .with_context(|| format!("renaming {} to {}", partial.display(), out.display()))?;

    let wasm_bytes = file_len(&out.join("pkg").join(format!("{WASM_MODULE}_bg.wasm")))?;
    let js_bytes = file_len(&out.join("pkg").join(format!("{WASM_MODULE}.js")))?;
    let page_bytes: u64 = ["index.html", "app.js", "style.css"]
        .iter()
        .map(|f| file_len(&out.join(f)))
        .sum::<Result<u64>>()?;
    println!(
        "web app in {}: wasm {wasm_bytes} bytes, wasm-bindgen glue {js_bytes} bytes, page {page_bytes} bytes\n\
         serve it with: cargo run -p host-trainer --bin vsc -- serve",
        out.display()
    );
    Ok(wasm_bytes)
}

/// Chromium and chromedriver, installed from Debian when missing and root.
fn ensure_chromium() -> Result<(PathBuf, PathBuf)> {
    let find = || {
        Some((
            webdriver::find_program(&["chromium", "chromium-browser"])?,
            webdriver::find_program(&["chromedriver"])?,
        ))
    };
    if let Some(found) = find() {
        return Ok(found);
    }
    if is_root() && Path::new("/usr/bin/apt-get").exists() {
        run_step("apt-get update", Command::new("apt-get").arg("update"))?;
        run_step(
            "apt-get install chromium chromium-driver",
            Command::new("apt-get")
                .args([
                    "install",
                    "-y",
                    "--no-install-recommends",
                    "chromium",
                    "chromium-driver",
                ])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
        if let Some(found) = find() {
            return Ok(found);
        }
    }
    bail!(
        "chromium and chromedriver are needed for the browser check; run:\n  \
         sudo apt-get install -y chromium chromium-driver"
    )
}

/// Dispatches the events as `devicemotion` on the page, a batch per task so the page
/// draws between batches. A constructed event's `timeStamp` is its creation time; the
/// replay sets the recording's instead, as a phone's sensor would.
const REPLAY_SCRIPT: &str = r#"
const [events, batch] = arguments;
const done = arguments[arguments.length - 1];
let i = 0;
function step() {
  try {
    const end = Math.min(i + batch, events.length);
    for (; i < end; i++) {
      const [t, x, y, z, alpha, beta, gamma] = events[i];
      const e = new DeviceMotionEvent('devicemotion', {
        accelerationIncludingGravity: {x, y, z},
        rotationRate: {alpha, beta, gamma},
        interval: 16,
      });
      Object.defineProperty(e, 'timeStamp', {value: t});
      window.dispatchEvent(e);
    }
    if (i < events.length) setTimeout(step, 0); else done(null);
  } catch (err) {
    done(String(err));
  }
}
step();
"#;

const READ_BACK_SCRIPT: &str = r#"
const s = window.vscApp;
return {frames: s.frames, encodeMs: s.encodeMs, events: s.events, error: s.error,
        isolated: window.crossOriginIsolated, status: document.getElementById('status').textContent};
"#;

/// The page's answers to bad input, each checked in the browser: motion permission
/// denied (iOS's `requestPermission`, stubbed), no motion events within 2 s, and a
/// corrupted model file. Leaves the page stopped with the served model loaded.
fn bad_input_messages(browser: &webdriver::Session<'_>, blob: &[u8]) -> Result<()> {
    let error_contains = |text: &str| -> Result<()> {
        let condition = format!("return window.vscApp.error.includes({text:?})");
        browser
            .wait_for(&condition, Duration::from_secs(5))
            .with_context(|| {
                let shown = browser
                    .execute("return window.vscApp.error", json!([]))
                    .unwrap_or_default();
                format!("expected an error message with {text:?}, the page shows {shown}")
            })
    };
    browser.execute(
        "DeviceMotionEvent.requestPermission = () => Promise.resolve('denied');",
        json!([]),
    )?;
    browser.click("#start")?;
    error_contains("Motion access was denied")?;
    browser.execute("delete DeviceMotionEvent.requestPermission;", json!([]))?;

    // Chromium on a machine without sensors may fire one event with null values.
    browser.click("#start")?;
    browser.wait_for(
        "return window.vscApp.error.startsWith('No motion events within 2 s') \
         || window.vscApp.error.startsWith('This device has no accelerometer')",
        Duration::from_secs(5),
    )?;
    browser.click("#stop")?;

    let dir = tempfile::tempdir()?;
    let corrupted = dir.path().join("corrupted.vscq");
    let mut bytes = blob.to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&corrupted, &bytes)?;
    browser.send_keys("#model-file", &corrupted.display().to_string())?;
    error_contains("corrupted.vscq: model blob: CRC-32 mismatch")?;
    browser.click("#served-model")?;
    browser.wait_for(
        "return window.vscApp.modelName === 'model.vscq (served)'",
        Duration::from_secs(5),
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn check(out: &Path, wasm_bytes: u64, args: &WebArgs) -> Result<()> {
    let started = Instant::now();
    let mount = Mount::from_name(&args.mount)
        .with_context(|| format!("--mount {}: expected har-waist or portrait-hip", args.mount))?;
    let (chromium, chromedriver) = ensure_chromium()?;

    let data_dir = crate::firmware::data_dir(args.data.as_deref())?;
    let dataset = HaptDataset::open(&data_dir)?;
    ensure!(
        is_test_subject(REPLAY_USER),
        "user {REPLAY_USER} must be a test subject"
    );
    let recording = dataset
        .recordings
        .iter()
        .find(|r| r.user == REPLAY_USER)
        .with_context(|| format!("{}: no recording of user {REPLAY_USER}", dataset.source))?;
    let n = args.seconds as usize * 50;
    let samples = recording
        .samples
        .get(REPLAY_START_SAMPLE..REPLAY_START_SAMPLE + n)
        .with_context(|| {
            format!(
                "{}: shorter than {} samples",
                recording.acc_file,
                REPLAY_START_SAMPLE + n
            )
        })?;
    let config = ReplayConfig {
        mount,
        rate_hz: 60.0,
        jitter_ms: 3.0,
        start_ms: 1000.0,
        seed: 14,
    };
    let events = replay::phone_events(samples, &config);
    let model_path = default_model();
    let blob =
        std::fs::read(&model_path).with_context(|| format!("reading {}", model_path.display()))?;
    let host = replay::host_frames(&blob, mount, &events)?;

    let server = Server::start(Site::new(out, Some(&model_path))?, 0)?;
    let driver = webdriver::Driver::start(&chromedriver)?;
    let browser = driver.session(&chromium)?;
    browser.navigate(&server.url())?;
    browser.wait_for(
        "return window.vscApp !== undefined && window.vscApp.ready === true",
        Duration::from_secs(30),
    )?;
    let loaded = browser.execute(
        "return {error: window.vscApp.error, model: window.vscApp.modelName};",
        json!([]),
    )?;
    ensure!(
        loaded["error"] == "" && loaded["model"] != "",
        "the page did not load the model: {loaded}"
    );
    bad_input_messages(&browser, &blob)?;
    browser.execute(
        "document.getElementById('mount').value = arguments[0];",
        json!([mount.name()]),
    )?;
    browser.click("#start")?;
    let replay_started = Instant::now();
    let result = browser.execute_async(REPLAY_SCRIPT, json!([replay::events_json(&events), 60]))?;
    ensure!(result.is_null(), "the replay script failed: {result}");
    let replay_s = replay_started.elapsed().as_secs_f64();
    let back = browser.execute(READ_BACK_SCRIPT, json!([]))?;
    let screenshot = browser.screenshot()?;
    let shot_path = out.join("screenshot.png");
    write_atomic(&shot_path, &screenshot)?;
    drop(browser);
    drop(driver);
    server.stop();

    ensure!(
        back["error"] == "",
        "the page reported an error: {}",
        back["error"]
    );
    ensure!(
        back["events"].as_u64() == Some(events.len() as u64),
        "the page took {} of {} events",
        back["events"],
        events.len()
    );
    let page: Vec<PageFrame> =
        serde_json::from_value(back["frames"].clone()).context("reading the page's frames")?;
    let compared = replay::compare(&page, &host)
        .map_err(|diff| anyhow::anyhow!("page and host frames differ: {diff}"))?;
    let flagged = host.iter().filter(|f| f.flags != 0).count();
    ensure!(
        flagged >= 1,
        "the spoiled events (a NaN, a time step back) flagged no frame"
    );

    // A frame's window is the last 128 grid samples before it; grid sample g is
    // recording sample REPLAY_START_SAMPLE + g (to within the first event's jitter).
    let runs = dataset.runs_of(recording.exp);
    let labelled: Vec<(u8, u8)> = host
        .iter()
        .filter(|f| f.flags & edge_runtime::frame::flags::NO_CODE == 0)
        .filter_map(|f| {
            let end = REPLAY_START_SAMPLE + (f.timestamp_ms / 20) as usize;
            let start = end.checked_sub(edge_runtime::preprocess::WINDOW_LEN)?;
            let run = runs.iter().find(|r| r.contains_span(start, end - start))?;
            Some((f.activity, run.activity))
        })
        .collect();
    let agree = labelled.iter().filter(|(p, l)| p == l).count();

    let mut encode_ms: Vec<f64> = serde_json::from_value(back["encodeMs"].clone())?;
    encode_ms.sort_by(f64::total_cmp);
    ensure!(
        encode_ms.len() == host.len(),
        "{} encode timings for {} frames",
        encode_ms.len(),
        host.len()
    );
    let mean_ms = encode_ms.iter().sum::<f64>() / encode_ms.len().max(1) as f64;
    println!(
        "browser check ({}): {} s of user {REPLAY_USER} ({}) as {} events at 60 Hz ± 3 ms, mount {}\n  \
         frames page == host: {compared} of {} identical in every field ({flagged} flagged by the spoiled events)\n  \
         predicted activity == HAPT label on {agree} of {} windows that lie inside one labelled run\n  \
         encode per window in Chromium: mean {:.0} µs, median {:.0} µs, p95 {:.0} µs over {} windows \
         (performance.now, cross-origin isolated: {})\n  \
         wasm {wasm_bytes} bytes; replay {replay_s:.1} s; check {:.0} s; screenshot {}",
        chromium.display(),
        args.seconds,
        recording.acc_file,
        events.len(),
        mount.name(),
        host.len(),
        labelled.len(),
        mean_ms * 1000.0,
        percentile(&encode_ms, 0.5) * 1000.0,
        percentile(&encode_ms, 0.95) * 1000.0,
        encode_ms.len(),
        back["isolated"],
        started.elapsed().as_secs_f64(),
        shot_path.display(),
    );
    Ok(())
}
