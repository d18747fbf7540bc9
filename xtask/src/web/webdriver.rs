//! A minimal W3C WebDriver client (JSON over HTTP) for Debian's chromedriver: start the
//! driver, open one headless Chromium session, navigate, click, run scripts, screenshot.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::{Value, json};

/// Chromium's switches for a reproducible headless run in CI: no sandbox (CI runs as
/// root), no GPU, and nothing that phones home or updates itself mid-test.
pub const CHROMIUM_SWITCHES: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=720,1200",
];

/// A running chromedriver; killed on drop.
pub struct Driver {
    child: Child,
    base: String,
    agent: ureq::Agent,
}

/// A browser session; closed on drop.
pub struct Session<'a> {
    driver: &'a Driver,
    id: String,
    _profile: tempfile::TempDir,
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// The `value` of a WebDriver answer, or its `error` and `message` as an error.
fn value_of(status: u16, text: &str, what: &str) -> Result<Value> {
    let body: Value = serde_json::from_str(text)
        .with_context(|| format!("{what}: HTTP {status}, not JSON: {text:.200}"))?;
    let value = body.get("value").cloned().unwrap_or(Value::Null);
    // W3C WebDriver reports errors with a 4xx/5xx status; a script's own result may
    // well hold a field named `error`.
    if status >= 400 {
        bail!(
            "{what}: WebDriver error {} (HTTP {status}): {}",
            value["error"].as_str().unwrap_or("?"),
            value["message"].as_str().unwrap_or(text)
        );
    }
    Ok(value)
}

impl Driver {
    /// Starts `chromedriver` on a free loopback port and waits until it is ready.
    pub fn start(chromedriver: &Path) -> Result<Driver> {
        let port = free_port()?;
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", chromedriver.display()))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .into();
        let mut driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            agent,
        };
        let started = Instant::now();
        loop {
            if let Ok(status) = driver.request("GET", "/status", None)
                && status["ready"].as_bool() == Some(true)
            {
                return Ok(driver);
            }
            if let Some(exit) = driver.child.try_wait()? {
                bail!("{} exited at start ({exit})", chromedriver.display());
            }
            if started.elapsed() > Duration::from_secs(20) {
                bail!(
                    "{} did not become ready within 20 s",
                    chromedriver.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let what = format!("{method} {path}");
        let mut response = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, body) => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or(&json!({})).to_string()),
        }
        .with_context(|| what.clone())?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_string()
            .with_context(|| format!("{what}: reading the answer"))?;
        value_of(status, &text, &what)
    }

    /// A new headless session of `chromium` with a fresh profile folder.
    pub fn session(&self, chromium: &Path) -> Result<Session<'_>> {
        let profile = tempfile::tempdir().context("creating a Chromium profile folder")?;
        let mut args: Vec<String> = CHROMIUM_SWITCHES.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let value = self.request("POST", "/session", Some(&caps))?;
        let id = value["sessionId"]
            .as_str()
            .context("new session: no sessionId in the answer")?
            .to_owned();
        let session = Session {
            driver: self,
            id,
            _profile: profile,
        };
        session.post("/timeouts", json!({"script": 600_000, "pageLoad": 60_000}))?;
        Ok(session)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Session<'_> {
    fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.driver
            .request("POST", &format!("/session/{}{path}", self.id), Some(&body))
    }

    pub fn navigate(&self, url: &str) -> Result<()> {
        self.post("/url", json!({"url": url})).map(|_| ())
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its value.
    pub fn execute(&self, script: &str, args: Value) -> Result<Value> {
        self.post("/execute/sync", json!({"script": script, "args": args}))
    }

    /// Runs `script`, which must call `arguments[arguments.length - 1](result)` when done.
    pub fn execute_async(&self, script: &str, args: Value) -> Result<Value> {
        self.post("/execute/async", json!({"script": script, "args": args}))
    }

    fn element(&self, css: &str) -> Result<String> {
        let found = self.post("/element", json!({"using": "css selector", "value": css}))?;
        Ok(found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .with_context(|| format!("no element id for {css}"))?
            .to_owned())
    }

    /// Clicks the element matching a CSS selector, as a user would (a trusted event, so
    /// the page gets a user gesture).
    pub fn click(&self, css: &str) -> Result<()> {
        let element = self.element(css)?;
        self.post(&format!("/element/{element}/click"), json!({}))
            .map(|_| ())
    }

    /// Types `text` into the element; for `<input type=file>`, a local file's path.
    pub fn send_keys(&self, css: &str, text: &str) -> Result<()> {
        let element = self.element(css)?;
        self.post(&format!("/element/{element}/value"), json!({"text": text}))
            .map(|_| ())
    }

    /// Polls `condition` (a script returning a boolean) until it is true.
    pub fn wait_for(&self, condition: &str, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if self.execute(condition, json!([]))?.as_bool() == Some(true) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("page: `{condition}` still false after {timeout:?}")
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Result<Vec<u8>> {
        let value =
            self.driver
                .request("GET", &format!("/session/{}/screenshot", self.id), None)?;
        let b64 = value.as_str().context("screenshot: no base64 string")?;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .context("screenshot: invalid base64")
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = self
            .driver
            .request("DELETE", &format!("/session/{}", self.id), None);
    }
}

/// The first of `names` found on PATH (or as given, if it is a path).
pub fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        let given = Path::new(name);
        if given.is_absolute() {
            return given.is_file().then(|| given.to_path_buf());
        }
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webdriver_errors_carry_their_message() {
        let ok = value_of(200, r#"{"value":{"sessionId":"abc"}}"#, "POST /session").unwrap();
        assert_eq!(ok["sessionId"], "abc");
        let script = value_of(200, r#"{"value":{"error":""}}"#, "POST /execute/sync").unwrap();
        assert_eq!(script["error"], "");
        let err = value_of(
            404,
            r#"{"value":{"error":"no such element","message":"no #start","stacktrace":""}}"#,
            "POST /element",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("no such element") && err.contains("no #start"),
            "{err}"
        );
        let err = value_of(500, "<html>", "GET /status")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not JSON"), "{err}");
    }
}
